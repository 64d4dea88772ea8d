"""A conversation's own settings through the real bot and the sandbox: picking a preset applies
to the next conversation and never starts one at once; a conversation given a model of its own
(on the web) answers with it in Telegram too."""

from __future__ import annotations

from typing import Any

from core.services import chat, conversations, presets
from tests.bot.conftest import MODELS, BotHarness, PersonFactory, buttons
from tests.bot.test_chat import _ready, _script


async def _ask(harness: BotHarness, chat_id: int, text: str, reply: str) -> dict[str, Any]:
    """Say ``text``, wait for ``reply``; what the provider fake was sent for it."""
    await harness.client._call("DELETE", "/providers/requests")
    before = await harness.client.last_seq()
    await harness.client.send_text(chat_id, text)
    await harness.client.wait_for(
        lambda e: e["type"] == "bot_message" and reply in (e["message"].get("text") or ""),
        chat_id=chat_id,
        after=before,
        wait=20,
    )
    [sent] = (await harness.client._call("GET", "/providers/requests"))["requests"]
    return dict(sent["json"])


async def test_picking_a_preset_keeps_the_conversation_and_applies_to_the_next(
    harness: BotHarness, person: PersonFactory
) -> None:
    jo = await _ready(harness, person, "Jo")
    user_id = jo.user_id  # type: ignore[attr-defined]
    await _script(harness, provider="openai", reply="Hello there.", times=3)
    await _ask(harness, jo.id, "Hello", "Hello there.")
    async with harness.uow_factory() as uow:
        first = (await chat.get_prefs(uow, user_id)).conversation_id
        await presets.create_preset(uow, user_id, title="Pirate", prompt="Talk like a pirate.")
    [listing] = await jo.say("/presets")
    use = next(b for b in buttons(listing) if b["text"] == "Pirate")
    after = await harness.client.last_seq()
    await harness.client.tap(jo.id, listing["message_id"], use["callback_data"])
    await harness.client.wait_for(
        lambda e: e["type"] == "markup_edited", chat_id=jo.id, after=after
    )
    # The conversation goes on as it was: same conversation, its history, no instructions.
    sent = await _ask(harness, jo.id, "And again", "Hello there.")
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    async with harness.uow_factory() as uow:
        assert (await chat.get_prefs(uow, user_id)).conversation_id == first
    # The next conversation takes the preset.
    await jo.say("/new")
    sent = await _ask(harness, jo.id, "Ahoy?", "Hello there.")
    assert sent["messages"][0] == {"role": "system", "content": "Talk like a pirate."}
    assert len(sent["messages"]) == 2


async def test_a_conversation_with_its_own_model_answers_with_it_in_the_bot(
    harness: BotHarness, person: PersonFactory
) -> None:
    ann = await _ready(harness, person, "Ann")
    user_id = ann.user_id  # type: ignore[attr-defined]
    await _script(harness, provider="openai", reply="From the default.")
    sent = await _ask(harness, ann.id, "Hi", "From the default.")
    assert sent["model"] == "gpt-sandbox"
    async with harness.uow_factory() as uow:
        current = (await chat.get_prefs(uow, user_id)).conversation_id
        assert current is not None
        await conversations.update_conversation(
            uow, user_id, current, models=MODELS, model_id="sandbox-mini"
        )
    await _script(harness, provider="openai", reply="From its own.")
    sent = await _ask(harness, ann.id, "Hi again", "From its own.")
    assert sent["model"] == "gpt-mini-sandbox"
    # A pick in /model applies to this conversation from the next message on, and starts none.
    [listing] = await ann.say("/model")
    pick = next(b for b in buttons(listing) if "sandbox-gpt " in b["text"])
    after = await harness.client.last_seq()
    await harness.client.tap(ann.id, listing["message_id"], pick["callback_data"])
    await harness.client.wait_for(
        lambda e: e["type"] == "callback_answered", chat_id=ann.id, after=after
    )
    await _script(harness, provider="openai", reply="Back to the pick.")
    sent = await _ask(harness, ann.id, "And now?", "Back to the pick.")
    assert sent["model"] == "gpt-sandbox"
    assert len(sent["messages"]) == 5  # the same conversation, its history sent along
    async with harness.uow_factory() as uow:
        assert (await chat.get_prefs(uow, user_id)).conversation_id == current
