"""Chat Completions streaming: OpenAI, Mistral and OpenAI-compatible servers (DeepSeek,
OpenRouter, vLLM) through their base URLs.

The dialects differ in a few request fields and stream details:

- ``openai``: ``max_completion_tokens``, ``stream_options.include_usage`` (usage arrives in a
  last chunk with empty ``choices``), ``reasoning_effort``, ``web_search_options``.
- ``mistral``: ``max_tokens``; no ``stream_options`` (Mistral refuses unknown fields and always
  sends usage on its last chunk); reasoning models stream ``thinking`` content chunks.
- ``openrouter``: ``max_tokens``, ``reasoning: {enabled}``, web search as the ``web`` plugin;
  reasoning streams as ``delta.reasoning``.
- ``compat`` (DeepSeek, vLLM): ``max_tokens``; reasoning models stream
  ``delta.reasoning_content``; DeepSeek reports cache hits as ``prompt_cache_hit_tokens``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any, Literal

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
from core.providers.errors import ContentFiltered, ProviderBadRequest
from core.providers.http import DEFAULT_TIMEOUT, ParsedError, ProviderHTTP, RetryPolicy
from core.providers.sse import iter_sse

Dialect = Literal["openai", "mistral", "openrouter", "compat"]

_FINISH = {
    "stop": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "model_length": FinishReason.LENGTH,
}


def parse_openai_error(body: bytes) -> ParsedError:
    """OpenAI's ``{"error": {message, type, code}}``, Mistral's ``{"object": "error", message,
    type, code}`` and the looser shapes compatible servers use."""
    try:
        data = json.loads(body)
    except ValueError:
        return ParsedError(message=body[:300].decode("utf-8", "replace"))
    if not isinstance(data, dict):
        return ParsedError(message=str(data)[:300])
    error = data.get("error")
    source = error if isinstance(error, dict) else data
    kind = source.get("code") or source.get("type") or ""
    message = source.get("message") or source.get("detail") or (error if error else "")
    if not isinstance(message, str):
        message = json.dumps(message)[:300]
    return ParsedError(kind=str(kind), message=message)


def _image_url(part: ImagePart) -> str:
    return f"data:{part.mime};base64,{base64.b64encode(part.data).decode()}"


def _message(message: ChatMessage) -> dict[str, Any]:
    if isinstance(message.content, str):
        return {"role": message.role, "content": message.content}
    content: list[dict[str, Any]] = []
    for part in message.parts:
        if isinstance(part, ImagePart):
            content.append({"type": "image_url", "image_url": {"url": _image_url(part)}})
        else:
            content.append({"type": "text", "text": part.text})
    return {"role": message.role, "content": content}


def _usage(raw: dict[str, Any]) -> Usage:
    prompt_details = raw.get("prompt_tokens_details") or {}
    completion_details = raw.get("completion_tokens_details") or {}
    cached = prompt_details.get("cached_tokens") or raw.get("prompt_cache_hit_tokens") or 0
    return Usage(
        input_tokens=int(raw.get("prompt_tokens") or 0),
        output_tokens=int(raw.get("completion_tokens") or 0),
        cached_input_tokens=int(cached),
        reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
    )


def _content_events(content: Any) -> list[StreamEvent]:
    """Mistral may send content as a list of chunks, reasoning models' thinking among them."""
    if isinstance(content, str):
        return [TextDelta(content)] if content else []
    events: list[StreamEvent] = []
    if isinstance(content, list):
        for chunk in content:
            if not isinstance(chunk, dict):
                continue
            if chunk.get("type") == "text" and chunk.get("text"):
                events.append(TextDelta(chunk["text"]))
            elif chunk.get("type") == "thinking":
                for inner in chunk.get("thinking") or []:
                    if isinstance(inner, dict) and inner.get("text"):
                        events.append(ReasoningDelta(inner["text"]))
    return events


def openai_http(
    client: httpx.AsyncClient,
    *,
    name: str,
    base_url: str,
    api_key: str | None,
    retry: RetryPolicy | None,
    timeout: httpx.Timeout,
) -> ProviderHTTP:
    """The HTTP side of any OpenAI-style API (chat, images, video, audio, embeddings): Bearer
    key, the key kept out of errors and logs, OpenAI's error bodies read."""
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    return ProviderHTTP(
        client,
        provider=name,
        base_url=base_url,
        headers=headers,
        secret=api_key,
        parse_error=parse_openai_error,
        retry=retry,
        timeout=timeout,
    )


class OpenAICompatProvider:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        name: str,
        base_url: str,
        api_key: str | None,
        dialect: Dialect = "openai",
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        self.name = name
        self.dialect = dialect
        self._http = openai_http(
            client, name=name, base_url=base_url, api_key=api_key, retry=retry, timeout=timeout
        )

    def build_body(self, request: ChatRequest) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages.extend(_message(m) for m in request.messages)
        body: dict[str, Any] = {"model": request.model, "messages": messages, "stream": True}
        if self.dialect != "mistral":
            body["stream_options"] = {"include_usage": True}
        if request.max_output_tokens is not None:
            key = "max_completion_tokens" if self.dialect == "openai" else "max_tokens"
            body[key] = request.max_output_tokens
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.reasoning:
            if self.dialect == "openai":
                body["reasoning_effort"] = "medium"
            elif self.dialect == "openrouter":
                body["reasoning"] = {"enabled": True}
            # Mistral and DeepSeek/vLLM reason by model choice and need no field.
        if request.web_search:
            if self.dialect == "openai":
                body["web_search_options"] = {}
            elif self.dialect == "openrouter":
                body["plugins"] = [{"id": "web"}]
            else:
                raise ProviderBadRequest(
                    f"{self.name}: web search is not offered through chat completions",
                    provider=self.name,
                )
        return body

    async def stream_chat(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        body = self.build_body(request)
        # The parser is closed explicitly, so an early stop finalises it before the response.
        async with (
            self._http.open(
                "POST", "chat/completions", json=body, headers={"accept": "text/event-stream"}
            ) as response,
            aclosing(self._events(response)) as events,
        ):
            async for event in events:
                yield event

    async def _events(self, response: httpx.Response) -> AsyncGenerator[StreamEvent, None]:
        finish: str | None = None
        usage: Usage | None = None
        done = False
        try:
            async for sse in iter_sse(response.aiter_lines()):
                if sse.data.startswith("[DONE]"):
                    done = True
                    break
                try:
                    chunk = json.loads(sse.data)
                except ValueError:
                    raise self._http.broken("a chunk that is not JSON") from None
                if not isinstance(chunk, dict):
                    raise self._http.broken("a chunk that is not an object")
                if "error" in chunk or chunk.get("object") == "error":
                    raise self._http.in_stream_error(parse_openai_error(sse.data.encode()))
                if chunk.get("usage"):
                    usage = _usage(chunk["usage"])
                for choice in chunk.get("choices") or []:
                    if choice.get("index", 0) != 0:
                        continue
                    delta = choice.get("delta") or {}
                    for key in ("reasoning_content", "reasoning"):
                        text = delta.get(key)
                        if isinstance(text, str) and text:
                            yield ReasoningDelta(text)
                    for event in _content_events(delta.get("content")):
                        yield event
                    if isinstance(delta.get("refusal"), str) and delta["refusal"]:
                        yield TextDelta(delta["refusal"])
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
        except httpx.TransportError as exc:
            raise self._http.broken(f"{type(exc).__name__} in the middle of the reply") from exc
        if not done:
            raise self._http.broken("the stream ended without [DONE]")
        if finish == "content_filter":
            raise ContentFiltered(f"{self.name}: finish_reason content_filter", provider=self.name)
        if finish == "error":
            # Mistral ends a generation that failed on its side this way.
            raise self._http.broken("finish_reason error")
        if usage is not None:
            yield UsageReport(usage)
        yield Finished(_FINISH.get(finish or "", FinishReason.OTHER))
