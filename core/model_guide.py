"""What the model pickers show, in the bot and the web app alike: the text models on the menu
grouped by provider (in catalogue order), each with its capabilities, the price of a typical
request and its free-tier class, and what those classes mean on this deployment.

Nothing here translates: class hints are msgids (``core.i18n.TIER_HINTS``) that each transport
translates, and provider names are brands, the same in every language.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.i18n import TIER_HINTS
from core.services.chat import ModelMenu, ModelTerms
from core.services.tariffs import Tariffs

PROVIDER_NAMES = {
    "openai": "OpenAI",
    "anthropic": "Anthropic",
    "google": "Google",
    "mistral": "Mistral",
    "deepseek": "DeepSeek",
    "openrouter": "OpenRouter",
}
# A typical request, for the price shown in pickers (see ``ModelMenu.request_price``).
TYPICAL_INPUT_TOKENS = 500
TYPICAL_OUTPUT_TOKENS = 500


@dataclass(frozen=True, slots=True)
class PickerModel:
    terms: ModelTerms
    # The user's price of a typical request, in kopecks, before any plan discount.
    request_price: int


@dataclass(frozen=True, slots=True)
class ProviderGroup:
    provider: str
    name: str
    models: tuple[PickerModel, ...]


@dataclass(frozen=True, slots=True)
class FreeClass:
    tier: str
    # Free requests per period without a plan (a plan may raise it).
    limit: int
    hint: str | None


@dataclass(frozen=True, slots=True)
class ModelGuide:
    groups: tuple[ProviderGroup, ...]
    # Only the classes some model on the menu belongs to and that give free requests, by id.
    free_classes: tuple[FreeClass, ...]
    period: str


def free_class(guide: ModelGuide, model: ModelTerms) -> FreeClass | None:
    """The free class this model's requests use first, if this deployment gives it any."""
    return next((c for c in guide.free_classes if c.tier == model.free_tier), None)


def provider_name(provider: str) -> str:
    return PROVIDER_NAMES.get(provider, provider)


def model_guide(menu: ModelMenu, tariffs: Tariffs | None) -> ModelGuide:
    groups: dict[str, list[PickerModel]] = {}
    tiers: list[str] = []
    for model in menu.models:
        price = menu.request_price(
            model, input_tokens=TYPICAL_INPUT_TOKENS, output_tokens=TYPICAL_OUTPUT_TOKENS
        )
        groups.setdefault(model.provider, []).append(PickerModel(model, price))
        if model.free_tier and model.free_tier not in tiers:
            tiers.append(model.free_tier)
    limits = dict(tariffs.free_limits) if tariffs is not None else {}
    return ModelGuide(
        groups=tuple(
            ProviderGroup(provider, provider_name(provider), tuple(models))
            for provider, models in groups.items()
        ),
        # A class without free requests here is no class to explain: its models are paid.
        free_classes=tuple(
            FreeClass(tier, limits[tier], TIER_HINTS.get(tier))
            for tier in sorted(tiers)
            if limits.get(tier, 0) > 0
        ),
        period=tariffs.period if tariffs is not None else "day",
    )
