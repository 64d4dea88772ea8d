"""OpenAI's audio endpoints: ``POST /v1/audio/transcriptions`` (multipart ``model``, ``file``)
and ``POST /v1/audio/speech`` (JSON ``{model, input, voice, response_format}``).

The transcript is deterministic: a script for the model (``POST /sandbox/api/providers/script``
naming the model) gives it; else audio that is valid UTF-8 text is "heard" as that text (so a
test can say what a voice message says); else a fixed phrase naming the size. Usage is reported
as OpenAI does for whisper: ``{"type": "duration", "seconds": n}``, one second per 4 000 bytes
(about 32 kbit/s Opus), at least one. Speech answers a small Ogg stream (it starts with an Ogg
page header) whose bytes carry the text's length.
"""

from __future__ import annotations

import math
import struct
from typing import Any

from aiohttp import web

from sandbox.providers.common import make_plan, read_json, record, state_of
from sandbox.providers.openai import NO_KEY, bearer, error, fault_response
from sandbox.providers.state import ProvidersState, Script

MAX_AUDIO_BYTES = 25 * 1024 * 1024
MAX_SPEECH_INPUT = 4096
VOICES = frozenset(
    {"alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse"}
)
SPEECH_FORMATS = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}
BYTES_PER_SECOND = 4000


def _error(status: int, message: str, *, code: str | None = None) -> web.Response:
    return web.json_response(
        {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": code,
            }
        },
        status=status,
    )


def _script_for(state: ProvidersState, model: str) -> Script | None:
    """A script naming exactly this model (scripts for any model are left to chat calls)."""
    for index, script in enumerate(state.scripts):
        if script.provider in (None, "openai") and script.model == model:
            script.times -= 1
            if script.times <= 0:
                del state.scripts[index]
            return script
    return None


def _heard(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return f"Sandbox transcript of {len(data)} bytes of audio."
    if not all(c.isprintable() or c.isspace() for c in text):
        return f"Sandbox transcript of {len(data)} bytes of audio."
    return text.strip()


async def transcriptions(request: web.Request) -> web.StreamResponse:
    if not request.content_type.startswith("multipart/"):
        record(request, "openai")
        return _error(400, "Could not parse multipart form")
    form: dict[str, str] = {}
    data: bytes | None = None
    filename = ""
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        name = getattr(part, "name", None)
        if name == "file":
            filename = getattr(part, "filename", None) or ""
            data = bytes(await part.read())  # type: ignore[union-attr]
        elif name:
            form[name] = await part.text()  # type: ignore[union-attr]
    record(
        request, "openai", form={**form, "file_bytes": str(len(data or b"")), "filename": filename}
    )
    key = bearer(request)
    if key is None:
        return error("openai", 401, NO_KEY, type_="invalid_request_error")
    model = form.get("model")
    if not model:
        return _error(400, "you must provide a model parameter")
    if data is None:
        return _error(400, "'file' is a required property", code="missing_required_parameter")
    if not data:
        return _error(400, "Audio file is empty.", code="invalid_value")
    if len(data) > MAX_AUDIO_BYTES:
        return _error(413, "Maximum content size limit (26214400) exceeded.")
    state = state_of(request)
    script = _script_for(state, model)
    plan = make_plan(
        state,
        provider="openai",
        model=model,
        said="",
        prompt_tokens=0,
        reasoning_requested=False,
        script=script,
    )
    failed = fault_response("openai", plan, key)
    if failed is not None:
        return failed
    text = script.reply if script is not None and script.reply is not None else _heard(data)
    seconds = max(1, math.ceil(len(data) / BYTES_PER_SECOND))
    body: dict[str, Any] = {"text": text, "usage": {"type": "duration", "seconds": seconds}}
    if form.get("response_format") == "text":
        return web.Response(text=text, content_type="text/plain")
    return web.json_response(body)


def ogg_blob(text: str) -> bytes:
    """Bytes shaped like the start of an Ogg Opus stream: an Ogg page with an OpusHead packet,
    then the text's length, so different texts give different audio."""
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, 312, 48000, 0, 0)
    page = b"OggS" + struct.pack("<BBqIIIB", 0, 2, 0, 1, 0, 0, 1) + bytes([len(head)]) + head
    return page + f"NetRoom sandbox speech, {len(text)} characters.".encode()


async def speech(request: web.Request) -> web.StreamResponse:
    body = await read_json(request)
    record(request, "openai", body=body)
    key = bearer(request)
    if key is None:
        return error("openai", 401, NO_KEY, type_="invalid_request_error")
    if not isinstance(body, dict):
        return _error(400, "We could not parse the JSON body of your request.")
    model, text, voice = body.get("model"), body.get("input"), body.get("voice")
    if not isinstance(model, str) or not model:
        return _error(400, "you must provide a model parameter")
    if not isinstance(text, str) or not text:
        return _error(400, "'input' is a required property", code="missing_required_parameter")
    if len(text) > MAX_SPEECH_INPUT:
        return _error(
            400,
            f"'input' is too long: {len(text)} characters, at most {MAX_SPEECH_INPUT}.",
            code="string_above_max_length",
        )
    if voice not in VOICES:
        return _error(400, f"Invalid value for 'voice': {voice!r}.", code="invalid_value")
    response_format = str(body.get("response_format") or "mp3")
    if response_format not in SPEECH_FORMATS:
        return _error(400, f"Invalid value: '{response_format}'.", code="invalid_value")
    state = state_of(request)
    plan = make_plan(
        state,
        provider="openai",
        model=model,
        said=text,
        prompt_tokens=0,
        reasoning_requested=False,
        script=_script_for(state, model),
    )
    failed = fault_response("openai", plan, key)
    if failed is not None:
        return failed
    return web.Response(body=ogg_blob(text), content_type=SPEECH_FORMATS[response_format])
