"""A turn: one prompt and the model's reply, written once for the bot and the web app.

Each transport passes in a small ``TurnSink`` (how text is shown while it streams, how the final
message is sent and whether it arrived, how an error, a Stop or a cut is told); ``run_turn`` does
the rest: the user's one lock, begin, stream, settle, store. No transaction stays open while the
model streams: ``begin_turn`` stores the prompt and holds money in one transaction,
``finish_turn`` settles and then stores the reply.

Invariants:

- money first and always: the hold is settled for what reached the user in a transaction of its
  own, before the reply is stored; a reply that cannot be stored (its conversation was deleted
  meanwhile, the database refused it) is logged and the turn is still settled;
- a turn is charged for what was delivered: the provider's usage when it reported it, else the
  token estimate of the text the user saw (reasoning only when it was shown), never above the
  hold (what the complete reply was estimated to cost);
- prompts and replies are stored cleaned (NUL and lone surrogates become U+FFFD), and shown so;
- a turn whose task is cancelled (shutdown, a request cancelled) ends as "cut" in a shielded
  step: the user is told, the delivered text is billed, the hold settled and the lock released;
  then the cancellation goes on.

Statuses of a finished turn: complete, stopped, cut, failed, undelivered (the final message
never reached the user: billed for what the user did see, if anything).

A turn may ask again (regenerate, an edited prompt, a retry: ``replaces`` names the messages of
the turn it replaces, see ``core.services.redo``): they are marked replaced in the transaction
that stores the new prompt and holds its money, so a refused turn replaces nothing and a turn
already replaced cannot be replaced twice; replaced messages stay visible but never reach a
model again. Asking again is a turn like any other, billed the same way.

A turn in an existing conversation uses that conversation's preset and, unless the request
names a model, its own model (``core.services.conversations.settings_of``); a new conversation
takes the user's preset and follows the user's default model.

A detached turn (inline mode: a question asked in some other chat) belongs to no conversation:
no history goes to the model, nothing of it is stored and no conversation is made; its output
is capped (``DETACHED_MAX_OUTPUT``) so the answer fits one message. It is billed the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from redis.asyncio import Redis
from sqlalchemy import bindparam, select, update

from core import metrics
from core.catalogue import ModelUnavailable
from core.citations import cited
from core.errors import DomainError, InvalidInput, UserBlocked
from core.i18n import N_
from core.providers.base import (
    ChatMessage,
    ChatRequest,
    ImagePart,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    TextPart,
    Usage,
)
from core.providers.registry import ProviderRegistry
from core.services import billing, conversations, files, redo, settlement, turn_lock
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
from core.services.tariffs import Tariffs, give_back_free_use, take_free_use
from core.text import UNSAFE, clean
from db.models import ChatMessageRow, Conversation, Preset
from db.uow import UnitOfWork

log = logging.getLogger(__name__)

STATUSES = ("complete", "stopped", "cut", "failed", "undelivered")
# How often a running turn looks for a Stop; how long a stream may take to heed one.
STOP_POLL = 0.2
STOP_GRACE = 1.0


RETENTION = timedelta(days=14)
# A safe estimate of what one picture costs in prompt tokens.
IMAGE_TOKENS = 1_500
DEFAULT_MAX_OUTPUT = 2048
MAX_PROMPT_CHARS = 16_000
# A detached answer fits one Telegram message.
DETACHED_MAX_OUTPUT = 1024


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
    # The id Stop names, and the process that runs the turn (None: not known).
    turn_id: str = ""
    owner: str | None = None
    # Where each passage given to the model came from: passage [n] is sources[n - 1]. Only
    # those the answer cites are shown (``core.citations.cited``).
    sources: tuple[str, ...] = ()

    def cited(self, answer: str) -> list[str]:
        """Where the passages ``answer`` cites came from: what the bot and the web app show
        under a reply, and what is stored with it (``core.citations.cited``)."""
        return cited(self.sources, answer)


@dataclass(frozen=True, slots=True)
class TurnResult:
    message_id: int | None
    charged: int
    balance_after: int | None
    free: bool = False


# Built once: every turn reads its history, and building the statement costs more CPU than
# Postgres spends answering it.
_HISTORY = (
    select(ChatMessageRow.role, ChatMessageRow.content)
    .where(
        ChatMessageRow.conversation_id == bindparam("conversation_id"),
        ChatMessageRow.status != "failed",
        ChatMessageRow.replaced.is_(False),
        ChatMessageRow.id.not_in(bindparam("replaces", expanding=True)),
    )
    .order_by(ChatMessageRow.id.desc())
    .limit(200)
)


async def _history(
    uow: UnitOfWork, conversation_id: int, budget: int, replaces: tuple[int, ...] = ()
) -> list[ChatMessage]:
    """The newest turns that fit ``budget`` tokens, oldest first; replaced messages (and those
    this turn replaces) are left out."""
    rows = await uow.session.execute(
        _HISTORY, {"conversation_id": conversation_id, "replaces": list(replaces)}
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
    owner: str | None = None,
    replaces: tuple[int, ...] = (),
    detached: bool = False,
) -> Turn:
    """Store the prompt, assemble the request and hold money for it, before the provider call.
    A request the free tier covers holds nothing and counts against the allowance instead.
    Raises InsufficientFunds (nothing stored) when the balance cannot cover the estimate, and
    AlreadyReplaced (nothing stored) when a message in ``replaces`` was replaced meanwhile."""
    if len(text) > MAX_PROMPT_CHARS:
        raise PromptTooLong(f"{len(text)} characters")
    text = clean(text)
    if prefs is None:
        prefs = prefs_of(await user_of(uow, user_id))
    if model is None:
        if models is None:
            raise InvalidInput("a turn needs a model or the model menu")
        # The user's pick, or the default when the pick is gone from the catalogue.
        model = models.get(prefs.model_id)
    if images and not model.vision:
        raise VisionUnsupported(f"model {model.id}")
    store = prefs.history_enabled and not detached
    if detached:
        max_output_tokens = min(max_output_tokens, DETACHED_MAX_OUTPUT)
    system: str | None = None
    if prefs.preset_id is not None:
        preset = await uow.session.get(Preset, prefs.preset_id)
        if preset is not None and preset.user_id == user_id:
            system = preset.system_prompt
    if documents:
        # Passages from the user's attached files, to answer from and cite.
        system = f"{system}\n\n{documents}" if system else documents
    conversation_id = prefs.conversation_id
    conversation = (
        await uow.session.get(Conversation, conversation_id)
        if conversation_id and not detached
        else None
    )
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
    history = (
        await _history(uow, conversation.id, budget, replaces) if store and conversation else []
    )
    prompt = (
        ChatMessage(role="user", content=(TextPart(text), *images))
        if images
        else (ChatMessage(role="user", content=text))
    )
    messages = (*history, prompt)
    input_estimate = prompt_tokens + sum(estimate_tokens(m.text) for m in history)
    key = f"turn:{user_id}:{secrets.token_hex(8)}"
    provider_cost = cost(model, input_estimate, max_output)
    # The balance's discount and the running plan, read together.
    balance_discount, plan_id = await uow.ledger.price_terms(user_id, now)
    plan = tariffs.plan(plan_id) if tariffs is not None else None
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
        discount = balance_discount
        if plan is not None:
            discount = max(discount, plan.discount_percent)
    estimate = billing.price(
        provider_cost, markup_percent=model.markup_percent, discount_percent=discount
    )
    # Money first: when the balance cannot cover the estimate nothing at all is stored. The
    # hold, the conversation and the prompt commit together, or none of them.
    reservation = None
    async with uow.transaction():
        if replaces:
            marked = await uow.session.execute(
                update(ChatMessageRow)
                .where(
                    ChatMessageRow.id.in_(replaces),
                    ChatMessageRow.user_id == user_id,
                    ChatMessageRow.replaced.is_(False),
                )
                .values(replaced=True)
            )
            if marked.rowcount != len(set(replaces)):  # type: ignore[attr-defined]
                raise redo.AlreadyReplaced(f"messages {replaces}")
        if estimate > 0 and free_tier is None:
            reservation = await billing.reserve(
                uow,
                user_id=user_id,
                amount=estimate,
                key=f"{key}:hold",
                model_id=model.id,
                owner=owner,
            )
        if detached:
            conversation_id = 0
        elif conversation is None:
            # Follows the user's default model until one of its own is picked; becomes the
            # user's current conversation.
            conversation_id = await uow.chats.new_conversation(
                user_id=user_id, title=conversations.title_from(text), preset_id=prefs.preset_id
            )
        else:
            if now - conversation.updated_at > timedelta(hours=1):
                # Recent-first ordering needs no more precision than this.
                conversation.updated_at = now
            conversation_id = conversation.id
        prompt_id: int | None = None
        if store and conversation_id:
            # One statement, as the reply is stored (no ORM flush on every turn).
            prompt_id = await uow.chats.append_message(
                conversation_id=conversation_id,
                user_id=user_id,
                role="user",
                # Pictures are sent to the model, not kept; the text says one was there.
                content=(redo.PICTURE_MARK * len(images)) + text,
                reasoning=None,
                model_id=model.id,
                input_tokens=None,
                output_tokens=None,
                status="complete",
                created_at=now,
                expires_at=now + RETENTION,
            )
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
        conversation_id=conversation_id or 0,
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


class Settle(Protocol):
    """Settles a hold in a transaction of its own (see ``settle_turn``)."""

    async def __call__(
        self,
        *,
        reservation: billing.ReservationDTO,
        amount: int,
        category: str,
        key: str,
        charge: billing.Charge | None,
    ) -> billing.EntryDTO | None: ...


async def settle_turn(
    uow_factory: Callable[[], UnitOfWork],
    redis: Redis,
    *,
    reservation: billing.ReservationDTO,
    amount: int,
    category: str,
    key: str,
    charge: billing.Charge | None = None,
) -> billing.EntryDTO | None:
    """Settle a turn's hold in its own unit of work and transaction, apart from anything else
    the turn stores; None when Postgres is unreachable and the settlement is kept in Redis
    until it is back (``settlement.settle_or_keep``)."""
    return await settlement.settle_or_keep(
        uow_factory,
        redis,
        reservation=reservation,
        amount=amount,
        category=category,
        key=key,
        charge=charge,
    )


def turn_charge(
    turn: Turn, *, text: str, reasoning: str, reasoning_shown: bool, usage: Usage | None
) -> tuple[int, billing.Charge]:
    """What a turn costs the user and why (see the module's invariants)."""
    seen = text + (reasoning if reasoning_shown else "")
    if usage is not None:
        input_tokens, output_tokens = usage.input_tokens, usage.output_tokens
    else:
        input_tokens = estimate_tokens("".join(m.text for m in turn.request.messages))
        output_tokens = estimate_tokens(seen)
    provider_cost = cost(turn.model, input_tokens, output_tokens)
    amount = billing.price(
        provider_cost,
        markup_percent=turn.model.markup_percent,
        discount_percent=turn.discount_percent,
    )
    if usage is None and turn.reservation is not None:
        # An estimate never prices a reply above the estimate of the complete one.
        amount = min(amount, turn.reservation.amount)
    return amount, billing.Charge(
        cost=provider_cost,
        markup_percent=turn.model.markup_percent,
        discount_percent=turn.discount_percent,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        model_id=turn.model.id,
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
    reasoning_shown: bool = False,
    settle: Settle | None = None,
) -> TurnResult:
    """Settle the turn's price for what was delivered, then store the reply (even when stopped
    or cut). Without usage from the provider the output is estimated from what the user saw; a
    failure that delivered nothing costs nothing. ``settle`` settles the hold in a transaction of
    its own (default: one on ``uow``); a reply that cannot be stored is logged, and the turn
    stays settled."""
    if status not in STATUSES:
        raise InvalidInput(f"status {status!r}")
    text, reasoning = clean(text), clean(reasoning)
    seen = bool(text) or (reasoning_shown and bool(reasoning))
    charged, balance_after, free = 0, None, turn.free_tier is not None
    # Money first, in its own transaction.
    if turn.free_tier is not None:
        if not seen and usage is None:
            await give_back_free_use(uow, user_id=turn.user_id, tier=turn.free_tier)
    elif turn.reservation is not None:
        if not seen and usage is None:
            async with uow.transaction():
                await billing.release(uow, reservation_id=turn.reservation.id)
        else:
            amount, charge = turn_charge(
                turn, text=text, reasoning=reasoning, reasoning_shown=reasoning_shown, usage=usage
            )
            charge = dataclasses.replace(
                charge, meta={"status": status, "estimated": usage is None}
            )
            entry: billing.EntryDTO | None
            if settle is None:
                async with uow.transaction():
                    entry = await billing.settle(
                        uow,
                        reservation=turn.reservation,
                        amount=amount,
                        category="text",
                        key=f"{turn.key}:settle",
                        charge=charge,
                    )
            else:
                entry = await settle(
                    reservation=turn.reservation,
                    amount=amount,
                    category="text",
                    key=f"{turn.key}:settle",
                    charge=charge,
                )
            if entry is None:
                # Kept until the database is back: it will charge exactly this.
                charged = amount
            else:
                charged, balance_after = -entry.amount, entry.balance_after
    message_id: int | None = None
    if turn.store and (text or status != "failed"):
        try:
            async with uow.transaction():
                message_id = await uow.chats.append_message(
                    conversation_id=turn.conversation_id,
                    user_id=turn.user_id,
                    role="assistant",
                    content=text,
                    reasoning=reasoning or None,
                    model_id=turn.model.id,
                    input_tokens=usage.input_tokens if usage else None,
                    output_tokens=usage.output_tokens if usage else None,
                    status=status if text or status == "failed" else "failed",
                    created_at=now,
                    expires_at=now + RETENTION,
                    cost=charged,
                    sources=turn.cited(text) or None,
                )
        except Exception:
            # The conversation was deleted meanwhile, or the database refused the text: the
            # user has the reply and it is paid for; only the record of it is missing.
            log.exception("turn %s of user %s: the reply was not stored", turn.key, turn.user_id)
            message_id = None
    return TurnResult(message_id, charged, balance_after, free=free)


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
    conversation's own, else the user's pick, else the default), and a conversation of the
    user's own (the given one, a new one, else the current one) with its preset. Someone else's
    conversation is NotFound."""
    if not models.models:
        raise ModelUnavailable("no text models on this server")
    async with uow.reading():
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
        # A conversation's own model, unless the request names one.
        prefs, own_model = await conversations.settings_of(uow, user_id, prefs)
        if model_id is None and own_model is not None:
            model = models.get(own_model)
        documents = bool((user.features or {}).get("files"))
    return TurnSetup(prefs=prefs, model=model, documents=documents)


# --- one turn, from the lock to the last word ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivery:
    """What reached the user: the text (and reasoning) shown, how the stream ended, and whether
    the final message arrived."""

    text: str = ""
    reasoning: str = ""
    reasoning_shown: bool = False
    usage: Usage | None = None
    # complete, stopped, cut or failed (undelivered is decided from ``delivered``).
    status: str = "complete"
    error: DomainError | None = None
    delivered: bool = True


class TurnSink(Protocol):
    """What differs between the bot and the web app in a turn."""

    async def refused(self, error: DomainError) -> None:
        """The turn could not begin: nothing was stored, held or asked of the model."""

    async def started(self, turn: Turn) -> None:
        """The prompt is stored and money held; the model is about to be asked."""

    async def stream(
        self, events: AsyncGenerator[StreamEvent, None], stop: asyncio.Event
    ) -> Delivery:
        """Show the reply while it streams and send the final message. End early, keeping what
        arrived, once ``stop`` is set. A provider failure is part of the Delivery, not raised.
        May be cancelled at any point; then ``cut`` is called."""

    async def cut(self, status: str) -> Delivery:
        """The stream was cancelled before it ended: ``status`` is "cut" (the service is
        stopping: say so) or "stopped" (a Stop the model did not heed in time). Send what was
        shown as the final message; what the user has."""

    async def finished(self, turn: Turn, delivery: Delivery, result: TurnResult | None) -> None:
        """Tell how the turn ended (``result`` None: it could not be settled)."""


@dataclass(frozen=True, slots=True)
class TurnOutcome:
    turn: Turn
    delivery: Delivery
    result: TurnResult | None
    status: str


async def _cleaned(
    events: AsyncIterator[StreamEvent], first_text: Callable[[], None] | None = None
) -> AsyncGenerator[StreamEvent, None]:
    async with contextlib.aclosing(events) as stream:  # type: ignore[type-var]
        async for event in stream:
            if type(event) is TextDelta and first_text is not None:
                first_text()
                first_text = None
            if type(event) is TextDelta and UNSAFE.search(event.text):
                event = TextDelta(clean(event.text))
            elif type(event) is ReasoningDelta and UNSAFE.search(event.text):
                event = ReasoningDelta(clean(event.text))
            yield event


async def _to_the_end(step: Awaitable[TurnOutcome]) -> TurnOutcome:
    """Run ``step`` to its end even when the task running it is cancelled meanwhile (then the
    cancellation goes on afterwards): the turn's money and its unit of work are not left
    half-done."""
    task = asyncio.ensure_future(step)
    cancelled = False
    while True:
        try:
            outcome = await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                raise
            cancelled = True
            continue
        if cancelled:
            raise asyncio.CancelledError
        return outcome


async def _watch_stop(
    redis: Redis, turn_id: str, stop: asyncio.Event, streaming: asyncio.Task[Delivery]
) -> None:
    """Stop from any transport or process; a model that stays silent is not waited for."""
    with turn_lock.stop_watch(redis, STOP_POLL).watching(turn_id) as requested:
        seen = asyncio.ensure_future(requested.wait())
        try:
            await asyncio.wait([seen, streaming], return_when=asyncio.FIRST_COMPLETED)
        finally:
            seen.cancel()
    if requested.is_set():
        stop.set()
    if stop.is_set() and not streaming.done():
        done, _ = await asyncio.wait([streaming], timeout=STOP_GRACE)
        if not done:
            streaming.cancel()


async def run_turn(
    uow: UnitOfWork,
    uow_factory: Callable[[], UnitOfWork],
    redis: Redis,
    sink: TurnSink,
    *,
    user_id: int,
    text: str,
    providers: ProviderRegistry,
    clock: Callable[[], datetime],
    prefs: ChatPrefs,
    turn_id: str | None = None,
    owner: str | None = None,
    model: ModelTerms | None = None,
    models: ModelMenu | None = None,
    images: tuple[ImagePart, ...] = (),
    tariffs: Tariffs | None = None,
    file_limits: files.FileLimits | None = None,
    embedder: files.Embedder | None = None,
    documents: bool = True,
    redo_of: int | None = None,
    detached: bool = False,
) -> TurnOutcome | None:
    """One turn for one user: take the user's lock (or ReplyInProgress), begin (refusals go to
    the sink), stream through the sink, settle, store, tell. None when the turn never began.
    ``redo_of``: a message of the last turn this one asks again (see the module's description),
    found under the lock, once the turn before has stored its reply; an empty ``text`` asks
    its prompt again, and with no ``model`` the model that answered it answers again."""
    turn_id = turn_id or turn_lock.new_turn_id()
    started = time.perf_counter()
    async with turn_lock.holding(redis, user_id=user_id, turn_id=turn_id, owner=owner) as lock:
        try:
            replaces: tuple[int, ...] = ()
            if redo_of is not None:
                target = await redo.last_turn(uow, user_id, redo_of)
                replaces = target.message_ids
                prefs = dataclasses.replace(prefs, conversation_id=target.conversation_id)
                text = text or target.prompt
                if model is None and models is not None:
                    model = models.get(target.model_id)
            # The conversation's own preset and model (the user's for a new one), read in the
            # transaction the turn begins in: no network call comes between (``context_for``
            # ends it before an embeddings call), and begin_turn finds the conversation loaded.
            prefs, own_model = await conversations.settings_of(uow, user_id, prefs)
            if model is None and own_model is not None and models is not None:
                model = models.get(own_model)
            context = None
            if documents and file_limits is not None:
                context = await files.context_for(
                    uow,
                    user_id=user_id,
                    conversation_id=prefs.conversation_id,
                    preset_id=prefs.preset_id,
                    query=text,
                    limits=file_limits,
                    embedder=embedder,
                )
            passages = context is not None and bool(context.passages)
            turn = await begin_turn(
                uow,
                user_id=user_id,
                text=text,
                now=clock(),
                model=model,
                models=models,
                images=images,
                prefs=prefs,
                tariffs=tariffs,
                documents=context.prompt() if context is not None and passages else None,
                owner=owner,
                replaces=replaces,
                detached=detached,
            )
        except DomainError as exc:
            # What was read ends here: telling the user is a network call.
            await uow.rollback()
            await sink.refused(exc)
            return None
        turn = dataclasses.replace(
            turn,
            turn_id=turn_id,
            owner=owner,
            sources=context.cites() if context is not None and passages else (),
        )
        return await _stream_and_finish(
            uow, uow_factory, redis, sink, turn, providers, clock, lock, started
        )


async def _stream_and_finish(
    uow: UnitOfWork,
    uow_factory: Callable[[], UnitOfWork],
    redis: Redis,
    sink: TurnSink,
    turn: Turn,
    providers: ProviderRegistry,
    clock: Callable[[], datetime],
    lock: turn_lock.TurnLock,
    started: float,
) -> TurnOutcome:
    """``started``: when the turn was asked for (``time.perf_counter``), for its timings."""
    provider_name = turn.model.provider

    def first_text() -> None:
        metrics.TURN_FIRST_TEXT_SECONDS.labels(provider_name).observe(time.perf_counter() - started)

    async def settle(
        *,
        reservation: billing.ReservationDTO,
        amount: int,
        category: str,
        key: str,
        charge: billing.Charge | None,
    ) -> billing.EntryDTO | None:
        return await settle_turn(
            uow_factory,
            redis,
            reservation=reservation,
            amount=amount,
            category=category,
            key=key,
            charge=charge,
        )

    async def finish(delivery: Delivery) -> TurnOutcome:
        status = delivery.status
        if not delivery.delivered and status in ("complete", "stopped", "cut"):
            status = "undelivered"
        result: TurnResult | None
        try:
            result = await finish_turn(
                uow,
                turn,
                text=delivery.text,
                reasoning=delivery.reasoning,
                reasoning_shown=delivery.reasoning_shown,
                usage=delivery.usage,
                status=status,
                now=clock(),
                settle=settle,
            )
        except Exception:
            log.exception("turn %s of user %s not settled", turn.key, turn.user_id)
            result = None
        # Settled and stored: the next message may begin before this one's end is told.
        try:
            await lock.release(redis)
        except Exception:
            log.warning("turn %s: lock not released", turn.key, exc_info=True)
        try:
            await sink.finished(turn, dataclasses.replace(delivery, status=status), result)
        except Exception:
            log.exception("turn %s of user %s: the end was not told", turn.key, turn.user_id)
        metrics.TURNS.labels(status, provider_name).inc()
        metrics.TURN_FINAL_SECONDS.labels(provider_name).observe(time.perf_counter() - started)
        return TurnOutcome(turn, delivery, result, status)

    async def cut_short(status: str) -> TurnOutcome:
        try:
            delivery = await sink.cut(status)
        except Exception:
            log.exception("turn %s: the cut reply was not sent", turn.key)
            delivery = Delivery(status=status, delivered=False)
        return await finish(delivery)

    try:
        provider = providers.chat(turn.model.provider)
    except DomainError as exc:
        # Nothing was asked of the model: the hold goes back, the prompt is marked failed.
        return await _to_the_end(finish(Delivery(status="failed", error=exc)))
    stop = asyncio.Event()
    streaming: asyncio.Task[Delivery] | None = None
    watcher: asyncio.Task[None] | None = None
    try:
        await sink.started(turn)
        streaming = asyncio.create_task(
            sink.stream(_cleaned(provider.stream_chat(turn.request), first_text), stop)
        )
        watcher = asyncio.create_task(_watch_stop(redis, turn.turn_id, stop, streaming))
        await asyncio.wait([streaming])
    except asyncio.CancelledError:
        # The service is stopping (or the request was cancelled): end the turn as cut, in a
        # step the cancellation does not interrupt, then let the cancellation go on.
        if watcher is not None:
            watcher.cancel()
        if streaming is not None and not streaming.done():
            streaming.cancel()
            # It ends at once; a second cancellation does not skip the cut.
            while not streaming.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait([streaming])
        if (
            streaming is not None
            and streaming.done()
            and not streaming.cancelled()
            and streaming.exception() is None
        ):
            # The reply had just ended on its own: it is complete, only its bookkeeping is left.
            step = finish(streaming.result())
        else:
            step = cut_short("cut")
        await _to_the_end(step)
        raise
    finally:
        if watcher is not None:
            watcher.cancel()
    if streaming.cancelled():
        return await _to_the_end(cut_short("stopped"))
    try:
        delivery = streaming.result()
    except Exception as exc:
        log.exception("turn %s: the reply stream failed", turn.key)
        delivery = Delivery(status="failed", error=DomainError(type(exc).__name__), delivered=False)
    return await _to_the_end(finish(delivery))
