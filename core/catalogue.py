"""The model catalogue: which models users can pick, what they can do and what they cost.

Read from a TOML file (``core/catalogue.toml`` by default) and validated at start-up: a bad file
stops the process with an error naming the entry and the field. Prices are the provider's cost in
integer kopecks (per 1 000 input or output tokens, per image, per second of video, per minute of
transcribed audio, per 1 000 characters read aloud); the user's price adds ``markup_percent`` on
top (see ``core.services.billing.price``).
"""

from __future__ import annotations

import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.errors import NotFound
from core.i18n import N_
from core.providers.registry import (
    CHAT_PROVIDERS,
    IMAGE_PROVIDERS,
    SPEECH_PROVIDERS,
    TRANSCRIPTION_PROVIDERS,
    VIDEO_PROVIDERS,
)

DEFAULT_PATH = Path(__file__).with_name("catalogue.toml")


class ModelKind(StrEnum):
    TEXT = "text"
    IMAGE = "image"
    VIDEO = "video"
    # Speech to text (voice messages) and text to speech (replies read aloud).
    TRANSCRIPTION = "transcription"
    SPEECH = "speech"


class Capability(StrEnum):
    VISION = "vision"
    REASONING = "reasoning"
    WEB_SEARCH = "web_search"


PROVIDERS_BY_KIND = {
    ModelKind.TEXT: CHAT_PROVIDERS,
    ModelKind.IMAGE: IMAGE_PROVIDERS,
    ModelKind.VIDEO: VIDEO_PROVIDERS,
    ModelKind.TRANSCRIPTION: TRANSCRIPTION_PROVIDERS,
    ModelKind.SPEECH: SPEECH_PROVIDERS,
}
# Which price fields each kind needs; the others must stay unset.
PRICES_BY_KIND = {
    ModelKind.TEXT: ("input_price_1k", "output_price_1k"),
    ModelKind.IMAGE: ("image_price",),
    ModelKind.VIDEO: ("second_price",),
    ModelKind.TRANSCRIPTION: ("minute_price",),
    ModelKind.SPEECH: ("chars_price_1k",),
}
ALL_PRICES = (
    "input_price_1k",
    "output_price_1k",
    "image_price",
    "second_price",
    "minute_price",
    "chars_price_1k",
)


class ModelUnavailable(NotFound):
    code = "model_unavailable"
    msgid = N_("This model is not available. Please pick another one.")


class CatalogueError(ValueError):
    """The catalogue file is missing, is not TOML or does not validate."""


class ModelEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # Our stable id: stored with chats and messages, and sent in callback data (kept short).
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,47}$")
    provider: str
    # The provider's own model id.
    model: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=64)
    kind: ModelKind
    context_window: int | None = Field(default=None, gt=0)
    capabilities: frozenset[Capability] = frozenset()
    input_price_1k: int | None = Field(default=None, ge=0)
    output_price_1k: int | None = Field(default=None, ge=0)
    image_price: int | None = Field(default=None, ge=0)
    second_price: int | None = Field(default=None, ge=0)
    # Per started minute of audio (transcription); per 1 000 characters of text (speech).
    minute_price: int | None = Field(default=None, ge=0)
    chars_price_1k: int | None = Field(default=None, ge=0)
    # The provider's voice for speech models (OpenAI: alloy, nova, ...).
    voice: str | None = Field(default=None, min_length=1, max_length=64)
    markup_percent: int = Field(default=0, ge=-100, le=1000)
    # Models of one free-tier class share a usage counter; None: no free use.
    free_tier: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{0,31}$")
    adult: bool = False
    enabled: bool = True

    @model_validator(mode="after")
    def _fits_its_kind(self) -> ModelEntry:
        providers = PROVIDERS_BY_KIND[self.kind]
        if self.provider not in providers:
            raise ValueError(
                f"provider {self.provider!r} cannot serve {self.kind} models "
                f"(one of: {', '.join(sorted(providers))})"
            )
        needed = PRICES_BY_KIND[self.kind]
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            raise ValueError(f"a {self.kind} model needs {', '.join(missing)}")
        extra = [n for n in ALL_PRICES if n not in needed and getattr(self, n) is not None]
        if extra:
            raise ValueError(f"a {self.kind} model has no {', '.join(extra)}")
        if self.kind is ModelKind.TEXT and self.context_window is None:
            raise ValueError("a text model needs context_window")
        if self.kind is not ModelKind.TEXT and self.capabilities:
            raise ValueError("capabilities apply to text models only")
        if self.kind is not ModelKind.SPEECH and self.voice is not None:
            raise ValueError("voice applies to speech models only")
        return self

    def has(self, capability: Capability) -> bool:
        return capability in self.capabilities

    def cost(
        self,
        *,
        input_tokens: int = 0,
        output_tokens: int = 0,
        images: int = 0,
        seconds: int = 0,
        minutes: int = 0,
        characters: int = 0,
    ) -> int:
        """The provider's cost in kopecks, rounded up to a whole kopeck."""
        thousandths = (
            input_tokens * (self.input_price_1k or 0)
            + output_tokens * (self.output_price_1k or 0)
            + 1000 * images * (self.image_price or 0)
            + 1000 * seconds * (self.second_price or 0)
            + 1000 * minutes * (self.minute_price or 0)
            + characters * (self.chars_price_1k or 0)
        )
        return -(-thousandths // 1000)


class Defaults(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    image: str | None = None
    video: str | None = None
    transcription: str | None = None
    speech: str | None = None


class Catalogue(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    defaults: Defaults
    models: tuple[ModelEntry, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Catalogue:
        seen: set[str] = set()
        for entry in self.models:
            if entry.id in seen:
                raise ValueError(f"model id {entry.id!r} appears more than once")
            seen.add(entry.id)
        for kind in ModelKind:
            model_id = getattr(self.defaults, kind.value)
            if model_id is None:
                continue
            default = self.find(model_id)
            if default is None or not default.enabled or default.kind is not kind:
                raise ValueError(
                    f"defaults.{kind.value} = {model_id!r} is not an enabled {kind} model"
                )
        return self

    def find(self, model_id: str) -> ModelEntry | None:
        """The entry with this id, enabled or not."""
        for entry in self.models:
            if entry.id == model_id:
                return entry
        return None

    def names(self) -> dict[str, str]:
        """Every model's display name by id, enabled or not: what people read instead of ids."""
        return {entry.id: entry.name for entry in self.models}

    def get(self, model_id: str) -> ModelEntry:
        """The enabled entry with this id, or ``ModelUnavailable``."""
        entry = self.find(model_id)
        if entry is None or not entry.enabled:
            raise ModelUnavailable(f"model {model_id!r} is not in the catalogue or disabled")
        return entry

    def enabled(self, kind: ModelKind | None = None) -> tuple[ModelEntry, ...]:
        return tuple(m for m in self.models if m.enabled and (kind is None or m.kind is kind))

    def default(self, kind: ModelKind = ModelKind.TEXT) -> ModelEntry | None:
        model_id = getattr(self.defaults, kind.value)
        return None if model_id is None else self.get(model_id)


def _where(raw: Any, loc: tuple[int | str, ...]) -> str:
    """``models[3] ('gpt-x').context_window`` for an error location."""
    if len(loc) >= 2 and loc[0] == "models" and isinstance(loc[1], int):
        index = loc[1]
        name = ""
        models = raw.get("models") if isinstance(raw, dict) else None
        if isinstance(models, list) and index < len(models) and isinstance(models[index], dict):
            name = f" ({models[index].get('id')!r})"
        rest = "".join(f".{part}" for part in loc[2:])
        return f"models[{index}]{name}{rest}"
    return ".".join(str(part) for part in loc) or "catalogue"


def parse_catalogue(raw: Any, *, source: str = "catalogue") -> Catalogue:
    try:
        return Catalogue.model_validate(raw)
    except ValidationError as exc:
        problems = [
            f"  - {_where(raw, tuple(error['loc']))}: {error['msg']}" for error in exc.errors()
        ]
        raise CatalogueError(
            f"{source}: the model catalogue is not valid:\n" + "\n".join(problems)
        ) from None


def load_catalogue(path: Path | None = None) -> Catalogue:
    """The catalogue from ``path`` (the shipped ``core/catalogue.toml`` by default)."""
    path = path or DEFAULT_PATH
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise CatalogueError(f"{path}: the model catalogue file does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError(f"{path}: the model catalogue is not valid TOML: {exc}") from None
    return parse_catalogue(raw, source=str(path))
