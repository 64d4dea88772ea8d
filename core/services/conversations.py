"""Conversations and their messages: the current one, new ones, listing, naming, their own
model and preset, pinning and deleting. Someone else's conversation or message is NotFound,
never forbidden: ids reveal nothing.

A conversation's settings are its own: ``model_id`` (null: the user's default, their pick else
the menu's) and ``preset_id`` (the instructions it began with, unless changed here). Picking a
model or a preset elsewhere never starts a new conversation: a preset applies to the next one,
a model to every conversation that follows the default (``settings_of``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update

from core.errors import InvalidInput, NotFound, UserBlocked
from core.services.chat import ChatPrefs, ModelMenu, menu_model, prefs_of, user_of
from core.text import clean
from db.models import ChatMessageRow, Conversation, Preset, User
from db.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class ConversationDTO:
    id: int
    title: str | None
    # Null: the user's default model.
    model_id: str | None
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
    # Asked again: kept and shown as replaced, never sent to a model again.
    replaced: bool = False
    # The user's 👍 (1) or 👎 (-1), and what the reply cost in kopecks (None: not known).
    rating: int | None = None
    cost: int | None = None
    # Where the passages a reply cites came from ("a.pdf, p. 3"), in the order first cited.
    sources: tuple[str, ...] = ()


# Titles made from a first message fit a list line; a name given by the user may be longer.
TITLE_CHARS = 64
MAX_TITLE_CHARS = 128


def title_from(text: str, limit: int = TITLE_CHARS) -> str | None:
    """A title from what was said: one line, cut at a word boundary with "…" when longer than
    ``limit`` characters (a single long word is cut where it must)."""
    words = " ".join(clean(text).split())
    if len(words) <= limit:
        return words or None
    head = words[: limit - 1]
    if words[limit - 1] != " " and " " in head:
        # The last word would be cut: leave it out.
        head = head.rsplit(" ", 1)[0]
    return head.rstrip(" ,.;:-–—") + "…"


def _dto(c: Conversation) -> ConversationDTO:
    return ConversationDTO(c.id, c.title, c.model_id, c.preset_id, c.updated_at)


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
        replaced=row.replaced,
        rating=row.rating,
        cost=row.cost,
        sources=tuple(row.sources or ()),
    )


async def current_conversation(
    uow: UnitOfWork, user_id: int, *, title: str, model_id: str | None = None
) -> int:
    """The user's current conversation, started now if there is none (files are attached to
    it before anything is said), with ``model_id`` of its own (None: the user's default)."""
    async with uow.transaction():
        user = await user_of(uow, user_id)
        current = (user.features or {}).get("conversation_id")
        if current:
            conversation = await uow.session.get(Conversation, current)
            if conversation is not None and conversation.user_id == user_id:
                return conversation.id
        return await _open_conversation(uow, user, title=title, model_id=model_id)


async def start_conversation(
    uow: UnitOfWork, user_id: int, *, title: str, models: ModelMenu
) -> ConversationDTO:
    """A new, empty conversation with the user's model, which becomes the current one (files
    are attached to it before anything is said)."""
    user = await user_of(uow, user_id)
    if user.is_blocked:
        raise UserBlocked(f"user {user_id}")
    # The menu must have a model for it (NotFound otherwise); it follows the user's default.
    models.get(prefs_of(user).model_id)
    # Commits in a block that the reads above join.
    conversation_id = await _open_conversation(uow, user, title=title, model_id=None)
    async with uow.reading():
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
    return ConversationDTO(*row)


async def _open_conversation(
    uow: UnitOfWork, user: User, *, title: str, model_id: str | None
) -> int:
    conversation = Conversation(
        user_id=user.id,
        model_id=model_id,
        preset_id=(user.features or {}).get("preset_id"),
        title=title_from(title),
    )
    async with uow.transaction():
        uow.session.add(conversation)
        await uow.session.flush()
        conversation_id = conversation.id
        features = {**(user.features or {}), "conversation_id": conversation_id}
        await uow.session.execute(update(User).where(User.id == user.id).values(features=features))
    return conversation_id


async def list_conversations(
    uow: UnitOfWork, user_id: int, *, limit: int = 200
) -> list[ConversationDTO]:
    """The user's conversations, the most recently active first."""
    async with uow.reading():
        rows = await uow.session.scalars(
            select(Conversation)
            .where(Conversation.user_id == user_id)
            .order_by(Conversation.updated_at.desc(), Conversation.id.desc())
            .limit(limit)
        )
        return [_dto(c) for c in rows]


async def own_conversation(uow: UnitOfWork, user_id: int, conversation_id: int) -> Conversation:
    conversation = await uow.session.get(Conversation, conversation_id)
    # Someone else's conversation is not found, never forbidden: ids reveal nothing.
    if conversation is None or conversation.user_id != user_id:
        raise NotFound(f"conversation {conversation_id}")
    return conversation


_KEEP = object()


async def update_conversation(
    uow: UnitOfWork,
    user_id: int,
    conversation_id: int,
    *,
    models: ModelMenu,
    title: str | object | None = _KEEP,
    model_id: str | object | None = _KEEP,
    preset_id: int | object | None = _KEEP,
) -> ConversationDTO:
    """Rename a conversation, give it a model of its own (None: follow the user's default) or
    other instructions (None: none). What is not given stays. A title is one line of 1 to 128
    characters; a model must be on the menu, a preset the user's own."""
    async with uow.transaction():
        conversation = await own_conversation(uow, user_id, conversation_id)
        if title is not _KEEP:
            name = " ".join(clean(str(title or "")).split())
            if not 1 <= len(name) <= MAX_TITLE_CHARS:
                raise InvalidInput(
                    f"a title has 1 to {MAX_TITLE_CHARS} characters", fields=["title"]
                )
            conversation.title = name
        if model_id is not _KEEP:
            conversation.model_id = (
                None if model_id is None else menu_model(models, str(model_id)).id
            )
        if preset_id is not _KEEP:
            if isinstance(preset_id, int):
                preset = await uow.session.get(Preset, preset_id)
                if preset is None or preset.user_id != user_id:
                    raise NotFound(f"preset {preset_id}")
                conversation.preset_id = preset_id
            else:
                conversation.preset_id = None
        await uow.session.flush()
        result = _dto(conversation)
    return result


async def choose_model_now(
    uow: UnitOfWork, user_id: int, *, model_id: str, models: ModelMenu
) -> ChatPrefs:
    """The user's default model, which the current conversation answers with from now on too
    (one it had of its own is dropped): a pick in the bot applies where the user is talking,
    and never starts a new conversation."""
    model = menu_model(models, model_id)
    async with uow.transaction():
        user = await user_of(uow, user_id)
        features = {**(user.features or {}), "model": model.id}
        await uow.session.execute(update(User).where(User.id == user_id).values(features=features))
        current = features.get("conversation_id")
        if current:
            await uow.session.execute(
                update(Conversation)
                .where(Conversation.id == current, Conversation.user_id == user_id)
                .values(model_id=None)
            )
    user.features = features
    return prefs_of(user)


async def settings_of(
    uow: UnitOfWork, user_id: int, prefs: ChatPrefs
) -> tuple[ChatPrefs, str | None]:
    """The settings a turn in ``prefs.conversation_id`` uses: that conversation's preset, and
    its own model (None: the user's default). A new conversation (none, or one that is gone)
    takes the user's preset."""
    if prefs.conversation_id is None:
        return prefs, None
    conversation = await uow.session.get(Conversation, prefs.conversation_id)
    if conversation is None or conversation.user_id != user_id:
        return prefs, None
    return dataclasses.replace(prefs, preset_id=conversation.preset_id), conversation.model_id


async def conversation_messages(
    uow: UnitOfWork, user_id: int, conversation_id: int, *, limit: int = 1000
) -> list[MessageDTO]:
    """The newest ``limit`` messages of one of the user's conversations, oldest first."""
    async with uow.reading():
        await own_conversation(uow, user_id, conversation_id)
        rows = await uow.session.scalars(
            select(ChatMessageRow)
            .where(ChatMessageRow.conversation_id == conversation_id)
            .order_by(ChatMessageRow.id.desc())
            .limit(limit)
        )
        found = [_message(row) for row in rows]
    found.reverse()
    return found


async def pin_message(
    uow: UnitOfWork, user_id: int, message_id: int, *, pinned: bool
) -> MessageDTO:
    async with uow.transaction():
        row = await uow.session.get(ChatMessageRow, message_id)
        if row is None or row.user_id != user_id:
            raise NotFound(f"message {message_id}")
        row.is_pinned = pinned
        await uow.session.flush()
        result = _message(row)
    return result


async def delete_conversation(uow: UnitOfWork, user_id: int, conversation_id: int) -> None:
    """A conversation and its messages (attachments and share links go with it). When it was
    the current one, the next message starts a new one."""
    async with uow.transaction():
        await own_conversation(uow, user_id, conversation_id)
        await uow.session.execute(
            delete(Conversation).where(
                Conversation.id == conversation_id, Conversation.user_id == user_id
            )
        )
        user = await user_of(uow, user_id)
        if (user.features or {}).get("conversation_id") == conversation_id:
            features = {**user.features, "conversation_id": None}
            await uow.session.execute(
                update(User).where(User.id == user_id).values(features=features)
            )
