from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.services import billing, payments
from core.services.payments import PaymentRefused, PaymentTerms
from db.engine import UnitOfWorkFactory
from db.uow import UnitOfWork
from tests.factories import register

TERMS = PaymentTerms.build(
    kopecks_per_star=130,
    star_packages=[50, 100],
    referral_level1_percent=10,
    referral_level2_percent=3,
    signing_secret="test-secret",
)
NOW = datetime(2026, 11, 24, tzinfo=UTC)


async def _pay(
    uow: UnitOfWork, telegram_id: int, user_id: int, stars: int = 100, charge: str | None = None
):  # type: ignore[no-untyped-def]
    payload = payments.invoice_payload(TERMS, user_id=user_id, stars=stars)
    return await payments.record_stars_payment(
        uow,
        TERMS,
        telegram_id=telegram_id,
        charge_id=charge or secrets.token_hex(8),
        payload=payload,
        currency="XTR",
        total_amount=stars,
    )


def test_offers_price_each_package_at_the_star_rate() -> None:
    offers = payments.star_offers(TERMS)
    assert [(o.stars, o.kopecks) for o in offers] == [(50, 6_500), (100, 13_000)]


def test_a_payload_is_short_and_its_tampering_is_detected() -> None:
    payload = payments.invoice_payload(TERMS, user_id=123456789012, stars=100)
    assert len(payload.encode()) <= 128
    assert payments.parse_payload(TERMS, payload) == (123456789012, 100)
    version, user, stars, nonce, sig = payload.split(".")
    for forged in (
        f"{version}.{user}.{int(stars) * 10}.{nonce}.{sig}",
        f"{version}.999.{stars}.{nonce}.{sig}",
        "garbage",
        "s1.1.2.3.4.5",
    ):
        with pytest.raises(PaymentRefused):
            payments.parse_payload(TERMS, forged)
    other = PaymentTerms.build(
        kopecks_per_star=130,
        star_packages=[100],
        referral_level1_percent=0,
        referral_level2_percent=0,
        signing_secret="another deployment",
    )
    with pytest.raises(PaymentRefused):
        payments.parse_payload(other, payload)


async def test_pre_checkout_accepts_the_right_payer_and_amount_only(uow: UnitOfWork) -> None:
    user = (await register(uow)).user
    stranger = (await register(uow)).user
    payload = payments.invoice_payload(TERMS, user_id=user.id, stars=50)
    tg = user.telegram_id or 0
    await payments.check_stars_checkout(
        uow, TERMS, telegram_id=tg, payload=payload, currency="XTR", total_amount=50
    )
    with pytest.raises(PaymentRefused):
        await payments.check_stars_checkout(
            uow, TERMS, telegram_id=tg, payload=payload, currency="XTR", total_amount=49
        )
    with pytest.raises(PaymentRefused):
        await payments.check_stars_checkout(
            uow,
            TERMS,
            telegram_id=stranger.telegram_id or 0,
            payload=payload,
            currency="XTR",
            total_amount=50,
        )


async def test_a_stars_payment_credits_the_balance_and_pays_two_levels_of_inviters(
    uow: UnitOfWork,
) -> None:
    grandparent = (await register(uow)).user
    parent = (await register(uow, payload=f"ref_{grandparent.referral_code}")).user
    child = (await register(uow, payload=f"ref_{parent.referral_code}")).user
    top_up = await _pay(uow, child.telegram_id or 0, child.id, stars=100)
    assert top_up.applied
    assert (top_up.credited, top_up.balance_after) == (13_000, 13_000)
    assert (await billing.get_balance(uow, parent.id)).balance == 1_300
    assert (await billing.get_balance(uow, grandparent.id)).balance == 390
    assert await payments.referral_earnings(uow, parent.id) == 1_300
    for user_id in (child.id, parent.id, grandparent.id):
        assert await billing.check_consistency(uow, user_id)


async def test_the_same_charge_credits_once(uow: UnitOfWork) -> None:
    user = (await register(uow)).user
    first = await _pay(uow, user.telegram_id or 0, user.id, charge="charge-1")
    again = await _pay(uow, user.telegram_id or 0, user.id, charge="charge-1")
    assert first.applied and not again.applied
    assert again.payment_id == first.payment_id
    assert (await billing.get_balance(uow, user.id)).balance == 13_000


async def test_a_refund_takes_back_the_credit_and_the_referral_earnings(uow: UnitOfWork) -> None:
    parent = (await register(uow)).user
    child = (await register(uow, payload=f"ref_{parent.referral_code}")).user
    await _pay(uow, child.telegram_id or 0, child.id, charge="to-refund")
    refund = await payments.refund_payment(uow, provider="stars", external_id="to-refund", now=NOW)
    assert refund.taken_back == 13_000
    assert refund.reversed_earnings == {parent.id: 1_300}
    assert (await billing.get_balance(uow, child.id)).balance == 0
    assert (await billing.get_balance(uow, parent.id)).balance == 0
    # Recorded again (Telegram's notice and the operator's command race): nothing more is taken,
    # and the answer is what the one refund took.
    again = await payments.refund_payment(uow, provider="stars", external_id="to-refund", now=NOW)
    assert again.recorded_before and not refund.recorded_before
    assert (again.taken_back, again.reversed_earnings) == (13_000, {parent.id: 1_300})
    assert (await billing.get_balance(uow, child.id)).balance == 0
    assert await billing.check_consistency(uow, child.id)


async def test_a_refund_never_takes_back_money_already_spent(uow: UnitOfWork) -> None:
    user = (await register(uow)).user
    await _pay(uow, user.telegram_id or 0, user.id, charge="spent")
    async with uow.transaction():
        await billing.debit(uow, user_id=user.id, amount=10_000, category="text", key="spend")
    refund = await payments.refund_payment(uow, provider="stars", external_id="spent", now=NOW)
    assert refund.taken_back == 3_000
    balance = await billing.get_balance(uow, user.id)
    assert balance.balance == 0
    assert await billing.check_consistency(uow, user.id)


async def test_ten_concurrent_deliveries_of_one_payment_credit_once(engine: AsyncEngine) -> None:
    factory = UnitOfWorkFactory.for_engine(engine)
    async with factory() as uow:
        user = (await register(uow)).user
    payload = payments.invoice_payload(TERMS, user_id=user.id, stars=50)

    async def deliver() -> bool:
        async with factory() as uow:
            result = await payments.record_stars_payment(
                uow,
                TERMS,
                telegram_id=user.telegram_id or 0,
                charge_id="concurrent-charge-" + str(user.id),
                payload=payload,
                currency="XTR",
                total_amount=50,
            )
            return result.applied

    results = await asyncio.gather(*(deliver() for _ in range(10)))
    assert results.count(True) == 1
    async with factory() as uow:
        assert (await billing.get_balance(uow, user.id)).balance == 6_500
