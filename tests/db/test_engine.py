"""The pool hands out open connections only: after the server closed the pooled connections
(a restart, an administrator), the next unit of work runs on a new one and does not fail."""

from __future__ import annotations

import asyncio

import asyncpg
from sqlalchemy import text

from db.engine import create_engine


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
