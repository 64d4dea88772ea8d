"""Chat-wide terms: the models on the menu and what a request to one costs, a user's chat
preferences, and keeping or clearing chat history. The turn itself is ``core.services.turns``;
presets, conversations and the per-user turn lock have modules of their own.

Token estimates are safe: three UTF-8 bytes per token, which overestimates every language we
serve.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update

from core.catalogue import ModelUnavailable
from core.errors import InvalidInput, NotFound
from core.services import billing
from db.models import ChatMessageRow, Conversation, User
from db.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class ModelTerms:
    """What the chat needs to know about a model from the catalogue."""

    id: str
    provider: str
    provider_model: str
    context_window: int
    # Kopecks per 1,000 tokens, before markup.
    input_per_1k: int
    output_per_1k: int
    markup_percent: int = 0
    reasoning: bool = False
    web_search: bool = False
    vision: bool = False
    # The free-tier class whose allowance this model uses, if any.
    free_tier: str | None = None
    # What people see (the catalogue's ``name``); empty: the id is shown.
    name: str = ""

    @property
    def title(self) -> str:
        """The one display name of this model, in the bot and the web app alike."""
        return self.name or self.id


@dataclass(frozen=True, slots=True)
class ChatPrefs:
    model_id: str | None
    conversation_id: int | None
    preset_id: int | None
    reasoning: bool
    web_search: bool
    history_enabled: bool
    # Text messages become image prompts.
    image_mode: bool = False
    # Replies are also sent as voice messages (read aloud by the speech model, billed).
    read_aloud: bool = False


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text.encode()) / 3) + 4


def cost(model: ModelTerms, input_tokens: int, output_tokens: int) -> int:
    """The provider's cost in kopecks, rounded up."""
    return -(-(input_tokens * model.input_per_1k + output_tokens * model.output_per_1k) // 1000)


def prefs_of(user: User) -> ChatPrefs:
    return prefs_from(user.features or {}, history_enabled=user.history_enabled)


def prefs_from(features: dict[str, Any], *, history_enabled: bool) -> ChatPrefs:
    """Chat preferences from an account's feature flags (as the bot already holds them)."""
    f = features
    return ChatPrefs(
        model_id=f.get("model"),
        conversation_id=f.get("conversation_id"),
        preset_id=f.get("preset_id"),
        reasoning=bool(f.get("reasoning", False)),
        web_search=bool(f.get("web_search", False)),
        history_enabled=history_enabled,
        image_mode=bool(f.get("image_mode", False)),
        read_aloud=bool(f.get("read_aloud", False)),
    )


async def user_of(uow: UnitOfWork, user_id: int) -> User:
    user = await uow.users.get(user_id)
    if user is None:
        raise NotFound(f"user {user_id}")
    return user


async def get_prefs(uow: UnitOfWork, user_id: int) -> ChatPrefs:
    async with uow.reading():
        return prefs_of(await user_of(uow, user_id))


async def set_prefs(uow: UnitOfWork, user_id: int, **changes: object) -> ChatPrefs:
    """Change chat preferences: model, reasoning, web_search, preset_id, conversation_id,
    image_mode, read_aloud."""
    allowed = {
        "model",
        "reasoning",
        "web_search",
        "preset_id",
        "conversation_id",
        "image_mode",
        "read_aloud",
    }
    if not set(changes) <= allowed:
        raise InvalidInput(f"unknown preferences {set(changes) - allowed}")
    async with uow.transaction():
        user = await user_of(uow, user_id)
        features = {**(user.features or {}), **changes}
        await uow.session.execute(update(User).where(User.id == user_id).values(features=features))
    user.features = features
    return prefs_of(user)


async def new_conversation(uow: UnitOfWork, user_id: int) -> None:
    """The next message starts a fresh conversation."""
    await set_prefs(uow, user_id, conversation_id=None)


async def history_size(uow: UnitOfWork, user_id: int) -> int:
    count = await uow.session.scalar(
        select(func.count()).select_from(ChatMessageRow).where(ChatMessageRow.user_id == user_id)
    )
    return int(count or 0)


@dataclass(frozen=True, slots=True)
class ModelMenu:
    """The text models users can pick, from the catalogue, and the default one."""

    models: tuple[ModelTerms, ...]
    default_id: str

    def get(self, model_id: str | None) -> ModelTerms:
        for model in self.models:
            if model.id == model_id:
                return model
        for model in self.models:
            if model.id == self.default_id:
                return model
        raise NotFound(f"model {model_id!r}")

    def title_of(self, model_id: str) -> str:
        """The display name of a model on the menu; an id no longer on it, as it is."""
        return next((m.title for m in self.models if m.id == model_id), model_id)

    def request_price(
        self, model: ModelTerms, *, input_tokens: int = 500, output_tokens: int = 500
    ) -> int:
        """The price of a typical short request, in kopecks, for showing in menus."""
        return billing.price(
            cost(model, input_tokens, output_tokens),
            markup_percent=model.markup_percent,
            discount_percent=0,
        )


def display_name(names: Mapping[str, str], model_id: str, menu: ModelMenu | None = None) -> str:
    """A model as people read it, wherever one is named: its name in the catalogue
    (``Catalogue.names``), else on the menu; a model no longer in either, by its id."""
    return names.get(model_id) or (menu.title_of(model_id) if menu is not None else model_id)


async def set_history(uow: UnitOfWork, user_id: int, *, enabled: bool) -> ChatPrefs:
    """Keep chat history or not (policy: restriction of processing). Turning it off also clears
    what is stored: prompts and replies, and the conversations they belonged to."""
    async with uow.transaction():
        await uow.session.execute(
            update(User).where(User.id == user_id).values(history_enabled=enabled)
        )
        if not enabled:
            await _clear_history(uow, user_id)
    return await get_prefs(uow, user_id)


async def clear_history(uow: UnitOfWork, user_id: int) -> None:
    async with uow.transaction():
        await _clear_history(uow, user_id)


async def _clear_history(uow: UnitOfWork, user_id: int) -> None:
    await uow.session.execute(delete(ChatMessageRow).where(ChatMessageRow.user_id == user_id))
    await uow.session.execute(delete(Conversation).where(Conversation.user_id == user_id))
    user = await user_of(uow, user_id)
    features = {**(user.features or {}), "conversation_id": None}
    await uow.session.execute(update(User).where(User.id == user_id).values(features=features))


def menu_model(models: ModelMenu, model_id: str) -> ModelTerms:
    """Exactly the model asked for: no fallback to the default."""
    for model in models.models:
        if model.id == model_id:
            return model
    raise ModelUnavailable(f"model {model_id!r} is not on the menu")


async def choose_model(
    uow: UnitOfWork, user_id: int, *, model_id: str, models: ModelMenu
) -> ChatPrefs:
    """The model for the user's next requests, one of the menu's only."""
    model = menu_model(models, model_id)
    return await set_prefs(uow, user_id, model=model.id)
