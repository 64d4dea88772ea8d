"""The chat's microphone: ``POST /api/transcriptions`` (multipart: ``file``, the recording, and
``duration``, its length in whole seconds as the browser measured it) → ``{text, minutes,
charged_kopecks}``. The recording is transcribed (billed per started minute, see
``core.services.voice``) and the text goes back to the composer for the user to read and send;
the audio itself is never stored.

An ``Idempotency-Key`` header (8-64 letters, digits, ``-`` or ``_``) names the recording: an upload
retried with the same key is charged once.
"""

from __future__ import annotations

import re
import secrets

from aiohttp import BodyPartReader, web
from pydantic import Field

from core.errors import InvalidInput, NotFound, UnsupportedMediaType
from core.services import voice
from webapp.contract import Answer, Body, Out, add_routes, operation
from webapp.keys import CONTEXT
from webapp.routes.api import user_id_of

MAX_DURATION = 3600
_KEY = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
# What MediaRecorder makes (Chrome and Firefox: WebM or Ogg with Opus; Safari: MP4 with AAC),
# and the audio files people pick.
AUDIO_TYPES = ("audio/", "video/webm", "video/mp4", "application/ogg")


async def _read_audio(part: BodyPartReader, limit: int) -> bytes:
    data = bytearray()
    while chunk := await part.read_chunk(64 * 1024):
        data.extend(chunk)
        if len(data) > limit:
            raise voice.AudioTooLarge("upload over the limit", limit_mb=limit // (1024 * 1024))
    return bytes(data)


class Recording(Body):
    """multipart/form-data: the recording in ``file``, and ``duration`` (whole seconds, as the
    browser measured it)."""

    file: bytes
    duration: int | None = Field(None, ge=0, le=MAX_DURATION)


class Transcript(Out):
    text: str
    minutes: int = Field(description="Started minutes billed.")
    charged_kopecks: int


@operation(
    "POST",
    "/api/transcriptions",
    summary="Transcribe a recording for the composer (billed per started minute)",
    raw_body=Recording,
    body_media="multipart/form-data",
    responses={200: Answer("The text heard.", Transcript)},
    errors={
        400: "Too large, a bad duration, or a bad Idempotency-Key header.",
        402: "Not enough money.",
        404: "Voice input is not available here.",
        415: "Not multipart/form-data, or not audio.",
    },
    description=(
        "An `Idempotency-Key` header (8-64 letters, digits, - or _) names the recording: an "
        "upload retried with the same key is charged once. The audio itself is never stored."
    ),
    tags=("chat",),
)
async def transcribe(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    if ctx.transcription is None or ctx.providers is None:
        raise NotFound("voice input is not available")
    if not request.content_type.startswith("multipart/"):
        raise UnsupportedMediaType(f"content type {request.content_type!r}")
    given_key = request.headers.get("Idempotency-Key")
    if given_key is not None and not _KEY.fullmatch(given_key):
        raise InvalidInput("Idempotency-Key must be 8-64 letters, digits, - or _")
    reader = await request.multipart()
    audio: bytes | None = None
    mime, filename, seconds = "audio/webm", "voice.webm", 0
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise InvalidInput("nested multipart")
        if part.name == "file":
            mime = (part.headers.get("Content-Type") or "audio/webm").split(";")[0].strip()
            if not mime.startswith(AUDIO_TYPES):
                raise UnsupportedMediaType(f"recording of type {mime!r}")
            filename = part.filename or filename
            audio = await _read_audio(part, voice.MAX_AUDIO_BYTES)
        elif part.name == "duration":
            raw = (await part.text()).strip()
            if not raw.isdigit() or int(raw) > MAX_DURATION:
                raise InvalidInput("duration must be whole seconds", fields=["duration"])
            seconds = int(raw)
        else:
            await part.release()
    if audio is None:
        raise InvalidInput("expected a multipart field named file", fields=["file"])
    key = given_key or secrets.token_urlsafe(12)
    heard = await voice.transcribe(
        ctx.uow_factory,
        ctx.redis,
        provider=ctx.providers.transcription(ctx.transcription.provider),
        model=ctx.transcription,
        user_id=user_id,
        audio=audio,
        mime=mime,
        filename=filename,
        seconds=seconds,
        key=f"voice:web:{user_id}:{key}",
        owner=ctx.owner,
    )
    return web.json_response(
        {"text": heard.text, "minutes": heard.minutes, "charged_kopecks": heard.charged}
    )


def setup(app: web.Application) -> None:
    add_routes(app, transcribe)
