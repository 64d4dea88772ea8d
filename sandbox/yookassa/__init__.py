"""A local YooKassa (ЮKassa) API v3 with its checkout page and notifications, over real HTTP.

Routes: the API under ``/yookassa/v3`` (``POST/GET /payments``, ``GET /payments/{id}``,
``POST /payments/{id}/capture`` and ``/cancel``, ``POST/GET /refunds``, ``GET /refunds/{id}``)
with HTTP Basic auth by shop id and secret key; the payer's page ``/yookassa/checkout/{id}``
(the payment's ``confirmation_url``); and a control API under ``/sandbox/api/yookassa`` to
register shops, pay or cancel as the payer, watch and repeat notifications, and script faults
(see ``sandbox.yookassa.control``). Every payment is a test one (``test: true``) paid with
YooKassa's test card; each status change is notified to the shop's webhook_url and re-sent
until it answers 200.
"""

from __future__ import annotations

from aiohttp import web

from sandbox.yookassa.api import setup_api
from sandbox.yookassa.checkout import setup_checkout
from sandbox.yookassa.control import setup_control
from sandbox.yookassa.notify import YOOKASSA, notifications_ctx
from sandbox.yookassa.state import YooKassaOptions, YooKassaState

__all__ = ["YOOKASSA", "YooKassaOptions", "YooKassaState", "setup_yookassa"]


def setup_yookassa(app: web.Application, options: YooKassaOptions | None = None) -> YooKassaState:
    state = YooKassaState(options or YooKassaOptions())
    app[YOOKASSA] = state
    app.cleanup_ctx.append(notifications_ctx)
    setup_api(app)
    setup_checkout(app)
    setup_control(app)
    return state
