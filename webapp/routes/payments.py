"""YooKassa in the web app: starting a card top-up, and the notification endpoint.

The notification endpoint accepts only YooKassa's sender networks (the client address comes
from the trusted proxy header when one is configured), never trusts the body beyond the payment
id, and answers 200 once the payment has been handled, however often it is re-sent. When
YooKassa cannot be asked about the payment it answers 503, so YooKassa delivers it again later;
a notification that is not one (no JSON, no event, an id that is not YooKassa's) is 400.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from aiohttp import web
from pydantic import ConfigDict, Field

from core.errors import Forbidden, InvalidInput, NotFound, ServiceUnavailable
from core.payments.yookassa import PaymentGatewayError, is_object_id
from core.services import yookassa_topups
from core.services.payments import TopUp
from webapp.clientip import address_in, client_address
from webapp.contract import Answer, Body, Out, add_routes, operation, parse_body
from webapp.keys import CONTEXT, WebContext
from webapp.routes.api import user_id_of

log = logging.getLogger(__name__)
NOTIFICATION_PATH = "/api/payments/yookassa/notifications"
TAGS = ("payments",)


class CardTopUp(Body):
    rub: Annotated[int, Field(ge=1, le=10_000_000, description="One of the offered amounts.")]


class Checkout(Out):
    order_id: str
    confirmation_url: str


class Notification(Body):
    """YooKassa's notification: ``{type, event, object}`` (more is ignored)."""

    model_config = ConfigDict(strict=True, extra="allow")
    type: str
    event: str
    object: dict[str, Any]


class Outcome(Out):
    status: str


@operation(
    "POST",
    "/api/payments/yookassa",
    summary="Start a card top-up; send the user to confirmation_url",
    responses={201: Answer("Created.", Checkout)},
    errors={
        404: "Card top-ups are not offered here.",
        502: "YooKassa could not be reached; nothing was charged.",
    },
    tags=TAGS,
)
async def start_card_top_up(request: web.Request, body: CardTopUp) -> web.Response:
    """``{"rub": 300}`` → ``{"order_id", "confirmation_url"}``: send the user there."""
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    if ctx.yookassa is None:
        raise NotFound("card top-ups are not offered")
    rub = body.rub
    async with ctx.uow_factory() as uow:
        checkout = await yookassa_topups.start_top_up(
            uow,
            ctx.yookassa,
            user_id=user_id,
            amount=rub * 100,
            packages=tuple(r * 100 for r in ctx.yookassa_packages),
            public_url=ctx.public_url,
            description=f"NetRoom balance top-up, {rub} RUB",
            now=ctx.clock(),
        )
    return web.json_response(
        {"order_id": checkout.order_id, "confirmation_url": checkout.confirmation_url},
        status=201,
    )


@operation(
    "POST",
    NOTIFICATION_PATH,
    summary="YooKassa's payment notifications (from YooKassa's networks only)",
    auth="none",
    raw_body=Notification,
    responses={200: Answer("Handled (however often it is sent).", Outcome)},
    errors={
        403: "Not from YooKassa.",
        404: "Card top-ups are not offered here.",
        503: "Could not check the payment; YooKassa retries.",
    },
    tags=TAGS,
)
async def yookassa_notification(request: web.Request) -> web.Response:
    """The sender is checked before the body is read; YooKassa labels the body as JSON, but a
    body that is not one is 400 whatever its label."""
    ctx = request.app[CONTEXT]
    if ctx.yookassa is None or ctx.payment_terms is None:
        raise NotFound("card top-ups are not offered")
    address = client_address(request)
    if not address_in(address, ctx.yookassa_networks):
        log.warning("YooKassa notification refused from %s", address)
        raise Forbidden(f"notification from {address}")
    body = await parse_body(request, Notification, any_type=True)
    event = body.event
    payment_id = body.object.get("payment_id" if event.startswith("refund.") else "id")
    if (
        body.type != "notification"
        or not event.startswith(("payment.", "refund."))
        or not isinstance(payment_id, str)
        or not is_object_id(payment_id)
    ):
        # Malformed: a retry would be just as malformed, so no 503 asking for one.
        raise InvalidInput("not a YooKassa notification")
    try:
        async with ctx.uow_factory() as uow:
            if event.startswith("refund."):
                result = await yookassa_topups.settle_refund(
                    uow, ctx.yookassa, payment_id=payment_id, now=ctx.clock()
                )
            else:
                result = await yookassa_topups.settle_payment(
                    uow, ctx.yookassa, ctx.payment_terms, payment_id=payment_id, now=ctx.clock()
                )
    except PaymentGatewayError as exc:
        log.warning("YooKassa notification for %s not checked: %s", payment_id, exc.detail)
        # 503 with Retry-After: YooKassa delivers it again later.
        raise ServiceUnavailable(f"YooKassa: {exc.detail}") from exc
    log.info("YooKassa %s %s: %s", event, payment_id, result.outcome)
    if result.outcome == "credited" and result.top_up is not None:
        await queue_top_up_notices(ctx, result.top_up)
    return web.json_response({"status": result.outcome})


async def queue_top_up_notices(ctx: WebContext, credited: TopUp) -> None:
    """A card payment just credited: the payer hears in Telegram, the inviters too (from the
    worker, as jobs)."""
    if ctx.jobs is None:
        return
    await ctx.jobs.enqueue(
        "payments.notify_top_up", user_id=credited.user_id, credited=credited.credited
    )
    await ctx.jobs.enqueue("payments.notify_referral_earnings", payment_id=credited.payment_id)


def setup(app: web.Application) -> None:
    add_routes(app, start_card_top_up, yookassa_notification)
