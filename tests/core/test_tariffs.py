"""The free tier (used before the balance, per model class, reset at midnight in the configured
time zone), subscription plans and their perks, the administrator's balance adjustments."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.errors import InvalidInput
from core.services import admin, billing, subscriptions, tariffs, turns
from core.services.billing import InsufficientFunds
from core.services.chat import ModelTerms
from core.services.payments import PaymentRefused, PaymentTerms
from core.services.tariffs import Plan, Tariffs
from db.engine import UnitOfWorkFactory
from db.models import AdminAction, LedgerEntry
from db.uow import UnitOfWork
from tests.factories import register

TERMS = PaymentTerms.build(
    kopecks_per_star=130,
    star_packages=[50, 100],
    referral_level1_percent=10,
    referral_level2_percent=3,
    signing_secret="tariff-secret",
)
PLUS = Plan("plus", stars=250, free_tier={"basic": 5}, discount_percent=20)
TARIFFS = Tariffs(free_limits={"basic": 2}, timezone="Europe/Moscow", plans=(PLUS,))
# 12:00 in Moscow (UTC+3).
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
FREE = ModelTerms("free-mini", "openai", "mini", 16_000, 10, 30, free_tier="basic")
PAID = ModelTerms("big", "openai", "big", 16_000, 10, 30)


def test_periods_start_at_local_midnight_and_next_reset_follows() -> None:
    assert TARIFFS.period_start(NOW) == datetime(2026, 11, 30, 21, 0, tzinfo=UTC)
    assert TARIFFS.next_reset(NOW) == datetime(2026, 12, 1, 21, 0, tzinfo=UTC)
    # 23:30 UTC is already the next day in Moscow.
    late = datetime(2026, 12, 1, 23, 30, tzinfo=UTC)
    assert TARIFFS.period_start(late) == datetime(2026, 12, 1, 21, 0, tzinfo=UTC)
    weekly = Tariffs(free_limits={}, period="week", timezone="UTC")
    # 2026-12-02 is a Wednesday.
    wednesday = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
    assert weekly.period_start(wednesday) == datetime(2026, 11, 30, tzinfo=UTC)
    assert weekly.next_reset(wednesday) == datetime(2026, 12, 7, tzinfo=UTC)
    monthly = Tariffs(free_limits={}, period="month", timezone="Europe/Berlin")
    assert monthly.period_start(wednesday) == datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    assert monthly.next_reset(datetime(2026, 12, 31, 12, tzinfo=UTC)) == datetime(
        2026, 12, 31, 23, 0, tzinfo=UTC
    )
    # Summer time in Berlin: midnight is 22:00 UTC.
    assert monthly.period_start(datetime(2026, 7, 15, tzinfo=UTC)) == datetime(
        2026, 6, 30, 22, 0, tzinfo=UTC
    )
    with pytest.raises(ValueError, match="period"):
        Tariffs(free_limits={}, period="hour")


async def _turn(uow: UnitOfWork, user_id: int, model: ModelTerms, now: datetime = NOW) -> bool:
    """One complete chat turn; whether it was free."""
    turn = await turns.begin_turn(
        uow, user_id=user_id, text="Hi", model=model, now=now, tariffs=TARIFFS
    )
    result = await turns.finish_turn(
        uow, turn, text="Hello!", reasoning="", usage=None, status="complete", now=now
    )
    return result.free


async def test_free_requests_come_before_the_balance_then_the_balance_pays(
    uow: UnitOfWork,
) -> None:
    user = (await register(uow)).user
    async with uow.transaction():
        await billing.credit(
            uow, user_id=user.id, amount=10_000, category="bonus", key=f"b{user.id}"
        )
    assert await _turn(uow, user.id, FREE)
    assert await _turn(uow, user.id, FREE)
    assert (await billing.get_balance(uow, user.id)).balance == 10_000
    # The allowance is used up: the third request is paid.
    assert not await _turn(uow, user.id, FREE)
    assert (await billing.get_balance(uow, user.id)).balance < 10_000
    # A model without a free tier never touches the allowance.
    state = await tariffs.tariff_state(uow, TARIFFS, user.id, NOW)
    assert [(a.tier, a.used, a.left) for a in state.allowances] == [("basic", 2, 0)]
    assert state.next_reset == datetime(2026, 12, 1, 21, 0, tzinfo=UTC)


async def test_without_balance_the_free_tier_still_answers_then_asks_for_money(
    uow: UnitOfWork,
) -> None:
    user = (await register(uow)).user
    assert await _turn(uow, user.id, FREE)
    assert await _turn(uow, user.id, FREE)
    with pytest.raises(InsufficientFunds):
        await _turn(uow, user.id, FREE)
    with pytest.raises(InsufficientFunds):
        await _turn(uow, user.id, PAID)


async def test_the_allowance_comes_back_after_local_midnight(uow: UnitOfWork) -> None:
    user = (await register(uow)).user
    assert await _turn(uow, user.id, FREE)
    assert await _turn(uow, user.id, FREE)
    with pytest.raises(InsufficientFunds):
        await _turn(uow, user.id, FREE)
    # 20:59 UTC is 23:59 in Moscow: still the same day.
    before_midnight = datetime(2026, 12, 1, 20, 59, tzinfo=UTC)
    with pytest.raises(InsufficientFunds):
        await _turn(uow, user.id, FREE, before_midnight)
    after_midnight = datetime(2026, 12, 1, 21, 1, tzinfo=UTC)
    assert await _turn(uow, user.id, FREE, after_midnight)


async def test_the_scheduled_reset_zeroes_counters_of_an_earlier_period(uow: UnitOfWork) -> None:
    user = (await register(uow)).user
    assert await _turn(uow, user.id, FREE)
    assert await tariffs.reset_free_tier(uow, TARIFFS, now=NOW) == 0
    tomorrow = NOW + timedelta(days=1)
    assert await tariffs.reset_free_tier(uow, TARIFFS, now=tomorrow) >= 1
    state = await tariffs.tariff_state(uow, TARIFFS, user.id, tomorrow)
    assert state.allowances[0].used == 0


async def test_a_failed_free_request_does_not_count(uow: UnitOfWork) -> None:
    user = (await register(uow)).user
    turn = await turns.begin_turn(
        uow, user_id=user.id, text="Hi", model=FREE, now=NOW, tariffs=TARIFFS
    )
    assert turn.free_tier == "basic" and turn.reservation is None
    await turns.finish_turn(uow, turn, text="", reasoning="", usage=None, status="failed", now=NOW)
    state = await tariffs.tariff_state(uow, TARIFFS, user.id, NOW)
    assert state.allowances[0].used == 0


async def test_concurrent_requests_never_use_more_than_the_allowance(engine: AsyncEngine) -> None:
    factory = UnitOfWorkFactory.for_engine(engine)
    async with factory() as uow:
        user = (await register(uow)).user

    async def one() -> bool:
        async with factory() as uow:
            try:
                turn = await turns.begin_turn(
                    uow, user_id=user.id, text="Hi", model=FREE, now=NOW, tariffs=TARIFFS
                )
            except InsufficientFunds:
                return False
            return turn.free_tier is not None

    results = await asyncio.gather(*(one() for _ in range(20)))
    assert results.count(True) == 2


def _subscription_payload(user_id: int, plan: Plan = PLUS) -> str:
    return subscriptions.subscription_payload(TERMS, user_id=user_id, plan=plan)


async def _subscribe(
    uow: UnitOfWork, tg: int, user_id: int, charge: str, *, first: bool, until: datetime
) -> subscriptions.SubscriptionDTO:
    return await subscriptions.record_payment(
        uow,
        TERMS,
        TARIFFS,
        telegram_id=tg,
        charge_id=charge,
        payload=_subscription_payload(user_id),
        currency="XTR",
        total_amount=PLUS.stars,
        expires_at=until,
        first=first,
        now=NOW,
    )


async def test_a_plan_raises_the_allowance_and_discounts_paid_requests(uow: UnitOfWork) -> None:
    user = (await register(uow)).user
    tg = user.telegram_id or 0
    async with uow.transaction():
        await billing.credit(
            uow, user_id=user.id, amount=50_000, category="bonus", key=f"p{user.id}"
        )
    sub = await _subscribe(
        uow, tg, user.id, f"c1-{user.id}", first=True, until=NOW + timedelta(days=30)
    )
    assert sub.applied and sub.status == "active"
    # The payment shows as a pair of subscription entries; the balance is unchanged.
    entries = await billing.history(uow, user.id, limit=5)
    assert [(e.category, e.amount) for e in entries[:2]] == [
        ("subscription", -250 * 130),
        ("subscription", 250 * 130),
    ]
    assert (await billing.get_balance(uow, user.id)).balance == 50_000
    assert [await _turn(uow, user.id, FREE) for _ in range(6)] == [True] * 5 + [False]
    # Paid requests get the plan's discount.
    turn = await turns.begin_turn(
        uow, user_id=user.id, text="Hi", model=PAID, now=NOW, tariffs=TARIFFS
    )
    assert turn.discount_percent == 20
    await turns.finish_turn(
        uow, turn, text="ok", reasoning="", usage=None, status="complete", now=NOW
    )
    state = await tariffs.tariff_state(uow, TARIFFS, user.id, NOW)
    assert state.plan == PLUS and state.renews


async def test_renewals_extend_the_period_and_are_recorded_once(uow: UnitOfWork) -> None:
    user = (await register(uow)).user
    tg = user.telegram_id or 0
    first_end = NOW + timedelta(days=30)
    await _subscribe(uow, tg, user.id, f"r1-{user.id}", first=True, until=first_end)
    renewed = await _subscribe(
        uow, tg, user.id, f"r2-{user.id}", first=False, until=first_end + timedelta(days=30)
    )
    assert renewed.current_period_end == first_end + timedelta(days=30)
    assert renewed.first_charge_id == f"r1-{user.id}"
    again = await _subscribe(
        uow, tg, user.id, f"r2-{user.id}", first=False, until=first_end + timedelta(days=30)
    )
    assert not again.applied
    count = len(
        list(
            await uow.session.scalars(
                select(LedgerEntry).where(
                    LedgerEntry.user_id == user.id, LedgerEntry.category == "subscription"
                )
            )
        )
    )
    assert count == 4


async def test_cancelled_renewal_keeps_the_perks_until_the_period_ends(uow: UnitOfWork) -> None:
    user = (await register(uow)).user
    tg = user.telegram_id or 0
    end = NOW + timedelta(days=30)
    sub = await _subscribe(uow, tg, user.id, f"x1-{user.id}", first=True, until=end)
    cancelled = await subscriptions.set_renewal(
        uow, user_id=user.id, subscription_id=sub.id, renew=False, now=NOW
    )
    assert cancelled.status == "cancelled"
    state = await tariffs.tariff_state(uow, TARIFFS, user.id, NOW)
    assert state.plan == PLUS and not state.renews
    resumed = await subscriptions.set_renewal(
        uow, user_id=user.id, subscription_id=sub.id, renew=True, now=NOW
    )
    assert resumed.status == "active"
    # After the end, the plan is gone and the job marks it expired.
    later = end + timedelta(minutes=1)
    assert (await tariffs.tariff_state(uow, TARIFFS, user.id, later)).plan is None
    assert await tariffs.expire_subscriptions(uow, now=later) >= 1
    assert await subscriptions.current_subscription(uow, user.id, NOW) is None
    with pytest.raises(subscriptions.NoSubscription):
        await subscriptions.set_renewal(
            uow, user_id=user.id, subscription_id=sub.id, renew=True, now=later
        )


async def test_a_withdrawn_plan_still_shows_to_its_subscriber_without_perks(
    uow: UnitOfWork,
) -> None:
    user = (await register(uow)).user
    tg = user.telegram_id or 0
    await _subscribe(uow, tg, user.id, f"w1-{user.id}", first=True, until=NOW + timedelta(days=30))
    # The operator takes the plan off the offer.
    withdrawn = Tariffs(free_limits={"basic": 2}, timezone="Europe/Moscow", plans=())
    state = await tariffs.tariff_state(uow, withdrawn, user.id, NOW)
    assert state.plan == Plan("plus", stars=250) and state.renews
    assert [(a.tier, a.limit) for a in state.allowances] == [("basic", 2)]
    # A turn finds the subscription running (its price terms) and no perks in a withdrawn plan.
    _discount, plan_id = await uow.ledger.price_terms(user.id, NOW)
    assert plan_id == "plus"
    assert withdrawn.plan(plan_id) is None
    # So renewal can still be cancelled.
    current = await subscriptions.current_subscription(uow, user.id, NOW)
    assert current is not None and current.plan == "plus"


async def test_subscription_checkout_refuses_forgery_and_a_second_subscription(
    uow: UnitOfWork,
) -> None:
    user = (await register(uow)).user
    tg = user.telegram_id or 0
    payload = _subscription_payload(user.id)
    await subscriptions.check_checkout(
        uow, TERMS, TARIFFS, telegram_id=tg, payload=payload, currency="XTR", total_amount=250
    )
    for tg_id, amount, body in (
        (tg, 1, payload),
        (tg + 1, 250, payload),
        (tg, 250, payload.replace("plus", "gold")),
    ):
        with pytest.raises(PaymentRefused):
            await subscriptions.check_checkout(
                uow,
                TERMS,
                TARIFFS,
                telegram_id=tg_id,
                payload=body,
                currency="XTR",
                total_amount=amount,
            )
    await _subscribe(uow, tg, user.id, f"one-{user.id}", first=True, until=NOW + timedelta(days=30))
    with pytest.raises(subscriptions.AlreadySubscribed):
        await subscriptions.offer(uow, TARIFFS, TERMS, user_id=user.id, plan_id="plus", now=NOW)


async def test_an_adjustment_writes_the_entry_and_the_audit_record_once(uow: UnitOfWork) -> None:
    user = (await register(uow)).user
    key = f"adjust:{secrets.token_hex(4)}"
    entry = await admin.adjust_balance(
        uow, admin_telegram_id=42, user_id=user.id, amount=5_000, reason="goodwill", key=key
    )
    assert (entry.kind, entry.category, entry.amount, entry.balance_after) == (
        "adjustment",
        "other",
        5_000,
        5_000,
    )
    again = await admin.adjust_balance(
        uow, admin_telegram_id=42, user_id=user.id, amount=5_000, reason="goodwill", key=key
    )
    assert not again.applied
    taken = await admin.adjust_balance(
        uow, admin_telegram_id=42, user_id=user.id, amount=-2_000, reason="error", key=key + "b"
    )
    assert taken.balance_after == 3_000
    with pytest.raises(InsufficientFunds):
        await admin.adjust_balance(
            uow, admin_telegram_id=42, user_id=user.id, amount=-9_000, reason="x", key=key + "c"
        )
    with pytest.raises(InvalidInput):
        await admin.adjust_balance(
            uow, admin_telegram_id=42, user_id=user.id, amount=100, reason=" ", key=key + "d"
        )
    actions = list(
        await uow.session.scalars(
            select(AdminAction)
            .where(AdminAction.target_user_id == user.id)
            .order_by(AdminAction.id)
        )
    )
    assert [(a.action, a.before, a.after, a.reason) for a in actions] == [
        ("adjust", {"balance": 0}, {"balance": 5_000}, "goodwill"),
        ("adjust", {"balance": 5_000}, {"balance": 3_000}, "error"),
    ]
    assert all(a.admin_telegram_id == 42 for a in actions)
    assert await billing.check_consistency(uow, user.id)
