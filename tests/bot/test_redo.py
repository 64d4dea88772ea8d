"""Asking again through the real bot and the sandbox: 🔄 and 🔀 under a reply, an edited prompt,
🔁 Retry under an error; 👍/👎 and ℹ️ (what a reply cost). Each ask-again is a billed turn and
the turn it replaces stays in the history, marked, but out of the model's context."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from sqlalchemy import select

from core.services import billing, chat
from db.models import ChatMessageRow, LedgerEntry
from tests.bot.conftest import BotHarness, Person, PersonFactory, button_data, buttons, text_of


async def _ready(harness: BotHarness, person: PersonFactory, name: str) -> Person:
    someone: Person = await person(name)
    [consent] = await someone.say("/start")
    await someone.accept(consent)
    async with harness.uow_factory() as uow:
        user = await uow.users.by_telegram_id(someone.id)
        assert user is not None
        async with uow.transaction():
            await billing.credit(
                uow, user_id=user.id, amount=100_000, category="topup", key=secrets.token_hex(8)
            )
    someone.user_id = user.id  # type: ignore[attr-defined]
    await harness.client._call("DELETE", "/providers/script")
    return someone


async def _script(harness: BotHarness, **script: Any) -> None:
    await harness.client._call("POST", "/providers/script", json=script)


async def _requests(harness: BotHarness, provider: str = "openai") -> list[dict[str, Any]]:
    found = await harness.client._call("GET", f"/providers/requests?provider={provider}")
    return list(found["requests"])


def _said(request: dict[str, Any]) -> list[str]:
    """The texts of a chat request's messages (OpenAI's wire format)."""
    return [str(m["content"]) for m in request["json"]["messages"]]


async def _reply(harness: BotHarness, someone: Person, marker: str, after: int) -> dict[str, Any]:
    event = await harness.client.wait_for(
        lambda e: e["type"] == "bot_message" and marker in text_of(e),
        chat_id=someone.id,
        after=after,
        wait=20,
    )
    return dict(event)


async def _ask(harness: BotHarness, someone: Person, text: str, reply: str) -> tuple[dict, dict]:
    """Say ``text``; the model answers ``reply``. (the user's message, the bot's reply)"""
    await _script(harness, provider="openai", reply=reply)
    after = await harness.client.last_seq()
    sent = await harness.client.send_text(someone.id, text)
    return sent["message"], await _reply(harness, someone, reply, after)


async def _tap(harness: BotHarness, someone: Person, message: dict, label: str) -> int:
    after = await harness.client.last_seq()
    await harness.client.tap(someone.id, message["message_id"], button_data(message, label))
    return after


async def _rows(harness: BotHarness, someone: Person, count: int = 0) -> list[Any]:
    """The person's stored messages, oldest first, once there are ``count`` of them (the reply
    is stored a moment after the user has it)."""
    for _ in range(100):
        rows = await _stored(harness, someone)
        if len(rows) >= count:
            break
        await asyncio.sleep(0.05)
    return rows


async def _stored(harness: BotHarness, someone: Person) -> list[Any]:
    async with harness.uow_factory() as uow:
        found = await uow.session.execute(
            select(
                ChatMessageRow.role,
                ChatMessageRow.content,
                ChatMessageRow.replaced,
                ChatMessageRow.model_id,
                ChatMessageRow.rating,
                ChatMessageRow.cost,
            )
            .where(ChatMessageRow.user_id == someone.user_id)  # type: ignore[attr-defined]
            .order_by(ChatMessageRow.id)
        )
        return list(found.all())


async def _text_debits(harness: BotHarness, someone: Person, count: int = 0) -> list[int]:
    """The person's text-model charges, oldest first, once there are ``count`` of them (a turn
    is settled a moment after the user has the reply)."""
    for _attempt in range(100):
        found = await _debits(harness, someone)
        if len(found) >= count:
            break
        await asyncio.sleep(0.05)
    return found


async def _debits(harness: BotHarness, someone: Person) -> list[int]:
    async with harness.uow_factory() as uow:
        found = await uow.session.scalars(
            select(LedgerEntry.amount)
            .order_by(LedgerEntry.id)
            .where(
                LedgerEntry.user_id == someone.user_id,  # type: ignore[attr-defined]
                LedgerEntry.category == "text",
            )
        )
        return list(found)


async def test_regenerate_replaces_the_last_reply_and_is_billed_as_a_new_turn(
    harness: BotHarness, person: PersonFactory
) -> None:
    ann = await _ready(harness, person, "Ann")
    await _ask(harness, ann, "Name a colour", "Teal is first.")
    _, reply = await _ask(harness, ann, "Name a fruit", "Mango is first.")
    assert [b["text"] for b in buttons(reply)] == ["🔄", "🔀", "👍", "👎", "ℹ️"]
    await harness.client._call("DELETE", "/providers/requests")
    await _script(harness, provider="openai", reply="Kiwi is second.")
    after = await _tap(harness, ann, reply, "🔄")
    again = await _reply(harness, ann, "Kiwi is second.", after)
    assert buttons(again)[0]["text"] == "🔄"
    # The old reply stays in the chat, marked as replaced.
    marked = await harness.client.wait_for(
        lambda e: e["type"] == "markup_edited" and e["message_id"] == reply["message_id"],
        chat_id=ann.id,
        after=after,
    )
    assert [b["text"] for b in buttons(marked)] == ["♻️ Replaced by a newer answer"]
    # The model saw the earlier turn and the prompt once, not the reply it replaces.
    [request] = await _requests(harness)
    assert _said(request) == ["Name a colour", "Teal is first.", "Name a fruit"]
    rows = await _rows(harness, ann, 6)
    assert [(r.role, r.content, r.replaced) for r in rows] == [
        ("user", "Name a colour", False),
        ("assistant", "Teal is first.", False),
        ("user", "Name a fruit", True),
        ("assistant", "Mango is first.", True),
        ("user", "Name a fruit", False),
        ("assistant", "Kiwi is second.", False),
    ]
    debits = await _text_debits(harness, ann)
    assert len(debits) == 3 and all(d < 0 for d in debits)
    assert rows[-1].cost == -debits[-1]


async def test_regenerate_with_another_model_sends_the_prompt_to_its_provider(
    harness: BotHarness, person: PersonFactory
) -> None:
    bea = await _ready(harness, person, "Bea")
    _, reply = await _ask(harness, bea, "Who are you?", "I am GPT.")
    after = await _tap(harness, bea, reply, "🔀")
    [picker] = await bea.replies(after, 1)
    assert "which model" in text_of(picker)
    await harness.client._call("DELETE", "/providers/requests")
    await _script(harness, provider="anthropic", reply="I am Claude.")
    after = await _tap(harness, bea, picker, "sandbox-claude")
    await _reply(harness, bea, "I am Claude.", after)
    [request] = await _requests(harness, "anthropic")
    assert request["json"]["model"] == "claude-sandbox"
    # The reply answered again is marked; the list of models is gone.
    transcript = {m["message_id"]: m for m in await harness.client.bot_messages(bea.id)}
    assert [b["text"] for b in buttons({"message": transcript[reply["message_id"]]})] == [
        "♻️ Replaced by a newer answer"
    ]
    assert not transcript[picker["message_id"]]["reply_markup"]
    rows = await _rows(harness, bea, 4)
    assert [(r.model_id, r.replaced) for r in rows if r.role == "assistant"] == [
        ("sandbox-gpt", True),
        ("sandbox-claude", False),
    ]


async def test_an_edited_prompt_is_asked_again_with_the_new_text(
    harness: BotHarness, person: PersonFactory
) -> None:
    cal = await _ready(harness, person, "Cal")
    prompt, _ = await _ask(harness, cal, "What is 2+2?", "It is 4.")
    await harness.client._call("DELETE", "/providers/requests")
    await _script(harness, provider="openai", reply="It is 6.")
    after = await harness.client.last_seq()
    await harness.client.edit_message(cal.id, prompt["message_id"], text="What is 3+3?")
    await _reply(harness, cal, "It is 6.", after)
    [request] = await _requests(harness)
    assert _said(request) == ["What is 3+3?"]
    rows = await _rows(harness, cal, 4)
    assert [(r.content, r.replaced) for r in rows] == [
        ("What is 2+2?", True),
        ("It is 4.", True),
        ("What is 3+3?", False),
        ("It is 6.", False),
    ]
    assert len(await _text_debits(harness, cal)) == 2


async def test_an_edit_of_an_older_prompt_asks_nothing(
    harness: BotHarness, person: PersonFactory
) -> None:
    dot = await _ready(harness, person, "Dot")
    first, _ = await _ask(harness, dot, "First question", "First answer.")
    await _ask(harness, dot, "Second question", "Second answer.")
    await harness.client._call("DELETE", "/providers/requests")
    after = await harness.client.last_seq()
    await harness.client.edit_message(dot.id, first["message_id"], text="First question, edited")
    # A later message is answered normally: the edit started no turn of its own.
    await _ask(harness, dot, "Third question", "Third answer.")
    assert [_said(r)[-1] for r in await _requests(harness)] == ["Third question"]
    events, _ = await harness.client.events(after=after, chat_id=dot.id)
    assert not any("edited" in text_of(e) for e in events if e["type"] == "bot_message")


async def test_retry_under_a_failed_reply_asks_again_and_only_the_retry_is_billed(
    harness: BotHarness, person: PersonFactory
) -> None:
    eve = await _ready(harness, person, "Eve")
    await _script(
        harness,
        provider="openai",
        reply="never",
        fault={"kind": "in_stream_error", "after_chunks": 0},
    )
    after = await harness.client.last_seq()
    await harness.client.send_text(eve.id, "Explain tides")
    note = await harness.client.wait_for(
        lambda e: e["type"] == "bot_message" and bool(buttons(e)),
        chat_id=eve.id,
        after=after,
        wait=20,
    )
    assert [b["text"] for b in buttons(note)] == ["🔁 Retry"]
    assert await _text_debits(harness, eve) == []
    await _script(harness, provider="openai", reply="The moon pulls the sea.")
    after = await _tap(harness, eve, note, "Retry")
    await _reply(harness, eve, "The moon pulls the sea.", after)
    rows = await _rows(harness, eve, 3)
    assert [(r.role, r.content, r.replaced) for r in rows] == [
        ("user", "Explain tides", True),
        ("user", "Explain tides", False),
        ("assistant", "The moon pulls the sea.", False),
    ]
    assert len(await _text_debits(harness, eve)) == 1


async def test_only_the_last_reply_can_be_asked_again(
    harness: BotHarness, person: PersonFactory
) -> None:
    fay = await _ready(harness, person, "Fay")
    _, older = await _ask(harness, fay, "One", "Reply one.")
    await _ask(harness, fay, "Two", "Reply two.")
    await harness.client._call("DELETE", "/providers/requests")
    after = await _tap(harness, fay, older, "🔄")
    [refusal] = await fay.replies(after, 1)
    assert "Only the last message" in text_of(refusal)
    assert await _requests(harness) == []
    assert not any(r.replaced for r in await _rows(harness, fay, 4))


async def test_a_rating_is_stored_and_the_cost_is_told_on_request(
    harness: BotHarness, person: PersonFactory
) -> None:
    gil = await _ready(harness, person, "Gil")
    _, reply = await _ask(harness, gil, "Rate me", "A fine answer.")
    after = await _tap(harness, gil, reply, "👍")
    marked = await harness.client.wait_for(
        lambda e: e["type"] == "markup_edited" and e["message_id"] == reply["message_id"],
        chat_id=gil.id,
        after=after,
    )
    assert "👍✓" in [b["text"] for b in buttons(marked)]
    rows = await _rows(harness, gil, 2)
    assert [(r.role, r.rating) for r in rows] == [("user", None), ("assistant", 1)]
    after = await _tap(harness, gil, reply, "👎")
    await harness.client.wait_for(
        lambda e: e["type"] == "markup_edited", chat_id=gil.id, after=after
    )
    assert (await _rows(harness, gil))[1].rating == -1
    [debit] = await _text_debits(harness, gil)
    after = await _tap(harness, gil, reply, "ℹ️")
    answer = await harness.client.wait_for(
        lambda e: e["type"] == "callback_answered", chat_id=gil.id, after=after
    )
    assert answer["show_alert"] is True
    amount = f"₽{-debit / 100:,.2f}"
    assert f"This reply cost {amount} (sandbox-gpt)." in answer["text"]


async def test_with_history_off_an_edited_prompt_is_asked_again_and_nothing_is_kept(
    harness: BotHarness, person: PersonFactory
) -> None:
    hal = await _ready(harness, person, "Hal")
    async with harness.uow_factory() as uow:
        await chat.set_history(uow, hal.user_id, enabled=False)  # type: ignore[attr-defined]
    prompt, reply = await _ask(harness, hal, "Spell cat", "C-A-T.")
    # Nothing is kept to ask again, rate or price: no buttons.
    assert buttons(reply) == []
    await harness.client._call("DELETE", "/providers/requests")
    await _script(harness, provider="openai", reply="D-O-G.")
    after = await harness.client.last_seq()
    await harness.client.edit_message(hal.id, prompt["message_id"], text="Spell dog")
    await _reply(harness, hal, "D-O-G.", after)
    [request] = await _requests(harness)
    assert _said(request) == ["Spell dog"]
    assert await _rows(harness, hal) == []
    assert len(await _text_debits(harness, hal, 2)) == 2


async def test_a_question_about_a_picture_is_not_asked_again_without_it(
    harness: BotHarness, person: PersonFactory
) -> None:
    ivy = await _ready(harness, person, "Ivy")
    await _script(harness, provider="openai", reply="A cat on a sofa.")
    after = await harness.client.last_seq()
    await harness.client.send_photo(ivy.id, b"\xff\xd8\xff\xe0fake-jpeg-bytes", caption="What?")
    reply = await _reply(harness, ivy, "A cat on a sofa.", after)
    await _rows(harness, ivy, 2)
    await harness.client._call("DELETE", "/providers/requests")
    after = await _tap(harness, ivy, reply, "🔄")
    [refusal] = await ivy.replies(after, 1)
    assert "Pictures are not kept" in text_of(refusal)
    assert await _requests(harness) == []
    assert not any(r.replaced for r in await _rows(harness, ivy, 2))
