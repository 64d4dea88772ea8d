from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.services import billing, payments, promo
from core.services.promo import PromoAlreadyUsed, PromoExpired, PromoUnknown
from db.engine import UnitOfWorkFactory
from db.uow import UnitOfWork
from tests.core.test_payments import TERMS
from tests.factories import register

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


def code() -> str:
    return "P" + secrets.token_hex(4).upper()


async def test_an_amount_code_credits_a_bonus_once_per_user(uow: UnitOfWork) -> None:
    user = (await register(uow)).user
    c = code()
    await promo.create_code(uow, code=c, kind="amount", value=5_000)
    result = await promo.redeem(uow, user_id=user.id, code=c.lower(), now=NOW)
    assert (result.kind, result.value) == ("amount", 5_000)
    [entry] = await billing.history(uow, user.id)
    assert (entry.category, entry.amount) == ("bonus", 5_000)
    with pytest.raises(PromoAlreadyUsed):
        await promo.redeem(uow, user_id=user.id, code=c, now=NOW)


async def test_unknown_expired_and_used_up_codes_are_refused(uow: UnitOfWork) -> None:
    user = (await register(uow)).user
    other = (await register(uow)).user
    with pytest.raises(PromoUnknown):
        await promo.redeem(uow, user_id=user.id, code="NOPE-NOPE", now=NOW)
    old = code()
    await promo.create_code(
        uow, code=old, kind="amount", value=100, expires_at=NOW - timedelta(seconds=1)
    )
    with pytest.raises(PromoExpired):
        await promo.redeem(uow, user_id=user.id, code=old, now=NOW)
    single = code()
    await promo.create_code(uow, code=single, kind="amount", value=100, max_redemptions=1)
    await promo.redeem(uow, user_id=user.id, code=single, now=NOW)
    with pytest.raises(PromoExpired):
        await promo.redeem(uow, user_id=other.id, code=single, now=NOW)


async def test_a_percent_code_adds_a_bonus_to_the_next_top_up_only(uow: UnitOfWork) -> None:
    parent = (await register(uow)).user
    user = (await register(uow, payload=f"ref_{parent.referral_code}")).user
    c = code()
    await promo.create_code(uow, code=c, kind="percent", value=20)
    await promo.redeem(uow, user_id=user.id, code=c, now=NOW)
    assert (await billing.get_balance(uow, user.id)).balance == 0

    async def pay(charge: str) -> payments.TopUp:
        payload = payments.invoice_payload(TERMS, user_id=user.id, stars=100)
        return await payments.record_stars_payment(
            uow,
            TERMS,
            telegram_id=user.telegram_id or 0,
            charge_id=charge,
            payload=payload,
            currency="XTR",
            total_amount=100,
        )

    first = await pay(secrets.token_hex(6))
    assert first.credited == 13_000 + 2_600
    second = await pay(secrets.token_hex(6))
    assert second.credited == 13_000
    # The inviter earns on what was paid, never on the bonus.
    assert (await billing.get_balance(uow, parent.id)).balance == 2 * 1_300
    assert await billing.check_consistency(uow, user.id)


async def test_concurrent_redemptions_never_exceed_the_code_limit(engine: AsyncEngine) -> None:
    factory = UnitOfWorkFactory.for_engine(engine)
    c = code()
    async with factory() as uow:
        await promo.create_code(uow, code=c, kind="amount", value=100, max_redemptions=3)
        users = [(await register(uow)).user.id for _ in range(8)]

    async def attempt(user_id: int) -> bool:
        async with factory() as uow:
            try:
                await promo.redeem(uow, user_id=user_id, code=c, now=NOW)
            except PromoExpired:
                return False
            return True

    results = await asyncio.gather(*(attempt(u) for u in users))
    assert results.count(True) == 3
