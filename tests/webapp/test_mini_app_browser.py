"""The Mini App in a real browser: launched the way Telegram launches it, it signs in and shows
the account."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from aiohttp import web
from playwright.async_api import Browser
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from core.security.initdata import InitDataVerifier
from sandbox.telegram.initdata import launch_url, sign_init_data
from tests.webapp.conftest import make_context
from tests.webapp.test_api import BOT_TOKEN, SECRET, _account
from webapp.app import create_app


@pytest.fixture
async def web_url(engine: AsyncEngine, redis: Redis) -> AsyncIterator[str]:
    ctx = make_context(
        engine, redis, init_data=InitDataVerifier(BOT_TOKEN, timedelta(hours=1)), jwt_secret=SECRET
    )
    runner = web.AppRunner(create_app(ctx))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_launched_from_telegram_the_mini_app_greets_and_shows_the_balance(
    browser: Browser, web_url: str, engine: AsyncEngine
) -> None:
    tg, _ = await _account(engine, money=4_250)
    data = sign_init_data(
        BOT_TOKEN, user={"id": tg, "first_name": "Mina"}, auth_date=int(time.time())
    )
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        await page.goto(launch_url(f"{web_url}/app", data, None))
        await page.get_by_test_id("hello").wait_for(timeout=10_000)
        assert await page.get_by_test_id("hello").text_content() == "Hello, Mina!"
        assert await page.get_by_test_id("balance").text_content() == "₽42.50"
    finally:
        await page.close()
    assert errors == []


async def test_opened_outside_telegram_the_mini_app_says_where_to_open_it(
    browser: Browser, web_url: str
) -> None:
    page = await browser.new_page()
    try:
        await page.goto(f"{web_url}/app")
        status = page.get_by_test_id("status")
        await status.wait_for(timeout=10_000)
        assert "from the bot in Telegram" in (await status.text_content() or "")
    finally:
        await page.close()
