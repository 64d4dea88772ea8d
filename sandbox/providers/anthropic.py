"""Anthropic's Messages API, streaming: ``message_start`` → ``ping`` → content blocks (thinking,
then text) → ``message_delta`` with cumulative usage → ``message_stop``; errors as
``{"type": "error", "error": {type, message}}``, in the body or as an ``error`` event."""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web

from sandbox.providers.common import (
    Plan,
    cut,
    error_headers,
    make_plan,
    read_json,
    record,
    send_event,
    start_sse,
    state_of,
)
from sandbox.providers.state import IMAGE_TOKENS, count_tokens

IN_STREAM_MESSAGES = {
    "overloaded_error": "Overloaded",
    "api_error": "Internal server error",
    "rate_limit_error": "Rate limited",
}


def error(
    status: int, type_: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = {
        "type": "error",
        "error": {"type": type_, "message": message},
        "request_id": f"req_{secrets.token_hex(12)}",
    }
    return web.json_response(body, status=status, headers=headers)


def _validate(request: web.Request, body: Any) -> web.Response | None:
    if not request.headers.get("anthropic-version"):
        return error(400, "invalid_request_error", "anthropic-version: header is required")
    if not isinstance(body, dict):
        return error(400, "invalid_request_error", "The request body is not valid JSON.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        return error(400, "invalid_request_error", "model: Field required")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        return error(400, "invalid_request_error", "max_tokens: Field required")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return error(400, "invalid_request_error", "messages: at least one message is required")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            return error(
                400,
                "invalid_request_error",
                f"messages.{i}.role: Input should be 'user' or 'assistant'",
            )
    if messages[0].get("role") != "user":
        return error(
            400, "invalid_request_error", 'messages: first message must use the "user" role'
        )
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            return error(
                400,
                "invalid_request_error",
                "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
            )
        if budget >= max_tokens:
            return error(
                400,
                "invalid_request_error",
                "`max_tokens` must be greater than `thinking.budget_tokens`.",
            )
    if body.get("stream") is not True:
        return error(
            400,
            "invalid_request_error",
            "The sandbox answers streaming requests only: set stream: true.",
        )
    return None


def _said_and_tokens(body: dict[str, Any]) -> tuple[str, int]:
    system = body.get("system")
    tokens = 0
    if isinstance(system, str):
        tokens += count_tokens(system)
    elif isinstance(system, list):
        tokens += sum(count_tokens(str(b.get("text") or "")) for b in system if isinstance(b, dict))
    said = ""
    for message in body["messages"]:
        content = message.get("content")
        texts: list[str] = []
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            for block in content:
                if not isinstance(block, dict):
                    continue
                if block.get("type") == "text":
                    texts.append(str(block.get("text") or ""))
                elif block.get("type") == "image":
                    tokens += IMAGE_TOKENS
        tokens += sum(count_tokens(t) for t in texts)
        if message["role"] == "user":
            said = "\n".join(texts)
    return said, tokens


async def messages(request: web.Request) -> web.StreamResponse:
    body = await read_json(request)
    record(request, "anthropic", body=body)
    key = request.headers.get("x-api-key", "").strip()
    if not key:
        return error(401, "authentication_error", "x-api-key header is required")
    invalid = _validate(request, body)
    if invalid is not None:
        return invalid
    model = body["model"]
    said, prompt_tokens = _said_and_tokens(body)
    thinking = body.get("thinking")
    state = state_of(request)
    plan = make_plan(
        state,
        provider="anthropic",
        model=model,
        said=said,
        prompt_tokens=prompt_tokens,
        reasoning_requested=isinstance(thinking, dict) and thinking.get("type") != "disabled",
        script=state.take_script("anthropic", model),
    )
    fault = plan.fault
    if fault is not None and fault.kind == "auth":
        return error(401, "authentication_error", "invalid x-api-key")
    if fault is not None and fault.kind == "429":
        return error(
            429,
            fault.error_type or "rate_limit_error",
            "This request would exceed your organization's rate limit. Please try again later.",
            headers=error_headers(fault),
        )
    if fault is not None and fault.kind == "500":
        kind = fault.error_type or "api_error"
        status = 529 if kind == "overloaded_error" else 500
        return error(status, kind, IN_STREAM_MESSAGES.get(kind, "Internal server error"))
    return await _stream(request, body, plan)


async def _stream(request: web.Request, body: dict[str, Any], plan: Plan) -> web.StreamResponse:
    model = body["model"]
    uncached = plan.prompt_tokens - plan.cached_tokens
    input_usage = {
        "input_tokens": uncached,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": plan.cached_tokens,
    }
    response = await start_sse(request)
    start = {
        "type": "message_start",
        "message": {
            "id": f"msg_{secrets.token_hex(12)}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {**input_usage, "output_tokens": 1, "service_tier": "standard"},
        },
    }
    await send_event(response, start, event="message_start")
    await send_event(response, {"type": "ping"}, event="ping")
    index = 0
    if plan.reasoning:
        block = {"type": "thinking", "thinking": "", "signature": ""}
        await send_event(
            response,
            {"type": "content_block_start", "index": index, "content_block": block},
            event="content_block_start",
        )
        for piece in plan.reasoning_chunks():
            await plan.pause()
            delta = {"type": "thinking_delta", "thinking": piece}
            await send_event(
                response,
                {"type": "content_block_delta", "index": index, "delta": delta},
                event="content_block_delta",
            )
        signature = {"type": "signature_delta", "signature": secrets.token_urlsafe(24)}
        await send_event(
            response,
            {"type": "content_block_delta", "index": index, "delta": signature},
            event="content_block_delta",
        )
        await send_event(
            response, {"type": "content_block_stop", "index": index}, event="content_block_stop"
        )
        index += 1
    await send_event(
        response,
        {
            "type": "content_block_start",
            "index": index,
            "content_block": {"type": "text", "text": ""},
        },
        event="content_block_start",
    )
    pieces = plan.reply_chunks()
    delivered = ""
    stop_reason = "end_turn"
    for i in range(len(pieces) + 1):
        if plan.faulted("cut", i):
            return cut(request, response)
        if plan.faulted("in_stream_error", i):
            assert plan.fault is not None
            kind = plan.fault.error_type or "overloaded_error"
            payload = {
                "type": "error",
                "error": {"type": kind, "message": IN_STREAM_MESSAGES.get(kind, "Error")},
            }
            await send_event(response, payload, event="error")
            await response.write_eof()
            return response
        if plan.faulted("content_filtered", i):
            stop_reason = "refusal"
            break
        if i == len(pieces):
            break
        await plan.pause()
        delta = {"type": "text_delta", "text": pieces[i]}
        await send_event(
            response,
            {"type": "content_block_delta", "index": index, "delta": delta},
            event="content_block_delta",
        )
        delivered += pieces[i]
        if i and i % 20 == 0:
            await send_event(response, {"type": "ping"}, event="ping")
    await send_event(
        response, {"type": "content_block_stop", "index": index}, event="content_block_stop"
    )
    usage: dict[str, Any] = {
        **input_usage,
        "output_tokens": count_tokens(delivered) + plan.reasoning_tokens,
    }
    if plan.reasoning:
        usage["output_tokens_details"] = {"thinking_tokens": plan.reasoning_tokens}
    await send_event(
        response,
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": usage,
        },
        event="message_delta",
    )
    await send_event(response, {"type": "message_stop"}, event="message_stop")
    await response.write_eof()
    return response


def setup_anthropic(app: web.Application) -> None:
    app.router.add_post("/anthropic/v1/messages", messages)
