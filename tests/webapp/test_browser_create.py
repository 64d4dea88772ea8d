"""Making pictures and videos in the app, in headless Chromium against the real web app, the
sandbox's providers and a real worker, on a phone (390x844) and a desktop (1280x800), in English
and Russian: pictures of a chosen shape and two variations appear in the gallery and open in the
viewer, "More like this" draws again, a video turns from "being made" into a player without a
reload, too little money offers a top-up, and image mode is switched on in the settings and
draws in the chat until turned off there."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Browser, Page, expect

from tests.webapp.test_browser_pages import Account, balance_of, open_app, screenshot
from tests.webapp.test_gallery_create import PRICE, CreativeStage, stage

__all__ = ["stage"]

CASES = [
    pytest.param(True, "en", id="phone-en"),
    pytest.param(False, "ru", id="desktop-ru"),
    pytest.param(True, "ru", id="phone-ru"),
    pytest.param(False, "en", id="desktop-en"),
]
DESKTOP = {"width": 1280, "height": 800}


async def _open(
    browser: Browser, stage: CreativeStage, account: Account, errors: list[str], phone: bool
) -> tuple[object, Page]:
    context, page = await open_app(browser, stage, account, errors, phone=phone)
    if not phone:
        await page.set_viewport_size(DESKTOP)
    return context, page


async def _gallery(page: Page, phone: bool) -> None:
    await page.get_by_test_id("tab-gallery" if phone else "nav-gallery").click()
    await expect(page.get_by_test_id("create-panel")).to_be_visible()


async def _settings(page: Page, phone: bool) -> None:
    if phone:
        await page.get_by_test_id("tab-more").click()
        await page.get_by_test_id("more-settings").click()
    else:
        await page.get_by_test_id("nav-settings").click()


@pytest.mark.parametrize(("phone", "language"), CASES)
async def test_pictures_of_a_shape_and_variations_are_made_viewed_and_made_again(
    browser: Browser, stage: CreativeStage, errors: list[str], phone: bool, language: str
) -> None:
    pia = await stage.account("Pia", language=language, money=20_000)
    name = f"{'phone' if phone else 'desktop'}-{language}"
    context, page = await _open(browser, stage, pia, errors, phone)
    try:
        await _gallery(page, phone)
        await page.get_by_test_id("create-prompt").fill("A red kite over a quiet lake at dawn")
        await page.get_by_test_id("create-model").select_option("gpt-image-2")
        await page.get_by_test_id("aspect-3-2").click()
        await page.get_by_test_id("count-2").click()
        # The price before: per picture, times the count.
        price = page.get_by_test_id("create-price")
        await expect(price).to_contain_text("× 2")
        await expect(page.get_by_test_id("aspect-3-2")).to_have_attribute("aria-pressed", "true")
        await screenshot(page, f"{name}-create-panel")

        await page.get_by_test_id("create-go").click()
        tiles = page.locator('[data-testid="media"][data-status="ready"]')
        await expect(tiles).to_have_count(2, timeout=15_000)
        await expect(page.get_by_test_id("create-result")).to_be_visible()
        await expect(page.get_by_test_id("create-result")).to_contain_text(re.compile(r"16[.,]80"))
        await screenshot(page, f"{name}-create-made")
        assert await balance_of(stage, pia) == 20_000 - 2 * PRICE

        await tiles.first.click()
        viewer = page.get_by_test_id("viewer-image")
        await expect(viewer).to_be_visible()
        size = await viewer.evaluate(
            "i => i.complete && i.naturalWidth ? [i.naturalWidth, i.naturalHeight] :"
            " new Promise(r => i.addEventListener('load', () =>"
            " r([i.naturalWidth, i.naturalHeight])))"
        )
        assert size == [1536, 1024]
        await screenshot(page, f"{name}-create-viewer")

        await page.get_by_test_id("viewer-more").click()
        await expect(tiles).to_have_count(4, timeout=15_000)
        assert await balance_of(stage, pia) == 20_000 - 4 * PRICE
        await screenshot(page, f"{name}-create-more")
    finally:
        await context.close()


@pytest.mark.parametrize(("phone", "language"), CASES[:2])
async def test_a_video_is_made_and_then_plays_without_a_reload(
    browser: Browser, stage: CreativeStage, errors: list[str], phone: bool, language: str
) -> None:
    vic = await stage.account("Vic", language=language, money=5_000)
    name = f"{'phone' if phone else 'desktop'}-{language}"
    context, page = await _open(browser, stage, vic, errors, phone)
    try:
        await _gallery(page, phone)
        await page.get_by_test_id("create-kind-video").click()
        await page.get_by_test_id("create-prompt").fill("Rain running down a window at night")
        await page.get_by_test_id("aspect-9-16").click()
        await expect(page.get_by_test_id("create-price")).to_contain_text(re.compile(r"4[.,]00"))
        await page.get_by_test_id("create-go").click()
        being_made = page.locator('[data-testid="media"][data-kind="video"][data-status="pending"]')
        await expect(being_made).to_have_count(1)
        await screenshot(page, f"{name}-video-being-made")
        tile = page.get_by_test_id("tile-video")
        await expect(tile).to_have_count(1, timeout=20_000)
        await page.get_by_test_id("media").first.click()
        player = page.get_by_test_id("viewer-video")
        await expect(player).to_be_visible()
        assert await player.evaluate("v => v.controls") is True
        played = (
            "async v => { v.muted = true; await v.play();"
            " await new Promise(r => {"
            " const t = () => (v.currentTime > 0.3 ? r() : setTimeout(t, 50)); t(); });"
            " return v.currentTime; }"
        )
        assert await player.evaluate(played) > 0.3
        await screenshot(page, f"{name}-video-playing")
        assert await balance_of(stage, vic) == 5_000 - 400
    finally:
        await context.close()


async def test_too_little_money_for_pictures_offers_a_top_up(
    browser: Browser, stage: CreativeStage, errors: list[str]
) -> None:
    ned = await stage.account("Ned", money=PRICE)
    context, page = await _open(browser, stage, ned, errors, True)
    try:
        await _gallery(page, True)
        await page.get_by_test_id("create-prompt").fill("Two moons over a desert")
        await page.get_by_test_id("count-2").click()
        await page.get_by_test_id("create-go").click()
        refusal = page.get_by_test_id("insufficient-funds")
        await expect(refusal).to_be_visible()
        await expect(refusal).to_contain_text("Top up")
        await screenshot(page, "phone-en-create-no-money")
        await page.get_by_test_id("top-up").click()
        await expect(page.get_by_test_id("balance-amount")).to_be_visible()
        assert await balance_of(stage, ned) == PRICE
    finally:
        await context.close()


# The other two of the four cases than the video's: each language and each screen once.
@pytest.mark.parametrize(("phone", "language"), CASES[2:])
async def test_image_mode_is_turned_on_in_the_settings_and_draws_in_the_chat(
    browser: Browser, stage: CreativeStage, errors: list[str], phone: bool, language: str
) -> None:
    ida = await stage.account("Ida", language=language, money=10_000)
    name = f"{'phone' if phone else 'desktop'}-{language}"
    context, page = await _open(browser, stage, ida, errors, phone)
    try:
        await _settings(page, phone)
        mode = page.get_by_test_id("image-mode-toggle")
        await expect(mode).not_to_be_checked()
        await mode.check(force=True)
        await expect(page.get_by_test_id("toast")).to_be_visible()
        await screenshot(page, f"{name}-image-mode-setting")

        if phone:
            await page.get_by_test_id("back").click()
        await page.get_by_test_id("tab-chat" if phone else "nav-chat").click()
        bar = page.get_by_test_id("image-mode-bar")
        await expect(bar).to_be_visible()
        await expect(bar).to_contain_text(re.compile(r"8[.,]40"))
        await page.get_by_test_id("composer-input").fill("A lighthouse at dusk")
        await page.get_by_test_id("send").click()
        picture = page.get_by_test_id("chat-picture-image")
        await expect(picture).to_be_visible(timeout=15_000)
        await expect(page.get_by_test_id("chat-picture-caption")).to_contain_text(
            re.compile(r"GPT Image 2 · ₽?8[.,]40")
        )
        await screenshot(page, f"{name}-image-mode-chat")
        assert await balance_of(stage, ida) == 10_000 - PRICE

        await page.get_by_test_id("image-mode-off").click()
        await expect(bar).to_be_hidden()
        async with stage.factory() as uow:
            user = await uow.users.get(ida.user_id)
            assert user is not None and not (user.features or {}).get("image_mode")
        await page.get_by_test_id("chat-picture-gallery").click()
        await expect(page.locator('[data-testid="media"][data-status="ready"]')).to_have_count(1)
    finally:
        await context.close()
