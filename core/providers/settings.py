"""Provider keys and base URLs, one nested model per provider.

Mounted on the app settings as ``providers``, they read ``PROVIDERS__OPENAI__API_KEY``,
``PROVIDERS__OPENAI__BASE_URL`` and likewise for every provider. Each provider has its own class
so that setting only the key keeps the real default base URL.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr, field_validator


class ProviderSettings(BaseModel):
    # None: the provider is not configured and its models are unavailable.
    api_key: SecretStr | None = None
    base_url: str

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("a provider base URL must start with https:// or http://")
        return value.rstrip("/")

    @field_validator("api_key")
    @classmethod
    def _blank_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        # An empty PROVIDERS__X__API_KEY= line in .env means "not configured".
        if value is not None and not value.get_secret_value().strip():
            return None
        return value

    @property
    def key(self) -> str | None:
        return self.api_key.get_secret_value() if self.api_key else None


class OpenAISettings(ProviderSettings):
    base_url: str = "https://api.openai.com/v1"


class AnthropicSettings(ProviderSettings):
    base_url: str = "https://api.anthropic.com/v1"


class GoogleSettings(ProviderSettings):
    base_url: str = "https://generativelanguage.googleapis.com/v1beta"


class MistralSettings(ProviderSettings):
    base_url: str = "https://api.mistral.ai/v1"


class DeepSeekSettings(ProviderSettings):
    base_url: str = "https://api.deepseek.com/v1"


class OpenRouterSettings(ProviderSettings):
    base_url: str = "https://openrouter.ai/api/v1"


class StabilitySettings(ProviderSettings):
    base_url: str = "https://api.stability.ai/v2beta"


class VideoSettings(ProviderSettings):
    # Any provider with OpenAI's Videos API shape.
    base_url: str = "https://api.openai.com/v1"


class ProvidersSettings(BaseModel):
    openai: OpenAISettings = Field(default_factory=OpenAISettings)
    anthropic: AnthropicSettings = Field(default_factory=AnthropicSettings)
    google: GoogleSettings = Field(default_factory=GoogleSettings)
    mistral: MistralSettings = Field(default_factory=MistralSettings)
    deepseek: DeepSeekSettings = Field(default_factory=DeepSeekSettings)
    openrouter: OpenRouterSettings = Field(default_factory=OpenRouterSettings)
    stability: StabilitySettings = Field(default_factory=StabilitySettings)
    video: VideoSettings = Field(default_factory=VideoSettings)

    def get(self, name: str) -> ProviderSettings:
        if name not in type(self).model_fields:
            raise KeyError(name)
        value: ProviderSettings = getattr(self, name)
        return value

    @property
    def any_configured(self) -> bool:
        return any(self.get(name).api_key is not None for name in type(self).model_fields)


def sandbox_providers(base_url: str) -> ProvidersSettings:
    """Every provider pointed at the sandbox's fakes, with dummy keys shaped like real ones."""
    base = base_url.rstrip("/")
    return ProvidersSettings(
        openai=OpenAISettings(api_key=SecretStr("sk-sandbox-openai"), base_url=f"{base}/openai/v1"),
        anthropic=AnthropicSettings(
            api_key=SecretStr("sk-ant-sandbox"), base_url=f"{base}/anthropic/v1"
        ),
        google=GoogleSettings(api_key=SecretStr("AIza-sandbox"), base_url=f"{base}/gemini/v1beta"),
        mistral=MistralSettings(
            api_key=SecretStr("sandbox-mistral"), base_url=f"{base}/mistral/v1"
        ),
        deepseek=DeepSeekSettings(
            api_key=SecretStr("sk-sandbox-deepseek"), base_url=f"{base}/compat/v1"
        ),
        openrouter=OpenRouterSettings(
            api_key=SecretStr("sk-or-sandbox"), base_url=f"{base}/compat/v1"
        ),
        stability=StabilitySettings(
            api_key=SecretStr("sk-sandbox-stability"), base_url=f"{base}/stability/v2beta"
        ),
        video=VideoSettings(api_key=SecretStr("sk-sandbox-video"), base_url=f"{base}/openai/v1"),
    )
