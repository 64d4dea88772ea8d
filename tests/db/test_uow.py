"""The unit of work's transaction blocks against real Postgres: a write block commits all of it
or nothing, and a read block leaves no connection idle in a transaction, however it is left."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

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
