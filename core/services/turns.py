"""A turn: one prompt and the model's reply, the same for the bot and the web app.

A turn is two use cases around the provider call, so no transaction stays open while the model
streams: ``begin_turn`` stores the prompt and reserves money, ``finish_turn`` settles and stores
the reply. History is trimmed to the model's context window with a safe token estimate.
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import BigInteger, String, func, literal, select, update

from core.catalogue import ModelUnavailable
from core.errors import InvalidInput, UserBlocked
from core.i18n import N_
from core.providers.base import ChatMessage, ChatRequest, ImagePart, TextPart, Usage
from core.services import billing
from core.services.chat import (
    ChatPrefs,
    ModelMenu,
    ModelTerms,
    cost,
    estimate_tokens,
    menu_model,
    prefs_of,
    user_of,
)
from core.services.conversations import own_conversation
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
        prefs = prefs_of(await user_of(uow, user_id))
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
    user = await user_of(uow, user_id)
    if user.is_blocked:
        raise UserBlocked(f"user {user_id}")
    prefs = prefs_of(user)
    model = menu_model(models, model_id) if model_id is not None else models.get(prefs.model_id)
    if new_conversation:
        prefs = dataclasses.replace(prefs, conversation_id=None)
    elif conversation_id is not None:
        await own_conversation(uow, user_id, conversation_id)
        prefs = dataclasses.replace(prefs, conversation_id=conversation_id)
    documents = bool((user.features or {}).get("files"))
    await uow.end_read()
    return TurnSetup(prefs=prefs, model=model, documents=documents)
