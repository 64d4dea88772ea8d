"""Chat from the web app through create_app() over real HTTP, on real Postgres and Redis, with the
sandbox's provider fakes: replies stream as Server-Sent Events and are stored and billed like the
bot's; Stop, a vanished client and a failing model pay only for what was delivered; nobody
reaches another user's conversations, messages or turns."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from core.providers.registry import ProviderRegistry
from core.providers.settings import sandbox_providers
from core.services import billing
from core.services.chat import ModelMenu, ModelTerms, cost, estimate_tokens
from core.services.tariffs import Tariffs
from db.engine import UnitOfWorkFactory
from sandbox.app import SandboxServer
from tests.factories import register
from tests.webapp.conftest import ClientMaker, make_context, web_access_token
from webapp.app import create_app

SECRET = "chat-api-secret-of-at-least-32-bytes!!"
Event = tuple[str, dict[str, Any]]


@dataclass
class User:
    id: int
    headers: dict[str, str]


async def read_events(response: aiohttp.ClientResponse) -> AsyncIterator[Event]:
    """Server-Sent Events as (event, data), as a browser's EventSource parser reads them."""
    name, data = "message", ""
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if data:
                yield name, json.loads(data)
            name, data = "message", ""
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()


@dataclass
class Env:
    client: TestClient  # type: ignore[type-arg]
    factory: UnitOfWorkFactory
    sandbox: SandboxServer
    http: httpx.AsyncClient
    paid: ModelTerms
    free: ModelTerms

    async def user(self, money: int = 0) -> User:
        async with self.factory() as uow:
            user = (await register(uow)).user
            if money:
                async with uow.transaction():
                    await billing.credit(
                        uow,
                        user_id=user.id,
                        amount=money,
                        category="topup",
                        key=secrets.token_hex(8),
                    )
            token = await web_access_token(uow, user.id, secret=SECRET)
        return User(user.id, {"Authorization": f"Bearer {token}"})

    async def script(self, model: ModelTerms | None = None, **script: Any) -> None:
        script = {"provider": "openai", "model": (model or self.paid).provider_model, **script}
        answer = await self.http.post(
            f"{self.sandbox.url}/sandbox/api/providers/script", json=script
        )
        assert answer.status_code == 201, answer.text

    async def provider_requests(self) -> list[dict[str, Any]]:
        """What the provider fakes received for this test's models."""
        answer = await self.http.get(f"{self.sandbox.url}/sandbox/api/providers/requests")
        mine = {self.paid.provider_model, self.free.provider_model}
        return [r for r in answer.json()["requests"] if (r["json"] or {}).get("model") in mine]

    async def balance(self, user: User) -> int:
        async with self.factory() as uow:
            return (await billing.get_balance(uow, user.id)).balance

    async def chat(self, user: User, **body: Any) -> list[Event]:
        response = await self.client.post("/api/chat", json=body, headers=user.headers)
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/event-stream")
        return [event async for event in read_events(response)]

    async def messages(self, user: User, conversation_id: int) -> list[dict[str, Any]]:
        response = await self.client.get(
            f"/api/conversations/{conversation_id}/messages", headers=user.headers
        )
        assert response.status == 200
        return list((await response.json())["messages"])


@pytest.fixture
async def env(
    aiohttp_client: ClientMaker,
    engine: AsyncEngine,
    redis: Redis,
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
) -> Env:
    return await chat_env(aiohttp_client, engine, redis, sandbox, http)


async def chat_env(
    aiohttp_client: ClientMaker,
    engine: AsyncEngine,
    redis: Redis,
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
    **context: object,
) -> Env:
    """The web app with two models of this test; ``context``: more of its WebContext."""
    # Models of this test only, so scripts and recorded requests never mix between tests.
    tag = secrets.token_hex(4)
    paid = ModelTerms(
        id="web-gpt",
        provider="openai",
        provider_model=f"gpt-web-{tag}",
        context_window=16_000,
        input_per_1k=10,
        output_per_1k=30,
        reasoning=True,
    )
    free = ModelTerms(
        id="web-mini",
        provider="openai",
        provider_model=f"gpt-mini-{tag}",
        context_window=16_000,
        input_per_1k=2,
        output_per_1k=6,
        free_tier="basic",
    )
    app = create_app(
        make_context(
            engine,
            redis,
            jwt_secret=SECRET,
            models=ModelMenu(models=(paid, free), default_id="web-gpt"),
            model_names={"web-gpt": "Web GPT"},
            providers=ProviderRegistry(sandbox_providers(sandbox.url), http),
            tariffs=Tariffs(free_limits={"basic": 1}, timezone="Europe/Moscow"),
            **context,
        )
    )
    client = await aiohttp_client(app)
    return Env(client, UnitOfWorkFactory.for_engine(engine), sandbox, http, paid, free)


def price_of(model: ModelTerms, prompt: str, delivered: str) -> int:
    """What a reply without the provider's usage costs: both sides estimated."""
    return billing.price(
        cost(model, estimate_tokens(prompt), estimate_tokens(delivered)),
        markup_percent=model.markup_percent,
        discount_percent=0,
    )


async def test_a_reply_streams_in_order_and_is_stored_and_charged(env: Env) -> None:
    ann = await env.user(money=100_000)
    reply = "Streams arrive piece by piece, " * 8 + "and end."
    await env.script(reply=reply, chunk_size=7, chunk_delay_ms=1)
    events = await env.chat(ann, text="Tell me about streams", conversation_id=None)
    names = [name for name, _ in events]
    assert names[0] == "start" and names[-1] == "done"
    assert set(names[1:-1]) == {"delta"} and len(names) - 2 == -(-len(reply) // 7)
    assert "".join(data["text"] for name, data in events if name == "delta") == reply
    start, done = events[0][1], events[-1][1]
    assert done["status"] == "complete" and done["free"] is False
    assert done["charged_kopecks"] > 0
    assert done["balance_kopecks"] == await env.balance(ann) == 100_000 - done["charged_kopecks"]
    stored = await env.messages(ann, start["conversation_id"])
    assert [(m["role"], m["content"], m["status"]) for m in stored] == [
        ("user", "Tell me about streams", "complete"),
        ("assistant", reply, "complete"),
    ]
    assert stored[1]["id"] == done["message_id"] and stored[1]["model_id"] == "web-gpt"
    # Named as people read it (the footer shows that), beside its id.
    assert stored[1]["model_name"] == "Web GPT"


async def test_stop_mid_stream_keeps_and_bills_only_what_was_delivered(env: Env) -> None:
    bea = await env.user(money=100_000)
    full = "slow " * 400
    await env.script(reply=full, chunk_size=5, chunk_delay_ms=20)
    response = await env.client.post(
        "/api/chat", json={"text": "A long story", "conversation_id": None}, headers=bea.headers
    )
    events = read_events(response)
    name, start = await anext(events)
    assert name == "start"
    received: list[str] = []
    async for name, data in events:
        assert name == "delta"
        received.append(data["text"])
        if len(received) == 5:
            break
    stop = await env.client.post(f"/api/chat/{start['turn_id']}/stop", headers=bea.headers)
    assert stop.status == 204
    rest = [event async for event in events]
    received += [data["text"] for name, data in rest if name == "delta"]
    name, done = rest[-1]
    assert name == "done" and done["status"] == "stopped"
    text = "".join(received)
    assert 25 <= len(text) < len(full) / 2
    [_, reply] = await env.messages(bea, start["conversation_id"])
    assert (reply["content"], reply["status"]) == (text, "stopped")
    assert done["charged_kopecks"] == price_of(env.paid, "A long story", text) > 0
    assert await env.balance(bea) == 100_000 - done["charged_kopecks"]


async def test_a_client_going_away_mid_stream_stops_the_reply(env: Env) -> None:
    cid = await env.user(money=100_000)
    full = "gone " * 400
    await env.script(reply=full, chunk_size=5, chunk_delay_ms=20)
    response = await env.client.post(
        "/api/chat", json={"text": "Keep talking", "conversation_id": None}, headers=cid.headers
    )
    events = read_events(response)
    _, start = await anext(events)
    seen = ""
    async for _name, data in events:
        seen += data["text"]
        if len(seen) >= 15:
            break
    response.close()
    async with asyncio.timeout(10):
        while True:
            stored = await env.messages(cid, start["conversation_id"])
            if len(stored) == 2:
                break
            await asyncio.sleep(0.05)
    reply = stored[1]
    assert reply["status"] == "stopped"
    assert reply["content"].startswith(seen) and len(reply["content"]) < len(full) / 2
    charged = 100_000 - await env.balance(cid)
    assert charged == price_of(env.paid, "Keep talking", reply["content"]) > 0
    # The turn is over: the next message is answered.
    await env.script(reply="Back again.", chunk_delay_ms=0)
    again = await env.chat(cid, text="Hello?", conversation_id=start["conversation_id"])
    assert again[-1][1]["status"] == "complete"


async def test_insufficient_funds_is_an_error_event_before_any_provider_call(env: Env) -> None:
    dan = await env.user(money=0)
    events = await env.chat(dan, text="Anything", conversation_id=None)
    assert [name for name, _ in events] == ["error"]
    error = events[0][1]
    assert error["code"] == "insufficient_funds"
    assert error["message"] == (
        "Not enough money on your balance for this request. Top up to continue."
    )
    assert await env.provider_requests() == []
    assert await env.balance(dan) == 0
    listed = await env.client.get("/api/conversations", headers=dan.headers)
    assert (await listed.json()) == {"conversations": []}


async def test_a_free_tier_model_costs_nothing_until_the_allowance_is_used(env: Env) -> None:
    eva = await env.user(money=0)
    await env.script(env.free, reply="Free words.", chunk_delay_ms=0)
    events = await env.chat(eva, text="Hi", model_id="web-mini", conversation_id=None)
    done = events[-1][1]
    assert events[-1][0] == "done"
    assert (done["status"], done["free"], done["charged_kopecks"], done["balance_kopecks"]) == (
        "complete",
        True,
        0,
        0,
    )
    # One free request a day: the next one needs money this user does not have.
    again = await env.chat(eva, text="Again", model_id="web-mini")
    assert [(n, d["code"]) for n, d in again] == [("error", "insufficient_funds")]
    assert len(await env.provider_requests()) == 1


async def test_a_provider_failing_mid_stream_keeps_and_bills_the_partial_reply(env: Env) -> None:
    fay = await env.user(money=100_000)
    await env.script(
        reply="partial answer " * 30,
        chunk_size=10,
        chunk_delay_ms=0,
        fault={"kind": "cut", "after_chunks": 3},
    )
    events = await env.chat(fay, text="Try", conversation_id=None)
    names = [name for name, _ in events]
    assert names == ["start", "delta", "delta", "delta", "error", "done"]
    text = "".join(data["text"] for name, data in events if name == "delta")
    assert text == ("partial answer " * 30)[:30]
    error, done = events[-2][1], events[-1][1]
    assert error["code"].startswith("provider") and error["message"]
    assert done["status"] == "failed"
    [_, reply] = await env.messages(fay, events[0][1]["conversation_id"])
    assert (reply["content"], reply["status"]) == (text, "failed")
    assert done["charged_kopecks"] == price_of(env.paid, "Try", text) > 0
    assert await env.balance(fay) == 100_000 - done["charged_kopecks"]


async def test_a_second_turn_while_one_streams_is_refused(env: Env) -> None:
    gus = await env.user(money=100_000)
    await env.script(reply="busy " * 200, chunk_size=5, chunk_delay_ms=20)
    first = await env.client.post(
        "/api/chat", json={"text": "First", "conversation_id": None}, headers=gus.headers
    )
    events = read_events(first)
    _, start = await anext(events)
    second = await env.client.post("/api/chat", json={"text": "Second"}, headers=gus.headers)
    assert second.status == 409
    assert (await second.json())["error"] == "busy"
    stop = await env.client.post(f"/api/chat/{start['turn_id']}/stop", headers=gus.headers)
    assert stop.status == 204
    assert [event async for event in events][-1][1]["status"] == "stopped"
    # Another user is not held up by this one.
    other = await env.user(money=100_000)
    await env.script(reply="Hello.", chunk_delay_ms=0)
    assert (await env.chat(other, text="Hi"))[-1][1]["status"] == "complete"


async def test_models_are_the_menu_and_only_its_ids_can_be_picked(env: Env) -> None:
    hal = await env.user()
    listed = await (await env.client.get("/api/models", headers=hal.headers)).json()
    assert listed["default"] == listed["current"] == "web-gpt"
    assert [m["id"] for m in listed["models"]] == ["web-gpt", "web-mini"]
    assert listed["models"][0] == {
        "id": "web-gpt",
        "name": "Web GPT",
        "provider": "openai",
        "provider_name": "OpenAI",
        "vision": False,
        "reasoning": True,
        "web_search": False,
        "price_hint_kopecks": 20,
        "free_tier": None,
    }
    # A model without a display name is shown by its id; its free class is explained.
    assert listed["models"][1]["name"] == "web-mini"
    assert listed["models"][1]["free_tier"] == "basic"
    assert listed["free_classes"] == [
        {
            "id": "basic",
            "name": "basic",
            "explanation": "light, fast models; 1 free basic requests a day",
        }
    ]
    unknown = await env.client.put(
        "/api/settings/model", json={"model_id": "gpt-9"}, headers=hal.headers
    )
    assert unknown.status == 404
    picked = await env.client.put(
        "/api/settings/model", json={"model_id": "web-mini"}, headers=hal.headers
    )
    assert (await picked.json()) == {"current": "web-mini"}
    listed = await (await env.client.get("/api/models", headers=hal.headers)).json()
    assert listed["current"] == "web-mini"


async def test_conversations_list_newest_first_and_messages_can_be_pinned(env: Env) -> None:
    ivy = await env.user(money=100_000)
    await env.script(reply="One.", chunk_delay_ms=0, times=2)
    first = (await env.chat(ivy, text="First chat", conversation_id=None))[0][1]
    second = (await env.chat(ivy, text="Second chat", conversation_id=None))[0][1]
    listed = await (await env.client.get("/api/conversations", headers=ivy.headers)).json()
    assert [c["id"] for c in listed["conversations"]] == [
        second["conversation_id"],
        first["conversation_id"],
    ]
    assert listed["conversations"][0]["title"] == "Second chat"
    # No model of its own: it follows the user's default.
    assert listed["conversations"][0]["model_id"] is None
    [prompt, _] = await env.messages(ivy, first["conversation_id"])
    pinned = await env.client.post(
        f"/api/messages/{prompt['id']}/pin", json={"pinned": True}, headers=ivy.headers
    )
    assert (await pinned.json())["is_pinned"] is True
    [prompt, _] = await env.messages(ivy, first["conversation_id"])
    assert prompt["is_pinned"] is True
    deleted = await env.client.delete(
        f"/api/conversations/{first['conversation_id']}", headers=ivy.headers
    )
    assert deleted.status == 204
    gone = await env.client.get(
        f"/api/conversations/{first['conversation_id']}/messages", headers=ivy.headers
    )
    assert gone.status == 404


async def test_nobody_reaches_another_users_conversations_messages_or_turns(env: Env) -> None:
    owner = await env.user(money=100_000)
    stranger = await env.user(money=100_000)
    await env.script(reply="Private words.", chunk_delay_ms=0)
    events = await env.chat(owner, text="My secret", conversation_id=None)
    start = events[0][1]
    conversation_id, turn_id = start["conversation_id"], start["turn_id"]
    [prompt, reply] = await env.messages(owner, conversation_id)
    before = await env.provider_requests()
    for method, path, body in (
        ("GET", f"/api/conversations/{conversation_id}/messages", None),
        ("DELETE", f"/api/conversations/{conversation_id}", None),
        ("POST", f"/api/messages/{prompt['id']}/pin", {"pinned": True}),
        ("POST", f"/api/messages/{reply['id']}/pin", {"pinned": True}),
        ("POST", "/api/chat", {"text": "Let me in", "conversation_id": conversation_id}),
        ("POST", f"/api/chat/{turn_id}/stop", None),
    ):
        answer = await env.client.request(method, path, json=body, headers=stranger.headers)
        assert answer.status == 404, (method, path, answer.status)
        assert "Private" not in await answer.text() and "secret" not in await answer.text()
    # Nothing was asked of the model for the stranger's attempt.
    assert await env.provider_requests() == before
    listed = await env.client.get("/api/conversations", headers=stranger.headers)
    assert (await listed.json()) == {"conversations": []}
    # The stranger's model choice is the stranger's alone.
    await env.client.put(
        "/api/settings/model", json={"model_id": "web-mini"}, headers=stranger.headers
    )
    mine = await (await env.client.get("/api/models", headers=owner.headers)).json()
    assert mine["current"] == "web-gpt"
    # The owner still has it all, unpinned, and may stop their own (finished) turn.
    assert [m["is_pinned"] for m in await env.messages(owner, conversation_id)] == [False, False]
    own_stop = await env.client.post(f"/api/chat/{turn_id}/stop", headers=owner.headers)
    assert own_stop.status == 204


async def test_every_chat_route_needs_a_signed_in_user(env: Env) -> None:
    for method, path in (
        ("GET", "/api/models"),
        ("PUT", "/api/settings/model"),
        ("GET", "/api/conversations"),
        ("POST", "/api/conversations"),
        ("GET", "/api/conversations/1/files"),
        ("DELETE", "/api/conversations/1"),
        ("GET", "/api/conversations/1/messages"),
        ("POST", "/api/messages/1/pin"),
        ("POST", "/api/messages/1/redo"),
        ("POST", "/api/messages/1/rating"),
        ("POST", "/api/chat"),
        ("POST", f"/api/chat/{secrets.token_hex(8)}/stop"),
    ):
        answer = await env.client.request(method, path, json={})
        assert answer.status == 401, (method, path)
