"""Anthropic Messages streaming.

Usage comes in two places: ``message_start`` carries the input side, each ``message_delta``
carries cumulative totals (the last one wins). Anthropic's ``input_tokens`` excludes cache reads
and cache writes, so the input we report is the sum of the three, as Anthropic's docs define the
total. Thinking arrives as ``thinking_delta``; an ``error`` event may arrive at any point.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import httpx

from core.providers.base import (
    ChatMessage,
    ChatRequest,
    Finished,
    FinishReason,
    ImagePart,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    Usage,
    UsageReport,
)
from core.providers.errors import ContentFiltered
from core.providers.http import DEFAULT_TIMEOUT, ParsedError, ProviderHTTP, RetryPolicy
from core.providers.sse import iter_sse

API_VERSION = "2023-06-01"
# Anthropic requires max_tokens; this leaves room for thinking and a long answer.
DEFAULT_MAX_TOKENS = 8192
MIN_THINKING_BUDGET = 1024
# Models from before adaptive thinking take a fixed thinking budget instead; newer ones refuse it.
BUDGET_THINKING_PREFIXES = (
    "claude-3",
    "claude-sonnet-4-0",
    "claude-sonnet-4-2",
    "claude-opus-4-0",
    "claude-opus-4-1",
    "claude-opus-4-2",
    "claude-sonnet-4-5",
    "claude-haiku-4-5",
    "claude-opus-4-5",
)
WEB_SEARCH_TOOL = {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}

_FINISH = {
    "end_turn": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    "max_tokens": FinishReason.LENGTH,
    "model_context_window_exceeded": FinishReason.LENGTH,
}


def parse_anthropic_error(body: bytes) -> ParsedError:
    """``{"type": "error", "error": {"type", "message"}}``."""
    try:
        data = json.loads(body)
    except ValueError:
        return ParsedError(message=body[:300].decode("utf-8", "replace"))
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return ParsedError(message=str(data)[:300])
    return ParsedError(kind=str(error.get("type") or ""), message=str(error.get("message") or ""))


def _message(message: ChatMessage) -> dict[str, Any]:
    if isinstance(message.content, str):
        return {"role": message.role, "content": message.content}
    content: list[dict[str, Any]] = []
    for part in message.parts:
        if isinstance(part, ImagePart):
            source = {
                "type": "base64",
                "media_type": part.mime,
                "data": base64.b64encode(part.data).decode(),
            }
            content.append({"type": "image", "source": source})
        else:
            content.append({"type": "text", "text": part.text})
    return {"role": message.role, "content": content}


class _UsageTotals:
    def __init__(self) -> None:
        self.input = 0
        self.cache_read = 0
        self.cache_write = 0
        self.output = 0
        self.thinking = 0

    def update(self, raw: dict[str, Any]) -> None:
        # Fields present are running totals; absent ones keep their last value.
        if raw.get("input_tokens") is not None:
            self.input = int(raw["input_tokens"])
        if raw.get("cache_read_input_tokens") is not None:
            self.cache_read = int(raw["cache_read_input_tokens"])
        if raw.get("cache_creation_input_tokens") is not None:
            self.cache_write = int(raw["cache_creation_input_tokens"])
        if raw.get("output_tokens") is not None:
            self.output = int(raw["output_tokens"])
        details = raw.get("output_tokens_details") or {}
        if details.get("thinking_tokens") is not None:
            self.thinking = int(details["thinking_tokens"])

    def usage(self) -> Usage:
        return Usage(
            input_tokens=self.input + self.cache_read + self.cache_write,
            output_tokens=self.output,
            cached_input_tokens=self.cache_read,
            reasoning_tokens=self.thinking,
        )


class AnthropicProvider:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        api_key: str | None,
        name: str = "anthropic",
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        self.name = name
        headers = {"anthropic-version": API_VERSION}
        if api_key:
            headers["x-api-key"] = api_key
        self._http = ProviderHTTP(
            client,
            provider=name,
            base_url=base_url,
            headers=headers,
            secret=api_key,
            parse_error=parse_anthropic_error,
            retry=retry,
            timeout=timeout,
        )

    def build_body(self, request: ChatRequest) -> dict[str, Any]:
        max_tokens = request.max_output_tokens or DEFAULT_MAX_TOKENS
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [_message(m) for m in request.messages],
            "stream": True,
        }
        if request.system:
            body["system"] = request.system
        if request.reasoning:
            if request.model.startswith(BUDGET_THINKING_PREFIXES):
                budget = max(MIN_THINKING_BUDGET, max_tokens // 2)
                # The budget must stay below max_tokens and leave room for the answer.
                max_tokens = max(max_tokens, budget + MIN_THINKING_BUDGET)
                body["thinking"] = {"type": "enabled", "budget_tokens": budget}
            else:
                # Newer models omit the thinking text unless asked for a summary.
                body["thinking"] = {"type": "adaptive", "display": "summarized"}
        elif request.temperature is not None:
            # Thinking requires the default temperature.
            body["temperature"] = request.temperature
        body["max_tokens"] = max_tokens
        if request.web_search:
            body["tools"] = [dict(WEB_SEARCH_TOOL)]
        return body

    async def stream_chat(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        body = self.build_body(request)
        # The parser is closed explicitly, so an early stop finalises it before the response.
        async with (
            self._http.open(
                "POST", "messages", json=body, headers={"accept": "text/event-stream"}
            ) as response,
            aclosing(self._events(response)) as events,
        ):
            async for event in events:
                yield event

    async def _events(self, response: httpx.Response) -> AsyncGenerator[StreamEvent, None]:
        totals = _UsageTotals()
        stop_reason: str | None = None
        done = False
        try:
            async for sse in iter_sse(response.aiter_lines()):
                try:
                    data = json.loads(sse.data)
                except ValueError:
                    raise self._http.broken("an event that is not JSON") from None
                if not isinstance(data, dict):
                    raise self._http.broken("an event that is not an object")
                kind = sse.event if sse.event != "message" else str(data.get("type") or "")
                if kind == "message_start":
                    totals.update((data.get("message") or {}).get("usage") or {})
                elif kind == "content_block_start":
                    block = data.get("content_block") or {}
                    if block.get("type") == "text" and block.get("text"):
                        yield TextDelta(block["text"])
                    elif block.get("type") == "thinking" and block.get("thinking"):
                        yield ReasoningDelta(block["thinking"])
                elif kind == "content_block_delta":
                    delta = data.get("delta") or {}
                    if delta.get("type") == "text_delta" and delta.get("text"):
                        yield TextDelta(delta["text"])
                    elif delta.get("type") == "thinking_delta" and delta.get("thinking"):
                        yield ReasoningDelta(delta["thinking"])
                elif kind == "message_delta":
                    stop_reason = (data.get("delta") or {}).get("stop_reason") or stop_reason
                    totals.update(data.get("usage") or {})
                elif kind == "message_stop":
                    done = True
                    break
                elif kind == "error":
                    raise self._http.in_stream_error(parse_anthropic_error(sse.data.encode()))
                # ping and event types added later are ignored, as Anthropic asks.
        except httpx.TransportError as exc:
            raise self._http.broken(f"{type(exc).__name__} in the middle of the reply") from exc
        if not done:
            raise self._http.broken("the stream ended without message_stop")
        if stop_reason == "refusal":
            raise ContentFiltered(f"{self.name}: stop_reason refusal", provider=self.name)
        yield UsageReport(totals.usage())
        yield Finished(_FINISH.get(stop_reason or "", FinishReason.OTHER))
