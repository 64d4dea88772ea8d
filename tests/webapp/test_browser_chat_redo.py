"""Asking again and rating on the chat page in headless Chromium against the real web app and the
sandbox's model fakes, in English on a phone and in Russian on a desktop: regenerate (the same
model, then another), edit the last prompt, 👍 and the cost of a reply; the turns replaced stay on
the page, marked. Screenshots go to ``test-artifacts/screenshots/``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from db.models import ChatMessageRow
from tests.sandbox_web.stage import PageServer
from tests.webapp.test_browser_chat import ask, replies
from tests.webapp.test_browser_pages import (
    Account,
    Stage,
    balance_of,
    open_app,
    running_stage,
    screenshot,
)


@pytest.fixture
async def stage(
    engine: AsyncEngine, redis: Redis, page_server: PageServer, tmp_path: Path
) -> AsyncIterator[Stage]:
    async with running_stage(engine, redis, page_server, tmp_path / "media") as running:
        yield running


async def stored(stage: Stage, account: Account) -> list[tuple[str, str, bool, int | None]]:
    """(content, model, replaced, rating) of the account's messages, oldest first."""
    async with stage.factory() as uow:
        rows = await uow.session.execute(
            select(
                ChatMessageRow.content,
                ChatMessageRow.model_id,
                ChatMessageRow.replaced,
                ChatMessageRow.rating,
            )
            .where(ChatMessageRow.user_id == account.user_id)
            .order_by(ChatMessageRow.id)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


async def test_a_reply_is_regenerated_with_another_model_rated_and_its_cost_shown_on_a_phone(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    mina = await stage.account("Mina", money=50_000)
    await stage.script("gpt-4o", reply="The first answer.")
    context, page = await open_app(browser, stage, mina, errors)
    try:
        await ask(page, "Give me a name for a cat")
        first = replies(page).last
        await expect(first.get_by_test_id("regenerate")).to_be_visible(timeout=15_000)
        # 👍 is stored; ℹ️ tells what the reply cost.
        await first.get_by_test_id("rate-up").click()
        await expect(first.get_by_test_id("rate-up")).to_have_attribute("aria-pressed", "true")
        charged = 50_000 - await balance_of(stage, mina)
        await first.get_by_test_id("cost").click()
        await expect(page.locator("#toast")).to_have_text(
            f"This reply cost ₽0.{charged:02d} (GPT-4o)."
        )

        await stage.script("gpt-4o", reply="The second answer.")
        await first.get_by_test_id("regenerate").click()
        await expect(replies(page).last.get_by_test_id("message-body")).to_have_text(
            "The second answer."
        )
        await expect(page.get_by_test_id("replaced")).to_have_count(2)
        older = replies(page).first
        await expect(older).to_have_class("msg msg-assistant is-replaced")
        await expect(older.get_by_test_id("regenerate")).to_have_count(0)
        await screenshot(page, "phone-chat-regenerated")

        await stage.script("o3-mini", reply="A third answer, from another model.")
        await expect(replies(page).last.get_by_test_id("regenerate-with")).to_be_visible()
        await replies(page).last.get_by_test_id("regenerate-with").click()
        await screenshot(page, "phone-chat-regenerate-with")
        await page.get_by_test_id("regenerate-dialog").get_by_text("o3-mini").click()
        await expect(replies(page).last.get_by_test_id("message-body")).to_have_text(
            "A third answer, from another model.", timeout=15_000
        )
        await expect(replies(page).last.get_by_test_id("rate-up")).to_be_visible()
        assert await stored(stage, mina) == [
            ("Give me a name for a cat", "gpt-4o", True, None),
            ("The first answer.", "gpt-4o", True, 1),
            ("Give me a name for a cat", "gpt-4o", True, None),
            ("The second answer.", "gpt-4o", True, None),
            ("Give me a name for a cat", "o3-mini", False, None),
            ("A third answer, from another model.", "o3-mini", False, None),
        ]
        # The page as it opens again shows the same, replaced turns marked.
        await page.reload()
        await expect(page.get_by_test_id("message")).to_have_count(6, timeout=15_000)
        await expect(page.get_by_test_id("replaced")).to_have_count(4)
        assert errors == []
    finally:
        await context.close()


async def test_the_last_prompt_is_edited_and_asked_again_in_russian_on_a_desktop(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    ivan = await stage.account("Ivan", language="ru", money=50_000)
    await stage.script("gpt-4o", reply="Столица Франции — Париж.")
    context, page = await open_app(browser, stage, ivan, errors, phone=False)
    try:
        await ask(page, "Столица Франции?")
        first = replies(page).last
        await expect(first.get_by_test_id("regenerate")).to_be_visible(timeout=15_000)
        await expect(first.get_by_test_id("regenerate")).to_have_attribute(
            "title", "Ответить заново"
        )
        prompt = page.locator('[data-testid="message"][data-role="user"]').last
        await prompt.get_by_test_id("edit-prompt").click()
        editor = page.get_by_test_id("edit-prompt-input")
        await expect(editor).to_have_value("Столица Франции?")
        await editor.fill("Столица Италии?")
        await screenshot(page, "desktop-chat-edit-prompt-ru")
        await stage.script("gpt-4o", reply="Столица Италии — Рим.")
        await page.get_by_test_id("dialog-confirm").click()
        await expect(replies(page).last.get_by_test_id("message-body")).to_have_text(
            "Столица Италии — Рим.", timeout=15_000
        )
        await expect(page.get_by_test_id("replaced").first).to_have_text("Заменено")
        await expect(page.get_by_test_id("replaced")).to_have_count(2)
        await screenshot(page, "desktop-chat-edited-ru")
        rows = await stored(stage, ivan)
        assert [(content, replaced) for content, _, replaced, _ in rows] == [
            ("Столица Франции?", True),
            ("Столица Франции — Париж.", True),
            ("Столица Италии?", False),
            ("Столица Италии — Рим.", False),
        ]
        assert errors == []
    finally:
        await context.close()
