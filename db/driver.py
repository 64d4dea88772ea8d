"""The asyncpg connection under a session, for the hot path's hand-written statements.

SQLAlchemy's asyncpg adapter begins a transaction lazily, on the first statement it runs
itself; a statement sent straight on the asyncpg connection before that runs outside any
transaction and commits on its own. Inside a unit of work's ``transaction()`` block that would
break the block's promise (everything commits together), so there the adapter's transaction is
begun first: one ``BEGIN``, where a dummy statement through the ORM would cost a second round
trip on every block."""

from __future__ import annotations

from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

# Set in ``session.info`` while a ``UnitOfWork.transaction()`` block runs.
IN_BLOCK = "netroom.in_transaction_block"


async def driver_of(session: AsyncSession) -> asyncpg.Connection:
    """The session's asyncpg connection: in a transaction block, in the block's transaction;
    otherwise each statement on it commits on its own (unless the session's reads had begun
    one, which the statement then joins)."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    if session.info.get(IN_BLOCK):
        adapted: Any = raw.dbapi_connection
        # The adapter's own lazy begin (SQLAlchemy 2.0's AsyncAdapt_asyncpg_connection); the
        # test of the unit of work fails if a new version changes it.
        if not adapted._started:
            await adapted._start_transaction()
    driver = raw.driver_connection
    assert isinstance(driver, asyncpg.Connection)
    return driver
