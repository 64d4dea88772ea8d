"""The chat's microphone in headless Chromium with a fake microphone (a tone from Chromium's fake
capture device), against the real web app and the sandbox's transcription fake: a recording is
made with MediaRecorder, uploaded, billed per started minute, and its text lands in the
composer for the user to send; where voice input is not offered there is no microphone."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, async_playwright, expect
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.services import billing, voice
from db.models import LedgerEntry
from tests.sandbox_web.stage import CHROMIUM, CHROMIUM_ARGS, PageServer
from tests.webapp.test_browser_pages import (
    Stage,
    assert_fits,
    open_app,
    running_stage,
    screenshot,
)

TERMS = voice.TranscriptionTerms(
    "browser-transcribe", "openai", f"whisper-browser-{secrets.token_hex(3)}", minute_price=40
)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """Chromium with a fake microphone that is allowed without asking."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                *CHROMIUM_ARGS,
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
            ],
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def stage(
    engine: AsyncEngine, redis: Redis, page_server: PageServer, tmp_path: Path
) -> AsyncIterator[Stage]:
    async with running_stage(
        engine,
        redis,
        page_server,
        tmp_path / "media",
        transcription=TERMS,
        read_aloud_offered=True,
    ) as running:
        yield running


async def transcriptions(stage: Stage) -> list[dict[str, Any]]:
    """The forms sent to the sandbox's transcription model so far, oldest first."""
    answer = await stage.http.get(f"{stage.sandbox.url}/sandbox/api/providers/requests")
    return [
        r["form"]
        for r in answer.json()["requests"]
        if (r["form"] or {}).get("model") == TERMS.provider_model
    ]


BOTH = pytest.mark.parametrize(
    ("language", "phone"), [("en", True), ("ru", False)], ids=["en-phone", "ru-desktop"]
)
TEXTS = {
    "en": {
        "dictate": "Dictate a message",
        "blocked": "The microphone is blocked. Allow it in the browser to dictate.",
    },
    "ru": {
        "dictate": "Надиктовать сообщение",
        "blocked": "Микрофон заблокирован. Разрешите его в браузере, чтобы диктовать.",
    },
}


@BOTH
async def test_dictating_puts_the_transcript_in_the_composer_and_bills_it(
    browser: Browser, stage: Stage, errors: list[str], language: str, phone: bool
) -> None:
    shot = f"voice-{'phone' if phone else 'desktop'}-{language}"
    before = await transcriptions(stage)
    mia = await stage.account("Mia", language=language, money=10_000)
    context, page = await open_app(browser, stage, mia, errors, phone=phone)
    try:
        await context.grant_permissions(["microphone"], origin=stage.url)
        await expect(page.get_by_test_id("composer-input")).to_be_enabled()
        mic = page.get_by_test_id("mic")
        await expect(mic).to_be_visible()
        await expect(mic).to_have_attribute("aria-label", TEXTS[language]["dictate"])
        await screenshot(page, f"{shot}-mic-idle")

        await mic.click()
        await expect(mic).to_have_attribute("aria-pressed", "true")
        await expect(page.get_by_test_id("mic-timer")).to_have_text("0:02", timeout=5_000)
        await assert_fits(page)
        await screenshot(page, f"{shot}-mic-recording")
        await mic.click()

        composer = page.get_by_test_id("composer-input")
        await expect(composer).to_have_value(
            # The fake hears any non-text audio as a phrase naming its size.
            re.compile(r"^Sandbox transcript of \d+ bytes of audio\.$"),
            timeout=15_000,
        )
        await expect(mic).to_have_attribute("aria-pressed", "false")
        await screenshot(page, f"{shot}-mic-transcribed")

        # A real recording went up: WebM or Ogg with Opus, with the time the browser measured.
        uploads = await transcriptions(stage)
        # The sandbox outlives a test: this one added one upload to what earlier ones made.
        assert len(uploads) == len(before) + 1
        upload = uploads[-1]
        assert upload["filename"] in ("voice.webm", "voice.ogg")
        assert int(upload["file_bytes"]) > 1000
        # One started minute at 40 kopecks, nothing left held.
        async with stage.factory() as uow:
            amounts = list(
                await uow.session.scalars(
                    select(LedgerEntry.amount).where(
                        LedgerEntry.user_id == mia.user_id, LedgerEntry.model_id == TERMS.id
                    )
                )
            )
            balance = await billing.get_balance(uow, mia.user_id)
        assert amounts == [-40]
        assert (balance.balance, balance.reserved) == (10_000 - 40, 0)

        # The text is the user's to send.
        await page.get_by_test_id("send").click()
        reply = page.locator('[data-testid="message"][data-role="assistant"]').last
        await expect(reply).to_contain_text("You said: Sandbox transcript of", timeout=15_000)
        await screenshot(page, f"{shot}-mic-sent")
    finally:
        await context.close()


async def test_read_aloud_is_switched_on_in_the_settings(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    leo = await stage.account("Leo")
    context, page = await open_app(browser, stage, leo, errors)
    try:
        await page.get_by_test_id("tab-more").click()
        await page.get_by_test_id("more-settings").click()
        toggle = page.get_by_test_id("read-aloud-toggle")
        await expect(toggle).not_to_be_checked()
        await toggle.check()
        await expect(page.get_by_test_id("toast")).to_have_text("Saved.")
        await screenshot(page, "voice-settings-read-aloud")
        async with stage.factory() as uow:
            user = await uow.users.get(leo.user_id)
            assert user is not None and user.features.get("read_aloud") is True
        await page.reload()
        await expect(page.get_by_test_id("read-aloud-toggle")).to_be_checked()
    finally:
        await context.close()


async def test_without_voice_input_the_composer_has_no_microphone(
    browser: Browser,
    engine: AsyncEngine,
    redis: Redis,
    page_server: PageServer,
    tmp_path: Path,
    errors: list[str],
) -> None:
    async with running_stage(engine, redis, page_server, tmp_path / "media") as plain:
        ned = await plain.account("Ned")
        context, page = await open_app(browser, plain, ned, errors)
        try:
            await expect(page.get_by_test_id("composer-input")).to_be_enabled()
            await expect(page.get_by_test_id("mic")).to_have_count(0)
            # Nor is reading aloud offered when the bot cannot do it.
            await page.get_by_test_id("tab-more").click()
            await page.get_by_test_id("more-settings").click()
            await expect(page.get_by_test_id("reasoning-toggle")).to_be_visible()
            await expect(page.get_by_test_id("read-aloud-toggle")).to_have_count(0)
        finally:
            await context.close()


@BOTH
async def test_a_blocked_microphone_is_explained_and_nothing_is_sent(
    stage: Stage, errors: list[str], language: str, phone: bool
) -> None:
    # Earlier tests on this stage transcribed; this one must add nothing.
    before = await transcriptions(stage)
    # A browser that asks before opening the microphone, and is refused.
    async with async_playwright() as playwright:
        refusing = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, "--use-fake-device-for-media-stream"]
        )
        try:
            eli = await stage.account("Eli", language=language, money=1_000)
            context, page = await open_app(refusing, stage, eli, errors, phone=phone)
            await expect(page.get_by_test_id("composer-input")).to_be_enabled()
            await page.get_by_test_id("mic").click()
            await expect(page.get_by_test_id("toast")).to_have_text(TEXTS[language]["blocked"])
            await expect(page.get_by_test_id("mic")).to_have_attribute("aria-pressed", "false")
            await assert_fits(page)
            await screenshot(
                page, f"voice-{'phone' if phone else 'desktop'}-{language}-mic-blocked"
            )
            await context.close()
        finally:
            await refusing.close()
    assert await transcriptions(stage) == before
