"""Readiness (/readyz) part by part, and the web app's own metrics at /metrics."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from aiogram.exceptions import TelegramNetworkError
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.factory import create_bot
from db.engine import UnitOfWorkFactory
from sandbox.app import SandboxServer, start_sandbox
from sandbox.client import SandboxClient
from tests.metrics_scrape import grew, parse
from tests.netroom.own_redis import own_redis
from tests.webapp.conftest import ClientMaker, make_context
from webapp.app import create_app

Client = TestClient[web.Request, web.Application]


async def test_readyz_names_redis_once_it_is_stopped_and_healthz_stays_200(
    aiohttp_client: ClientMaker, engine: AsyncEngine, tmp_path: Path
) -> None:
    with own_redis(tmp_path / "redis") as server:
        redis = Redis.from_url(server.url, socket_connect_timeout=1, socket_timeout=1)
        try:
            client = await aiohttp_client(create_app(make_context(engine, redis)))
            ready = await client.get("/readyz")
            assert ready.status == 200
            assert await ready.json() == {
                "status": "ok",
                "postgres": "ok",
                "redis": "ok",
                "migrations": "ok",
            }
            server.stop()
            ready = await client.get("/readyz")
            assert ready.status == 503
            assert await ready.json() == {
                "status": "not ready",
                "postgres": "ok",
                "redis": "down",
                "migrations": "ok",
            }
            alive = await client.get("/healthz")
            assert alive.status == 200
        finally:
            await redis.aclose()


async def test_readyz_says_the_schema_is_behind_the_code(
    aiohttp_client: ClientMaker, engine: AsyncEngine, redis: Redis
) -> None:
    # The database as an older release left it: alembic_version one revision back (in a
    # transaction of this test's, rolled back at the end).
    async with engine.connect() as conn:
        outer = await conn.begin()
        try:
            await conn.execute(text("UPDATE alembic_version SET version_num = '0013'"))
            factory = UnitOfWorkFactory(
                async_sessionmaker(
                    bind=conn, class_=AsyncSession, join_transaction_mode="create_savepoint"
                )
            )
            client = await aiohttp_client(
                create_app(make_context(engine, redis, uow_factory=factory))
            )
            ready = await client.get("/readyz")
            assert ready.status == 503
            body = await ready.json()
            assert body["migrations"] == "behind"
            assert (body["postgres"], body["redis"]) == ("ok", "ok")
        finally:
            await outer.rollback()


async def test_readyz_asks_the_bot_api_and_keeps_its_answer(
    aiohttp_client: ClientMaker, engine: AsyncEngine, redis: Redis, sandbox: SandboxServer
) -> None:
    bot_id = secrets.randbelow(10**9) + 10**9
    token = f"{bot_id}:{secrets.token_urlsafe(27)}"
    revoked = f"{bot_id}:{secrets.token_urlsafe(27)}"
    async with SandboxClient(sandbox.url) as sandbox_client:
        await sandbox_client.register_bot(token, "netroom_ready_bot", "NetRoom")
        for probe_token, status, state in ((revoked, 503, "down"), (token, 200, "ok")):
            bot = create_bot(probe_token, sandbox.url)
            try:
                client = await aiohttp_client(
                    create_app(make_context(engine, redis, bot_api_probe=bot.get_me))
                )
                ready = await client.get("/readyz")
                assert ready.status == status
                assert (await ready.json())["bot_api"] == state
            finally:
                await bot.session.close()


async def test_readyz_keeps_the_bot_apis_answer_for_a_while(
    aiohttp_client: ClientMaker, engine: AsyncEngine, redis: Redis
) -> None:
    # A Bot API of this test's own, stopped halfway: probes meanwhile are not sent to it.
    own = await start_sandbox()
    # Unpaced: a refused connection is an error at once, not retried with backoff.
    token = f"{secrets.randbelow(10**9) + 10**9}:{secrets.token_urlsafe(27)}"
    bot = create_bot(token, own.url, pacing=False)
    try:
        client = await aiohttp_client(
            create_app(make_context(engine, redis, bot_api_probe=bot.get_me))
        )
        assert (await client.get("/readyz")).status == 200
        await own.stop()
        with pytest.raises(TelegramNetworkError):
            await bot.get_me()
        again = await client.get("/readyz")
        assert again.status == 200
        assert (await again.json())["bot_api"] == "ok"
    finally:
        await bot.session.close()
        await own.stop()


async def test_web_requests_are_counted_by_route_pattern_and_status(client: Client) -> None:
    before = parse(await (await client.get("/metrics")).text())
    assert (await client.get("/s/no-such-share")).status == 404
    assert (await client.request("PROPFIND", "/dav")).status in (404, 405)
    assert (await client.get("/healthz")).status == 200
    response = await client.get("/metrics")
    assert response.status == 200
    # Each request carries back an id, the one its log lines name.
    assert len(response.headers["X-Request-Id"]) == 16
    after = parse(await response.text())
    assert grew(before, after, "netroom_web_requests_total", route="/healthz", status="200") == 1
    assert grew(before, after, "netroom_web_requests_total", route="/s/{token}", status="404") == 1
    # The pattern, never the path: no series per share link, nor per made-up method.
    assert grew(before, after, "netroom_web_requests_total", route="/s/no-such-share") == 0
    assert grew(before, after, "netroom_web_requests_total", method="PROPFIND") == 0
    assert grew(before, after, "netroom_web_requests_total", method="OTHER") == 1
    assert grew(before, after, "netroom_web_request_duration_seconds_count", route="/healthz") == 1


async def test_web_metrics_need_the_token_when_a_proxy_relays_the_scrape(
    aiohttp_client: ClientMaker, engine: AsyncEngine, redis: Redis
) -> None:
    token = secrets.token_urlsafe(24)
    client = await aiohttp_client(create_app(make_context(engine, redis, metrics_token=token)))
    assert (await client.get("/metrics")).status == 200
    proxied = {"X-Forwarded-For": "198.51.100.7"}
    assert (await client.get("/metrics", headers=proxied)).status == 404
    bearer = {**proxied, "Authorization": f"Bearer {token}"}
    assert (await client.get("/metrics", headers=bearer)).status == 200
