"""Top-ups in roubles through YooKassa.

1. ``start_top_up`` records an order with its own Idempotence-Key, then asks YooKassa for a
   payment (no transaction is open during the call) and returns the ``confirmation_url`` the
   user is sent to. Asking again for the same order reuses the key: YooKassa answers with the
   same payment, never a second one.
2. YooKassa notifies the web app; the notification itself is never trusted. ``settle_payment``
   fetches the payment by id from YooKassa, compares its amount, currency and order with ours,
   and credits it once (``payments`` is unique per YooKassa payment id) however often the
   notification is re-sent.
3. A refund made in YooKassa's dashboard reverses the credit and the referral earnings.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from core.errors import InvalidInput, NotFound
from core.payments.yookassa import PaymentGatewayError, YooKassaClient, YooPayment
from core.services import payments
from core.services.payments import PaymentTerms, TopUp
from db.models import PaymentOrder, User
from db.uow import UnitOfWork

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Checkout:
    order_id: int
    payment_id: str
    confirmation_url: str


@dataclass(frozen=True, slots=True)
class Settled:
    """What a notification led to, once checked against YooKassa."""

    outcome: str  # credited | duplicate | canceled | pending | refunded | ignored
    order_id: int | None = None
    top_up: TopUp | None = None


async def create_order(
    uow: UnitOfWork, *, user_id: int, amount: int, packages: tuple[int, ...]
) -> tuple[int, str]:
    """A new order for one of the offered amounts (kopecks): its id and Idempotence-Key."""
    if amount not in packages:
        raise InvalidInput(f"{amount} kopecks is not an offered amount")
    user = await uow.users.get(user_id)
    if user is None or user.deleted_at is not None:
        raise NotFound(f"user {user_id}")
    key = str(uuid.uuid4())
    order = PaymentOrder(user_id=user_id, amount=amount, idempotence_key=key)
    uow.session.add(order)
    await uow.session.flush()
    order_id = order.id
    await uow.commit()
    return order_id, key


def result_token(idempotence_key: str) -> str:
    """The capability in an order's result page address: only the payer, sent back there by
    YooKassa, knows it (derived from the order's random Idempotence-Key, never the key)."""
    return hashlib.sha256(f"netroom:pay-result:{idempotence_key}".encode()).hexdigest()[:32]


def result_url(public_url: str, order_id: int, idempotence_key: str) -> str:
    """Where YooKassa sends the payer back: a page saying what became of the payment."""
    return f"{public_url.rstrip('/')}/pay/result/{order_id}/{result_token(idempotence_key)}"


async def start_top_up(
    uow: UnitOfWork,
    client: YooKassaClient,
    *,
    user_id: int,
    amount: int,
    packages: tuple[int, ...],
    public_url: str,
    description: str,
    now: datetime,
) -> Checkout:
    order_id, key = await create_order(uow, user_id=user_id, amount=amount, packages=packages)
    return await request_payment(
        uow,
        client,
        order_id=order_id,
        key=key,
        amount=amount,
        return_url=result_url(public_url, order_id, key),
        description=description,
        now=now,
    )


@dataclass(frozen=True, slots=True)
class OrderResult:
    """What the payer sees on returning from YooKassa."""

    order_id: int
    status: str  # new | pending | succeeded | canceled
    amount: int
    # Set when this visit found the payment succeeded and credited it (the notification had
    # not arrived yet): the caller tells the payer and the inviters, as a notification would.
    credited: TopUp | None = None


async def order_result(
    uow: UnitOfWork,
    client: YooKassaClient | None,
    terms: PaymentTerms | None,
    *,
    order_id: int,
    token: str,
    now: datetime,
) -> OrderResult:
    """The order behind a result page (NotFound for a wrong token). A payment still pending
    here is asked of YooKassa at once, so the page need not wait for the notification."""
    async with uow.reading():
        order = await uow.session.get(PaymentOrder, order_id)
        if order is None or not hmac.compare_digest(result_token(order.idempotence_key), token):
            raise NotFound(f"payment order {order_id}")
        status, amount, external_id = order.status, order.amount, order.external_id
    if status != "pending" or external_id is None or client is None or terms is None:
        return OrderResult(order_id, status, amount)
    try:
        settled = await settle_payment(uow, client, terms, payment_id=external_id, now=now)
    except PaymentGatewayError as exc:
        log.info("order %d: YooKassa not asked now (%s)", order_id, exc.detail)
        return OrderResult(order_id, status, amount)
    if settled.outcome in ("credited", "duplicate"):
        credited = settled.top_up if settled.outcome == "credited" else None
        return OrderResult(order_id, "succeeded", amount, credited)
    if settled.outcome == "canceled":
        return OrderResult(order_id, "canceled", amount)
    return OrderResult(order_id, status, amount)


async def request_payment(
    uow: UnitOfWork,
    client: YooKassaClient,
    *,
    order_id: int,
    key: str,
    amount: int,
    return_url: str,
    description: str,
    now: datetime,
) -> Checkout:
    """Ask YooKassa for the order's payment (again, after a failure: the same key, so at most
    one payment ever exists per order)."""
    payment = await client.create_payment(
        amount=amount,
        description=description,
        return_url=return_url,
        metadata={"order_id": str(order_id)},
        idempotence_key=key,
    )
    await uow.session.execute(
        update(PaymentOrder)
        .where(PaymentOrder.id == order_id, PaymentOrder.status == "new")
        .values(external_id=payment.id, status="pending", updated_at=now)
    )
    await uow.commit()
    if not payment.confirmation_url:
        raise NotFound(f"YooKassa payment {payment.id} has no confirmation url")
    return Checkout(order_id, payment.id, payment.confirmation_url)


def _matches(order: PaymentOrder, payment: YooPayment) -> bool:
    return (
        payment.currency == "RUB"
        and payment.amount == order.amount
        and payment.metadata.get("order_id") == str(order.id)
    )


async def settle_payment(
    uow: UnitOfWork,
    client: YooKassaClient,
    terms: PaymentTerms,
    *,
    payment_id: str,
    now: datetime,
) -> Settled:
    """After a notification about ``payment_id``: what YooKassa itself says decides."""
    payment = await client.get_payment(payment_id)
    async with uow.reading():
        order = (
            await uow.session.scalars(
                select(PaymentOrder).where(PaymentOrder.external_id == payment.id)
            )
        ).first()
        if order is None and payment.metadata.get("order_id", "").isdigit():
            # The notification may arrive before the order learned its payment id.
            candidate = await uow.session.get(PaymentOrder, int(payment.metadata["order_id"]))
            if candidate is not None and candidate.external_id in (None, payment.id):
                order = candidate
        if order is None or not _matches(order, payment):
            order = None
        else:
            order_id, user_id = order.id, order.user_id
    if order is None:
        log.warning("YooKassa payment %s matches no order of ours; ignored", payment.id)
        return Settled("ignored")
    if payment.status == "canceled":
        async with uow.transaction():
            await uow.session.execute(
                update(PaymentOrder)
                .where(PaymentOrder.id == order_id, PaymentOrder.status.in_(("new", "pending")))
                .values(status="canceled", external_id=payment.id, updated_at=now)
            )
        return Settled("canceled", order_id)
    if payment.status != "succeeded" or not payment.paid:
        return Settled("pending", order_id)
    if payment.refunded_amount >= payment.amount:
        refund = await refund_order(uow, payment_id=payment.id, now=now)
        return Settled("refunded" if refund else "ignored", order_id)
    # The order's status commits with the credit (credit_payment commits).
    async with uow.transaction():
        await uow.session.execute(
            update(PaymentOrder)
            .where(PaymentOrder.id == order_id)
            .values(status="succeeded", external_id=payment.id, updated_at=now)
        )
        user = await uow.session.get(User, user_id)
        assert user is not None
        top_up = await payments.credit_payment(
            uow,
            terms,
            user=user,
            provider="yookassa",
            external_id=payment.id,
            currency="RUB",
            amount=payment.amount,
            kopecks=payment.amount,
            payload=f"order:{order_id}",
        )
    return Settled("credited" if top_up.applied else "duplicate", order_id, top_up)


async def refund_order(
    uow: UnitOfWork, *, payment_id: str, now: datetime
) -> payments.Refund | None:
    try:
        return await payments.refund_payment(
            uow, provider="yookassa", external_id=payment_id, now=now
        )
    except NotFound:
        return None


async def settle_refund(
    uow: UnitOfWork, client: YooKassaClient, *, payment_id: str, now: datetime
) -> Settled:
    """After a ``refund.succeeded`` notification: a full refund, confirmed by YooKassa, takes
    the credit back. A partial refund is left to an administrator's adjustment."""
    payment = await client.get_payment(payment_id)
    if payment.refunded_amount < payment.amount:
        log.warning("YooKassa payment %s refunded in part; not reversed", payment.id)
        return Settled("ignored")
    refund = await refund_order(uow, payment_id=payment.id, now=now)
    return Settled("refunded" if refund else "ignored")
