"""Conversations with models: storing turns, assembling context, and the one billing entry point
every model call goes through (reserve an estimate before the call, settle on the usage the
provider reports, release on failure).

A turn is two use cases around the provider call, so no transaction stays open while the model
streams: ``begin_turn`` stores the prompt and reserves money, ``finish_turn`` stores the reply and
settles. History is trimmed to the model's context window with a safe token estimate (three
UTF-8 bytes per token, which overestimates every language we serve).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import BigInteger, String, delete, func, literal, select, update

from core.catalogue import ModelUnavailable
from core.errors import DomainError, InvalidInput, NotFound, UserBlocked
from core.i18n import N_
from core.providers.base import ChatMessage, ChatRequest, ImagePart, TextPart, Usage
from core.services import billing
from core.services.tariffs import Tariffs, active_plan, give_back_free_use, take_free_use
from db.models import ChatMessageRow, Conversation, Preset, User
from db.uow import UnitOfWork

RETENTION = timedelta(days=14)
# A safe estimate of what one picture costs in prompt tokens.
IMAGE_TOKENS = 1_500
DEFAULT_MAX_OUTPUT = 2048
MAX_PROMPT_CHARS = 16_000


class VisionUnsupported(InvalidInput):
    code = "vision_unsupported"
    msgid = N_("This model cannot see pictures. Pick one that can with /model.")


class PromptTooLong(InvalidInput):
    code = "prompt_too_long"
    msgid = N_("This message is too long for the model. Please shorten it.")


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


@dataclass(frozen=True, slots=True)
class Turn:
    user_id: int
    conversation_id: int
    prompt_message_id: int | None
    request: ChatRequest
    model: ModelTerms
    reservation: billing.ReservationDTO | None
    discount_percent: int
    store: bool
    key: str
    prefs: ChatPrefs
    # Set when the request is covered by the free tier: it costs no money.
    free_tier: str | None = None


@dataclass(frozen=True, slots=True)
class TurnResult:
    message_id: int | None
    charged: int
    balance_after: int | None
    free: bool = False


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
    )


async def _user(uow: UnitOfWork, user_id: int) -> User:
    user = await uow.users.get(user_id)
    if user is None:
        raise NotFound(f"user {user_id}")
    return user


async def get_prefs(uow: UnitOfWork, user_id: int) -> ChatPrefs:
    prefs = prefs_of(await _user(uow, user_id))
    await uow.end_read()
    return prefs


async def set_prefs(uow: UnitOfWork, user_id: int, **changes: object) -> ChatPrefs:
    """Change chat preferences: model, reasoning, web_search, preset_id, conversation_id."""
    allowed = {"model", "reasoning", "web_search", "preset_id", "conversation_id", "image_mode"}
    if not set(changes) <= allowed:
        raise InvalidInput(f"unknown preferences {set(changes) - allowed}")
    user = await _user(uow, user_id)
    features = {**(user.features or {}), **changes}
    await uow.session.execute(update(User).where(User.id == user_id).values(features=features))
    await uow.commit()
    user.features = features
    return prefs_of(user)


async def new_conversation(uow: UnitOfWork, user_id: int) -> None:
    """The next message starts a fresh conversation."""
    await set_prefs(uow, user_id, conversation_id=None)


async def current_conversation(uow: UnitOfWork, user_id: int, *, title: str, model_id: str) -> int:
    """The user's current conversation, started now if there is none (files are attached to
    it before anything is said)."""
    user = await _user(uow, user_id)
    current = (user.features or {}).get("conversation_id")
    if current:
        conversation = await uow.session.get(Conversation, current)
        if conversation is not None and conversation.user_id == user_id:
            found = conversation.id
            await uow.end_read()
            return found
    return await _open_conversation(uow, user, title=title, model_id=model_id)


async def start_conversation(
    uow: UnitOfWork, user_id: int, *, title: str, models: ModelMenu
) -> ConversationDTO:
    """A new, empty conversation with the user's model, which becomes the current one (files
    are attached to it before anything is said)."""
    user = await _user(uow, user_id)
    if user.is_blocked:
        raise UserBlocked(f"user {user_id}")
    model = models.get(prefs_of(user).model_id)
    conversation_id = await _open_conversation(uow, user, title=title, model_id=model.id)
    row = (
        await uow.session.execute(
            select(
                Conversation.id,
                Conversation.title,
                Conversation.model_id,
                Conversation.preset_id,
                Conversation.updated_at,
            ).where(Conversation.id == conversation_id)
        )
    ).one()
    await uow.end_read()
    return ConversationDTO(*row)


async def _open_conversation(uow: UnitOfWork, user: User, *, title: str, model_id: str) -> int:
    conversation = Conversation(
        user_id=user.id,
        model_id=model_id,
        preset_id=(user.features or {}).get("preset_id"),
        title=title.strip()[:64] or None,
    )
    uow.session.add(conversation)
    await uow.session.flush()
    conversation_id = conversation.id
    features = {**(user.features or {}), "conversation_id": conversation_id}
    await uow.session.execute(update(User).where(User.id == user.id).values(features=features))
    await uow.commit()
    return conversation_id


async def _history(uow: UnitOfWork, conversation_id: int, budget: int) -> list[ChatMessage]:
    """The newest turns that fit ``budget`` tokens, oldest first."""
    rows = await uow.session.execute(
        select(ChatMessageRow.role, ChatMessageRow.content)
        .where(
            ChatMessageRow.conversation_id == conversation_id,
            ChatMessageRow.status != "failed",
        )
        .order_by(ChatMessageRow.id.desc())
        .limit(200)
    )
    picked: list[ChatMessage] = []
    used = 0
    for role, content in rows:
        size = estimate_tokens(content)
        if used + size > budget:
            break
        picked.append(ChatMessage(role=role, content=content))
        used += size
    picked.reverse()
    # A request starts with a user turn.
    while picked and picked[0].role != "user":
        picked.pop(0)
    return picked


async def begin_turn(
    uow: UnitOfWork,
    *,
    user_id: int,
    text: str,
    now: datetime,
    model: ModelTerms | None = None,
    models: ModelMenu | None = None,
    max_output_tokens: int = DEFAULT_MAX_OUTPUT,
    images: tuple[ImagePart, ...] = (),
    prefs: ChatPrefs | None = None,
    tariffs: Tariffs | None = None,
    documents: str | None = None,
) -> Turn:
    """Store the prompt, assemble the request and hold money for it, before the provider call.
    A request the free tier covers holds nothing and counts against the allowance instead.
    Raises InsufficientFunds (nothing stored) when the balance cannot cover the estimate."""
    if len(text) > MAX_PROMPT_CHARS:
        raise PromptTooLong(f"{len(text)} characters")
    if prefs is None:
        prefs = prefs_of(await _user(uow, user_id))
    if model is None:
        if models is None:
            raise InvalidInput("a turn needs a model or the model menu")
        # The user's pick, or the default when the pick is gone from the catalogue.
        model = models.get(prefs.model_id)
    if images and not model.vision:
        raise VisionUnsupported(f"model {model.id}")
    store = prefs.history_enabled
    system: str | None = None
    if prefs.preset_id is not None:
        preset = await uow.session.get(Preset, prefs.preset_id)
        if preset is not None and preset.user_id == user_id:
            system = preset.system_prompt
    if documents:
        # Passages from the user's attached files, to answer from and cite.
        system = f"{system}\n\n{documents}" if system else documents
    conversation_id = prefs.conversation_id
    conversation = await uow.session.get(Conversation, conversation_id) if conversation_id else None
    if conversation is not None and conversation.user_id != user_id:
        conversation = None
    max_output = min(max_output_tokens, max(256, model.context_window // 4))
    prompt_tokens = (
        estimate_tokens(text)
        + (estimate_tokens(system) if system else 0)
        + IMAGE_TOKENS * len(images)
    )
    budget = model.context_window - max_output - prompt_tokens
    if budget < 0:
        raise PromptTooLong(f"{prompt_tokens} tokens for a {model.context_window} window")
    history = await _history(uow, conversation.id, budget) if store and conversation else []
    prompt = (
        ChatMessage(role="user", content=(TextPart(text), *images))
        if images
        else (ChatMessage(role="user", content=text))
    )
    messages = (*history, prompt)
    input_estimate = prompt_tokens + sum(estimate_tokens(m.text) for m in history)
    key = f"turn:{user_id}:{secrets.token_hex(8)}"
    provider_cost = cost(model, input_estimate, max_output)
    plan = await active_plan(uow, tariffs, user_id, now) if tariffs is not None else None
    free_tier: str | None = None
    # Counted in this transaction: it commits with the prompt, or not at all.
    if (
        tariffs is not None
        and model.free_tier
        and provider_cost
        and await take_free_use(
            uow, tariffs, user_id=user_id, tier=model.free_tier, plan=plan, now=now
        )
    ):
        free_tier = model.free_tier
    # A free model needs no balance at all.
    discount = 0
    if provider_cost and free_tier is None:
        discount = (await billing.get_balance(uow, user_id)).discount_percent
        if plan is not None:
            discount = max(discount, plan.discount_percent)
    estimate = billing.price(
        provider_cost, markup_percent=model.markup_percent, discount_percent=discount
    )
    # Money first: when the balance cannot cover the estimate nothing at all is stored.
    reservation = None
    if estimate > 0 and free_tier is None:
        reservation = await billing.reserve(
            uow, user_id=user_id, amount=estimate, key=f"{key}:hold", model_id=model.id
        )
    try:
        if conversation is None:
            conversation = Conversation(
                user_id=user_id, model_id=model.id, preset_id=prefs.preset_id, title=text[:64]
            )
            uow.session.add(conversation)
            await uow.session.flush()
            await uow.session.execute(
                update(User)
                .where(User.id == user_id)
                .values(
                    features=User.features.op("||")(
                        func.jsonb_build_object(
                            literal("conversation_id", String), literal(conversation.id, BigInteger)
                        )
                    )
                )
            )
        prompt_id: int | None = None
        if store:
            row = ChatMessageRow(
                conversation_id=conversation.id,
                user_id=user_id,
                role="user",
                # Pictures are sent to the model, not kept; the text says one was there.
                content=("📷 " * len(images)) + text,
                model_id=model.id,
                created_at=now,
                expires_at=now + RETENTION,
            )
            uow.session.add(row)
            await uow.session.flush()
            prompt_id = row.id
        if now - conversation.updated_at > timedelta(hours=1):
            # Recent-first ordering needs no more precision than this.
            conversation.updated_at = now
        conversation_id = conversation.id
        await uow.commit()
    except BaseException:
        await uow.rollback()
        if reservation is not None:
            await billing.release(uow, reservation_id=reservation.id)
        raise
    request = ChatRequest(
        model=model.provider_model,
        messages=messages,
        system=system,
        max_output_tokens=max_output,
        reasoning=prefs.reasoning and model.reasoning,
        web_search=prefs.web_search and model.web_search,
    )
    return Turn(
        user_id=user_id,
        conversation_id=conversation_id,
        prompt_message_id=prompt_id,
        request=request,
        model=model,
        reservation=reservation,
        discount_percent=discount,
        store=store,
        key=key,
        prefs=prefs,
        free_tier=free_tier,
    )


async def finish_turn(
    uow: UnitOfWork,
    turn: Turn,
    *,
    text: str,
    reasoning: str,
    usage: Usage | None,
    status: str,
    now: datetime,
) -> TurnResult:
    """Store the reply (what was delivered, even when stopped or cut) and settle its price.
    Without usage from the provider the output is estimated from what arrived; a failure that
    delivered nothing costs nothing."""
    if status not in ("complete", "stopped", "failed"):
        raise InvalidInput(f"status {status!r}")
    delivered = bool(text)
    message_id: int | None = None
    if turn.store and (delivered or status != "failed"):
        message_id = await uow.chats.append_message(
            conversation_id=turn.conversation_id,
            user_id=turn.user_id,
            role="assistant",
            content=text,
            reasoning=reasoning or None,
            model_id=turn.model.id,
            input_tokens=usage.input_tokens if usage else None,
            output_tokens=usage.output_tokens if usage else None,
            status=status if delivered or status == "failed" else "failed",
            created_at=now,
            expires_at=now + RETENTION,
        )
        await uow.commit()
    if turn.free_tier is not None:
        if not delivered and usage is None:
            await give_back_free_use(uow, user_id=turn.user_id, tier=turn.free_tier)
        return TurnResult(message_id, 0, None, free=True)
    if turn.reservation is None:
        return TurnResult(message_id, 0, None)
    if not delivered and usage is None:
        await billing.release(uow, reservation_id=turn.reservation.id)
        return TurnResult(message_id, 0, None)
    input_tokens = (
        usage.input_tokens
        if usage
        else estimate_tokens("".join(m.text for m in turn.request.messages))
    )
    output_tokens = usage.output_tokens if usage else estimate_tokens(text + reasoning)
    provider_cost = cost(turn.model, input_tokens, output_tokens)
    amount = billing.price(
        provider_cost,
        markup_percent=turn.model.markup_percent,
        discount_percent=turn.discount_percent,
    )
    entry = await billing.settle(
        uow,
        reservation=turn.reservation,
        amount=amount,
        category="text",
        key=f"{turn.key}:settle",
        charge=billing.Charge(
            cost=provider_cost,
            markup_percent=turn.model.markup_percent,
            discount_percent=turn.discount_percent,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            model_id=turn.model.id,
            meta={"status": status, "estimated": usage is None},
        ),
    )
    return TurnResult(message_id, -entry.amount, entry.balance_after)


async def history_size(uow: UnitOfWork, user_id: int) -> int:
    count = await uow.session.scalar(
        select(func.count()).select_from(ChatMessageRow).where(ChatMessageRow.user_id == user_id)
    )
    return int(count or 0)


# --- presets ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PresetDTO:
    id: int
    title: str
    system_prompt: str


async def create_preset(uow: UnitOfWork, user_id: int, *, title: str, prompt: str) -> PresetDTO:
    title, prompt = title.strip(), prompt.strip()
    if not 1 <= len(title) <= 64 or not 1 <= len(prompt) <= 4000:
        raise InvalidInput("a preset needs a title (1-64) and a prompt (1-4000 characters)")
    preset = Preset(user_id=user_id, title=title, system_prompt=prompt)
    uow.session.add(preset)
    await uow.session.flush()
    result = PresetDTO(preset.id, preset.title, preset.system_prompt)
    await uow.commit()
    return result


async def list_presets(uow: UnitOfWork, user_id: int) -> list[PresetDTO]:
    rows = await uow.session.scalars(
        select(Preset).where(Preset.user_id == user_id).order_by(Preset.id)
    )
    result = [PresetDTO(p.id, p.title, p.system_prompt) for p in rows]
    await uow.end_read()
    return result


async def _own_preset(uow: UnitOfWork, user_id: int, preset_id: int) -> Preset:
    preset = await uow.session.get(Preset, preset_id)
    if preset is None or preset.user_id != user_id:
        raise NotFound(f"preset {preset_id}")
    return preset


async def use_preset(uow: UnitOfWork, user_id: int, preset_id: int | None) -> ChatPrefs:
    """Pick a preset (None: none) for new conversations; the next message starts one."""
    if preset_id is not None:
        await _own_preset(uow, user_id, preset_id)
    return await set_prefs(uow, user_id, preset_id=preset_id, conversation_id=None)


async def delete_preset(uow: UnitOfWork, user_id: int, preset_id: int) -> None:
    preset = await _own_preset(uow, user_id, preset_id)
    await uow.session.delete(preset)
    user = await _user(uow, user_id)
    if (user.features or {}).get("preset_id") == preset_id:
        features = {**user.features, "preset_id": None}
        await uow.session.execute(update(User).where(User.id == user_id).values(features=features))
    await uow.commit()


async def edit_preset(
    uow: UnitOfWork, user_id: int, preset_id: int, *, title: str, prompt: str, now: datetime
) -> PresetDTO:
    preset = await _own_preset(uow, user_id, preset_id)
    title, prompt = title.strip(), prompt.strip()
    if not 1 <= len(title) <= 64 or not 1 <= len(prompt) <= 4000:
        raise InvalidInput("a preset needs a title (1-64) and a prompt (1-4000 characters)")
    preset.title, preset.system_prompt, preset.updated_at = title, prompt, now
    await uow.session.flush()
    result = PresetDTO(preset.id, preset.title, preset.system_prompt)
    await uow.commit()
    return result


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

    def request_price(
        self, model: ModelTerms, *, input_tokens: int = 500, output_tokens: int = 500
    ) -> int:
        """The price of a typical short request, in kopecks, for showing in menus."""
        return billing.price(
            cost(model, input_tokens, output_tokens),
            markup_percent=model.markup_percent,
            discount_percent=0,
        )


async def set_history(uow: UnitOfWork, user_id: int, *, enabled: bool) -> ChatPrefs:
    """Keep chat history or not (policy: restriction of processing). Turning it off also clears
    what is stored: prompts and replies, and the conversations they belonged to."""
    await uow.begin()
    await uow.session.execute(
        update(User).where(User.id == user_id).values(history_enabled=enabled)
    )
    if not enabled:
        await _clear_history(uow, user_id)
    await uow.commit()
    return await get_prefs(uow, user_id)


async def clear_history(uow: UnitOfWork, user_id: int) -> None:
    await uow.begin()
    await _clear_history(uow, user_id)
    await uow.commit()


async def _clear_history(uow: UnitOfWork, user_id: int) -> None:
    await uow.session.execute(delete(ChatMessageRow).where(ChatMessageRow.user_id == user_id))
    await uow.session.execute(delete(Conversation).where(Conversation.user_id == user_id))
    user = await _user(uow, user_id)
    features = {**(user.features or {}), "conversation_id": None}
    await uow.session.execute(update(User).where(User.id == user_id).values(features=features))


# --- conversations from the web app ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConversationDTO:
    id: int
    title: str | None
    model_id: str
    preset_id: int | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class MessageDTO:
    id: int
    role: str
    content: str
    reasoning: str | None
    model_id: str | None
    is_pinned: bool
    status: str
    created_at: datetime


def _message(row: ChatMessageRow) -> MessageDTO:
    return MessageDTO(
        id=row.id,
        role=row.role,
        content=row.content,
        reasoning=row.reasoning,
        model_id=row.model_id,
        is_pinned=row.is_pinned,
        status=row.status,
        created_at=row.created_at,
    )


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


async def list_conversations(
    uow: UnitOfWork, user_id: int, *, limit: int = 200
) -> list[ConversationDTO]:
    """The user's conversations, the most recently active first."""
    rows = await uow.session.scalars(
        select(Conversation)
        .where(Conversation.user_id == user_id)
        .order_by(Conversation.updated_at.desc(), Conversation.id.desc())
        .limit(limit)
    )
    found = [ConversationDTO(c.id, c.title, c.model_id, c.preset_id, c.updated_at) for c in rows]
    await uow.end_read()
    return found


async def _own_conversation(uow: UnitOfWork, user_id: int, conversation_id: int) -> Conversation:
    conversation = await uow.session.get(Conversation, conversation_id)
    # Someone else's conversation is not found, never forbidden: ids reveal nothing.
    if conversation is None or conversation.user_id != user_id:
        raise NotFound(f"conversation {conversation_id}")
    return conversation


async def conversation_messages(
    uow: UnitOfWork, user_id: int, conversation_id: int, *, limit: int = 1000
) -> list[MessageDTO]:
    """The newest ``limit`` messages of one of the user's conversations, oldest first."""
    await _own_conversation(uow, user_id, conversation_id)
    rows = await uow.session.scalars(
        select(ChatMessageRow)
        .where(ChatMessageRow.conversation_id == conversation_id)
        .order_by(ChatMessageRow.id.desc())
        .limit(limit)
    )
    found = [_message(row) for row in rows]
    found.reverse()
    await uow.end_read()
    return found


async def pin_message(
    uow: UnitOfWork, user_id: int, message_id: int, *, pinned: bool
) -> MessageDTO:
    row = await uow.session.get(ChatMessageRow, message_id)
    if row is None or row.user_id != user_id:
        raise NotFound(f"message {message_id}")
    row.is_pinned = pinned
    await uow.session.flush()
    result = _message(row)
    await uow.commit()
    return result


async def delete_conversation(uow: UnitOfWork, user_id: int, conversation_id: int) -> None:
    """A conversation and its messages (attachments and share links go with it). When it was
    the current one, the next message starts a new one."""
    await _own_conversation(uow, user_id, conversation_id)
    await uow.session.execute(
        delete(Conversation).where(
            Conversation.id == conversation_id, Conversation.user_id == user_id
        )
    )
    user = await _user(uow, user_id)
    if (user.features or {}).get("conversation_id") == conversation_id:
        features = {**user.features, "conversation_id": None}
        await uow.session.execute(update(User).where(User.id == user_id).values(features=features))
    await uow.commit()


@dataclass(frozen=True, slots=True)
class TurnSetup:
    """Where a request from the web app goes: the preferences naming the conversation it
    continues (None: a new one), the model that answers, and whether the user has documents
    whose passages may be needed."""

    prefs: ChatPrefs
    model: ModelTerms
    documents: bool


async def setup_turn(
    uow: UnitOfWork,
    *,
    user_id: int,
    models: ModelMenu,
    conversation_id: int | None = None,
    new_conversation: bool = False,
    model_id: str | None = None,
) -> TurnSetup:
    """Check a request before its turn begins: a model of the menu (the given one, else the
    user's pick, else the default), and a conversation of the user's own (the given one, a new
    one, else the current one). Someone else's conversation is NotFound."""
    if not models.models:
        raise ModelUnavailable("no text models on this server")
    user = await _user(uow, user_id)
    if user.is_blocked:
        raise UserBlocked(f"user {user_id}")
    prefs = prefs_of(user)
    model = menu_model(models, model_id) if model_id is not None else models.get(prefs.model_id)
    if new_conversation:
        prefs = dataclasses.replace(prefs, conversation_id=None)
    elif conversation_id is not None:
        await _own_conversation(uow, user_id, conversation_id)
        prefs = dataclasses.replace(prefs, conversation_id=conversation_id)
    documents = bool((user.features or {}).get("files"))
    await uow.end_read()
    return TurnSetup(prefs=prefs, model=model, documents=documents)


# --- one reply at a time per user, and Stop, across web processes ----------------------------


class ReplyInProgress(DomainError):
    code = "busy"
    msgid = N_("⏳ I am still answering your previous message. Wait for it or tap Stop.")


TURN_TTL = 600


def _busy_key(user_id: int) -> str:
    return f"netroom:web:busy:{user_id}"


def _turn_key(turn_id: str) -> str:
    return f"netroom:web:turn:{turn_id}"


def _stop_key(turn_id: str) -> str:
    return f"netroom:web:stop:{turn_id}"


async def claim_turn(
    redis: Redis, *, user_id: int, turn_id: str, attempts: int = 3, pause: float = 0.05
) -> None:
    """Take the user's one turn, or ReplyInProgress. The previous reply may be finishing its
    bookkeeping; a short wait covers that, so only a reply still being written refuses."""
    for attempt in range(attempts):
        if await redis.set(_busy_key(user_id), turn_id, nx=True, ex=TURN_TTL):
            # Whose turn it is, for Stop; kept a while after the end so a late Stop is no error.
            await redis.set(_turn_key(turn_id), str(user_id), ex=TURN_TTL)
            return
        if attempt + 1 < attempts:
            await asyncio.sleep(pause)
    raise ReplyInProgress(f"user {user_id} has a reply in progress")


async def release_turn(redis: Redis, *, user_id: int, turn_id: str) -> None:
    key = _busy_key(user_id)
    held = await redis.get(key)
    # Only our own flag: one that expired and was taken by a later turn stays.
    if held is not None and (held.decode() if isinstance(held, bytes) else held) == turn_id:
        await redis.delete(key)
    await redis.delete(_stop_key(turn_id))


async def request_stop(redis: Redis, *, user_id: int, turn_id: str) -> None:
    """Stop the user's own turn; anybody else's is NotFound."""
    owner = await redis.get(_turn_key(turn_id))
    if owner is None or int(owner) != user_id:
        raise NotFound(f"turn {turn_id}")
    await redis.set(_stop_key(turn_id), "1", ex=TURN_TTL)


async def stop_requested(redis: Redis, turn_id: str) -> bool:
    return bool(await redis.exists(_stop_key(turn_id)))
