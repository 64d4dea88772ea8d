"""Retention periods the privacy policy promises, applied by periodic jobs.

Deletion runs in small batches, each its own short transaction, so it never holds locks that
would block live traffic, however much has expired.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import TextClause, text

from core.services import billing, inbox, sessions
from db.uow import UnitOfWork

# "Technical log entries (IP, User-Agent, session markers) — no longer than 90 days."
TECHNICAL_DATA_MAX_AGE = timedelta(days=90)
# "Messages and generated outputs in chats — 14 days from creation."
CONTENT_MAX_AGE = timedelta(days=14)
BATCH = 5_000

PURGE_MESSAGES = text(
    """
    DELETE FROM messages WHERE id IN (
        SELECT id FROM messages WHERE expires_at <= :now
        ORDER BY expires_at LIMIT :batch FOR UPDATE SKIP LOCKED)
    """
)
# A conversation's title is taken from its first prompt: it goes with the conversation once
# nothing in it is younger than the retention period.
PURGE_CONVERSATIONS = text(
    """
    DELETE FROM conversations WHERE id IN (
        SELECT c.id FROM conversations c
        WHERE c.updated_at <= :cutoff
          AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id)
        LIMIT :batch FOR UPDATE SKIP LOCKED)
    """
)
PURGE_REQUEST_LOG = text(
    """
    DELETE FROM request_log WHERE id IN (
        SELECT id FROM request_log WHERE created_at <= :cutoff
        LIMIT :batch FOR UPDATE SKIP LOCKED)
    """
)
PURGE_PRIVACY_LOG = text(
    """
    DELETE FROM privacy_requests WHERE id IN (
        SELECT id FROM privacy_requests WHERE created_at <= :cutoff
        LIMIT :batch FOR UPDATE SKIP LOCKED)
    """
)


@dataclass(frozen=True)
class Purged:
    messages: int = 0
    conversations: int = 0
    technical_rows: int = 0
    privacy_log: int = 0
    sessions: int = 0
    updates: int = 0


async def scrub_technical_data(uow: UnitOfWork, *, now: datetime) -> int:
    """Erase IP addresses and User-Agents older than the policy allows; how many rows changed."""
    changed = await uow.users.scrub_technical_data(now - TECHNICAL_DATA_MAX_AGE)
    await uow.commit()
    return changed


async def _in_batches(uow: UnitOfWork, statement: TextClause, params: dict[str, object]) -> int:
    total = 0
    while True:
        result = await uow.session.execute(statement, {**params, "batch": BATCH})
        await uow.commit()
        count = int(result.rowcount or 0)  # type: ignore[attr-defined]
        total += count
        if count < BATCH:
            return total


async def purge_expired(uow: UnitOfWork, *, now: datetime) -> Purged:
    """Everything past its retention period, in batches. Generated pictures and videos have
    none: they stay until the user deletes them or the account (policy 7, 8)."""
    messages = await _in_batches(uow, PURGE_MESSAGES, {"now": now})
    conversations = await _in_batches(uow, PURGE_CONVERSATIONS, {"cutoff": now - CONTENT_MAX_AGE})
    privacy_log = await _in_batches(
        uow, PURGE_PRIVACY_LOG, {"cutoff": now - TECHNICAL_DATA_MAX_AGE}
    )
    privacy_log += await _in_batches(
        uow, PURGE_REQUEST_LOG, {"cutoff": now - TECHNICAL_DATA_MAX_AGE}
    )
    technical = await scrub_technical_data(uow, now=now)
    # A session that ended (signed out, revoked or expired) keeps no device data.
    ended = await sessions.purge_ended(uow, cutoff=now)
    async with uow.transaction():
        await billing.release_stale_holds(uow, now=now)
    # An update's row goes once it is handled; one left behind by a fault goes here.
    updates = await inbox.purge_lingering(uow, now=now)
    await uow.commit()
    return Purged(messages, conversations, technical, privacy_log, ended, updates)
