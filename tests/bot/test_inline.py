"""Inline mode through the real bot and the sandbox: ``@bot question`` in a chat the bot is not
in, answered by editing the sent message, billed to the asker once; off unless switched on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from core.services import billing
from db.models import ChatMessageRow, Conversation
from sandbox.client import Event
from tests.bot.conftest import BotHarness, PersonFactory
from tests.bot.test_chat import _balance, _ready, _script


@pytest.fixture
async def inline_on(harness: BotHarness) -> AsyncIterator[None]:
    """BOT__INLINE_MODE=true for one test. The harness's bot runs for the whole session, so its
    settings object is changed in place: the same as restarting the bot with the switch on."""
    ctx = harness.dp["ctx"]
    original = ctx.inline_mode
    object.__setattr__(ctx, "inline_mode", True)
    yield
    object.__setattr__(ctx, "inline_mode", original)


def _answered(query_id: str) -> Callable[[Event], bool]:
    return lambda e: e["type"] == "inline_answered" and e["inline_query_id"] == query_id


async def _ask_inline(harness: BotHarness, user_id: int, question: str) -> tuple[str, Event]:
    after = await harness.client.last_seq()
    sent = await harness.client.inline_query(user_id, question, chat_type="group")
    query_id = str(sent["inline_query_id"])
    answer = await harness.client.wait_for(_answered(query_id), chat_id=user_id, after=after)
    return query_id, answer


async def _text_entries(harness: BotHarness, user_id: int) -> list[billing.EntryDTO]:
    async with harness.uow_factory() as uow:
        entries = await billing.history(uow, user_id, limit=100)
    return [e for e in entries if e.category == "text"]


async def _settled(harness: BotHarness, user_id: int) -> list[billing.EntryDTO]:
    """The asker's text charges once the answer's hold is settled (just after the edit)."""
    for _ in range(100):
        async with harness.uow_factory() as uow:
            if (await billing.get_balance(uow, user_id)).reserved == 0:
                break
        await asyncio.sleep(0.1)
    return await _text_entries(harness, user_id)


async def test_an_inline_query_goes_unanswered_when_inline_mode_is_off(
    harness: BotHarness, person: PersonFactory
) -> None:
    ann = await _ready(harness, person, "Ann")
    sent = await harness.client.inline_query(ann.id, "What is the capital of France?")
    assert sent["update_id"] is not None, "the sandbox delivered the query"
    # Proof the bot has read past the query: a private message sent after it is answered.
    await _script(harness, provider="openai", reply="Still here.")
    await ann.say("ping")
    await asyncio.sleep(1)
    assert await harness.client.inline_answer(str(sent["inline_query_id"])) is None


async def test_an_inline_question_is_answered_in_the_sent_message_and_billed_once(
    harness: BotHarness, person: PersonFactory, inline_on: None
) -> None:
    bea = await _ready(harness, person, "Bea")
    friend = await person("Friend")
    # A chat the bot is not in: inline mode answers anywhere.
    group = await harness.client.create_group("Friends", [bea.id, friend.id], with_bot=False)
    group_id = int(group["id"])
    await _script(harness, provider="openai", reply="Paris is the **capital** of France.")
    before = await _balance(harness, bea)

    query_id, answer = await _ask_inline(harness, bea.id, "What is the capital of France?")
    [result] = answer["results"]
    assert result["type"] == "article"
    assert "What is the capital of France?" in result["input_message_content"]["message_text"]

    after = await harness.client.last_seq()
    sent = await harness.client.choose_inline_result(query_id, result["id"], chat_id=group_id)
    assert sent["inline_message_id"], "the result carries a keyboard, so it can be edited"
    assert sent["message"]["via_bot"]["username"]
    edited = await harness.client.wait_for(
        lambda e: e["type"] == "message_edited" and "Paris" in (e["message"].get("text") or ""),
        chat_id=group_id,
        after=after,
    )
    text = edited["message"]["text"]
    assert text.startswith("❓ What is the capital of France?")
    assert "Paris is the capital of France." in text
    assert any(e["type"] == "bold" for e in edited["message"].get("entities", []))

    [entry] = await _settled(harness, bea.user_id)  # type: ignore[attr-defined]
    assert entry.amount < 0
    assert await _balance(harness, bea) == before + entry.amount
    async with harness.uow_factory() as uow:
        assert (await billing.get_balance(uow, bea.user_id)).reserved == 0  # type: ignore[attr-defined]
        # Nothing of an inline question is kept as a chat.
        for model in (ChatMessageRow, Conversation):
            count = await uow.session.scalar(
                select(func.count()).select_from(model).where(model.user_id == bea.user_id)  # type: ignore[attr-defined]
            )
            assert count == 0

    # The same result reported again (a cached result sent twice) is not answered or billed again.
    again = await harness.client.choose_inline_result(query_id, result["id"], chat_id=group_id)
    await asyncio.sleep(2)
    transcript = await harness.client.transcript(group_id)
    [second] = [
        m for m in transcript["messages"] if m["message_id"] == again["message"]["message_id"]
    ]
    assert "Paris" not in (second.get("text") or "")
    assert len(await _text_entries(harness, bea.user_id)) == 1  # type: ignore[attr-defined]


async def test_an_inline_query_from_someone_without_an_account_offers_the_start_link(
    harness: BotHarness, person: PersonFactory, inline_on: None
) -> None:
    stranger = await person("Stranger")
    _, answer = await _ask_inline(harness, stranger.id, "Hello?")
    [result] = answer["results"]
    assert result["title"] == "Open NetRoom to start"
    [[button]] = result["reply_markup"]["inline_keyboard"]
    assert button["url"].endswith("?start=inline")
    assert answer["button"]["start_parameter"] == "inline"


async def test_an_inline_question_without_money_says_so_and_costs_nothing(
    harness: BotHarness, person: PersonFactory, inline_on: None
) -> None:
    cal: Any = await _ready(harness, person, "Cal", money=0)
    query_id, answer = await _ask_inline(harness, cal.id, "Write me a poem")
    [result] = answer["results"]
    after = await harness.client.last_seq()
    sent = await harness.client.choose_inline_result(query_id, result["id"])
    edited = await harness.client.wait_for(
        lambda e: (
            e["type"] == "message_edited" and e["message_id"] == sent["message"]["message_id"]
        ),
        chat_id=cal.id,
        after=after,
    )
    assert "Not enough money" in edited["message"]["text"]
    assert await _settled(harness, cal.user_id) == []
    assert await _balance(harness, cal) == 0
    # The result sent into the bot's own chat is not taken for a prompt.
    events, _ = await harness.client.events(after=after)
    assert not [e for e in events if e["type"] == "bot_message" and e["chat_id"] == cal.id]


async def test_an_inline_query_in_russian_offers_the_start_link_in_russian(
    harness: BotHarness, person: PersonFactory, inline_on: None
) -> None:
    stranger = await person("Незнакомец", language_code="ru")
    _, answer = await _ask_inline(harness, stranger.id, "Привет?")
    [result] = answer["results"]
    assert result["title"] == "Откройте NetRoom, чтобы начать"
    assert answer["button"]["text"] == "Откройте NetRoom, чтобы начать"


async def test_an_inline_answer_the_model_cut_short_says_so_and_costs_nothing(
    harness: BotHarness, person: PersonFactory, inline_on: None
) -> None:
    dee = await _ready(harness, person, "Dee")
    group = await harness.client.create_group("Pals", [dee.id], with_bot=False)
    group_id = int(group["id"])
    await _script(
        harness,
        provider="openai",
        reply="partial answer " * 30,
        chunk_size=15,
        fault={"kind": "cut", "after_chunks": 5},
    )
    query_id, answer = await _ask_inline(harness, dee.id, "Tell me a story")
    [result] = answer["results"]
    after = await harness.client.last_seq()
    sent = await harness.client.choose_inline_result(query_id, result["id"], chat_id=group_id)
    edited = await harness.client.wait_for(
        lambda e: (
            e["type"] == "message_edited" and e["message_id"] == sent["message"]["message_id"]
        ),
        chat_id=group_id,
        after=after,
    )
    text = edited["message"]["text"]
    assert text.startswith("❓ Tell me a story")
    assert "partial answer" not in text
    assert "Please try again" in text
    assert await _settled(harness, dee.user_id) == []  # type: ignore[attr-defined]
    assert await _balance(harness, dee) == 100_000
