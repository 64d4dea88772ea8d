"""Linking on the "Sign-in and security" page in headless Chromium against the real web app and
the sandbox: a web account gets its one-time Telegram deep link (the bot's side is confirmed as
the bot does it, through the use case; the bot itself is tested in tests/bot/test_linking.py),
and an account made in Telegram adds email and password inside the Mini App."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import unquote

import pytest
from playwright.async_api import Browser, Page, expect
from redis.asyncio import Redis
from sqlalchemy import select

from core.services import accounts, billing, linking
from db.models import Identity
from tests.core.test_linking import with_history
from tests.factories import telegram_id
from tests.webapp.test_browser_pages import Stage, assert_fits, new_page, open_app, screenshot
from tests.webapp.test_browser_security import (
    PASSWORD,
    email_account,
    new_address,
    open_security,
    sign_in,
    stage,
)

__all__ = ["stage"]


LINK_TEXTS = {
    "en": ("10 minutes", "Not linked yet"),
    "ru": ("10 минут", "Пока не привязано"),
}


@pytest.mark.parametrize(
    ("language", "phone"), [("en", False), ("ru", True)], ids=["en-desktop", "ru-phone"]
)
async def test_a_web_account_links_telegram_with_the_deep_link(
    browser: Browser, stage: Stage, redis: Redis, errors: list[str], language: str, phone: bool
) -> None:
    minutes, waiting = LINK_TEXTS[language]
    email = await email_account(stage, language=language)
    context, page = await new_page(browser, errors, phone=phone)
    try:
        await sign_in(page, stage, email)
        await open_security(page, phone=phone, language=language)
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
        await expect(page.get_by_test_id("link-telegram-panel")).to_contain_text(minutes)
        await assert_fits(page)
        await screenshot(page, f"{'phone' if phone else 'desktop'}-link-telegram-{language}")
        # Not confirmed in the bot yet: the page says so.
        await page.get_by_test_id("link-telegram-done").click()
        await expect(page.get_by_text(waiting)).to_be_visible()
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


@pytest.mark.parametrize(
    ("language", "phone"), [("en", True), ("ru", False)], ids=["en-phone", "ru-desktop"]
)
async def test_an_account_made_in_telegram_adds_email_and_password_in_the_mini_app(
    browser: Browser, stage: Stage, errors: list[str], language: str, phone: bool
) -> None:
    mina = await stage.account("Mina", language=language)
    context, page = await open_app(browser, stage, mina, errors, phone=phone)
    try:
        await open_security(page, phone=phone, language=language)
        # Telegram cannot be linked again from inside it.
        await expect(page.get_by_test_id("link-telegram")).to_have_count(0)
        address = new_address("mina")
        await page.get_by_test_id("add-email-address").fill(address)
        await page.get_by_test_id("add-email-password").fill(PASSWORD)
        await page.get_by_test_id("add-email-repeat").fill("not the same")
        await page.get_by_test_id("add-email-submit").click()
        await expect(page.get_by_test_id("add-email-error")).to_have_text(
            {"en": "The new passwords do not match.", "ru": "Новые пароли не совпадают."}[language]
        )
        await page.get_by_test_id("add-email-repeat").fill(PASSWORD)
        await page.get_by_test_id("add-email-submit").click()
        await expect(page.get_by_test_id("add-email-sent")).to_contain_text(address)
        await assert_fits(page)
        await screenshot(page, f"{'phone' if phone else 'desktop'}-add-email-{language}")
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


async def _web_user_id(stage: Stage, email: str) -> int:
    async with stage.factory() as uow:
        user_id = await uow.session.scalar(
            select(Identity.user_id).where(Identity.provider == "email", Identity.subject == email)
        )
    assert user_id is not None
    return int(user_id)


async def _asked_code(page: Page) -> str:
    """Taps "Link Telegram" on the security page: the code of the deep link it shows."""
    await page.get_by_test_id("link-telegram").click()
    href = await page.get_by_test_id("link-telegram-open").get_attribute("href")
    code = linking.code_of_payload((href or "").rpartition("start=")[2])
    assert code is not None, href
    return code


async def test_a_web_account_merged_into_the_telegram_account_is_told_where_its_chats_went(
    browser: Browser, stage: Stage, redis: Redis, errors: list[str]
) -> None:
    email = await email_account(stage)
    web_id = await _web_user_id(stage, email)
    async with stage.factory() as uow:
        await accounts.update_settings(uow, web_id, language="ru")
        await with_history(uow, web_id, "sorrel")
    mina = await stage.account("Mina", language="ru", money=5_000)
    context, page = await new_page(browser, errors, phone=True)
    try:
        await sign_in(page, stage, email)
        # The page came back in the account's language, on the chat as any sign-in.
        await expect(page.locator("html")).to_have_attribute("lang", "ru")
        await expect(page.get_by_test_id("tab-chat")).to_have_class("active")
        await expect(page.get_by_test_id("tab-chat")).to_be_visible()
        await page.evaluate("location.hash = '#/security'")
        await expect(page.get_by_test_id("view-title")).to_have_text("Вход и безопасность")
        code = await _asked_code(page)
        async with stage.factory() as uow:
            outcome = await linking.confirm_telegram_link(
                uow,
                redis,
                code=code,
                telegram_id=mina.telegram_id,
                username=None,
                now=datetime.now(UTC),
            )
        assert (outcome.user_id, outcome.erased_user_id) == (mina.user_id, web_id)
        await page.get_by_test_id("link-telegram-done").click()
        await expect(page.get_by_test_id("sign-in")).to_be_visible()
        await expect(page.get_by_test_id("auth-info")).to_have_text(
            "Telegram привязан: ваши чаты, пресеты, файлы и картинки отсюда перенесены в ваш "
            "аккаунт Telegram — теперь он у вас один. Войдите снова тем же способом, и они "
            "будут там."
        )
        await screenshot(page, "phone-linking-merged-away-ru")
    finally:
        await context.close()
    assert errors == []
    # Signing in again the same way finds the Telegram account, with the web chats.
    signed_in = await stage.http.post(
        f"{stage.url}/api/auth/sign-in", json={"email": email, "password": PASSWORD}
    )
    token = signed_in.json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    me = await stage.http.get(f"{stage.url}/api/me", headers=headers)
    assert me.json()["id"] == mina.user_id


async def test_the_telegram_chats_show_on_the_web_account_with_money_after_linking(
    browser: Browser, stage: Stage, redis: Redis, errors: list[str]
) -> None:
    email = await email_account(stage)
    web_id = await _web_user_id(stage, email)
    async with stage.factory() as uow, uow.transaction():
        await billing.credit(
            uow, user_id=web_id, amount=9_000, category="topup", key=f"merge-{web_id}"
        )
    nina = await stage.account("Nina")
    async with stage.factory() as uow:
        await with_history(uow, nina.user_id, "quince")
    context, page = await new_page(browser, errors, phone=False)
    try:
        await sign_in(page, stage, email)
        await open_security(page, phone=False)
        code = await _asked_code(page)
        async with stage.factory() as uow:
            await linking.confirm_telegram_link(
                uow,
                redis,
                code=code,
                telegram_id=nina.telegram_id,
                username=None,
                now=datetime.now(UTC),
            )
        await page.get_by_test_id("link-telegram-done").click()
        await expect(page.get_by_test_id("toast")).to_have_text(
            "Telegram is linked. Your chats, presets, files and pictures from the bot are here now."
        )
        await expect(page.get_by_test_id("method-telegram")).to_have_attribute(
            "data-linked", "true"
        )
        await screenshot(page, "desktop-linking-merged-here")
        await page.evaluate("location.hash = '#/chat'")
        await expect(page.get_by_test_id("conversation")).to_contain_text(["quince chat"])
        await page.get_by_test_id("nav-presets").click()
        await expect(page.get_by_text("quince preset")).to_be_visible()
    finally:
        await context.close()
    assert errors == []
