"""Broadcasts: one message copied to every user of a segment by the background worker, at a
pace Telegram allows, resumable after a restart (the cursor is the last user id handled and is
committed with each send).

Segments: ``all`` (service announcements: everyone who can receive messages), ``marketing``
(only users who opted in to marketing messages), ``ru`` / ``en`` (by interface language, also
only with the marketing opt-in). Accounts that are erased, blocked, or that blocked the bot are
skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, select, update

from core.errors import InvalidInput, NotFound
from db.models import Broadcast, User
from db.uow import UnitOfWork

SEGMENTS = ("all", "marketing", "ru", "en")


@dataclass(frozen=True, slots=True)
class BroadcastDTO:
    id: int
    segment: str
    status: str
    total: int
    sent: int
    failed: int
    last_user_id: int
    source_chat_id: int
    source_message_id: int
    progress_chat_id: int | None
    progress_message_id: int | None

    @property
    def done(self) -> int:
        return self.sent + self.failed


def _dto(row: Broadcast) -> BroadcastDTO:
    return BroadcastDTO(
        row.id,
        row.segment,
        row.status,
        row.total,
        row.sent,
        row.failed,
        row.last_user_id,
        row.source_chat_id,
        row.source_message_id,
        row.progress_chat_id,
        row.progress_message_id,
    )


def _audience(segment: str) -> ColumnElement[bool]:
    base = and_(
        User.deleted_at.is_(None),
        User.is_blocked.is_(False),
        User.telegram_id.is_not(None),
        User.bot_blocked_at.is_(None),
    )
    if segment == "all":
        return base
    if segment == "marketing":
        return and_(base, User.marketing_opt_in.is_(True))
    return and_(base, User.marketing_opt_in.is_(True), User.language == segment)


async def create(
    uow: UnitOfWork,
    *,
    admin_telegram_id: int,
    source_chat_id: int,
    source_message_id: int,
    segment: str,
    progress_chat_id: int | None = None,
    progress_message_id: int | None = None,
) -> BroadcastDTO:
    if segment not in SEGMENTS:
        raise InvalidInput(f"segment {segment!r}")
    total = await uow.session.scalar(
        select(func.count()).select_from(User).where(_audience(segment))
    )
    row = Broadcast(
        admin_telegram_id=admin_telegram_id,
        source_chat_id=source_chat_id,
        source_message_id=source_message_id,
        segment=segment,
        total=int(total or 0),
        progress_chat_id=progress_chat_id,
        progress_message_id=progress_message_id,
    )
    uow.session.add(row)
    await uow.session.flush()
    result = _dto(row)
    await uow.commit()
    return result


async def get(uow: UnitOfWork, broadcast_id: int) -> BroadcastDTO:
    async with uow.reading():
        row = await uow.session.get(Broadcast, broadcast_id)
        if row is None:
            raise NotFound(f"broadcast {broadcast_id}")
        result = _dto(row)
    return result


async def next_recipients(
    uow: UnitOfWork, broadcast: BroadcastDTO, *, limit: int = 100
) -> list[tuple[int, int]]:
    """(user id, Telegram id) of the next users after the cursor, in id order."""
    async with uow.reading():
        rows = (
            await uow.session.execute(
                select(User.id, User.telegram_id)
                .where(_audience(broadcast.segment), User.id > broadcast.last_user_id)
                .order_by(User.id)
                .limit(limit)
            )
        ).all()
    return [(int(user_id), int(tg)) for user_id, tg in rows]


async def advance(uow: UnitOfWork, broadcast_id: int, *, user_id: int, delivered: bool) -> None:
    """One user handled: move the cursor and count it, in one statement."""
    await uow.session.execute(
        update(Broadcast)
        .where(Broadcast.id == broadcast_id, Broadcast.last_user_id < user_id)
        .values(
            last_user_id=user_id,
            status="running",
            sent=Broadcast.sent + (1 if delivered else 0),
            failed=Broadcast.failed + (0 if delivered else 1),
        )
    )
    await uow.commit()


async def finish(uow: UnitOfWork, broadcast_id: int, *, now: datetime) -> BroadcastDTO:
    row = await uow.session.get(Broadcast, broadcast_id, with_for_update=True)
    if row is None:
        raise NotFound(f"broadcast {broadcast_id}")
    row.status = "done"
    row.finished_at = now
    await uow.session.flush()
    result = _dto(row)
    await uow.commit()
    return result


async def unfinished(uow: UnitOfWork) -> list[int]:
    async with uow.reading():
        ids = list(
            await uow.session.scalars(
                select(Broadcast.id)
                .where(Broadcast.status.in_(("queued", "running")))
                .order_by(Broadcast.id)
            )
        )
    return ids
