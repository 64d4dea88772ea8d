from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import UnitOfWorkFactory
from webapp.app import create_app
from webapp.keys import WebContext

ClientMaker = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


def make_context(engine: AsyncEngine, redis: Redis, **overrides: object) -> WebContext:
    values: dict[str, object] = {
        "uow_factory": UnitOfWorkFactory.for_engine(engine),
        "redis": redis,
        "public_url": "http://netroom.test",
        "policy_version": "2026-11-01",
        "policy_date": "2026-11-01",
        "bot_username": "netroom_test_bot",
    }
    values.update(overrides)
    return WebContext(**values)  # type: ignore[arg-type]


@pytest.fixture
async def client(
    aiohttp_client: ClientMaker, engine: AsyncEngine, redis: Redis
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    yield await aiohttp_client(create_app(make_context(engine, redis)))
