"""The inbox through the real dispatcher: updates a previous run left are handled at start-up
and their rows deleted; the webhook answers 200 only once an update is recorded, hands a
redelivered update to the handlers once, and answers 503 when it cannot record it."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select, update

from bot.inbox import InboxRunner, InboxWebhookHandler
from core.services import inbox
from db.engine import UnitOfWorkFactory, create_engine
from db.models import InboxUpdate
from tests.bot.conftest import BotHarness, Person, PersonFactory, is_bot_message, text_of

HOOK = "/telegram/hook"


def _command(person: Person, text: str) -> dict[str, Any]:
    """A private-chat command from ``person``, as Telegram sends it to a webhook."""
    sender = {"id": person.id, "is_bot": False, "first_name": "Ina", "language_code": "en"}
    return {
        "update_id": secrets.randbelow(2**40) + 2**42,
        "message": {
            "message_id": secrets.randbelow(10**6) + 10**6,
            "date": int(time.time()),
            "chat": {"id": person.id, "type": "private", "first_name": "Ina"},
            "from": sender,
            "text": text,
            "entities": [{"type": "bot_command", "offset": 0, "length": len(text)}],
        },
    }


async def _rows(harness: BotHarness, update_id: int) -> int:
    async with harness.uow_factory() as uow:
        found = await uow.session.scalar(
            select(func.count()).where(InboxUpdate.update_id == update_id)
        )
    return int(found or 0)


async def _replies_within(person: Person, after: int, wait: float) -> list[str]:
    """Every bot message to ``person`` after ``after`` arriving within ``wait`` seconds."""
    events, _ = await person.client.events(after=after, chat_id=person.id, wait=wait)
    deadline = asyncio.get_running_loop().time() + wait
    while asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.2)
        events, _ = await person.client.events(after=after, chat_id=person.id)
    return [text_of(e) for e in events if is_bot_message(e)]


@pytest.fixture
async def webhook(harness: BotHarness) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    app = web.Application()
    InboxWebhookHandler(
        harness.dp, harness.bot, harness.uow_factory, secret_token="s3cret"
    ).register(app, path=HOOK)
    # On shutdown the handler finishes what it holds and deletes the rows (the bot's session
    # stays open: it belongs to the harness).
    async with TestClient(TestServer(app)) as client:
        yield client


async def test_updates_left_by_a_crash_are_handled_at_start_up_and_deleted(
    harness: BotHarness, person: PersonFactory
) -> None:
    ina = await person("Ina")
    await ina.say("/paysupport")  # the chat with the bot is open
    left = _command(ina, "/paysupport")
    async with harness.uow_factory() as uow:
        await inbox.record(uow, [left])
        # Recorded a while ago by a run that died before handling it.
        await uow.session.execute(
            update(InboxUpdate)
            .where(InboxUpdate.update_id == left["update_id"])
            .values(received_at=datetime.now(UTC) - timedelta(minutes=5))
        )
        await uow.commit()
    after = await harness.client.last_seq()
    runner = InboxRunner(harness.dp, harness.bot, harness.uow_factory)
    runner.start()
    handed = await runner.handle_waiting(received_before=datetime.now(UTC) - timedelta(minutes=1))
    assert handed >= 1
    [reply] = await ina.replies(after, 1)
    assert text_of(reply)
    await runner.drain()
    assert await _rows(harness, left["update_id"]) == 0


async def test_the_webhook_hands_a_redelivered_update_to_the_handlers_once(
    harness: BotHarness,
    person: PersonFactory,
    webhook: TestClient,  # type: ignore[type-arg]
) -> None:
    ina = await person("Ina")
    await ina.say("/paysupport")  # the chat with the bot is open
    sent = _command(ina, "/paysupport")
    headers = {"X-Telegram-Bot-Api-Secret-Token": "s3cret"}
    after = await harness.client.last_seq()
    first = await webhook.post(HOOK, json=sent, headers=headers)
    assert first.status == 200
    # Telegram did not see the answer and sends the same update again while it is handled.
    again = await webhook.post(HOOK, json=sent, headers=headers)
    assert again.status == 200
    replies = await _replies_within(ina, after, wait=2.0)
    assert len(replies) == 1, replies


async def test_the_webhook_refuses_a_wrong_secret_and_what_is_not_an_update(
    webhook: TestClient,  # type: ignore[type-arg]
) -> None:
    wrong = await webhook.post(HOOK, json={"update_id": 1}, headers={})
    assert wrong.status == 401
    headers = {"X-Telegram-Bot-Api-Secret-Token": "s3cret"}
    junk = await webhook.post(HOOK, json={"hello": "world"}, headers=headers)
    assert junk.status == 400


async def test_the_webhook_answers_503_when_the_update_cannot_be_recorded(
    harness: BotHarness, person: PersonFactory
) -> None:
    ina = await person("Ina")
    await ina.say("/paysupport")  # the chat with the bot is open
    # A database that is not there: nothing answers on this port.
    engine = create_engine("postgresql://netroom@127.0.0.1:9/netroom", pool_size=1)
    app = web.Application()
    InboxWebhookHandler(harness.dp, harness.bot, UnitOfWorkFactory.for_engine(engine)).register(
        app, path=HOOK
    )
    sent = _command(ina, "/paysupport")
    after = await harness.client.last_seq()
    try:
        async with TestClient(TestServer(app)) as client:
            response = await client.post(HOOK, json=sent)
            assert response.status == 503
    finally:
        await engine.dispose()
    # Not recorded, so not handled either: Telegram sends it again later.
    assert await _replies_within(ina, after, wait=1.0) == []
    assert await _rows(harness, sent["update_id"]) == 0
