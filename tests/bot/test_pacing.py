"""The send pacer and the final reply, against the sandbox's Telegram over HTTP: a final reply
waits out any number of 429s, a chat that is gone ends the reply at once as undelivered, and
previews give way to messages that must arrive."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramForbiddenError
from sqlalchemy import select

from bench.turns import END, paced_reply, register_users
from bot.pacing import Dropped, Limits, SendPacer, droppable
from bot.streaming import Relay
from core.providers.base import StreamEvent, TextDelta
from core.services import billing
from db.models import ChatMessageRow, LedgerEntry
from tests.bot.conftest import POLICY_VERSION, BotHarness


@contextlib.asynccontextmanager
async def paced_bot(harness: BotHarness, limits: Limits) -> AsyncIterator[tuple[Bot, SendPacer]]:
    """A second bot on the same sandbox, with a pacer of the given limits."""
    token = f"{secrets.randbelow(10**9) + 10**9}:{secrets.token_urlsafe(27)}"
    pacer = SendPacer(limits)
    session = AiohttpSession(api=TelegramAPIServer.from_base(harness.sandbox.url))
    session.middleware(pacer)
    bot = Bot(token, session=session, default=DefaultBotProperties(parse_mode="HTML"))
    await harness.client.register_bot(token, f"pacer_{bot.id}_bot")
    try:
        yield bot, pacer
    finally:
        await bot.session.close()
        # The sandbox routes users' messages to the bot heard from last: the harness's again.
        await harness.bot.get_me()


async def stream(text: str, pieces: int, seconds: float) -> AsyncIterator[StreamEvent]:
    size = max(1, len(text) // pieces)
    for start in range(0, len(text), size):
        yield TextDelta(text[start : start + size])
        await asyncio.sleep(seconds / pieces)


async def _one_user(harness: BotHarness) -> tuple[int, int]:
    [(telegram_id, user_id)] = (
        await register_users(
            harness.client, harness.uow_factory, 1, money=100_000, policy=POLICY_VERSION
        )
    ).items()
    return telegram_id, user_id


async def _stored_replies(harness: BotHarness, user_id: int) -> list[str]:
    async with harness.uow_factory() as uow:
        rows = await uow.session.scalars(
            select(ChatMessageRow.status).where(
                ChatMessageRow.user_id == user_id, ChatMessageRow.role == "assistant"
            )
        )
        return list(rows)


async def _charges(harness: BotHarness, user_id: int) -> int:
    async with harness.uow_factory() as uow:
        rows = await uow.session.scalars(
            select(LedgerEntry.id).where(
                LedgerEntry.user_id == user_id, LedgerEntry.category == "text"
            )
        )
        return len(list(rows))


async def test_a_final_reply_meeting_repeated_429s_arrives_after_waiting_them_out(
    harness: BotHarness,
) -> None:
    chat_id, user_id = await _one_user(harness)
    # More refusals than the old retry loop (three tries) would absorb.
    await harness.client.fault("sendMessage", 429, retry_after=1, chat_id=chat_id, count=5)
    await harness.client._call(
        "POST",
        "/providers/script",
        json={"provider": "openai", "reply": paced_reply(10), "chunk_size": 200},
    )
    before = await harness.client.last_seq()
    started = time.monotonic()
    await harness.client.send_text(chat_id, "Hello")
    final = await harness.client.wait_for(
        lambda e: e["type"] == "bot_message" and END in (e["message"].get("text") or ""),
        chat_id=chat_id,
        after=before,
        wait=30,
    )
    assert final["message"]["text"].startswith("Paced")
    assert time.monotonic() - started >= 4.5  # five retry_after waits of a second
    for _ in range(50):
        if await _stored_replies(harness, user_id):
            break
        await asyncio.sleep(0.1)
    assert await _stored_replies(harness, user_id) == ["complete"]
    assert await _charges(harness, user_id) == 1


async def test_a_final_reply_to_a_blocked_user_is_undelivered_and_not_stored_as_complete(
    harness: BotHarness,
) -> None:
    chat_id, user_id = await _one_user(harness)
    await harness.client._call(
        "POST",
        "/providers/script",
        json={
            "provider": "openai",
            "reply": paced_reply(80),
            "chunk_size": 20,
            "chunk_delay_ms": 20,
        },
    )
    before = await harness.client.last_seq()
    await harness.client.send_text(chat_id, "Hello")
    await harness.client.wait_for(lambda e: e["type"] == "draft", chat_id=chat_id, after=before)
    await harness.client.block(chat_id)
    try:
        stored: list[str] = []
        for _ in range(100):
            stored = await _stored_replies(harness, user_id)
            if stored:
                break
            await asyncio.sleep(0.1)
        # The turn ended within seconds: no endless retries against a chat that is gone.
        assert stored == ["undelivered"]
        async with harness.uow_factory() as uow:
            assert (await billing.get_balance(uow, user_id)).reserved == 0
    finally:
        await harness.client.block(chat_id, blocked=False)


async def test_relay_reports_a_reply_the_chat_never_got_as_undelivered(
    harness: BotHarness,
) -> None:
    async with paced_bot(harness, Limits()) as (bot, _pacer):
        chat_id, _user_id = await _one_user(harness)
        await harness.client.send_text(chat_id, "hi", bot_id=bot.id)
        await harness.client.fault("sendMessage", 403, chat_id=chat_id, count=1)
        relay = Relay(bot, chat_id, private=True)
        outcome = await asyncio.wait_for(relay.run(stream("A reply nobody reads.", 4, 0.2)), 10)
        assert outcome.text == "A reply nobody reads."
        assert outcome.delivered is False
        # The same reply to a chat that takes it is delivered.
        outcome = await asyncio.wait_for(
            Relay(bot, chat_id, private=True).run(stream("A reply read.", 4, 0.2)), 10
        )
        assert outcome.delivered is True


async def test_previews_are_dropped_under_pressure_and_the_final_reply_is_not_delayed(
    harness: BotHarness,
) -> None:
    async with paced_bot(harness, Limits(draft_rate=1.0, draft_burst=1.0)) as (bot, pacer):
        chat_id, _user_id = await _one_user(harness)
        await harness.client.send_text(chat_id, "hi", bot_id=bot.id)
        before = await harness.client.last_seq()
        relay = Relay(bot, chat_id, private=True)
        text = " ".join(f"w{n}" for n in range(200))
        streamed = time.monotonic()
        outcome = await asyncio.wait_for(relay.run(stream(text, 40, 2.0)), 15)
        finished = time.monotonic()
        assert outcome.delivered is True
        # The stream took about 2 s; the final reply went straight after it.
        assert finished - streamed < 3.5
        events, _ = await harness.client.events(after=before, chat_id=chat_id)
        drafts = [e for e in events if e["type"] == "draft" and e["text"]]
        finals = [e for e in events if e["type"] == "bot_message"]
        assert [e["message"]["text"] for e in finals] == [text]
        # One draft a second fitted the budget; the rest were dropped, not queued.
        assert 1 <= len(drafts) <= 4
        assert pacer.dropped >= 1


async def test_a_preview_gives_way_while_must_deliver_messages_wait_for_the_budget(
    harness: BotHarness,
) -> None:
    async with paced_bot(harness, Limits(global_rate=4.0, global_burst=2.0)) as (bot, pacer):
        people = await register_users(
            harness.client, harness.uow_factory, 8, money=0, policy=POLICY_VERSION
        )
        for chat_id in people:
            await harness.client.send_text(chat_id, "hi", bot_id=bot.id)
        chats = list(people)
        [anchor] = [await bot.send_message(chats[0], "Writing…")]
        await asyncio.sleep(1.0)
        sends = [
            asyncio.create_task(bot.send_message(chat_id, f"Reply {n}"))
            for n, chat_id in enumerate(chats)
        ]
        await asyncio.sleep(0.05)
        # The bot-wide budget is spoken for: a preview is dropped at once, without waiting.
        started = time.monotonic()
        with pytest.raises(Dropped), droppable():
            await bot.edit_message_text("Preview", chat_id=chats[0], message_id=anchor.message_id)
        assert time.monotonic() - started < 0.5
        delivered = await asyncio.wait_for(asyncio.gather(*sends), 15)
        assert [m.text for m in delivered] == [f"Reply {n}" for n in range(len(chats))]
        assert pacer.waited_429 == 0  # the budget kept every call under the sandbox's limits


async def test_a_must_deliver_call_to_a_chat_that_is_gone_fails_at_once(
    harness: BotHarness,
) -> None:
    async with paced_bot(harness, Limits()) as (bot, _pacer):
        chat_id, _user_id = await _one_user(harness)
        await harness.client.send_text(chat_id, "hi", bot_id=bot.id)
        await harness.client.fault("sendMessage", 403, chat_id=chat_id, count=1)
        with pytest.raises(TelegramForbiddenError):
            await asyncio.wait_for(bot.send_message(chat_id, "Anyone?"), 5)


async def test_a_must_deliver_call_is_retried_through_server_errors(
    harness: BotHarness,
) -> None:
    async with paced_bot(harness, Limits()) as (bot, _pacer):
        chat_id, _user_id = await _one_user(harness)
        await harness.client.send_text(chat_id, "hi", bot_id=bot.id)
        await harness.client.fault("sendMessage", 500, chat_id=chat_id, count=2)
        sent = await asyncio.wait_for(bot.send_message(chat_id, "Still here"), 10)
        assert sent.text == "Still here"
        assert [m["text"] for m in await harness.client.bot_messages(chat_id)] == ["Still here"]
