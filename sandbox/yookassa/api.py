"""YooKassa API v3 under ``/yookassa/v3``: payments (create, get, list, capture, cancel) and
refunds (create, get, list), with HTTP Basic auth by shop id and secret key, Idempotence-Key
on every POST, and YooKassa's error objects."""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from sandbox.yookassa import flows
from sandbox.yookassa.notify import YOOKASSA
from sandbox.yookassa.state import (
    PAYMENT_STATUSES,
    REFUND_STATUSES,
    ApiError,
    Payment,
    Refund,
    Shop,
    YooKassaState,
    invalid,
    now,
    parse_money,
    parse_time,
    yookassa_id,
)

PREFIX = "/yookassa/v3"
MAX_KEY = 64
MAX_DESCRIPTION = 128
MAX_REFUND_DESCRIPTION = 250
MAX_METADATA_KEYS = 16
MAX_METADATA_KEY = 32
MAX_METADATA_VALUE = 512
MAX_URL = 2048
TIME_FILTERS = ("gte", "gt", "lte", "lt")

ApiHandler = Callable[[web.Request, YooKassaState, Shop], Awaitable[web.Response]]
Handler = Callable[[web.Request], Awaitable[web.Response]]
# An operation behind an Idempotence-Key: the parsed JSON body in, the answer's body out.
Operation = Callable[[Any], dict[str, Any]]


def error_response(error: ApiError) -> web.Response:
    return web.json_response(error.body(), status=error.status)


def authenticate(state: YooKassaState, request: web.Request) -> Shop:
    """The shop whose id and secret key came in the Basic Authorization header."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(token.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        shop_id, colon, secret = decoded.partition(":")
        shop = state.shops.get(shop_id)
        if colon and shop is not None and hmac.compare_digest(shop.secret_key, secret):
            return shop
    raise ApiError(
        401,
        "Login or password is incorrect: check the shop id and the secret key",
        parameter="Authorization",
    )


def api_route(handler: ApiHandler) -> Handler:
    """Apply a scripted fault if one matches, then authenticate, then answer; ApiError becomes
    YooKassa's error object."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.Response:
        state = request.app[YOOKASSA]
        fault = state.take_fault(request.method, request.path)
        if fault is not None:
            return error_response(ApiError(fault.status, "Fault scripted in the sandbox"))
        try:
            shop = authenticate(state, request)
            return await handler(request, state, shop)
        except ApiError as exc:
            return error_response(exc)

    return wrapper


async def idempotent(
    request: web.Request, state: YooKassaState, shop: Shop, operation: Operation
) -> web.Response:
    """Run ``operation`` once per shop and Idempotence-Key. For 24 hours the same key with the
    same request gets the first answer again; with another request, an error. Server errors are
    not kept, so the client may retry them with the same key."""
    key = request.headers.get("Idempotence-Key")
    if not key:
        raise invalid("Idempotence-Key", "Idempotence-Key header is required for POST requests")
    if len(key) > MAX_KEY:
        raise invalid("Idempotence-Key", f"Idempotence-Key is longer than {MAX_KEY} characters")
    raw = await request.read()
    data: Any = None
    if raw.strip():
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise ApiError(400, "The request body is not valid JSON") from exc
    fingerprint = " ".join(
        (request.method, request.path, json.dumps(data, sort_keys=True, ensure_ascii=False))
    )
    stored = state.recall(shop, key)
    if stored is not None:
        if stored.fingerprint != fingerprint:
            raise invalid(
                "Idempotence-Key",
                "Idempotence key duplicated: this key was already used with other parameters",
            )
        return web.json_response(stored.body, status=stored.status)
    try:
        status, body = 200, operation(data)
    except ApiError as exc:
        status, body = exc.status, exc.body()
    if status < 500:
        state.remember(shop, key, fingerprint, status, body)
    return web.json_response(body, status=status)


def _object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object")
    return data


def _description(data: dict[str, Any], limit: int) -> str | None:
    description = data.get("description")
    if description is None:
        return None
    if not isinstance(description, str) or len(description) > limit:
        raise invalid("description", f"description must be a string of at most {limit} chars")
    return description


def _metadata(value: Any) -> dict[str, str] | None:
    """Up to 16 keys of at most 32 characters; values of at most 512, kept as strings."""
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) > MAX_METADATA_KEYS:
        raise invalid("metadata", f"metadata must be an object of at most {MAX_METADATA_KEYS} keys")
    metadata: dict[str, str] = {}
    for key, item in value.items():
        if len(key) > MAX_METADATA_KEY:
            raise invalid("metadata", f"metadata keys are at most {MAX_METADATA_KEY} characters")
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise invalid("metadata", f"metadata.{key} must be a string")
        text = str(item)
        if len(text) > MAX_METADATA_VALUE:
            raise invalid("metadata", f"metadata values are at most {MAX_METADATA_VALUE} chars")
        metadata[key] = text
    return metadata


def _return_url(confirmation: Any) -> str:
    if not isinstance(confirmation, dict):
        raise invalid("confirmation", "confirmation must be an object")
    if confirmation.get("type") != "redirect":
        raise invalid("confirmation.type", "Only the redirect confirmation type is supported")
    url = confirmation.get("return_url")
    if not isinstance(url, str) or len(url) > MAX_URL or not urlsplit(url).scheme:
        raise invalid("confirmation.return_url", "return_url must be an absolute URL")
    return url


def _origin(state: YooKassaState, request: web.Request) -> str:
    return (state.options.public_url or str(request.url.origin())).rstrip("/")


def new_payment(state: YooKassaState, shop: Shop, data: Any, origin: str) -> Payment:
    """Check a create-payment request and add the pending payment it describes."""
    data = _object(data)
    amount, currency = parse_money(data.get("amount"))
    capture = data.get("capture", False)
    if not isinstance(capture, bool):
        raise invalid("capture", "capture must be true or false")
    description = _description(data, MAX_DESCRIPTION)
    metadata = _metadata(data.get("metadata"))
    confirmation = data.get("confirmation")
    return_url = None if confirmation is None else _return_url(confirmation)
    payment_id = yookassa_id("000f")
    payment = Payment(
        id=payment_id,
        seq=state.next_seq(),
        shop=shop,
        amount=amount,
        currency=currency,
        capture=capture,
        created_at=now(),
        description=description,
        metadata=metadata,
        return_url=return_url,
        confirmation_url=(
            f"{origin}/yookassa/checkout/{payment_id}" if confirmation is not None else None
        ),
    )
    state.payments[payment.id] = payment
    return payment


def _own_payment(state: YooKassaState, shop: Shop, payment_id: str) -> Payment:
    payment = state.payments.get(payment_id)
    if payment is None or payment.shop is not shop:
        raise ApiError(404, f"Payment {payment_id} not found", parameter="payment_id")
    return payment


@api_route
async def create_payment(request: web.Request, state: YooKassaState, shop: Shop) -> web.Response:
    origin = _origin(state, request)
    return await idempotent(
        request, state, shop, lambda data: new_payment(state, shop, data, origin).to_json()
    )


@api_route
async def get_payment(request: web.Request, state: YooKassaState, shop: Shop) -> web.Response:
    return web.json_response(_own_payment(state, shop, request.match_info["id"]).to_json())


@api_route
async def list_payments(request: web.Request, state: YooKassaState, shop: Shop) -> web.Response:
    mine = [p for p in state.payments.values() if p.shop is shop]
    return web.json_response(listing(request, mine, PAYMENT_STATUSES))


@api_route
async def capture_payment(request: web.Request, state: YooKassaState, shop: Shop) -> web.Response:
    payment = _own_payment(state, shop, request.match_info["id"])

    def operation(data: Any) -> dict[str, Any]:
        amount: Decimal | None = None
        if isinstance(data, dict) and data.get("amount") is not None:
            amount, currency = parse_money(data["amount"])
            if currency != payment.currency:
                raise invalid("amount.currency", "The capture currency differs from the payment's")
        elif data is not None and not isinstance(data, dict):
            raise ApiError(400, "The request body must be a JSON object")
        flows.capture(state, payment, amount)
        return payment.to_json()

    return await idempotent(request, state, shop, operation)


@api_route
async def cancel_payment(request: web.Request, state: YooKassaState, shop: Shop) -> web.Response:
    payment = _own_payment(state, shop, request.match_info["id"])

    def operation(data: Any) -> dict[str, Any]:
        flows.merchant_cancel(state, payment)
        return payment.to_json()

    return await idempotent(request, state, shop, operation)


@api_route
async def create_refund(request: web.Request, state: YooKassaState, shop: Shop) -> web.Response:
    def operation(data: Any) -> dict[str, Any]:
        data = _object(data)
        payment_id = data.get("payment_id")
        payment = state.payments.get(payment_id) if isinstance(payment_id, str) else None
        if payment is None or payment.shop is not shop:
            raise invalid("payment_id", "payment_id does not name a payment of this shop")
        amount, currency = parse_money(data.get("amount"))
        description = _description(data, MAX_REFUND_DESCRIPTION)
        return flows.refund(state, shop, payment, amount, currency, description).to_json()

    return await idempotent(request, state, shop, operation)


@api_route
async def get_refund(request: web.Request, state: YooKassaState, shop: Shop) -> web.Response:
    found = state.refunds.get(request.match_info["id"])
    if found is None or found.shop is not shop:
        raise ApiError(404, f"Refund {request.match_info['id']} not found", parameter="refund_id")
    return web.json_response(found.to_json())


@api_route
async def list_refunds(request: web.Request, state: YooKassaState, shop: Shop) -> web.Response:
    mine = [r for r in state.refunds.values() if r.shop is shop]
    payment_id = request.query.get("payment_id")
    if payment_id is not None:
        mine = [r for r in mine if r.payment_id == payment_id]
    return web.json_response(listing(request, mine, REFUND_STATUSES))


@api_route
async def unknown(request: web.Request, state: YooKassaState, shop: Shop) -> web.Response:
    raise ApiError(404, f"{request.method} {request.path} does not exist")


def _limit(text: str | None) -> int:
    if text is None:
        return 10
    if not text.isdigit() or not 1 <= int(text) <= 100:
        raise invalid("limit", "limit must be a whole number from 1 to 100")
    return int(text)


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"after:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        label, _, seq = text.partition(":")
        if label != "after" or not seq.isdigit():
            raise ValueError(cursor)
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid("cursor", "cursor is not one this API gave out") from exc
    return int(seq)


def _time_filters(query: Any) -> list[tuple[str, str, datetime]]:
    found = []
    for name in ("created_at", "captured_at"):
        for op in TIME_FILTERS:
            text = query.get(f"{name}.{op}")
            if text is not None:
                found.append((name, op, parse_time(text, f"{name}.{op}")))
    return found


def _passes(moment: datetime | None, op: str, bound: datetime) -> bool:
    if moment is None:
        return False
    return {
        "gte": moment >= bound,
        "gt": moment > bound,
        "lte": moment <= bound,
        "lt": moment < bound,
    }[op]


def listing(
    request: web.Request, items: Sequence[Payment | Refund], statuses: Sequence[str]
) -> dict[str, Any]:
    """A page of ``items``, newest first: ``{type: "list", items, next_cursor?}``. Filters are
    ``status`` and ``created_at``/``captured_at`` with ``.gte``, ``.gt``, ``.lte``, ``.lt``;
    ``next_cursor`` is there only while more items follow."""
    query = request.query
    limit = _limit(query.get("limit"))
    before = decode_cursor(query["cursor"]) if "cursor" in query else None
    status = query.get("status")
    if status is not None and status not in statuses:
        raise invalid("status", f"status must be one of {', '.join(statuses)}")
    filters = _time_filters(query)
    chosen = [
        item
        for item in sorted(items, key=lambda item: item.seq, reverse=True)
        if (before is None or item.seq < before)
        and (status is None or item.status == status)
        and all(_passes(getattr(item, name, None), op, bound) for name, op, bound in filters)
    ]
    page = chosen[:limit]
    body: dict[str, Any] = {"type": "list", "items": [item.to_json() for item in page]}
    if len(chosen) > limit:
        body["next_cursor"] = encode_cursor(page[-1].seq)
    return body


def setup_api(app: web.Application) -> None:
    router = app.router
    router.add_post(f"{PREFIX}/payments", create_payment)
    router.add_get(f"{PREFIX}/payments", list_payments)
    router.add_get(f"{PREFIX}/payments/{{id}}", get_payment)
    router.add_post(f"{PREFIX}/payments/{{id}}/capture", capture_payment)
    router.add_post(f"{PREFIX}/payments/{{id}}/cancel", cancel_payment)
    router.add_post(f"{PREFIX}/refunds", create_refund)
    router.add_get(f"{PREFIX}/refunds", list_refunds)
    router.add_get(f"{PREFIX}/refunds/{{id}}", get_refund)
    router.add_route("*", f"{PREFIX}/{{tail:.*}}", unknown)
