"""The adapters as the rest of the service gets them from the registry: each call counted by
provider and model, its failures by error code, and the tokens the provider reported
(core/metrics.py). Adapters stay unaware of metrics."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator

from core import metrics
from core.errors import DomainError
from core.providers.base import (
    ChatProvider,
    ChatRequest,
    ImageProvider,
    ImageRequest,
    ImageResult,
    StreamEvent,
    Usage,
    UsageReport,
    VideoContent,
    VideoJob,
    VideoProvider,
    VideoRequest,
)


def _failed(provider: str, model: str, exc: BaseException) -> None:
    code = exc.code if isinstance(exc, DomainError) else type(exc).__name__
    metrics.PROVIDER_ERRORS.labels(provider, model, code).inc()


def _tokens(provider: str, model: str, usage: Usage) -> None:
    if usage.input_tokens:
        metrics.PROVIDER_TOKENS.labels(provider, model, "input").inc(usage.input_tokens)
    if usage.output_tokens:
        metrics.PROVIDER_TOKENS.labels(provider, model, "output").inc(usage.output_tokens)


class MeteredChat:
    def __init__(self, inner: ChatProvider) -> None:
        self.inner = inner
        self.name = inner.name

    async def stream_chat(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        metrics.PROVIDER_CALLS.labels(self.name, request.model, "chat").inc()
        try:
            async with contextlib.aclosing(self.inner.stream_chat(request)) as events:
                async for event in events:
                    if type(event) is UsageReport:
                        _tokens(self.name, request.model, event.usage)
                    yield event
        except GeneratorExit:
            raise
        except Exception as exc:
            _failed(self.name, request.model, exc)
            raise


class MeteredImages:
    def __init__(self, inner: ImageProvider) -> None:
        self.inner = inner
        self.name = inner.name

    async def generate_image(self, request: ImageRequest) -> ImageResult:
        metrics.PROVIDER_CALLS.labels(self.name, request.model, "image").inc()
        try:
            result = await self.inner.generate_image(request)
        except Exception as exc:
            _failed(self.name, request.model, exc)
            raise
        if result.usage is not None:
            _tokens(self.name, request.model, result.usage)
        return result


class MeteredVideos:
    """Counts the videos asked for (a submit); polls and downloads count only when they fail."""

    def __init__(self, inner: VideoProvider) -> None:
        self.inner = inner
        self.name = inner.name

    async def submit_video(self, request: VideoRequest) -> VideoJob:
        metrics.PROVIDER_CALLS.labels(self.name, request.model, "video").inc()
        try:
            return await self.inner.submit_video(request)
        except Exception as exc:
            _failed(self.name, request.model, exc)
            raise

    async def poll_video(self, job_id: str) -> VideoJob:
        try:
            return await self.inner.poll_video(job_id)
        except Exception as exc:
            _failed(self.name, "-", exc)
            raise

    async def download_video(self, job_id: str) -> VideoContent:
        try:
            return await self.inner.download_video(job_id)
        except Exception as exc:
            _failed(self.name, "-", exc)
            raise
