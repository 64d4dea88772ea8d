"""The web app while Postgres or Redis is unreachable: a polite 503 the client can retry, never
a 500, and /healthz naming what is down. The dead dependencies are real: ports nothing listens
on, so every connection is refused."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from core.security.tokens import issue_access_token
from db.engine import UnitOfWorkFactory, create_engine
from tests.factories import register
from tests.webapp.conftest import ClientMaker, make_context, web_access_token
from webapp.app import create_app

SECRET = "outage-test-secret-of-at-least-32-bytes!"


@pytest.fixture
async def dead_engine() -> AsyncIterator[AsyncEngine]:
    engine = create_engine("postgresql://postgres@127.0.0.1:1/netroom", pool_size=1)
    yield engine
    await engine.dispose()


@pytest.fixture
async def dead_redis() -> AsyncIterator[Redis]:
    client = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    yield client
    await client.aclose()


async def test_an_api_request_while_postgres_is_down_is_a_translated_503(
    aiohttp_client: ClientMaker, dead_engine: AsyncEngine, redis: Redis
) -> None:
    client = await aiohttp_client(create_app(make_context(dead_engine, redis, jwt_secret=SECRET)))
    token, _ = issue_access_token(
        1, secret=SECRET, now=datetime.now(UTC), ttl=timedelta(hours=1), session_id="s"
    )
    headers = {"Authorization": f"Bearer {token}"}

    response = await client.get("/api/me", headers=headers)
    assert response.status == 503
    assert response.headers["Retry-After"] == "10"
    assert await response.json() == {
        "error": "unavailable",
        "message": "The service is busy for a moment, please try again in a minute.",
    }

    russian = await client.get("/api/me?lang=ru", headers=headers)
    assert russian.status == 503
    assert (await russian.json())["message"] == (
        "Сервис ненадолго занят, попробуйте ещё раз через минуту."
    )

    health = await client.get("/healthz")
    assert health.status == 200
    assert await health.json() == {"status": "degraded", "postgres": "down", "redis": "ok"}


async def test_an_api_request_while_redis_is_down_is_a_503_and_postgres_still_serves(
    aiohttp_client: ClientMaker, engine: AsyncEngine, dead_redis: Redis
) -> None:
    factory = UnitOfWorkFactory.for_engine(engine)
    async with factory() as uow:
        user = (await register(uow)).user
        token = await web_access_token(uow, user.id, secret=SECRET)
    headers = {"Authorization": f"Bearer {token}"}
    client = await aiohttp_client(create_app(make_context(engine, dead_redis, jwt_secret=SECRET)))

    # Stop is a flag in Redis.
    stop = await client.post(f"/api/chat/{secrets.token_hex(8)}/stop", headers=headers)
    assert stop.status == 503
    assert (await stop.json())["error"] == "unavailable"

    # What needs only Postgres goes on working.
    me = await client.get("/api/me", headers=headers)
    assert me.status == 200
    assert (await me.json())["id"] == user.id
