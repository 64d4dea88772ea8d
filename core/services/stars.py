"""Everything paid in Telegram Stars arrives the same way (a pre-checkout query, then a
``successful_payment``); the signed payload says whether it is a top-up or a subscription."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.services import payments, subscriptions
from core.services.tariffs import Tariffs
from db.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class StarsPayment:
    kind: str  # "topup" | "subscription"
    user_id: int
    applied: bool
    top_up: payments.TopUp | None = None
    subscription: subscriptions.SubscriptionDTO | None = None


async def check_checkout(
    uow: UnitOfWork,
    terms: payments.PaymentTerms,
    tariffs: Tariffs,
    *,
    telegram_id: int,
    payload: str,
    currency: str,
    total_amount: int,
) -> None:
    """The pre-checkout check; raises PaymentRefused."""
    if subscriptions.is_subscription_payload(payload):
        await subscriptions.check_checkout(
            uow,
            terms,
            tariffs,
            telegram_id=telegram_id,
            payload=payload,
            currency=currency,
            total_amount=total_amount,
        )
        return
    await payments.check_stars_checkout(
        uow,
        terms,
        telegram_id=telegram_id,
        payload=payload,
        currency=currency,
        total_amount=total_amount,
    )


async def record_payment(
    uow: UnitOfWork,
    terms: payments.PaymentTerms,
    tariffs: Tariffs,
    *,
    telegram_id: int,
    charge_id: str,
    payload: str,
    currency: str,
    total_amount: int,
    subscription_expires_at: datetime | None,
    first_of_subscription: bool,
    now: datetime,
) -> StarsPayment:
    """Record a successful payment once per charge, however often its update arrives."""
    if subscriptions.is_subscription_payload(payload):
        sub = await subscriptions.record_payment(
            uow,
            terms,
            tariffs,
            telegram_id=telegram_id,
            charge_id=charge_id,
            payload=payload,
            currency=currency,
            total_amount=total_amount,
            expires_at=subscription_expires_at,
            first=first_of_subscription,
            now=now,
        )
        return StarsPayment("subscription", sub.user_id, sub.applied, subscription=sub)
    top_up = await payments.record_stars_payment(
        uow,
        terms,
        telegram_id=telegram_id,
        charge_id=charge_id,
        payload=payload,
        currency=currency,
        total_amount=total_amount,
    )
    return StarsPayment("topup", top_up.user_id, top_up.applied, top_up=top_up)
