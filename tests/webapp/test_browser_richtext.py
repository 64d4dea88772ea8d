"""Formulas, code and media in the Mini App, in headless Chromium against the real web app and the
sandbox's model fakes, in Russian and English, on a phone and a desktop (screenshots under
test-artifacts/screenshots): a reply's math is typeset by the vendored KaTeX and its code
coloured by the vendored highlight.js, under the app's own CSP, with a copy button on every code
block; prices stay prose. The gallery deletes a picture (record and file); the privacy page
downloads the chats as a readable page right after another format."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, expect
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.services import accounts
from db.models import Media
from tests.sandbox_web.stage import PageServer
from tests.webapp.test_browser_chat import ask, replies
from tests.webapp.test_browser_pages import (
    Stage,
    assert_fits,
    open_app,
    running_stage,
    screenshot,
)

DISPLAY = "\\int_0^1 x^2\\,dx = \\frac{1}{3}"
REPLY = (
    "The area under $y = x^2$ on $[0, 1]$ is\n\n"
    f"$$\n{DISPLAY}\n$$\n\n"
    "Euler: \\(e^{i\\pi} + 1 = 0\\). Tickets cost $5 and $10.\n\n"
    "```python\ndef area(n: int) -> float:\n    return 1 / 3  # exact\n```\n"
)
TEXTS = {
    "en": {"copy": "Copy", "copied": "Copied.", "delete": "Delete", "deleted": "Deleted."},
    "ru": {"copy": "Копировать", "copied": "Скопировано.", "delete": "Удалить"},
}


@pytest.fixture
async def stage(
    engine: AsyncEngine, redis: Redis, page_server: PageServer, tmp_path: Path
) -> AsyncIterator[Stage]:
    async with running_stage(engine, redis, page_server, tmp_path / "media") as running:
        yield running


def watch_csp(page: Page) -> list[str]:
    """Everything the Content-Security-Policy refused on the page."""
    refused: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            refused.append(message.text)

    page.on("console", on_console)
    return refused


@pytest.mark.parametrize(
    ("language", "phone", "dark"),
    [("ru", True, False), ("en", False, False), ("en", True, True)],
    ids=["ru-phone", "en-desktop", "en-phone-dark"],
)
async def test_a_reply_with_math_and_code_is_typeset_coloured_and_copyable(
    browser: Browser, stage: Stage, errors: list[str], language: str, phone: bool, dark: bool
) -> None:
    ada = await stage.account("Ada", language=language, money=50_000)
    await stage.script("gpt-4o", reply=REPLY, chunk_size=7, chunk_delay_ms=15)
    context, page = await open_app(browser, stage, ada, errors, phone=phone, dark=dark)
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=stage.url)
    refused = watch_csp(page)
    try:
        await ask(page, "Area under x squared?")
        reply = replies(page).last
        await expect(reply.get_by_test_id("pin")).to_be_enabled(timeout=15_000)
        body = reply.get_by_test_id("message-body")

        # Inline and display math typeset by KaTeX (its MathML keeps the TeX as written).
        inline = body.locator(".math-inline")
        await expect(inline).to_have_count(3)
        await expect(body.locator(".math-inline .katex")).to_have_count(3)
        display = body.locator(".math-display")
        await expect(display.locator(".katex-display")).to_have_count(1)
        await expect(display.locator("annotation")).to_have_text(DISPLAY)
        await expect(body.locator(".math-inline annotation").first).to_have_text("y = x^2")
        # The KaTeX fonts came from our own origin.
        loaded = await page.evaluate(
            "() => document.fonts.ready.then(() => [...document.fonts]"
            ".filter(f => f.family.includes('KaTeX') && f.status === 'loaded').length)"
        )
        assert loaded > 0
        # Prices are prose, and nothing of the TeX leaks as text outside the formulas.
        await expect(body).to_contain_text("cost $5 and $10.")
        assert "\\frac" not in await body.locator("p").first.inner_text()

        # The code block: coloured, labelled, and copied whole at a tap.
        block = body.get_by_test_id("code-block")
        await expect(block.locator("code.hljs .hljs-keyword").first).to_have_text("def")
        await expect(block.locator(".code-lang")).to_have_text("python")
        copy = block.get_by_test_id("code-copy")
        await expect(copy).to_have_text(TEXTS[language]["copy"])
        await copy.click()
        await expect(page.locator(".toast").last).to_have_text(TEXTS[language]["copied"])
        copied = await page.evaluate("() => navigator.clipboard.readText()")
        assert copied == "def area(n: int) -> float:\n    return 1 / 3  # exact"

        assert refused == []
        name = f"{'phone' if phone else 'desktop'}-chat-math-{language}{'-dark' if dark else ''}"
        await screenshot(page, name)
    finally:
        await context.close()


@pytest.mark.parametrize(("language", "phone"), [("en", True), ("ru", False)], ids=["en", "ru"])
async def test_a_picture_is_deleted_from_the_gallery_with_its_file(
    browser: Browser, stage: Stage, errors: list[str], language: str, phone: bool
) -> None:
    mina = await stage.account("Mina", language=language, money=1_000)
    await stage.media(mina)
    async with stage.factory() as uow:
        rows = list(
            await uow.session.execute(
                select(Media.id, Media.storage_key, Media.prompt)
                .where(Media.user_id == mina.user_id, Media.status == "ready")
                .order_by(Media.id.desc())
            )
        )
    newest_id, newest_key, newest_prompt = rows[0]
    context, page = await open_app(browser, stage, mina, errors, phone=phone)
    try:
        await page.get_by_test_id("tab-gallery" if phone else "nav-gallery").click()
        tiles = page.get_by_test_id("media")
        await expect(tiles).to_have_count(5)
        # One still being made cannot be deleted yet.
        pending = page.locator('[data-testid="media"][data-status="pending"]')
        await expect(pending.get_by_test_id("media-delete")).to_have_count(0)
        tile = page.locator(f'[data-testid="media"][data-id="{newest_id}"]')
        await tile.get_by_test_id("media-delete").click()
        dialog = page.get_by_test_id("confirm")
        await expect(dialog).to_be_visible()
        await screenshot(page, f"{'phone' if phone else 'desktop'}-gallery-delete-{language}")
        await dialog.get_by_test_id("dialog-confirm").click()
        await expect(tiles).to_have_count(4)
        await expect(page.get_by_text(newest_prompt)).to_have_count(0)
        async with stage.factory() as uow:
            assert await uow.session.get(Media, newest_id) is None
        with pytest.raises(FileNotFoundError):
            await stage.store.load(newest_key)
        # The file's link no longer opens.
        gone = await page.request.get(f"{stage.url}/media/{newest_key}")
        assert gone.status == 404

        # Another, from the viewer, after a cancel that keeps it.
        _, second_key, _ = rows[1]
        await page.locator(f'[data-testid="media"][data-id="{rows[1][0]}"]').click()
        await expect(page.get_by_test_id("media-viewer")).to_be_visible()
        await screenshot(page, f"{'phone' if phone else 'desktop'}-gallery-viewer-{language}")
        await page.get_by_test_id("viewer-delete").click()
        await page.get_by_test_id("dialog-cancel").click()
        await expect(tiles).to_have_count(4)
        assert await stage.store.load(second_key)
    finally:
        await context.close()


EXPORT = {
    "en": {
        "prompt": "Hello <script>",
        "reply": "An answer <b>without</b> markup & $x^2$.",
        "escaped": "An answer &lt;b&gt;without&lt;/b&gt; markup &amp; $x^2$.",
        "button": "Chats as a web page (HTML)",
        "you": ">You · ",
        "title": "NetRoom: your chats",
        "zone": "Asia/Tokyo",
        "exported": "(Asia/Tokyo); times are in that zone.",
    },
    "ru": {
        "prompt": "Привет <script>",
        "reply": "Ответ <b>без</b> разметки & $x^2$.",
        "escaped": "Ответ &lt;b&gt;без&lt;/b&gt; разметки &amp; $x^2$.",
        "button": "Переписка веб-страницей (HTML)",
        "you": ">Вы · ",
        "title": "NetRoom: ваши чаты",
        "zone": "Asia/Vladivostok",
        "exported": "(Asia/Vladivostok), время указано в этом поясе.",
    },
}


@pytest.mark.parametrize(
    ("language", "phone"), [("ru", True), ("en", False)], ids=["ru-phone", "en-desktop"]
)
async def test_the_chats_download_as_a_page_right_after_another_format(
    browser: Browser, stage: Stage, errors: list[str], tmp_path: Path, language: str, phone: bool
) -> None:
    texts = EXPORT[language]
    device = "phone" if phone else "desktop"
    ada = await stage.account("Ada", language=language, money=50_000)
    async with stage.factory() as uow:
        await accounts.set_timezone(uow, ada.user_id, texts["zone"])
    await stage.script("gpt-4o", reply=texts["reply"])
    context, page = await open_app(browser, stage, ada, errors, phone=phone)
    try:
        await ask(page, texts["prompt"])
        await expect(replies(page).last.get_by_test_id("pin")).to_be_enabled(timeout=15_000)
        if phone:
            await page.get_by_test_id("tab-more").click()
            await page.get_by_test_id("more-privacy").click()
        else:
            await page.get_by_test_id("nav-privacy").click()
        async with page.expect_download() as first:
            await page.get_by_test_id("export-json").click()
        assert (await first.value).suggested_filename == "netroom-export.json"
        transcript = page.get_by_test_id("export-html")
        await expect(transcript).to_have_text(texts["button"])
        await assert_fits(page)
        await screenshot(page, f"{device}-privacy-export-{language}")
        async with page.expect_download() as second:
            await transcript.click()
        download = await second.value
        assert download.suggested_filename == "netroom-chats.html"
        saved = tmp_path / download.suggested_filename
        await download.save_as(saved)
        page_text = await asyncio.to_thread(saved.read_text, encoding="utf-8")
        assert f'<html lang="{language}">' in page_text and texts["you"] in page_text
        # The times are the account's, its zone named; the model by its display name.
        assert texts["exported"] in page_text
        assert " · GPT-4o · " in page_text
        assert texts["prompt"].replace("<", "&lt;").replace(">", "&gt;") in page_text
        assert texts["escaped"] in page_text
        assert "<script" not in page_text
        # Opened on its own, the saved page reads as a transcript.
        await page.goto(saved.as_uri())
        await expect(page.locator("h1")).to_have_text(texts["title"])
        await expect(page.locator("article.msg")).to_have_count(2)
        await expect(page.locator("article.msg.user .text")).to_have_text(texts["prompt"])
        await assert_fits(page)
        await screenshot(page, f"{device}-chats-transcript-{language}")
    finally:
        await context.close()
