"""Support through the admin chat: each user's messages are copied there (into a forum topic of
their own, or under a header message in a plain group), and support's replies are copied back,
from the bot, without revealing who answered. Only message ids are stored, to route replies and
edits; the texts stay in Telegram."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert

from core.services import billing
from core.services.tariffs import Tariffs, active_subscription
from db.models import SupportMessage, SupportThread, User
from db.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class ThreadDTO:
    user_id: int
    admin_chat_id: int
    topic_id: int | None
    header_message_id: int | None


@dataclass(frozen=True, slots=True)
class UserCard:
    """What support sees about a user at the top of their thread."""

    user_id: int
    telegram_id: int | None
    username: str | None
    name: str | None
    language: str
    balance: int
    plan: str | None
    plan_until: datetime | None
    last_activity_at: datetime | None
    created_at: datetime
    is_blocked: bool
    bot_blocked_at: datetime | None
    # The account's email address (a web account may have no Telegram at all), and how it
    # signs in: "telegram", "email", "google", "yandex".
    email: str | None = None
    sign_in: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Route:
    """Where a support reply goes: the user's Telegram chat, and the message it answers there."""

    user_id: int
    telegram_id: int
    reply_to: int | None


def _thread(row: SupportThread) -> ThreadDTO:
    return ThreadDTO(row.user_id, row.admin_chat_id, row.topic_id, row.header_message_id)


async def user_card(
    uow: UnitOfWork, user_id: int, *, tariffs: Tariffs | None, now: datetime
) -> UserCard:
    async with uow.reading():
        user = await uow.session.get(User, user_id)
        if user is None:
            raise LookupError(user_id)
        balance = await billing.get_balance(uow, user_id)
        subscription = await active_subscription(uow, user_id, now)
        identities = await uow.users.identities(user_id)
        email = next((i.subject for i in identities if i.provider == "email"), None) or next(
            (i.email for i in identities if i.email and i.email_verified), None
        )
        card = UserCard(
            user_id=user.id,
            telegram_id=user.telegram_id,
            username=user.username,
            name=user.profile_name,
            language=user.language,
            balance=balance.balance,
            plan=subscription.plan if subscription is not None else None,
            plan_until=subscription.current_period_end if subscription is not None else None,
            last_activity_at=user.last_activity_at,
            created_at=user.created_at,
            is_blocked=user.is_blocked,
            bot_blocked_at=user.bot_blocked_at,
            email=email,
            sign_in=tuple(dict.fromkeys(i.provider for i in identities)),
        )
    return card


async def thread_of(uow: UnitOfWork, user_id: int, admin_chat_id: int) -> ThreadDTO | None:
    async with uow.reading():
        row = await uow.session.get(SupportThread, user_id)
        result = None if row is None or row.admin_chat_id != admin_chat_id else _thread(row)
    return result


async def save_thread(
    uow: UnitOfWork,
    *,
    user_id: int,
    admin_chat_id: int,
    topic_id: int | None,
    header_message_id: int | None,
    now: datetime,
) -> ThreadDTO:
    """Record (or replace, after a topic was deleted or the admin chat changed) a user's thread."""
    values = {
        "admin_chat_id": admin_chat_id,
        "topic_id": topic_id,
        "header_message_id": header_message_id,
        "last_message_at": now,
    }
    await uow.session.execute(
        insert(SupportThread)
        .values(user_id=user_id, **values)
        .on_conflict_do_update(index_elements=["user_id"], set_=values)
    )
    await uow.commit()
    return ThreadDTO(user_id, admin_chat_id, topic_id, header_message_id)


async def record_message(
    uow: UnitOfWork,
    *,
    user_id: int,
    direction: str,
    user_message_id: int,
    admin_chat_id: int,
    admin_message_id: int,
    now: datetime,
) -> None:
    await uow.session.execute(
        insert(SupportMessage)
        .values(
            user_id=user_id,
            direction=direction,
            user_message_id=user_message_id,
            admin_chat_id=admin_chat_id,
            admin_message_id=admin_message_id,
        )
        .on_conflict_do_nothing(index_elements=["admin_chat_id", "admin_message_id"])
    )
    await uow.session.execute(
        update(SupportThread).where(SupportThread.user_id == user_id).values(last_message_at=now)
    )
    if direction == "in":
        # The user wrote: whatever block was recorded is over.
        await uow.session.execute(
            update(User).where(User.id == user_id).values(bot_blocked_at=None)
        )
    await uow.commit()


async def route_reply(
    uow: UnitOfWork,
    *,
    admin_chat_id: int,
    topic_id: int | None,
    reply_to_message_id: int | None,
) -> Route | None:
    """Which user an admin's message in the admin chat is meant for: the topic's owner in a
    forum; in a plain group, the user whose relayed message (or thread header) it replies to."""
    user_id: int | None = None
    reply_to: int | None = None
    async with uow.reading():
        if reply_to_message_id is not None:
            relayed = (
                await uow.session.scalars(
                    select(SupportMessage).where(
                        SupportMessage.admin_chat_id == admin_chat_id,
                        SupportMessage.admin_message_id == reply_to_message_id,
                    )
                )
            ).first()
            if relayed is not None:
                user_id = relayed.user_id
                reply_to = relayed.user_message_id
            else:
                user_id = await uow.session.scalar(
                    select(SupportThread.user_id).where(
                        SupportThread.admin_chat_id == admin_chat_id,
                        SupportThread.header_message_id == reply_to_message_id,
                    )
                )
        if user_id is None and topic_id is not None:
            user_id = await uow.session.scalar(
                select(SupportThread.user_id).where(
                    SupportThread.admin_chat_id == admin_chat_id, SupportThread.topic_id == topic_id
                )
            )
        telegram_id = (
            await uow.session.scalar(select(User.telegram_id).where(User.id == user_id))
            if user_id is not None
            else None
        )
    if user_id is None or telegram_id is None:
        return None
    return Route(user_id, telegram_id, reply_to)


@dataclass(frozen=True, slots=True)
class Relayed:
    user_id: int
    user_message_id: int
    admin_chat_id: int
    admin_message_id: int


async def counterpart(
    uow: UnitOfWork,
    *,
    direction: str,
    message_id: int,
    user_id: int | None = None,
    admin_chat_id: int | None = None,
) -> Relayed | None:
    """The copy of an edited message: for a user's message (``in``) its copy in the admin chat;
    for support's reply (``out``) its copy in the user's chat."""
    query = select(SupportMessage).where(SupportMessage.direction == direction)
    if direction == "in":
        query = query.where(
            SupportMessage.user_id == user_id, SupportMessage.user_message_id == message_id
        )
    else:
        query = query.where(
            SupportMessage.admin_chat_id == admin_chat_id,
            SupportMessage.admin_message_id == message_id,
        )
    async with uow.reading():
        row = (await uow.session.scalars(query.order_by(SupportMessage.id.desc()).limit(1))).first()
        found = (
            None
            if row is None
            else Relayed(row.user_id, row.user_message_id, row.admin_chat_id, row.admin_message_id)
        )
    return found


async def telegram_id_of(uow: UnitOfWork, user_id: int) -> int | None:
    async with uow.reading():
        user = await uow.users.get(user_id)
        return user.telegram_id if user is not None else None


async def mark_bot_blocked(uow: UnitOfWork, *, user_id: int, now: datetime) -> None:
    """Telegram said the user blocked the bot: nothing more is sent until they write again."""
    await uow.session.execute(update(User).where(User.id == user_id).values(bot_blocked_at=now))
    await uow.commit()


@dataclass(frozen=True, slots=True)
class SupportTrace:
    """What support holds of a user in the admin chat: their topic, or the copies of their
    messages and support's replies, to be deleted with the account."""

    admin_chat_id: int
    topic_id: int | None
    message_ids: tuple[int, ...]


async def trace_of(uow: UnitOfWork, user_id: int) -> SupportTrace | None:
    async with uow.reading():
        thread = await uow.session.get(SupportThread, user_id)
        if thread is None:
            return None
        ids = [thread.header_message_id] if thread.header_message_id else []
        ids += list(
            await uow.session.scalars(
                select(SupportMessage.admin_message_id).where(
                    SupportMessage.user_id == user_id,
                    SupportMessage.admin_chat_id == thread.admin_chat_id,
                )
            )
        )
        trace = SupportTrace(thread.admin_chat_id, thread.topic_id, tuple(ids))
    return trace
