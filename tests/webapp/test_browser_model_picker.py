"""The web model picker in headless Chromium: models grouped by provider, each option with its
capabilities, price of a typical request and free class; the chosen model's capabilities as
badges and its free class explained, in English and Russian, on a phone and a desktop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from core.services import chat
from core.services.chat import ModelMenu
from tests.sandbox_web.stage import PageServer
from tests.webapp.test_browser_pages import (
    Stage,
    models,
    open_app,
    roubles,
    running_stage,
    screenshot,
)

MENU = ModelMenu(models=models("price"), default_id="gpt-4o")
GPT_4O = MENU.request_price(MENU.get("gpt-4o"))
MINI = MENU.request_price(MENU.get("gpt-4o-mini"))
O3 = MENU.request_price(MENU.get("o3-mini"))


@pytest.fixture
async def stage(
    engine: AsyncEngine, redis: Redis, page_server: PageServer, tmp_path: Path
) -> AsyncIterator[Stage]:
    async with running_stage(engine, redis, page_server, tmp_path / "media") as running:
        yield running


async def test_the_model_picker_groups_models_and_explains_the_free_class_on_a_phone(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    mina = await stage.account("Mina", money=50_000)
    context, page = await open_app(browser, stage, mina, errors)
    try:
        picker = page.get_by_test_id("model-picker")
        await expect(picker).to_have_value("gpt-4o")
        group = picker.locator("optgroup")
        await expect(group).to_have_attribute("label", "OpenAI")
        await expect(group.locator("option")).to_have_text(
            [
                f"GPT-4o · ≈{roubles(GPT_4O)}",
                f"o3-mini · ≈{roubles(O3)}",
                f"GPT-4o mini · ≈{roubles(MINI)} · free: basic",
            ]
        )
        info = page.get_by_test_id("model-info")
        head = info.locator(":scope > .badge, :scope > .model-price")
        await expect(head).to_have_text(["sees pictures", f"≈{roubles(GPT_4O)} a typical request"])
        await expect(info).to_contain_text("a typical requestAll models:")
        await screenshot(page, "model-picker-phone-en")

        await picker.select_option("gpt-4o-mini")
        await expect(page.get_by_test_id("toast")).to_have_text("Model: GPT-4o mini")
        badge = info.locator(":scope > [data-testid=free-class]")
        await expect(badge).to_have_text("free: basic")
        await expect(badge).to_have_attribute(
            "title", "light, fast models; 20 free basic requests a day"
        )
        await expect(info.locator(":scope > [data-testid=cap-vision]")).to_have_count(0)
        async with stage.factory() as uow:
            assert (await chat.get_prefs(uow, mina.user_id)).model_id == "gpt-4o-mini"

        guide = info.get_by_test_id("model-guide")
        rows = guide.get_by_test_id("model-row")
        await expect(rows.first).not_to_be_visible()
        await guide.locator("summary").click()
        await expect(guide.get_by_test_id("model-group").locator("h4")).to_have_text(["OpenAI"])
        await expect(rows).to_have_text(
            [
                f"GPT-4osees pictures≈{roubles(GPT_4O)}",
                f"o3-minireasons≈{roubles(O3)}",
                f"GPT-4o mini≈{roubles(MINI)}free: basic",
            ]
        )
        await expect(guide.get_by_test_id("free-classes").locator("li")).to_have_text(
            "basic: light, fast models; 20 free basic requests a day"
        )
        await screenshot(page, "model-picker-guide-phone-en")
        # A tap on a row picks that model, as the list does.
        await rows.nth(1).click()
        await expect(picker).to_have_value("o3-mini")
        await expect(page.get_by_test_id("toast").last).to_have_text("Model: o3-mini")
        await expect(rows.nth(1)).to_have_attribute("aria-pressed", "true")
        async with stage.factory() as uow:
            assert (await chat.get_prefs(uow, mina.user_id)).model_id == "o3-mini"
        assert errors == []
    finally:
        await context.close()


async def test_the_model_picker_speaks_russian_on_a_desktop(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    ivan = await stage.account("Ivan", language="ru", money=50_000)
    context, page = await open_app(browser, stage, ivan, errors, phone=False)
    try:
        picker = page.get_by_test_id("model-picker")
        await expect(picker.locator("option").last).to_have_text(
            f"GPT-4o mini · ≈{MINI // 100},{MINI % 100:02d} ₽ · бесплатно: базовые"
        )
        info = page.get_by_test_id("model-info")
        await expect(info.locator(":scope > [data-testid=cap-vision]")).to_have_text(
            "видит картинки"
        )
        await picker.select_option("gpt-4o-mini")
        await expect(info.locator(":scope > [data-testid=free-class]")).to_have_text(
            "бесплатно: базовые"
        )
        guide = info.get_by_test_id("model-guide")
        await expect(guide.locator("summary")).to_have_text("Все модели: что умеют и сколько стоят")
        await guide.locator("summary").click()
        await expect(guide.get_by_test_id("free-classes").locator("h4")).to_have_text(
            "Бесплатные классы"
        )
        await expect(guide.get_by_test_id("free-classes").locator("li")).to_contain_text(
            "базовые: лёгкие быстрые модели;"
        )
        await expect(guide.get_by_test_id("model-row").nth(1)).to_contain_text("рассуждает")
        await screenshot(page, "model-picker-desktop-ru")
        assert errors == []
    finally:
        await context.close()


async def test_the_balance_page_tells_what_each_free_class_holds(
    browser: Browser, stage: Stage, errors: list[str]
) -> None:
    mina = await stage.account("Mina", money=50_000)
    context, page = await open_app(browser, stage, mina, errors)
    try:
        await page.get_by_test_id("tab-balance").click()
        await expect(page.get_by_test_id("allowance").get_by_test_id("tier-hint")).to_have_text(
            [" · light, fast models", " · stronger models"]
        )
        await expect(page.get_by_test_id("tier-hints")).to_have_text(
            "Classes: basic: light, fast models; standard: stronger models."
        )
        await page.get_by_test_id("tier-hints").scroll_into_view_if_needed()
        await screenshot(page, "balance-classes-phone-en")
        assert errors == []
    finally:
        await context.close()
