"""Sources in the web chat: a reply from the user's documents says where the passages it cites
came from, in its ``done`` event and in the conversation's messages afterwards (the same list
the bot shows); passages that were given to the model but not cited are not listed."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from core.media import LocalMediaStore
from core.services import files
from core.services.files import FileLimits
from db.engine import UnitOfWorkFactory
from sandbox.app import SandboxServer
from tests.core.test_files import CORPUS
from tests.webapp.conftest import ClientMaker
from tests.webapp.test_chat_api import Env, User, chat_env, read_events

LIMITS = FileLimits()
QUESTION = "How many nodes does the cluster run, and how long are database snapshots kept?"


@pytest.fixture
async def env(
    aiohttp_client: ClientMaker,
    engine: AsyncEngine,
    redis: Redis,
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
) -> Env:
    return await chat_env(aiohttp_client, engine, redis, sandbox, http, file_limits=LIMITS)


async def attach_document(
    factory: UnitOfWorkFactory,
    store: LocalMediaStore,
    user_id: int,
    conversation_id: int,
    name: str = "servers.md",
) -> None:
    """servers.md (under ``name``), read, indexed and attached to the conversation."""
    now = datetime.now(UTC)
    async with factory() as uow:
        uploaded = await files.upload(
            uow,
            store,
            user_id=user_id,
            name=name,
            data=CORPUS["servers.md"],
            limits=LIMITS,
            now=now,
        )
        done = await files.index(
            uow, store, file_id=uploaded.id, limits=LIMITS, embedder=None, now=now
        )
        assert done.status == "ready"
        await files.attach(uow, user_id=user_id, file_id=done.id, conversation_id=conversation_id)


def cited_passages(requests: list[dict[str, Any]]) -> list[str]:
    """Where each passage of the last chat request came from: passage [n] is item n - 1."""
    *_, request = requests
    system = str(request["json"]["messages"][0]["content"])
    return re.findall(r"^\[\d+\] \((.+)\)$", system, flags=re.MULTILINE)


async def with_document(env: Env, user: User, store: LocalMediaStore) -> int:
    """A new conversation of ``user`` with servers.md attached."""
    response = await env.client.post("/api/conversations", json={}, headers=user.headers)
    assert response.status == 201
    conversation_id = int((await response.json())["id"])
    await attach_document(env.factory, store, user.id, conversation_id)
    return conversation_id


async def passages_sent(env: Env) -> list[str]:
    return cited_passages(await env.provider_requests())


async def test_a_reply_lists_only_the_sources_it_cites_then_and_after_a_reload(
    env: Env, tmp_path: Path
) -> None:
    user = await env.user(money=100_000)
    conversation_id = await with_document(env, user, LocalMediaStore(tmp_path / "store"))

    await env.script(reply="Snapshots are kept for ninety days [2].", chunk_delay_ms=0)
    events = await env.chat(user, text=QUESTION, conversation_id=conversation_id)
    sent = await passages_sent(env)
    # Two passages went to the model; the answer cites the second only.
    assert len(set(sent)) == 2
    done = events[-1]
    assert done[0] == "done" and done[1]["status"] == "complete"
    assert done[1]["sources"] == [sent[1]]

    # Stored with the reply: the conversation shows it after a reload.
    messages = await env.messages(user, conversation_id)
    prompt, reply = messages
    assert reply["id"] == done[1]["message_id"]
    assert reply["sources"] == [sent[1]]
    assert prompt["sources"] == []


async def test_a_reply_that_cites_nothing_lists_no_sources(env: Env, tmp_path: Path) -> None:
    user = await env.user(money=100_000)
    conversation_id = await with_document(env, user, LocalMediaStore(tmp_path / "store"))

    # [9] is no passage given to the model: not a citation.
    await env.script(reply="I could not tell from your notes [9].", chunk_delay_ms=0)
    events = await env.chat(user, text=QUESTION, conversation_id=conversation_id)
    assert len(await passages_sent(env)) == 2
    name, done = events[-1]
    assert name == "done" and done["sources"] == []
    *_, reply = await env.messages(user, conversation_id)
    assert reply["id"] == done["message_id"] and reply["sources"] == []


async def test_a_reply_asked_again_lists_its_own_sources(env: Env, tmp_path: Path) -> None:
    user = await env.user(money=100_000)
    conversation_id = await with_document(env, user, LocalMediaStore(tmp_path / "store"))
    await env.script(reply="Snapshots are kept for ninety days [2].", chunk_delay_ms=0)
    first = (await env.chat(user, text=QUESTION, conversation_id=conversation_id))[-1][1]

    # Regenerated: the new reply cites another passage, and lists that one.
    await env.script(reply="The cluster runs on twelve nodes [1].", chunk_delay_ms=0)
    response = await env.client.post(
        f"/api/messages/{first['message_id']}/redo", json={}, headers=user.headers
    )
    assert response.status == 200
    name, done = [event async for event in read_events(response)][-1]
    sent = await passages_sent(env)
    assert name == "done" and done["sources"] == [sent[0]]
    # The replaced reply keeps what it cited.
    _, old, _, new = await env.messages(user, conversation_id)
    assert (old["id"], old["replaced"], old["sources"]) == (first["message_id"], True, [sent[1]])
    assert (new["id"], new["sources"]) == (done["message_id"], [sent[0]])
