"""A picture's caption and button when the web app runs on a loopback address (development):
Telegram refuses buttons to such addresses, so the picture comes without one, never lost."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.bot.conftest import BotHarness, PersonFactory
from tests.bot.test_chat import _ready


@pytest.fixture
async def loopback_web_app(harness: BotHarness) -> AsyncIterator[None]:
    """WEB__PUBLIC_URL=http://127.0.0.1:8080 for one test (the bot's settings, changed in place:
    the same as restarting the bot with it)."""
    ctx = harness.dp["ctx"]
    original = ctx.web_app_url
    object.__setattr__(ctx, "web_app_url", "http://127.0.0.1:8080/app")
    yield
    object.__setattr__(ctx, "web_app_url", original)


async def test_a_picture_arrives_without_a_link_button_when_the_web_app_is_on_loopback(
    harness: BotHarness, person: PersonFactory, loopback_web_app: None
) -> None:
    lou = await _ready(harness, person, "Lou")
    before = await harness.client.last_seq()
    await harness.client.send_text(lou.id, "/image a quiet harbour")
    sent = await harness.client.wait_for(
        lambda e: e["type"] == "bot_message" and "photo" in e["message"],
        chat_id=lou.id,
        after=before,
        wait=20,
    )
    assert "a quiet harbour" in sent["message"]["caption"]
    assert "127.0.0.1" not in sent["message"]["caption"]
    assert "reply_markup" not in sent["message"]
