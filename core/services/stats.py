"""Figures for operators: users, activity, revenue and usage by model over a period."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from db.models import LedgerEntry, Payment, User
from db.uow import UnitOfWork

USAGE_CATEGORIES = ("text", "image", "video")


@dataclass(frozen=True, slots=True)
class ModelUsage:
    model_id: str
    requests: int
    # Kopecks users paid for it.
    spent: int


@dataclass(frozen=True, slots=True)
class Stats:
    since: datetime
    until: datetime
    users_total: int
    users_new: int
    users_active: int
    stars_received: int
    stars_payments: int
    # Kopecks received by card.
    card_received: int
    card_payments: int
    refunds: int
    usage: tuple[ModelUsage, ...]


async def collect(uow: UnitOfWork, *, since: datetime, until: datetime) -> Stats:
    async with uow.reading():
        live = User.deleted_at.is_(None)
        users_total = await uow.session.scalar(select(func.count()).select_from(User).where(live))
        users_new = await uow.session.scalar(
            select(func.count()).select_from(User).where(live, User.created_at >= since)
        )
        users_active = await uow.session.scalar(
            select(func.count())
            .select_from(User)
            .where(live, User.last_activity_at >= since, User.last_activity_at < until)
        )
        revenue = {
            provider: (int(amount or 0), int(count))
            for provider, amount, count in (
                await uow.session.execute(
                    select(Payment.provider, func.sum(Payment.amount), func.count())
                    .where(Payment.created_at >= since, Payment.created_at < until)
                    .where(Payment.status == "paid")
                    .group_by(Payment.provider)
                )
            ).all()
        }
        refunds = await uow.session.scalar(
            select(func.count())
            .select_from(Payment)
            .where(Payment.refunded_at >= since, Payment.refunded_at < until)
        )
        usage = tuple(
            ModelUsage(str(model_id), int(count), -int(spent or 0))
            for model_id, count, spent in (
                await uow.session.execute(
                    select(LedgerEntry.model_id, func.count(), func.sum(LedgerEntry.amount))
                    .where(LedgerEntry.created_at >= since, LedgerEntry.created_at < until)
                    .where(LedgerEntry.kind == "debit")
                    .where(LedgerEntry.category.in_(USAGE_CATEGORIES))
                    .where(LedgerEntry.model_id.is_not(None))
                    .group_by(LedgerEntry.model_id)
                    .order_by(func.sum(LedgerEntry.amount))
                )
            ).all()
        )
    stars, stars_count = revenue.get("stars", (0, 0))
    card, card_count = revenue.get("yookassa", (0, 0))
    return Stats(
        since=since,
        until=until,
        users_total=int(users_total or 0),
        users_new=int(users_new or 0),
        users_active=int(users_active or 0),
        stars_received=stars,
        stars_payments=stars_count,
        card_received=card,
        card_payments=card_count,
        refunds=int(refunds or 0),
        usage=usage,
    )
