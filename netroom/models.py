"""The text models offered in the bot: the catalogue's enabled text models whose providers this
deployment can reach."""

from __future__ import annotations

from dataclasses import replace

from core.catalogue import Capability, Catalogue, ModelEntry, ModelKind
from core.providers.registry import ProviderRegistry
from core.services.chat import ModelMenu, ModelTerms
from core.services.images import ImageTerms
from core.services.videos import VideoTerms
from core.services.voice import SpeechTerms, TranscriptionTerms


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
        name=entry.name,
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
            name=e.name,
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
            name=e.name,
        )
        for e in entries
    )


def _voice_entry(
    catalogue: Catalogue, providers: ProviderRegistry, kind: ModelKind
) -> ModelEntry | None:
    """The catalogue's default model of ``kind`` if its provider is reachable, else the first
    enabled one that is."""
    default = catalogue.default(kind)
    if default is not None and providers.configured(default.provider):
        return default
    return next((e for e in catalogue.enabled(kind) if providers.configured(e.provider)), None)


def transcription_model(
    catalogue: Catalogue, providers: ProviderRegistry, *, sandbox: bool = False
) -> TranscriptionTerms | None:
    """The model voice messages are transcribed with (None: voice input is not offered)."""
    e = _voice_entry(catalogue, providers, ModelKind.TRANSCRIPTION)
    if e is None:
        return None
    return TranscriptionTerms(
        id=e.id,
        provider=e.provider,
        provider_model=e.model,
        minute_price=0 if sandbox else (e.minute_price or 0),
        markup_percent=e.markup_percent,
    )


def speech_model(
    catalogue: Catalogue, providers: ProviderRegistry, *, sandbox: bool = False
) -> SpeechTerms | None:
    """The model replies are read aloud with (None: reading aloud is not offered)."""
    e = _voice_entry(catalogue, providers, ModelKind.SPEECH)
    if e is None:
        return None
    return SpeechTerms(
        id=e.id,
        provider=e.provider,
        provider_model=e.model,
        voice=e.voice or "alloy",
        chars_price_1k=0 if sandbox else (e.chars_price_1k or 0),
        markup_percent=e.markup_percent,
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
