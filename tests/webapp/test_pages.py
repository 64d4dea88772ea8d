from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.webapp.conftest import ClientMaker, make_context
from webapp.app import create_app

Client = TestClient[web.Request, web.Application]


async def test_healthz_reports_postgres_and_redis_ok(client: Client) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok", "postgres": "ok", "redis": "ok"}


async def test_healthz_stays_200_and_names_redis_when_it_is_down(
    aiohttp_client: ClientMaker, engine: AsyncEngine
) -> None:
    # A port nothing listens on: a real refused connection.
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    try:
        client = await aiohttp_client(create_app(make_context(engine, dead)))
        started = asyncio.get_running_loop().time()
        response = await client.get("/healthz")
        # Liveness: the process is fine, only a dependency is not.
        assert response.status == 200
        assert await response.json() == {"status": "degraded", "postgres": "ok", "redis": "down"}
        assert asyncio.get_running_loop().time() - started < 1.5
        ready = await client.get("/readyz")
        assert ready.status == 503
        assert await ready.json() == {
            "status": "not ready",
            "postgres": "ok",
            "redis": "down",
            "migrations": "ok",
        }
    finally:
        await dead.aclose()


async def test_readyz_answers_200_when_postgres_and_redis_answer(client: Client) -> None:
    response = await client.get("/readyz")
    assert response.status == 200
    assert await response.json() == {
        "status": "ok",
        "postgres": "ok",
        "redis": "ok",
        "migrations": "ok",
    }


async def test_home_page_is_english_by_default_and_links_the_bot(client: Client) -> None:
    response = await client.get("/")
    assert response.status == 200
    html = await response.text()
    assert "Every AI model in one Telegram chat" in html
    assert 'href="https://t.me/netroom_test_bot"' in html
    assert 'lang="en"' in html


async def test_home_page_follows_the_browser_language(client: Client) -> None:
    response = await client.get("/", headers={"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.8"})
    html = await response.text()
    assert "Все нейросети в одном чате Telegram" in html
    assert 'lang="ru"' in html


async def test_language_choice_from_the_query_is_remembered(client: Client) -> None:
    first = await client.get("/?lang=ru", headers={"Accept-Language": "en"})
    assert 'lang="ru"' in await first.text()
    second = await client.get("/", headers={"Accept-Language": "en"})
    assert 'lang="ru"' in await second.text()


async def test_privacy_page_shows_the_policy_with_its_date(client: Client) -> None:
    response = await client.get("/privacy/")
    assert response.status == 200
    html = await response.text()
    assert "Last updated: 2026-11-01" in html
    assert "7. Retention periods" in html
    assert "14 days from creation" in html


async def test_privacy_without_slash_redirects(client: Client) -> None:
    response = await client.get("/privacy", allow_redirects=False)
    assert response.status == 308
    assert response.headers["Location"] == "/privacy/"


async def test_home_page_offers_the_web_app_sign_in_beside_the_bot(client: Client) -> None:
    html = await (await client.get("/")).text()
    assert 'href="/app"' in html and "Sign in on the web" in html


async def test_home_page_asks_telegram_for_the_bot_username_when_not_configured(
    aiohttp_client: ClientMaker, engine: AsyncEngine, redis: Redis
) -> None:
    async def lookup() -> str | None:
        return "asked_of_telegram_bot"

    ctx = make_context(engine, redis, bot_username=None, bot_username_lookup=lookup)
    client = await aiohttp_client(create_app(ctx))
    html = await (await client.get("/")).text()
    assert 'href="https://t.me/asked_of_telegram_bot"' in html


async def test_unknown_page_is_a_404_page_with_ways_on_in_the_browser_language(
    client: Client,
) -> None:
    response = await client.get("/no-such-page")
    assert response.status == 404
    assert response.content_type == "text/html"
    assert "default-src" in response.headers["Content-Security-Policy"]
    html = await response.text()
    assert "Page not found" in html and 'href="/"' in html and 'href="/app"' in html
    russian = await client.get("/no-such-page", headers={"Accept-Language": "ru"})
    assert russian.status == 404
    assert "Страница не найдена" in await russian.text()


async def test_unknown_api_path_is_a_json_404(client: Client) -> None:
    response = await client.get("/api/no-such-thing")
    assert response.status == 404
    assert (await response.json())["error"] == "not_found"
