"""Documents in the chat page, in headless Chromium against the real web app, the real worker
that reads them and the sandbox's model fakes: a document attached to a new chat is uploaded,
read, and its passage reaches the model with the question; it stays with the chat and can be
removed; a file over the limit or one that is not a document is refused with a clear message and
attaches nothing.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.media import LocalMediaStore
from core.services.files import FileLimits
from db.engine import UnitOfWorkFactory
from db.models import Conversation, FileLink
from netroom.jobs import BrokerQueue, JobDeps, create_broker, run_worker
from tests.sandbox_web.stage import PageServer
from tests.webapp.test_browser_pages import (
    Stage,
    open_app,
    running_stage,
    screenshot,
)

RUNBOOK = (
    b"# Queue runbook\n\n"
    b"When the billing queue stalls, pull the blue lever in rack seven and wait two minutes.\n\n"
    b"## Escalation\n\nCall the platform team if it stalls again within the hour.\n"
)
LIMIT_MB = 1


@pytest.fixture
async def stage(
    engine: AsyncEngine, redis: Redis, redis_url: str, page_server: PageServer, tmp_path: Path
) -> AsyncIterator[Stage]:
    """The account pages' stage with uploads on and a worker reading them."""
    media = tmp_path / "media"
    queue = f"netroom:test:{secrets.token_hex(4)}"
    deps = JobDeps(
        uow_factory=UnitOfWorkFactory.for_engine(engine), media_store=LocalMediaStore(media)
    )
    worker_broker = create_broker(redis_url, deps, queue=queue)
    client_broker = create_broker(redis_url, deps, queue=queue)
    await client_broker.startup()
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(worker_broker, stop))
    try:
        async with running_stage(
            engine,
            redis,
            page_server,
            media,
            jobs=BrokerQueue(client_broker),
            file_limits=FileLimits(max_bytes=LIMIT_MB * 1024 * 1024),
        ) as running:
            yield running
    finally:
        stop.set()
        await asyncio.wait_for(worker, 10)
        await client_broker.shutdown()


async def choose(page: Page, name: str, data: bytes, mime: str = "text/markdown") -> None:
    await page.get_by_test_id("attach-input").set_input_files(
        {"name": name, "mimeType": mime, "buffer": data}
    )


async def links_of(stage: Stage, conversation_id: int) -> list[int]:
    async with stage.factory() as uow:
        return list(
            await uow.session.scalars(
                select(FileLink.file_id).where(FileLink.conversation_id == conversation_id)
            )
        )


async def model_requests(stage: Stage) -> list[str]:
    """The bodies the chat model's fake received, as text."""
    model = stage.menu.get("gpt-4o").provider_model
    answer = await stage.http.get(f"{stage.sandbox.url}/sandbox/api/providers/requests")
    return [
        json.dumps(r["json"])
        for r in answer.json()["requests"]
        if (r["json"] or {}).get("model") == model
    ]


async def test_a_document_attached_to_a_new_chat_answers_its_first_question(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    nora = await stage.account("Nora", money=50_000)
    context, page = await open_app(browser, stage, nora, errors)
    try:
        await expect(page.get_by_test_id("chat-intro")).to_be_visible()
        await choose(page, "runbook.md", RUNBOOK)
        chip = page.get_by_test_id("attachment")
        await expect(chip).to_have_count(1)
        await expect(chip).to_contain_text("runbook.md")
        # The chat now exists, named after the document, and the address says which it is.
        await expect(page).to_have_url(re.compile(r"#/chat/\d+$"))
        conversation_id = int(page.url.rsplit("/", 1)[1])
        await expect(chip).to_have_attribute("data-status", "ready", timeout=15_000)
        await expect(page.get_by_test_id("send")).to_be_enabled()
        await expect(page.get_by_test_id("composer-note")).not_to_contain_text("Reading")
        async with stage.factory() as uow:
            owner = await uow.session.scalar(
                select(Conversation.user_id).where(Conversation.id == conversation_id)
            )
        assert owner == nora.user_id
        assert len(await links_of(stage, conversation_id)) == 1
        await screenshot(page, "chat-document-phone")

        await stage.script("gpt-4o", reply="Pull the blue lever in rack seven [1].")
        await page.get_by_test_id("composer-input").fill("What do I do when the queue stalls?")
        await page.get_by_test_id("send").click()
        reply = page.locator('[data-testid="message"][data-role="assistant"]').last
        await expect(reply.get_by_test_id("message-body")).to_contain_text("rack seven")
        await expect(reply.get_by_test_id("pin")).to_be_enabled(timeout=15_000)
        # The passage went to the model with the question, in the same conversation.
        sent = await model_requests(stage)
        assert any("blue lever in rack seven" in body for body in sent), sent
        assert page.url.endswith(f"#/chat/{conversation_id}")

        # The document stays with the chat: it is there after a reload, and can be removed.
        await page.reload()
        await expect(page.get_by_test_id("attachment")).to_have_count(1)
        await expect(page.get_by_test_id("attachment-line")).to_have_text("1 KB")
        await page.get_by_test_id("detach").click()
        await expect(page.get_by_test_id("attachment")).to_have_count(0)
        await expect(page.get_by_test_id("toast").last).to_contain_text("no longer answers")
        assert await links_of(stage, conversation_id) == []
    finally:
        await context.close()


async def test_files_that_cannot_be_documents_are_refused_and_attach_nothing(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    omar = await stage.account("Omar", money=50_000)
    context, page = await open_app(browser, stage, omar, errors)
    try:
        # Over the limit: refused in the page, before anything is sent or created.
        await choose(page, "huge.txt", b"a" * (LIMIT_MB * 1024 * 1024 + 1), "text/plain")
        await expect(page.get_by_test_id("toast").last).to_contain_text(
            f"huge.txt is too large: the limit is {LIMIT_MB} MB."
        )
        await expect(page.get_by_test_id("attachment")).to_have_count(0)
        async with stage.factory() as uow:
            started = await uow.session.scalar(
                select(Conversation.id).where(Conversation.user_id == omar.user_id)
            )
        assert started is None
        # A program named like a document: the server refuses it and says why.
        await choose(page, "notes.txt", b"MZ\x90\x00" + bytes(2000), "text/plain")
        await expect(page.get_by_test_id("toast").last).to_contain_text("notes.txt:")
        await expect(page.get_by_test_id("attachment")).to_have_count(0)
        await expect(page.get_by_test_id("send")).to_be_enabled()
        conversation_id = int(page.url.rsplit("/", 1)[1])
        assert await links_of(stage, conversation_id) == []
    finally:
        await context.close()
