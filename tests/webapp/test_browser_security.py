"""Signing in with Google and Yandex, and the "Sign-in and security" page, in headless Chromium
against the real web app and the sandbox (its OAuth providers' consent pages, its mailbox, its
Telegram launch data): sign-up and sign-in with Google, Yandex linked from the page and then
used to sign in, sessions listed and one ended from another browser, the password changed, and
the page inside the Mini App. Screenshots go to ``test-artifacts/screenshots/``.

The stage is the account pages' one (``test_browser_pages``) with Google and Yandex offered.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx
import pytest
from playwright.async_api import Browser, Page, expect
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.oauth import OAuthClient, OAuthProvider
from db.models import Identity
from tests.sandbox_web.stage import PageServer
from tests.webapp.test_browser_pages import (
    PHONE,
    SCREENSHOTS,
    Stage,
    assert_fits,
    new_page,
    open_app,
    running_stage,
    screenshot,
)

PASSWORD = "a long enough passphrase"
NEW_PASSWORD = "another, longer passphrase"
ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
USERINFO = {"google": "userinfo", "yandex": "info"}


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
async def stage(
    engine: AsyncEngine, redis: Redis, page_server: PageServer, tmp_path: Path
) -> AsyncIterator[Stage]:
    """The account pages' stage with Google and Yandex offered: clients of the sandbox's
    providers, registered there once the app's address (and so its callback URLs) is known."""
    providers = {
        name: OAuthProvider(
            name=name,
            client_id=f"netroom-{secrets.token_hex(4)}.apps.sandbox",
            client_secret=secrets.token_urlsafe(18),
            auth_url=f"{page_server.url}/oauth/{name}/authorize",
            token_url=f"{page_server.url}/oauth/{name}/token",
            userinfo_url=f"{page_server.url}/oauth/{name}/{USERINFO[name]}",
        )
        for name in ("google", "yandex")
    }
    async with httpx.AsyncClient(timeout=30) as http:
        oauth = OAuthClient(http, providers)
        async with running_stage(
            engine, redis, page_server, tmp_path / "media", oauth=oauth
        ) as running:
            for provider in providers.values():
                response = await running.http.post(
                    f"{page_server.url}/sandbox/api/oauth/clients",
                    json={
                        "provider": provider.name,
                        "client_id": provider.client_id,
                        "client_secret": provider.client_secret,
                        "redirect_uris": [f"{running.url}/api/auth/{provider.name}/callback"],
                    },
                )
                assert response.status_code == 201, response.text
            yield running


# --- helpers -----------------------------------------------------------------------------------


def new_address(name: str) -> str:
    return f"{name}.{secrets.token_hex(4)}@example.test"


async def email_account(stage: Stage, password: str = PASSWORD, *, language: str = "en") -> str:
    """Signed up and confirmed through the mailed link, over the app's API."""
    email = new_address("guard")
    registered = await stage.http.post(
        f"{stage.url}/api/auth/register",
        json={"email": email, "password": password, "accept_policy": True, "language": language},
    )
    assert registered.status_code == 202, registered.text
    mails = await stage.mails(email)
    found = re.search(r"/app#confirm=(\S+)", mails[-1]["text"])
    assert found, mails
    confirmed = await stage.http.post(
        f"{stage.url}/api/auth/confirm", json={"token": unquote(found.group(1))}
    )
    assert confirmed.status_code == 200, confirmed.text
    return email


async def api_sign_in(stage: Stage, email: str, agent: str, password: str = PASSWORD) -> str:
    """A sign-in from another device, straight through the API: its access token."""
    response = await stage.http.post(
        f"{stage.url}/api/auth/sign-in",
        json={"email": email, "password": password},
        headers={"User-Agent": agent},
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def sign_in(page: Page, stage: Stage, email: str, password: str = PASSWORD) -> None:
    await page.goto(f"{stage.url}/app")
    await page.get_by_test_id("signin-email").fill(email)
    await page.get_by_test_id("signin-password").fill(password)
    await page.get_by_test_id("submit-signin").click()
    await expect(page.get_by_test_id("view-title")).to_be_visible()


async def open_security(page: Page, *, phone: bool, language: str = "en") -> None:
    if phone:
        await page.get_by_test_id("tab-more").click()
        await page.get_by_test_id("more-security").click()
    else:
        await page.get_by_test_id("nav-security").click()
    title = {"en": "Sign-in and security", "ru": "Вход и безопасность"}[language]
    await expect(page.get_by_test_id("view-title")).to_have_text(title)
    await expect(page.get_by_test_id("session").first).to_be_visible()


async def consent(page: Page, stage: Stage, provider: str, email: str, name: str) -> None:
    """On the sandbox provider's page: the account with this address, or a new one."""
    await page.wait_for_url(
        re.compile(re.escape(f"{stage.sandbox.url}/oauth/{provider}/authorize") + r"\?")
    )
    existing = page.get_by_role("button", name=re.compile(re.escape(f"<{email}>")))
    if await existing.count():
        await existing.click()
        return
    await page.locator("input[name=email]").fill(email)
    await page.locator("input[name=name]").fill(name)
    await page.get_by_role("button", name="Use a new account").click()


async def identities(stage: Stage, provider: str, email: str) -> list[int]:
    """The accounts a provider's address is linked to."""
    async with stage.factory() as uow:
        rows = await uow.session.scalars(
            select(Identity.user_id).where(
                Identity.provider == provider, Identity.email == email.lower()
            )
        )
        return list(rows)


async def api_link(stage: Stage, token: str, provider: str, email: str, name: str) -> None:
    """Link a provider's account over HTTP, as a browser would: start, consent, callback."""
    start = await stage.http.get(
        f"{stage.url}/api/auth/{provider}/start?link=1",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
    )
    assert start.status_code == 200, start.text
    jar: SimpleCookie = SimpleCookie()
    for header in start.headers.get_list("set-cookie"):
        jar.load(header)
    approved = await stage.http.post(
        f"{stage.sandbox.url}/sandbox/api/oauth/approve",
        json={"authorize_url": start.json()["authorize_url"], "email": email, "name": name},
    )
    assert approved.status_code == 200, approved.text
    back = urlsplit(approved.json()["redirect_url"])
    callback = await stage.http.get(
        f"{stage.url}{back.path}?{back.query}",
        headers={"Cookie": f"__Host-netroom_oauth={jar['__Host-netroom_oauth'].value}"},
    )
    assert callback.status_code == 302, callback.text
    assert callback.headers["Location"].endswith(f"#linked={provider}")


# --- Google and Yandex in a plain browser ------------------------------------------------------


async def test_signing_up_and_then_in_with_google_in_a_plain_browser(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    email = new_address("ada")
    context, page = await new_page(browser, errors, phone=False)
    try:
        await page.goto(f"{stage.url}/app")
        await page.get_by_test_id("tab-signup").click()
        await page.get_by_test_id("accept-policy").check()
        await page.get_by_test_id("oauth-google").click()
        await consent(page, stage, "google", email, "Ada Lovelace")

        # Back in the app, signed in as the new account.
        await expect(page.get_by_test_id("hello")).to_have_text("Hello, Ada Lovelace!")
        await expect(page.get_by_test_id("composer-input")).to_be_visible()
        await open_security(page, phone=False)
        google = page.get_by_test_id("method-google")
        await expect(google).to_have_attribute("data-linked", "true")
        await expect(google).to_contain_text(email)
        await expect(page.get_by_test_id("method-email")).to_have_count(0)
        await expect(page.get_by_test_id("password-current")).to_have_count(0)
        await expect(page.get_by_test_id("link-yandex")).to_be_visible()
        await expect(page.get_by_test_id("session")).to_have_count(1)
        await expect(page.get_by_test_id("this-device")).to_be_visible()

        await page.get_by_test_id("nav-settings").click()
        await page.get_by_test_id("sign-out").click()
        await expect(page.get_by_test_id("sign-in")).to_be_visible()
        # Signing in again (no policy ticked this time) reaches the same account.
        await page.get_by_test_id("oauth-google").click()
        await consent(page, stage, "google", email, "Ada Lovelace")
        await expect(page.get_by_test_id("hello")).to_have_text("Hello, Ada Lovelace!")
        assert len(await identities(stage, "google", email)) == 1
    finally:
        await context.close()


async def test_an_email_account_links_yandex_on_the_security_page_and_signs_in_with_it(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    email = await email_account(stage)
    yandex_email = new_address("ada.yandex")
    context, page = await new_page(browser, errors, phone=False)
    try:
        await sign_in(page, stage, email)
        await open_security(page, phone=False)
        await expect(page.get_by_test_id("method-email")).to_contain_text(email)
        await expect(page.get_by_test_id("method-yandex")).to_have_attribute("data-linked", "false")
        await page.get_by_test_id("link-yandex").click()
        await consent(page, stage, "yandex", yandex_email, "Ada Yandex")

        # Back on the page the link started from, with the provider linked.
        await expect(page.get_by_test_id("toast")).to_have_text(
            "The sign-in method is linked to your account."
        )
        await expect(page.get_by_test_id("view-title")).to_have_text("Sign-in and security")
        yandex = page.get_by_test_id("method-yandex")
        await expect(yandex).to_have_attribute("data-linked", "true")
        await expect(yandex).to_contain_text(yandex_email)
        await expect(page.get_by_test_id("link-yandex")).to_have_count(0)

        await page.get_by_test_id("nav-settings").click()
        await page.get_by_test_id("sign-out").click()
        await page.get_by_test_id("oauth-yandex").click()
        await consent(page, stage, "yandex", yandex_email, "Ada Yandex")
        await expect(page.get_by_test_id("hello")).to_have_text(f"Hello, {email.split('@')[0]}!")
        await open_security(page, phone=False)
        # The email account, reached through Yandex: no second account was made.
        await expect(page.get_by_test_id("method-email")).to_contain_text(email)
        [owner] = await identities(stage, "yandex", yandex_email)
        assert owner in await identities(stage, "email", email)
    finally:
        await context.close()


# --- sessions and the password -----------------------------------------------------------------


async def test_a_session_ended_on_the_security_page_signs_that_browser_out(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    email = await email_account(stage)
    here, page = await new_page(browser, errors, phone=False)
    there, phone = await new_page(browser, errors, phone=True)
    try:
        await sign_in(page, stage, email)
        await open_security(page, phone=False)
        await expect(page.get_by_test_id("session")).to_have_count(1)
        current = page.locator('[data-testid="session"][data-current="true"]')
        await expect(current.get_by_test_id("this-device")).to_have_text("This device")
        await expect(current.get_by_test_id("session-detail")).to_contain_text("Active now")
        await expect(current.get_by_test_id("end-session")).to_have_count(0)

        await there.set_extra_http_headers({"User-Agent": ANDROID})
        await sign_in(phone, stage, email)
        await page.reload()
        await expect(page.get_by_test_id("session")).to_have_count(2)
        other = page.locator('[data-testid="session"][data-current="false"]')
        await expect(other).to_contain_text("Chrome on Android")

        # Cancelling the dialog changes nothing; confirming ends the other session.
        await other.get_by_test_id("end-session").click()
        await page.get_by_test_id("dialog-cancel").click()
        await expect(page.get_by_test_id("session")).to_have_count(2)
        await other.get_by_test_id("end-session").click()
        await expect(page.get_by_test_id("end-session-confirm")).to_contain_text(
            "Chrome on Android"
        )
        await page.get_by_test_id("dialog-confirm").click()
        await expect(page.get_by_test_id("toast")).to_have_text("Session ended.")
        await expect(page.get_by_test_id("session")).to_have_count(1)

        # The phone finds out at its next request.
        await phone.get_by_test_id("tab-balance").click()
        await expect(phone.get_by_test_id("sign-in")).to_be_visible()
        await expect(phone.get_by_test_id("auth-info")).to_have_text(
            "Your session has ended. Please sign in again."
        )
        # This browser stays signed in.
        await page.get_by_test_id("nav-balance").click()
        await expect(page.get_by_test_id("balance-amount")).to_be_visible()
    finally:
        await there.close()
        await here.close()


async def test_signing_out_everywhere_from_the_security_page(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    email = await email_account(stage)
    elsewhere = await api_sign_in(stage, email, WINDOWS)
    context, page = await new_page(browser, errors, phone=True)
    try:
        await sign_in(page, stage, email)
        await open_security(page, phone=True)
        await expect(page.get_by_test_id("session")).to_have_count(2)
        await page.get_by_test_id("security-sign-out-everywhere").click()
        await page.get_by_test_id("dialog-confirm").click()
        await expect(page.get_by_test_id("auth-info")).to_have_text("You have signed out.")
        me = await stage.http.get(
            f"{stage.url}/api/me", headers={"Authorization": f"Bearer {elsewhere}"}
        )
        assert me.status_code == 401
    finally:
        await context.close()


async def test_the_password_is_changed_on_the_security_page(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    email = await email_account(stage)
    elsewhere = await api_sign_in(stage, email, WINDOWS)
    context, page = await new_page(browser, errors, phone=True)
    try:
        await sign_in(page, stage, email)
        await open_security(page, phone=True)
        form_error = page.get_by_test_id("password-error")
        submit = page.get_by_test_id("password-submit")

        await page.get_by_test_id("password-current").fill(PASSWORD)
        await page.get_by_test_id("password-new").fill("short")
        await page.get_by_test_id("password-repeat").fill("short")
        await submit.click()
        await expect(form_error).to_contain_text("8 to 128 characters")
        await page.get_by_test_id("password-new").fill(NEW_PASSWORD)
        await page.get_by_test_id("password-repeat").fill(NEW_PASSWORD + "!")
        await submit.click()
        await expect(form_error).to_have_text("The new passwords do not match.")
        await page.get_by_test_id("password-current").fill("not the password")
        await page.get_by_test_id("password-repeat").fill(NEW_PASSWORD)
        await submit.click()
        # The server's answer, shown by the form.
        await expect(form_error).to_have_text("The current password is wrong.")
        await expect(page.get_by_test_id("password-current")).to_be_focused()

        await page.get_by_test_id("password-current").fill(PASSWORD)
        await submit.click()
        await expect(page.get_by_test_id("toast")).to_have_text(
            "Password changed. Your other devices were signed out."
        )
        await expect(form_error).to_be_hidden()
        await expect(page.get_by_test_id("password-new")).to_have_value("")
        await expect(page.get_by_test_id("session")).to_have_count(1)
        me = await stage.http.get(
            f"{stage.url}/api/me", headers={"Authorization": f"Bearer {elsewhere}"}
        )
        assert me.status_code == 401

        await page.get_by_test_id("back").click()
        await page.get_by_test_id("more-sign-out").click()
        await page.get_by_test_id("signin-email").fill(email)
        await page.get_by_test_id("signin-password").fill(PASSWORD)
        await page.get_by_test_id("submit-signin").click()
        await expect(page.get_by_test_id("auth-error")).to_have_text("Wrong email or password.")
        await page.get_by_test_id("signin-password").fill(NEW_PASSWORD)
        await page.get_by_test_id("submit-signin").click()
        await expect(page.get_by_test_id("view-title")).to_be_visible()
        await expect(page.get_by_test_id("sign-in")).to_be_hidden()
    finally:
        await context.close()


# --- inside Telegram, and screenshots ----------------------------------------------------------


async def test_the_security_page_inside_the_mini_app(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    mina = await stage.account("Mina")
    context, page = await open_app(browser, stage, mina, errors)
    try:
        await open_security(page, phone=True)
        await expect(page.get_by_test_id("method-telegram")).to_have_attribute(
            "data-linked", "true"
        )
        # Google and Yandex are linked through the phone's browser (a one-time handoff), email
        # and password can be added, and there is no password to change yet.
        await expect(page.get_by_test_id("link-google")).to_be_visible()
        await expect(page.get_by_test_id("link-yandex")).to_be_visible()
        await expect(page.get_by_test_id("add-email-address")).to_be_visible()
        await expect(page.get_by_test_id("password-current")).to_have_count(0)
        current = page.locator('[data-testid="session"][data-current="true"]')
        await expect(current).to_contain_text("Telegram")
        await expect(page.get_by_test_id("session")).to_have_count(1)
        await screenshot(page, "phone-security-telegram")
        await page.get_by_test_id("back").click()
        await page.get_by_test_id("more-settings").click()
        # Inside Telegram the settings' account card has the page and no sign-out.
        await page.get_by_test_id("settings-security").scroll_into_view_if_needed()
        await expect(page.get_by_test_id("sign-out")).to_have_count(0)
        await screenshot(page, "phone-settings-account-telegram")
        await page.get_by_test_id("settings-security").click()
        await expect(page.get_by_test_id("view-title")).to_have_text("Sign-in and security")
    finally:
        await context.close()


@pytest.mark.parametrize(
    ("phone", "dark"),
    [(False, False), (True, False), (True, True)],
    ids=["desktop", "phone", "dark"],
)
async def test_screenshots_of_the_security_page(
    browser: Browser, stage: Stage, errors: list[str], phone: bool, dark: bool
) -> None:
    email = await email_account(stage)
    token = await api_sign_in(stage, email, IPHONE)
    await api_sign_in(stage, email, WINDOWS)
    await api_link(stage, token, "yandex", new_address("ada.yandex"), "Ada Yandex")
    context, page = await new_page(browser, errors, phone=phone, dark=dark)
    try:
        await sign_in(page, stage, email)
        await open_security(page, phone=phone)
        await expect(page.get_by_test_id("session")).to_have_count(3)
        await expect(page.get_by_test_id("method-yandex")).to_have_attribute("data-linked", "true")
        await expect(page.get_by_test_id("link-google")).to_be_visible()
        name = f"{'phone' if phone else 'desktop'}-security{'-dark' if dark else ''}"
        await screenshot(page, name)
        await page.screenshot(path=str(SCREENSHOTS / f"{name}-full.png"), full_page=True)
    finally:
        await context.close()


async def test_an_unfinished_google_or_yandex_sign_in_comes_back_to_the_page_with_a_reason(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    taken = new_address("taken")
    context, page = await new_page(browser, errors, phone=False)
    try:
        # Cancelled on the provider's page.
        await page.goto(f"{stage.url}/app")
        await page.get_by_test_id("oauth-google").click()
        await page.wait_for_url(re.compile(re.escape(f"{stage.sandbox.url}/oauth/google/")))
        await page.get_by_role("button", name="Cancel").click()
        await expect(page.get_by_test_id("sign-in")).to_be_visible()
        await expect(page.get_by_test_id("auth-error")).to_have_text(
            "Signing in was not completed. Please start again."
        )
        assert "auth_error" not in page.url
        # A newcomer through "Sign in" with Google: nothing is made before the policy is
        # accepted, and the page asks for it with a way to go on with Google.
        await page.get_by_test_id("oauth-google").click()
        await consent(page, stage, "google", taken, "Taken Elsewhere")
        accept = page.get_by_test_id("consent-accept")
        await expect(accept).to_have_text("Accept and continue with Google")
        await expect(page.get_by_test_id("consent")).to_contain_text("privacy policy")
        assert await identities(stage, "google", taken) == []
        # Accepted: the Google account gets its own NetRoom account.
        await accept.click()
        await consent(page, stage, "google", taken, "Taken Elsewhere")
        await expect(page.get_by_test_id("hello")).to_have_text("Hello, Taken Elsewhere!")
        [first_owner] = await identities(stage, "google", taken)
        await page.get_by_test_id("nav-settings").click()
        await page.get_by_test_id("sign-out").click()
        await expect(page.get_by_test_id("sign-in")).to_be_visible()

        # Another account cannot take that Google account over by linking it.
        email = await email_account(stage)
        await sign_in(page, stage, email)
        await open_security(page, phone=False)
        await page.get_by_test_id("link-google").click()
        await consent(page, stage, "google", taken, "Taken Elsewhere")
        await expect(page.get_by_test_id("toast")).to_have_text(
            "This sign-in method already belongs to another NetRoom account."
        )
        await expect(page.get_by_test_id("view-title")).to_have_text("Sign-in and security")
        await expect(page.get_by_test_id("method-google")).to_have_attribute("data-linked", "false")
        assert await identities(stage, "google", taken) == [first_owner]
    finally:
        await context.close()


async def test_a_newcomer_with_google_accepts_the_policy_on_the_card_in_russian_on_a_phone(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    address = new_address("novichok")
    context, page = await new_page(browser, errors, phone=True, locale="ru-RU")
    try:
        await page.goto(f"{stage.url}/app")
        await page.get_by_test_id("oauth-google").click()
        await consent(page, stage, "google", address, "Новичок")
        card = page.get_by_test_id("consent")
        await expect(card).to_be_visible()
        await expect(card).to_contain_text("политик")
        accept = page.get_by_test_id("consent-accept")
        await expect(accept).to_have_text("Принять и продолжить с Google")
        box = await accept.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
        await assert_fits(page)
        await screenshot(page, "phone-google-consent-ru")
        assert await identities(stage, "google", address) == []
        await accept.click()
        await consent(page, stage, "google", address, "Новичок")
        await expect(page.get_by_test_id("hello")).to_have_text("Здравствуйте, Новичок!")
        assert len(await identities(stage, "google", address)) == 1
        assert errors == []
    finally:
        await context.close()


async def test_locked_out_by_wrong_passwords_the_owner_signs_in_by_an_emailed_link(
    browser: Browser, stage: Stage, errors: list[str], redis: Redis
) -> None:
    # Every test of the run mails from the same loopback address: the hourly quota of mails
    # per client address is another test's subject, not this one's.
    for key in await redis.keys("netroom:auth:rate:mail:ip:*"):
        await redis.delete(key)
    email = await email_account(stage)
    # Wrong guesses from the owner's own address lock the password way there.
    for _ in range(5):
        guess = await stage.http.post(
            f"{stage.url}/api/auth/sign-in", json={"email": email, "password": "a wrong guess"}
        )
        assert guess.status_code == 401
    locked = await stage.http.post(
        f"{stage.url}/api/auth/sign-in", json={"email": email, "password": PASSWORD}
    )
    assert locked.status_code == 429
    context, page = await new_page(browser, errors, phone=False)
    try:
        await page.goto(f"{stage.url}/app")
        await page.get_by_test_id("signin-email").fill(email)
        await page.get_by_test_id("email-link").click()
        await expect(page.locator("#auth-info")).to_contain_text("sign-in link")
        mails = await stage.mails(email)
        found = re.search(r"/app#signin=(\S+)", mails[-1]["text"])
        assert found, mails
        await page.goto(f"{stage.url}/app#signin={found.group(1)}")
        await expect(page.get_by_test_id("composer-input")).to_be_visible()
        # The link works once: opened again, the page says so.
        await page.goto("about:blank")
        await page.goto(f"{stage.url}/app#signin={found.group(1)}")
        await expect(page.locator("#auth-error")).to_contain_text("already been used")
    finally:
        await context.close()
