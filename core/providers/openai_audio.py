"""OpenAI's audio endpoints, as any OpenAI-compatible server serves them.

``POST /audio/transcriptions`` takes a multipart upload (``model``, ``file``) and answers
``{"text": ..., "usage"?: {"type": "duration", "seconds": n} | {"type": "tokens", ...}}``.
``POST /audio/speech`` takes JSON ``{model, input, voice, response_format}`` and answers with the
audio bytes; we ask for ``opus`` (Ogg Opus), which Telegram shows as a voice message.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from core.providers.base import Speech, SpeechRequest, Transcript, TranscriptionRequest
from core.providers.errors import ProviderUnavailable
from core.providers.http import DEFAULT_TIMEOUT, RetryPolicy
from core.providers.openai_compat import openai_http


class OpenAIAudioProvider:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        api_key: str | None,
        name: str = "openai",
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        self.name = name
        self._http = openai_http(
            client, name=name, base_url=base_url, api_key=api_key, retry=retry, timeout=timeout
        )

    async def transcribe(self, request: TranscriptionRequest) -> Transcript:
        form = {"model": request.model, "response_format": "json"}
        if request.language:
            form["language"] = request.language
        async with self._http.open(
            "POST",
            "audio/transcriptions",
            data=form,
            files={"file": (request.filename, request.data, request.mime)},
        ) as response:
            body = await self._http.read(response)
        try:
            answer: Any = json.loads(body)
        except ValueError as exc:
            raise ProviderUnavailable(
                f"{self.name}: the transcription is not JSON", provider=self.name
            ) from exc
        if not isinstance(answer, dict) or not isinstance(answer.get("text"), str):
            raise ProviderUnavailable(f"{self.name}: no text in the answer", provider=self.name)
        usage = answer.get("usage")
        seconds: int | None = None
        if isinstance(usage, dict) and usage.get("type") == "duration":
            try:
                seconds = max(0, round(float(usage.get("seconds") or 0)))
            except (TypeError, ValueError):
                seconds = None
        return Transcript(text=answer["text"], seconds=seconds)

    async def speak(self, request: SpeechRequest) -> Speech:
        body = {
            "model": request.model,
            "input": request.text,
            "voice": request.voice,
            "response_format": "opus",
        }
        async with self._http.open("POST", "audio/speech", json=body) as response:
            data = await self._http.read(response)
            mime = response.headers.get("content-type", "audio/ogg").split(";")[0].strip()
        if not data:
            raise ProviderUnavailable(f"{self.name}: no audio in the answer", provider=self.name)
        return Speech(data=data, mime=mime or "audio/ogg")
