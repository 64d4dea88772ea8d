"""The chat page in headless Chromium against the real web app, its chat API (Server-Sent Events)
and the sandbox's model fakes: a reply streams in and is rendered as Markdown with nothing a
model writes ever becoming markup, Stop ends it early, the model picker saves the choice, a reply
is pinned, a conversation is shared and deleted.

These tests need the chat API (``webapp/routes/chat_api.py``); with it wired into create_app they
run like any other. The stage is the account pages' one, from ``test_browser_pages``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Locator, Page, Route, expect
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.services import chat
from db.models import ChatMessageRow, Conversation
from tests.sandbox_web.stage import PageServer
from tests.webapp.test_browser_pages import (
    Account,
    Stage,
    balance_of,
    new_page,
    open_app,
    roubles,
    running_stage,
    screenshot,
)

REPLY = (
    "Server-Sent Events keep **one HTTP response** open and write events into it:\n\n"
    "1. the server sends `event:` and `data:` lines,\n"
    "2. the browser reads them as they arrive.\n\n"
    "```js\nconst reader = response.body.getReader();\n```\n\n"
    "| Transport | Direction |\n|---|---|\n| SSE | server → browser |\n| WebSocket | both |\n"
)


@pytest.fixture
async def stage(
    engine: AsyncEngine, redis: Redis, page_server: PageServer, tmp_path: Path
) -> AsyncIterator[Stage]:
    async with running_stage(engine, redis, page_server, tmp_path / "media") as running:
        yield running


def replies(page: Page) -> Locator:
    return page.locator('[data-testid="message"][data-role="assistant"]')


async def ask(page: Page, text: str) -> None:
    await page.get_by_test_id("composer-input").fill(text)
    await page.get_by_test_id("send").click()


async def stored_replies(stage: Stage, account: Account) -> list[tuple[str, str, bool]]:
    """The account's stored replies: (content, status, pinned), oldest first."""
    async with stage.factory() as uow:
        rows = await uow.session.execute(
            select(ChatMessageRow.content, ChatMessageRow.status, ChatMessageRow.is_pinned)
            .where(ChatMessageRow.user_id == account.user_id, ChatMessageRow.role == "assistant")
            .order_by(ChatMessageRow.id)
        )
        return [(content, status, pinned) for content, status, pinned in rows]


async def test_a_reply_streams_in_renders_markdown_and_is_pinned(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    mina = await stage.account("Mina", money=50_000)
    await stage.script("gpt-4o", reply=REPLY, chunk_size=6, chunk_delay_ms=40)
    context, page = await open_app(browser, stage, mina, errors)
    try:
        await ask(page, "How do Server-Sent Events work?")
        reply = replies(page).last
        # Part of the reply is on the page while the rest is still coming.
        await expect(reply).to_have_class("msg msg-assistant streaming")
        await expect(page.get_by_test_id("stop")).to_be_visible()
        await expect(reply.get_by_test_id("message-body")).to_contain_text("Server-Sent")
        await expect(reply.get_by_test_id("pin")).to_be_enabled(timeout=15_000)
        await expect(page.get_by_test_id("send")).to_be_visible()
        body = reply.get_by_test_id("message-body")
        await expect(body.locator("strong")).to_have_text("one HTTP response")
        await expect(body.locator("ol > li")).to_have_count(2)
        await expect(body.locator("pre code")).to_have_text(
            "const reader = response.body.getReader();"
        )
        await expect(body.locator("table td").first).to_have_text("SSE")
        charged = 50_000 - await balance_of(stage, mina)
        assert charged > 0
        await expect(reply.get_by_test_id("message-cost")).to_have_text(f"₽0.{charged:02d}")
        await expect(page.get_by_test_id("balance")).to_have_text(roubles(50_000 - charged))
        await expect(page.get_by_test_id("view-title")).to_have_text(
            "How do Server-Sent Events work?"
        )
        assert page.url.split("#")[1].startswith("/chat/")
        await screenshot(page, "phone-chat-reply")

        await reply.get_by_test_id("pin").click()
        await expect(reply.get_by_test_id("pin")).to_have_attribute("aria-pressed", "true")
        assert await stored_replies(stage, mina) == [(REPLY, "complete", True)]
        await page.get_by_test_id("pinned-toggle").click()
        await expect(page.get_by_test_id("message")).to_have_count(1)

        # The conversation is in the list, and opens again with its messages.
        await page.get_by_test_id("open-chats").click()
        await expect(page.get_by_test_id("conversation")).to_have_count(1)
        await page.get_by_test_id("conversation").click()
        await expect(page.get_by_test_id("message")).to_have_count(2)
        await expect(replies(page).last.get_by_test_id("pin")).to_have_attribute(
            "aria-pressed", "true"
        )
    finally:
        await context.close()


async def test_what_a_model_writes_never_becomes_markup(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    mina = await stage.account("Mina", money=50_000)
    hostile = (
        '<img src=x onerror="window.hacked=1"> <script>window.hacked=2</script> '
        "[click](javascript:window.hacked=3) and [fine](https://example.com)"
    )
    await stage.script("gpt-4o", reply=hostile, chunk_size=9, chunk_delay_ms=1)
    context, page = await open_app(browser, stage, mina, errors)
    try:
        await ask(page, "<b>not bold</b>")
        body = replies(page).last.get_by_test_id("message-body")
        await expect(body).to_contain_text("<img src=x")
        assert await body.locator("img, script").count() == 0
        links = body.locator("a")
        await expect(links).to_have_count(1)
        await expect(links).to_have_attribute("href", "https://example.com/")
        await expect(body).to_contain_text("[click](javascript:window.hacked=3)")
        prompt = page.locator('[data-testid="message"][data-role="user"]').last
        await expect(prompt).to_contain_text("<b>not bold</b>")
        assert await prompt.locator("b").count() == 0
        assert await page.evaluate("window.hacked === undefined")
    finally:
        await context.close()


async def test_stop_ends_the_reply_and_keeps_what_arrived(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    mina = await stage.account("Mina", money=50_000)
    await stage.script("gpt-4o", reply="word " * 400, chunk_size=5, chunk_delay_ms=60)
    context, page = await open_app(browser, stage, mina, errors)
    try:
        await ask(page, "Write a lot")
        reply = replies(page).last
        await expect(reply.get_by_test_id("message-body")).to_contain_text("word word")
        await page.get_by_test_id("stop").click()
        await expect(reply.get_by_test_id("message-status")).to_have_text("Stopped")
        await expect(page.get_by_test_id("send")).to_be_visible()
        shown = await reply.get_by_test_id("message-body").inner_text()
        assert 0 < len(shown) < len("word " * 400)
        for _ in range(50):
            stored = await stored_replies(stage, mina)
            if stored:
                break
            await asyncio.sleep(0.1)
        assert [status for _, status, _ in stored] == ["stopped"]
    finally:
        await context.close()


async def test_the_model_picker_saves_the_choice(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    mina = await stage.account("Mina", money=50_000)
    await stage.script("o3-mini", reply="Thought it through.", chunk_size=50)
    context, page = await open_app(browser, stage, mina, errors)
    try:
        picker = page.get_by_test_id("model-picker")
        await expect(picker).to_have_value("gpt-4o")
        await picker.select_option("o3-mini")
        await expect(page.get_by_test_id("toast")).to_have_text("Model: o3-mini")
        async with stage.factory() as uow:
            assert (await chat.get_prefs(uow, mina.user_id)).model_id == "o3-mini"
        await ask(page, "Think")
        reply = replies(page).last
        await expect(reply).to_contain_text("Thought it through.")
        await expect(reply).to_contain_text("o3-mini")
        await page.reload()
        await expect(page.get_by_test_id("model-picker")).to_have_value("o3-mini")
    finally:
        await context.close()


async def test_a_conversation_is_shared_and_deleted(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    mina = await stage.account("Mina", money=50_000)
    await stage.script("gpt-4o", reply="Shared wisdom.", chunk_size=50)
    context, page = await open_app(browser, stage, mina, errors, phone=False)
    try:
        await ask(page, "Something worth sharing")
        await expect(replies(page)).to_contain_text("Shared wisdom.")
        await expect(page.get_by_test_id("conversation")).to_have_count(1)
        await screenshot(page, "desktop-chat")
        await page.get_by_test_id("share-conversation").click()
        url = await page.get_by_test_id("share-url").input_value()
        await page.get_by_test_id("share-close").click()
        outsider, public = await new_page(browser, errors)
        await public.goto(url)
        await expect(public.get_by_text("Shared wisdom.")).to_be_visible()
        await outsider.close()

        await page.get_by_test_id("delete-conversation").click()
        await page.get_by_test_id("dialog-confirm").click()
        await expect(page.get_by_test_id("chat-intro")).to_be_visible()
        await expect(page.get_by_test_id("conversation")).to_have_count(0)
        async with stage.factory() as uow:
            left = await uow.session.scalars(
                select(Conversation.id).where(Conversation.user_id == mina.user_id)
            )
            assert list(left) == []
    finally:
        await context.close()


async def test_without_money_the_page_offers_a_top_up(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    mina = await stage.account("Mina")
    context, page = await open_app(browser, stage, mina, errors)
    try:
        await ask(page, "Hello?")
        problem = page.get_by_test_id("chat-error")
        await expect(problem).to_contain_text("Not enough money")
        await problem.get_by_role("link").click()
        await expect(page.get_by_test_id("balance-amount")).to_have_text("₽0.00")
    finally:
        await context.close()


async def test_the_composer_waits_for_the_chat_to_load_so_nothing_typed_is_lost(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    mina = await stage.account("Mina", money=50_000)
    await stage.script("gpt-4o", reply="Here I am.", chunk_delay_ms=0)
    context, page = await new_page(browser, errors)
    released = asyncio.Event()

    async def slow_models(route: Route) -> None:
        # The model menu arrives late, as on a slow phone connection.
        await released.wait()
        await route.continue_()

    await page.route("**/api/models", slow_models)
    try:
        await page.goto(await stage.launch_url(mina))
        await expect(page.get_by_test_id("view-title")).to_be_visible(timeout=15_000)
        await expect(page.get_by_test_id("composer-input")).to_be_disabled()
        await expect(page.get_by_test_id("send")).to_be_disabled()
        released.set()
        await ask(page, "Are you there?")
        await expect(replies(page).last.get_by_test_id("message-body")).to_have_text("Here I am.")
        prompt = page.locator('[data-testid="message"][data-role="user"]')
        await expect(prompt.get_by_test_id("message-body")).to_have_text("Are you there?")
        await expect(page.get_by_test_id("chat-intro")).to_have_count(0)
    finally:
        await context.close()
