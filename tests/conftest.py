"""Real resources for the whole suite: a fresh Postgres database built by the migrations, Redis,
and (for bot tests) the Telegram sandbox over HTTP.

Postgres: ``TEST_DATABASE_URL``, else the local server on 127.0.0.1:5432 when it answers, else an
embedded server. Redis likewise with ``TEST_REDIS_URL`` and 127.0.0.1:6379.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from db.engine import create_engine
from db.migrate import upgrade
from db.uow import UnitOfWork
from netroom.embedded import EmbeddedPostgres, EmbeddedRedis

LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS = "redis://127.0.0.1:6379/0"


def _answers_postgres(url: str) -> bool:
    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(url.replace("+asyncpg", ""), timeout=2)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


def _answers_redis(url: str) -> bool:
    async def probe() -> bool:
        client = Redis.from_url(url, socket_connect_timeout=2)
        try:
            return bool(await client.ping())
        except (OSError, ConnectionError, TimeoutError):
            return False
        except Exception:
            return False
        finally:
            await client.aclose()

    return asyncio.run(probe())


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("netroom-data")


@pytest.fixture(scope="session")
def postgres_server_url(data_dir: Path) -> Iterator[str]:
    """A URL of a server where the suite may create and drop its own database."""
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        yield configured
    elif _answers_postgres(LOCAL_POSTGRES):
        yield LOCAL_POSTGRES
    else:
        server = EmbeddedPostgres(data_dir, database="postgres")
        url = server.start()
        try:
            yield url
        finally:
            server.stop()


@pytest.fixture(scope="session")
def database_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh database for this run, with the schema built by ``alembic upgrade head``."""
    name = f"netroom_test_{secrets.token_hex(4)}"
    admin = make_url(postgres_server_url).set(drivername="postgresql")
    admin_dsn = admin.render_as_string(hide_password=False)

    async def execute(sql: str) -> None:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    url = admin.set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _fresh_limits(url: str) -> None:
    """Like the database, each run starts fresh: sign-in and mail limits counted by earlier
    runs (a configured or local Redis outlives them) must not refuse this run's requests."""
    client = SyncRedis.from_url(url)
    try:
        for key in client.scan_iter(match="netroom:auth:*"):
            client.delete(key)
    finally:
        client.close()


def _own_database(url: str) -> str:
    """With the suite split over several workers (pytest-xdist), each uses a Redis database of
    its own, as each has its own Postgres database: their keys never meet."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return url
    parts = urlsplit(url)
    base = int(parts.path.lstrip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{(base + int(worker[2:])) % 16}"))


@pytest.fixture(scope="session")
def redis_url(data_dir: Path) -> Iterator[str]:
    configured = os.environ.get("TEST_REDIS_URL")
    if configured:
        configured = _own_database(configured)
        _fresh_limits(configured)
        yield configured
    elif _answers_redis(LOCAL_REDIS):
        local = _own_database(LOCAL_REDIS)
        _fresh_limits(local)
        yield local
    else:
        server = EmbeddedRedis(data_dir)
        url = server.start()
        try:
            yield url
        finally:
            server.stop()


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=5, max_overflow=20)
    yield engine
    await engine.dispose()


@pytest.fixture
async def uow(engine: AsyncEngine) -> AsyncIterator[UnitOfWork]:
    """A unit of work inside an outer transaction that is rolled back after the test: use-case
    commits become savepoint releases, and nothing leaks into the next test."""
    async with engine.connect() as conn:
        outer = await conn.begin()
        session = AsyncSession(
            bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        try:
            yield UnitOfWork(session)
        finally:
            await session.close()
            await outer.rollback()


@pytest.fixture(scope="session")
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()
