"""The free tier and subscription plans.

Free tier: models of one class (the catalogue's ``free_tier``) share a usage counter per user.
While the counter is under the class's limit a request to such a model is free and touches no
money; after that it is paid from the balance. Counters reset at midnight in the configured time
zone (on Mondays for a weekly period, on the 1st for a monthly one): lazily when a counter is
next used, and by a scheduled job so stored counters never look older than they are.

Plans: a Stars subscription raises the free allowance per class and gives a discount on paid
requests while it is active.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, text

from db.models import FreeUsage, Subscription
from db.uow import UnitOfWork

PERIODS = ("day", "week", "month")


@dataclass(frozen=True, slots=True)
class Plan:
    id: str
    stars: int
    free_tier: Mapping[str, int] = field(default_factory=dict)
    discount_percent: int = 0


@dataclass(frozen=True, slots=True)
class Tariffs:
    free_limits: Mapping[str, int]
    period: str = "day"
    timezone: str = "Europe/Moscow"
    plans: tuple[Plan, ...] = ()

    def __post_init__(self) -> None:
        if self.period not in PERIODS:
            raise ValueError(f"free-tier period must be one of {PERIODS}")
        ZoneInfo(self.timezone)

    def plan(self, plan_id: str | None) -> Plan | None:
        return next((p for p in self.plans if p.id == plan_id), None)

    def limits(self, plan: Plan | None) -> dict[str, int]:
        """Free requests per class: the base allowance, raised by the plan where it gives more."""
        limits = dict(self.free_limits)
        if plan is not None:
            for tier, limit in plan.free_tier.items():
                limits[tier] = max(limits.get(tier, 0), limit)
        return limits

    def period_start(self, now: datetime) -> datetime:
        """The start of the current free-tier period, as a UTC instant."""
        local = now.astimezone(ZoneInfo(self.timezone))
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        if self.period == "week":
            start -= timedelta(days=start.weekday())
        elif self.period == "month":
            start = start.replace(day=1)
        # Midnight is re-resolved in the zone so a change of UTC offset is respected.
        return start.replace(tzinfo=None).replace(tzinfo=ZoneInfo(self.timezone)).astimezone(UTC)

    def next_reset(self, now: datetime) -> datetime:
        zone = ZoneInfo(self.timezone)
        start = self.period_start(now).astimezone(zone).replace(tzinfo=None)
        if self.period == "day":
            after = start + timedelta(days=1)
        elif self.period == "week":
            after = start + timedelta(days=7)
        else:
            after = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
        return after.replace(tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class FreeAllowance:
    tier: str
    limit: int
    used: int

    @property
    def left(self) -> int:
        return max(self.limit - self.used, 0)


@dataclass(frozen=True, slots=True)
class TariffState:
    """What /balance shows: the active plan, the free requests left and when they reset."""

    plan: Plan | None
    plan_until: datetime | None
    renews: bool
    allowances: tuple[FreeAllowance, ...]
    next_reset: datetime


async def active_subscription(uow: UnitOfWork, user_id: int, now: datetime) -> Subscription | None:
    return (
        await uow.session.scalars(
            select(Subscription)
            .where(
                Subscription.user_id == user_id,
                Subscription.current_period_end > now,
                Subscription.status != "expired",
            )
            .order_by(Subscription.current_period_end.desc())
            .limit(1)
        )
    ).first()


_TAKE = text(
    """
    INSERT INTO free_usage (user_id, tier, used, reset_at) VALUES (:user_id, :tier, 1, :now)
    ON CONFLICT (user_id, tier) DO UPDATE SET
        used = CASE WHEN free_usage.reset_at < :period_start THEN 1
                    ELSE free_usage.used + 1 END,
        reset_at = CASE WHEN free_usage.reset_at < :period_start THEN :now
                        ELSE free_usage.reset_at END
    WHERE free_usage.reset_at < :period_start OR free_usage.used < :limit
    RETURNING used
    """
)


async def take_free_use(
    uow: UnitOfWork,
    tariffs: Tariffs,
    *,
    user_id: int,
    tier: str,
    plan: Plan | None,
    now: datetime,
) -> bool:
    """Count one free request if the allowance has room; one atomic statement, so concurrent
    requests can never use more than the limit. A step of a larger use case: does not commit."""
    limit = tariffs.limits(plan).get(tier, 0)
    if limit <= 0:
        return False
    used = await uow.session.scalar(
        _TAKE,
        {
            "user_id": user_id,
            "tier": tier,
            "now": now,
            "period_start": tariffs.period_start(now),
            "limit": limit,
        },
    )
    return used is not None


async def give_back_free_use(uow: UnitOfWork, *, user_id: int, tier: str) -> None:
    """A free request that failed before delivering anything does not count."""
    await uow.session.execute(
        text(
            "UPDATE free_usage SET used = used - 1"
            " WHERE user_id = :user_id AND tier = :tier AND used > 0"
        ),
        {"user_id": user_id, "tier": tier},
    )
    await uow.commit()


async def tariff_state(
    uow: UnitOfWork, tariffs: Tariffs, user_id: int, now: datetime
) -> TariffState:
    async with uow.reading():
        subscription = await active_subscription(uow, user_id, now)
        plan = None
        if subscription is not None:
            # A plan the operator has since withdrawn gives no perks, but its subscriber still sees
            # it (Telegram still charges for it) and can cancel its renewal.
            plan = tariffs.plan(subscription.plan) or Plan(
                subscription.plan, stars=subscription.stars
            )
        rows = {
            row.tier: row
            for row in await uow.session.scalars(
                select(FreeUsage).where(FreeUsage.user_id == user_id)
            )
        }
        start = tariffs.period_start(now)
        allowances = []
        for tier, limit in sorted(tariffs.limits(plan).items()):
            row = rows.get(tier)
            used = row.used if row is not None and row.reset_at >= start else 0
            allowances.append(FreeAllowance(tier, limit, min(used, limit)))
        state = TariffState(
            plan=plan,
            plan_until=None if subscription is None else subscription.current_period_end,
            renews=subscription is not None and subscription.status == "active",
            allowances=tuple(allowances),
            next_reset=tariffs.next_reset(now),
        )
    return state


async def reset_free_tier(uow: UnitOfWork, tariffs: Tariffs, *, now: datetime) -> int:
    """The scheduled reset: counters from an earlier period go back to zero. How many."""
    result = await uow.session.execute(
        text("UPDATE free_usage SET used = 0, reset_at = :now WHERE reset_at < :start"),
        {"now": now, "start": tariffs.period_start(now)},
    )
    await uow.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]


async def expire_subscriptions(uow: UnitOfWork, *, now: datetime) -> int:
    """Subscriptions whose paid period ended without a renewal. How many."""
    result = await uow.session.execute(
        text(
            "UPDATE subscriptions SET status = 'expired'"
            " WHERE status <> 'expired' AND current_period_end <= :now"
        ),
        {"now": now},
    )
    await uow.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]
