"""The text models offered in the bot: the catalogue's enabled text models whose providers this
deployment can reach."""

from __future__ import annotations

from dataclasses import replace

from core.catalogue import Capability, Catalogue, ModelEntry, ModelKind
from core.providers.registry import ProviderRegistry
from core.services.chat import ModelMenu, ModelTerms
from core.services.images import ImageTerms
from core.services.videos import VideoTerms


def terms(entry: ModelEntry) -> ModelTerms:
    return ModelTerms(
        id=entry.id,
        provider=entry.provider,
        provider_model=entry.model,
        context_window=entry.context_window or 8_000,
        input_per_1k=entry.input_price_1k or 0,
        output_per_1k=entry.output_price_1k or 0,
        markup_percent=entry.markup_percent,
        reasoning=Capability.REASONING in entry.capabilities,
        web_search=Capability.WEB_SEARCH in entry.capabilities,
        vision=Capability.VISION in entry.capabilities,
        free_tier=entry.free_tier,
    )


def image_models(
    catalogue: Catalogue, providers: ProviderRegistry, *, sandbox: bool = False
) -> tuple[ImageTerms, ...]:
    """Image models whose providers are reachable, the catalogue's default first."""
    default = catalogue.default(ModelKind.IMAGE)
    entries = sorted(
        (e for e in catalogue.enabled(ModelKind.IMAGE) if providers.configured(e.provider)),
        key=lambda e: default is None or e.id != default.id,
    )
    return tuple(
        ImageTerms(
            id=e.id,
            provider=e.provider,
            provider_model=e.model,
            image_price=0 if sandbox else (e.image_price or 0),
            markup_percent=e.markup_percent,
        )
        for e in entries
    )


def video_models(
    catalogue: Catalogue, providers: ProviderRegistry, *, sandbox: bool = False
) -> tuple[VideoTerms, ...]:
    default = catalogue.default(ModelKind.VIDEO)
    entries = sorted(
        (e for e in catalogue.enabled(ModelKind.VIDEO) if providers.configured(e.provider)),
        key=lambda e: default is None or e.id != default.id,
    )
    return tuple(
        VideoTerms(
            id=e.id,
            provider=e.provider,
            provider_model=e.model,
            second_price=0 if sandbox else (e.second_price or 0),
            markup_percent=e.markup_percent,
        )
        for e in entries
    )


def model_menu(
    catalogue: Catalogue, providers: ProviderRegistry, *, sandbox: bool = False
) -> ModelMenu:
    """With ``sandbox`` the models answer from the sandbox's fakes, which cost nothing, so the
    demo needs no balance."""
    models = tuple(
        replace(terms(entry), input_per_1k=0, output_per_1k=0) if sandbox else terms(entry)
        for entry in catalogue.enabled(ModelKind.TEXT)
        if providers.configured(entry.provider)
    )
    default = catalogue.default(ModelKind.TEXT)
    ids = {m.id for m in models}
    default_id = default.id if default is not None and default.id in ids else ""
    if not default_id and models:
        default_id = models[0].id
    return ModelMenu(models=models, default_id=default_id)
