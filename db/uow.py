from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncSession

from db.driver import IN_BLOCK
from db.repositories.chats import ChatsRepository
from db.repositories.ledger import LedgerRepository
from db.repositories.users import UsersRepository


class UnitOfWork:
    """A database session with its repositories. The use case owns its transactions; nobody
    else begins, commits or ends one.

    - A use case writes inside ``async with uow.transaction():``: everything in the block
      commits together when the block ends, or rolls back when it raises (a refusal raised in
      the block leaves nothing behind). What the session read before the block joins it.
    - A use case whose write is one statement of the repositories' own (settling a hold,
      storing a reply) may run it in ``async with uow.statement():``, which commits it without
      a transaction around it: one round trip instead of three.
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
        """One transaction for the block: everything in it (ORM statements and the
        repositories' direct ones alike, see ``db.driver``) commits together when the block
        ends, or rolls back when it raises. What the session had read before joins it. The
        transaction begins with the block's first statement."""
        info = self.session.info
        outer = info.get(IN_BLOCK, False)
        info[IN_BLOCK] = True
        try:
            yield self
        except BaseException:
            info[IN_BLOCK] = outer
            await self.session.rollback()
            raise
        info[IN_BLOCK] = outer
        await self.session.commit()

    @contextlib.asynccontextmanager
    async def statement(self) -> AsyncIterator[UnitOfWork]:
        """A block whose one write is a single statement of the repositories' own (Postgres
        applies a statement whole or not at all): it commits by itself, without BEGIN and
        COMMIT around it, unless the session's reads had begun a transaction, which then
        commits with the block. Reads may follow it in the block."""
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
