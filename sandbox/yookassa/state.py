"""The fake YooKassa's memory: shops, payments, refunds, stored idempotent answers, scripted
faults and notification deliveries, plus the wire formats they share (money, times, errors)."""

from __future__ import annotations

import asyncio
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import aiohttp

CENT = Decimal("0.01")
PAYMENT_STATUSES = ("pending", "waiting_for_capture", "succeeded", "canceled")
REFUND_STATUSES = ("pending", "succeeded", "canceled")
# The currencies YooKassa accepts in ``amount.currency``.
CURRENCIES = frozenset(
    {"RUB", "USD", "EUR", "GBP", "BYN", "CNY", "KZT", "UAH", "UZS", "TRY", "INR", "MDL", "AZN"}
    | {"AMD", "KGS", "TJS"}
)
_VALUE = re.compile(r"(0|[1-9][0-9]*)\.[0-9]{2}")
ERROR_CODES = {
    400: "invalid_request",
    401: "invalid_credentials",
    403: "forbidden",
    404: "not_found",
    405: "not_supported",
    429: "too_many_requests",
    500: "internal_server_error",
}
# How long a two-stage payment may wait for capture once paid by bank card.
CAPTURE_WINDOW = timedelta(days=7)


@dataclass
class YooKassaOptions:
    # Notification re-delivery: the first retry waits ``retry_base`` seconds, each next one twice
    # as long (capped at ``retry_cap``), for at most ``max_attempts`` attempts in all.
    retry_base: float = 1.0
    retry_cap: float = 60.0
    max_attempts: int = 10
    webhook_timeout: float = 10.0
    # YooKassa's commission, withheld from ``income_amount``.
    fee_percent: Decimal = Decimal("3.5")
    # An Idempotence-Key answers with its first result for this many seconds.
    idempotence_ttl: float = 24 * 3600.0
    # The origin written into ``confirmation_url``; by default the one the request came to.
    public_url: str | None = None


class ApiError(Exception):
    """An error answer in YooKassa's shape: ``{type: "error", id, code, description,
    parameter?}``."""

    def __init__(
        self, status: int, description: str, *, parameter: str | None = None, code: str = ""
    ) -> None:
        super().__init__(description)
        self.status = status
        self.code = code or ERROR_CODES.get(status, "internal_server_error")
        self.description = description
        self.parameter = parameter

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": "error",
            "id": str(uuid.uuid4()),
            "code": self.code,
            "description": self.description,
        }
        if self.parameter is not None:
            body["parameter"] = self.parameter
        return body


def invalid(parameter: str, description: str) -> ApiError:
    return ApiError(400, description, parameter=parameter)


def now() -> datetime:
    """The current UTC time at YooKassa's precision, milliseconds."""
    moment = datetime.now(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def iso(moment: datetime) -> str:
    """``2024-05-01T12:30:00.123Z``, the way YooKassa writes every time."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(text: str, parameter: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise invalid(parameter, f"{parameter} is not an ISO 8601 date and time") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def money(value: Decimal, currency: str) -> dict[str, str]:
    return {"value": f"{value:.2f}", "currency": currency}


def parse_money(data: Any, parameter: str = "amount") -> tuple[Decimal, str]:
    """An ``{value: "123.45", currency: "RUB"}`` object: the value a string with exactly two
    decimals and above zero, the currency one YooKassa accepts."""
    if not isinstance(data, dict):
        raise invalid(parameter, f"{parameter} is required: an object with value and currency")
    value = data.get("value")
    if not isinstance(value, str) or not _VALUE.fullmatch(value):
        raise invalid(
            f"{parameter}.value",
            f'{parameter}.value must be a string with two decimals, like "100.00"',
        )
    amount = Decimal(value)
    if amount <= 0:
        raise invalid(f"{parameter}.value", f"{parameter}.value must be above zero")
    currency = data.get("currency")
    if currency not in CURRENCIES:
        raise invalid(f"{parameter}.currency", f"{parameter}.currency is not supported")
    return amount, str(currency)


def yookassa_id(kind: str) -> str:
    """An id shaped like YooKassa's: UUID-like, its second group telling payments (``000f``)
    from refunds (``0015``)."""
    return f"{secrets.token_hex(4)}-{kind}-5000-8000-{secrets.token_hex(6)}"


@dataclass
class Shop:
    shop_id: str
    secret_key: str
    webhook_url: str | None
    gateway_id: str

    def to_json(self) -> dict[str, Any]:
        return {
            "shop_id": self.shop_id,
            "webhook_url": self.webhook_url,
            "gateway_id": self.gateway_id,
        }


@dataclass
class Payment:
    id: str
    seq: int
    shop: Shop
    amount: Decimal
    currency: str
    capture: bool
    created_at: datetime
    description: str | None = None
    metadata: dict[str, str] | None = None
    return_url: str | None = None
    confirmation_url: str | None = None
    status: str = "pending"
    paid: bool = False
    captured_at: datetime | None = None
    expires_at: datetime | None = None
    income: Decimal | None = None
    refunded: Decimal = Decimal(0)
    payment_method: dict[str, Any] | None = None
    authorization_details: dict[str, Any] | None = None
    cancellation_details: dict[str, str] | None = None

    @property
    def refundable(self) -> bool:
        return self.status == "succeeded" and self.refunded < self.amount

    def to_json(self) -> dict[str, Any]:
        """The Payment object as the API returns it and notifications carry it."""
        body: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "paid": self.paid,
            "amount": money(self.amount, self.currency),
        }
        if self.income is not None:
            body["income_amount"] = money(self.income, self.currency)
        if self.description is not None:
            body["description"] = self.description
        body["recipient"] = {"account_id": self.shop.shop_id, "gateway_id": self.shop.gateway_id}
        if self.payment_method is not None:
            body["payment_method"] = self.payment_method
        if self.captured_at is not None:
            body["captured_at"] = iso(self.captured_at)
        body["created_at"] = iso(self.created_at)
        if self.expires_at is not None:
            body["expires_at"] = iso(self.expires_at)
        if self.status == "pending" and self.confirmation_url is not None:
            body["confirmation"] = {
                "type": "redirect",
                "confirmation_url": self.confirmation_url,
                "return_url": self.return_url,
            }
        body["test"] = True
        if self.refunded > 0:
            body["refunded_amount"] = money(self.refunded, self.currency)
        body["refundable"] = self.refundable
        if self.metadata is not None:
            body["metadata"] = self.metadata
        if self.cancellation_details is not None:
            body["cancellation_details"] = self.cancellation_details
        if self.authorization_details is not None:
            body["authorization_details"] = self.authorization_details
        return body


@dataclass
class Refund:
    id: str
    seq: int
    shop: Shop
    payment_id: str
    amount: Decimal
    currency: str
    created_at: datetime
    description: str | None = None
    status: str = "succeeded"

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "payment_id": self.payment_id,
            "status": self.status,
            "created_at": iso(self.created_at),
            "amount": money(self.amount, self.currency),
        }
        if self.description is not None:
            body["description"] = self.description
        return body


@dataclass
class Stored:
    """A first answer kept under its Idempotence-Key, with what the request was."""

    fingerprint: str
    status: int
    body: dict[str, Any]
    at: float


@dataclass
class Fault:
    path_contains: str
    status: int
    times: int
    method: str | None = None

    def matches(self, method: str, path: str) -> bool:
        return self.path_contains in path and self.method in (None, method)

    def to_json(self) -> dict[str, Any]:
        return {
            "path_contains": self.path_contains,
            "status": self.status,
            "times": self.times,
            "method": self.method,
        }


@dataclass
class Delivery:
    """One notification on its way to a shop's webhook_url, retried until it is answered 200."""

    id: int
    shop: Shop
    event: str
    object_id: str
    payment_id: str
    body: dict[str, Any]
    created_at: datetime
    attempts: int = 0
    last_status: int | None = None
    last_error: str | None = None
    delivered: bool = False
    finished: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event": self.event,
            "payment_id": self.payment_id,
            "object_id": self.object_id,
            "shop_id": self.shop.shop_id,
            "attempts": self.attempts,
            "last_status": self.last_status,
            "last_error": self.last_error,
            "delivered": self.delivered,
            "state": "delivered" if self.delivered else ("failed" if self.finished else "pending"),
            "created_at": iso(self.created_at),
            "body": self.body,
        }


@dataclass
class YooKassaState:
    options: YooKassaOptions = field(default_factory=YooKassaOptions)
    shops: dict[str, Shop] = field(default_factory=dict)
    payments: dict[str, Payment] = field(default_factory=dict)
    refunds: dict[str, Refund] = field(default_factory=dict)
    idempotence: dict[tuple[str, str], Stored] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    session: aiohttp.ClientSession | None = None
    _seq: int = 0

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def register_shop(self, shop_id: str, secret_key: str, webhook_url: str | None) -> Shop:
        """Add a shop, or give a known one a new secret key and webhook_url."""
        shop = self.shops.get(shop_id)
        if shop is None:
            shop = Shop(shop_id, secret_key, webhook_url, str(100000 + secrets.randbelow(900000)))
            self.shops[shop_id] = shop
        shop.secret_key = secret_key
        shop.webhook_url = webhook_url
        return shop

    def take_fault(self, method: str, path: str) -> Fault | None:
        """The first scripted fault matching this call, used up once."""
        for fault in self.faults:
            if fault.matches(method, path):
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def recall(self, shop: Shop, key: str) -> Stored | None:
        """The answer stored under a shop's Idempotence-Key, while it is still kept."""
        stored = self.idempotence.get((shop.shop_id, key))
        if stored is not None and time.monotonic() - stored.at > self.options.idempotence_ttl:
            del self.idempotence[(shop.shop_id, key)]
            return None
        return stored

    def remember(self, shop: Shop, key: str, fingerprint: str, status: int, body: Any) -> None:
        self.idempotence[(shop.shop_id, key)] = Stored(fingerprint, status, body, time.monotonic())

    def income(self, amount: Decimal) -> Decimal:
        """What the shop receives: the amount less the commission, rounded to kopecks."""
        fee = (amount * self.options.fee_percent / 100).quantize(CENT, rounding=ROUND_HALF_UP)
        return amount - fee
