"""Sources under a reply in the chat page, in headless Chromium against the real web app and the
sandbox's model fakes: a reply from an attached document names the passages it cites (one line,
or folded when long, in English and Russian), and still does after a reload.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Locator, Page, expect
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from core.services import conversations
from tests.sandbox_web.stage import PageServer
from tests.webapp.test_browser_pages import (
    PHONE,
    Account,
    Stage,
    open_app,
    running_stage,
    screenshot,
)
from tests.webapp.test_chat_sources import QUESTION, attach_document, cited_passages

LONG_NAME = "Регламент резервного копирования и восстановления кластера, редакция 2026.md"


@pytest.fixture
async def stage(
    engine: AsyncEngine, redis: Redis, page_server: PageServer, tmp_path: Path
) -> AsyncIterator[Stage]:
    async with running_stage(engine, redis, page_server, tmp_path / "media") as running:
        yield running


async def chat_with_document(stage: Stage, account: Account, name: str) -> int:
    """A conversation of ``account`` with servers.md attached under ``name``."""
    async with stage.factory() as uow:
        started = await conversations.start_conversation(
            uow, account.user_id, title="Servers", models=stage.menu
        )
    await attach_document(stage.factory, stage.store, account.user_id, started.id, name)
    return started.id


async def passages(stage: Stage) -> list[str]:
    """Where the passages of gpt-4o's last request came from, as numbered."""
    model = stage.menu.get("gpt-4o").provider_model
    answer = await stage.http.get(f"{stage.sandbox.url}/sandbox/api/providers/requests")
    mine: list[dict[str, Any]] = [
        r for r in answer.json()["requests"] if (r["json"] or {}).get("model") == model
    ]
    return cited_passages(mine)


async def open_chat(page: Page, conversation_id: int) -> None:
    await page.evaluate(f"location.hash = {json.dumps(f'#/chat/{conversation_id}')}")
    await expect(page.get_by_test_id("composer-input")).to_be_visible()


def last_reply(page: Page) -> Locator:
    return page.locator('[data-testid="message"][data-role="assistant"]').last


async def test_a_reply_shows_the_sources_it_cites_and_keeps_them_after_a_reload(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    nora = await stage.account("Nora", money=50_000)
    conversation_id = await chat_with_document(stage, nora, "servers.md")
    context, page = await open_app(browser, stage, nora, errors)
    try:
        await open_chat(page, conversation_id)
        await stage.script("gpt-4o", reply="Snapshots are kept for ninety days [2].")
        await page.get_by_test_id("composer-input").fill(QUESTION)
        await page.get_by_test_id("send").click()
        reply = last_reply(page)
        await expect(reply.get_by_test_id("pin")).to_be_enabled(timeout=15_000)
        sent = await passages(stage)
        assert len(set(sent)) == 2
        # Only the passage the answer cites, on one line.
        line = reply.get_by_test_id("message-sources")
        await expect(line).to_have_text(f"Sources: {sent[1]}")
        assert sent[0] not in await line.inner_text()
        await screenshot(page, "chat-sources-phone")

        await page.reload()
        reply = last_reply(page)
        await expect(reply.get_by_test_id("message-body")).to_contain_text("ninety days")
        await expect(reply.get_by_test_id("message-sources")).to_have_text(f"Sources: {sent[1]}")
        assert errors == []
    finally:
        await context.close()


async def test_long_sources_fold_into_one_line_that_opens_in_russian(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    ivan = await stage.account("Ivan", language="ru", money=50_000)
    conversation_id = await chat_with_document(stage, ivan, LONG_NAME)
    context, page = await open_app(browser, stage, ivan, errors, phone=False)
    try:
        await open_chat(page, conversation_id)
        await stage.script(
            "gpt-4o", reply="Двенадцать узлов [1], копии хранятся девяносто дней [2]."
        )
        await page.get_by_test_id("composer-input").fill(QUESTION)
        await page.get_by_test_id("send").click()
        reply = last_reply(page)
        await expect(reply.get_by_test_id("pin")).to_be_enabled(timeout=15_000)
        sent = await passages(stage)
        assert len(set(sent)) == 2 and all(s.startswith(LONG_NAME) for s in sent)
        folded = reply.get_by_test_id("message-sources")
        summary = folded.locator("summary")
        await expect(summary).to_have_text(f"Источники: {sent[0]} и ещё 1")
        await expect(folded.locator("li").first).to_be_hidden()
        await screenshot(page, "chat-sources-folded-desktop-ru")
        await summary.click()
        await expect(folded.locator("li")).to_have_text(sent)
        await screenshot(page, "chat-sources-desktop-ru")

        # After a reload, at a phone's width: folded again, and the line wraps within the reply.
        await page.set_viewport_size(PHONE)
        await page.reload()
        folded = last_reply(page).get_by_test_id("message-sources")
        await expect(folded.locator("summary")).to_have_text(f"Источники: {sent[0]} и ещё 1")
        box = await folded.bounding_box()
        assert box is not None and box["x"] + box["width"] <= PHONE["width"]
        await screenshot(page, "chat-sources-phone-ru")
        assert errors == []
    finally:
        await context.close()
