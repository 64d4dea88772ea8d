"""The inbox: Telegram updates are recorded before Telegram is told they arrived.

Invariants:
- An update is confirmed to Telegram (the next ``getUpdates`` offset, or a webhook's 200) only
  after its row is committed here; a crash before that makes Telegram deliver it again.
- ``update_id`` is the key: an update recorded twice (a redelivery) is handled once, by whoever
  inserted it.
- A row is deleted as soon as its update has been handled (or its handler failed and the failure
  was logged); rows a crash left behind are handled at the next start, oldest first.
- Webhook mode has no offset to confirm with: Telegram sends an update again when it did not see
  the 200 (a lost answer, a proxy's timeout), to any of the web processes, also after it was
  handled. So there a handled row is kept as its id alone (``HANDLED``: no payload, no sender)
  until retention purges it with the rows left behind (``MAX_AGE``, the time Telegram keeps
  an update), and such a redelivery finds it and is not handled again.
- A row holds the person's message: while it waits it is part of their export and erasure (by
  the sender's Telegram id), and one that lingers past ``MAX_AGE`` is purged by retention.
- The mark (per bot, the highest update id ever recorded) is moved in the same transaction as
  the rows. At start-up it is the first offset asked of Telegram, so updates recorded and handled
  but not yet confirmed before a crash are confirmed, not handled twice. Telegram numbers
  updates afresh (at random) after a week of silence, so an old mark is not used.

These run on the bot's hot path: Core statements, one per batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, any_, bindparam, delete, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from core.text import clean_json
from db.models import InboxMark, InboxUpdate
from db.uow import UnitOfWork

# A row is normally gone within seconds; one older than this was left by a fault.
MAX_AGE = timedelta(days=1)
# A mark older than this is not trusted as an offset (update ids may have started afresh).
MARK_MAX_AGE = timedelta(days=6)

# The payload of a handled update's row kept in webhook mode: nothing of the update but its id.
HANDLED: dict[str, Any] = {}

# Where an update names the person it comes from, by the update's kind.
_SENDER_KEYS = ("from", "user", "voter_chat")


@dataclass(frozen=True, slots=True)
class Waiting:
    update_id: int
    payload: dict[str, Any]
    received_at: datetime


def sender_of(update: Mapping[str, Any]) -> int | None:
    """The Telegram id of the person an update comes from (or is about), if it names one."""
    for key, value in update.items():
        if key == "update_id" or not isinstance(value, Mapping):
            continue
        for sender_key in _SENDER_KEYS:
            sender = value.get(sender_key)
            if isinstance(sender, Mapping) and isinstance(sender.get("id"), int):
                return int(sender["id"])
        chat = value.get("chat")
        if isinstance(chat, Mapping) and chat.get("type") == "private":
            return int(chat["id"])
    return None


async def _run(uow: UnitOfWork, statement: Any, *, returning: bool) -> tuple[list[int], int]:
    """Execute one statement, committed: (returned ids, row count). On a fresh unit of work
    without a transaction around it, so it is one round trip (each statement here is atomic on
    its own); inside a transaction already open (one the caller joined), as part of it."""
    joined = isinstance(uow.session.bind, AsyncConnection) or uow.session.in_transaction()
    if joined:
        result = await uow.session.execute(statement)
    else:
        conn = await uow.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        result = await conn.execute(statement)
    ids = [int(i) for i in result.scalars()] if returning else []
    count = int(getattr(result, "rowcount", 0) or 0)
    if joined:
        await uow.commit()
    return ids, count


_NEW_ROWS = """
    INSERT INTO inbox_updates (update_id, telegram_id, payload)
    SELECT * FROM unnest(:ids, :senders, :payloads)
    ON CONFLICT (update_id) DO NOTHING
    RETURNING update_id
"""
_ARRAYS = (
    bindparam("ids", type_=ARRAY(BigInteger)),
    bindparam("senders", type_=ARRAY(BigInteger)),
    bindparam("payloads", type_=ARRAY(JSONB)),
)
_RECORD = text(_NEW_ROWS).bindparams(*_ARRAYS).columns(update_id=BigInteger)
_RECORD_AND_MARK = (
    text(
        """
        WITH new_rows AS (
            INSERT INTO inbox_updates (update_id, telegram_id, payload)
            SELECT * FROM unnest(:ids, :senders, :payloads)
            ON CONFLICT (update_id) DO NOTHING
            RETURNING update_id),
        moved AS (
            INSERT INTO inbox_marks (bot_id, last_update_id) VALUES (:bot_id, :last)
            ON CONFLICT (bot_id) DO UPDATE
                SET last_update_id = excluded.last_update_id, recorded_at = now()
            RETURNING bot_id)
        SELECT update_id FROM new_rows
        """
    )
    .bindparams(
        *_ARRAYS, bindparam("bot_id", type_=BigInteger), bindparam("last", type_=BigInteger)
    )
    .columns(update_id=BigInteger)
)


async def record(
    uow: UnitOfWork, updates: Sequence[Mapping[str, Any]], *, bot_id: int | None = None
) -> set[int]:
    """Record a batch of raw updates, all or none, in one statement; the ids of those not
    recorded before (only these are to be handled). With ``bot_id`` the bot's mark moves to the
    batch's last id in the same statement."""
    if not updates:
        return set()
    rows = [
        # A message may carry NUL or a lone surrogate, which jsonb refuses: the row keeps the
        # update cleaned (handlers store what they keep cleaned too), never the whole batch stuck.
        {"update_id": int(u["update_id"]), "telegram_id": sender_of(u), "payload": clean_json(u)}
        for u in updates
    ]
    # One statement whatever the batch's size: the rows travel as three arrays, so the
    # statement is compiled once per process, not once per batch size.
    params = {
        "ids": [row["update_id"] for row in rows],
        "senders": [row["telegram_id"] for row in rows],
        "payloads": [row["payload"] for row in rows],
    }
    statement: Any
    if bot_id is None:
        statement = _RECORD.bindparams(**params)
    else:
        last = max(int(u["update_id"]) for u in updates)
        # Postgres runs both parts of the statement, or neither.
        statement = _RECORD_AND_MARK.bindparams(**params, bot_id=bot_id, last=last)
    ids, _ = await _run(uow, statement, returning=True)
    return set(ids)


def _ids(ids: list[int]) -> Any:
    # One array parameter: the statement is the same for any number of ids (an IN list is
    # rendered anew for each).
    return bindparam("ids", ids, type_=ARRAY(BigInteger))


async def forget(uow: UnitOfWork, update_ids: Iterable[int], *, keep_ids: bool = False) -> int:
    """Delete the rows of handled updates, in one statement; how many were still there (still
    waiting). With ``keep_ids`` (webhook mode) each row is emptied to ``HANDLED`` instead."""
    ids = list(update_ids)
    if not ids:
        return 0
    statement: Any
    if keep_ids:
        statement = (
            update(InboxUpdate)
            .where(InboxUpdate.update_id == any_(_ids(ids)), InboxUpdate.payload != HANDLED)
            .values(payload=HANDLED, telegram_id=None)
        )
    else:
        statement = delete(InboxUpdate).where(InboxUpdate.update_id == any_(_ids(ids)))
    _, count = await _run(uow, statement, returning=False)
    return count


async def waiting(
    uow: UnitOfWork, *, received_before: datetime | None = None, limit: int = 1000
) -> list[Waiting]:
    """Rows not yet handled, oldest update first."""
    query = (
        select(InboxUpdate.update_id, InboxUpdate.payload, InboxUpdate.received_at)
        .where(InboxUpdate.payload != HANDLED)
        .order_by(InboxUpdate.update_id)
    )
    if received_before is not None:
        query = query.where(InboxUpdate.received_at < received_before)
    async with uow.reading():
        rows = (await uow.session.execute(query.limit(limit))).all()
    return [Waiting(int(r.update_id), dict(r.payload), r.received_at) for r in rows]


async def resume_offset(uow: UnitOfWork, *, bot_id: int, now: datetime) -> int | None:
    """The first offset to ask Telegram for after a start: one past the last update recorded,
    if that was recent enough to trust."""
    async with uow.reading():
        mark = (
            await uow.session.execute(
                select(InboxMark.last_update_id, InboxMark.recorded_at).where(
                    InboxMark.bot_id == bot_id
                )
            )
        ).first()
    if mark is None or now - mark.recorded_at > MARK_MAX_AGE:
        return None
    return int(mark.last_update_id) + 1


async def purge_lingering(uow: UnitOfWork, *, now: datetime) -> int:
    """Delete rows older than ``MAX_AGE`` (left by a fault, or kept as handled in webhook mode);
    the caller commits."""
    result = await uow.session.execute(
        delete(InboxUpdate)
        .where(InboxUpdate.received_at <= now - MAX_AGE)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def erase_sender(uow: UnitOfWork, telegram_id: int) -> None:
    """Part of an account's erasure: its waiting updates go; the caller commits."""
    await uow.session.execute(
        delete(InboxUpdate)
        .where(InboxUpdate.telegram_id == telegram_id)
        .execution_options(synchronize_session=False)
    )
