"""Conversations and their messages: the current one, new ones, listing, pinning and deleting.
Someone else's conversation or message is NotFound, never forbidden: ids reveal nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update

from core.errors import NotFound, UserBlocked
from core.services.chat import ModelMenu, prefs_of, user_of
from core.text import clean
from db.models import ChatMessageRow, Conversation, User
from db.uow import UnitOfWork


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
    # Asked again: kept and shown as replaced, never sent to a model again.
    replaced: bool = False
    # The user's 👍 (1) or 👎 (-1), and what the reply cost in kopecks (None: not known).
    rating: int | None = None
    cost: int | None = None


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
    )


async def current_conversation(uow: UnitOfWork, user_id: int, *, title: str, model_id: str) -> int:
    """The user's current conversation, started now if there is none (files are attached to
    it before anything is said)."""
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
    model = models.get(prefs_of(user).model_id)
    # Commits in a block that the reads above join.
    conversation_id = await _open_conversation(uow, user, title=title, model_id=model.id)
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


async def _open_conversation(uow: UnitOfWork, user: User, *, title: str, model_id: str) -> int:
    conversation = Conversation(
        user_id=user.id,
        model_id=model_id,
        preset_id=(user.features or {}).get("preset_id"),
        title=clean(title).strip()[:64] or None,
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
        return [ConversationDTO(c.id, c.title, c.model_id, c.preset_id, c.updated_at) for c in rows]


async def own_conversation(uow: UnitOfWork, user_id: int, conversation_id: int) -> Conversation:
    conversation = await uow.session.get(Conversation, conversation_id)
    # Someone else's conversation is not found, never forbidden: ids reveal nothing.
    if conversation is None or conversation.user_id != user_id:
        raise NotFound(f"conversation {conversation_id}")
    return conversation


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
