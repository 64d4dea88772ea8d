"""The payer's side: ``/yookassa/checkout/{id}``, where ``confirmation_url`` leads. A small page
shows the shop, amount and description with two buttons, Pay (the test card) and Cancel; both
post the form back and are sent on (303) to the payment's return_url, as YooKassa does."""

from __future__ import annotations

from html import escape

from aiohttp import web

from sandbox.yookassa import flows
from sandbox.yookassa.notify import YOOKASSA
from sandbox.yookassa.state import Payment

STYLE = (
    "body{font-family:system-ui,sans-serif;background:#f4f4f6;display:flex;"
    "justify-content:center;padding:48px 16px}"
    "main{background:#fff;border-radius:12px;padding:24px 32px;max-width:420px;width:100%;"
    "box-shadow:0 2px 12px #0001}"
    ".amount{font-size:32px;font-weight:600;margin:8px 0}"
    ".muted{color:#666}"
    "button{font-size:16px;padding:10px 20px;border-radius:8px;border:0;margin-right:8px;"
    "cursor:pointer}"
    "button[value=pay]{background:#7b61ff;color:#fff}"
)


def _page(title: str, body: str, status: int = 200) -> web.Response:
    html = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )
    return web.Response(text=html, content_type="text/html", status=status)


def _summary(payment: Payment) -> str:
    description = (
        f"<p class='description'>{escape(payment.description)}</p>" if payment.description else ""
    )
    return (
        f"<p class='muted'>YooKassa test payment · shop {escape(payment.shop.shop_id)}</p>"
        f"<p class='amount'>{payment.amount:.2f} {escape(payment.currency)}</p>{description}"
    )


def _payment(request: web.Request) -> Payment | None:
    return request.app[YOOKASSA].payments.get(request.match_info["id"])


def _missing() -> web.Response:
    return _page("Payment not found", "<h1>Payment not found</h1>", status=404)


async def show(request: web.Request) -> web.Response:
    payment = _payment(request)
    if payment is None:
        return _missing()
    if payment.status != "pending":
        back = (
            f"<p><a href='{escape(payment.return_url)}'>Back to the shop</a></p>"
            if payment.return_url
            else ""
        )
        return _page(
            "Payment",
            f"{_summary(payment)}<p>This payment is {escape(payment.status)}.</p>{back}",
        )
    form = (
        f"<form method='post' action='/yookassa/checkout/{escape(payment.id)}'>"
        "<p class='muted'>Test card: 5555 5555 5555 4444</p>"
        "<button type='submit' name='action' value='pay'>Pay</button>"
        "<button type='submit' name='action' value='cancel'>Cancel</button>"
        "</form>"
    )
    return _page("Payment", f"{_summary(payment)}{form}")


async def act(request: web.Request) -> web.Response:
    """Pay or cancel from the form, then go back to the shop. A second press after the payment
    has left ``pending`` changes nothing and goes back as well."""
    payment = _payment(request)
    if payment is None:
        return _missing()
    form = await request.post()
    action = form.get("action")
    if action not in ("pay", "cancel"):
        return _page("Payment", "<h1>Choose Pay or Cancel</h1>", status=400)
    state = request.app[YOOKASSA]
    if payment.status == "pending":
        if action == "pay":
            flows.pay(state, payment)
        else:
            flows.expire(state, payment)
    if payment.return_url:
        raise web.HTTPSeeOther(payment.return_url)
    return _page("Payment", f"{_summary(payment)}<p>This payment is {payment.status}.</p>")


def setup_checkout(app: web.Application) -> None:
    app.router.add_get("/yookassa/checkout/{id}", show)
    app.router.add_post("/yookassa/checkout/{id}", act)
