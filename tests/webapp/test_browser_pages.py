"""The app's pages in headless Chromium against the real web app and the sandbox: a Mini App user
signed in through launch data the sandbox signs, every view visited, presets made, edited, used
and shared, the balance and its history paged, settings changed (the language too), data
exported, the Telegram client's buttons and invoices, and email sign-up in a plain browser.
Screenshots of the main views go to ``test-artifacts/screenshots/``.

The stage here (``running_stage``) is shared with the chat page's tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import MenuButtonWebApp, WebAppInfo
from aiohttp import web
from playwright.async_api import Browser, BrowserContext, Page, expect
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.mail import SmtpMailer
from core.media import LocalMediaStore
from core.payments.yookassa import YooKassaClient
from core.providers.registry import ProviderRegistry
from core.providers.settings import sandbox_providers
from core.security.initdata import InitDataVerifier
from core.services import billing, chat, conversations, presets
from core.services.chat import ModelMenu, ModelTerms
from core.services.payments import PaymentTerms
from core.services.tariffs import Plan, Tariffs
from db.engine import UnitOfWorkFactory
from db.models import Conversation, Media
from netroom.processes import invoice_links
from sandbox.client import SandboxClient
from sandbox.mail import MAILBOX
from sandbox.providers.png import make_png
from tests.factories import register
from tests.sandbox_web.stage import PageServer
from tests.webapp.conftest import make_context
from webapp.app import create_app

SECRET = "browser-pages-secret-of-at-least-32-bytes!"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 860}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
TERMS = PaymentTerms.build(
    kopecks_per_star=150,
    star_packages=[50, 100, 250, 500],
    referral_level1_percent=10,
    referral_level2_percent=3,
    signing_secret=SECRET,
)
TARIFFS = Tariffs(
    free_limits={"basic": 20, "standard": 3},
    plans=(Plan("plus", 250, {"basic": 200, "standard": 30}, 10),),
)
TELEGRAM_DARK = {
    "bg_color": "#17212b",
    "secondary_bg_color": "#0e1621",
    "section_bg_color": "#17212b",
    "text_color": "#f5f5f5",
    "hint_color": "#708499",
    "link_color": "#6ab3f3",
    "button_color": "#5288c1",
    "button_text_color": "#ffffff",
    "destructive_text_color": "#ec3942",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def models(tag: str) -> tuple[ModelTerms, ...]:
    """Models of one stage, their provider names unique so sandbox scripts never mix."""
    return (
        ModelTerms(
            id="gpt-4o",
            provider="openai",
            provider_model=f"gpt-4o-{tag}",
            context_window=128_000,
            input_per_1k=25,
            output_per_1k=100,
            markup_percent=20,
            vision=True,
        ),
        ModelTerms(
            id="o3-mini",
            provider="openai",
            provider_model=f"o3-mini-{tag}",
            context_window=128_000,
            input_per_1k=11,
            output_per_1k=44,
            reasoning=True,
        ),
        ModelTerms(
            id="gpt-4o-mini",
            provider="openai",
            provider_model=f"gpt-4o-mini-{tag}",
            context_window=128_000,
            input_per_1k=2,
            output_per_1k=6,
            free_tier="basic",
        ),
    )


NAMES = {
    "gpt-4o": "GPT-4o",
    "o3-mini": "o3-mini",
    "gpt-4o-mini": "GPT-4o mini",
    "dall-e-3": "DALL·E 3",
    "sora-2": "Sora 2",
}


@dataclass
class Account:
    user_id: int
    telegram_id: int
    sandbox_user: dict[str, Any]


@dataclass
class Stage:
    url: str
    sandbox: PageServer
    client: SandboxClient
    http: httpx.AsyncClient
    factory: UnitOfWorkFactory
    store: LocalMediaStore
    bot_token: str
    bot: Bot
    menu: ModelMenu

    async def account(self, name: str = "Mina", *, language: str = "en", money: int = 0) -> Account:
        """A Telegram user of the sandbox with a NetRoom account (policy accepted)."""
        user = await self.client.create_user(
            name, username=f"{name.lower()}_{secrets.token_hex(3)}", language_code=language
        )
        async with self.factory() as uow:
            registered = await register(
                uow, tg_id=int(user["id"]), first_name=name, language_code=language
            )
            if money:
                async with uow.transaction():
                    await billing.credit(
                        uow,
                        user_id=registered.user.id,
                        amount=money,
                        category="topup",
                        key=secrets.token_hex(8),
                    )
        return Account(registered.user.id, int(user["id"]), user)

    async def launch_url(self, account: Account, *, theme: dict[str, str] | None = None) -> str:
        """The Mini App's URL as a Telegram client opens it: launch data signed by the sandbox."""
        response = await self.http.post(
            f"{self.sandbox.url}/sandbox/api/initdata",
            json={"user_id": account.telegram_id, "url": f"{self.url}/app"},
        )
        assert response.status_code == 200, response.text
        url = str(response.json()["url"])
        if theme is not None:
            url += "&tgWebAppThemeParams=" + quote(json.dumps(theme, separators=(",", ":")))
        return url

    async def mails(self, to: str) -> list[dict[str, Any]]:
        response = await self.http.get(f"{self.sandbox.url}/sandbox/api/mail", params={"to": to})
        assert response.status_code == 200
        return list(response.json()["mails"])

    async def script(self, model_id: str, **script: Any) -> None:
        """The next reply of a model, as the provider fake will stream it."""
        model = self.menu.get(model_id)
        body = {"provider": model.provider, "model": model.provider_model, **script}
        response = await self.http.post(
            f"{self.sandbox.url}/sandbox/api/providers/script", json=body
        )
        assert response.status_code == 201, response.text

    # --- data for the pages -----------------------------------------------------------------

    async def history(self, account: Account, entries: int) -> None:
        """Top-ups, requests to models and a referral earning, oldest first."""
        async with self.factory() as uow:
            async with uow.transaction():
                await billing.credit(
                    uow,
                    user_id=account.user_id,
                    amount=100_000 + entries * 1_000,
                    category="topup",
                    key=secrets.token_hex(8),
                )
            for n in range(entries):
                model = ("gpt-4o", "o3-mini", "gpt-4o")[n % 3]
                async with uow.transaction():
                    await billing.debit(
                        uow,
                        user_id=account.user_id,
                        amount=120 + 37 * n,
                        category="image" if n % 7 == 6 else "text",
                        key=secrets.token_hex(8),
                        charge=billing.Charge(
                            model_id=model, input_tokens=400 + n, output_tokens=900 + n
                        ),
                    )
            async with uow.transaction():
                await billing.credit(
                    uow,
                    user_id=account.user_id,
                    amount=4_500,
                    category="referral",
                    key=secrets.token_hex(8),
                )

    async def presets(self, account: Account) -> list[int]:
        async with self.factory() as uow:
            teacher = await presets.create_preset(
                uow,
                account.user_id,
                title="English teacher",
                prompt=(
                    "You are a patient English teacher. Correct my mistakes gently, explain "
                    "each one in a sentence, and give one more example of the right usage."
                ),
            )
            coder = await presets.create_preset(
                uow,
                account.user_id,
                title="Code reviewer",
                prompt=(
                    "Review the code I send like a senior Python engineer: correctness first, "
                    "then readability. Suggest concrete changes as diffs."
                ),
            )
            await presets.use_preset(uow, account.user_id, teacher.id)
        return [teacher.id, coder.id]

    async def media(self, account: Account) -> None:
        prompts = [
            ("A lighthouse on a cliff at dawn, watercolour", 11),
            ("A fox in the snow, cinematic light", 97),
            ("Isometric city block at night, neon signs", 160),
            ("Minimalist poster of Mount Elbrus", 210),
        ]
        async with self.factory() as uow:
            for prompt, seed in prompts:
                key = await self.store.save(make_png(512, 512, seed=seed), "image/png")
                uow.session.add(
                    Media(
                        user_id=account.user_id,
                        kind="image",
                        prompt=prompt,
                        model_id="dall-e-3",
                        status="ready",
                        storage_key=key,
                        mime="image/png",
                        width=512,
                        height=512,
                        created_at=datetime.now(UTC) - timedelta(hours=seed),
                    )
                )
            uow.session.add(
                Media(
                    user_id=account.user_id,
                    kind="video",
                    prompt="Waves rolling onto a pebble beach, slow motion",
                    model_id="sora-2",
                    status="pending",
                    created_at=datetime.now(UTC),
                )
            )
            await uow.commit()


@contextlib.asynccontextmanager
async def running_stage(
    engine: AsyncEngine, redis: Redis, sandbox: PageServer, media_dir: Path, **overrides: Any
) -> AsyncIterator[Stage]:
    http = httpx.AsyncClient(timeout=30)
    client = SandboxClient(sandbox.url, http=http)
    token = f"{secrets.randbelow(10**9) + 10**9}:{secrets.token_urlsafe(27)}"
    await client.register_bot(token, f"netroom_{secrets.token_hex(3)}_bot", "NetRoom")
    bot = Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(sandbox.url)))
    shop_id, shop_key = f"shop-{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    menu = ModelMenu(models=models(secrets.token_hex(4)), default_id="gpt-4o")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    box = sandbox.runner.app[MAILBOX]  # type: ignore[union-attr]
    store = LocalMediaStore(media_dir)
    values: dict[str, Any] = {
        "public_url": url,
        "jwt_secret": SECRET,
        "bot_username": "netroom_test_bot",
        "init_data": InitDataVerifier(token, timedelta(hours=1)),
        "media_store": store,
        "payment_terms": TERMS,
        "tariffs": TARIFFS,
        "stars_invoice_links": invoice_links(bot),
        "yookassa": YooKassaClient(http, shop_id, shop_key, f"{sandbox.url}/yookassa/v3"),
        "yookassa_packages": (300, 1000, 3000),
        "mailer": SmtpMailer(
            host=box.host, port=box.port, sender="NetRoom <noreply@netroom.test>", starttls=False
        ),
        "models": menu,
        "model_names": NAMES,
        "providers": ProviderRegistry(sandbox_providers(sandbox.url), http),
        # The sandbox's Telegram client frames the app, as Telegram's web clients do.
        "app_framers": ("https://web.telegram.org", sandbox.url),
    }
    values.update(overrides)
    await http.post(
        f"{sandbox.url}/sandbox/api/yookassa/shops",
        json={"shop_id": shop_id, "secret_key": shop_key, "webhook_url": url + "/yookassa"},
    )
    runner = web.AppRunner(create_app(make_context(engine, redis, **values)), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield Stage(
            url,
            sandbox,
            client,
            http,
            UnitOfWorkFactory.for_engine(engine),
            store,
            token,
            bot,
            menu,
        )
    finally:
        await runner.cleanup()
        await bot.session.close()
        await http.aclose()


async def new_page(
    browser: Browser,
    errors: list[str],
    *,
    phone: bool = True,
    dark: bool = False,
    locale: str = "en-US",
) -> tuple[BrowserContext, Page]:
    """A fresh browser profile; script errors on the page are collected in ``errors``."""
    context = await browser.new_context(
        viewport=PHONE if phone else DESKTOP,
        device_scale_factor=2 if phone else 1,
        is_mobile=phone,
        has_touch=phone,
        color_scheme="dark" if dark else "light",
        locale=locale,
        accept_downloads=True,
    )
    page = await context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    return context, page


async def assert_fits(page: Page) -> None:
    """Nothing on the page is wider than the window (no sideways scrolling on a phone)."""
    widths = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"the page is {widths[0]}px wide in a {widths[1]}px window"


async def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.wait_for_timeout(250)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
async def stage(
    engine: AsyncEngine, redis: Redis, page_server: PageServer, tmp_path: Path
) -> AsyncIterator[Stage]:
    async with running_stage(engine, redis, page_server, tmp_path / "media") as running:
        yield running


async def open_app(
    browser: Browser,
    stage: Stage,
    account: Account,
    errors: list[str],
    *,
    phone: bool = True,
    dark: bool = False,
    theme: dict[str, str] | None = None,
) -> tuple[BrowserContext, Page]:
    """The Mini App opened the way a Telegram client opens it, signed in."""
    context, page = await new_page(browser, errors, phone=phone, dark=dark)
    await page.goto(await stage.launch_url(account, theme=theme))
    await expect(page.get_by_test_id("view-title")).to_be_visible(timeout=15_000)
    return context, page


async def balance_of(stage: Stage, account: Account) -> int:
    async with stage.factory() as uow:
        return (await billing.get_balance(uow, account.user_id)).balance


def roubles(kopecks: int) -> str:
    return f"₽{kopecks // 100:,}.{kopecks % 100:02d}"


# --- the Mini App ------------------------------------------------------------------------------


async def test_a_mini_app_user_signs_in_and_visits_every_view_on_a_phone(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    mina = await stage.account("Mina", money=125_000)
    await stage.presets(mina)
    await stage.media(mina)
    context, page = await open_app(browser, stage, mina, errors)
    try:
        await expect(page.get_by_test_id("chat-intro")).to_be_visible()
        await expect(page.get_by_test_id("active-preset")).to_contain_text("English teacher")
        await expect(page.get_by_test_id("composer-input")).to_be_visible()
        await screenshot(page, "phone-chat")

        await page.get_by_test_id("tab-presets").click()
        await expect(page.get_by_test_id("view-title")).to_have_text("Presets")
        await expect(page.get_by_test_id("preset")).to_have_count(2)
        await screenshot(page, "phone-presets")

        await page.get_by_test_id("tab-gallery").click()
        await expect(page.get_by_test_id("media")).to_have_count(5)
        picture = page.locator('[data-testid="media"][data-status="ready"] img').first
        await expect(picture).to_be_visible()
        loaded = (
            "img => img.complete ? img.naturalWidth"
            " : new Promise(r => { img.onload = () => r(img.naturalWidth); })"
        )
        assert await picture.evaluate(loaded) == 512
        await expect(page.locator('[data-testid="media"][data-status="pending"]')).to_contain_text(
            "Being made"
        )
        # Each picture names its model as people read it, not by its id.
        tile = page.locator('[data-testid="media"][data-status="ready"]').first
        await expect(tile.locator(".tile-meta")).to_contain_text("DALL·E 3 · ")
        await screenshot(page, "phone-gallery")

        await page.get_by_test_id("tab-balance").click()
        await expect(page.get_by_test_id("balance-amount")).to_have_text("₽1,250.00")
        await expect(page.get_by_test_id("allowance")).to_have_count(2)
        await expect(page.get_by_test_id("transaction")).to_have_count(1)
        await screenshot(page, "phone-balance")

        await page.get_by_test_id("tab-more").click()
        await expect(page.get_by_test_id("more-hello")).to_have_text("Hello, Mina!")
        await expect(page.get_by_test_id("more-balance")).to_have_text("₽1,250.00")
        await screenshot(page, "phone-more")

        await page.get_by_test_id("more-referrals").click()
        await expect(page.get_by_test_id("view-title")).to_have_text("Invite friends")
        await expect(page.get_by_test_id("ref-level1")).to_have_text("0")
        await expect(page.get_by_test_id("bot-link-url")).to_have_value(
            re.compile(r"^https://t\.me/netroom_test_bot\?start=ref_[a-z0-9]+$")
        )
        await expect(page.get_by_test_id("app-link-url")).to_have_value(
            re.compile(r"^https://t\.me/netroom_test_bot\?startapp=ref_[a-z0-9]+$")
        )
        await screenshot(page, "phone-referrals")
        await page.get_by_test_id("back").click()
        await expect(page.get_by_test_id("view-title")).to_have_text("More")

        await page.get_by_test_id("more-settings").click()
        await expect(page.get_by_test_id("language-en")).to_be_checked()
        await expect(page.get_by_test_id("history-toggle")).to_be_checked()
        await screenshot(page, "phone-settings")
        await page.get_by_test_id("back").click()

        await page.get_by_test_id("more-privacy").click()
        await expect(page.get_by_test_id("export-json")).to_be_visible()
        await expect(page.get_by_test_id("policy-link")).to_have_attribute("href", "/privacy/")
        await screenshot(page, "phone-privacy")
    finally:
        await context.close()


@pytest.mark.parametrize(
    ("language", "phone"), [("en", True), ("ru", False)], ids=["en-phone", "ru-desktop"]
)
async def test_the_referral_page_states_both_percentages_and_shares_the_link(
    browser: Browser, stage: Stage, errors: list[str], language: str, phone: bool
) -> None:
    texts = {
        "en": (
            "Invite friends",
            "Your share of your friends' top-ups: 10%; of their friends' top-ups: 3%.",
            "Chat with every leading AI model in NetRoom",
        ),
        "ru": (
            "Пригласить друзей",
            "Ваша доля от пополнений друзей: 10%; от пополнений их друзей: 3%.",
            "Общайтесь со всеми ведущими моделями ИИ в NetRoom",
        ),
    }[language]
    mina = await stage.account("Mina", language=language)
    context, page = await open_app(browser, stage, mina, errors, phone=phone)
    # Telegram's share page is not reached from the tests; the address asked for is enough.
    await context.route("https://t.me/**", lambda route: route.fulfill(body="t.me"))
    try:
        if phone:
            await page.get_by_test_id("tab-more").click()
            await page.get_by_test_id("more-referrals").click()
        else:
            await page.get_by_test_id("nav-referrals").click()
        await expect(page.get_by_test_id("view-title")).to_have_text(texts[0])
        await expect(page.locator(".hero-invite .hero-text")).to_have_text(texts[1])
        link = await page.get_by_test_id("bot-link-url").input_value()
        await assert_fits(page)
        await screenshot(page, f"{'phone' if phone else 'desktop'}-referrals-{language}")
        async with context.expect_page() as shared:
            await page.get_by_test_id("share-invite").click()
        sheet = await shared.value
        assert sheet.url == (
            f"https://t.me/share/url?url={quote(link, safe='')}&text={quote(texts[2], safe='')}"
        )
        assert errors == []
    finally:
        await context.close()


async def test_a_new_telegram_user_accepts_the_policy_in_the_mini_app(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    # Someone who never wrote to the bot opens the Mini App from a link.
    user = await stage.client.create_user("Newcomer", language_code="en")
    newcomer = Account(0, int(user["id"]), user)
    context, page = await new_page(browser, errors)
    try:
        await page.goto(await stage.launch_url(newcomer))
        await expect(page.get_by_test_id("consent")).to_be_visible(timeout=15_000)
        async with stage.factory() as uow:
            assert await uow.users.by_telegram_id(newcomer.telegram_id) is None
        await page.get_by_test_id("consent-accept").click()
        await expect(page.get_by_test_id("view-title")).to_be_visible(timeout=15_000)
        async with stage.factory() as uow:
            account = await uow.users.by_telegram_id(newcomer.telegram_id)
            assert account is not None and account.profile_name == "Newcomer"
    finally:
        await context.close()


async def test_a_preset_is_created_edited_and_used_from_the_mini_app(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    mina = await stage.account("Mina")
    context, page = await open_app(browser, stage, mina, errors)
    try:
        await page.get_by_test_id("tab-presets").click()
        await expect(page.get_by_test_id("empty")).to_contain_text("No presets yet")
        await page.get_by_test_id("new-preset").click()
        await expect(page.get_by_test_id("preset-save")).to_be_disabled()
        await page.get_by_test_id("preset-title").fill("Travel planner")
        await page.get_by_test_id("preset-prompt").fill("Plan trips day by day, with prices.")
        await screenshot(page, "phone-preset-editor")
        await page.get_by_test_id("preset-save").click()

        card = page.get_by_test_id("preset")
        await expect(card).to_have_count(1)
        await expect(card.get_by_test_id("preset-title-text")).to_have_text("Travel planner")
        await card.get_by_test_id("preset-edit").click()
        await expect(page.get_by_test_id("preset-title")).to_have_value("Travel planner")
        await page.get_by_test_id("preset-title").fill("Trip planner")
        await page.get_by_test_id("preset-save").click()
        await expect(card.get_by_test_id("preset-title-text")).to_have_text("Trip planner")

        await card.get_by_test_id("preset-use").click()
        await expect(card.get_by_test_id("preset-active")).to_be_visible()
        async with stage.factory() as uow:
            kept = await presets.list_presets(uow, mina.user_id)
            prefs = await chat.get_prefs(uow, mina.user_id)
        assert [(p.title, p.system_prompt) for p in kept] == [
            ("Trip planner", "Plan trips day by day, with prices.")
        ]
        assert prefs.preset_id == kept[0].id

        await page.get_by_test_id("tab-chat").click()
        await expect(page.get_by_test_id("active-preset")).to_have_text("Preset: Trip planner")
    finally:
        await context.close()


async def test_the_balance_shows_the_money_and_pages_through_the_history(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    mina = await stage.account("Mina")
    await stage.history(mina, 25)
    context, page = await open_app(browser, stage, mina, errors)
    try:
        await page.get_by_test_id("tab-balance").click()
        await expect(page.get_by_test_id("balance-amount")).to_have_text(
            roubles(await balance_of(stage, mina))
        )
        rows = page.get_by_test_id("transaction")
        await expect(rows).to_have_count(20)
        # Newest first: the referral earning, then the last request.
        await expect(rows.first).to_contain_text("Referral earning")
        await expect(rows.first.get_by_test_id("transaction-amount")).to_have_text("+₽45.00")
        # The model as people read it, not its id.
        await expect(rows.nth(1)).to_contain_text("GPT-4o · ")
        await page.get_by_test_id("more-transactions").click()
        await expect(rows).to_have_count(27)
        await expect(rows.last).to_contain_text("Top-up")
        await expect(page.get_by_test_id("more-transactions")).to_be_hidden()
        # Stars inside Telegram, a card everywhere.
        await expect(page.get_by_test_id("stars-100")).to_contain_text("₽150.00")
        await expect(page.get_by_test_id("card-1000")).to_contain_text("₽1,000.00")
        await page.get_by_test_id("topup").scroll_into_view_if_needed()
        await screenshot(page, "phone-balance-topup")
    finally:
        await context.close()


async def test_choosing_russian_changes_the_texts(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    mina = await stage.account("Mina")
    context, page = await open_app(browser, stage, mina, errors)
    try:
        await expect(page.get_by_test_id("tab-balance")).to_have_text("Balance")
        await page.get_by_test_id("tab-more").click()
        await page.get_by_test_id("more-settings").click()
        await page.get_by_test_id("language-ru").check()
        await expect(page.locator("html")).to_have_attribute("lang", "ru")
        await expect(page.get_by_text("Язык интерфейса")).to_be_visible()
        await expect(page.get_by_test_id("language-ru")).to_be_checked()
        await page.get_by_test_id("back").click()
        await expect(page.get_by_test_id("tab-balance")).to_have_text("Баланс")
        async with stage.factory() as uow:
            user = await uow.users.get(mina.user_id)
            assert user is not None and user.language == "ru"
        await page.get_by_test_id("tab-balance").click()
        await expect(page.get_by_test_id("balance-amount")).to_have_text("0,00\xa0₽")
    finally:
        await context.close()


async def test_theme_history_and_news_settings_are_saved(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    mina = await stage.account("Mina")
    async with stage.factory() as uow:
        await conversations.current_conversation(
            uow, mina.user_id, title="Old chat", model_id="gpt-4o"
        )
    context, page = await open_app(browser, stage, mina, errors)
    try:
        await page.get_by_test_id("tab-more").click()
        await page.get_by_test_id("more-settings").click()
        await page.get_by_test_id("theme-dark").check()
        await expect(page.locator("html")).to_have_attribute("data-theme", "dark")
        await page.get_by_test_id("news-toggle").check()
        await expect(page.get_by_test_id("toast")).to_have_text("Saved.")
        await page.get_by_test_id("history-toggle").uncheck()
        await expect(page.get_by_test_id("history-confirm")).to_be_visible()
        await screenshot(page, "phone-dark-history-confirm")
        await page.get_by_test_id("dialog-confirm").click()
        await expect(page.get_by_test_id("toast")).to_contain_text("History is off")
        async with stage.factory() as uow:
            user = await uow.users.get(mina.user_id)
            assert user is not None
            saved = (user.theme, user.marketing_opt_in, user.history_enabled)
            left = await uow.session.scalar(
                select(func.count())
                .select_from(Conversation)
                .where(Conversation.user_id == mina.user_id)
            )
        assert saved == ("dark", True, False)
        assert left == 0

        await page.reload()
        await expect(page.locator("html")).to_have_attribute("data-theme", "dark")
        await expect(page.get_by_test_id("history-toggle")).not_to_be_checked()
    finally:
        await context.close()


async def test_the_data_export_downloads_a_json_copy(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    mina = await stage.account("Mina")
    await stage.presets(mina)
    context, page = await open_app(browser, stage, mina, errors)
    try:
        await page.get_by_test_id("tab-more").click()
        await page.get_by_test_id("more-privacy").click()
        async with page.expect_download() as started:
            await page.get_by_test_id("export-json").click()
        download = await started.value
        assert download.suggested_filename == "netroom-export.json"
        saved = await download.path()
        data = json.loads(await asyncio.to_thread(saved.read_text, encoding="utf-8"))
        assert [a["id"] for a in data["categories"]["account"]] == [mina.user_id]
        assert sorted(p["title"] for p in data["categories"]["presets"]) == [
            "Code reviewer",
            "English teacher",
        ]
        await expect(page.get_by_test_id("toast")).to_have_text("The download has started.")
    finally:
        await context.close()


async def test_a_shared_preset_opens_signed_out_is_copied_and_then_revoked(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    mina, oleg = await stage.account("Mina"), await stage.account("Oleg")
    await stage.presets(mina)
    context, page = await open_app(browser, stage, mina, errors)
    try:
        await page.get_by_test_id("tab-presets").click()
        teacher = page.get_by_test_id("preset").filter(has_text="English teacher")
        await teacher.get_by_test_id("preset-share").click()
        url = await page.get_by_test_id("share-url").input_value()
        assert url.startswith(f"{stage.url}/s/")
        await page.get_by_test_id("share-close").click()

        outsider, public = await new_page(browser, errors)
        await public.goto(url)
        await expect(public.get_by_role("heading", name="English teacher")).to_be_visible()
        await outsider.close()

        other, page2 = await open_app(browser, stage, oleg, errors)
        await page2.get_by_test_id("tab-presets").click()
        await page2.get_by_test_id("shared-link-input").fill(url)
        await page2.get_by_test_id("copy-shared").click()
        await expect(page2.get_by_test_id("preset")).to_have_count(1)
        await expect(page2.get_by_test_id("preset")).to_contain_text("English teacher")
        await other.close()

        await page.get_by_test_id("tab-more").click()
        await page.get_by_test_id("more-privacy").click()
        shared = page.get_by_test_id("share")
        await expect(shared).to_have_count(1)
        await shared.get_by_test_id("revoke-share").click()
        await page.get_by_test_id("dialog-confirm").click()
        await expect(shared).to_contain_text("Revoked")
        response = await stage.http.get(url)
        assert response.status_code == 404
    finally:
        await context.close()


async def test_deleting_the_account_asks_first_and_then_ends_the_session(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    mina = await stage.account("Mina", money=5_000)
    context, page = await open_app(browser, stage, mina, errors)
    try:
        await page.get_by_test_id("tab-more").click()
        await page.get_by_test_id("more-privacy").click()
        await page.get_by_test_id("delete-account").click()
        await expect(page.get_by_test_id("delete-account-confirm")).to_contain_text(
            "This cannot be undone."
        )
        await page.get_by_test_id("dialog-cancel").click()
        async with stage.factory() as uow:
            user = await uow.users.get(mina.user_id)
            assert user is not None and user.deleted_at is None

        await page.get_by_test_id("delete-account").click()
        await page.get_by_test_id("dialog-confirm").click()
        await expect(page.get_by_test_id("boot-status")).to_have_text(
            "Your account has been deleted. Thank you for using NetRoom."
        )
        await expect(page.get_by_test_id("view")).to_be_hidden()
        async with stage.factory() as uow:
            user = await uow.users.get(mina.user_id)
            assert user is not None and user.deleted_at is not None
    finally:
        await context.close()


# --- inside the Telegram client ------------------------------------------------------------------


async def open_in_telegram(browser: Browser, stage: Stage, account: Account) -> Page:
    """The sandbox's Telegram client with the app opened from the bot's menu button."""
    await stage.bot.set_chat_menu_button(
        menu_button=MenuButtonWebApp(text="NetRoom", web_app=WebAppInfo(url=f"{stage.url}/app"))
    )
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    page = await context.new_page()
    await page.goto(stage.sandbox.url + "/")
    await expect(page.get_by_test_id("connection-status")).to_have_text("Online")
    bots = page.get_by_test_id("bot-select")
    if await bots.is_visible():
        await bots.select_option(stage.bot_token.split(":")[0])
    user_item = page.locator(
        f'[data-testid="user-item"][data-user-id="{account.sandbox_user["id"]}"]'
    )
    await user_item.click()
    await page.get_by_test_id("menu-button").click()
    await expect(page.get_by_test_id("miniapp-panel")).to_be_visible()
    return page


async def test_inside_telegram_the_back_and_main_buttons_drive_the_app(
    browser: Browser, stage: Stage
) -> None:
    mina = await stage.account("Mina")
    page = await open_in_telegram(browser, stage, mina)
    try:
        app = page.frame_locator('[data-testid="miniapp-frame"]')
        await expect(app.get_by_test_id("composer-input")).to_be_visible(timeout=15_000)
        log = page.get_by_test_id("miniapp-log")
        await expect(log).to_contain_text("web_app_ready")
        await expect(log).to_contain_text("web_app_expand")
        back, main = (
            page.get_by_test_id("miniapp-back-button"),
            page.get_by_test_id("miniapp-main-button"),
        )
        await expect(back).to_be_hidden()

        await app.get_by_test_id("tab-presets").click()
        await app.get_by_test_id("new-preset").click()
        # Telegram's own buttons stand in for the page's.
        await expect(back).to_be_visible()
        await expect(main).to_have_text("Save")
        await expect(main).to_be_disabled()
        await expect(app.get_by_test_id("preset-save")).to_be_hidden()
        await expect(app.get_by_test_id("back")).to_be_hidden()
        await app.get_by_test_id("preset-title").fill("Editor")
        await app.get_by_test_id("preset-prompt").fill("Fix my grammar, change nothing else.")
        await expect(main).to_be_enabled()
        await main.click()
        await expect(app.get_by_test_id("preset")).to_contain_text("Editor")
        await expect(main).to_be_hidden()
        await expect(back).to_be_hidden()

        await app.get_by_test_id("tab-more").click()
        await app.get_by_test_id("more-settings").click()
        await expect(back).to_be_visible()
        await back.click()
        await expect(app.get_by_test_id("view-title")).to_have_text("More")
        await expect(back).to_be_hidden()
    finally:
        await page.context.close()


async def test_inside_telegram_stars_open_an_invoice_made_by_the_bot(
    browser: Browser, stage: Stage
) -> None:
    mina = await stage.account("Mina")
    page = await open_in_telegram(browser, stage, mina)
    try:
        app = page.frame_locator('[data-testid="miniapp-frame"]')
        await app.get_by_test_id("tab-balance").click()
        await app.get_by_test_id("stars-50").click()
        # The sandbox's client shows the checkout of the invoice the bot made.
        await expect(page.get_by_test_id("checkout-pay")).to_be_visible()
        await expect(page.get_by_test_id("miniapp-log")).to_contain_text("web_app_open_invoice")
        await page.get_by_test_id("checkout-cancel").click()
        await expect(page.get_by_test_id("checkout-pay")).to_be_hidden()
        await expect(app.get_by_test_id("balance-amount")).to_have_text("₽0.00")
    finally:
        await page.context.close()


# --- a normal browser --------------------------------------------------------------------------


async def test_email_sign_up_confirmation_and_sign_in_in_a_plain_browser(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    email = f"reader.{secrets.token_hex(4)}@example.test"
    password = "a long enough passphrase"
    context, page = await new_page(browser, errors, phone=False)
    try:
        await page.goto(f"{stage.url}/app")
        await expect(page.get_by_test_id("status")).to_contain_text("from the bot in Telegram")
        await screenshot(page, "desktop-sign-in")
        await page.get_by_test_id("tab-signup").click()
        await page.get_by_test_id("signup-email").fill(email)
        await page.get_by_test_id("signup-password").fill(password)
        await page.get_by_test_id("submit-signup").click()
        await expect(page.get_by_test_id("auth-error")).to_have_text(
            "Please accept the privacy policy first."
        )
        await page.get_by_test_id("accept-policy").check()
        await page.get_by_test_id("submit-signup").click()
        await expect(page.get_by_test_id("check-mail")).to_contain_text(email)

        mails = await stage.mails(email)
        found = re.search(r"/app#confirm=(\S+)", mails[-1]["text"])
        assert found, mails
        await page.goto(f"{stage.url}/app#confirm={found.group(1)}")
        await expect(page.get_by_test_id("auth-info")).to_have_text(
            "Your email is confirmed. Sign in to continue."
        )
        await page.get_by_test_id("signin-email").fill(email)
        await page.get_by_test_id("signin-password").fill("not the password")
        await page.get_by_test_id("submit-signin").click()
        await expect(page.get_by_test_id("auth-error")).to_have_text("Wrong email or password.")
        await page.get_by_test_id("signin-password").fill(password)
        await page.get_by_test_id("submit-signin").click()
        await expect(page.get_by_test_id("hello")).to_have_text(f"Hello, {email.split('@')[0]}!")
        await expect(page.get_by_test_id("balance")).to_have_text("₽0.00")
        await expect(page.get_by_test_id("composer-input")).to_be_visible()

        # Another tab of the same browser: the session cookie signs it in.
        second = await context.new_page()
        await second.goto(f"{stage.url}/app#/balance")
        await expect(second.get_by_test_id("balance-amount")).to_have_text("₽0.00")
        await expect(second.get_by_test_id("stars-50")).to_have_count(0)
        # Outside Telegram a top-up goes to YooKassa's page.
        await second.get_by_test_id("card-300").click()
        await second.wait_for_url(re.compile(re.escape(stage.sandbox.url) + r"/yookassa/checkout/"))
        await second.close()

        await page.get_by_test_id("nav-settings").click()
        await page.get_by_test_id("sign-out").click()
        await expect(page.get_by_test_id("sign-in")).to_be_visible()
        await expect(page.get_by_test_id("auth-info")).to_have_text("You have signed out.")
        await page.goto(f"{stage.url}/app")
        await expect(page.get_by_test_id("sign-in")).to_be_visible()
    finally:
        await context.close()


async def test_the_sign_in_page_on_a_phone(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    context, page = await new_page(browser, errors, phone=True)
    try:
        await page.goto(f"{stage.url}/app")
        await expect(page.get_by_test_id("submit-signin")).to_be_visible()
        await screenshot(page, "phone-sign-in")
        await page.get_by_test_id("tab-signup").click()
        await expect(page.get_by_test_id("accept-policy")).to_be_visible()
        await screenshot(page, "phone-sign-up")
    finally:
        await context.close()


# --- screenshots on a desktop and in Telegram's colours ---------------------------------------


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
async def test_desktop_screenshots_of_the_main_views(
    browser: Browser, stage: Stage, errors: list[str], dark: bool
) -> None:
    mina = await stage.account("Mina", money=48_000)
    await stage.presets(mina)
    await stage.media(mina)
    await stage.history(mina, 8)
    context, page = await open_app(browser, stage, mina, errors, phone=False, dark=dark)
    suffix = "-dark" if dark else ""
    try:
        await expect(page.get_by_test_id("hello")).to_have_text("Hello, Mina!")
        for route, ready in (
            ("presets", "preset"),
            ("gallery", "media"),
            ("balance", "transaction"),
            ("referrals", "ref-earned"),
            ("settings", "language-en"),
            ("privacy", "export-json"),
        ):
            await page.get_by_test_id(f"nav-{route}").click()
            await expect(page.get_by_test_id(ready).first).to_be_attached()
            await screenshot(page, f"desktop-{route}{suffix}")
    finally:
        await context.close()


async def test_telegram_colours_are_used_inside_telegram(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    mina = await stage.account("Mina", money=10_000)
    await stage.presets(mina)
    context, page = await open_app(browser, stage, mina, errors, theme=TELEGRAM_DARK)
    try:
        root = page.locator("html")
        await expect(root).to_have_attribute("data-theme", "dark")
        accent = "e => getComputedStyle(e).getPropertyValue('--accent').trim()"
        assert await root.evaluate(accent) == "#5288c1"
        await screenshot(page, "phone-telegram-dark-chat")
        await page.get_by_test_id("tab-presets").click()
        await expect(page.get_by_test_id("preset")).to_have_count(2)
        await screenshot(page, "phone-telegram-dark-presets")
    finally:
        await context.close()
