"""The sandbox page in headless Chromium, against the real sandbox (Bot API + control API) and a
tiny echo bot built on the real aiogram Bot and dispatcher, all over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.types import BotCommand, BotCommandScopeDefault, MenuButtonWebApp, WebAppInfo
from playwright.async_api import Browser, Page, async_playwright

from sandbox.client import SandboxClient
from tests.sandbox_web.stage import (
    CHROMIUM,
    CHROMIUM_ARGS,
    MINI_APP_PATH,
    Gates,
    Stage,
    echo_router,
    start_page_server,
)


@pytest.fixture(scope="session")
async def stage() -> AsyncIterator[Stage]:
    server = await start_page_server()
    token = f"{secrets.randbelow(10**9) + 10**9}:{secrets.token_urlsafe(27)}"
    client = SandboxClient(server.url)
    await client.register_bot(token, "echo_sandbox_bot", "Echo")
    gates = Gates()
    mini_app_url = f"{server.url}{MINI_APP_PATH}"
    bot = Bot(
        token,
        session=AiohttpSession(api=TelegramAPIServer.from_base(server.url)),
        default=DefaultBotProperties(parse_mode=ParseMode.HTML),
    )
    dp = Dispatcher()
    dp.include_router(echo_router(gates, mini_app_url))
    await bot.set_my_commands(
        [
            BotCommand(command="start", description="Start the bot"),
            BotCommand(command="stream", description="Stream a reply"),
        ],
        scope=BotCommandScopeDefault(),
    )
    await bot.set_my_commands(
        [
            BotCommand(command="start", description="Запустить бота"),
            BotCommand(command="stream", description="Ответ по частям"),
        ],
        scope=BotCommandScopeDefault(),
        language_code="ru",
    )
    await bot.set_chat_menu_button(
        menu_button=MenuButtonWebApp(text="Open NetRoom", web_app=WebAppInfo(url=mini_app_url))
    )
    polling = asyncio.create_task(
        dp.start_polling(bot, handle_signals=False, close_bot_session=False, polling_timeout=1)
    )
    try:
        yield Stage(server.url, token, bot, client, gates, mini_app_url)
    finally:
        with contextlib.suppress(RuntimeError):
            await dp.stop_polling()
        await asyncio.wait_for(polling, 10)
        await bot.session.close()
        await client.aclose()
        await server.stop()


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
def page_errors() -> list[str]:
    """Script errors and failed requests the page reported; a test may drop ones it caused."""
    return []


@pytest.fixture
async def page(browser: Browser, page_errors: list[str]) -> AsyncIterator[Page]:
    """A fresh browser profile per test; errors reported on the page fail the test."""
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    page = await context.new_page()
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    page.on("console", lambda msg: page_errors.append(msg.text) if msg.type == "error" else None)
    try:
        yield page
    finally:
        await context.close()
    assert not page_errors, page_errors
