"""What happens to a payment after it is created: the payer pays or gives up on the checkout
page, the shop captures or cancels a two-stage payment, the shop refunds. Each change of status
sends its notification."""

from __future__ import annotations

import secrets
from decimal import Decimal

from sandbox.yookassa.notify import notify
from sandbox.yookassa.state import (
    CAPTURE_WINDOW,
    ApiError,
    Payment,
    Refund,
    Shop,
    YooKassaState,
    invalid,
    now,
    yookassa_id,
)

# The card every sandbox payer uses: YooKassa's test Mastercard without 3-D Secure.
TEST_CARD = {
    "first6": "555555",
    "last4": "4444",
    "expiry_year": "2030",
    "expiry_month": "12",
    "card_type": "MasterCard",
    "issuer_country": "RU",
}


class StatusError(Exception):
    """The payment is not in a status that allows this."""


def pay(state: YooKassaState, payment: Payment) -> None:
    """The payer confirms with the test card: ``succeeded`` at once, or ``waiting_for_capture``
    when the payment was created with ``capture: false``."""
    if payment.status != "pending":
        raise StatusError(f"payment {payment.id} is {payment.status}, not pending")
    moment = now()
    payment.paid = True
    payment.payment_method = {
        "type": "bank_card",
        "id": payment.id,
        "saved": False,
        "title": f"Bank card *{TEST_CARD['last4']}",
        "card": dict(TEST_CARD),
    }
    payment.authorization_details = {
        "rrn": str(secrets.randbelow(10**12)).zfill(12),
        "auth_code": str(secrets.randbelow(10**6)).zfill(6),
        "three_d_secure": {"applied": False},
    }
    payment.income = state.income(payment.amount)
    if payment.capture:
        payment.status = "succeeded"
        payment.captured_at = moment
        notify(state, payment.shop, "payment.succeeded", payment.to_json(), payment.id)
    else:
        payment.status = "waiting_for_capture"
        payment.expires_at = moment + CAPTURE_WINDOW
        notify(state, payment.shop, "payment.waiting_for_capture", payment.to_json(), payment.id)


def expire(state: YooKassaState, payment: Payment) -> None:
    """YooMoney gives up on the payment: the payer never confirmed it (``pending``), or the
    shop never captured it (``waiting_for_capture``)."""
    if payment.status == "pending":
        reason = "expired_on_confirmation"
    elif payment.status == "waiting_for_capture":
        reason = "expired_on_capture"
    else:
        raise StatusError(f"payment {payment.id} is {payment.status}, it cannot be canceled")
    _cancel(state, payment, {"party": "yoo_money", "reason": reason})


def capture(state: YooKassaState, payment: Payment, amount: Decimal | None) -> None:
    """The shop takes the money held by a two-stage payment, all of it or less."""
    if payment.status != "waiting_for_capture":
        raise invalid(
            "payment_id",
            f"Payment is in status {payment.status}; only waiting_for_capture can be captured",
        )
    if amount is not None:
        if amount > payment.amount:
            raise invalid("amount.value", "The amount to capture exceeds the payment amount")
        payment.amount = amount
    payment.status = "succeeded"
    payment.captured_at = now()
    payment.expires_at = None
    payment.income = state.income(payment.amount)
    notify(state, payment.shop, "payment.succeeded", payment.to_json(), payment.id)


def merchant_cancel(state: YooKassaState, payment: Payment) -> None:
    """The shop releases the money held by a two-stage payment."""
    if payment.status != "waiting_for_capture":
        raise invalid(
            "payment_id",
            f"Payment is in status {payment.status}; only waiting_for_capture can be canceled",
        )
    _cancel(state, payment, {"party": "merchant", "reason": "canceled_by_merchant"})


def _cancel(state: YooKassaState, payment: Payment, details: dict[str, str]) -> None:
    payment.status = "canceled"
    payment.expires_at = None
    payment.income = None
    payment.cancellation_details = details
    notify(state, payment.shop, "payment.canceled", payment.to_json(), payment.id)


def refund(
    state: YooKassaState,
    shop: Shop,
    payment: Payment,
    amount: Decimal,
    currency: str,
    description: str | None,
) -> Refund:
    """Return part or all of a succeeded payment; the refund succeeds at once."""
    if payment.status != "succeeded":
        raise invalid("payment_id", f"Payment is in status {payment.status}; it cannot be refunded")
    if currency != payment.currency:
        raise invalid("amount.currency", "The refund currency differs from the payment's")
    if amount > payment.amount - payment.refunded:
        raise ApiError(
            400,
            "The refund amount exceeds what is left of the payment",
            parameter="amount.value",
        )
    found = Refund(
        id=yookassa_id("0015"),
        seq=state.next_seq(),
        shop=shop,
        payment_id=payment.id,
        amount=amount,
        currency=currency,
        created_at=now(),
        description=description,
    )
    state.refunds[found.id] = found
    payment.refunded += amount
    notify(state, shop, "refund.succeeded", found.to_json(), payment.id)
    return found
