"""The text models offered in the bot, filtered to the providers this deployment can reach.

Prices are kopecks per 1,000 tokens at 100 roubles to the dollar, rounded up, from the providers'
list prices; the markup is what the operator earns on top.
"""

from __future__ import annotations

from core.providers.registry import ProviderRegistry
from core.services.chat import ModelMenu, ModelTerms

MARKUP = 30
DEFAULT_MODELS = (
    ModelTerms("gpt-4o-mini", "openai", "gpt-4o-mini", 128_000, 2, 6, MARKUP, vision=True),
    ModelTerms("gpt-4.1", "openai", "gpt-4.1", 1_000_000, 20, 80, MARKUP, vision=True),
    ModelTerms(
        "claude-sonnet-4.5",
        "anthropic",
        "claude-sonnet-4-5",
        200_000,
        30,
        150,
        MARKUP,
        reasoning=True,
        vision=True,
    ),
    ModelTerms("claude-haiku-4.5", "anthropic", "claude-haiku-4-5", 200_000, 10, 50, MARKUP),
    ModelTerms(
        "gemini-2.5-flash",
        "google",
        "gemini-2.5-flash",
        1_000_000,
        3,
        25,
        MARKUP,
        reasoning=True,
        vision=True,
    ),
    ModelTerms("mistral-small", "mistral", "mistral-small-latest", 128_000, 1, 3, MARKUP),
    ModelTerms("deepseek-chat", "deepseek", "deepseek-chat", 64_000, 3, 11, MARKUP),
)


def model_menu(providers: ProviderRegistry) -> ModelMenu:
    models = tuple(m for m in DEFAULT_MODELS if providers.configured(m.provider))
    default = models[0].id if models else ""
    return ModelMenu(models=models, default_id=default)
