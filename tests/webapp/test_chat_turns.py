"""A web turn's money and lock, through create_app() over real HTTP with the sandbox's provider
fakes: a delivered reply is always settled (odd characters, a conversation deleted meanwhile, a
stream cut short), charges never exceed the hold, and the user's one lock is freed by its owner at
once, or by its TTL when the owner vanished."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import select

from core.services import billing, turn_lock
from db.models import Reservation
from tests.webapp.test_chat_api import Env, User, env, price_of, read_events

__all__ = ["env"]


async def _settled(env: Env, user: User) -> billing.BalanceDTO:
    """The user's balance, after checking it equals the sum of the ledger and no hold is left."""
    async with env.factory() as uow:
        balance = await billing.get_balance(uow, user.id)
        assert await billing.check_consistency(uow, user.id)
        held = await uow.session.scalars(
            select(Reservation.id).where(
                Reservation.user_id == user.id, Reservation.status == "held"
            )
        )
        assert list(held) == []
    assert balance.reserved == 0
    return balance


async def test_a_reply_with_nul_and_a_lone_surrogate_is_delivered_stored_clean_and_billed(
    env: Env,
) -> None:
    ann = await env.user(money=100_000)
    reply = "Before\x00after and \ud800 alone."
    # As a provider would send them: JSON escapes (a lone surrogate cannot be UTF-8).
    script = {"provider": "openai", "model": env.paid.provider_model, "reply": reply}
    answer = await env.http.post(
        f"{env.sandbox.url}/sandbox/api/providers/script",
        content=json.dumps({**script, "chunk_size": 4, "chunk_delay_ms": 0}),
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 201, answer.text
    # (A prompt with them is refused at the door: 400; the model's reply cannot be.)
    events = await env.chat(ann, text="Odd characters", conversation_id=None)
    clean = "Before\ufffdafter and \ufffd alone."
    assert "".join(d["text"] for n, d in events if n == "delta") == clean
    start, done = events[0][1], events[-1][1]
    assert events[-1][0] == "done" and done["status"] == "complete"
    assert done["message_id"] is not None and done["charged_kopecks"] > 0
    stored = await env.messages(ann, start["conversation_id"])
    assert [(m["content"], m["status"]) for m in stored] == [
        ("Odd characters", "complete"),
        (clean, "complete"),
    ]
    balance = await _settled(env, ann)
    assert balance.balance == 100_000 - done["charged_kopecks"]


async def test_a_conversation_deleted_mid_stream_still_pays_for_the_reply(env: Env) -> None:
    bea = await env.user(money=100_000)
    await env.script(reply="words " * 60, chunk_size=6, chunk_delay_ms=20)
    response = await env.client.post(
        "/api/chat", json={"text": "Talk", "conversation_id": None}, headers=bea.headers
    )
    events = read_events(response)
    _, start = await anext(events)
    deleted = await env.client.delete(
        f"/api/conversations/{start['conversation_id']}", headers=bea.headers
    )
    assert deleted.status == 204
    rest = [event async for event in events]
    text = "".join(d["text"] for n, d in rest if n == "delta")
    name, done = rest[-1]
    assert name == "done" and done["status"] == "complete" and text == "words " * 60
    # Paid for, though there is nowhere left to keep it.
    assert done["message_id"] is None and done["charged_kopecks"] > 0
    balance = await _settled(env, bea)
    assert balance.balance == 100_000 - done["charged_kopecks"]


async def test_a_stream_cut_after_some_chunks_is_billed_on_what_was_delivered(env: Env) -> None:
    cid = await env.user(money=100_000)
    full = "A sentence that goes on and on. " * 40
    await env.script(reply=full, chunk_size=8, chunk_delay_ms=0)
    complete = await env.chat(cid, text="Go", conversation_id=None)
    complete_price = complete[-1][1]["charged_kopecks"]
    await env.script(
        reply=full, chunk_size=8, chunk_delay_ms=0, fault={"kind": "cut", "after_chunks": 30}
    )
    events = await env.chat(cid, text="Go", conversation_id=None)
    text = "".join(d["text"] for n, d in events if n == "delta")
    done = events[-1][1]
    assert done["status"] == "failed" and text == full[: 30 * 8]
    assert done["charged_kopecks"] == price_of(env.paid, "Go", text) > 0
    # A quarter of the reply costs less than all of it.
    assert done["charged_kopecks"] < complete_price
    balance = await _settled(env, cid)
    assert balance.balance == 100_000 - complete_price - done["charged_kopecks"]


async def test_stop_frees_the_lock_at_once_even_while_the_model_is_silent(
    env: Env, redis: Redis
) -> None:
    dan = await env.user(money=100_000)
    # One chunk, then a long silence.
    await env.script(reply="first" + "x" * 50, chunk_size=5, chunk_delay_ms=5_000)
    response = await env.client.post(
        "/api/chat", json={"text": "Slow", "conversation_id": None}, headers=dan.headers
    )
    events = read_events(response)
    _, start = await anext(events)
    assert await redis.exists(turn_lock.lock_key(dan.id))
    stopped_at = time.monotonic()
    stop = await env.client.post(f"/api/chat/{start['turn_id']}/stop", headers=dan.headers)
    assert stop.status == 204
    async with asyncio.timeout(5):
        rest = [event async for event in events]
    assert time.monotonic() - stopped_at < turn_lock.CLAIM_ATTEMPTS * 0.5
    assert rest[-1][0] == "done" and rest[-1][1]["status"] == "stopped"
    assert not await redis.exists(turn_lock.lock_key(dan.id))
    await env.script(reply="Next.", chunk_delay_ms=0)
    assert (await env.chat(dan, text="Again"))[-1][1]["status"] == "complete"
    await _settled(env, dan)


async def test_a_lock_whose_owner_vanished_frees_within_its_ttl(env: Env, redis: Redis) -> None:
    eve = await env.user(money=100_000)
    # A turn of a process that died: its token is never renewed.
    await redis.set(turn_lock.lock_key(eve.id), "token-of-a-dead-process", px=2_500)
    refused = await env.client.post("/api/chat", json={"text": "Hi"}, headers=eve.headers)
    assert refused.status == 409 and (await refused.json())["error"] == "busy"
    await env.script(reply="Hello.", chunk_delay_ms=0)
    # Freed by its TTL, nobody's doing.
    for _ in range(50):
        if not await redis.exists(turn_lock.lock_key(eve.id)):
            break
        await asyncio.sleep(0.1)
    assert not await redis.exists(turn_lock.lock_key(eve.id))
    events: list[tuple[str, dict[str, Any]]] = await env.chat(eve, text="Hi")
    assert events[-1][1]["status"] == "complete"
