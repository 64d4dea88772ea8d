"""YooKassa in the web app: starting a card top-up, and the notification endpoint.

The notification endpoint accepts only YooKassa's sender networks (the client address comes
from the trusted proxy header when one is configured), never trusts the body beyond the payment
id, and answers 200 once the payment has been handled, however often it is re-sent. When
YooKassa cannot be asked about the payment it answers 503, so YooKassa delivers it again later;
a notification that is not one (no JSON, no event, an id that is not YooKassa's) is 400.
"""

from __future__ import annotations

import logging

from aiohttp import web

from core.errors import Forbidden, InvalidInput, NotFound
from core.payments.yookassa import PaymentGatewayError, is_object_id
from core.services import yookassa_topups
from webapp.clientip import address_in, client_address
from webapp.keys import CONTEXT
from webapp.routes.api import user_id_of

log = logging.getLogger(__name__)
NOTIFICATION_PATH = "/api/payments/yookassa/notifications"


async def start_card_top_up(request: web.Request) -> web.Response:
    """``{"rub": 300}`` → ``{"order_id", "confirmation_url"}``: send the user there."""
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    if ctx.yookassa is None:
        raise NotFound("card top-ups are not offered")
    try:
        body = await request.json()
        rub = int(body["rub"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInput('expected {"rub": <amount>}') from exc
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


async def yookassa_notification(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    if ctx.yookassa is None or ctx.payment_terms is None:
        raise NotFound("card top-ups are not offered")
    address = client_address(request)
    if not address_in(address, ctx.yookassa_networks):
        log.warning("YooKassa notification refused from %s", address)
        raise Forbidden(f"notification from {address}")
    try:
        body = await request.json()
        event = str(body["event"])
        payment_id = body["object"]["payment_id" if event.startswith("refund.") else "id"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInput("not a YooKassa notification") from exc
    if (
        body.get("type") != "notification"
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
        return web.json_response({"error": "try_again"}, status=503)
    log.info("YooKassa %s %s: %s", event, payment_id, result.outcome)
    if result.outcome == "credited" and result.top_up is not None and ctx.jobs is not None:
        await ctx.jobs.enqueue(
            "payments.notify_top_up",
            user_id=result.top_up.user_id,
            credited=result.top_up.credited,
        )
        await ctx.jobs.enqueue(
            "payments.notify_referral_earnings", payment_id=result.top_up.payment_id
        )
    return web.json_response({"status": result.outcome})


def setup(app: web.Application) -> None:
    app.router.add_post("/api/payments/yookassa", start_card_top_up)
    app.router.add_post(NOTIFICATION_PATH, yookassa_notification)
