"""A turn across transports and its end when its task is cancelled: the real bot and dispatcher
against the sandbox's Telegram and provider fakes, with the web app (create_app()) on the same
Postgres and Redis."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from datetime import UTC, datetime

import httpx
from aiogram.types import Chat, Message, Update
from aiogram.types import User as TelegramUser
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.providers.registry import ProviderRegistry
from core.providers.settings import sandbox_providers
from core.services import billing, turn_lock
from db.models import ChatMessageRow, Reservation
from tests.bot.conftest import MODELS, TARIFFS, BotHarness, PersonFactory, buttons
from tests.bot.test_chat import _balance, _ready, _script
from tests.webapp.conftest import ClientMaker, make_context, web_access_token
from tests.webapp.test_chat_api import price_of, read_events
from webapp.app import create_app

SECRET = "turns-web-secret-of-at-least-32-bytes!"


async def _nothing_held(harness: BotHarness, user_id: int) -> None:
    async with harness.uow_factory() as uow:
        assert await billing.check_consistency(uow, user_id)
        assert (await billing.get_balance(uow, user_id)).reserved == 0
        held = await uow.session.scalars(
            select(Reservation.id).where(
                Reservation.user_id == user_id, Reservation.status == "held"
            )
        )
        assert list(held) == []


async def test_the_same_user_cannot_stream_in_the_bot_and_the_web_at_once(
    harness: BotHarness,
    person: PersonFactory,
    aiohttp_client: ClientMaker,
    engine: AsyncEngine,
    redis: Redis,
) -> None:
    gus = await _ready(harness, person, "Gus")
    user_id: int = gus.user_id  # type: ignore[attr-defined]
    async with httpx.AsyncClient() as http:
        web = await aiohttp_client(
            create_app(
                make_context(
                    engine,
                    redis,
                    jwt_secret=SECRET,
                    models=MODELS,
                    providers=ProviderRegistry(sandbox_providers(harness.sandbox.url), http),
                    tariffs=TARIFFS,
                )
            )
        )
        async with harness.uow_factory() as uow:
            headers = {
                "Authorization": f"Bearer {await web_access_token(uow, user_id, secret=SECRET)}"
            }
        await _script(
            harness, provider="openai", reply="slow " * 400, chunk_size=5, chunk_delay_ms=30
        )
        before = await harness.client.last_seq()
        await harness.client.send_text(gus.id, "First, in the bot")
        writing = await harness.client.wait_for(
            lambda e: e["type"] == "bot_message" and buttons(e), chat_id=gus.id, after=before
        )
        # The bot's reply is streaming: the web app refuses this user, after a short wait.
        busy = await web.post("/api/chat", json={"text": "Second, on the web"}, headers=headers)
        assert busy.status == 409 and (await busy.json())["error"] == "busy"
        # Stop from the web, by the turn id the bot's Stop button carries.
        [stop] = buttons(writing)
        turn_id = stop["callback_data"].split(":", 1)[1]
        stopped = await web.post(f"/api/chat/{turn_id}/stop", headers=headers)
        assert stopped.status == 204
        await harness.client.wait_for(
            lambda e: e["type"] == "bot_message" and "Stopped" in (e["message"].get("text") or ""),
            chat_id=gus.id,
            after=before,
            wait=20,
        )
        # Right after, the web app gets in.
        await _script(harness, provider="openai", reply="Web reply.", chunk_delay_ms=0)
        answer = await web.post("/api/chat", json={"text": "Now?"}, headers=headers)
        assert answer.status == 200
        events = [event async for event in read_events(answer)]
        assert events[-1][0] == "done" and events[-1][1]["status"] == "complete"
        # And while the web streams, the bot refuses.
        await _script(
            harness, provider="openai", reply="web " * 300, chunk_size=4, chunk_delay_ms=30
        )
        streaming = await web.post("/api/chat", json={"text": "Long, on the web"}, headers=headers)
        assert streaming.status == 200
        first = await streaming.content.readline()
        assert first.startswith(b"event: start")
        before = await harness.client.last_seq()
        await harness.client.send_text(gus.id, "And in the bot?")
        await harness.client.wait_for(
            lambda e: (
                e["type"] == "bot_message" and "still answering" in (e["message"].get("text") or "")
            ),
            chat_id=gus.id,
            after=before,
        )
        streaming.close()
    await asyncio.sleep(0.5)
    await _nothing_held(harness, user_id)


async def test_a_cancelled_turn_ends_cut_billed_for_what_was_shown(
    harness: BotHarness, person: PersonFactory, redis: Redis
) -> None:
    hal = await _ready(harness, person, "Hal")
    user_id: int = hal.user_id  # type: ignore[attr-defined]
    await _script(harness, provider="openai", reply="slow " * 400, chunk_size=5, chunk_delay_ms=30)
    before = await harness.client.last_seq()
    update = Update(
        update_id=secrets.randbelow(10**9),
        message=Message(
            message_id=secrets.randbelow(10**6) + 10**6,
            date=datetime.now(UTC),
            chat=Chat(id=hal.id, type="private"),
            from_user=TelegramUser(id=hal.id, is_bot=False, first_name="Hal", language_code="en"),
            text="A long story, please",
        ),
    )
    # The update handled as the dispatcher does, in a task a shutdown would cancel.
    handling = asyncio.create_task(harness.dp.feed_update(harness.bot, update))
    await harness.client.wait_for(
        lambda e: e["type"] == "draft" and len(e["text"]) > 40, chat_id=hal.id, after=before
    )
    handling.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(handling, 10)
    final = await harness.client.wait_for(
        lambda e: e["type"] == "bot_message" and "cut short" in (e["message"].get("text") or ""),
        chat_id=hal.id,
        after=before,
    )
    text = final["message"]["text"]
    assert text.startswith("slow") and "service is restarting" in text
    async with harness.uow_factory() as uow:
        stored = (
            await uow.session.execute(
                select(ChatMessageRow.content, ChatMessageRow.status)
                .where(ChatMessageRow.user_id == user_id, ChatMessageRow.role == "assistant")
                .order_by(ChatMessageRow.id.desc())
            )
        ).first()
    assert stored is not None
    content, status = stored
    assert status == "cut" and content.startswith("slow") and content.count("slow") < 400
    assert text.startswith(content.rstrip())
    spent = 100_000 - await _balance(harness, hal)
    # Billed on what was shown, by the same estimate as any reply without usage.
    assert spent == price_of(MODELS.get(None), "A long story, please", content) > 0
    await _nothing_held(harness, user_id)
    assert not await redis.exists(turn_lock.lock_key(user_id))
