from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

from db.uow import UnitOfWork


def async_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs (as operators write them) and use asyncpg."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def create_engine(url: str, *, pool_size: int = 10, max_overflow: int = 10) -> AsyncEngine:
    """The pool hands out only connections that are still open. A connection the server
    closed (a restart, a failover, an administrator) is known closed as soon as the event loop
    read its end, so it is checked without a round trip at each checkout, where the stock
    pre-ping costs three (BEGIN, a ping, ROLLBACK) before every transaction. A connection that
    dies unnoticed fails its first statement, and the pool then drops every connection opened
    before that failure."""
    engine = create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
    )
    event.listen(engine.sync_engine, "checkout", _still_open)
    return engine


def _still_open(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
    driver = record.driver_connection
    if driver is None or driver.is_closed():
        # The pool replaces it with a new connection.
        raise DisconnectionError("the server closed this connection")


async def warm_pool(engine: AsyncEngine, connections: int, *, within: float) -> int:
    """Open up to ``connections`` of the pool's connections now, at start-up, so the first
    burst of requests does not also pay for connecting (TCP, authentication, the driver's type
    set-up: several round trips each). Gives up on what is not open ``within`` seconds.
    How many were opened; the pool keeps them."""
    tasks = [asyncio.create_task(engine.connect().start()) for _ in range(connections)]
    _done, pending = await asyncio.wait(tasks, timeout=within)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    opened = [
        task.result()
        for task in tasks
        if task.done() and not task.cancelled() and task.exception() is None
    ]
    for connection in opened:
        await connection.close()
    return len(opened)


class UnitOfWorkFactory:
    """Opens one unit of work per inbound event (update, request, job)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    @classmethod
    def for_engine(cls, engine: AsyncEngine) -> UnitOfWorkFactory:
        return cls(async_sessionmaker(engine, expire_on_commit=False))

    def __call__(self) -> UnitOfWork:
        return UnitOfWork(self._sessionmaker())
