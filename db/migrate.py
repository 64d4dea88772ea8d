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
