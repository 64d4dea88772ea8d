"""Chat from the web app and the Mini App: the model menu, conversations and their messages, and
replies streamed live as Server-Sent Events.

``POST /api/chat`` answers ``text/event-stream`` with these events, in this order:

- ``start`` ``{"turn_id", "conversation_id"}``: the prompt is stored and money held;
- ``reasoning`` ``{"text"}`` (with reasoning shown) and ``delta`` ``{"text"}``, each written and
  flushed as it arrives from the model;
- ``error`` ``{"code", "message"}`` (translated): the turn could not start (then it is the only
  event: nothing was asked of the model and nothing charged), or the model failed, or the reply
  could not be stored and settled (code ``unavailable`` when Postgres or Redis was unreachable:
  try again in a moment);
- ``done`` ``{"message_id", "status", "charged_kopecks", "free", "balance_kopecks", "sources"}``,
  last, for every turn that started (``sources``: where the passages of the user's documents
  the reply cites came from, as stored with it). ``status`` is ``complete``, ``stopped`` (Stop,
  or the client went away), ``failed`` (the model failed; an ``error`` event comes before), or
  ``cut`` (the server is restarting: what was delivered is kept and billed); ``message_id`` is
  null when the reply could not be stored (it is still billed for what was delivered).

The turn is the bot's (``core.services.turns.run_turn``; this module only passes in a sink that
writes events): a Stop, a failure or a client that went away pays only for what was delivered and
the rest of the hold goes back. One reply at a time per user, across the bot and the web app
(another one is 409 ``busy``); ``POST /api/chat/{turn_id}/stop`` stops one from anywhere (another
tab, another web process, the bot). The relay does no database work per chunk.

``POST /api/messages/{id}/redo`` ``{"text"?, "model_id"?}`` asks the last turn of a conversation
again (``id``: its prompt or its reply) and answers with the same events: without ``text`` the
prompt is asked again (regenerate, retry), with it the prompt is edited; without ``model_id`` the
model that answered answers again. The turn replaced stays, marked ``replaced``. Another turn
is 400 ``not_last_turn``; one already replaced, 400 ``already_replaced`` (or, when that happened
meanwhile, the stream's only ``error`` event).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import Annotated, Literal

from aiohttp import web
from pydantic import Field

from core.catalogue import ModelUnavailable
from core.errors import DomainError, InvalidInput
from core.model_guide import model_guide
from core.outages import as_unavailable
from core.providers.base import ReasoningDelta, StreamEvent, TextDelta, Usage, UsageReport
from core.services import chat, conversations, payments, redo, turn_lock, turns
from webapp.contract import (
    JSON,
    TIME,
    Answer,
    Body,
    BodyId,
    Id,
    Out,
    PathParams,
    add_routes,
    operation,
)
from webapp.i18n import request_language, translations
from webapp.keys import CONTEXT, WebContext
from webapp.model_picker import picker_json
from webapp.routes.api import user_id_of

log = logging.getLogger(__name__)
# How often a running reply looks for a Stop and for a client that went away.
STOP_POLL = 0.2
TAGS = ("chat",)


# --- the contract --------------------------------------------------------------------------------

Status = Literal["complete", "stopped", "failed"]


class ModelInfo(Out):
    id: str
    name: str = Field(description="The display name, the same as in the bot.")
    provider: str
    provider_name: str = Field(description="The provider as people know it (models group by it).")
    vision: bool = Field(description="Reads pictures.")
    reasoning: bool = Field(description="Can think before answering.")
    web_search: bool = Field(description="Can search the web.")
    price_hint_kopecks: int = Field(description="Price of a typical request (500 + 500 tokens).")
    free_tier: str | None = Field(
        description="The free class whose allowance its requests use first (one of free_classes)."
    )


class FreeClassInfo(Out):
    id: str
    name: str = Field(description="The class as people read it, in the request's language.")
    explanation: str = Field(description="What the class holds and its free allowance.")


class Models(Out):
    models: list[ModelInfo]
    default: str | None
    current: str | None
    free_classes: list[FreeClassInfo] = Field(
        description="The free classes of the models on offer, explained."
    )


class ChooseModel(Body):
    model_id: Annotated[str, Field(max_length=200)]


class Current(Out):
    current: str


class Conversation(Out):
    id: int
    title: str | None
    model_id: str | None = Field(description="Its own model; null: the user's default.")
    model_name: str | None = Field(
        description="Its own model as people read it (display name; id once no longer in the "
        "catalogue); null: the user's default."
    )
    preset_id: int | None
    updated_at: TIME


class Conversations(Out):
    conversations: list[Conversation]


class NewConversation(Body):
    title: Annotated[str, Field(max_length=4096)] = Field(
        "", description="At most 64 characters are kept."
    )


class ConversationPath(PathParams):
    conversation_id: Id


class Message(Out):
    id: int
    role: Literal["user", "assistant"]
    content: str
    reasoning: str | None
    model_id: str | None
    model_name: str | None = Field(
        description="The model as people read it (its display name; its id once the catalogue "
        "no longer has it)."
    )
    is_pinned: bool
    status: Status
    created_at: TIME
    replaced: bool = Field(description="Asked again since: kept, but no longer sent to models.")
    rating: Literal[1, -1] | None = Field(description="1: 👍, -1: 👎 (replies only).")
    cost_kopecks: int | None = Field(
        description="What the reply cost (0: free); null for prompts and replies not charged."
    )
    sources: list[str] = Field(
        description="Where the passages of the user's documents this reply cites came from "
        '("a.pdf, p. 3"), in the order first cited; empty when it cites none.'
    )


class Messages(Out):
    messages: list[Message]


class MessagePath(PathParams):
    message_id: Id


class Pin(Body):
    pinned: bool


class RedoRequest(Body):
    text: Annotated[str, Field(min_length=1, max_length=100_000)] | None = Field(
        None, description="An edited prompt; omitted: the same prompt again."
    )
    model_id: Annotated[str, Field(max_length=200)] | None = Field(
        None, description="Another model of the menu; omitted: the one that answered."
    )


class Rating(Body):
    rating: Literal[1, -1] | None = Field(description="1: 👍, -1: 👎, null: no rating.")


class Rated(Out):
    message_id: int
    rating: Literal[1, -1] | None


class ChatRequest(Body):
    text: Annotated[str, Field(min_length=1, max_length=100_000)]
    conversation_id: BodyId | None = Field(
        None, description="Omitted: the current conversation; null: a new one."
    )
    model_id: Annotated[str, Field(max_length=200)] | None = Field(
        None, description="A model of the menu, for this request."
    )


class ChatStart(Out):
    turn_id: str
    conversation_id: int


class ChatText(Out):
    text: str


class ChatError(Out):
    code: str
    message: str


class ChatDone(Out):
    message_id: int | None = Field(description="The stored reply (null when it was not stored).")
    status: Literal["complete", "stopped", "failed", "cut"]
    charged_kopecks: int
    free: bool = Field(description="Covered by the free tier.")
    balance_kopecks: int | None
    sources: list[str] = Field(
        description="Where the passages of the user's documents the reply cites came from, "
        "as stored with it (Message.sources)."
    )


class TurnPath(PathParams):
    turn_id: Annotated[str, Field(pattern="^[0-9a-f]{16}$")]


CHAT_EVENTS = (
    "Server-Sent Events, in this order: `start` (ChatStart) once the prompt is stored and "
    "money held; `reasoning` (ChatText, when reasoning is shown) and `delta` (ChatText) as the "
    "model writes; `error` (ChatError) when the turn cannot start (then it is the only event "
    "and nothing is charged, e.g. `insufficient_funds`) or the model fails; `done` (ChatDone) "
    "last for every turn that started. Closing the connection stops the reply: only what was "
    "delivered is paid for."
)
EVENTS: dict[str, type[Out]] = {
    "start": ChatStart,
    "reasoning": ChatText,
    "delta": ChatText,
    "error": ChatError,
    "done": ChatDone,
}
# One event of the stream: its name, and its data as JSON of that event's model.
EVENT_SCHEMA = {
    "description": CHAT_EVENTS,
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"enum": list(EVENTS)},
        "data": {"type": "string", "contentMediaType": JSON},
    },
    "oneOf": [
        {
            "properties": {
                "event": {"const": name},
                "data": {"contentSchema": {"$ref": f"#/components/schemas/{model.__name__}"}},
            }
        }
        for name, model in EVENTS.items()
    ],
}


# --- parsing and rendering -------------------------------------------------------------------


def _conversation(c: conversations.ConversationDTO, ctx: WebContext) -> dict[str, object]:
    return {
        "id": c.id,
        "title": c.title,
        "model_id": c.model_id,
        "model_name": ctx.model_name(c.model_id),
        "preset_id": c.preset_id,
        "updated_at": c.updated_at.isoformat(),
    }


def _message(m: conversations.MessageDTO, ctx: WebContext) -> dict[str, object]:
    return {
        "id": m.id,
        "role": m.role,
        "content": m.content,
        "reasoning": m.reasoning,
        "model_id": m.model_id,
        "model_name": ctx.model_name(m.model_id),
        "is_pinned": m.is_pinned,
        "status": m.status,
        "created_at": m.created_at.isoformat(),
        "replaced": m.replaced,
        "rating": m.rating,
        "cost_kopecks": m.cost,
        "sources": list(m.sources),
    }


def _menu(ctx: WebContext) -> chat.ModelMenu:
    if ctx.models is None or not ctx.models.models:
        raise ModelUnavailable("no text models on this server")
    return ctx.models


# --- models and settings ---------------------------------------------------------------------


@operation(
    "GET",
    "/api/models",
    summary="The text models on offer, the default and the user's current one",
    responses={200: Answer("OK.", Models)},
    tags=TAGS,
)
async def list_models(request: web.Request) -> web.Response:
    """``GET /api/models``: the models on offer, the default one and the user's current one."""
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    menu = ctx.models
    if menu is None or not menu.models:
        return web.json_response(
            {"models": [], "default": None, "current": None, "free_classes": []}
        )
    async with ctx.uow_factory() as uow:
        prefs = await chat.get_prefs(uow, user_id)
    guide = model_guide(menu, ctx.tariffs)
    return web.json_response(
        {
            **picker_json(guide, translations(request_language(request)).gettext, ctx.model_names),
            "default": menu.default_id,
            "current": menu.get(prefs.model_id).id,
        }
    )


@operation(
    "PUT",
    "/api/settings/model",
    summary="Pick the model for the next requests (ids of the menu only)",
    responses={200: Answer("Picked.", Current)},
    errors={404: "Not on the menu."},
    tags=TAGS,
)
async def set_model(request: web.Request, body: ChooseModel) -> web.Response:
    """``PUT /api/settings/model`` ``{"model_id"}``: the model for the next requests."""
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    async with ctx.uow_factory() as uow:
        prefs = await chat.choose_model(uow, user_id, model_id=body.model_id, models=_menu(ctx))
    return web.json_response({"current": prefs.model_id})


# --- conversations and messages --------------------------------------------------------------


@operation(
    "GET",
    "/api/conversations",
    summary="The user's conversations, most recently active first",
    responses={200: Answer("OK.", Conversations)},
    tags=TAGS,
)
async def list_conversations(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    async with ctx.uow_factory() as uow:
        found = await conversations.list_conversations(uow, user_id)
    return web.json_response({"conversations": [_conversation(c, ctx) for c in found]})


@operation(
    "POST",
    "/api/conversations",
    summary="Start a new, empty conversation and make it the current one (to attach files first)",
    responses={201: Answer("Started.", Conversation)},
    errors={404: "No text models on this server."},
    tags=TAGS,
)
async def start_conversation(request: web.Request, body: NewConversation | None) -> web.Response:
    """``POST /api/conversations`` ``{"title"?}`` → 201, a new empty conversation that becomes
    the current one: files are attached to it before the first message."""
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    title = body.title if body is not None else ""
    async with ctx.uow_factory() as uow:
        started = await conversations.start_conversation(
            uow, user_id, title=title, models=_menu(ctx)
        )
    return web.json_response(_conversation(started, ctx), status=201)


@operation(
    "DELETE",
    r"/api/conversations/{conversation_id:\d+}",
    summary="Delete a conversation with its messages",
    responses={204: Answer("Deleted.")},
    tags=TAGS,
)
async def delete_conversation(request: web.Request, path: ConversationPath) -> web.Response:
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    conversation_id = path.conversation_id
    async with ctx.uow_factory() as uow:
        await conversations.delete_conversation(uow, user_id, conversation_id)
    return web.Response(status=204)


@operation(
    "GET",
    r"/api/conversations/{conversation_id:\d+}/messages",
    summary="A conversation's messages, oldest first (the newest 1000)",
    responses={200: Answer("OK.", Messages)},
    tags=TAGS,
)
async def list_messages(request: web.Request, path: ConversationPath) -> web.Response:
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    conversation_id = path.conversation_id
    async with ctx.uow_factory() as uow:
        found = await conversations.conversation_messages(uow, user_id, conversation_id)
    return web.json_response({"messages": [_message(m, ctx) for m in found]})


@operation(
    "POST",
    r"/api/messages/{message_id:\d+}/pin",
    summary="Pin or unpin a message",
    responses={200: Answer("The message.", Message)},
    tags=TAGS,
)
async def pin_message(request: web.Request, path: MessagePath, body: Pin) -> web.Response:
    """``POST /api/messages/{id}/pin`` ``{"pinned": true|false}``."""
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    async with ctx.uow_factory() as uow:
        found = await conversations.pin_message(uow, user_id, path.message_id, pinned=body.pinned)
    return web.json_response(_message(found, ctx))


# --- a streamed reply ------------------------------------------------------------------------


def _frame(event: str, data: Mapping[str, object]) -> bytes:
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event}\ndata: {payload}\n\n".encode()


def _error(exc: DomainError, language: str) -> dict[str, object]:
    message = translations(language).gettext(exc.msgid).format(**exc.params)
    return {"code": exc.code, "message": message}


class _ClientGone(Exception):
    """The client closed the connection: nothing more can be delivered."""


class _Relay:
    """One reply on its way to one client: every event written the moment it arrives."""

    def __init__(self, response: web.StreamResponse, *, show_reasoning: bool) -> None:
        self.response = response
        self.show_reasoning = show_reasoning
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.usage: Usage | None = None
        self.status = "complete"
        self.error: DomainError | None = None

    async def send(self, event: str, data: Mapping[str, object]) -> None:
        try:
            await self.response.write(_frame(event, data))
        except ConnectionError as exc:
            raise _ClientGone from exc

    async def run(
        self,
        events: AsyncGenerator[StreamEvent, None],
        *,
        stop_requested: Callable[[], Awaitable[bool]],
        client_gone: Callable[[], bool],
    ) -> None:
        pump = asyncio.create_task(self._pump(events))
        watch = asyncio.create_task(self._watch(pump, stop_requested, client_gone))
        try:
            await asyncio.wait([pump])
        finally:
            watch.cancel()
            if not pump.done():
                # This request itself was cancelled: what arrived is kept, like a Stop.
                self.status = "stopped"
                pump.cancel()
            await asyncio.gather(pump, watch, return_exceptions=True)

    async def _pump(self, events: AsyncGenerator[StreamEvent, None]) -> None:
        write = self.response.write
        try:
            async with contextlib.aclosing(events) as stream:
                async for event in stream:
                    if type(event) is TextDelta:
                        # Recorded first: a chunk handed to the connection counts as delivered.
                        self.text.append(event.text)
                        try:
                            await write(_frame("delta", {"text": event.text}))
                        except ConnectionError:
                            self.text.pop()
                            raise _ClientGone from None
                    elif type(event) is ReasoningDelta:
                        self.reasoning.append(event.text)
                        if self.show_reasoning:
                            try:
                                await write(_frame("reasoning", {"text": event.text}))
                            except ConnectionError:
                                raise _ClientGone from None
                    elif type(event) is UsageReport:
                        self.usage = event.usage
        except _ClientGone:
            self.status = "stopped"
        except DomainError as exc:
            self.status = "failed"
            self.error = exc
        except Exception as exc:
            # Anything unforeseen still ends the turn properly: what arrived is kept and billed.
            log.exception("the reply stream failed")
            self.status = "failed"
            self.error = DomainError(type(exc).__name__)

    async def _watch(
        self,
        pump: asyncio.Task[None],
        stop_requested: Callable[[], Awaitable[bool]],
        client_gone: Callable[[], bool],
    ) -> None:
        """Stop and a vanished client end the reply even while the model is silent."""
        while not pump.done():
            await asyncio.sleep(STOP_POLL)
            if client_gone() or await stop_requested():
                break
        if not pump.done():
            self.status = "stopped"
            pump.cancel()


def _event_stream() -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Cache-Control": "no-cache, no-store",
            # Proxies (nginx) pass each event on at once instead of buffering.
            "X-Accel-Buffering": "no",
        }
    )
    response.content_type = "text/event-stream"
    response.charset = "utf-8"
    return response


def _client_gone(request: web.Request) -> Callable[[], bool]:
    def gone() -> bool:
        transport = request.transport
        return transport is None or transport.is_closing()

    return gone


@operation(
    "POST",
    "/api/chat",
    summary="Send a message; the reply streams back as Server-Sent Events",
    responses={
        200: Answer(
            "The reply as it is written: each event as `event` and its JSON `data`.",
            media="text/event-stream",
            schema=EVENT_SCHEMA,
        )
    },
    errors={
        404: "No such conversation of the user, or no such model.",
        409: "A reply to the user is still being written.",
    },
    extra={"x-sse-events": EVENTS},
    tags=TAGS,
)
async def send_message(request: web.Request, body: ChatRequest) -> web.StreamResponse:
    """``POST /api/chat`` ``{"text", "conversation_id"?: int|null, "model_id"?}``: the reply as
    Server-Sent Events (see the module's description). ``conversation_id`` omitted continues
    the current conversation, null starts a new one."""
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    text = body.text
    if not text.strip():
        raise InvalidInput('expected {"text": "..."}', fields=["text"])
    conversation_id = body.conversation_id
    model_id = body.model_id
    menu = _menu(ctx)
    if ctx.providers is None:
        raise ModelUnavailable("no model providers configured")
    async with ctx.uow_factory() as uow:
        setup = await turns.setup_turn(
            uow,
            user_id=user_id,
            models=menu,
            conversation_id=conversation_id,
            new_conversation="conversation_id" in body.model_fields_set and conversation_id is None,
            model_id=model_id,
        )
        sink = WebSink(request, ctx, language=request_language(request))
        # Busy (another reply of this user streams, here or in the bot) is a 409 before any
        # event; everything after the turn begins is an event.
        await turns.run_turn(
            uow,
            ctx.uow_factory,
            ctx.redis,
            sink,
            user_id=user_id,
            text=text.strip(),
            providers=ctx.providers,
            clock=ctx.clock,
            prefs=setup.prefs,
            turn_id=sink.turn_id,
            owner=ctx.owner,
            model=setup.model,
            tariffs=ctx.tariffs,
            file_limits=ctx.file_limits,
            embedder=ctx.embedder,
            documents=setup.documents,
        )
    return sink.response


class WebSink:
    """A turn over Server-Sent Events: each chunk written the moment it arrives, then ``done``
    (or ``error`` alone when the turn could not begin)."""

    def __init__(self, request: web.Request, ctx: WebContext, *, language: str) -> None:
        self.request = request
        self.ctx = ctx
        self.language = language
        self.turn_id = turn_lock.new_turn_id()
        self.response = _event_stream()
        self.relay: _Relay | None = None
        self.gone = False

    async def _write(self, event: str, data: Mapping[str, object]) -> None:
        if self.gone:
            return
        try:
            if not self.response.prepared:
                await self.response.prepare(self.request)
            await self.response.write(_frame(event, data))
        except (ConnectionError, _ClientGone):
            self.gone = True

    async def _end(self) -> None:
        if not self.gone:
            with contextlib.suppress(ConnectionError):
                await self.response.write_eof()

    async def refused(self, error: DomainError) -> None:
        log.info("chat turn not started: %s (%s)", error.code, error.detail)
        await self._write("error", _error(error, self.language))
        await self._end()

    async def started(self, turn: turns.Turn) -> None:
        self.relay = _Relay(self.response, show_reasoning=turn.prefs.reasoning)
        await self._write(
            "start", {"turn_id": turn.turn_id, "conversation_id": turn.conversation_id}
        )

    def _delivery(self, status: str) -> turns.Delivery:
        relay = self.relay
        assert relay is not None
        return turns.Delivery(
            text="".join(relay.text),
            reasoning="".join(relay.reasoning),
            reasoning_shown=relay.show_reasoning,
            usage=relay.usage,
            status=status,
            error=relay.error,
        )

    async def stream(
        self, events: AsyncGenerator[StreamEvent, None], stop: asyncio.Event
    ) -> turns.Delivery:
        assert self.relay is not None
        if self.gone:
            await events.aclose()
            return self._delivery("stopped")

        async def stop_requested() -> bool:
            return stop.is_set()

        await self.relay.run(
            events, stop_requested=stop_requested, client_gone=_client_gone(self.request)
        )
        return self._delivery(self.relay.status)

    async def cut(self, status: str) -> turns.Delivery:
        if status == "cut" and (self.gone or _client_gone(self.request)()):
            # aiohttp cancels a request whose client went away: that is the client's Stop.
            status = "stopped"
        if self.relay is None:
            return turns.Delivery(status=status)
        return self._delivery(status)

    async def finished(
        self, turn: turns.Turn, delivery: turns.Delivery, result: turns.TurnResult | None
    ) -> None:
        if delivery.error is not None:
            log.info(
                "chat of user %s: the model failed: %s (%s)",
                turn.user_id,
                delivery.error.code,
                delivery.error.detail,
            )
            await self._write("error", _error(delivery.error, self.language))
        if result is None:
            await self._write("error", _error(DomainError("not settled"), self.language))
        else:
            balance = result.balance_after
            if balance is None and not self.gone:
                try:
                    async with self.ctx.uow_factory() as uow:
                        balance = (await payments.balance_of(uow, turn.user_id)).balance
                except Exception as exc:
                    if (outage := as_unavailable(exc)) is None:
                        raise
                    # The reply is delivered and its settlement kept; the rest must wait.
                    await self._write("error", _error(outage, self.language))
                    await self._end()
                    return
            await self._write(
                "done",
                {
                    "message_id": result.message_id,
                    "status": delivery.status,
                    "charged_kopecks": result.charged,
                    "free": result.free,
                    "balance_kopecks": balance,
                    "sources": turn.cited(delivery.text),
                },
            )
        await self._end()


@operation(
    "POST",
    r"/api/messages/{message_id:\d+}/redo",
    summary="Ask the last turn again (regenerate, another model, an edited prompt, retry)",
    responses={
        200: Answer(
            "The new reply as it is written, as for POST /api/chat.",
            media="text/event-stream",
            schema=EVENT_SCHEMA,
        )
    },
    errors={
        400: "Not the last turn, or a turn that cannot be asked again.",
        404: "No such message of the user, or no such model.",
        409: "A reply to the user is still being written.",
    },
    extra={"x-sse-events": EVENTS},
    tags=TAGS,
)
async def redo_message(
    request: web.Request, path: MessagePath, body: RedoRequest
) -> web.StreamResponse:
    """``POST /api/messages/{message_id}/redo`` ``{"text"?, "model_id"?}``: the last turn
    asked again, as Server-Sent Events (see the module's description)."""
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    message_id = path.message_id
    text = body.text
    if text is not None and not text.strip():
        raise InvalidInput('expected {"text": "..."} or no text', fields=["text"])
    model_id = body.model_id
    menu = _menu(ctx)
    if ctx.providers is None:
        raise ModelUnavailable("no model providers configured")
    async with ctx.uow_factory() as uow:
        # Told before any event when it is plain already; checked again under the user's lock.
        await redo.last_turn(uow, user_id, message_id)
        setup = await turns.setup_turn(uow, user_id=user_id, models=menu, model_id=model_id)
        sink = WebSink(request, ctx, language=request_language(request))
        await turns.run_turn(
            uow,
            ctx.uow_factory,
            ctx.redis,
            sink,
            user_id=user_id,
            text=text.strip() if text else "",
            providers=ctx.providers,
            clock=ctx.clock,
            prefs=setup.prefs,
            turn_id=sink.turn_id,
            owner=ctx.owner,
            # None: the model that answered the turn asked again.
            model=setup.model if model_id is not None else None,
            models=menu,
            tariffs=ctx.tariffs,
            file_limits=ctx.file_limits,
            embedder=ctx.embedder,
            documents=setup.documents,
            redo_of=message_id,
        )
    return sink.response


@operation(
    "POST",
    r"/api/messages/{message_id:\d+}/rating",
    summary="Rate a reply 👍 (1) or 👎 (-1), or clear the rating (null)",
    responses={200: Answer("The rated reply and its rating.", Rated)},
    errors={404: "No such reply of the user."},
    tags=TAGS,
)
async def rate_message(request: web.Request, path: MessagePath, body: Rating) -> web.Response:
    """``POST /api/messages/{message_id}/rating`` ``{"rating": 1|-1|null}``: 👍, 👎 or none on
    a reply (or the reply to a prompt)."""
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    rating = body.rating
    async with ctx.uow_factory() as uow:
        reply_id = await redo.rate_reply(uow, user_id, path.message_id, rating=rating)
    return web.json_response({"message_id": reply_id, "rating": rating})


@operation(
    "POST",
    "/api/chat/{turn_id:[0-9a-f]{16}}/stop",
    summary="Stop a reply being written (the user's own; others: 404)",
    responses={204: Answer("Stopped, or already over.")},
    tags=TAGS,
)
async def stop_turn(request: web.Request, path: TurnPath) -> web.Response:
    """``POST /api/chat/{turn_id}/stop``: the reply ends with what was written so far."""
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    await turn_lock.request_stop(ctx.redis, user_id=user_id, turn_id=path.turn_id)
    return web.Response(status=204)


def setup(app: web.Application) -> None:
    add_routes(
        app,
        list_models,
        set_model,
        list_conversations,
        start_conversation,
        delete_conversation,
        list_messages,
        pin_message,
        redo_message,
        rate_message,
        send_message,
        stop_turn,
    )
