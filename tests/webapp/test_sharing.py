"""Shared links over the web: the owner's JSON API with two users trying every door, and the
public read-only page (escaped, not indexed, not cached, gone once revoked)."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.providers.base import Usage
from core.services import billing, presets, turns
from db.engine import UnitOfWorkFactory
from db.models import RequestLog
from tests.core.test_sharing import MODEL
from tests.factories import register
from tests.webapp.conftest import ClientMaker, make_context, web_access_token
from webapp.app import create_app

SECRET = "sharing-api-secret-of-at-least-32-bytes!"


@dataclass
class Someone:
    id: int
    headers: dict[str, str]


@dataclass
class Env:
    client: TestClient[web.Request, web.Application]
    factory: UnitOfWorkFactory

    async def user(self) -> Someone:
        async with self.factory() as uow:
            user = (await register(uow, first_name="Ottoline")).user
            async with uow.transaction():
                await billing.credit(
                    uow, user_id=user.id, amount=100_000, category="topup", key=secrets.token_hex(8)
                )
            token = await web_access_token(uow, user.id, secret=SECRET)
        return Someone(user.id, {"Authorization": f"Bearer {token}"})

    async def conversation(self, who: Someone, prompt: str, reply: str) -> int:
        # A minute back, so the link made next is surely later than the messages.
        now = datetime.now(UTC) - timedelta(minutes=1)
        async with self.factory() as uow:
            turn = await turns.begin_turn(uow, user_id=who.id, text=prompt, model=MODEL, now=now)
            await turns.finish_turn(
                uow,
                turn,
                text=reply,
                reasoning="HIDDEN-REASONING",
                usage=Usage(input_tokens=5, output_tokens=5),
                status="complete",
                now=now,
            )
        return turn.conversation_id

    async def preset(self, who: Someone) -> int:
        async with self.factory() as uow:
            preset = await presets.create_preset(
                uow, who.id, title="Reviewer", prompt="Review my code <b>strictly</b>."
            )
        return preset.id


@pytest.fixture
async def env(aiohttp_client: ClientMaker, engine: AsyncEngine, redis: Redis) -> Env:
    app = create_app(make_context(engine, redis, jwt_secret=SECRET))
    return Env(await aiohttp_client(app), UnitOfWorkFactory.for_engine(engine))


@pytest.fixture
async def two(env: Env) -> tuple[Someone, Someone]:
    return await env.user(), await env.user()


async def _share(env: Env, who: Someone, path: str) -> dict[str, str]:
    response = await env.client.post(path, headers=who.headers)
    assert response.status == 201, await response.text()
    assert response.headers["Cache-Control"] == "no-store"
    body: dict[str, str] = await response.json()
    return body


async def test_sharing_a_conversation_answers_a_public_url_with_the_token(
    env: Env, two: tuple[Someone, Someone]
) -> None:
    owner, _ = two
    conversation_id = await env.conversation(owner, "Hello", "Hi there")
    body = await _share(env, owner, f"/api/conversations/{conversation_id}/share")
    assert set(body) == {"id", "url", "token"}
    assert body["url"] == f"http://netroom.test/s/{body['token']}"
    assert len(body["token"]) >= 22


async def test_nobody_shares_or_lists_or_revokes_someone_elses(
    env: Env, two: tuple[Someone, Someone]
) -> None:
    owner, stranger = two
    conversation_id = await env.conversation(owner, "Mine", "Yours")
    preset_id = await env.preset(owner)
    for path in (f"/api/conversations/{conversation_id}/share", f"/api/presets/{preset_id}/share"):
        refused = await env.client.post(path, headers=stranger.headers)
        assert refused.status == 404, path
        anonymous = await env.client.post(path)
        assert anonymous.status == 401, path
    link = await _share(env, owner, f"/api/presets/{preset_id}/share")
    theirs = await env.client.get("/api/shares", headers=stranger.headers)
    assert (await theirs.json()) == {"links": []}
    assert (await env.client.get("/api/shares")).status == 401
    foreign = await env.client.delete(f"/api/shares/{link['id']}", headers=stranger.headers)
    assert foreign.status == 404
    assert (await env.client.delete(f"/api/shares/{link['id']}")).status == 401
    # Still working: nothing the stranger did touched it.
    assert (await env.client.get(f"/s/{link['token']}")).status == 200


async def test_the_owner_lists_links_without_tokens_and_revokes_one(
    env: Env, two: tuple[Someone, Someone]
) -> None:
    owner, _ = two
    conversation_id = await env.conversation(owner, "Trip plan", "Day one…")
    chat_link = await _share(env, owner, f"/api/conversations/{conversation_id}/share")
    preset_link = await _share(env, owner, f"/api/presets/{await env.preset(owner)}/share")
    listed = await env.client.get("/api/shares", headers=owner.headers)
    assert listed.status == 200
    text = await listed.text()
    assert chat_link["token"] not in text and preset_link["token"] not in text
    links = (await listed.json())["links"]
    assert [(x["id"], x["kind"], x["title"], x["active"]) for x in links] == [
        (preset_link["id"], "preset", "Reviewer", True),
        (chat_link["id"], "conversation", "Trip plan", True),
    ]
    revoked = await env.client.delete(f"/api/shares/{chat_link['id']}", headers=owner.headers)
    assert revoked.status == 204
    page = await env.client.get(f"/s/{chat_link['token']}")
    assert page.status == 404
    assert "no longer shared" in await page.text()
    assert page.headers["Cache-Control"] == "no-store"
    after = (await (await env.client.get("/api/shares", headers=owner.headers)).json())["links"]
    assert [x["active"] for x in after] == [True, False]
    assert after[1]["revoked_at"] is not None


async def test_the_public_page_shows_the_chat_escaped_and_uncached_to_anyone(
    env: Env, two: tuple[Someone, Someone]
) -> None:
    owner, _ = two
    conversation_id = await env.conversation(
        owner,
        "<script>alert('prompt')</script>",
        "**Bold** answer <script>alert('reply')</script> [x](javascript:alert(1))",
    )
    link = await _share(env, owner, f"/api/conversations/{conversation_id}/share")
    page = await env.client.get(f"/s/{link['token']}")
    assert page.status == 200
    html = await page.text()
    assert "<script>" not in html
    # Both the prompt and the reply show the tag as text.
    assert "&lt;script&gt;alert(&#39;prompt&#39;)&lt;/script&gt;" in html
    assert re.search(r"&lt;script&gt;alert\((?:'|&#39;)reply(?:'|&#39;)\)&lt;/script&gt;", html)
    assert "<strong>Bold</strong>" in html
    assert 'href="javascript:' not in html
    assert '<meta name="robots" content="noindex' in html
    assert "HIDDEN-REASONING" not in html and "Ottoline" not in html
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Cache-Control"] == "no-store"
    assert "script-src" not in page.headers["Content-Security-Policy"]
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")


async def test_a_shared_preset_page_offers_the_copy_and_the_copy_is_the_readers(
    env: Env, two: tuple[Someone, Someone]
) -> None:
    owner, reader = two
    link = await _share(env, owner, f"/api/presets/{await env.preset(owner)}/share")
    page = await env.client.get(f"/s/{link['token']}?lang=en")
    html = await page.text()
    assert page.status == 200
    assert "Review my code &lt;b&gt;strictly&lt;/b&gt;." in html
    assert "Copy to my presets" in html
    copied = await env.client.post(f"/api/shared/{link['token']}/copy", headers=reader.headers)
    assert copied.status == 201
    preset = await copied.json()
    assert (preset["title"], preset["system_prompt"]) == (
        "Reviewer",
        "Review my code <b>strictly</b>.",
    )
    async with env.factory() as uow:
        assert [p.id for p in await presets.list_presets(uow, reader.id)] == [preset["id"]]
    assert (await env.client.post(f"/api/shared/{link['token']}/copy")).status == 401


async def test_a_chat_link_cannot_be_copied_and_unknown_links_are_not_found(
    env: Env, two: tuple[Someone, Someone]
) -> None:
    owner, reader = two
    conversation_id = await env.conversation(owner, "Hi", "Hello")
    link = await _share(env, owner, f"/api/conversations/{conversation_id}/share")
    refused = await env.client.post(f"/api/shared/{link['token']}/copy", headers=reader.headers)
    assert refused.status == 400
    assert (await refused.json())["error"] == "share_link_not_a_preset"
    unknown = secrets.token_urlsafe(24)
    missing = await env.client.post(f"/api/shared/{unknown}/copy", headers=reader.headers)
    assert missing.status == 404
    assert (await env.client.get(f"/s/{unknown}")).status == 404
    assert (await env.client.get("/s/short")).status == 404


async def test_the_request_log_keeps_the_route_never_the_token(
    env: Env, two: tuple[Someone, Someone]
) -> None:
    owner, _ = two
    link = await _share(env, owner, f"/api/presets/{await env.preset(owner)}/share")
    assert (await env.client.get(f"/s/{link['token']}")).status == 200
    async with env.factory() as uow:
        endpoints = list(
            await uow.session.scalars(
                select(RequestLog.endpoint).where(RequestLog.endpoint.contains("/s"))
            )
        )
    assert "/s/{token}" in endpoints
    assert not any(link["token"] in e for e in endpoints)
