"""Every typed key of the web app."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from redis.asyncio import Redis

from db.engine import UnitOfWorkFactory


@dataclass(frozen=True)
class WebContext:
    uow_factory: UnitOfWorkFactory
    redis: Redis
    public_url: str
    policy_version: str
    policy_date: str
    bot_username: str | None = None


CONTEXT = web.AppKey("context", WebContext)
