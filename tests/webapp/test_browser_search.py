"""Finding and naming chats in headless Chromium against the real web app: the search box over
the chat list (messages and titles, Russian and English, matched words marked), renaming a chat,
and the model picker giving an open chat a model of its own. Phone and desktop, ru and en;
screenshots land in test-artifacts/screenshots."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from core.services import chat, conversations, presets, turns
from db.models import Conversation
from tests.sandbox_web.stage import PageServer
from tests.webapp.test_browser_pages import (
    Account,
    Stage,
    assert_fits,
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


async def talk(stage: Stage, account: Account, prompt: str, reply: str) -> int:
    """One finished turn in a new conversation, stored the way a chat stores it; its id."""
    now = datetime.now(UTC)
    async with stage.factory() as uow:
        await chat.new_conversation(uow, account.user_id)
        turn = await turns.begin_turn(
            uow, user_id=account.user_id, text=prompt, model=stage.menu.get(None), now=now
        )
        await turns.finish_turn(
            uow, turn, text=reply, reasoning="", usage=None, status="complete", now=now
        )
    return turn.conversation_id


async def test_chats_are_found_by_what_was_said_renamed_and_given_their_own_model_on_a_phone(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    mina = await stage.account("Mina", money=50_000)
    quokkas = await talk(
        stage, mina, "Where do quokkas live?", "Quokkas live on Rottnest Island, near Perth."
    )
    await talk(stage, mina, "A bread recipe", "Flour, water, salt and time.")
    async with stage.factory() as uow:
        guide = await presets.create_preset(
            uow, mina.user_id, title="Travel guide", prompt="Answer as a travel guide."
        )
    context, page = await open_app(browser, stage, mina, errors)
    try:
        await page.get_by_test_id("open-chats").click()
        await expect(page.get_by_test_id("conversation")).to_have_count(2)
        await page.get_by_test_id("chat-search").fill("island")
        found = page.get_by_test_id("search-result")
        await expect(found).to_have_count(1)
        await expect(found.get_by_test_id("search-snippet")).to_contain_text("Rottnest Island")
        await expect(found.locator("mark").first).to_have_text("Island")
        await screenshot(page, "phone-chat-search-en")
        await page.get_by_test_id("chat-search").fill("zebra")
        await expect(page.get_by_test_id("search-empty")).to_have_text("Nothing found for “zebra”.")
        await page.get_by_test_id("chat-search").fill("")
        await expect(page.get_by_test_id("conversation")).to_have_count(2)
        await page.get_by_test_id("chat-search").fill("quokka")
        await found.click()
        await expect(page.get_by_test_id("message")).to_have_count(2)
        assert page.url.endswith(f"/chat/{quokkas}")

        # This chat alone answers with another model and its own instructions.
        await page.get_by_test_id("model-picker").select_option("o3-mini")
        await expect(page.get_by_test_id("toast")).to_have_text(
            "This chat now answers with o3-mini."
        )
        await page.get_by_test_id("rename-conversation").click()
        await expect(page.get_by_test_id("rename-dialog")).to_contain_text("Name and instructions")
        await page.get_by_test_id("rename-input").fill("Trip to Australia")
        await page.get_by_test_id("chat-preset").select_option(label="Travel guide")
        await assert_fits(page)
        await screenshot(page, "phone-chat-rename-en")
        await page.get_by_test_id("dialog-confirm").click()
        await expect(page.get_by_test_id("view-title")).to_have_text("Trip to Australia")
        await expect(page.get_by_test_id("toast")).to_have_text("Chat renamed.")
        async with stage.factory() as uow:
            [mine] = [
                c
                for c in await conversations.list_conversations(uow, mina.user_id)
                if c.id == quokkas
            ]
            conversation = await uow.session.get(Conversation, quokkas)
            assert conversation is not None
            assert (conversation.model_id, conversation.preset_id) == ("o3-mini", guide.id)
            # The defaults for other and new chats stay.
            prefs = await chat.get_prefs(uow, mina.user_id)
            assert (prefs.model_id, prefs.preset_id) == (None, None)
        assert mine.title == "Trip to Australia"
        # The new name is found too.
        await page.get_by_test_id("open-chats").click()
        await page.get_by_test_id("chat-search").fill("australia")
        await expect(found).to_have_count(1)
        await expect(found.locator(".conv-title")).to_have_text("Trip to Australia")
        assert errors == []
    finally:
        await context.close()


async def test_russian_chats_are_found_and_an_open_chat_gets_its_own_model_on_a_desktop(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    ivan = await stage.account("Ivan", language="ru", money=50_000)
    cats = await talk(
        stage,
        ivan,
        "Почему кошки так много спят? Расскажи подробно, с примерами из жизни домашних котов",
        "Коты спят до шестнадцати часов в сутки: так они берегут силы для охоты.",
    )
    await talk(stage, ivan, "Рецепт борща", "Свёкла, капуста, картофель.")
    async with stage.factory() as uow:
        scholar = await presets.create_preset(
            uow, ivan.user_id, title="Кот-учёный", prompt="Отвечай как кот-учёный."
        )
    context, page = await open_app(browser, stage, ivan, errors, phone=False)
    try:
        # The long first message made a title cut at a word, with an ellipsis.
        titles = page.locator('[data-testid="conversation"] .conv-title')
        await expect(titles.last).to_have_text(
            "Почему кошки так много спят? Расскажи подробно, с примерами из…"
        )
        await page.get_by_test_id("chat-search").fill("котом")
        found = page.get_by_test_id("search-result")
        await expect(found).to_have_count(1)
        await expect(found.get_by_test_id("search-snippet")).to_contain_text("Коты спят")
        await found.click()
        await expect(page.get_by_test_id("message")).to_have_count(2)
        await screenshot(page, "desktop-chat-search-ru")
        await page.get_by_test_id("chat-search").fill("жираф")
        await expect(page.get_by_test_id("search-empty")).to_have_text(
            "По запросу «жираф» ничего не найдено."
        )

        picker = page.get_by_test_id("model-picker")
        await expect(picker).to_have_value("gpt-4o")
        await picker.select_option("o3-mini")
        await expect(page.get_by_test_id("toast")).to_have_text(
            "Теперь этот чат отвечает моделью o3-mini."
        )
        async with stage.factory() as uow:
            conversation = await uow.session.get(Conversation, cats)
            assert conversation is not None and conversation.model_id == "o3-mini"
            # The default for other and new chats stays.
            assert (await chat.get_prefs(uow, ivan.user_id)).model_id is None
        await page.reload()
        await expect(page.get_by_test_id("model-picker")).to_have_value("o3-mini")
        await page.get_by_test_id("new-chat").click()
        await expect(page.get_by_test_id("model-picker")).to_have_value("gpt-4o")
        await page.get_by_test_id("conversation").last.click()
        await expect(page.get_by_test_id("model-picker")).to_have_value("o3-mini")
        # The chat's own instructions: a preset picked for it alone.
        await page.get_by_test_id("rename-conversation").click()
        await expect(page.get_by_test_id("rename-dialog")).to_contain_text("Название и инструкции")
        await page.get_by_test_id("chat-preset").select_option(label="Кот-учёный")
        await screenshot(page, "desktop-chat-rename-ru")
        await page.get_by_test_id("dialog-confirm").click()
        await expect(page.get_by_test_id("toast")).to_have_text("Сохранено.")
        async with stage.factory() as uow:
            conversation = await uow.session.get(Conversation, cats)
            assert conversation is not None and conversation.preset_id == scholar.id
            assert (await chat.get_prefs(uow, ivan.user_id)).preset_id is None
        assert errors == []
    finally:
        await context.close()
