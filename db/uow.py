from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from types import TracebackType

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from db.repositories.chats import ChatsRepository
from db.repositories.ledger import LedgerRepository
from db.repositories.users import UsersRepository


class UnitOfWork:
    """A database session with its repositories. The use case owns its transactions; nobody
    else begins, commits or ends one.

    - A use case writes inside ``async with uow.transaction():``: everything in the block
      commits together when the block ends, or rolls back when it raises (a refusal raised in
      the block leaves nothing behind). What the session read before the block joins it.
    - A use case reads inside ``async with uow.reading():``: the read transaction ends with the
      block, however the block is left, so no connection idles in a transaction during the
      network calls that follow (Telegram, providers, password hashing). Values needed
      afterwards are taken out inside the block; the decision and any refusal come after it.
    - No transaction stays open across a network call: the call goes between blocks.
    - Building blocks (repositories, billing steps, helpers documented as not committing) never
      commit or end a transaction: they run in the caller's block.
    - Transport code (bot handlers, web routes, jobs) calls use cases and does not manage
      transactions; leaving ``async with uow`` discards whatever was not committed.

    ``commit()`` ends a use case that wrote without a block; ``rollback()`` discards a failed
    write (a unique conflict) before the use case goes on."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.users = UsersRepository(session)
        self.ledger = LedgerRepository(session)
        self.chats = ChatsRepository(session)

    async def __aenter__(self) -> UnitOfWork:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Whatever was not committed by the use case is discarded.
        await self.session.rollback()
        await self.session.close()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[UnitOfWork]:
        """One transaction for the block: everything in it (ORM statements and the ledger's
        direct ones alike) commits together when the block ends, or rolls back when it raises.
        What the session had read before joins it."""
        if not self.session.in_transaction():
            # Begun now, so the ledger's direct statements join it from the first one.
            await self.session.execute(text("SELECT 1"))
        try:
            yield self
        except BaseException:
            await self.session.rollback()
            raise
        await self.session.commit()

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[UnitOfWork]:
        """Reads for the block; their transaction ends with it."""
        try:
            yield self
        finally:
            await self.session.rollback()

    async def commit(self) -> None:
        await self.session.commit()

    async def rollback(self) -> None:
        await self.session.rollback()
