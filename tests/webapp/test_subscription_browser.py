"""A plan bought, cancelled and resumed from the balance page in headless Chromium: the real web
app with the ports netroom wires (invoice links and renewals by a real aiogram Bot), the real bot
polling the sandbox, and the sandbox's Telegram client around the Mini App, where the invoice is
paid."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from playwright.async_api import Browser, Route, expect
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.factory import create_bot
from bot.stars import renewal_switch
from core.media import LocalMediaStore
from core.providers.registry import ProviderRegistry
from core.providers.settings import sandbox_providers
from core.security.initdata import InitDataVerifier
from core.services import subscriptions
from core.services.chat import ModelMenu
from db.engine import UnitOfWorkFactory
from netroom.processes import invoice_links
from sandbox.client import SandboxClient
from tests.sandbox_web.stage import PageServer
from tests.webapp.conftest import make_context
from tests.webapp.running_bot import bot_env, running_bot
from tests.webapp.test_browser_pages import (
    NAMES,
    SECRET,
    TARIFFS,
    TERMS,
    Account,
    Stage,
    free_port,
    models,
    open_app,
    open_in_telegram,
    screenshot,
)
from webapp.app import create_app


@contextlib.asynccontextmanager
async def plans_stage(
    engine: AsyncEngine,
    redis: Redis,
    database_url: str,
    redis_url: str,
    sandbox: PageServer,
    tmp: Path,
) -> AsyncIterator[Stage]:
    """The web app as netroom runs it (the web process's own Bot behind the ports) and the bot
    beside it, both on the sandbox."""
    http = httpx.AsyncClient(timeout=30)
    client = SandboxClient(sandbox.url, http=http)
    token = f"{secrets.randbelow(10**9) + 10**9}:{secrets.token_urlsafe(27)}"
    await client.register_bot(token, f"netroom_{secrets.token_hex(3)}_bot", "NetRoom")
    web_bot = create_bot(token, sandbox.url)
    menu = ModelMenu(models=models(secrets.token_hex(4)), default_id="gpt-4o")
    url = f"http://127.0.0.1:{free_port()}"
    store = LocalMediaStore(tmp / "media")
    context = make_context(
        engine,
        redis,
        public_url=url,
        jwt_secret=SECRET,
        bot_username="netroom_test_bot",
        init_data=InitDataVerifier(token, timedelta(hours=1)),
        media_store=store,
        payment_terms=TERMS,
        tariffs=TARIFFS,
        stars_invoice_links=invoice_links(web_bot),
        subscription_renewals=renewal_switch(web_bot),
        models=menu,
        model_names=NAMES,
        providers=ProviderRegistry(sandbox_providers(sandbox.url), http),
        # The sandbox's Telegram client frames the app, as Telegram's web clients do.
        app_framers=("https://web.telegram.org", sandbox.url),
    )
    runner = web.AppRunner(create_app(context), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", int(url.rsplit(":", 1)[1])).start()
    env = bot_env(
        TERMS,
        TARIFFS,
        signing_secret=SECRET,
        token=token,
        api_base=sandbox.url,
        database_url=database_url,
        redis_url=redis_url,
        web_url=url,
        data_dir=tmp / "bot-data",
    )
    try:
        async with running_bot(env, tmp):
            yield Stage(
                url,
                sandbox,
                client,
                http,
                UnitOfWorkFactory.for_engine(engine),
                store,
                token,
                web_bot,
                menu,
            )
    finally:
        await runner.cleanup()
        await web_bot.session.close()
        await http.aclose()


@pytest.fixture(scope="module")
async def stage(
    engine: AsyncEngine,
    redis: Redis,
    database_url: str,
    redis_url: str,
    page_server: PageServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stage]:
    """One stage for the module: each test is a new person."""
    tmp = tmp_path_factory.mktemp("plans")
    async with plans_stage(engine, redis, database_url, redis_url, page_server, tmp) as running:
        yield running


async def started_bot(stage: Stage, account: Account) -> None:
    """The person has started the bot (the Mini App opens from it), so it may write to them."""
    after = await stage.client.last_seq()
    await stage.client.send_text(account.telegram_id, "/start")
    await stage.client.wait_for(
        lambda e: e["type"] == "bot_message", chat_id=account.telegram_id, after=after
    )


async def status_of(stage: Stage, account: Account) -> str | None:
    async with stage.factory() as uow:
        current = await subscriptions.current_subscription(uow, account.user_id, datetime.now(UTC))
    return None if current is None else current.status


async def test_inside_telegram_a_plan_is_bought_paid_and_its_renewal_cancelled(
    browser: Browser, stage: Stage
) -> None:
    mina = await stage.account("Mina")
    await started_bot(stage, mina)
    page = await open_in_telegram(browser, stage, mina)
    errors: list[str] = []
    try:
        app = page.frame_locator('[data-testid="miniapp-frame"]')
        page.on("pageerror", lambda error: errors.append(str(error)))
        await app.get_by_test_id("tab-balance").click(timeout=15_000)
        offer = app.get_by_test_id("plan-offer")
        await expect(offer).to_contain_text("Plus")
        await expect(app.get_by_test_id("plans-in-bot")).to_have_count(0)
        subscribe = offer.get_by_test_id("plan-subscribe")
        await expect(subscribe).to_have_text("Subscribe250")

        # The invoice the bot made opens in the client's checkout; paying it there activates
        # the plan, and the page shows it without being reloaded.
        after = await stage.client.last_seq()
        await subscribe.click()
        await expect(page.get_by_test_id("miniapp-log")).to_contain_text("web_app_open_invoice")
        await page.get_by_test_id("checkout-pay").click()
        paid = await stage.client.wait_for(
            lambda e: e["type"] == "payment_succeeded", chat_id=mina.telegram_id, after=after
        )
        assert paid["amount"] == 250
        plan = app.get_by_test_id("plan")
        await expect(plan).to_contain_text("Plus", timeout=15_000)
        await expect(app.get_by_test_id("plan-renewal")).to_have_text("Renews")
        await expect(app.get_by_test_id("plan-offer")).to_have_count(0)
        assert await status_of(stage, mina) == "active"
        await screenshot(page, "telegram-plan-active")

        # Cancelling asks first; keeping it changes nothing.
        await app.get_by_test_id("plan-cancel-renewal").click()
        await expect(app.get_by_test_id("plan-cancel-confirm")).to_contain_text(
            "Cancel the renewal?"
        )
        await app.get_by_test_id("dialog-cancel").click()
        await expect(app.get_by_test_id("plan-renewal")).to_have_text("Renews")
        assert await status_of(stage, mina) == "active"

        after = await stage.client.last_seq()
        await app.get_by_test_id("plan-cancel-renewal").click()
        await app.get_by_test_id("dialog-confirm").click()
        await expect(app.get_by_test_id("plan-renewal")).to_have_text("Renewal off")
        await expect(app.get_by_test_id("plan-resume-renewal")).to_be_visible()
        cancelled = await stage.client.wait_for(
            lambda e: e["type"] == "subscription_canceled", after=after
        )
        assert (cancelled["charge_id"], cancelled["by"]) == (paid["charge_id"], "bot")
        assert await status_of(stage, mina) == "cancelled"
        await screenshot(page, "telegram-plan-renewal-off")

        await app.get_by_test_id("plan-resume-renewal").click()
        await expect(app.get_by_test_id("plan-renewal")).to_have_text("Renews")
        assert await status_of(stage, mina) == "active"
    finally:
        await page.context.close()
    assert errors == []


async def test_outside_a_telegram_client_the_invoice_opens_in_a_new_tab(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    mina = await stage.account("Mina")
    await started_bot(stage, mina)
    context, page = await open_app(browser, stage, mina, errors)
    # t.me is not reachable from the tests: a stand-in answers there.
    opened: list[str] = []

    async def telegram_site(route: Route) -> None:
        opened.append(route.request.url)
        await route.fulfill(body="<title>Telegram</title>", content_type="text/html")

    await context.route("https://t.me/**", telegram_site)
    try:
        await page.get_by_test_id("tab-balance").click()
        note = page.get_by_test_id("plan-pay-note")
        await expect(note).to_be_hidden()
        async with context.expect_page() as new_tab:
            await page.get_by_test_id("plan-subscribe").click()
        tab = await new_tab.value
        await tab.wait_for_load_state()
        assert tab.url.startswith("https://t.me/$")
        await expect(note).to_contain_text("the payment is completed there")
        link = page.get_by_test_id("plan-invoice-link")
        await expect(link).to_have_attribute("href", tab.url)
        await screenshot(page, "browser-plan-pay-in-telegram")

        # Not paid yet: the page says so.
        await page.get_by_test_id("plan-check-payment").click()
        await expect(page.get_by_test_id("toast")).to_contain_text("No payment yet")
        await expect(page.get_by_test_id("plan")).to_have_count(0)

        # Paid in Telegram: the page finds the plan.
        after = await stage.client.last_seq()
        await stage.client.pay(mina.telegram_id, invoice_link=tab.url)
        await stage.client.wait_for(
            lambda e: (
                e["type"] == "bot_message"
                and "Plan Plus is active" in (e["message"].get("text") or "")
            ),
            chat_id=mina.telegram_id,
            after=after,
        )
        await page.get_by_test_id("plan-check-payment").click()
        await expect(page.get_by_test_id("plan")).to_contain_text("Plus")
        await expect(page.get_by_test_id("plan-renewal")).to_have_text("Renews")
        assert opened == [tab.url]
    finally:
        await context.close()


async def test_outside_a_telegram_client_a_stars_top_up_opens_in_a_new_tab_too(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    nika = await stage.account("Nika")
    await started_bot(stage, nika)
    context, page = await open_app(browser, stage, nika, errors)

    async def telegram_site(route: Route) -> None:
        await route.fulfill(body="<title>Telegram</title>", content_type="text/html")

    await context.route("https://t.me/**", telegram_site)
    try:
        await page.get_by_test_id("tab-balance").click()
        async with context.expect_page() as new_tab:
            await page.get_by_test_id("stars-50").click()
        tab = await new_tab.value
        await tab.wait_for_load_state()
        assert tab.url.startswith("https://t.me/$")
        await expect(page.get_by_test_id("toast")).to_contain_text(
            "your balance is topped up once it is paid"
        )
        # Paid in Telegram: the bot credits it, and the page shows it when opened again.
        after = await stage.client.last_seq()
        await stage.client.pay(nika.telegram_id, invoice_link=tab.url)
        await stage.client.wait_for(
            lambda e: e["type"] == "bot_message" and "₽75.00" in (e["message"].get("text") or ""),
            chat_id=nika.telegram_id,
            after=after,
        )
        await page.reload()
        await expect(page.get_by_test_id("balance-amount")).to_have_text("₽75.00")
    finally:
        await context.close()
