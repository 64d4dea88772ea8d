"""Stars subscriptions: a plan paid every 30 days through an invoice link with
``subscription_period``. Telegram charges the renewals itself and sends a ``successful_payment``
each time (``is_recurring``); the user or the bot can cancel renewals and enable them again
until the paid period ends.

Payloads are signed like top-up payloads: ``p1.<user id>.<plan>.<nonce>.<signature>``.
Each charge is recorded once (``payments``, unique per charge id) and shows in the history as a
pair of entries of the category "subscription": the Stars received and the plan bought with
them, so the balance is unchanged and every entry is explained.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from core import metrics
from core.errors import DomainError, NotFound
from core.i18n import N_
from core.services import billing
from core.services.payments import PaymentRefused, PaymentTerms, sign, verify
from core.services.tariffs import Plan, Tariffs, active_subscription
from db.models import Payment, Subscription, User
from db.uow import UnitOfWork

PERIOD = timedelta(days=30)
PERIOD_SECONDS = 2_592_000


class NoSubscription(NotFound):
    code = "no_subscription"
    msgid = N_("You have no active subscription.")


class AlreadySubscribed(DomainError):
    code = "already_subscribed"
    msgid = N_("You already have an active subscription.")


class RenewalRefused(DomainError):
    """Telegram did not take a cancellation or resumption of renewals: nothing was changed."""

    code = "renewal_refused"
    msgid = N_(
        "Telegram did not accept the change, so your plan is unchanged. Please try again later."
    )


@dataclass(frozen=True, slots=True)
class SubscriptionDTO:
    id: int
    user_id: int
    plan: str
    status: str
    current_period_end: datetime
    first_charge_id: str
    # What Telegram charges each period.
    stars: int
    # False when this charge had been recorded before (a redelivered update).
    applied: bool = True


def _dto(row: Subscription, *, applied: bool = True) -> SubscriptionDTO:
    return SubscriptionDTO(
        row.id,
        row.user_id,
        row.plan,
        row.status,
        row.current_period_end,
        row.first_charge_id,
        row.stars,
        applied,
    )


def is_subscription_payload(payload: str) -> bool:
    return payload.startswith("p1.")


def subscription_payload(terms: PaymentTerms, *, user_id: int, plan: Plan) -> str:
    body = f"p1.{user_id}.{plan.id}.{secrets.token_urlsafe(6)}"
    return f"{body}.{sign(terms, body)}"


def parse_subscription_payload(terms: PaymentTerms, payload: str) -> tuple[int, str]:
    """(user id, plan id) from a payload this deployment signed, else PaymentRefused."""
    _, user_id, plan_id = verify(terms, payload, "p1")
    try:
        return int(user_id), plan_id
    except ValueError as exc:
        raise PaymentRefused("malformed subscription payload") from exc


async def offer(
    uow: UnitOfWork,
    tariffs: Tariffs,
    terms: PaymentTerms,
    *,
    user_id: int,
    plan_id: str,
    now: datetime,
) -> tuple[Plan, str]:
    """A plan and the payload of its invoice link; refused while a subscription is active."""
    plan = tariffs.plan(plan_id)
    if plan is None:
        raise NotFound(f"plan {plan_id!r}")
    current = await current_subscription(uow, user_id, now)
    if current is not None:
        raise AlreadySubscribed(f"user {user_id} has subscription {current.id}")
    return plan, subscription_payload(terms, user_id=user_id, plan=plan)


async def check_checkout(
    uow: UnitOfWork,
    terms: PaymentTerms,
    tariffs: Tariffs,
    *,
    telegram_id: int,
    payload: str,
    currency: str,
    total_amount: int,
) -> None:
    user_id, plan_id = parse_subscription_payload(terms, payload)
    async with uow.reading():
        user = await uow.users.get(user_id)
        ok_user = user is not None and user.telegram_id == telegram_id and not user.is_blocked
    if not ok_user:
        raise PaymentRefused(f"subscription of user {user_id} paid by telegram id {telegram_id}")
    plan = tariffs.plan(plan_id)
    if plan is None or currency != "XTR" or total_amount != plan.stars:
        raise PaymentRefused(f"{total_amount} {currency} for plan {plan_id!r}")


async def record_payment(
    uow: UnitOfWork,
    terms: PaymentTerms,
    tariffs: Tariffs,
    *,
    telegram_id: int,
    charge_id: str,
    payload: str,
    currency: str,
    total_amount: int,
    expires_at: datetime | None,
    first: bool,
    now: datetime,
) -> SubscriptionDTO:
    """The first payment of a subscription (``first``) or a renewal: recorded once per charge,
    the paid period extended to what Telegram says."""
    user_id, plan_id = parse_subscription_payload(terms, payload)
    user = await uow.users.get(user_id)
    if user is None or user.telegram_id != telegram_id or currency != "XTR":
        raise PaymentRefused(f"subscription charge {charge_id} does not match its payload")
    period_end = expires_at or now + PERIOD
    inserted = await uow.session.scalar(
        insert(Payment)
        .values(
            user_id=user_id,
            provider="stars",
            external_id=charge_id,
            currency=currency,
            amount=total_amount,
            credited=0,
            payload=payload,
        )
        .on_conflict_do_nothing(index_elements=["provider", "external_id"])
        .returning(Payment.id)
    )
    if inserted is None:
        await uow.rollback()
        metrics.payment("stars", "duplicate")
        existing = await _latest(uow, user_id, plan_id)
        if existing is None:
            raise NotFound(f"subscription for charge {charge_id}")
        return _dto(existing, applied=False)
    kopecks = total_amount * terms.kopecks_per_star
    meta = {"payment_id": inserted, "plan": plan_id, "charge_id": charge_id}
    await billing.add_credit(
        uow,
        user_id=user_id,
        amount=kopecks,
        category="subscription",
        key=f"subscription:{inserted}:in",
        charge=billing.Charge(meta=meta),
    )
    await billing.take_up_to(
        uow,
        user_id=user_id,
        amount=kopecks,
        category="subscription",
        key=f"subscription:{inserted}:out",
        kind="debit",
        charge=billing.Charge(meta=meta | {"until": period_end.isoformat()}),
    )
    row = None if first else await _latest(uow, user_id, plan_id)
    if row is None:
        row = Subscription(
            user_id=user_id,
            plan=plan_id,
            first_charge_id=charge_id,
            last_charge_id=charge_id,
            stars=total_amount,
            status="active",
            current_period_end=period_end,
        )
        uow.session.add(row)
    else:
        row.last_charge_id = charge_id
        row.current_period_end = max(row.current_period_end, period_end)
        row.status = "active"
        row.cancelled_at = None
    await uow.session.flush()
    result = _dto(row)
    await uow.commit()
    metrics.payment("stars", "credited")
    return result


async def _latest(uow: UnitOfWork, user_id: int, plan_id: str) -> Subscription | None:
    return (
        await uow.session.scalars(
            select(Subscription)
            .where(Subscription.user_id == user_id, Subscription.plan == plan_id)
            .order_by(Subscription.id.desc())
            .limit(1)
            .with_for_update()
        )
    ).first()


async def current_subscription(
    uow: UnitOfWork, user_id: int, now: datetime
) -> SubscriptionDTO | None:
    async with uow.reading():
        row = await active_subscription(uow, user_id, now)
        result = None if row is None else _dto(row)
    return result


async def set_renewal(
    uow: UnitOfWork, *, user_id: int, subscription_id: int, renew: bool, now: datetime
) -> SubscriptionDTO:
    """Record that renewals were cancelled or enabled again (after Telegram accepted it)."""
    row = await uow.session.get(Subscription, subscription_id, with_for_update=True)
    if row is None or row.user_id != user_id or row.status == "expired":
        raise NoSubscription(f"subscription {subscription_id} of user {user_id}")
    row.status = "active" if renew else "cancelled"
    row.cancelled_at = None if renew else now
    await uow.session.flush()
    result = _dto(row)
    await uow.commit()
    return result


class RenewalSwitch(Protocol):
    """Telegram's ``editUserStarSubscription``: stops (``renew=False``) or allows again the
    renewals of a Stars subscription, named by its first charge."""

    async def __call__(self, *, telegram_id: int, charge_id: str, renew: bool) -> None: ...


async def switch_renewal(
    uow: UnitOfWork, telegram: RenewalSwitch, *, user_id: int, renew: bool, now: datetime
) -> SubscriptionDTO:
    """Cancel or resume the renewals of the user's current subscription. Telegram first: only
    what Telegram accepted is recorded (its refusal raises and nothing changes here)."""
    current = await current_subscription(uow, user_id, now)
    async with uow.reading():
        user = await uow.users.get(user_id)
        telegram_id = None if user is None else user.telegram_id
    if current is None or telegram_id is None:
        raise NoSubscription(f"user {user_id}")
    await telegram(telegram_id=telegram_id, charge_id=current.first_charge_id, renew=renew)
    return await set_renewal(uow, user_id=user_id, subscription_id=current.id, renew=renew, now=now)


async def renewing(uow: UnitOfWork, user_id: int, now: datetime) -> list[tuple[int, str]]:
    """(Telegram id, first charge id) of the user's subscriptions Telegram would still renew:
    cancelled before an account is erased, so nobody pays for an account that is gone."""
    async with uow.reading():
        rows = (
            await uow.session.execute(
                select(User.telegram_id, Subscription.first_charge_id)
                .join(User, User.id == Subscription.user_id)
                .where(
                    Subscription.user_id == user_id,
                    Subscription.status == "active",
                    Subscription.current_period_end > now,
                    User.telegram_id.is_not(None),
                )
            )
        ).all()
    return [(int(tg), str(charge)) for tg, charge in rows]
