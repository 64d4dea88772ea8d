"""Voice through the real bot, the sandbox's Telegram and its OpenAI audio fakes: a voice note is
downloaded, transcribed (billed per started minute), shown back and answered; an audio file's
caption says what to do with it; a recording over the Bot API's 20 MB is refused; and with "Read
replies aloud" on, the reply also comes as a voice message, billed per character."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from sqlalchemy import select

from core.services import billing, chat
from db.models import ChatMessageRow, LedgerEntry
from tests.bot.conftest import (
    SPEECH,
    TRANSCRIPTION,
    BotHarness,
    Person,
    PersonFactory,
    button_data,
    text_of,
)


async def _ready(
    harness: BotHarness, person: PersonFactory, name: str, money: int = 100_000
) -> tuple[Person, int]:
    someone: Person = await person(name)
    [consent] = await someone.say("/start")
    await someone.accept(consent)
    async with harness.uow_factory() as uow:
        user = await uow.users.by_telegram_id(someone.id)
        assert user is not None
        user_id = user.id
        if money:
            async with uow.transaction():
                await billing.credit(
                    uow, user_id=user_id, amount=money, category="topup", key=secrets.token_hex(8)
                )
    return someone, user_id


async def _voice_entries(
    harness: BotHarness, user_id: int, model_id: str
) -> list[tuple[int, str, int | None]]:
    """(amount, category, provider cost) of the user's entries for this model."""
    async with harness.uow_factory() as uow:
        rows = await uow.session.execute(
            select(LedgerEntry.amount, LedgerEntry.category, LedgerEntry.cost).where(
                LedgerEntry.user_id == user_id, LedgerEntry.model_id == model_id
            )
        )
        return [(r.amount, r.category, r.cost) for r in rows]


async def _audio_requests(harness: BotHarness, path: str) -> list[dict[str, Any]]:
    found = await harness.client._call("GET", "/providers/requests?provider=openai")
    return [r for r in found["requests"] if r["path"] == path]


def _reply_to(phrase: str) -> Any:
    return lambda e: e["type"] == "bot_message" and phrase in (e["message"].get("text") or "")


async def test_a_voice_note_is_transcribed_shown_answered_and_billed_per_started_minute(
    harness: BotHarness, person: PersonFactory
) -> None:
    vic, user_id = await _ready(harness, person, "Vic")
    # The sandbox hears audio that is UTF-8 text as that text.
    said = f"What is the capital of France {secrets.token_hex(3)}"
    after = await harness.client.last_seq()
    await harness.client.send_voice(vic.id, said.encode(), duration=61)
    shown = await harness.client.wait_for(_reply_to("🎙"), chat_id=vic.id, after=after, wait=15)
    assert text_of(shown) == f"🎙 {said}"
    answer = await harness.client.wait_for(
        _reply_to(f"You said: {said}"), chat_id=vic.id, after=shown["seq"], wait=20
    )
    assert "sandbox" in text_of(answer)

    # The file went to the transcription model as a multipart upload.
    [upload] = [
        r
        for r in await _audio_requests(harness, "/openai/v1/audio/transcriptions")
        if r["form"]["file_bytes"] == str(len(said.encode()))
        and r["form"]["model"] == TRANSCRIPTION.provider_model
    ]
    assert upload["form"]["filename"] == "voice.ogg"
    # 61 seconds are two started minutes at 100 kopecks, one charge, nothing left held.
    assert await _voice_entries(harness, user_id, TRANSCRIPTION.id) == [(-200, "other", 200)]
    async with harness.uow_factory() as uow:
        balance = await billing.get_balance(uow, user_id)
        assert balance.reserved == 0
        assert await billing.check_consistency(uow, user_id)
        # The transcript is kept as the user's prompt, like a typed message; no audio is.
        prompts = list(
            await uow.session.scalars(
                select(ChatMessageRow.content).where(
                    ChatMessageRow.user_id == user_id, ChatMessageRow.role == "user"
                )
            )
        )
    assert prompts == [said]


async def test_an_audio_file_is_answered_with_its_caption_as_the_instruction(
    harness: BotHarness, person: PersonFactory
) -> None:
    ada, user_id = await _ready(harness, person, "Ada")
    await harness.client._call(
        "POST",
        "/providers/script",
        json={"provider": "openai", "model": TRANSCRIPTION.provider_model, "reply": "Minutes."},
    )
    after = await harness.client.last_seq()
    await harness.client.send_audio(
        ada.id, b"\xff\xfb\x90\x00" * 500, duration=5, file_name="meeting.mp3", caption="Summarise"
    )
    shown = await harness.client.wait_for(_reply_to("🎙"), chat_id=ada.id, after=after, wait=15)
    assert text_of(shown) == "🎙 Minutes."
    await harness.client.wait_for(
        _reply_to("You said: Summarise Minutes."), chat_id=ada.id, after=shown["seq"], wait=20
    )
    assert await _voice_entries(harness, user_id, TRANSCRIPTION.id) == [(-100, "other", 100)]


async def test_a_transcript_is_escaped_when_shown(
    harness: BotHarness, person: PersonFactory
) -> None:
    eve, _ = await _ready(harness, person, "Eve")
    after = await harness.client.last_seq()
    await harness.client.send_voice(eve.id, b"<b>not bold</b> & more", duration=3)
    shown = await harness.client.wait_for(_reply_to("🎙"), chat_id=eve.id, after=after, wait=15)
    assert text_of(shown) == "🎙 <b>not bold</b> & more"
    assert not shown["message"].get("entities")


async def test_a_recording_over_20_mb_is_refused_and_costs_nothing(
    harness: BotHarness, person: PersonFactory
) -> None:
    big, user_id = await _ready(harness, person, "Big")
    before = len(await _audio_requests(harness, "/openai/v1/audio/transcriptions"))
    after = await harness.client.last_seq()
    await harness.client.send_voice(big.id, b"\x00" * (20 * 1024 * 1024 + 1), duration=900)
    refused = await harness.client.wait_for(
        _reply_to("too large"), chat_id=big.id, after=after, wait=30
    )
    assert "under 20 MB" in text_of(refused)
    assert len(await _audio_requests(harness, "/openai/v1/audio/transcriptions")) == before
    assert await _voice_entries(harness, user_id, TRANSCRIPTION.id) == []


async def test_a_voice_note_without_money_asks_for_a_top_up_and_is_not_transcribed(
    harness: BotHarness, person: PersonFactory
) -> None:
    poor, user_id = await _ready(harness, person, "Poor", money=0)
    before = len(await _audio_requests(harness, "/openai/v1/audio/transcriptions"))
    after = await harness.client.last_seq()
    await harness.client.send_voice(poor.id, b"hello there", duration=4)
    refused = await harness.client.wait_for(
        _reply_to("Not enough money"), chat_id=poor.id, after=after, wait=15
    )
    assert "Top up" in str(refused["message"].get("reply_markup"))
    assert len(await _audio_requests(harness, "/openai/v1/audio/transcriptions")) == before
    async with harness.uow_factory() as uow:
        assert (await billing.get_balance(uow, user_id)).reserved == 0


async def test_with_read_aloud_on_a_reply_also_arrives_as_a_billed_voice_message(
    harness: BotHarness, person: PersonFactory
) -> None:
    rex, user_id = await _ready(harness, person, "Rex")
    [settings] = await rex.say("/settings")
    await rex.tap(settings, button_data(settings, "Read replies aloud"), replies=0)
    # The switch shows as on once the keyboard is edited.
    for _attempt in range(50):
        transcript = await harness.client.transcript(rex.id)
        shown = next(m for m in transcript["messages"] if m["message_id"] == settings["message_id"])
        labels = [b["text"] for row in shown["reply_markup"]["inline_keyboard"] for b in row]
        if any(label.startswith("✅") and "Read replies aloud" in label for label in labels):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"the switch stayed off: {labels}")

    reply = "**Paris** is the capital. See [the map](https://example.com)."
    await harness.client._call(
        "POST", "/providers/script", json={"provider": "openai", "reply": reply}
    )
    after = await harness.client.last_seq()
    await harness.client.send_text(rex.id, "Capital of France?")
    spoken = await harness.client.wait_for(
        lambda e: e["type"] == "bot_message" and "voice" in e["message"],
        chat_id=rex.id,
        after=after,
        wait=20,
    )
    voice = spoken["message"]["voice"]
    assert voice["mime_type"] == "audio/ogg"
    [request] = [
        r
        for r in await _audio_requests(harness, "/openai/v1/audio/speech")
        if r["json"]["input"] == "Paris is the capital. See the map."
    ]
    assert request["json"]["voice"] == "alloy" and request["json"]["response_format"] == "opus"
    # The voice message holds what the speech model made.
    file = await harness.client.http.get(
        f"{harness.sandbox.url}/sandbox/api/files/{voice['file_id']}"
    )
    assert file.content.startswith(b"OggS")
    # 34 characters at 1 000 kopecks per 1 000: 34 kopecks.
    assert await _voice_entries(harness, user_id, SPEECH.id) == [(-34, "other", 34)]
    async with harness.uow_factory() as uow:
        assert (await billing.get_balance(uow, user_id)).reserved == 0


async def test_a_spoken_reply_that_cannot_be_delivered_is_given_back(
    harness: BotHarness, person: PersonFactory
) -> None:
    una, user_id = await _ready(harness, person, "Una")
    async with harness.uow_factory() as uow:
        await chat.set_prefs(uow, user_id, read_aloud=True)
    await harness.client.fault("sendVoice", 400, chat_id=una.id, count=1)
    await harness.client._call(
        "POST", "/providers/script", json={"provider": "openai", "reply": "Short answer."}
    )
    after = await harness.client.last_seq()
    await harness.client.send_text(una.id, "Say something short")
    await harness.client.wait_for(_reply_to("Short answer."), chat_id=una.id, after=after, wait=20)
    # The speech was made and paid for, Telegram refused the voice message: the 13 kopecks
    # come back.
    for _attempt in range(50):
        entries = await _voice_entries(harness, user_id, SPEECH.id)
        if len(entries) == 2:
            break
        await asyncio.sleep(0.1)
    assert sorted(entries) == [(-13, "other", 13), (13, "other", None)]
    transcript = await harness.client.transcript(una.id)
    assert not any("voice" in m for m in transcript["messages"])
    async with harness.uow_factory() as uow:
        balance = await billing.get_balance(uow, user_id)
        assert (balance.reserved, await billing.check_consistency(uow, user_id)) == (0, True)


async def test_a_voice_note_during_a_reply_is_not_transcribed(
    harness: BotHarness, person: PersonFactory
) -> None:
    kit, user_id = await _ready(harness, person, "Kit")
    await harness.client._call(
        "POST",
        "/providers/script",
        json={"provider": "openai", "reply": "slow " * 40, "chunk_size": 5, "chunk_delay_ms": 100},
    )
    after = await harness.client.last_seq()
    await harness.client.send_text(kit.id, "Take your time")
    await harness.client.wait_for(
        lambda e: e["type"] == "draft" and bool(e.get("text")), chat_id=kit.id, after=after
    )
    before = len(await _audio_requests(harness, "/openai/v1/audio/transcriptions"))
    await harness.client.send_voice(kit.id, b"and another thing", duration=2)
    await harness.client.wait_for(
        _reply_to("still answering"), chat_id=kit.id, after=after, wait=15
    )
    assert len(await _audio_requests(harness, "/openai/v1/audio/transcriptions")) == before
    assert await _voice_entries(harness, user_id, TRANSCRIPTION.id) == []
