"""The page YooKassa sends a payer back to: what became of the card payment, with ways back to
Telegram and to the web app. It needs no sign-in (the payer may come back in a browser that has
none): its address carries a token only the payer was given, and it shows only the order's
amount and status. A payment still pending is asked of YooKassa at once, and the page refreshes
itself until the bank has answered."""

from __future__ import annotations

import logging

from aiohttp import web

from core.errors import NotFound
from core.i18n import money
from core.services import yookassa_topups
from core.services.payments import TopUp
from webapp.errors import not_found
from webapp.i18n import render_page, request_language
from webapp.keys import CONTEXT, WebContext
from webapp.routes.payments import queue_top_up_notices

log = logging.getLogger(__name__)
REFRESH_SECONDS = 3


async def _tell(ctx: WebContext, credited: TopUp) -> None:
    """As the notification would have; a notice not queued never costs the payer the page."""
    try:
        await queue_top_up_notices(ctx, credited)
    except Exception:
        log.warning("notices for payment %d not queued", credited.payment_id, exc_info=True)


async def show_result(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    order_id = int(request.match_info["order_id"])
    try:
        async with ctx.uow_factory() as uow:
            result = await yookassa_topups.order_result(
                uow,
                ctx.yookassa,
                ctx.payment_terms,
                order_id=order_id,
                token=request.match_info["token"],
                now=ctx.clock(),
            )
    except NotFound:
        return not_found(request)
    if result.credited is not None:
        await _tell(ctx, result.credited)
    username = await ctx.resolved_bot_username()
    response = render_page(
        request,
        "pay_result.html",
        {
            "status": result.status,
            "amount": money(result.amount, request_language(request)),
            "bot_link": f"https://t.me/{username}" if username else None,
            "refresh": REFRESH_SECONDS if result.status in ("new", "pending") else None,
        },
    )
    # A page about one person's payment: never cached, never sent on as a referrer.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def setup(app: web.Application) -> None:
    app.router.add_get(
        r"/pay/result/{order_id:\d{1,18}}/{token:[0-9a-f]{32}}", show_result, name="pay_result"
    )
