"""Provider settings read from nested environment variables, and the sandbox preset."""

from __future__ import annotations

import httpx
import pytest
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.providers.registry import CHAT_PROVIDERS, IMAGE_PROVIDERS, ProviderRegistry
from core.providers.settings import ProviderSettings, ProvidersSettings, sandbox_providers


class AppSettings(BaseSettings):
    """How the app's settings mount the providers (``providers`` with ``__`` nesting)."""

    model_config = SettingsConfigDict(env_nested_delimiter="__", extra="ignore")
    providers: ProvidersSettings = Field(default_factory=ProvidersSettings)


def test_key_from_the_environment_keeps_the_real_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVIDERS__OPENAI__API_KEY", "sk-from-env")
    monkeypatch.setenv("PROVIDERS__MISTRAL__BASE_URL", "http://10.0.0.5:8000/v1/")

    providers = AppSettings().providers

    assert providers.openai.key == "sk-from-env"
    assert providers.openai.base_url == "https://api.openai.com/v1"
    assert providers.mistral.base_url == "http://10.0.0.5:8000/v1"
    assert providers.mistral.api_key is None
    assert providers.google.base_url == "https://generativelanguage.googleapis.com/v1beta"


def test_blank_key_means_not_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVIDERS__ANTHROPIC__API_KEY", " ")

    assert AppSettings().providers.anthropic.api_key is None


def test_keys_never_show_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVIDERS__STABILITY__API_KEY", "sk-very-secret-value")

    providers = AppSettings().providers

    assert "sk-very-secret-value" not in repr(providers)
    assert "sk-very-secret-value" not in str(providers.model_dump())


def test_base_url_must_be_http() -> None:
    with pytest.raises(ValidationError):
        ProviderSettings(base_url="ftp://example.com")


async def test_sandbox_preset_configures_every_provider_at_the_sandbox() -> None:
    providers = sandbox_providers("http://127.0.0.1:8081/")

    for name in ProvidersSettings.model_fields:
        settings = providers.get(name)
        assert settings.api_key is not None
        assert settings.base_url.startswith("http://127.0.0.1:8081/")
    async with httpx.AsyncClient() as client:
        registry = ProviderRegistry(providers, client)
        for name in CHAT_PROVIDERS:
            assert registry.chat(name).name == name
        for name in IMAGE_PROVIDERS:
            assert registry.image(name).name == name
        assert registry.video().name == "video"
