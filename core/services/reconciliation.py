"""Reconciliation: our record of payments against the payment systems' own.

Telegram's ``getStarTransactions`` and YooKassa's payment list are compared with the
``payments`` table over a window of time. Differences are reported, never corrected
automatically: a charge the provider has and we lack (credit it by hand after checking), a
payment we credited that the provider does not know, amounts that differ, a refund recorded on
one side only. Charges close to the window's edges are matched across a margin, so a payment
made while the job runs is not reported as missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import select

from db.models import Payment
from db.uow import UnitOfWork

MARGIN = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class ProviderCharge:
    """A payment as the payment system records it (amount in its own units)."""

    provider: str  # "stars" | "yookassa"
    external_id: str
    amount: int
    created_at: datetime
    refunded: bool = False


class StarsSource(Protocol):
    async def star_charges(self, since: datetime) -> list[ProviderCharge]: ...


@dataclass(frozen=True, slots=True)
class Difference:
    provider: str
    external_id: str
    problem: str  # missing_here | unknown_to_provider | amount | refund
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Report:
    since: datetime
    until: datetime
    checked: dict[str, int] = field(default_factory=dict)
    differences: tuple[Difference, ...] = ()

    @property
    def clean(self) -> bool:
        return not self.differences

    def summary(self) -> str:
        lines = [
            f"Reconciliation {self.since:%Y-%m-%d %H:%M} – {self.until:%Y-%m-%d %H:%M} UTC: "
            + ", ".join(f"{p} {n} checked" for p, n in sorted(self.checked.items()))
        ]
        if self.clean:
            lines.append("No differences.")
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
                Difference(charge.provider, charge.external_id, "missing_here", f"{charge.amount}")
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
                    f"provider {'refunded' if charge.refunded else 'paid'}, ours {payment.status}",
                )
            )
    for key, payment in sorted(ours.items()):
        if since <= payment.created_at < until and key not in theirs:
            differences.append(
                Difference(payment.provider, payment.external_id, "unknown_to_provider")
            )
    await uow.end_read()
    return Report(since, until, checked, tuple(differences))


async def _payment(uow: UnitOfWork, provider: str, external_id: str) -> Payment | None:
    return (
        await uow.session.scalars(
            select(Payment).filter_by(provider=provider, external_id=external_id)
        )
    ).first()
