"""Google Gemini ``streamGenerateContent?alt=sse``.

The stream has no terminator: it ends when the connection closes, so a reply is complete only if
a chunk carried a ``finishReason``. ``usageMetadata`` holds running totals on every chunk; the
last one is reported once at the end. The key goes in the ``x-goog-api-key`` header, never in the
URL (URLs end up in access logs). Gemini bills thoughts as output, so output is
``candidatesTokenCount + thoughtsTokenCount``.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any
from urllib.parse import quote

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

FILTERED = frozenset(
    {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}
)
_FINISH = {"STOP": FinishReason.STOP, "MAX_TOKENS": FinishReason.LENGTH}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)s$")


def parse_gemini_error(body: bytes) -> ParsedError:
    """``{"error": {code, message, status, details: [ErrorInfo{reason}, RetryInfo{...}]}}``;
    an invalid key is a 400 whose ErrorInfo reason is API_KEY_INVALID."""
    try:
        data = json.loads(body)
    except ValueError:
        return ParsedError(message=body[:300].decode("utf-8", "replace"))
    if isinstance(data, list) and data:
        data = data[0]
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return ParsedError(message=str(data)[:300])
    kind = str(error.get("status") or "")
    retry_after: float | None = None
    for detail in error.get("details") or []:
        if not isinstance(detail, dict):
            continue
        if detail.get("reason"):
            kind = str(detail["reason"])
        delay = _DURATION.match(str(detail.get("retryDelay") or ""))
        if delay:
            retry_after = float(delay.group(1))
    return ParsedError(kind=kind, message=str(error.get("message") or ""), retry_after=retry_after)


def _content(message: ChatMessage) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    for part in message.parts:
        if isinstance(part, ImagePart):
            data = base64.b64encode(part.data).decode()
            parts.append({"inlineData": {"mimeType": part.mime, "data": data}})
        else:
            parts.append({"text": part.text})
    return {"role": "model" if message.role == "assistant" else "user", "parts": parts}


def _usage(raw: dict[str, Any]) -> Usage:
    thoughts = int(raw.get("thoughtsTokenCount") or 0)
    prompt = int(raw.get("promptTokenCount") or 0) + int(raw.get("toolUsePromptTokenCount") or 0)
    return Usage(
        input_tokens=prompt,
        output_tokens=int(raw.get("candidatesTokenCount") or 0) + thoughts,
        cached_input_tokens=int(raw.get("cachedContentTokenCount") or 0),
        reasoning_tokens=thoughts,
    )


class GeminiProvider:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        api_key: str | None,
        name: str = "google",
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        self.name = name
        headers = {"x-goog-api-key": api_key} if api_key else {}
        self._http = ProviderHTTP(
            client,
            provider=name,
            base_url=base_url,
            headers=headers,
            secret=api_key,
            parse_error=parse_gemini_error,
            retry=retry,
            timeout=timeout,
        )

    def build_body(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"contents": [_content(m) for m in request.messages]}
        if request.system:
            body["systemInstruction"] = {"parts": [{"text": request.system}]}
        config: dict[str, Any] = {}
        if request.max_output_tokens is not None:
            config["maxOutputTokens"] = request.max_output_tokens
        if request.temperature is not None:
            config["temperature"] = request.temperature
        if request.reasoning:
            config["thinkingConfig"] = {"includeThoughts": True}
        if config:
            body["generationConfig"] = config
        if request.web_search:
            body["tools"] = [{"googleSearch": {}}]
        return body

    async def stream_chat(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        path = f"models/{quote(request.model, safe='.-_')}:streamGenerateContent"
        # The parser is closed explicitly, so an early stop finalises it before the response.
        async with (
            self._http.open(
                "POST",
                path,
                json=self.build_body(request),
                params={"alt": "sse"},
                headers={"accept": "text/event-stream"},
            ) as response,
            aclosing(self._events(response)) as events,
        ):
            async for event in events:
                yield event

    async def _events(self, response: httpx.Response) -> AsyncGenerator[StreamEvent, None]:
        usage: dict[str, Any] | None = None
        finish: str | None = None
        try:
            async for sse in iter_sse(response.aiter_lines()):
                try:
                    chunk = json.loads(sse.data)
                except ValueError:
                    raise self._http.broken("a chunk that is not JSON") from None
                if not isinstance(chunk, dict):
                    raise self._http.broken("a chunk that is not an object")
                if "error" in chunk:
                    raise self._http.in_stream_error(parse_gemini_error(sse.data.encode()))
                blocked = (chunk.get("promptFeedback") or {}).get("blockReason")
                if blocked:
                    raise ContentFiltered(
                        f"{self.name}: prompt blocked, {blocked}", provider=self.name
                    )
                if chunk.get("usageMetadata"):
                    usage = chunk["usageMetadata"]
                candidates = chunk.get("candidates") or []
                if not candidates:
                    continue
                candidate = candidates[0]
                for part in (candidate.get("content") or {}).get("parts") or []:
                    text = part.get("text")
                    if not isinstance(text, str) or not text:
                        continue  # e.g. a part with only a thoughtSignature
                    yield ReasoningDelta(text) if part.get("thought") else TextDelta(text)
                if candidate.get("finishReason"):
                    finish = str(candidate["finishReason"])
        except httpx.TransportError as exc:
            raise self._http.broken(f"{type(exc).__name__} in the middle of the reply") from exc
        if finish is None:
            raise self._http.broken("the stream ended without a finishReason")
        if finish in FILTERED:
            raise ContentFiltered(f"{self.name}: finishReason {finish}", provider=self.name)
        if usage is not None:
            yield UsageReport(_usage(usage))
        yield Finished(_FINISH.get(finish, FinishReason.OTHER))
