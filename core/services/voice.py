"""Voice: recordings become text (transcription), and replies can be read aloud (speech).

Both are priced through the ledger like every other request: the price is held before the
provider is asked (and committed), the provider is called outside any transaction, and the hold
is settled in a transaction of its own (``settlement.settle_or_keep``: a settlement the database
cannot take right now is kept in Redis and applied later) or released when the provider fails.

Invariants:

- one billed operation per recording: the idempotency key names the recording (a Telegram chat
  and message, or a web upload), so the same message handled twice (an update delivered again)
  is transcribed again but charged once;
- a transcription is priced per started minute of audio: the longer of the duration the client
  reported (Telegram's, or the web app's recording time) and the one the provider billed;
- speech is priced per character of the text actually sent to the provider (at most
  ``MAX_SPEECH_CHARS``), from the price per 1 000, rounded up to a whole kopeck;
- audio is never stored: it passes through memory to the provider and is dropped. The
  transcript is stored only as the user's prompt, like any typed message (14 days).
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from redis.asyncio import Redis

from core.errors import InvalidInput
from core.i18n import N_
from core.providers.base import (
    SpeechProvider,
    SpeechRequest,
    Transcript,
    TranscriptionProvider,
    TranscriptionRequest,
)
from core.services import billing, settlement
from db.uow import UnitOfWork

UowFactory = Callable[[], UnitOfWork]
T = TypeVar("T")

# The Bot API lets bots download files up to 20 MB; the web app takes recordings up to the same.
MAX_AUDIO_BYTES = 20 * 1024 * 1024
# OpenAI's /audio/speech takes at most 4 096 characters.
MAX_SPEECH_CHARS = 4096
CATEGORY = "other"


class AudioTooLarge(InvalidInput):
    code = "audio_too_large"
    msgid = N_("This recording is too large. Please send one under {limit_mb} MB.")


class EmptyAudio(InvalidInput):
    code = "empty_audio"
    msgid = N_("The recording is empty. Please record it again.")


@dataclass(frozen=True, slots=True)
class TranscriptionTerms:
    id: str
    provider: str
    provider_model: str
    # Kopecks per started minute of audio, before markup.
    minute_price: int
    markup_percent: int = 0


@dataclass(frozen=True, slots=True)
class SpeechTerms:
    id: str
    provider: str
    provider_model: str
    voice: str
    # Kopecks per 1 000 characters, before markup.
    chars_price_1k: int
    markup_percent: int = 0


@dataclass(frozen=True, slots=True)
class Transcription:
    text: str
    minutes: int
    # What this call charged (0 when the recording was paid for before, or is free).
    charged: int


@dataclass(frozen=True, slots=True)
class SpokenReply:
    data: bytes
    mime: str
    characters: int
    charged: int

    def __repr__(self) -> str:
        return f"SpokenReply(mime={self.mime!r}, size={len(self.data)}, charged={self.charged})"


def minutes_of(seconds: int) -> int:
    """Started minutes: a 61-second note is two minutes, a 0-second one is one."""
    return max(1, math.ceil(max(0, seconds) / 60))


_CODE_BLOCK = re.compile(r"```.*?(```|$)", re.DOTALL)
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MARKS = re.compile(r"(^|\s)#{1,6}\s+|[*_`~>|]+", re.MULTILINE)


def speakable(text: str) -> str:
    """A Markdown reply as it is read aloud: no code blocks, link text without the address, no
    emphasis or heading marks; cut to what the provider takes."""
    text = _CODE_BLOCK.sub(" ", text)
    text = _LINK.sub(r"\1", text)
    text = _MARKS.sub(lambda m: m.group(1) or "", text)
    lines = (re.sub(r"[ \t]+", " ", line).strip() for line in text.splitlines())
    text = "\n".join(line for line in lines if line)
    if len(text) > MAX_SPEECH_CHARS:
        cut = text[:MAX_SPEECH_CHARS]
        # End at the last sentence or word that fits.
        end = max(cut.rfind(". "), cut.rfind("\n"))
        text = cut[: end + 1] if end > MAX_SPEECH_CHARS // 2 else cut.rsplit(" ", 1)[0]
    return text


async def _billed(
    uow_factory: UowFactory,
    redis: Redis,
    *,
    user_id: int,
    model_id: str,
    key: str,
    owner: str | None,
    markup_percent: int,
    estimate: int,
    call: Callable[[], Awaitable[T]],
    measure: Callable[[T], int],
    meta: dict[str, object],
) -> tuple[T, int]:
    """Hold the user's price of ``estimate`` (the provider's cost in kopecks), make the call,
    then settle for the user's price of ``measure(result)``, or release on failure. Returns
    the result and what this call charged."""
    async with uow_factory() as uow:
        balance = await billing.get_balance(uow, user_id)
        discount = balance.discount_percent

        def price(cost: int) -> int:
            return billing.price(cost, markup_percent=markup_percent, discount_percent=discount)

        estimate = price(estimate)
        reservation: billing.ReservationDTO | None = None
        if estimate > 0:
            async with uow.transaction():
                reservation = await billing.reserve(
                    uow,
                    user_id=user_id,
                    amount=estimate,
                    key=f"{key}:hold",
                    model_id=model_id,
                    owner=owner,
                )
            if not reservation.applied and reservation.status != "held":
                # Paid for before (the same recording handled again): done once, charged once.
                reservation = None
    try:
        result = await call()
    except BaseException:
        if reservation is not None:
            async with uow_factory() as uow, uow.transaction():
                await billing.release(uow, reservation_id=reservation.id)
        raise
    if reservation is None:
        return result, 0
    cost = measure(result)
    amount = price(cost)
    entry = await settlement.settle_or_keep(
        uow_factory,
        redis,
        reservation=reservation,
        amount=amount,
        category=CATEGORY,
        key=f"{key}:settle",
        charge=billing.Charge(
            cost=cost,
            markup_percent=markup_percent,
            discount_percent=discount,
            model_id=model_id,
            meta=meta,
        ),
    )
    return result, amount if entry is None else -entry.amount


async def transcribe(
    uow_factory: UowFactory,
    redis: Redis,
    *,
    provider: TranscriptionProvider,
    model: TranscriptionTerms,
    user_id: int,
    audio: bytes,
    mime: str,
    filename: str,
    seconds: int,
    key: str,
    owner: str | None = None,
    max_bytes: int = MAX_AUDIO_BYTES,
) -> Transcription:
    """The recording's words, charged per started minute (see the module's invariants).
    ``key`` names the recording; raises InsufficientFunds before the provider is asked."""
    if not audio:
        raise EmptyAudio("no audio")
    if len(audio) > max_bytes:
        raise AudioTooLarge(f"{len(audio)} bytes", limit_mb=max_bytes // (1024 * 1024))

    def measure(result: Transcript) -> int:
        return model.minute_price * minutes_of(max(seconds, result.seconds or 0))

    result, charged = await _billed(
        uow_factory,
        redis,
        user_id=user_id,
        model_id=model.id,
        key=key,
        owner=owner,
        markup_percent=model.markup_percent,
        estimate=model.minute_price * minutes_of(seconds),
        call=lambda: provider.transcribe(
            TranscriptionRequest(
                model=model.provider_model, data=audio, mime=mime, filename=filename
            )
        ),
        measure=measure,
        meta={"service": "transcription"},
    )
    reported = result.seconds or 0
    return Transcription(
        text=result.text.strip(), minutes=minutes_of(max(seconds, reported)), charged=charged
    )


async def speak(
    uow_factory: UowFactory,
    redis: Redis,
    *,
    provider: SpeechProvider,
    model: SpeechTerms,
    user_id: int,
    text: str,
    key: str,
    owner: str | None = None,
) -> SpokenReply | None:
    """A reply read aloud, charged for the characters sent; None when nothing in it can be
    read (only code, say). Raises InsufficientFunds before the provider is asked."""
    spoken = speakable(text)
    if not spoken:
        return None
    cost = -(-len(spoken) * model.chars_price_1k // 1000)

    result, charged = await _billed(
        uow_factory,
        redis,
        user_id=user_id,
        model_id=model.id,
        key=key,
        owner=owner,
        markup_percent=model.markup_percent,
        estimate=cost,
        call=lambda: provider.speak(
            SpeechRequest(model=model.provider_model, text=spoken, voice=model.voice)
        ),
        measure=lambda _: cost,
        meta={"service": "speech", "characters": len(spoken)},
    )
    return SpokenReply(result.data, result.mime, len(spoken), charged)


async def refund_speech(
    uow_factory: UowFactory, *, user_id: int, model_id: str, amount: int, key: str
) -> None:
    """Give back what a spoken reply cost when it could not be delivered (money is settled for
    what the user received). Once per ``key``, the key ``speak`` was called with."""
    if amount <= 0:
        return
    async with uow_factory() as uow, uow.transaction():
        await billing.credit(
            uow,
            user_id=user_id,
            amount=amount,
            category=CATEGORY,
            key=f"{key}:refund",
            kind="refund",
            charge=billing.Charge(
                model_id=model_id, meta={"service": "speech", "undelivered": True}
            ),
        )
