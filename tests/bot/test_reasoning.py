"""Reasoning, when shown, comes as a collapsed (expandable) quote above the answer."""

from __future__ import annotations

import secrets

from core.services import billing
from tests.bot.conftest import BotHarness, Person, PersonFactory, button_data


async def test_shown_reasoning_is_an_expandable_quote_above_the_answer(
    harness: BotHarness, person: PersonFactory
) -> None:
    uma: Person = await person("Uma")
    [consent] = await uma.say("/start")
    await uma.accept(consent)
    async with harness.uow_factory() as uow:
        user = await uow.users.by_telegram_id(uma.id)
        assert user is not None
        async with uow.transaction():
            await billing.credit(
                uow, user_id=user.id, amount=100_000, category="topup", key=secrets.token_hex(8)
            )
    [menu] = await uma.say("/model")
    after = await harness.client.last_seq()
    await harness.client.tap(uma.id, menu["message_id"], button_data(menu, "Sandbox Thinker"))
    await harness.client.wait_for(
        lambda e: e["type"] == "callback_answered", chat_id=uma.id, after=after
    )
    [settings] = await uma.say("/settings")
    after = await harness.client.last_seq()
    await harness.client.tap(
        uma.id, settings["message_id"], button_data(settings, "Show reasoning")
    )
    await harness.client.wait_for(
        lambda e: e["type"] == "callback_answered", chat_id=uma.id, after=after
    )
    thought = "First the units, then the sum. " * 20
    await harness.client._call(
        "POST",
        "/providers/script",
        json={"provider": "compat", "reply": "It is 42.", "reasoning": thought},
    )
    before = await harness.client.last_seq()
    await harness.client.send_text(uma.id, "What is six times seven?")
    final = await harness.client.wait_for(
        lambda e: (
            e["type"] in ("bot_message", "message_edited")
            and "It is 42." in (e["message"].get("text") or "")
        ),
        chat_id=uma.id,
        after=before,
        wait=20,
    )
    message = final["message"]
    assert message["text"].startswith("🤔 First the units")
    assert message["text"].endswith("\n\nIt is 42.")
    [quote] = [e for e in message["entities"] if "blockquote" in e["type"]]
    assert quote["type"] == "expandable_blockquote"
    assert quote["offset"] == 0
