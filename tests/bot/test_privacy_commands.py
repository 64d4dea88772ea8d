"""Export and deletion from the bot, through the sandbox."""

from __future__ import annotations

import json

import httpx

from core.services import accounts
from tests.bot.conftest import BotHarness, Person, PersonFactory, buttons, text_of


async def _onboard(person: PersonFactory, name: str) -> Person:
    someone: Person = await person(name)
    [consent] = await someone.say("/start")
    await someone.accept(consent)
    return someone


async def test_export_arrives_as_a_json_document_with_the_account(
    harness: BotHarness, person: PersonFactory
) -> None:
    olga = await _onboard(person, "Olga")
    [choice] = await olga.say("/export")
    json_button = next(b for b in buttons(choice) if b["text"] == "JSON")
    [document] = await olga.tap(choice, json_button["callback_data"])
    doc = document["message"]["document"]
    assert doc["file_name"] == "netroom-export.json"
    transcript = await harness.client.transcript(olga.id)
    [sent] = [m for m in transcript["messages"] if m.get("document")]
    assert "records" in sent["caption"]
    async with httpx.AsyncClient() as http:
        content = (await http.get(harness.sandbox.url + sent["document"]["url"])).content
    data = json.loads(content)
    assert data["categories"]["account"][0]["telegram_id"] == olga.id
    assert data["categories"]["consents"][0]["policy_version"] == "2026-11-01"

    # Another format right after is sent: the chats as a page.
    [again] = await olga.say("/export")
    html_button = next(b for b in buttons(again) if "HTML" in b["text"])
    [page] = await olga.tap(again, html_button["callback_data"])
    assert page["message"]["document"]["file_name"] == "netroom-chats.html"

    # The same format again within the hour is refused politely.
    [again] = await olga.say("/export")
    [refusal] = await olga.tap(again, json_button["callback_data"])
    assert "once an hour" in text_of(refusal)


async def test_delete_needs_confirmation_and_then_erases_the_account(
    harness: BotHarness, person: PersonFactory
) -> None:
    pete = await _onboard(person, "Pete")
    [warning] = await pete.say("/delete")
    assert "cannot be undone" in text_of(warning)
    cancel = next(b for b in buttons(warning) if b["text"] == "Cancel")
    after = await harness.client.last_seq()
    await harness.client.tap(pete.id, warning["message_id"], cancel["callback_data"])
    await harness.client.wait_for(
        lambda e: e["type"] == "callback_answered", chat_id=pete.id, after=after
    )
    async with harness.uow_factory() as uow:
        assert await accounts.get_by_telegram_id(uow, pete.id) is not None

    [warning] = await pete.say("/delete")
    confirm = next(b for b in buttons(warning) if "Delete my account" in b["text"])
    [goodbye] = await pete.tap(warning, confirm["callback_data"])
    assert "has been deleted" in text_of(goodbye)
    async with harness.uow_factory() as uow:
        assert await accounts.get_by_telegram_id(uow, pete.id) is None
    # Coming back starts from the beginning, as a new account.
    [consent] = await pete.say("/start")
    assert "privacy policy" in text_of(consent)


async def test_declining_a_new_policy_version_leads_to_erasure(
    harness: BotHarness, person: PersonFactory
) -> None:
    from sqlalchemy import update

    from db.models import Consent

    rae = await _onboard(person, "Rae")
    async with harness.uow_factory() as uow:
        account = await accounts.get_by_telegram_id(uow, rae.id)
        assert account is not None
        # The policy has moved on since this account accepted it.
        await uow.session.execute(
            update(Consent).filter_by(user_id=account.id).values(policy_version="2025-01-01")
        )
        await uow.commit()
    [renewal] = await rae.say("/balance")
    assert "policy has changed" in text_of(renewal)
    decline = next(b for b in buttons(renewal) if "Decline" in b["text"])
    [warning] = await rae.tap(renewal, decline["callback_data"])
    assert "cannot be undone" in text_of(warning)
    confirm = next(b for b in buttons(warning) if "Delete my account" in b["text"])
    [goodbye] = await rae.tap(warning, confirm["callback_data"])
    assert "has been deleted" in text_of(goodbye)
    async with harness.uow_factory() as uow:
        assert await accounts.get_by_telegram_id(uow, rae.id) is None


async def test_marketing_messages_need_a_separate_opt_in_that_can_be_withdrawn(
    harness: BotHarness, person: PersonFactory
) -> None:
    una = await _onboard(person, "Una")

    async def opted_in() -> bool:
        async with harness.uow_factory() as uow:
            user = await uow.users.by_telegram_id(una.id)
            assert user is not None
            return bool(user.marketing_opt_in)

    [summary] = await una.say("/privacy")
    [toggle] = buttons(summary)
    assert toggle["text"] == "📣 News and offers: off — turn on"
    # Accepting the policy did not opt anyone in.
    assert not await opted_in()
    after = await harness.client.last_seq()
    await harness.client.tap(una.id, summary["message_id"], toggle["callback_data"])
    edited = await harness.client.wait_for(
        lambda e: e["type"] == "markup_edited", chat_id=una.id, after=after
    )
    assert await opted_in()
    [turn_off] = buttons(edited)
    assert turn_off["text"] == "📣 News and offers: on — turn off"
    after = await harness.client.last_seq()
    await harness.client.tap(una.id, summary["message_id"], turn_off["callback_data"])
    await harness.client.wait_for(
        lambda e: e["type"] == "markup_edited", chat_id=una.id, after=after
    )
    assert not await opted_in()
