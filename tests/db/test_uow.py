"""The unit of work's transaction blocks against real Postgres: a write block commits all of it
or nothing, and a read block leaves no connection idle in a transaction, however it is left."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from db.driver import driver_of
from db.engine import UnitOfWorkFactory
from db.models import User
from db.uow import UnitOfWork
from tests.factories import register


class Refused(Exception):
    pass


async def _state(engine: AsyncEngine, pid: int) -> str | None:
    """What Postgres says the backend ``pid`` is doing, seen from another connection."""
    async with engine.connect() as conn:
        return await conn.scalar(
            text("SELECT state FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
        )


async def _pid(uow: UnitOfWork) -> int:
    return int(await uow.session.scalar(text("SELECT pg_backend_pid()")) or 0)


async def test_a_write_block_commits_all_of_it_or_nothing(engine: AsyncEngine) -> None:
    factory = UnitOfWorkFactory.for_engine(engine)
    async with factory() as uow:
        user_id = (await register(uow)).user.id
    named = update(User).where(User.id == user_id)
    seen = select(User.profile_name, User.language).where(User.id == user_id)
    async with factory() as uow:
        with pytest.raises(Refused):
            async with uow.transaction():
                await uow.session.execute(named.values(profile_name="refused", language="ru"))
                raise Refused
    async with factory() as uow, uow.reading():
        assert tuple((await uow.session.execute(seen)).one()) == ("Test", "en")
    async with factory() as uow, uow.transaction():
        await uow.session.execute(named.values(profile_name="kept"))
        await uow.session.execute(named.values(language="ru"))
    async with factory() as uow, uow.reading():
        assert tuple((await uow.session.execute(seen)).one()) == ("kept", "ru")


async def test_a_read_block_leaves_no_transaction_open(engine: AsyncEngine) -> None:
    factory = UnitOfWorkFactory.for_engine(engine)
    async with factory() as uow:
        async with uow.reading():
            pid = await _pid(uow)
            assert await _state(engine, pid) == "idle in transaction"
        # What follows a read (a Telegram or provider call) holds no transaction.
        assert await _state(engine, pid) == "idle"
        with pytest.raises(Refused):
            async with uow.reading():
                pid = await _pid(uow)
                raise Refused
        assert await _state(engine, pid) == "idle"
        async with uow.transaction():
            pid = await _pid(uow)
        assert await _state(engine, pid) == "idle"


async def test_the_repositories_direct_statements_join_the_block_from_the_first(
    engine: AsyncEngine,
) -> None:
    """A block whose first statements go straight to the driver (the hot path's hand-written
    ones) is still one transaction: a refusal after them leaves nothing."""
    factory = UnitOfWorkFactory.for_engine(engine)
    async with factory() as uow:
        user_id = (await register(uow)).user.id
    seen = select(User.last_activity_at).where(User.id == user_id)
    async with factory() as uow:
        before = await uow.session.scalar(seen)
        await uow.rollback()
    later = datetime(2030, 1, 1, tzinfo=UTC)
    async with factory() as uow:
        with pytest.raises(Refused):
            async with uow.transaction():
                await uow.users.touch_activity(user_id, later)
                pid = int(await uow.session.scalar(text("SELECT pg_backend_pid()")) or 0)
                assert await _state(engine, pid) == "idle in transaction"
                raise Refused
    async with factory() as uow, uow.reading():
        assert await uow.session.scalar(seen) == before
    async with factory() as uow, uow.transaction():
        await uow.users.touch_activity(user_id, later)
    async with factory() as uow, uow.reading():
        assert await uow.session.scalar(seen) == later


async def test_a_single_statement_commits_by_itself_without_a_transaction(
    engine: AsyncEngine,
) -> None:
    factory = UnitOfWorkFactory.for_engine(engine)
    async with factory() as uow:
        user_id = (await register(uow)).user.id
        await uow.rollback()
    seen = select(User.last_activity_at).where(User.id == user_id)
    later = datetime(2030, 1, 1, tzinfo=UTC)
    async with factory() as uow:
        async with uow.statement():
            await uow.users.touch_activity(user_id, later)
            driver = await driver_of(uow.session)
            pid = int(await driver.fetchval("SELECT pg_backend_pid()"))
            # Applied and committed already: nothing is open around it.
            assert await _state(engine, pid) == "idle"
        async with factory() as other, other.reading():
            assert await other.session.scalar(seen) == later
