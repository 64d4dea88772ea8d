from __future__ import annotations

import asyncio
import secrets

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.errors import InvalidInput
from core.services import billing
from core.services.billing import Charge, InsufficientFunds, ReservationClosed
from db.engine import UnitOfWorkFactory
from db.uow import UnitOfWork
from tests.factories import register


def key() -> str:
    return secrets.token_hex(8)


async def _user(uow: UnitOfWork) -> int:
    return (await register(uow)).user.id


async def test_a_new_user_has_a_zero_balance(uow: UnitOfWork) -> None:
    user_id = await _user(uow)
    balance = await billing.get_balance(uow, user_id)
    assert (balance.balance, balance.reserved, balance.available) == (0, 0, 0)


async def test_credit_then_debit_moves_the_balance_and_records_entries(uow: UnitOfWork) -> None:
    user_id = await _user(uow)
    async with uow.transaction():
        top_up = await billing.credit(
            uow, user_id=user_id, amount=10_000, category="topup", key=key()
        )
    async with uow.transaction():
        spent = await billing.debit(
            uow,
            user_id=user_id,
            amount=1_234,
            category="text",
            key=key(),
            charge=Charge(
                cost=1_000, markup_percent=30, input_tokens=500, output_tokens=80, model_id="gpt-x"
            ),
        )
    assert (top_up.amount, top_up.balance_after) == (10_000, 10_000)
    assert (spent.amount, spent.balance_after, spent.model_id) == (-1_234, 8_766, "gpt-x")
    assert (spent.input_tokens, spent.output_tokens) == (500, 80)
    assert (await billing.get_balance(uow, user_id)).balance == 8_766
    assert [e.amount for e in await billing.history(uow, user_id)] == [-1_234, 10_000]
    assert await billing.check_consistency(uow, user_id)


async def test_a_debit_beyond_the_balance_is_refused_and_changes_nothing(uow: UnitOfWork) -> None:
    user_id = await _user(uow)
    async with uow.transaction():
        await billing.credit(uow, user_id=user_id, amount=500, category="topup", key=key())
    with pytest.raises(InsufficientFunds) as raised:
        async with uow.transaction():
            await billing.debit(uow, user_id=user_id, amount=501, category="text", key=key())
    assert raised.value.params == {"needed": 501, "available": 500}
    assert (await billing.get_balance(uow, user_id)).balance == 500
    assert len(await billing.history(uow, user_id)) == 1


async def test_the_same_key_applies_once(uow: UnitOfWork) -> None:
    user_id = await _user(uow)
    k = key()
    async with uow.transaction():
        first = await billing.credit(uow, user_id=user_id, amount=700, category="topup", key=k)
    async with uow.transaction():
        again = await billing.credit(uow, user_id=user_id, amount=700, category="topup", key=k)
    assert first.applied and not again.applied
    assert again.id == first.id
    assert (await billing.get_balance(uow, user_id)).balance == 700
    d = key()
    async with uow.transaction():
        await billing.debit(uow, user_id=user_id, amount=100, category="text", key=d)
    async with uow.transaction():
        replay = await billing.debit(uow, user_id=user_id, amount=100, category="text", key=d)
    assert not replay.applied
    assert (await billing.get_balance(uow, user_id)).balance == 600


async def test_reserve_holds_money_and_settle_charges_the_actual_price(uow: UnitOfWork) -> None:
    user_id = await _user(uow)
    async with uow.transaction():
        await billing.credit(uow, user_id=user_id, amount=1_000, category="topup", key=key())
    async with uow.transaction():
        held = await billing.reserve(uow, user_id=user_id, amount=600, key=key(), model_id="m")
    balance = await billing.get_balance(uow, user_id)
    assert (balance.balance, balance.reserved, balance.available) == (1_000, 600, 400)
    with pytest.raises(InsufficientFunds):
        async with uow.transaction():
            await billing.reserve(uow, user_id=user_id, amount=401, key=key())
    async with uow.transaction():
        entry = await billing.settle(uow, reservation=held, amount=250, category="text", key=key())
    assert (entry.amount, entry.balance_after) == (-250, 750)
    balance = await billing.get_balance(uow, user_id)
    assert (balance.balance, balance.reserved) == (750, 0)


async def test_settle_above_what_the_user_can_pay_is_capped(uow: UnitOfWork) -> None:
    user_id = await _user(uow)
    async with uow.transaction():
        await billing.credit(uow, user_id=user_id, amount=1_000, category="topup", key=key())
    async with uow.transaction():
        held = await billing.reserve(uow, user_id=user_id, amount=300, key=key())
    async with uow.transaction():
        await billing.debit(uow, user_id=user_id, amount=500, category="image", key=key())
    # 500 left, 300 of it reserved: the request can cost at most 500.
    async with uow.transaction():
        entry = await billing.settle(uow, reservation=held, amount=900, category="text", key=key())
    assert (entry.amount, entry.balance_after) == (-500, 0)
    assert await billing.check_consistency(uow, user_id)


async def test_release_returns_the_reserve_and_a_closed_reserve_cannot_be_settled(
    uow: UnitOfWork,
) -> None:
    user_id = await _user(uow)
    async with uow.transaction():
        await billing.credit(uow, user_id=user_id, amount=1_000, category="topup", key=key())
    async with uow.transaction():
        held = await billing.reserve(uow, user_id=user_id, amount=400, key=key())
    assert await billing.release(uow, reservation_id=held.id)
    assert not await billing.release(uow, reservation_id=held.id)
    assert (await billing.get_balance(uow, user_id)).available == 1_000
    with pytest.raises(ReservationClosed):
        async with uow.transaction():
            await billing.settle(uow, reservation=held, amount=10, category="text", key=key())


async def test_settling_twice_with_the_same_key_charges_once(uow: UnitOfWork) -> None:
    user_id = await _user(uow)
    async with uow.transaction():
        await billing.credit(uow, user_id=user_id, amount=1_000, category="topup", key=key())
    async with uow.transaction():
        held = await billing.reserve(uow, user_id=user_id, amount=400, key=key())
    k = key()
    async with uow.transaction():
        first = await billing.settle(uow, reservation=held, amount=100, category="text", key=k)
    async with uow.transaction():
        again = await billing.settle(uow, reservation=held, amount=100, category="text", key=k)
    assert first.applied and not again.applied
    assert (await billing.get_balance(uow, user_id)).balance == 900


async def test_a_free_request_releases_its_reserve_without_an_entry(uow: UnitOfWork) -> None:
    user_id = await _user(uow)
    async with uow.transaction():
        await billing.credit(uow, user_id=user_id, amount=100, category="topup", key=key())
    async with uow.transaction():
        held = await billing.reserve(uow, user_id=user_id, amount=50, key=key())
    async with uow.transaction():
        await billing.settle(uow, reservation=held, amount=0, category="text", key=key())
    assert (await billing.get_balance(uow, user_id)).reserved == 0
    assert len(await billing.history(uow, user_id)) == 1


async def test_nonsense_amounts_and_kinds_are_refused(uow: UnitOfWork) -> None:
    user_id = await _user(uow)
    with pytest.raises(InvalidInput):
        async with uow.transaction():
            await billing.credit(uow, user_id=user_id, amount=0, category="topup", key=key())
    with pytest.raises(InvalidInput):
        async with uow.transaction():
            await billing.debit(uow, user_id=user_id, amount=-5, category="text", key=key())
    with pytest.raises(InvalidInput):
        async with uow.transaction():
            await billing.credit(uow, user_id=user_id, amount=5, category="lottery", key=key())


@pytest.mark.parametrize(
    ("cost", "markup", "discount", "expected"),
    [
        (1_000, 0, 0, 1_000),
        (1_000, 30, 0, 1_300),
        (1_000, 30, 10, 1_170),
        (1, 50, 0, 2),  # 1.5 kopecks rounds up
        (333, 20, 15, 340),  # 339.66 rounds up
        (0, 100, 0, 0),
        (1_000, 0, 100, 0),
    ],
)
def test_price_applies_markup_then_discount_and_rounds_up(
    cost: int, markup: int, discount: int, expected: int
) -> None:
    assert billing.price(cost, markup_percent=markup, discount_percent=discount) == expected


def test_bonus_on_a_top_up_rounds_down() -> None:
    assert billing.with_bonus(10_000, 15) == 11_500
    assert billing.with_bonus(999, 10) == 1_098


async def test_sixty_four_concurrent_debits_never_overspend(engine: AsyncEngine) -> None:
    factory = UnitOfWorkFactory.for_engine(engine)
    async with factory() as uow:
        user_id = await _user(uow)
        async with uow.transaction():
            await billing.credit(uow, user_id=user_id, amount=37 * 100, category="topup", key=key())

    async def hammer(worker: int) -> int:
        won = 0
        for i in range(5):
            async with factory() as uow:
                try:
                    async with uow.transaction():
                        await billing.debit(
                            uow,
                            user_id=user_id,
                            amount=100,
                            category="text",
                            key=f"{worker}-{i}-{key()}",
                        )
                    won += 1
                except InsufficientFunds:
                    pass
        return won

    results = await asyncio.gather(*(hammer(w) for w in range(64)))
    assert sum(results) == 37
    async with factory() as uow:
        balance = await billing.get_balance(uow, user_id)
        assert balance.balance == 0
        assert await billing.check_consistency(uow, user_id)


async def test_the_same_credit_delivered_ten_times_at_once_counts_once(
    engine: AsyncEngine,
) -> None:
    factory = UnitOfWorkFactory.for_engine(engine)
    async with factory() as uow:
        user_id = await _user(uow)
    k = key()

    async def deliver() -> bool:
        async with factory() as uow:
            async with uow.transaction():
                entry = await billing.credit(
                    uow, user_id=user_id, amount=5_000, category="topup", key=k
                )
            return entry.applied

    applied = await asyncio.gather(*(deliver() for _ in range(10)))
    assert applied.count(True) == 1
    async with factory() as uow:
        assert (await billing.get_balance(uow, user_id)).balance == 5_000


async def test_holds_left_by_a_stopped_process_are_released_after_an_hour(
    uow: UnitOfWork,
) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from db.models import Reservation

    user_id = await _user(uow)
    async with uow.transaction():
        await billing.credit(uow, user_id=user_id, amount=1_000, category="topup", key=key())
    async with uow.transaction():
        stale = await billing.reserve(uow, user_id=user_id, amount=300, key=key())
    async with uow.transaction():
        fresh = await billing.reserve(uow, user_id=user_id, amount=200, key=key())
    now = datetime.now(UTC)
    await uow.session.execute(
        update(Reservation).filter_by(id=stale.id).values(created_at=now - timedelta(hours=2))
    )
    await uow.commit()
    assert await billing.release_stale_holds(uow, now=now) >= 1
    balance = await billing.get_balance(uow, user_id)
    assert (balance.balance, balance.reserved) == (1_000, 200)
    with pytest.raises(billing.ReservationClosed):
        async with uow.transaction():
            await billing.settle(uow, reservation=stale, amount=10, category="text", key=key())
    async with uow.transaction():
        await billing.settle(uow, reservation=fresh, amount=50, category="text", key=key())
