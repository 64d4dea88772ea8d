"""What every fake provider shares: the state key, request recording, reply plans, SSE output."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from sandbox.providers.state import Fault, ProvidersState, Script, chunks, count_tokens

PROVIDERS_STATE = web.AppKey("sandbox_providers", ProvidersState)


def state_of(request: web.Request) -> ProvidersState:
    return request.app[PROVIDERS_STATE]


def default_reply(model: str, said: str) -> str:
    said = " ".join(said.split())
    if len(said) > 200:
        said = said[:199] + "…"
    return (
        f"This reply comes from the NetRoom sandbox, not from {model}. "
        f"You said: {said or '(nothing)'}\n\n"
        "A little Markdown, so rendering gets exercised:\n\n"
        "- a **bold** list item\n"
        "- one with `inline code` and a [link](https://example.com)\n\n"
        "```python\n"
        'print("hello from the sandbox")\n'
        "```\n"
    )


def default_reasoning(said: str) -> str:
    said = " ".join(said.split())[:120]
    return (
        f"The sandbox pretends to think about: {said or '(nothing)'}. "
        "It will answer with its usual canned reply."
    )


@dataclass
class Plan:
    """What one fake call will do: the text to stream, in which pieces, and any fault."""

    reply: str
    reasoning: str | None
    chunk_size: int
    delay: float
    fault: Fault | None
    cached_tokens: int
    prompt_tokens: int

    def reply_chunks(self) -> list[str]:
        return chunks(self.reply, self.chunk_size)

    def reasoning_chunks(self) -> list[str]:
        return chunks(self.reasoning, self.chunk_size) if self.reasoning else []

    @property
    def reply_tokens(self) -> int:
        return count_tokens(self.reply)

    @property
    def reasoning_tokens(self) -> int:
        return count_tokens(self.reasoning) if self.reasoning else 0

    @property
    def output_tokens(self) -> int:
        return self.reply_tokens + self.reasoning_tokens

    async def pause(self) -> None:
        if self.delay > 0:
            await asyncio.sleep(self.delay)

    def faulted(self, kind: str, delivered: int) -> bool:
        """Whether the in-stream fault ``kind`` strikes now, after ``delivered`` chunks."""
        return (
            self.fault is not None
            and self.fault.kind == kind
            and delivered >= self.fault.after_chunks
        )


def make_plan(
    state: ProvidersState,
    *,
    provider: str,
    model: str,
    said: str,
    prompt_tokens: int,
    reasoning_requested: bool,
    script: Script | None,
) -> Plan:
    options = state.options
    reasoning: str | None = None
    if script is not None and script.reasoning is not None:
        reasoning = script.reasoning
    elif reasoning_requested:
        reasoning = default_reasoning(said)
    return Plan(
        reply=script.reply if script and script.reply is not None else default_reply(model, said),
        reasoning=reasoning,
        chunk_size=(script.chunk_size if script and script.chunk_size else options.chunk_size),
        delay=(
            script.chunk_delay_ms
            if script and script.chunk_delay_ms is not None
            else options.chunk_delay_ms
        )
        / 1000,
        fault=script.fault if script else None,
        cached_tokens=min(script.cached_tokens if script else 0, prompt_tokens),
        prompt_tokens=prompt_tokens,
    )


async def read_json(request: web.Request) -> Any:
    """The request's JSON body, or None when it is missing or malformed."""
    raw = await request.read()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def record(
    request: web.Request,
    provider: str,
    *,
    body: Any = None,
    form: dict[str, str] | None = None,
) -> None:
    state_of(request).record(
        {
            "provider": provider,
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "json": body,
            "form": form,
            "at": time.time(),
        }
    )


async def start_sse(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(
        status=200,
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
        },
    )
    await response.prepare(request)
    return response


async def send_event(
    response: web.StreamResponse,
    data: Any,
    *,
    event: str | None = None,
    newline: str = "\n",
) -> None:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}{newline}" if event else ""
    await response.write(f"{head}data: {payload}{newline}{newline}".encode())


def cut(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """Drop the connection in the middle of a chunked body, as a network failure would."""
    if request.transport is not None:
        request.transport.abort()
    return response


def error_headers(fault: Fault, *, millis: bool = False) -> dict[str, str]:
    if fault.retry_after is None:
        return {}
    headers = {"retry-after": str(fault.retry_after)}
    if millis:
        headers["retry-after-ms"] = str(fault.retry_after * 1000)
    return headers


def mask_key(key: str) -> str:
    """A key shown the way OpenAI echoes a wrong one: its ends and stars between."""
    if len(key) <= 8:
        return "*" * len(key)
    return f"{key[:4]}{'*' * (len(key) - 8)}{key[-4:]}"
