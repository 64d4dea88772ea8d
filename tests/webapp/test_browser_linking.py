"""Linking on the "Sign-in and security" page in headless Chromium against the real web app and
the sandbox: a web account gets its one-time Telegram deep link (the bot's side is confirmed as
the bot does it, through the use case; the bot itself is tested in tests/bot/test_linking.py),
and an account made in Telegram adds email and password inside the Mini App."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import unquote

from playwright.async_api import Browser, expect
from redis.asyncio import Redis

from core.services import linking
from tests.factories import telegram_id
from tests.webapp.test_browser_pages import Stage, new_page, open_app
from tests.webapp.test_browser_security import (
    PASSWORD,
    email_account,
    new_address,
    open_security,
    sign_in,
    stage,
)

__all__ = ["stage"]


async def test_a_web_account_links_telegram_with_the_deep_link(
    browser: Browser, stage: Stage, redis: Redis, errors: list[str]
) -> None:
    email = await email_account(stage)
    context, page = await new_page(browser, errors, phone=False)
    try:
        await sign_in(page, stage, email)
        await open_security(page, phone=False)
        telegram = page.get_by_test_id("method-telegram")
        await expect(telegram).to_have_attribute("data-linked", "false")
        await page.get_by_test_id("link-telegram").click()
        opener = page.get_by_test_id("link-telegram-open")
        await expect(opener).to_be_visible()
        href = await opener.get_attribute("href")
        found = re.fullmatch(
            r"https://t\.me/netroom_test_bot\?start=(link-[A-Za-z0-9_-]{16})", href or ""
        )
        assert found, href
        await expect(page.get_by_test_id("link-telegram-panel")).to_contain_text("10 minutes")
        # Not confirmed in the bot yet: the page says so.
        await page.get_by_test_id("link-telegram-done").click()
        await expect(page.get_by_text("Not linked yet")).to_be_visible()
        code = linking.code_of_payload(found.group(1))
        assert code is not None
        async with stage.factory() as uow:
            await linking.confirm_telegram_link(
                uow,
                redis,
                code=code,
                telegram_id=telegram_id(),
                username=None,
                now=datetime.now(UTC),
            )
        await page.get_by_test_id("link-telegram-done").click()
        await expect(page.get_by_test_id("method-telegram")).to_have_attribute(
            "data-linked", "true"
        )
        await expect(page.get_by_test_id("link-telegram")).to_have_count(0)
    finally:
        await context.close()
    assert errors == []


async def test_an_account_made_in_telegram_adds_email_and_password_in_the_mini_app(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    mina = await stage.account("Mina")
    context, page = await open_app(browser, stage, mina, errors)
    try:
        await open_security(page, phone=True)
        # Telegram cannot be linked again from inside it.
        await expect(page.get_by_test_id("link-telegram")).to_have_count(0)
        address = new_address("mina")
        await page.get_by_test_id("add-email-address").fill(address)
        await page.get_by_test_id("add-email-password").fill(PASSWORD)
        await page.get_by_test_id("add-email-repeat").fill("not the same")
        await page.get_by_test_id("add-email-submit").click()
        await expect(page.get_by_test_id("add-email-error")).to_have_text(
            "The new passwords do not match."
        )
        await page.get_by_test_id("add-email-repeat").fill(PASSWORD)
        await page.get_by_test_id("add-email-submit").click()
        await expect(page.get_by_test_id("add-email-sent")).to_contain_text(address)
    finally:
        await context.close()
    mails = await stage.mails(address)
    found = re.search(r"/app#confirm=(\S+)", mails[-1]["text"])
    assert found, mails
    confirmed = await stage.http.post(
        f"{stage.url}/api/auth/confirm", json={"token": unquote(found.group(1))}
    )
    assert confirmed.status_code == 200
    signed_in = await stage.http.post(
        f"{stage.url}/api/auth/sign-in", json={"email": address, "password": PASSWORD}
    )
    assert signed_in.status_code == 200, signed_in.text
    assert errors == []
