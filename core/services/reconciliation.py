"""Reconciliation: our record of payments against the payment systems' own.

Telegram's ``getStarTransactions`` and YooKassa's payment list are compared with the
``payments`` table over a window of time (``reconcile``), then what the provider's own record
proves is healed (``heal``):

- a successful charge we have no payment for (its update was lost, or its notification) is
  credited through the same use case as the live path (``stars.record_payment``,
  ``yookassa_topups.settle_payment``), by charge id, to the account the signed invoice payload
  (or the YooKassa order) names; so it is credited once, whoever gets there first;
- a charge the provider refunded that we still count as paid is reversed through
  ``payments.refund_payment``.

Everything else is only reported: a payment we credited that the provider does not know, amounts
that differ, a refund we recorded that the provider does not show, and any charge that could not
be healed (a payload we did not sign, an unknown account). Charges close to the window's edges
are matched across a margin, so a payment made while the job runs is not reported as missing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import exists, select

from core.errors import DomainError
from core.payments.yookassa import YooKassaClient
from core.services import payments, stars, yookassa_topups
from core.services.payments import PaymentRefused, PaymentTerms
from core.services.tariffs import Tariffs
from db.models import Payment
from db.uow import UnitOfWork

log = logging.getLogger(__name__)

MARGIN = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class ProviderCharge:
    """A payment as the payment system records it (amount in its own units)."""

    provider: str  # "stars" | "yookassa"
    external_id: str
    amount: int
    created_at: datetime
    refunded: bool = False
    # What healing needs: the signed invoice payload and the payer (Stars), the paid period of
    # a subscription charge (seconds).
    payload: str | None = None
    payer_telegram_id: int | None = None
    subscription_period: int | None = None


class StarsSource(Protocol):
    async def star_charges(self, since: datetime) -> list[ProviderCharge]: ...


@dataclass(frozen=True, slots=True)
class Difference:
    provider: str
    external_id: str
    problem: str  # missing_here | unknown_to_provider | amount | refund
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Healed:
    provider: str
    external_id: str
    action: str  # credited | reversed
    user_id: int
    kopecks: int  # credited, or taken back
    # A credited top-up (the payer is told it arrived); a subscription's charge is not one.
    top_up: bool = False
    # The payment credited (its inviters are told what it earned them).
    payment_id: int | None = None


@dataclass(frozen=True, slots=True)
class Report:
    since: datetime
    until: datetime
    checked: dict[str, int] = field(default_factory=dict)
    differences: tuple[Difference, ...] = ()
    healed: tuple[Healed, ...] = ()

    @property
    def clean(self) -> bool:
        return not self.differences

    @property
    def worth_telling(self) -> bool:
        """Something was healed or is left for a person to look at."""
        return bool(self.differences or self.healed)

    def summary(self) -> str:
        lines = [
            f"Reconciliation {self.since:%Y-%m-%d %H:%M} – {self.until:%Y-%m-%d %H:%M} UTC: "
            + ", ".join(f"{p} {n} checked" for p, n in sorted(self.checked.items()))
        ]
        for h in self.healed:
            lines.append(
                f"+ healed: {h.provider} {h.external_id} {h.action}, user {h.user_id},"
                f" {h.kopecks} kopecks"
            )
        if self.clean:
            lines.append("No differences left." if self.healed else "No differences.")
        for d in self.differences:
            lines.append(f"- {d.provider} {d.external_id}: {d.problem} {d.detail}".rstrip())
        return "\n".join(lines)


async def reconcile(
    uow: UnitOfWork,
    *,
    since: datetime,
    until: datetime,
    charges: Sequence[ProviderCharge],
    providers: Sequence[str],
) -> Report:
    """Compare the providers' charges in [since, until) with ours. ``providers`` names the ones
    whose lists were fetched: only those are checked for payments unknown to the provider."""
    async with uow.reading():
        ours = {
            (p.provider, p.external_id): p
            for p in await uow.session.scalars(
                select(Payment).where(
                    Payment.created_at >= since - MARGIN,
                    Payment.created_at < until + MARGIN,
                    Payment.provider.in_(providers),
                )
            )
        }
        theirs = {(c.provider, c.external_id): c for c in charges}
        differences: list[Difference] = []
        checked: dict[str, int] = dict.fromkeys(providers, 0)
        for key, charge in sorted(theirs.items()):
            if not since <= charge.created_at < until:
                continue
            checked[charge.provider] = checked.get(charge.provider, 0) + 1
            payment = ours.get(key)
            if payment is None:
                payment = await _payment(uow, *key)
            if payment is None:
                differences.append(
                    Difference(
                        charge.provider, charge.external_id, "missing_here", f"{charge.amount}"
                    )
                )
                continue
            if payment.amount != charge.amount:
                differences.append(
                    Difference(
                        charge.provider,
                        charge.external_id,
                        "amount",
                        f"provider {charge.amount}, ours {payment.amount}",
                    )
                )
            if charge.refunded != (payment.status == "refunded"):
                differences.append(
                    Difference(
                        charge.provider,
                        charge.external_id,
                        "refund",
                        f"provider {'refunded' if charge.refunded else 'paid'},"
                        f" ours {payment.status}",
                    )
                )
        for key, payment in sorted(ours.items()):
            if since <= payment.created_at < until and key not in theirs:
                differences.append(
                    Difference(payment.provider, payment.external_id, "unknown_to_provider")
                )
    return Report(since, until, checked, tuple(differences))


async def _payment(uow: UnitOfWork, provider: str, external_id: str) -> Payment | None:
    return (
        await uow.session.scalars(
            select(Payment).filter_by(provider=provider, external_id=external_id)
        )
    ).first()


async def heal(
    uow: UnitOfWork,
    report: Report,
    charges: Sequence[ProviderCharge],
    *,
    terms: PaymentTerms,
    tariffs: Tariffs,
    yookassa: YooKassaClient | None,
    now: datetime,
) -> Report:
    """Credit the charges we lack and reverse the refunds we missed, as the providers' own
    records show them; the report then lists what was healed and only the differences left."""
    by_key = {(c.provider, c.external_id): c for c in charges}
    healed: list[Healed] = []
    left: list[Difference] = []
    for difference in report.differences:
        charge = by_key.get((difference.provider, difference.external_id))
        done: Healed | None = None
        try:
            if charge is not None and difference.problem == "missing_here" and not charge.refunded:
                done = await _credit(uow, charge, terms, tariffs, yookassa, now)
            elif charge is not None and difference.problem == "refund" and charge.refunded:
                refund = await payments.refund_payment(
                    uow, provider=charge.provider, external_id=charge.external_id, now=now
                )
                done = Healed(
                    charge.provider,
                    charge.external_id,
                    "reversed",
                    refund.user_id,
                    refund.taken_back,
                )
        except DomainError as exc:
            await uow.rollback()
            log.warning(
                "reconciliation: %s %s not healed: %s",
                difference.provider,
                difference.external_id,
                exc,
            )
            left.append(replace(difference, detail=f"{difference.detail} (not healed: {exc})"))
            continue
        if done is None:
            left.append(difference)
        else:
            log.warning("reconciliation healed %s", done)
            healed.append(done)
    return replace(report, differences=tuple(left), healed=(*report.healed, *healed))


async def _credit(
    uow: UnitOfWork,
    charge: ProviderCharge,
    terms: PaymentTerms,
    tariffs: Tariffs,
    yookassa: YooKassaClient | None,
    now: datetime,
) -> Healed | None:
    if charge.provider == "yookassa":
        if yookassa is None:
            return None
        settled = await yookassa_topups.settle_payment(
            uow, yookassa, terms, payment_id=charge.external_id, now=now
        )
        if settled.top_up is None:
            raise PaymentRefused(f"YooKassa payment {charge.external_id}: {settled.outcome}")
        top_up = settled.top_up
        return Healed(
            "yookassa",
            charge.external_id,
            "credited",
            top_up.user_id,
            top_up.credited,
            True,
            top_up.payment_id,
        )
    if charge.payload is None or charge.payer_telegram_id is None:
        raise PaymentRefused("Telegram's record names no invoice payload or payer")
    period = charge.subscription_period
    # A subscription's first charge starts it; a later one (same payload) renews it.
    first = not await uow.session.scalar(
        select(exists().where(Payment.provider == "stars", Payment.payload == charge.payload))
    )
    recorded = await stars.record_payment(
        uow,
        terms,
        tariffs,
        telegram_id=charge.payer_telegram_id,
        charge_id=charge.external_id,
        payload=charge.payload,
        currency="XTR",
        total_amount=charge.amount,
        subscription_expires_at=(charge.created_at + timedelta(seconds=period) if period else None),
        first_of_subscription=first,
        now=now,
    )
    kopecks = (
        recorded.top_up.credited
        if recorded.top_up is not None
        else charge.amount * terms.kopecks_per_star
    )
    return Healed(
        "stars",
        charge.external_id,
        "credited",
        recorded.user_id,
        kopecks,
        recorded.applied and recorded.top_up is not None,
        recorded.top_up.payment_id if recorded.top_up is not None else None,
    )
