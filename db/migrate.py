from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def alembic_config(url: str) -> Config:
    config = Config(toml_file=str(PYPROJECT))
    config.attributes["url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


async def upgrade_async(url: str, revision: str = "head") -> None:
    # Alembic's env runs its own event loop; keep it off ours.
    await asyncio.to_thread(upgrade, url, revision)


def head_revisions() -> tuple[str, ...]:
    """The revisions this code's migrations end at (one, unless branches are left unmerged)."""
    from alembic.script import ScriptDirectory

    return tuple(ScriptDirectory.from_config(alembic_config("")).get_heads())


def known_revision(revision: str) -> bool:
    """Whether this code's migrations know ``revision`` (a newer version's does not)."""
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        return ScriptDirectory.from_config(alembic_config("")).get_revision(revision) is not None
    except CommandError:
        return False
