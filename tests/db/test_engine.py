"""The pool hands out open connections only: after the server closed the pooled connections
(a restart, an administrator), the next unit of work runs on a new one and does not fail. At
start-up the pool's connections are opened ahead of the first requests."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
from sqlalchemy import text

from db.engine import create_engine, warm_pool


async def test_connections_the_server_closed_are_replaced_without_an_error(
    database_url: str,
) -> None:
    engine = create_engine(database_url, pool_size=2, max_overflow=0)
    try:
        async with engine.connect() as connection:
            first = await connection.scalar(text("SELECT pg_backend_pid()"))
        admin = await asyncpg.connect(database_url)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", first)
        finally:
            await admin.close()
        # The event loop reads the connection's end.
        await asyncio.sleep(0.2)
        async with engine.connect() as connection:
            second = await connection.scalar(text("SELECT pg_backend_pid()"))
        assert second != first
    finally:
        await engine.dispose()


async def _backends(database_url: str) -> int:
    admin = await asyncpg.connect(database_url)
    try:
        return int(
            await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    finally:
        await admin.close()


async def test_a_warmed_pool_holds_its_connections_open_before_the_first_request(
    database_url: str,
) -> None:
    engine = create_engine(database_url, pool_size=4, max_overflow=0)
    try:
        before = await _backends(database_url)
        assert await warm_pool(engine, 4, within=10) == 4
        assert engine.pool.checkedin() == 4  # type: ignore[attr-defined]
        assert await _backends(database_url) == before + 4
        # Four requests at once find their connections open: none is made.
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(4):
                connection = await stack.enter_async_context(engine.connect())
                await connection.scalar(text("SELECT 1"))
            assert await _backends(database_url) == before + 4
    finally:
        await engine.dispose()


async def test_warming_a_pool_whose_database_does_not_answer_gives_up_in_time() -> None:
    # Nothing listens on port 9 of this machine: every connection is refused.
    engine = create_engine("postgresql://postgres@127.0.0.1:9/none", pool_size=3, max_overflow=0)
    try:
        started = asyncio.get_running_loop().time()
        assert await warm_pool(engine, 3, within=5) == 0
        assert asyncio.get_running_loop().time() - started < 5.5
    finally:
        await engine.dispose()
