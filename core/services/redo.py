"""Asking again, and what a user can ask about a reply: regenerate it (with the same model or
another), re-ask an edited prompt, retry one that failed; rate a reply 👍/👎; tell what it cost.

A turn is a prompt and what follows it in its conversation up to the next prompt. Only the last
turn of a conversation is asked again (an older one would leave later answers built on a reply
that is gone); the new turn finds it under the user's lock and marks its messages replaced as
it begins (``turns.run_turn``, ``turns.begin_turn``): they stay in the history, marked, but
never reach a model again.
Someone else's message is NotFound, never forbidden: ids reveal nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update

from core.errors import InvalidInput, NotFound
from core.i18n import N_
from db.models import ChatMessageRow
from db.uow import UnitOfWork

RATINGS = (-1, 1)
# What a stored prompt starts with for each picture it had (the picture itself is not kept).
PICTURE_MARK = "📷 "
# The newest messages looked at to find a conversation's last prompt.
_LAST_TURN_ROWS = 50


class AlreadyReplaced(InvalidInput):
    code = "already_replaced"
    msgid = N_("This answer was already replaced by a newer one.")


class NotLastTurn(InvalidInput):
    code = "not_last_turn"
    msgid = N_("Only the last message of a chat can be asked again.")


class PictureNotKept(InvalidInput):
    code = "picture_not_kept"
    msgid = N_("Pictures are not kept, so this message cannot be asked again. Send it again.")


class NoReply(NotFound):
    code = "no_reply"
    msgid = N_("This reply is no longer kept.")


@dataclass(frozen=True, slots=True)
class RedoTarget:
    """The last turn of a conversation, to be asked again."""

    conversation_id: int
    prompt: str
    # Every message of the turn (the prompt first): the new turn replaces them.
    message_ids: tuple[int, ...]
    # The model that answered (None: no reply was stored).
    model_id: str | None


@dataclass(frozen=True, slots=True)
class ReplyCost:
    message_id: int
    model_id: str | None
    # Kopecks charged (0: free); None for a reply stored before costs were kept.
    cost: int | None
    input_tokens: int | None
    output_tokens: int | None


async def _own(uow: UnitOfWork, user_id: int, message_id: int) -> ChatMessageRow:
    row = await uow.session.get(ChatMessageRow, message_id)
    if row is None or row.user_id != user_id:
        raise NotFound(f"message {message_id}")
    return row


async def last_turn(uow: UnitOfWork, user_id: int, message_id: int) -> RedoTarget:
    """The turn ``message_id`` (its prompt or its reply) belongs to, when it is the last of its
    conversation and not replaced yet (else NotLastTurn, AlreadyReplaced)."""
    async with uow.reading():
        row = await _own(uow, user_id, message_id)
        if row.replaced:
            raise AlreadyReplaced(f"message {message_id}")
        conversation_id = row.conversation_id
        rows = (
            await uow.session.execute(
                select(
                    ChatMessageRow.id,
                    ChatMessageRow.role,
                    ChatMessageRow.content,
                    ChatMessageRow.model_id,
                )
                .where(
                    ChatMessageRow.conversation_id == conversation_id,
                    ChatMessageRow.replaced.is_(False),
                )
                .order_by(ChatMessageRow.id.desc())
                .limit(_LAST_TURN_ROWS)
            )
        ).all()
    turn: list[tuple[int, str, str, str | None]] = []
    for found in rows:
        turn.append(tuple(found))
        if found.role == "user":
            break
    if not turn or turn[-1][1] != "user" or message_id not in {m[0] for m in turn}:
        raise NotLastTurn(f"message {message_id}")
    turn.reverse()
    if turn[0][2].startswith(PICTURE_MARK):
        # The model would be asked about a picture it cannot see any more.
        raise PictureNotKept(f"message {turn[0][0]}")
    replies = [m for m in turn if m[1] == "assistant"]
    return RedoTarget(
        conversation_id=conversation_id,
        prompt=turn[0][2],
        message_ids=tuple(m[0] for m in turn),
        model_id=replies[-1][3] if replies else turn[0][3],
    )


async def _reply(uow: UnitOfWork, user_id: int, message_id: int) -> ChatMessageRow:
    """The reply itself, or the reply to a prompt."""
    row = await _own(uow, user_id, message_id)
    if row.role == "assistant":
        return row
    following = await uow.session.scalar(
        select(ChatMessageRow)
        .where(ChatMessageRow.conversation_id == row.conversation_id, ChatMessageRow.id > row.id)
        .order_by(ChatMessageRow.id)
        .limit(1)
    )
    if following is None or following.role != "assistant":
        raise NoReply(f"no reply to message {message_id}")
    return following


async def rate_reply(uow: UnitOfWork, user_id: int, message_id: int, *, rating: int | None) -> int:
    """Rate a reply (or the reply to a prompt) 👍 (1), 👎 (-1) or not at all (None); the id of
    the reply rated."""
    if rating is not None and rating not in RATINGS:
        raise InvalidInput(f"rating {rating!r}")
    async with uow.transaction():
        reply = await _reply(uow, user_id, message_id)
        reply_id = reply.id
        await uow.session.execute(
            update(ChatMessageRow).where(ChatMessageRow.id == reply_id).values(rating=rating)
        )
    return reply_id


async def reply_cost(uow: UnitOfWork, user_id: int, message_id: int) -> ReplyCost:
    """What a reply (or the reply to a prompt) cost and the tokens it was charged for."""
    async with uow.reading():
        reply = await _reply(uow, user_id, message_id)
        return ReplyCost(
            message_id=reply.id,
            model_id=reply.model_id,
            cost=reply.cost,
            input_tokens=reply.input_tokens,
            output_tokens=reply.output_tokens,
        )
