"""Retention periods the privacy policy promises, applied by periodic jobs."""

from __future__ import annotations

from datetime import datetime, timedelta

from db.uow import UnitOfWork

# "Technical log entries (IP, User-Agent, session markers) — no longer than 90 days."
TECHNICAL_DATA_MAX_AGE = timedelta(days=90)


async def scrub_technical_data(uow: UnitOfWork, *, now: datetime) -> int:
    """Erase IP addresses and User-Agents older than the policy allows; how many rows changed."""
    changed = await uow.users.scrub_technical_data(now - TECHNICAL_DATA_MAX_AGE)
    await uow.commit()
    return changed
