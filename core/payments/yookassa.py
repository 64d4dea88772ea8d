"""YooKassa API v3 over the shared httpx client: create a payment (with a stable
``Idempotence-Key`` per order, so a retry can never create a second payment), fetch one, list
them. HTTP Basic auth with the shop id and secret key; amounts cross the wire as rouble strings
with two decimals and are integer kopecks everywhere else.

Transport and API failures become ``PaymentGatewayError``; the secret key never appears in an
error, a log line or a repr.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from core.errors import DomainError, InvalidInput
from core.i18n import N_

log = logging.getLogger(__name__)
# YooKassa's object ids (UUID-shaped: hex digits and dashes); anything else is not one.
OBJECT_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z-]{0,63}")
TIMEOUT = httpx.Timeout(connect=10.0, read=35.0, write=10.0, pool=10.0)


def is_object_id(value: str) -> bool:
    return OBJECT_ID.fullmatch(value) is not None


class PaymentGatewayError(DomainError):
    code = "payment_gateway_error"
    msgid = N_("The payment service is not answering right now. Please try again in a minute.")


def rubles(kopecks: int) -> str:
    """``12345`` → ``"123.45"``."""
    if kopecks < 0:
        raise ValueError("negative amount")
    return f"{kopecks // 100}.{kopecks % 100:02d}"


def kopecks(value: str) -> int:
    """``"123.45"`` → ``12345``; anything else is refused."""
    whole, dot, frac = value.partition(".")
    if not whole.isdigit() or (dot and not (frac.isdigit() and len(frac) <= 2)):
        raise ValueError(f"not an amount: {value!r}")
    return int(whole) * 100 + int((frac or "0").ljust(2, "0"))


@dataclass(frozen=True, slots=True)
class YooPayment:
    id: str
    status: str
    paid: bool
    amount: int
    currency: str
    metadata: Mapping[str, str]
    confirmation_url: str | None
    created_at: str
    refunded_amount: int = 0

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> YooPayment:
        amount = data.get("amount") or {}
        refunded = data.get("refunded_amount") or {}
        return cls(
            id=str(data["id"]),
            status=str(data["status"]),
            paid=bool(data.get("paid")),
            amount=kopecks(str(amount.get("value", "0"))),
            currency=str(amount.get("currency", "")),
            metadata={str(k): str(v) for k, v in (data.get("metadata") or {}).items()},
            confirmation_url=(data.get("confirmation") or {}).get("confirmation_url"),
            created_at=str(data.get("created_at", "")),
            refunded_amount=kopecks(str(refunded.get("value", "0"))),
        )


@dataclass(frozen=True)
class YooKassaClient:
    http: httpx.AsyncClient
    shop_id: str
    secret_key: str = field(repr=False)
    api_base: str = "https://api.yookassa.ru/v3"

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        idempotence_key: str | None = None,
    ) -> dict[str, Any]:
        headers = {"Idempotence-Key": idempotence_key} if idempotence_key else {}
        try:
            response = await self.http.request(
                method,
                self.api_base.rstrip("/") + path,
                json=json,
                params=params,
                headers=headers,
                auth=(self.shop_id, self.secret_key),
                timeout=TIMEOUT,
            )
        except httpx.HTTPError as exc:
            raise PaymentGatewayError(f"YooKassa {method} {path}: {type(exc).__name__}") from None
        if response.status_code >= 400:
            try:
                body = response.json()
                what = f"{body.get('code')}: {body.get('description')}"
            except ValueError:
                what = response.text[:200]
            raise PaymentGatewayError(
                f"YooKassa {method} {path} answered {response.status_code} ({what})",
                status=response.status_code,
            )
        try:
            data = response.json()
        except ValueError:
            raise PaymentGatewayError(f"YooKassa {method} {path}: not JSON") from None
        if not isinstance(data, dict):
            raise PaymentGatewayError(f"YooKassa {method} {path}: unexpected answer")
        return data

    async def create_payment(
        self,
        *,
        amount: int,
        description: str,
        return_url: str,
        metadata: Mapping[str, str],
        idempotence_key: str,
    ) -> YooPayment:
        body = {
            "amount": {"value": rubles(amount), "currency": "RUB"},
            "capture": True,
            "confirmation": {"type": "redirect", "return_url": return_url},
            "description": description[:128],
            "metadata": dict(metadata),
        }
        data = await self._call("POST", "/payments", json=body, idempotence_key=idempotence_key)
        return YooPayment.from_json(data)

    async def get_payment(self, payment_id: str) -> YooPayment:
        if not is_object_id(payment_id):
            raise InvalidInput("not a YooKassa payment id")
        return YooPayment.from_json(await self._call("GET", f"/payments/{payment_id}"))

    async def list_payments(
        self, *, created_from: datetime, created_before: datetime, status: str | None = None
    ) -> list[YooPayment]:
        """Every payment created in the window, across pages."""
        found: list[YooPayment] = []
        params: dict[str, str] = {
            "limit": "100",
            "created_at.gte": created_from.isoformat().replace("+00:00", "Z"),
            "created_at.lt": created_before.isoformat().replace("+00:00", "Z"),
        }
        if status:
            params["status"] = status
        while True:
            data = await self._call("GET", "/payments", params=params)
            found.extend(YooPayment.from_json(item) for item in data.get("items") or [])
            cursor = data.get("next_cursor")
            if not cursor:
                return found
            params["cursor"] = str(cursor)
