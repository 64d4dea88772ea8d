"""The fake YooKassa's control API, JSON under ``/sandbox/api/yookassa``:

- ``POST /shops`` ``{shop_id, secret_key, webhook_url?}`` → 201 ``{shop_id, webhook_url,
  gateway_id}``: the credentials the API accepts and where notifications go. Posting a known
  shop_id again changes its key and webhook_url. ``GET /shops`` → ``{shops}``.
- ``POST /payments/{id}/pay`` and ``POST /payments/{id}/cancel`` → the payment: what the payer's
  Pay and Cancel buttons do on the checkout page (cancel also expires a payment left waiting for
  capture).
- ``GET /notifications?payment_id=&event=`` → ``{notifications}``, every delivery oldest first,
  with its attempts, last HTTP status, whether it was delivered and the body sent.
  ``POST /notifications/{payment_id}/resend`` ``{times?}`` → 202 ``{notifications}``: the latest
  notification about that payment (or refund) delivered ``times`` (1-50) more times at once.
- ``POST /faults`` ``{path_contains?, status?, times?, method?}`` → 201 ``{faults}``: the next
  ``times`` API calls whose path contains ``path_contains`` fail with ``status`` (default 500)
  and YooKassa's error object. ``GET /faults``; ``DELETE /faults`` forgets them.

Errors are ``{"error": "..."}``: 400 for a bad request, 404 for an unknown payment, 409 when
the payment's status does not allow the action.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from sandbox.yookassa import flows
from sandbox.yookassa.notify import YOOKASSA, resend
from sandbox.yookassa.state import Fault, Payment

PREFIX = "/sandbox/api/yookassa"


def _error(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "the body is not valid JSON"}),
            content_type="application/json",
        ) from exc
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "the body must be a JSON object"}),
            content_type="application/json",
        )
    return data


def _int(data: dict[str, Any], name: str, default: int, low: int, high: int) -> int | None:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return None
    return value


async def register_shop(request: web.Request) -> web.Response:
    data = await _body(request)
    shop_id, secret_key = data.get("shop_id"), data.get("secret_key")
    webhook_url = data.get("webhook_url")
    if not isinstance(shop_id, str) or not shop_id or ":" in shop_id:
        return _error("shop_id must be a non-empty string without ':'")
    if not isinstance(secret_key, str) or not secret_key:
        return _error("secret_key must be a non-empty string")
    if webhook_url is not None and (
        not isinstance(webhook_url, str) or urlsplit(webhook_url).scheme not in ("http", "https")
    ):
        return _error("webhook_url must be an http(s) URL")
    shop = request.app[YOOKASSA].register_shop(shop_id, secret_key, webhook_url)
    return web.json_response(shop.to_json(), status=201)


async def list_shops(request: web.Request) -> web.Response:
    shops = request.app[YOOKASSA].shops.values()
    return web.json_response({"shops": [shop.to_json() for shop in shops]})


async def _act(request: web.Request, action: str) -> web.Response:
    state = request.app[YOOKASSA]
    payment: Payment | None = state.payments.get(request.match_info["id"])
    if payment is None:
        return _error(f"no payment {request.match_info['id']}", 404)
    try:
        if action == "pay":
            flows.pay(state, payment)
        else:
            flows.expire(state, payment)
    except flows.StatusError as exc:
        return _error(str(exc), 409)
    return web.json_response(payment.to_json())


async def pay(request: web.Request) -> web.Response:
    return await _act(request, "pay")


async def cancel(request: web.Request) -> web.Response:
    return await _act(request, "cancel")


async def list_notifications(request: web.Request) -> web.Response:
    payment_id = request.query.get("payment_id")
    event = request.query.get("event")
    found = [
        delivery.to_json()
        for delivery in request.app[YOOKASSA].deliveries
        if payment_id in (None, delivery.payment_id, delivery.object_id)
        and event in (None, delivery.event)
    ]
    return web.json_response({"notifications": found})


async def resend_notification(request: web.Request) -> web.Response:
    state = request.app[YOOKASSA]
    wanted = request.match_info["payment_id"]
    times = _int(await _body(request), "times", 1, 1, 50)
    if times is None:
        return _error("times must be a whole number from 1 to 50")
    latest = next(
        (d for d in reversed(state.deliveries) if wanted in (d.payment_id, d.object_id)), None
    )
    if latest is None:
        return _error(f"no notification about {wanted}", 404)
    started = resend(state, latest, times)
    return web.json_response({"notifications": [d.to_json() for d in started]}, status=202)


async def add_fault(request: web.Request) -> web.Response:
    data = await _body(request)
    path_contains = data.get("path_contains", "")
    method = data.get("method")
    status = _int(data, "status", 500, 400, 599)
    times = _int(data, "times", 1, 1, 1000)
    if not isinstance(path_contains, str):
        return _error("path_contains must be a string")
    if method is not None and not isinstance(method, str):
        return _error("method must be a string")
    if status is None or times is None:
        return _error("status must be 400-599 and times 1-1000")
    state = request.app[YOOKASSA]
    state.faults.append(Fault(path_contains, status, times, method.upper() if method else None))
    return web.json_response({"faults": [f.to_json() for f in state.faults]}, status=201)


async def list_faults(request: web.Request) -> web.Response:
    return web.json_response({"faults": [f.to_json() for f in request.app[YOOKASSA].faults]})


async def clear_faults(request: web.Request) -> web.Response:
    request.app[YOOKASSA].faults.clear()
    return web.json_response({"faults": []})


def setup_control(app: web.Application) -> None:
    router = app.router
    router.add_post(f"{PREFIX}/shops", register_shop)
    router.add_get(f"{PREFIX}/shops", list_shops)
    router.add_post(f"{PREFIX}/payments/{{id}}/pay", pay)
    router.add_post(f"{PREFIX}/payments/{{id}}/cancel", cancel)
    router.add_get(f"{PREFIX}/notifications", list_notifications)
    router.add_post(f"{PREFIX}/notifications/{{payment_id}}/resend", resend_notification)
    router.add_post(f"{PREFIX}/faults", add_fault)
    router.add_get(f"{PREFIX}/faults", list_faults)
    router.add_delete(f"{PREFIX}/faults", clear_faults)
