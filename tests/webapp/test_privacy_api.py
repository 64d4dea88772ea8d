"""Privacy rights and documents from the web app: export, two-step erasure that ends every
session, and uploads indexed by the real worker; nobody reaches another user's files."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from core.media import LocalMediaStore
from core.services import chat, conversations, files, presets
from core.services.chat import ModelMenu, ModelTerms
from db.engine import UnitOfWorkFactory
from db.models import Media
from netroom.jobs import BrokerQueue, JobDeps, create_broker, run_worker
from tests.core.test_documents import make_pdf
from tests.factories import register
from tests.webapp.conftest import ClientMaker, make_context, web_access_token
from webapp.app import create_app

SECRET = "privacy-api-secret-of-at-least-32-bytes!"
MODEL = ModelTerms(
    id="docs-gpt",
    provider="openai",
    provider_model="docs-gpt",
    context_window=128_000,
    input_per_1k=10,
    output_per_1k=30,
)


@dataclass
class Env:
    client: TestClient  # type: ignore[type-arg]
    factory: UnitOfWorkFactory

    async def user(self) -> dict[str, str]:
        return (await self.user_with_id())[0]

    async def user_with_id(self) -> tuple[dict[str, str], int]:
        async with self.factory() as uow:
            user = (await register(uow)).user
            token = await web_access_token(uow, user.id, secret=SECRET)
        return {"Authorization": f"Bearer {token}"}, user.id


@pytest.fixture
async def env(
    aiohttp_client: ClientMaker, engine: AsyncEngine, redis: Redis, redis_url: str, tmp_path: Path
) -> AsyncIterator[Env]:
    factory = UnitOfWorkFactory.for_engine(engine)
    store = LocalMediaStore(tmp_path / "media")
    queue = f"netroom:test:{secrets.token_hex(4)}"
    deps = JobDeps(uow_factory=factory, media_store=store)
    worker_broker = create_broker(redis_url, deps, queue=queue)
    client_broker = create_broker(redis_url, deps, queue=queue)
    await client_broker.startup()
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(worker_broker, stop))
    app = create_app(
        make_context(
            engine,
            redis,
            jwt_secret=SECRET,
            media_store=store,
            jobs=BrokerQueue(client_broker),
            models=ModelMenu(models=(MODEL,), default_id=MODEL.id),
            model_names={MODEL.id: "Docs GPT"},
        )
    )
    try:
        yield Env(await aiohttp_client(app), factory)
    finally:
        stop.set()
        await asyncio.wait_for(worker, 10)
        await client_broker.shutdown()


async def test_export_downloads_everything_once_an_hour_in_each_format(env: Env) -> None:
    headers, user_id = await env.user_with_id()
    now = datetime.now(UTC)
    async with env.factory() as uow:
        conversation = await conversations.current_conversation(
            uow, user_id, title="Docs", model_id=MODEL.id
        )
        await uow.chats.append_message(
            conversation_id=conversation,
            user_id=user_id,
            role="assistant",
            content="Kept for ninety days [1].",
            reasoning=None,
            model_id=MODEL.id,
            input_tokens=None,
            output_tokens=None,
            status="complete",
            created_at=now,
            expires_at=now + timedelta(days=14),
            sources=["servers.md › Backups"],
        )
        await uow.commit()
    response = await env.client.get("/api/privacy/export?format=json", headers=headers)
    assert response.status == 200
    assert "attachment" in response.headers["Content-Disposition"]
    document = json.loads(await response.read())
    assert "account" in json.dumps(document)
    # The second format right after the first is given, not refused.
    tables = await env.client.get("/api/privacy/export?format=zip", headers=headers)
    assert tables.status == 200
    page = await env.client.get("/api/privacy/export?format=html", headers=headers)
    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert 'filename="netroom-chats.html"' in page.headers["Content-Disposition"]
    transcript = await page.text()
    assert transcript.startswith("<!doctype html>")
    # The model by its display name, and the sources the reply cited.
    assert " · Docs GPT · " in transcript and "docs-gpt" not in transcript
    assert "Sources: servers.md › Backups" in transcript
    again = await env.client.get("/api/privacy/export?format=zip", headers=headers)
    assert again.status == 429
    anonymous = await env.client.get("/api/privacy/export")
    assert anonymous.status == 401


async def test_erasure_takes_a_confirmation_and_ends_every_session(env: Env) -> None:
    headers = await env.user()
    other = await env.user()
    started = await env.client.post("/api/privacy/delete", headers=headers)
    token = (await started.json())["confirm_token"]
    # Someone else's confirmation does not work for this account.
    foreign = await env.client.post("/api/privacy/delete", headers=other)
    wrong = await env.client.post(
        "/api/privacy/delete/confirm",
        headers=headers,
        json={"confirm_token": (await foreign.json())["confirm_token"]},
    )
    assert wrong.status == 400
    done = await env.client.post(
        "/api/privacy/delete/confirm", headers=headers, json={"confirm_token": token}
    )
    assert done.status == 200 and (await done.json()) == {"deleted": True}
    gone = await env.client.get("/api/me", headers=headers)
    assert gone.status == 401
    still = await env.client.get("/api/me", headers=other)
    assert still.status == 200


async def test_uploads_are_indexed_and_only_their_owner_reaches_them(env: Env) -> None:
    owner = await env.user()
    stranger = await env.user()

    async def upload(headers: dict[str, str], content: bytes) -> aiohttp.ClientResponse:
        form = aiohttp.FormData()
        form.add_field("file", content, filename="notes.md", content_type="text/markdown")
        return await env.client.post("/api/files", headers=headers, data=form)

    content = b"# Notes\n\nThe staging server restarts every night at three.\n"
    created = await upload(owner, content)
    assert created.status == 201
    file_id = (await created.json())["id"]
    async with asyncio.timeout(15):
        while True:
            state = await (await env.client.get(f"/api/files/{file_id}", headers=owner)).json()
            if state["status"] != "queued" and state["status"] != "indexing":
                break
            await asyncio.sleep(0.05)
    assert state["status"] == "ready" and state["chunks"] >= 1
    same = await upload(owner, content)
    assert same.status == 200 and (await same.json())["id"] == file_id
    for method, path in (("GET", f"/api/files/{file_id}"), ("DELETE", f"/api/files/{file_id}")):
        response = await env.client.request(method, path, headers=stranger)
        assert response.status == 404, (method, path)
    listed = await (await env.client.get("/api/files", headers=stranger)).json()
    assert listed == {"files": []}
    refused = await upload(owner, b"MZ\x90\x00" + bytes(1000))
    assert refused.status == 400
    deleted = await env.client.delete(f"/api/files/{file_id}", headers=owner)
    assert deleted.status == 204
    assert (await env.client.get(f"/api/files/{file_id}", headers=owner)).status == 404


async def test_a_document_attached_to_a_preset_answers_in_chats_using_it(env: Env) -> None:
    owner, owner_id = await env.user_with_id()
    stranger, stranger_id = await env.user_with_id()
    form = aiohttp.FormData()
    form.add_field(
        "file",
        b"# Rota\n\nThe on-call engineer this week is Dana from the platform team.\n",
        filename="rota.md",
        content_type="text/markdown",
    )
    file_id = (await (await env.client.post("/api/files", headers=owner, data=form)).json())["id"]
    async with asyncio.timeout(15):
        while True:
            state = await (await env.client.get(f"/api/files/{file_id}", headers=owner)).json()
            if state["status"] == "ready":
                break
            await asyncio.sleep(0.05)
    async with env.factory() as uow:
        mine = await presets.create_preset(uow, owner_id, title="Ops", prompt="Be brief.")
        theirs = await presets.create_preset(uow, stranger_id, title="X", prompt="Y")
    link = f"/api/files/{file_id}/links"
    assert (
        await env.client.post(link, headers=stranger, json={"preset_id": mine.id})
    ).status == 404
    assert (await env.client.post(link, headers=owner, json={"preset_id": theirs.id})).status == 404
    assert (await env.client.post(link, headers=owner, json={})).status == 400
    assert (await env.client.post(link, headers=owner, json={"preset_id": mine.id})).status == 204
    async with env.factory() as uow:
        found = await files.context_for(
            uow,
            user_id=owner_id,
            conversation_id=None,
            preset_id=mine.id,
            query="Who is on call this week?",
            limits=files.FileLimits(),
            embedder=None,
        )
    assert found is not None and found.sources() == ["rota.md › Rota"]
    assert (await env.client.delete(link, headers=owner, json={"preset_id": mine.id})).status == 204
    async with env.factory() as uow:
        assert (
            await files.context_for(
                uow,
                user_id=owner_id,
                conversation_id=None,
                preset_id=mine.id,
                query="on call",
                limits=files.FileLimits(),
                embedder=None,
            )
        ) is None


async def _ready(env: Env, headers: dict[str, str], name: str, content: bytes) -> int:
    form = aiohttp.FormData()
    form.add_field("file", content, filename=name, content_type="text/markdown")
    created = await env.client.post("/api/files", headers=headers, data=form)
    assert created.status == 201, await created.text()
    file_id = int((await created.json())["id"])
    async with asyncio.timeout(15):
        while True:
            state = await (await env.client.get(f"/api/files/{file_id}", headers=headers)).json()
            if state["status"] == "ready":
                return file_id
            await asyncio.sleep(0.05)


async def test_a_new_chat_takes_a_document_before_its_first_message(env: Env) -> None:
    owner, owner_id = await env.user_with_id()
    stranger = await env.user()
    started = await env.client.post(
        "/api/conversations", headers=owner, json={"title": "  Runbook questions  "}
    )
    assert started.status == 201
    conversation = await started.json()
    assert conversation["title"] == "Runbook questions"
    # A new chat follows the user's default model until it is given one of its own.
    assert conversation["model_id"] is None
    conversation_id = conversation["id"]
    # It is the current conversation: a message without an id continues it.
    async with env.factory() as uow:
        assert (await chat.get_prefs(uow, owner_id)).conversation_id == conversation_id
    listed = await (await env.client.get("/api/conversations", headers=owner)).json()
    assert [c["id"] for c in listed["conversations"]] == [conversation_id]

    file_id = await _ready(
        env, owner, "runbook.md", b"# Runbook\n\nRestart the queue with the blue lever.\n"
    )
    files_path = f"/api/conversations/{conversation_id}/files"
    assert (await (await env.client.get(files_path, headers=owner)).json()) == {"files": []}
    link = f"/api/files/{file_id}/links"
    target = {"conversation_id": conversation_id}
    # The stranger can neither attach to the chat, nor list its files, nor detach them.
    stranger_file = await _ready(env, stranger, "mine.md", b"# Mine\n\nNothing to see.\n")
    refused = await env.client.post(
        f"/api/files/{stranger_file}/links", headers=stranger, json=target
    )
    assert refused.status == 404
    assert (await env.client.post(link, headers=stranger, json=target)).status == 404
    assert (await env.client.get(files_path, headers=stranger)).status == 404
    assert (await env.client.post(link, headers=owner, json=target)).status == 204
    attached = (await (await env.client.get(files_path, headers=owner)).json())["files"]
    assert [(f["id"], f["name"], f["status"]) for f in attached] == [
        (file_id, "runbook.md", "ready")
    ]
    assert (await env.client.delete(link, headers=stranger, json=target)).status == 404
    still = (await (await env.client.get(files_path, headers=owner)).json())["files"]
    assert [f["id"] for f in still] == [file_id]
    async with env.factory() as uow:
        found = await files.context_for(
            uow,
            user_id=owner_id,
            conversation_id=conversation_id,
            preset_id=None,
            query="How do I restart the queue?",
            limits=files.FileLimits(),
            embedder=None,
        )
    assert found is not None and found.sources() == ["runbook.md › Runbook"]
    assert (await env.client.delete(link, headers=owner, json=target)).status == 204
    assert (await (await env.client.get(files_path, headers=owner)).json()) == {"files": []}
    # A title is optional; a title that is not text is refused.
    untitled = await env.client.post("/api/conversations", headers=owner)
    assert untitled.status == 201 and (await untitled.json())["title"] is None
    bad = await env.client.post("/api/conversations", headers=owner, json={"title": 5})
    assert bad.status == 400


async def test_a_failed_upload_sent_again_is_read_again(env: Env) -> None:
    headers = await env.user()
    pdf = make_pdf(["A report whose first upload was cut short."])
    damaged = pdf[: len(pdf) // 2]

    async def upload() -> aiohttp.ClientResponse:
        form = aiohttp.FormData()
        form.add_field("file", damaged, filename="report.pdf", content_type="application/pdf")
        return await env.client.post("/api/files", headers=headers, data=form)

    async def finished(file_id: int) -> dict[str, object]:
        async with asyncio.timeout(15):
            while True:
                response = await env.client.get(f"/api/files/{file_id}", headers=headers)
                state: dict[str, object] = await response.json()
                if state["status"] in ("ready", "failed"):
                    return state
                await asyncio.sleep(0.05)

    created = await upload()
    assert created.status == 201
    file_id = (await created.json())["id"]
    assert (await finished(file_id))["status"] == "failed"

    again = await upload()
    assert again.status == 200
    retried = await again.json()
    assert (retried["id"], retried["status"], retried["error"]) == (file_id, "queued", None)
    # Queued for real: the worker reads it again (and finds it damaged again).
    state = await finished(file_id)
    assert state["status"] == "failed" and "damaged" in str(state["error_message"])


async def test_a_picture_is_deleted_by_its_owner_only_with_its_file(
    env: Env, tmp_path: Path
) -> None:
    """Policy 7 and 8: media stay until the user deletes them, and the user can."""
    store = LocalMediaStore(tmp_path / "media")
    headers, owner_id = await env.user_with_id()
    other = await env.user()

    async def add(status: str) -> tuple[int, str | None]:
        key = await store.save(b"\x89PNG picture", "image/png") if status == "ready" else None
        async with env.factory() as uow:
            row = Media(
                user_id=owner_id,
                kind="image" if key else "video",
                prompt="a fox",
                model_id="m",
                status=status,
                storage_key=key,
            )
            uow.session.add(row)
            await uow.session.flush()
            media_id = row.id
            await uow.commit()
        return media_id, key

    picture, key = await add("ready")
    assert key is not None
    video, _ = await add("pending")
    assert (await env.client.delete(f"/api/media/{picture}")).status == 401
    foreign = await env.client.delete(f"/api/media/{picture}", headers=other)
    assert (foreign.status, (await foreign.json())["error"]) == (404, "not_found")
    assert (await env.client.get(f"/media/{key}")).status == 200
    # One still being made waits until it is settled.
    pending = await env.client.delete(f"/api/media/{video}", headers=headers)
    assert (pending.status, (await pending.json())["error"]) == (400, "media_pending")

    gone = await env.client.delete(f"/api/media/{picture}", headers=headers)
    assert gone.status == 204
    assert (await env.client.get(f"/media/{key}")).status == 404
    listed = await (await env.client.get("/api/media", headers=headers)).json()
    assert [m["id"] for m in listed["media"]] == [video]
    again = await env.client.delete(f"/api/media/{picture}", headers=headers)
    assert again.status == 404
