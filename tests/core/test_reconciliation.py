"""Healing from the providers' own records, on real Postgres: a Stars charge we never recorded is
credited once to the account its signed payload names, whatever runs first; a refund we missed
is reversed; a charge whose payload we did not sign is only reported."""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from core.services import billing, payments, reconciliation
from core.services.reconciliation import ProviderCharge
from core.services.tariffs import Tariffs
from db.uow import UnitOfWork
from tests.core.test_payments import TERMS
from tests.factories import register, telegram_id

TARIFFS = Tariffs(free_limits={})
STARS = 50


def _charge(tg: int, payload: str, *, refunded: bool = False) -> ProviderCharge:
    return ProviderCharge(
        "stars",
        "stx" + secrets.token_hex(12),
        STARS,
        datetime.now(UTC) - timedelta(minutes=5),
        refunded=refunded,
        payload=payload,
        payer_telegram_id=tg,
    )


async def _run(uow: UnitOfWork, charges: list[ProviderCharge]) -> reconciliation.Report:
    now = datetime.now(UTC)
    report = await reconciliation.reconcile(
        uow,
        since=now - timedelta(hours=48),
        until=now,
        charges=charges,
        providers=["stars"],
    )
    return await reconciliation.heal(
        uow, report, charges, terms=TERMS, tariffs=TARIFFS, yookassa=None, now=now
    )


def _about(report: reconciliation.Report, charge: ProviderCharge) -> list[str]:
    return [d.problem for d in report.differences if d.external_id == charge.external_id]


async def test_a_charge_we_never_recorded_is_credited_once_to_the_payer(uow: UnitOfWork) -> None:
    tg = telegram_id()
    user = (await register(uow, tg_id=tg)).user
    charge = _charge(tg, payments.invoice_payload(TERMS, user_id=user.id, stars=STARS))
    first = await _run(uow, [charge])
    [healed] = [h for h in first.healed if h.external_id == charge.external_id]
    expected = STARS * TERMS.kopecks_per_star
    assert (healed.action, healed.user_id, healed.kopecks, healed.top_up) == (
        "credited",
        user.id,
        expected,
        True,
    )
    assert _about(first, charge) == []
    # The lost update turns up after all: the handler's use case credits nothing more.
    late = await payments.record_stars_payment(
        uow,
        TERMS,
        telegram_id=tg,
        charge_id=charge.external_id,
        payload=charge.payload or "",
        currency="XTR",
        total_amount=STARS,
    )
    assert not late.applied
    again = await _run(uow, [charge])
    assert charge.external_id not in {h.external_id for h in again.healed}
    assert (await billing.get_balance(uow, user.id)).balance == expected


async def test_a_refund_we_missed_is_reversed(uow: UnitOfWork) -> None:
    tg = telegram_id()
    user = (await register(uow, tg_id=tg)).user
    payload = payments.invoice_payload(TERMS, user_id=user.id, stars=STARS)
    charge = _charge(tg, payload)
    await payments.record_stars_payment(
        uow,
        TERMS,
        telegram_id=tg,
        charge_id=charge.external_id,
        payload=payload,
        currency="XTR",
        total_amount=STARS,
    )
    refunded = replace(charge, refunded=True)
    report = await _run(uow, [refunded])
    [healed] = [h for h in report.healed if h.external_id == charge.external_id]
    assert (healed.action, healed.kopecks) == ("reversed", STARS * TERMS.kopecks_per_star)
    assert _about(report, charge) == []
    assert (await billing.get_balance(uow, user.id)).balance == 0
    again = await _run(uow, [refunded])
    assert charge.external_id not in {h.external_id for h in again.healed}


async def test_a_charge_whose_payload_we_did_not_sign_is_only_reported(uow: UnitOfWork) -> None:
    tg = telegram_id()
    user = (await register(uow, tg_id=tg)).user
    forged = f"s1.{user.id}.{STARS}.nonce.AAAAAAAAAAAAAAAAAAAAAA"
    charge = _charge(tg, forged)
    report = await _run(uow, [charge])
    assert charge.external_id not in {h.external_id for h in report.healed}
    assert _about(report, charge) == ["missing_here"]
    assert "not healed" in report.summary()
    assert (await billing.get_balance(uow, user.id)).balance == 0
