"""Voice through the real OpenAI audio adapter and the sandbox's fakes, billed on real Postgres:
a recording is charged once however often it is transcribed, by the longer of the reported and
the billed duration; a provider failure gives the hold back; speech is charged per character of
what is read, and what is read is the reply without its Markdown."""

from __future__ import annotations

import secrets

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from core.providers.errors import ProviderAuthFailed
from core.providers.registry import ProviderRegistry
from core.services import billing, voice
from db.engine import UnitOfWorkFactory
from tests.factories import register
from tests.providers.conftest import Fake

HEARD = voice.TranscriptionTerms("t", "openai", "whisper-x", minute_price=100, markup_percent=20)
SPOKEN = voice.SpeechTerms("s", "openai", "tts-x", voice="nova", chars_price_1k=1000)


async def _funded(factory: UnitOfWorkFactory, amount: int = 10_000) -> int:
    async with factory() as uow:
        user_id = (await register(uow)).user.id
        async with uow.transaction():
            await billing.credit(
                uow, user_id=user_id, amount=amount, category="topup", key=secrets.token_hex(8)
            )
    return user_id


async def _money(factory: UnitOfWorkFactory, user_id: int) -> tuple[int, int, bool]:
    async with factory() as uow:
        balance = await billing.get_balance(uow, user_id)
        return balance.balance, balance.reserved, await billing.check_consistency(uow, user_id)


async def test_the_same_recording_transcribed_twice_is_charged_once(
    engine: AsyncEngine, redis: Redis, registry: ProviderRegistry, fake: Fake
) -> None:
    factory = UnitOfWorkFactory.for_engine(engine)
    user_id = await _funded(factory)
    key = f"voice:test:{secrets.token_hex(4)}"
    results = [
        await voice.transcribe(
            factory,
            redis,
            provider=registry.transcription(),
            model=HEARD,
            user_id=user_id,
            audio=b"turn the lights off",
            mime="audio/ogg",
            filename="voice.ogg",
            seconds=30,
            key=key,
        )
        for _ in range(2)
    ]
    assert [r.text for r in results] == ["turn the lights off"] * 2
    # One minute at 100 kopecks plus 20 %: 120, charged by the first call only.
    assert [r.charged for r in results] == [120, 0]
    assert await _money(factory, user_id) == (10_000 - 120, 0, True)
    uploads = [r for r in await fake.requests("openai") if r["path"].endswith("transcriptions")]
    assert [u["form"]["model"] for u in uploads] == ["whisper-x", "whisper-x"]


async def test_a_recording_longer_than_reported_is_billed_for_its_billed_length(
    engine: AsyncEngine, redis: Redis, registry: ProviderRegistry
) -> None:
    factory = UnitOfWorkFactory.for_engine(engine)
    user_id = await _funded(factory)
    # The fake bills one second per 4 000 bytes: 250 000 bytes are 63 s, two started minutes,
    # though the client said 10 s.
    result = await voice.transcribe(
        factory,
        redis,
        provider=registry.transcription(),
        model=HEARD,
        user_id=user_id,
        audio=b"\x00\x01" * 125_000,
        mime="audio/webm",
        filename="voice.webm",
        seconds=10,
        key=secrets.token_hex(8),
    )
    assert (result.minutes, result.charged) == (2, 240)
    assert result.text.startswith("Sandbox transcript of 250000 bytes")
    assert await _money(factory, user_id) == (10_000 - 240, 0, True)


async def test_a_failed_transcription_gives_the_hold_back(
    engine: AsyncEngine, redis: Redis, registry: ProviderRegistry, fake: Fake
) -> None:
    factory = UnitOfWorkFactory.for_engine(engine)
    user_id = await _funded(factory)
    await fake.script(provider="openai", model="whisper-x", fault={"kind": "auth"})
    with pytest.raises(ProviderAuthFailed):
        await voice.transcribe(
            factory,
            redis,
            provider=registry.transcription(),
            model=HEARD,
            user_id=user_id,
            audio=b"hello",
            mime="audio/ogg",
            filename="voice.ogg",
            seconds=5,
            key=secrets.token_hex(8),
        )
    assert await _money(factory, user_id) == (10_000, 0, True)


async def test_a_recording_over_the_limit_is_refused_before_anything_is_held(
    engine: AsyncEngine, redis: Redis, registry: ProviderRegistry, fake: Fake
) -> None:
    factory = UnitOfWorkFactory.for_engine(engine)
    user_id = await _funded(factory)
    with pytest.raises(voice.AudioTooLarge) as refused:
        await voice.transcribe(
            factory,
            redis,
            provider=registry.transcription(),
            model=HEARD,
            user_id=user_id,
            audio=b"x" * 2048,
            mime="audio/ogg",
            filename="voice.ogg",
            seconds=5,
            key=secrets.token_hex(8),
            max_bytes=1024,
        )
    assert refused.value.code == "audio_too_large"
    assert await fake.requests("openai") == []
    assert await _money(factory, user_id) == (10_000, 0, True)


async def test_speech_reads_the_reply_without_markdown_and_charges_per_character(
    engine: AsyncEngine, redis: Redis, registry: ProviderRegistry, fake: Fake
) -> None:
    factory = UnitOfWorkFactory.for_engine(engine)
    user_id = await _funded(factory)
    reply = "# Plan\n\n**Step one**: see [docs](https://x.test).\n\n```python\nprint(1)\n```\nDone."
    spoken = await voice.speak(
        factory,
        redis,
        provider=registry.speech(),
        model=SPOKEN,
        user_id=user_id,
        text=reply,
        key=secrets.token_hex(8),
    )
    assert spoken is not None and spoken.data.startswith(b"OggS")
    [request] = [r for r in await fake.requests("openai") if r["path"].endswith("speech")]
    read = "Plan\nStep one: see docs.\nDone."
    assert request["json"] == {
        "model": "tts-x",
        "input": read,
        "voice": "nova",
        "response_format": "opus",
    }
    assert (spoken.characters, spoken.charged) == (len(read), len(read))
    assert await _money(factory, user_id) == (10_000 - len(read), 0, True)


def test_a_long_reply_is_cut_to_what_the_speech_model_takes_at_a_sentence() -> None:
    text = "A sentence that goes on. " * 400
    read = voice.speakable(text)
    assert len(read) <= voice.MAX_SPEECH_CHARS
    assert read.endswith("on.")
    assert voice.speakable("```\ncode only\n```") == ""


async def test_the_audio_fakes_refuse_what_openai_refuses(fake: Fake) -> None:
    base = f"{fake.url}/openai/v1/audio"
    auth = {"Authorization": "Bearer sk-sandbox-openai"}
    no_key = await fake.http.post(f"{base}/speech", json={"model": "tts-1", "input": "hi"})
    assert no_key.status_code == 401
    cases = [
        ({"model": "tts-1", "input": "hi", "voice": "robot"}, "voice"),
        ({"model": "tts-1", "input": "x" * 4097, "voice": "alloy"}, "too long"),
        ({"model": "tts-1", "input": "", "voice": "alloy"}, "input"),
    ]
    for body, said in cases:
        refused = await fake.http.post(f"{base}/speech", json=body, headers=auth)
        assert refused.status_code == 400 and said in refused.json()["error"]["message"]
    no_file = await fake.http.post(
        f"{base}/transcriptions",
        data={"model": "whisper-1"},
        files={"x": ("a", b"1")},
        headers=auth,
    )
    assert no_file.status_code == 400
    assert "'file' is a required property" in no_file.json()["error"]["message"]
    heard = await fake.http.post(
        f"{base}/transcriptions",
        data={"model": "whisper-1"},
        files={"file": ("v.ogg", "Привет".encode(), "audio/ogg")},
        headers=auth,
    )
    assert heard.json() == {"text": "Привет", "usage": {"type": "duration", "seconds": 1}}
