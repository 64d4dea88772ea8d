"""Adapters built once from the provider settings over the one shared httpx client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from core.providers.anthropic import AnthropicProvider
from core.providers.base import (
    ChatProvider,
    ImageProvider,
    SpeechProvider,
    TranscriptionProvider,
    VideoProvider,
)
from core.providers.embeddings import OpenAIEmbeddings
from core.providers.errors import ProviderNotConfigured
from core.providers.gemini import GeminiProvider
from core.providers.http import DEFAULT_TIMEOUT, RetryPolicy
from core.providers.metered import MeteredChat, MeteredImages, MeteredVideos
from core.providers.openai_audio import OpenAIAudioProvider
from core.providers.openai_compat import Dialect, OpenAICompatProvider
from core.providers.openai_images import OpenAIImageProvider
from core.providers.openai_video import OpenAIVideoProvider
from core.providers.settings import ProviderSettings, ProvidersSettings
from core.providers.stability import StabilityProvider

# Provider names as the catalogue uses them, by what they can do.
CHAT_PROVIDERS = frozenset({"openai", "anthropic", "google", "mistral", "deepseek", "openrouter"})
IMAGE_PROVIDERS = frozenset({"openai", "stability"})
VIDEO_PROVIDERS = frozenset({"video"})
# OpenAI's /audio endpoints (any OpenAI-compatible server behind the openai base URL).
TRANSCRIPTION_PROVIDERS = frozenset({"openai"})
SPEECH_PROVIDERS = frozenset({"openai"})
_DIALECTS: dict[str, Dialect] = {
    "openai": "openai",
    "mistral": "mistral",
    "openrouter": "openrouter",
    "deepseek": "compat",
}


class ProviderRegistry:
    def __init__(
        self,
        settings: ProvidersSettings,
        client: httpx.AsyncClient,
        *,
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        self._settings = settings
        self._client = client
        self._retry = retry
        self._timeout = timeout
        self._cache: dict[tuple[str, str], Any] = {}

    def configured(self, provider: str) -> bool:
        try:
            return self._settings.get(provider).api_key is not None
        except KeyError:
            return False

    def chat(self, provider: str) -> ChatProvider:
        if provider not in CHAT_PROVIDERS:
            raise ProviderNotConfigured(f"{provider} has no chat adapter", provider=provider)
        return self._build("chat", provider, self._chat)

    def image(self, provider: str) -> ImageProvider:
        if provider not in IMAGE_PROVIDERS:
            raise ProviderNotConfigured(f"{provider} has no image adapter", provider=provider)
        return self._build("image", provider, self._image)

    def video(self, provider: str = "video") -> VideoProvider:
        if provider not in VIDEO_PROVIDERS:
            raise ProviderNotConfigured(f"{provider} has no video adapter", provider=provider)
        return self._build("video", provider, self._video)

    def transcription(self, provider: str = "openai") -> TranscriptionProvider:
        if provider not in TRANSCRIPTION_PROVIDERS:
            raise ProviderNotConfigured(
                f"{provider} has no transcription adapter", provider=provider
            )
        return self._build("audio", provider, self._audio)

    def speech(self, provider: str = "openai") -> SpeechProvider:
        if provider not in SPEECH_PROVIDERS:
            raise ProviderNotConfigured(f"{provider} has no speech adapter", provider=provider)
        return self._build("audio", provider, self._audio)

    def embeddings(
        self, provider: str = "openai", *, model: str, dimensions: int
    ) -> OpenAIEmbeddings | None:
        """The embeddings endpoint of an OpenAI-compatible provider, if it has a key."""
        if not self.configured(provider):
            return None
        return self._build(
            f"embeddings:{model}:{dimensions}",
            provider,
            lambda name, settings: OpenAIEmbeddings(
                self._client, model=model, dimensions=dimensions, **self._common(name, settings)
            ),
        )

    def _build(self, kind: str, provider: str, make: Callable[[str, ProviderSettings], Any]) -> Any:
        key = (kind, provider)
        if key not in self._cache:
            settings = self._settings.get(provider)
            if settings.api_key is None:
                raise ProviderNotConfigured(f"{provider} has no API key", provider=provider)
            self._cache[key] = make(provider, settings)
        return self._cache[key]

    def _common(self, provider: str, settings: ProviderSettings) -> dict[str, Any]:
        return {
            "base_url": settings.base_url,
            "api_key": settings.key,
            "name": provider,
            "retry": self._retry,
            "timeout": self._timeout,
        }

    def _chat(self, provider: str, settings: ProviderSettings) -> ChatProvider:
        common = self._common(provider, settings)
        adapter: ChatProvider
        if provider == "anthropic":
            adapter = AnthropicProvider(self._client, **common)
        elif provider == "google":
            adapter = GeminiProvider(self._client, **common)
        else:
            dialect = _DIALECTS.get(provider, "compat")
            adapter = OpenAICompatProvider(self._client, dialect=dialect, **common)
        return MeteredChat(adapter)

    def _image(self, provider: str, settings: ProviderSettings) -> ImageProvider:
        common = self._common(provider, settings)
        if provider == "stability":
            return MeteredImages(StabilityProvider(self._client, **common))
        return MeteredImages(OpenAIImageProvider(self._client, **common))

    def _audio(self, provider: str, settings: ProviderSettings) -> OpenAIAudioProvider:
        return OpenAIAudioProvider(self._client, **self._common(provider, settings))

    def _video(self, provider: str, settings: ProviderSettings) -> VideoProvider:
        return MeteredVideos(OpenAIVideoProvider(self._client, **self._common(provider, settings)))
