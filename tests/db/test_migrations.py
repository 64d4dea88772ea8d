"""Every revision upgrades, downgrades and upgrades again (the stairway), on an empty database."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import asyncpg
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from db.migrate import alembic_config, downgrade, upgrade


def _revisions() -> list[str]:
    script = ScriptDirectory.from_config(alembic_config("postgresql://unused"))
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


async def _tables(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename <> 'alembic_version'"
        )
    finally:
        await conn.close()
    return {r["tablename"] for r in rows}


@pytest.fixture(scope="module")
def empty_database(postgres_server_url: str) -> Iterator[str]:
    admin = make_url(postgres_server_url).set(drivername="postgresql")
    name = f"netroom_stairway_{secrets.token_hex(4)}"

    async def execute(sql: str) -> None:
        conn = await asyncpg.connect(admin.render_as_string(hide_password=False))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_every_revision_upgrades_downgrades_and_upgrades_again(empty_database: str) -> None:
    revisions = _revisions()
    assert revisions, "no migrations found"
    previous = "base"
    for revision in revisions:
        upgrade(empty_database, revision)
        after_upgrade = asyncio.run(_tables(empty_database))
        downgrade(empty_database, previous)
        upgrade(empty_database, revision)
        assert asyncio.run(_tables(empty_database)) == after_upgrade
        previous = revision
    downgrade(empty_database, "base")
    assert asyncio.run(_tables(empty_database)) == set()


def test_migrations_match_the_models(database_url: str) -> None:
    """Autogenerate finds nothing to do: the models and the migrations agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from db import models
    from db.base import Base

    assert models.User.__table__.metadata is Base.metadata

    async def diff() -> list[object]:
        from db.engine import create_engine as create_async

        engine = create_async(database_url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(
                    lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
                )
        finally:
            await engine.dispose()

    assert asyncio.run(diff()) == []
