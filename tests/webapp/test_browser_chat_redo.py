"""Asking again and rating on the chat page in headless Chromium against the real web app and the
sandbox's model fakes, each in English on a phone and in Russian on a desktop: regenerate (the
same model, then another), edit the last prompt, 👍 and the cost of a reply; the turns replaced
stay on the page, marked. Screenshots go to ``test-artifacts/screenshots/``."""

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
    assert_fits,
    balance_of,
    open_app,
    running_stage,
    screenshot,
)

BOTH = pytest.mark.parametrize(
    ("language", "phone"), [("en", True), ("ru", False)], ids=["en-phone", "ru-desktop"]
)
TEXTS = {
    "en": {
        "cost": "This reply cost ₽0.{kopecks:02d} (GPT-4o).",
        "regenerate": "Regenerate",
        "replaced": "Replaced",
        "cat": "Give me a name for a cat",
        "first": "The first answer.",
        "second": "The second answer.",
        "third": "A third answer, from another model.",
        "asked": "What is the capital of France?",
        "asked_reply": "The capital of France is Paris.",
        "edited": "What is the capital of Italy?",
        "edited_reply": "The capital of Italy is Rome.",
    },
    "ru": {
        "cost": "Этот ответ стоил 0,{kopecks:02d} ₽ (GPT-4o).",
        "regenerate": "Ответить заново",
        "replaced": "Заменено",
        "cat": "Придумай имя для кота",
        "first": "Первый ответ.",
        "second": "Второй ответ.",
        "third": "Третий ответ, от другой модели.",
        "asked": "Столица Франции?",
        "asked_reply": "Столица Франции — Париж.",
        "edited": "Столица Италии?",
        "edited_reply": "Столица Италии — Рим.",
    },
}


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


@BOTH
async def test_a_reply_is_regenerated_with_another_model_rated_and_its_cost_shown(
    browser: Browser, stage: Stage, errors: list[str], language: str, phone: bool
) -> None:
    texts = TEXTS[language]
    device = "phone" if phone else "desktop"
    mina = await stage.account("Mina", language=language, money=50_000)
    await stage.script("gpt-4o", reply=texts["first"])
    context, page = await open_app(browser, stage, mina, errors, phone=phone)
    try:
        await ask(page, texts["cat"])
        first = replies(page).last
        await expect(first.get_by_test_id("regenerate")).to_be_visible(timeout=15_000)
        await expect(first.get_by_test_id("regenerate")).to_have_attribute(
            "title", texts["regenerate"]
        )
        # 👍 is stored; ℹ️ tells what the reply cost.
        await first.get_by_test_id("rate-up").click()
        await expect(first.get_by_test_id("rate-up")).to_have_attribute("aria-pressed", "true")
        charged = 50_000 - await balance_of(stage, mina)
        await first.get_by_test_id("cost").click()
        await expect(page.locator("#toast")).to_have_text(texts["cost"].format(kopecks=charged))

        await stage.script("gpt-4o", reply=texts["second"])
        await first.get_by_test_id("regenerate").click()
        await expect(replies(page).last.get_by_test_id("message-body")).to_have_text(
            texts["second"]
        )
        await expect(page.get_by_test_id("replaced")).to_have_count(2)
        await expect(page.get_by_test_id("replaced").first).to_have_text(texts["replaced"])
        older = replies(page).first
        await expect(older).to_have_class("msg msg-assistant is-replaced")
        await expect(older.get_by_test_id("regenerate")).to_have_count(0)
        await assert_fits(page)
        await screenshot(page, f"{device}-chat-regenerated-{language}")

        await stage.script("o3-mini", reply=texts["third"])
        await expect(replies(page).last.get_by_test_id("regenerate-with")).to_be_visible()
        await replies(page).last.get_by_test_id("regenerate-with").click()
        await assert_fits(page)
        await screenshot(page, f"{device}-chat-regenerate-with-{language}")
        await page.get_by_test_id("regenerate-dialog").get_by_text("o3-mini").click()
        await expect(replies(page).last.get_by_test_id("message-body")).to_have_text(
            texts["third"], timeout=15_000
        )
        await expect(replies(page).last.get_by_test_id("rate-up")).to_be_visible()
        assert await stored(stage, mina) == [
            (texts["cat"], "gpt-4o", True, None),
            (texts["first"], "gpt-4o", True, 1),
            (texts["cat"], "gpt-4o", True, None),
            (texts["second"], "gpt-4o", True, None),
            (texts["cat"], "o3-mini", False, None),
            (texts["third"], "o3-mini", False, None),
        ]
        # The page as it opens again shows the same, replaced turns marked.
        await page.reload()
        await expect(page.get_by_test_id("message")).to_have_count(6, timeout=15_000)
        await expect(page.get_by_test_id("replaced")).to_have_count(4)
        assert errors == []
    finally:
        await context.close()


@BOTH
async def test_the_last_prompt_is_edited_and_asked_again(
    browser: Browser, stage: Stage, errors: list[str], language: str, phone: bool
) -> None:
    texts = TEXTS[language]
    device = "phone" if phone else "desktop"
    ivan = await stage.account("Ivan", language=language, money=50_000)
    await stage.script("gpt-4o", reply=texts["asked_reply"])
    context, page = await open_app(browser, stage, ivan, errors, phone=phone)
    try:
        await ask(page, texts["asked"])
        first = replies(page).last
        await expect(first.get_by_test_id("regenerate")).to_be_visible(timeout=15_000)
        prompt = page.locator('[data-testid="message"][data-role="user"]').last
        await prompt.get_by_test_id("edit-prompt").click()
        editor = page.get_by_test_id("edit-prompt-input")
        await expect(editor).to_have_value(texts["asked"])
        await editor.fill(texts["edited"])
        await assert_fits(page)
        await screenshot(page, f"{device}-chat-edit-prompt-{language}")
        await stage.script("gpt-4o", reply=texts["edited_reply"])
        await page.get_by_test_id("dialog-confirm").click()
        await expect(replies(page).last.get_by_test_id("message-body")).to_have_text(
            texts["edited_reply"], timeout=15_000
        )
        await expect(page.get_by_test_id("replaced").first).to_have_text(texts["replaced"])
        await expect(page.get_by_test_id("replaced")).to_have_count(2)
        await assert_fits(page)
        await screenshot(page, f"{device}-chat-edited-{language}")
        rows = await stored(stage, ivan)
        assert [(content, replaced) for content, _, replaced, _ in rows] == [
            (texts["asked"], True),
            (texts["asked_reply"], True),
            (texts["edited"], False),
            (texts["edited_reply"], False),
        ]
        assert errors == []
    finally:
        await context.close()
