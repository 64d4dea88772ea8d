"""The pages outside the app in headless Chromium, in Russian on a phone and in English on a
desktop: the home page's ways in, the 404 page with ways on, and the page a card payment comes
back to (paid, then a second payment cancelled on the sandbox's YooKassa checkout). Screenshots
go to ``test-artifacts/screenshots/``."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Browser, Page, expect

from tests.webapp.test_browser_pages import Stage, assert_fits, new_page, screenshot
from tests.webapp.test_browser_security import email_account, sign_in, stage

__all__ = ["stage"]

pytestmark = pytest.mark.parametrize(
    ("language", "phone"), [("ru", True), ("en", False)], ids=["ru-phone", "en-desktop"]
)

LOCALES = {"en": "en-US", "ru": "ru-RU"}
TEXTS = {
    "en": {
        "hero": "Every AI model in one Telegram chat",
        "bot": "Open the bot in Telegram",
        "web": "Sign in on the web",
        "lost": "Page not found",
        "home": "Home page",
        "open": "Open NetRoom",
        "paid": "Payment received",
        "added": "₽300.00 has been added to your NetRoom balance.",
        "back": "Back to Telegram",
        "failed": "The payment did not go through",
        "untaken": "No money was taken for this payment of ₽300.00.",
        "balance": "₽300.00",
    },
    "ru": {
        "hero": "Все нейросети в одном чате Telegram",
        "bot": "Открыть бота в Telegram",
        "web": "Войти на сайте",
        "lost": "Страница не найдена",
        "home": "На главную",
        "open": "Открыть NetRoom",
        "paid": "Платёж получен",
        "added": "300,00 ₽",
        "back": "Вернуться в Telegram",
        "failed": "Платёж не прошёл",
        "untaken": "Деньги за этот платёж на 300,00 ₽ не списаны.",
        "balance": "300,00 ₽",
    },
}


def _device(phone: bool) -> str:
    return "phone" if phone else "desktop"


async def _side_by_side_or_stacked(page: Page, container: str) -> None:
    """The ways in are whole buttons inside the window, each big enough to tap."""
    for box in [await link.bounding_box() for link in await page.locator(f"{container} a").all()]:
        assert box is not None and box["height"] >= 36
        assert box["x"] >= 0 and box["x"] + box["width"] <= page.viewport_size["width"]  # type: ignore[index]


async def test_the_home_page_offers_both_ways_in(
    browser: Browser, stage: Stage, errors: list[str], language: str, phone: bool
) -> None:
    texts = TEXTS[language]
    context, page = await new_page(browser, errors, phone=phone, locale=LOCALES[language])
    try:
        await page.goto(f"{stage.url}/")
        await expect(page.locator("html")).to_have_attribute("lang", language)
        await expect(page.get_by_role("heading", level=1)).to_have_text(texts["hero"])
        bot = page.get_by_role("link", name=texts["bot"])
        await expect(bot).to_have_attribute("href", "https://t.me/netroom_test_bot")
        web = page.get_by_role("link", name=texts["web"])
        await expect(web).to_be_visible()
        await _side_by_side_or_stacked(page, ".ways-in")
        await assert_fits(page)
        await screenshot(page, f"{_device(phone)}-home-{language}")
        await web.click()
        await expect(page.get_by_test_id("sign-in")).to_be_visible()
        await expect(page.locator("html")).to_have_attribute("lang", language)
        assert errors == []
    finally:
        await context.close()


async def test_an_unknown_address_shows_a_page_with_ways_on(
    browser: Browser, stage: Stage, errors: list[str], language: str, phone: bool
) -> None:
    texts = TEXTS[language]
    context, page = await new_page(browser, errors, phone=phone, locale=LOCALES[language])
    try:
        response = await page.goto(f"{stage.url}/no-such-page")
        assert response is not None and response.status == 404
        await expect(page.get_by_role("heading", level=1)).to_have_text(texts["lost"])
        home = page.get_by_role("link", name=texts["home"])
        app = page.get_by_role("link", name=texts["open"])
        await expect(app).to_have_attribute("href", "/app")
        # The two buttons sit in the middle, under the centred heading.
        boxes = [await home.bounding_box(), await app.bounding_box()]
        assert boxes[0] is not None and boxes[1] is not None
        middle = (boxes[0]["x"] + boxes[1]["x"] + boxes[1]["width"]) / 2
        width = page.viewport_size["width"]  # type: ignore[index]
        assert abs(middle - width / 2) < 24, (middle, width)
        await _side_by_side_or_stacked(page, ".ways-in")
        await assert_fits(page)
        await screenshot(page, f"{_device(phone)}-not-found-{language}")
        await home.click()
        await expect(page.get_by_role("heading", level=1)).to_have_text(texts["hero"])
    finally:
        await context.close()


async def test_a_card_payment_comes_back_to_a_page_saying_what_happened(
    browser: Browser, stage: Stage, errors: list[str], language: str, phone: bool
) -> None:
    texts = TEXTS[language]
    email = await email_account(stage, language=language)
    context, page = await new_page(browser, errors, phone=phone, locale=LOCALES[language])
    try:
        await sign_in(page, stage, email)
        await page.get_by_test_id("tab-balance" if phone else "nav-balance").click()
        await page.get_by_test_id("card-300").click()
        await page.wait_for_url(re.compile(re.escape(stage.sandbox.url)))
        await page.get_by_role("button", name="Pay").click()
        await page.wait_for_url(re.compile(re.escape(f"{stage.url}/pay/result/")))
        await expect(page.get_by_role("heading", level=1)).to_have_text(texts["paid"])
        await expect(page.locator(".pay-result")).to_contain_text(texts["added"])
        await expect(page.get_by_role("link", name=texts["back"])).to_have_attribute(
            "href", "https://t.me/netroom_test_bot"
        )
        await _side_by_side_or_stacked(page, ".ways-in")
        await assert_fits(page)
        await screenshot(page, f"{_device(phone)}-pay-result-paid-{language}")

        # Back in the app the money is there; a second payment is cancelled at the checkout.
        await page.get_by_role("link", name=texts["open"]).click()
        await page.get_by_test_id("tab-balance" if phone else "nav-balance").click()
        await expect(page.get_by_test_id("balance-amount")).to_have_text(texts["balance"])
        await page.get_by_test_id("card-300").click()
        await page.wait_for_url(re.compile(re.escape(stage.sandbox.url)))
        await page.get_by_role("button", name="Cancel").click()
        await page.wait_for_url(re.compile(re.escape(f"{stage.url}/pay/result/")))
        await expect(page.get_by_role("heading", level=1)).to_have_text(texts["failed"])
        await expect(page.locator(".pay-result")).to_contain_text(texts["untaken"])
        await assert_fits(page)
        await screenshot(page, f"{_device(phone)}-pay-result-canceled-{language}")
    finally:
        await context.close()
