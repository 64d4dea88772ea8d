"""Settlements kept in Redis while Postgres is away, applied once it is back; holds of processes
that are gone are released by the sweeper, never one whose settlement is kept."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from core import owners
from core.services import billing, settlement
from db.engine import UnitOfWorkFactory, create_engine
from db.models import Reservation
from tests.factories import register


def key() -> str:
    return secrets.token_hex(8)


@pytest.fixture
async def clean_redis(redis: Redis) -> AsyncIterator[Redis]:
    await redis.delete(settlement.PENDING)
    yield redis
    await redis.delete(settlement.PENDING)


@pytest.fixture
async def unreachable_factory() -> AsyncIterator[UnitOfWorkFactory]:
    """A database nobody listens for: every connection is refused."""
    engine = create_engine("postgresql://postgres@127.0.0.1:9/netroom", pool_size=1)
    yield UnitOfWorkFactory.for_engine(engine)
    await engine.dispose()


async def _funded_user(factory: UnitOfWorkFactory, amount: int = 1_000) -> int:
    async with factory() as uow:
        user_id = (await register(uow)).user.id
        await billing.credit(uow, user_id=user_id, amount=amount, category="topup", key=key())
    return user_id


async def _state(factory: UnitOfWorkFactory, user_id: int) -> tuple[int, int, bool]:
    async with factory() as uow:
        balance = await billing.get_balance(uow, user_id)
        return balance.balance, balance.reserved, await billing.check_consistency(uow, user_id)


async def test_settle_or_keep_settles_at_once_when_the_database_answers(
    engine: AsyncEngine, clean_redis: Redis
) -> None:
    factory = UnitOfWorkFactory.for_engine(engine)
    user_id = await _funded_user(factory)
    async with factory() as uow:
        hold = await billing.reserve(uow, user_id=user_id, amount=300, key=key(), owner="p:1:a")
    entry = await settlement.settle_or_keep(
        factory, clean_redis, reservation=hold, amount=120, category="text", key=key()
    )
    assert entry is not None and entry.amount == -120
    assert await _state(factory, user_id) == (880, 0, True)
    assert await settlement.pending_ids(clean_redis) == set()


async def test_a_settlement_made_while_the_database_is_away_is_kept_then_applied_once(
    engine: AsyncEngine, clean_redis: Redis, unreachable_factory: UnitOfWorkFactory
) -> None:
    factory = UnitOfWorkFactory.for_engine(engine)
    user_id = await _funded_user(factory)
    async with factory() as uow:
        hold = await billing.reserve(uow, user_id=user_id, amount=300, key=key(), owner="gone:1:a")
    k = key()
    kept = await settlement.settle_or_keep(
        unreachable_factory,
        clean_redis,
        reservation=hold,
        amount=120,
        category="text",
        key=k,
        charge=billing.Charge(output_tokens=40, model_id="m"),
    )
    assert kept is None
    assert await settlement.pending_ids(clean_redis) == {hold.id}
    # The owner is gone, yet its hold waits for the kept settlement instead of being released.
    swept = await owners.sweep(factory, clean_redis, now=datetime.now(UTC))
    assert swept.settlements_applied == 1
    assert await _state(factory, user_id) == (880, 0, True)
    assert await settlement.pending_ids(clean_redis) == set()
    async with factory() as uow:
        entry = await uow.ledger.entry_by_key(k)
        assert entry is not None and entry.output_tokens == 40
    # A second apply (the same settlement kept twice) charges nothing more.
    await clean_redis.hset(  # type: ignore[misc]
        settlement.PENDING,
        str(hold.id),
        settlement._encode(reservation=hold, amount=120, category="text", key=k, charge=None),
    )
    assert await settlement.apply_pending(factory, clean_redis) == 1
    assert await _state(factory, user_id) == (880, 0, True)


async def test_a_kept_settlement_whose_hold_was_released_is_charged_capped(
    engine: AsyncEngine, clean_redis: Redis, unreachable_factory: UnitOfWorkFactory
) -> None:
    factory = UnitOfWorkFactory.for_engine(engine)
    user_id = await _funded_user(factory, amount=100)
    async with factory() as uow:
        hold = await billing.reserve(uow, user_id=user_id, amount=100, key=key())
        assert await billing.release(uow, reservation_id=hold.id)
    await settlement.settle_or_keep(
        unreachable_factory, clean_redis, reservation=hold, amount=150, category="text", key=key()
    )
    assert await settlement.apply_pending(factory, clean_redis) == 1
    # Never below zero: the user had 100, the reply cost 150.
    assert await _state(factory, user_id) == (0, 0, True)


async def test_the_sweeper_releases_holds_of_gone_owners_and_old_ownerless_ones_only(
    engine: AsyncEngine, clean_redis: Redis
) -> None:
    factory = UnitOfWorkFactory.for_engine(engine)
    user_id = await _funded_user(factory)
    living, gone = owners.new_owner_id(), owners.new_owner_id()
    await owners.beat(clean_redis, living, timedelta(seconds=30))
    async with factory() as uow:
        mine = await billing.reserve(uow, user_id=user_id, amount=100, key=key(), owner=living)
        orphan = await billing.reserve(uow, user_id=user_id, amount=200, key=key(), owner=gone)
        young = await billing.reserve(uow, user_id=user_id, amount=50, key=key())
        old = await billing.reserve(uow, user_id=user_id, amount=70, key=key())
        video = await billing.reserve(
            uow, user_id=user_id, amount=30, key=key(), owner=owners.JOB_OWNER + "video"
        )
        await uow.session.execute(
            update(Reservation)
            .where(Reservation.id.in_([old.id, video.id]))
            .values(created_at=datetime.now(UTC) - timedelta(minutes=3))
        )
        await uow.commit()
    swept = await owners.sweep(factory, clean_redis, now=datetime.now(UTC))
    assert swept.holds_released >= 2
    async with factory() as uow:
        status = {
            r: (await uow.ledger.reservation(r)).status  # type: ignore[union-attr]
            for r in (mine.id, orphan.id, young.id, old.id, video.id)
        }
    # A video being made is its background job's to settle, however long it takes.
    assert status == {
        mine.id: "held",
        orphan.id: "released",
        young.id: "held",
        old.id: "released",
        video.id: "held",
    }
    assert await _state(factory, user_id) == (1_000, 180, True)
    # A clean stop leaves nothing held by the process that stops.
    await owners.step_down(factory, clean_redis, living, ownerless_after=timedelta(minutes=2))
    assert await _state(factory, user_id) == (1_000, 80, True)
    await clean_redis.delete(owners.heartbeat_key(living))


async def test_the_heartbeat_expires_on_its_own(clean_redis: Redis) -> None:
    owner = owners.new_owner_id()
    await owners.beat(clean_redis, owner, timedelta(milliseconds=200))
    assert await owners.alive(clean_redis, [owner]) == {owner}
    await asyncio.sleep(0.4)
    assert await owners.alive(clean_redis, [owner]) == set()


async def test_a_settlement_survives_postgres_stopping_under_an_open_pool(
    clean_redis: Redis,
) -> None:
    """A real stop (pg_ctl, on a cluster of the test's own): the pool's connections die under
    it, the settlement is kept, and applied once Postgres is back."""
    from bench.faultkit import ScratchPostgres
    from db.migrate import upgrade

    pg = ScratchPostgres()
    try:
        url = await asyncio.to_thread(pg.init)
        await asyncio.to_thread(upgrade, url)
        engine = create_engine(url, pool_size=2, max_overflow=0)
        factory = UnitOfWorkFactory.for_engine(engine)
        try:
            user_id = await _funded_user(factory)
            async with factory() as uow:
                hold = await billing.reserve(uow, user_id=user_id, amount=300, key=key())
            await asyncio.to_thread(pg.stop)
            kept = await settlement.settle_or_keep(
                factory, clean_redis, reservation=hold, amount=99, category="text", key=key()
            )
            assert kept is None
            # Still away: nothing is applied, nothing is dropped.
            assert await settlement.apply_pending(factory, clean_redis) == 0
            assert await settlement.pending_ids(clean_redis) == {hold.id}
            await asyncio.to_thread(pg.start)
            assert await settlement.apply_pending(factory, clean_redis) == 1
            assert await _state(factory, user_id) == (901, 0, True)
        finally:
            await engine.dispose()
    finally:
        await asyncio.to_thread(pg.destroy)
