"""Chat Completions as OpenAI, Mistral and OpenAI-compatible servers stream it, and OpenAI's
image, video, embeddings and audio (``sandbox.providers.audio``) endpoints.

Flavours: ``openai`` (usage in a last chunk with empty choices when ``stream_options.
include_usage``; reasoning counted but never streamed; ``obfuscation`` padding), ``mistral``
(unknown fields refused with 422; usage always on the last content chunk; reasoning models stream
``thinking`` content chunks), ``compat`` (DeepSeek/OpenRouter style: ``reasoning_content`` or,
when the request carries ``reasoning``, ``reasoning`` deltas; DeepSeek's cache hit fields).
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import secrets
import struct
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from sandbox.providers.common import (
    Plan,
    cut,
    error_headers,
    make_plan,
    mask_key,
    read_json,
    record,
    send_event,
    start_sse,
    state_of,
)
from sandbox.providers.png import make_png
from sandbox.providers.state import IMAGE_TOKENS, VideoJob, count_tokens

MISTRAL_FIELDS = frozenset(
    {
        "model",
        "messages",
        "temperature",
        "top_p",
        "max_tokens",
        "stream",
        "stop",
        "random_seed",
        "response_format",
        "tools",
        "tool_choice",
        "presence_penalty",
        "frequency_penalty",
        "n",
        "prediction",
        "parallel_tool_calls",
        "prompt_mode",
        "safe_prompt",
    }
)
ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). You can obtain an API key from "
    "https://platform.openai.com/account/api-keys."
)
SERVER_ERROR = "The server had an error while processing your request. Sorry about that!"
IMAGE_OUTPUT_TOKENS = {"low": 272, "medium": 1056, "high": 4160, "auto": 1056}
VIDEO_SIZES = frozenset({"720x1280", "1280x720", "1024x1792", "1792x1024"})
VIDEO_SECONDS = frozenset({"4", "8", "12"})
# Every video the fake makes: a real, playable MP4 of a few KB (3 s, 320x180, 12 fps, H.264
# constrained baseline, moov first; a sun crossing an evening sky, drawn with Pillow and encoded
# once with PyAV's libx264), so the result can be watched in Telegram and the web gallery.
MP4_BLOB = (Path(__file__).parent / "sample.mp4").read_bytes()
EMBEDDING_DIMENSIONS = 256
MAX_EMBEDDING_DIMENSIONS = 3072
MAX_EMBEDDING_INPUTS = 2048
_WORD = re.compile(r"\w+")


def error(
    flavour: str,
    status: int,
    message: str,
    *,
    type_: str,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    if flavour == "mistral":
        body: dict[str, Any] = {
            "object": "error",
            "message": message,
            "type": type_,
            "param": None,
            "code": code,
        }
    else:
        body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return web.json_response(body, status=status, headers=headers)


def bearer(request: web.Request) -> str | None:
    value = request.headers.get("Authorization", "")
    scheme, _, key = value.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return None
    return key.strip()


def fault_response(flavour: str, plan: Plan, key: str) -> web.Response | None:
    """The HTTP error a scripted fault answers with before any streaming, if any."""
    fault = plan.fault
    if fault is None:
        return None
    if fault.kind == "auth":
        if flavour == "mistral":
            return error(flavour, 401, "Unauthorized", type_="authentication_error")
        return error(
            flavour,
            401,
            f"Incorrect API key provided: {mask_key(key)}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            type_="invalid_request_error",
            code="invalid_api_key",
        )
    if fault.kind == "429":
        wait = f" Please try again in {fault.retry_after}s." if fault.retry_after else ""
        return error(
            flavour,
            429,
            f"Rate limit reached for requests.{wait}",
            type_="rate_limit_error" if flavour == "mistral" else "requests",
            code=fault.error_type or "rate_limit_exceeded",
            headers=error_headers(fault, millis=flavour == "openai"),
        )
    if fault.kind == "500":
        return error(flavour, 500, SERVER_ERROR, type_=fault.error_type or "server_error")
    return None


def _said_and_tokens(body: dict[str, Any]) -> tuple[str, int]:
    """The last user text and the prompt's token count (text plus a flat rate per image)."""
    tokens = 0
    said = ""
    for message in body["messages"]:
        content = message.get("content")
        texts: list[str] = []
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            for part in content:
                if not isinstance(part, dict):
                    continue
                if part.get("type") == "text":
                    texts.append(str(part.get("text") or ""))
                elif part.get("type") == "image_url":
                    tokens += IMAGE_TOKENS
        tokens += sum(count_tokens(t) for t in texts)
        if message.get("role") == "user":
            said = "\n".join(texts)
    return said, tokens


def _validate(flavour: str, body: Any) -> web.Response | None:
    if not isinstance(body, dict):
        return error(
            flavour,
            400,
            "We could not parse the JSON body of your request.",
            type_="invalid_request_error",
        )
    if flavour == "mistral":
        extra = sorted(set(body) - MISTRAL_FIELDS)
        if extra:
            detail = [
                {
                    "type": "extra_forbidden",
                    "loc": ["body", name],
                    "msg": "Extra inputs are not permitted",
                    "input": body[name],
                }
                for name in extra
            ]
            return web.json_response(
                {
                    "object": "error",
                    "message": {"detail": detail},
                    "type": "invalid_request_error",
                    "param": None,
                    "code": None,
                },
                status=422,
            )
    if not isinstance(body.get("model"), str) or not body["model"]:
        return error(
            flavour, 400, "you must provide a model parameter", type_="invalid_request_error"
        )
    messages = body.get("messages")
    if (
        not isinstance(messages, list)
        or not messages
        or not all(isinstance(m, dict) and m.get("role") in ROLES for m in messages)
    ):
        return error(
            flavour,
            400,
            "'messages' must be a non-empty array of role/content objects",
            type_="invalid_request_error",
            code="invalid_value",
        )
    if body.get("stream") is not True:
        return error(
            flavour,
            400,
            "The sandbox answers streaming requests only: set stream: true.",
            type_="invalid_request_error",
        )
    return None


def _usage(flavour: str, plan: Plan, completion: int, reasoning: int) -> dict[str, Any]:
    prompt = plan.prompt_tokens
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if flavour == "openai":
        usage["prompt_tokens_details"] = {"cached_tokens": plan.cached_tokens, "audio_tokens": 0}
        usage["completion_tokens_details"] = {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        }
    elif flavour == "compat":
        usage["prompt_tokens_details"] = {"cached_tokens": plan.cached_tokens}
        usage["prompt_cache_hit_tokens"] = plan.cached_tokens
        usage["prompt_cache_miss_tokens"] = prompt - plan.cached_tokens
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return usage


async def chat_completions(request: web.Request, flavour: str) -> web.StreamResponse:
    body = await read_json(request)
    record(request, flavour, body=body)
    key = bearer(request)
    if key is None:
        if flavour == "mistral":
            return error(flavour, 401, "Unauthorized", type_="authentication_error")
        return error(flavour, 401, NO_KEY, type_="invalid_request_error")
    invalid = _validate(flavour, body)
    if invalid is not None:
        return invalid
    model = body["model"]
    said, prompt_tokens = _said_and_tokens(body)
    if flavour == "openai":
        wants_reasoning = "reasoning_effort" in body
    elif flavour == "mistral":
        wants_reasoning = model.startswith("magistral")
    else:
        wants_reasoning = "reasoning" in body or "reason" in model
    state = state_of(request)
    plan = make_plan(
        state,
        provider=flavour,
        model=model,
        said=said,
        prompt_tokens=prompt_tokens,
        reasoning_requested=wants_reasoning,
        script=state.take_script(flavour, model),
    )
    failed = fault_response(flavour, plan, key)
    if failed is not None:
        return failed
    return await _stream(request, flavour, body, plan)


async def _stream(
    request: web.Request, flavour: str, body: dict[str, Any], plan: Plan
) -> web.StreamResponse:
    options = body.get("stream_options") or {}
    include_usage = flavour == "mistral" or options.get("include_usage") is True
    obfuscate = flavour == "openai" and options.get("include_obfuscation", True) is not False
    cid = f"chatcmpl-{secrets.token_hex(12)}"
    created = int(time.time())
    model = body["model"]

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if flavour != "mistral":
            out["system_fingerprint"] = "fp_sandbox"
            if include_usage:
                out["usage"] = None
        if obfuscate:
            out["obfuscation"] = secrets.token_urlsafe(6)
        return out

    response = await start_sse(request)
    await send_event(response, chunk({"role": "assistant", "content": ""}))
    streamed_reasoning = flavour != "openai"
    if streamed_reasoning:
        for piece in plan.reasoning_chunks():
            await plan.pause()
            if flavour == "mistral":
                thinking = [{"type": "thinking", "thinking": [{"type": "text", "text": piece}]}]
                await send_event(response, chunk({"content": thinking}))
            else:
                field = "reasoning" if "reasoning" in body else "reasoning_content"
                await send_event(response, chunk({"content": None, field: piece}))
    pieces = plan.reply_chunks()
    delivered = ""
    finish = "stop"
    for i in range(len(pieces) + 1):
        if plan.faulted("cut", i):
            return cut(request, response)
        if plan.faulted("in_stream_error", i):
            fault = plan.fault
            assert fault is not None
            if flavour == "mistral":
                payload: dict[str, Any] = {
                    "object": "error",
                    "message": "Internal server error",
                    "type": fault.error_type or "server_error",
                    "param": None,
                    "code": None,
                }
            else:
                payload = {
                    "error": {
                        "message": SERVER_ERROR,
                        "type": fault.error_type or "server_error",
                        "param": None,
                        "code": None,
                    }
                }
            await send_event(response, payload)
            await response.write_eof()
            return response
        if plan.faulted("content_filtered", i):
            finish = "content_filter"
            break
        if i == len(pieces):
            break
        await plan.pause()
        await send_event(response, chunk({"content": pieces[i]}))
        delivered += pieces[i]
    reasoning = plan.reasoning_tokens
    completion = count_tokens(delivered) + reasoning
    usage = _usage(flavour, plan, completion, reasoning)
    if flavour == "mistral":
        last = chunk({"content": ""}, finish)
        last["usage"] = usage
        await send_event(response, last)
    else:
        await send_event(response, chunk({}, finish))
        if include_usage:
            tail = chunk({})
            tail["choices"] = []
            tail["usage"] = usage
            await send_event(response, tail)
    await send_event(response, "[DONE]")
    await response.write_eof()
    return response


async def images_generations(request: web.Request) -> web.StreamResponse:
    body = await read_json(request)
    record(request, "openai", body=body)
    key = bearer(request)
    if key is None:
        return error("openai", 401, NO_KEY, type_="invalid_request_error")
    if not isinstance(body, dict) or not isinstance(body.get("prompt"), str) or not body["prompt"]:
        return error(
            "openai",
            400,
            "'prompt' is a required property",
            type_="invalid_request_error",
            code="missing_required_parameter",
        )
    model = str(body.get("model") or "dall-e-2")
    size = str(body.get("size") or "auto")
    if size == "auto":
        size = "1024x1024"
    try:
        width, height = (int(n) for n in size.split("x"))
    except ValueError:
        return error(
            "openai",
            400,
            f"Invalid value: '{size}'. Supported sizes look like 1024x1024.",
            type_="invalid_request_error",
            code="invalid_value",
        )
    if not (16 <= width <= 2048 and 16 <= height <= 2048):
        return error(
            "openai",
            400,
            f"Invalid size '{size}' for the sandbox (16-2048 per side).",
            type_="invalid_request_error",
            code="invalid_value",
        )
    state = state_of(request)
    script = state.take_script("openai", model)
    plan = make_plan(
        state,
        provider="openai",
        model=model,
        said=body["prompt"],
        prompt_tokens=count_tokens(body["prompt"]),
        reasoning_requested=False,
        script=script,
    )
    failed = fault_response("openai", plan, key)
    if failed is not None:
        return failed
    if plan.fault is not None and plan.fault.kind == "content_filtered":
        return error(
            "openai",
            400,
            "Your request was rejected as a result of our safety system. Your prompt may contain "
            "text that is not allowed by our safety system.",
            type_="invalid_request_error",
            code=plan.fault.error_type or "content_policy_violation",
        )
    png = make_png(width, height, seed=secrets.randbelow(2**32))
    created = int(time.time())
    if model.startswith("dall-e"):
        item: dict[str, Any] = {"revised_prompt": body["prompt"]}
        if body.get("response_format") == "b64_json":
            item["b64_json"] = base64.b64encode(png).decode()
        else:
            name = f"{secrets.token_hex(16)}.png"
            state.files[name] = png
            base = f"{request.scheme}://{request.host}"
            item["url"] = f"{base}/sandbox/api/providers/files/{name}"
        return web.json_response({"created": created, "data": [item]})
    quality = str(body.get("quality") or "auto")
    output_tokens = IMAGE_OUTPUT_TOKENS.get(quality, IMAGE_OUTPUT_TOKENS["auto"])
    input_tokens = plan.prompt_tokens
    return web.json_response(
        {
            "created": created,
            "data": [{"b64_json": base64.b64encode(png).decode()}],
            "background": "opaque",
            "output_format": "png",
            "quality": "medium" if quality == "auto" else quality,
            "size": size,
            "usage": {
                "input_tokens": input_tokens,
                "input_tokens_details": {"text_tokens": input_tokens, "image_tokens": 0},
                "output_tokens": output_tokens,
                "total_tokens": input_tokens + output_tokens,
            },
        }
    )


async def create_video(request: web.Request) -> web.StreamResponse:
    form: dict[str, str] | None = None
    if request.content_type.startswith("multipart/"):
        posted = await request.post()
        form = {k: str(v) for k, v in posted.items() if isinstance(v, str)}
        body: Any = dict(form)
        record(request, "openai", form=form)
    else:
        body = await read_json(request)
        record(request, "openai", body=body)
    key = bearer(request)
    if key is None:
        return error("openai", 401, NO_KEY, type_="invalid_request_error")
    if not isinstance(body, dict) or not body.get("prompt"):
        return error(
            "openai",
            400,
            "'prompt' is a required property",
            type_="invalid_request_error",
            code="missing_required_parameter",
        )
    model = str(body.get("model") or "sora-2")
    seconds = str(body.get("seconds") or "4")
    size = str(body.get("size") or "720x1280")
    if seconds not in VIDEO_SECONDS:
        return error(
            "openai",
            400,
            f"Invalid value: '{seconds}'. Supported values are: '4', '8', and '12'.",
            type_="invalid_request_error",
            code="invalid_value",
        )
    if size not in VIDEO_SIZES:
        return error(
            "openai",
            400,
            f"Invalid value: '{size}'. Supported values are: "
            "'720x1280', '1280x720', '1024x1792', and '1792x1024'.",
            type_="invalid_request_error",
            code="invalid_value",
        )
    state = state_of(request)
    script = state.take_script("openai", model)
    plan = make_plan(
        state,
        provider="openai",
        model=model,
        said=str(body["prompt"]),
        prompt_tokens=0,
        reasoning_requested=False,
        script=script,
    )
    failed = fault_response("openai", plan, key)
    if failed is not None:
        return failed
    fail = None
    if plan.fault is not None and plan.fault.kind in ("content_filtered", "in_stream_error"):
        moderated = plan.fault.kind == "content_filtered"
        fail = {
            "code": plan.fault.error_type
            or ("moderation_blocked" if moderated else "video_generation_failed"),
            "message": "Your request was blocked by our moderation system."
            if moderated
            else "Video generation failed.",
        }
    polls = script.video_polls if script and script.video_polls else state.options.video_polls
    job = VideoJob(
        id=state.new_id("video_"),
        model=model,
        prompt=str(body["prompt"]),
        seconds=seconds,
        size=size,
        polls_needed=max(1, polls),
        fail=fail,
    )
    state.videos[job.id] = job
    return web.json_response(job.to_json())


def _video(request: web.Request) -> VideoJob | web.Response:
    if bearer(request) is None:
        return error("openai", 401, NO_KEY, type_="invalid_request_error")
    job = state_of(request).videos.get(request.match_info["video_id"])
    if job is None:
        return error(
            "openai",
            404,
            f"Video with id '{request.match_info['video_id']}' not found.",
            type_="invalid_request_error",
            code="not_found",
        )
    return job


async def retrieve_video(request: web.Request) -> web.StreamResponse:
    record(request, "openai")
    job = _video(request)
    if isinstance(job, web.Response):
        return job
    job.polls += 1
    return web.json_response(job.to_json())


async def video_content(request: web.Request) -> web.StreamResponse:
    record(request, "openai")
    job = _video(request)
    if isinstance(job, web.Response):
        return job
    if job.status != "completed":
        return error(
            "openai",
            404,
            "Video is not ready yet; wait until its status is completed.",
            type_="invalid_request_error",
            code="video_not_ready",
        )
    return web.Response(body=MP4_BLOB, content_type="video/mp4")


def embed(text: str, dimensions: int) -> list[float]:
    """A unit vector of the text's hashed, signed word counts: deterministic, and texts that
    share words point the same way, so retrieval over the sandbox behaves like the real thing."""
    vector = [0.0] * dimensions
    words = _WORD.findall(text.lower()) or [text]
    for word in words:
        value = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
        vector[value % dimensions] += 1.0 if value >> 63 else -1.0
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0:
        # Words that cancel out in one bucket: any fixed unit vector will do.
        vector[0], norm = 1.0, 1.0
    return [v / norm for v in vector]


def _embeddings_request(body: Any) -> tuple[str, list[str], int, str] | web.Response:
    """(model, inputs, dimensions, encoding format), or OpenAI's 400 for a malformed request."""

    def invalid(message: str, code: str | None = "invalid_value") -> web.Response:
        return error("openai", 400, message, type_="invalid_request_error", code=code)

    if not isinstance(body, dict):
        return invalid("We could not parse the JSON body of your request.", None)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return invalid("you must provide a model parameter", None)
    raw = body.get("input")
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or not inputs:
        return invalid("'input' must be a string or a non-empty array of strings.")
    if len(inputs) > MAX_EMBEDDING_INPUTS:
        return invalid(f"'input' must have at most {MAX_EMBEDDING_INPUTS} items.")
    if not all(isinstance(item, str) for item in inputs):
        return invalid("'input' must be a string or an array of strings.")
    if not all(inputs):
        return invalid("'input' cannot contain an empty string.")
    dimensions = body.get("dimensions", EMBEDDING_DIMENSIONS)
    if (
        isinstance(dimensions, bool)
        or not isinstance(dimensions, int)
        or not 1 <= dimensions <= MAX_EMBEDDING_DIMENSIONS
    ):
        return invalid(f"'dimensions' must be an integer from 1 to {MAX_EMBEDDING_DIMENSIONS}.")
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        return invalid("'encoding_format' must be 'float' or 'base64'.")
    return model, inputs, dimensions, str(encoding)


async def embeddings(request: web.Request) -> web.StreamResponse:
    body = await read_json(request)
    record(request, "openai", body=body)
    key = bearer(request)
    if key is None:
        return error("openai", 401, NO_KEY, type_="invalid_request_error")
    parsed = _embeddings_request(body)
    if isinstance(parsed, web.Response):
        return parsed
    model, inputs, dimensions, encoding = parsed
    tokens = sum(count_tokens(text) for text in inputs)
    state = state_of(request)
    plan = make_plan(
        state,
        provider="openai",
        model=model,
        said=inputs[0],
        prompt_tokens=tokens,
        reasoning_requested=False,
        script=state.take_script("openai", model),
    )
    failed = fault_response("openai", plan, key)
    if failed is not None:
        return failed
    data: list[dict[str, Any]] = []
    for index, text in enumerate(inputs):
        vector = embed(text, dimensions)
        packed: list[float] | str = vector
        if encoding == "base64":
            packed = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": packed})
    return web.json_response(
        {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


async def sandbox_file(request: web.Request) -> web.StreamResponse:
    data = state_of(request).files.get(request.match_info["name"])
    if data is None:
        raise web.HTTPNotFound()
    return web.Response(body=data, content_type="image/png")


def setup_openai(app: web.Application) -> None:
    # The audio endpoints reuse this module's errors and faults.
    from sandbox.providers import audio

    async def openai_chat(request: web.Request) -> web.StreamResponse:
        return await chat_completions(request, "openai")

    async def mistral_chat(request: web.Request) -> web.StreamResponse:
        return await chat_completions(request, "mistral")

    async def compat_chat(request: web.Request) -> web.StreamResponse:
        return await chat_completions(request, "compat")

    app.router.add_post("/openai/v1/chat/completions", openai_chat)
    app.router.add_post("/mistral/v1/chat/completions", mistral_chat)
    app.router.add_post("/compat/v1/chat/completions", compat_chat)
    app.router.add_post("/openai/v1/images/generations", images_generations)
    app.router.add_post("/openai/v1/embeddings", embeddings)
    app.router.add_post("/openai/v1/videos", create_video)
    app.router.add_get("/openai/v1/videos/{video_id}", retrieve_video)
    app.router.add_get("/openai/v1/videos/{video_id}/content", video_content)
    app.router.add_get("/sandbox/api/providers/files/{name}", sandbox_file)
    app.router.add_post("/openai/v1/audio/transcriptions", audio.transcriptions)
    app.router.add_post("/openai/v1/audio/speech", audio.speech)
