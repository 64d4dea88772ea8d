from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from db.uow import UnitOfWork


def async_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs (as operators write them) and use asyncpg."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def create_engine(url: str, *, pool_size: int = 10, max_overflow: int = 10) -> AsyncEngine:
    return create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
    )


class UnitOfWorkFactory:
    """Opens one unit of work per inbound event (update, request, job)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    @classmethod
    def for_engine(cls, engine: AsyncEngine) -> UnitOfWorkFactory:
        return cls(async_sessionmaker(engine, expire_on_commit=False))

    def __call__(self) -> UnitOfWork:
        return UnitOfWork(self._sessionmaker())
