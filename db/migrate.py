from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic is imported where it is used: the processes that only serve never load it (but the
# readiness check, once, to learn the head revision).

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    config = Config(toml_file=str(PYPROJECT))
    config.attributes["url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(url), revision)


async def upgrade_async(url: str, revision: str = "head") -> None:
    # Alembic's env runs its own event loop; keep it off ours.
    await asyncio.to_thread(upgrade, url, revision)


@functools.cache
def head_revisions() -> frozenset[str]:
    """The revisions `upgrade head` leads to (one, unless branches are left unmerged), read
    from the scripts once per process."""
    from alembic.script import ScriptDirectory

    return frozenset(ScriptDirectory.from_config(alembic_config("")).get_heads())


def known_revision(revision: str) -> bool:
    """Whether this code's migrations know ``revision`` (a newer version's does not)."""
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        return ScriptDirectory.from_config(alembic_config("")).get_revision(revision) is not None
    except CommandError:
        return False


async def schema_at_head(session: AsyncSession) -> bool:
    """Whether the database is migrated to the head revision this code expects."""
    heads = await asyncio.to_thread(head_revisions)
    rows = await session.execute(text("SELECT version_num FROM alembic_version"))
    return frozenset(row[0] for row in rows) == heads
