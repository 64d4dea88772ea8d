"""Times in the web app follow the account's zone, in headless Chromium (ru and en, phone and
desktop): an account without one takes the browser's once, the plan's renewal and the free-tier
reset name the zone, the settings change it, and the plan's two ledger entries say what they
were."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from core.services import billing
from db.models import Subscription
from tests.sandbox_web.stage import PageServer
from tests.webapp.test_browser_pages import (
    DESKTOP,
    PHONE,
    Account,
    Stage,
    running_stage,
    screenshot,
)

TEXTS = {
    "en": {
        "renew": "Free requests renew:",
        "renews_on": "Renews on",
        "paid": "Paid in Stars for plan Plus",
        "charge": "Plan Plus, 30 days",
        "tier": "Basic",
        "perk": "200 free basic requests a day",
    },
    "ru": {
        "renew": "Бесплатные запросы обновятся:",
        "renews_on": "Продление",
        "paid": "Оплата звёздами за тариф Plus",
        "charge": "Тариф Plus на 30 дней",
        "tier": "Базовые",
        "perk": "200 бесплатных запросов в день (базовые модели)",
    },
}


@pytest.fixture(scope="module")
async def stage(
    engine: AsyncEngine,
    redis: Redis,
    page_server: PageServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stage]:
    media = tmp_path_factory.mktemp("tz-media")
    async with running_stage(engine, redis, page_server, Path(media)) as running:
        yield running


async def _subscribed(stage: Stage, account: Account, until: datetime) -> None:
    """Plus paid with Stars, as the bot records it: a subscription and its two entries."""
    charge = f"charge-{secrets.token_hex(6)}"
    meta = {"plan": "plus", "charge_id": charge}
    async with stage.factory() as uow, uow.transaction():
        await billing.add_credit(
            uow,
            user_id=account.user_id,
            amount=37_500,
            category="subscription",
            key=f"subscription:{charge}:in",
            charge=billing.Charge(meta=meta),
        )
        await billing.take_up_to(
            uow,
            user_id=account.user_id,
            amount=37_500,
            category="subscription",
            key=f"subscription:{charge}:out",
            kind="debit",
            charge=billing.Charge(meta=meta | {"until": until.isoformat()}),
        )
        uow.session.add(
            Subscription(
                user_id=account.user_id,
                plan="plus",
                first_charge_id=charge,
                last_charge_id=charge,
                stars=250,
                status="active",
                current_period_end=until,
            )
        )


async def _open(
    browser: Browser, stage: Stage, account: Account, errors: list[str], *, zone: str, phone: bool
) -> tuple[BrowserContext, Page]:
    """The Mini App in a browser whose clock is in ``zone``."""
    context = await browser.new_context(
        viewport=PHONE if phone else DESKTOP,
        device_scale_factor=2 if phone else 1,
        is_mobile=phone,
        has_touch=phone,
        locale="en-US",
        timezone_id=zone,
    )
    page = await context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(await stage.launch_url(account))
    await expect(page.get_by_test_id("view-title")).to_be_visible(timeout=15_000)
    return context, page


async def _stored_zone(stage: Stage, account: Account) -> str | None:
    async with stage.factory() as uow:
        user = await uow.users.get(account.user_id)
        assert user is not None
        return user.timezone


async def _until_stored(stage: Stage, account: Account, zone: str) -> None:
    for _ in range(50):
        if await _stored_zone(stage, account) == zone:
            return
        await asyncio.sleep(0.1)
    assert await _stored_zone(stage, account) == zone


async def _go(page: Page, route: str, *, phone: bool) -> None:
    """To a view: the tab bar on a phone, the side menu on a desktop."""
    if phone and route == "settings":
        await page.get_by_test_id("tab-more").click()
        await page.get_by_test_id("more-settings").click()
        return
    if phone and await page.get_by_test_id("back").is_visible():
        # A view under More has a back button in place of the tab bar.
        await page.get_by_test_id("back").click()
    await page.get_by_test_id(f"{'tab' if phone else 'nav'}-{route}").click()


def _clock(moment: datetime, zone: str) -> str:
    return f"{moment.astimezone(ZoneInfo(zone)):%H:%M} ({zone})"


@pytest.mark.parametrize(
    ("language", "phone", "zone"),
    [
        ("en", False, "Asia/Tokyo"),
        ("en", True, "America/New_York"),
        ("ru", True, "Asia/Vladivostok"),
        ("ru", False, "Asia/Yekaterinburg"),
    ],
    ids=["en-desktop", "en-phone", "ru-phone", "ru-desktop"],
)
async def test_the_browsers_zone_is_taken_and_the_plan_reads_in_it(
    browser: Browser,
    stage: Stage,
    errors: list[str],
    language: str,
    phone: bool,
    zone: str,
) -> None:
    texts = TEXTS[language]
    mina = await stage.account("Mina", language=language)
    # Away from a round hour, so the shown time tells the zone apart.
    until = (datetime.now(UTC) + timedelta(days=20)).replace(minute=37, second=0, microsecond=0)
    await _subscribed(stage, mina, until)
    context, page = await _open(browser, stage, mina, errors, zone=zone, phone=phone)
    try:
        await _until_stored(stage, mina, zone)
        await _go(page, "balance", phone=phone)
        plan_until = page.get_by_test_id("plan-until")
        await expect(plan_until).to_contain_text(texts["renews_on"])
        await expect(plan_until).to_contain_text(_clock(until, zone))
        reset = page.get_by_test_id("next-reset")
        await expect(reset).to_contain_text(texts["renew"])
        await expect(reset).to_contain_text(f"({zone})")
        await expect(page.get_by_test_id("allowance").first).to_contain_text(texts["tier"])
        rows = page.get_by_test_id("transaction")
        await expect(rows).to_have_count(2)
        await expect(rows.nth(0)).to_contain_text(texts["charge"])
        await expect(rows.nth(1)).to_contain_text(texts["paid"])
        device = "phone" if phone else "desktop"
        await screenshot(page, f"timezone-balance-{language}-{device}")
        await rows.last.scroll_into_view_if_needed()
        await screenshot(page, f"timezone-history-{language}-{device}")
    finally:
        await context.close()


@pytest.mark.parametrize(("language", "phone"), [("en", True), ("ru", False)], ids=["en", "ru"])
async def test_the_settings_change_the_zone_and_the_times_follow(
    browser: Browser, stage: Stage, errors: list[str], language: str, phone: bool
) -> None:
    texts = TEXTS[language]
    ivan = await stage.account("Ivan", language=language)
    context, page = await _open(browser, stage, ivan, errors, zone="Europe/Berlin", phone=phone)
    try:
        await _until_stored(stage, ivan, "Europe/Berlin")
        await _go(page, "settings", phone=phone)
        picker = page.get_by_test_id("timezone")
        await expect(picker).to_have_value("Europe/Berlin")
        await picker.select_option("Asia/Kamchatka")
        await _until_stored(stage, ivan, "Asia/Kamchatka")
        await picker.scroll_into_view_if_needed()
        await screenshot(page, f"timezone-settings-{language}-{'phone' if phone else 'desktop'}")
        await _go(page, "balance", phone=phone)
        await expect(page.get_by_test_id("next-reset")).to_contain_text("(Asia/Kamchatka)")
        # Without a plan, the offer promises free requests per the actual period.
        await expect(page.get_by_test_id("plan-perks").first).to_contain_text(texts["perk"])
    finally:
        await context.close()
    # A zone chosen is kept: the browser's own is not sent over it next time.
    context, page = await _open(browser, stage, ivan, errors, zone="America/Chicago", phone=phone)
    try:
        await _go(page, "balance", phone=phone)
        await expect(page.get_by_test_id("next-reset")).to_contain_text("(Asia/Kamchatka)")
        assert await _stored_zone(stage, ivan) == "Asia/Kamchatka"
    finally:
        await context.close()
