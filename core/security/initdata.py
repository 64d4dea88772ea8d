"""Telegram Mini App launch data (``initData``), verified as Telegram documents it.

The secret is HMAC-SHA256 of the bot token keyed with ``WebAppData``; the check string is every
field but ``hash``, sorted, ``key=value`` joined by newlines (``signature`` included). The derived
key is computed once per verifier, so a check costs two HMACs and a parse.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from core.errors import Unauthorized
from core.i18n import N_

CLOCK_SKEW = timedelta(seconds=60)


class InitDataInvalid(Unauthorized):
    code = "init_data_invalid"
    msgid = N_("Telegram sign-in failed. Please open the app again from the bot.")


class InitDataExpired(Unauthorized):
    code = "init_data_expired"
    msgid = N_("This sign-in has expired. Please open the app again from the bot.")


@dataclass(frozen=True, slots=True)
class WebAppUser:
    id: int
    first_name: str
    last_name: str | None
    username: str | None
    language_code: str | None
    is_premium: bool


@dataclass(frozen=True, slots=True)
class InitData:
    user: WebAppUser
    auth_date: datetime
    start_param: str | None
    query_id: str | None
    chat_type: str | None
    hash: str


# A percent sign not starting a %XX escape: such values take the standard decoder.
_LOOSE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _unquote(value: str) -> str:
    """``urllib.parse.unquote_plus``, exactly, but in C for well-formed values.

    Percent-decoding in pure Python is most of a verification's cost (the ``user`` field is
    JSON with dozens of escapes). Quoted-printable decoding is the same transformation with
    ``=`` for ``%``: used only when the value is ASCII, has no ``=``, no line breaks and only
    whole ``%XX`` escapes, where the two decoders cannot differ."""
    value = value.replace("+", " ")
    if "%" not in value:
        return value
    if (
        not value.isascii()
        or "=" in value
        or "\n" in value
        or "\r" in value
        or _LOOSE_PERCENT.search(value)
    ):
        return unquote(value)
    return binascii.a2b_qp(value.replace("%", "=")).decode("utf-8", "replace")


def parse_query(raw: str) -> list[tuple[str, str]]:
    """``parse_qsl(raw, keep_blank_values=True, strict_parsing=True)``, faster."""
    pairs: list[tuple[str, str]] = []
    if not raw:
        return pairs
    for part in raw.split("&"):
        name, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"bad query field: {part!r}")
        pairs.append((_unquote(name), _unquote(value)))
    return pairs


class InitDataVerifier:
    """``ed25519_public_key``: when set, the ``signature`` field must also verify with it
    (Telegram's check for third parties, which a server that knows the bot token cannot forge:
    Telegram's production or test key, or a deployment's own for a stand-in)."""

    def __init__(
        self, bot_token: str, max_age: timedelta, *, ed25519_public_key: bytes | None = None
    ) -> None:
        self._key = hmac.new(b"WebAppData", bot_token.encode(), hashlib.sha256).digest()
        self.max_age = max_age
        self._bot_id = bot_token.split(":", 1)[0]
        self._ed25519 = (
            Ed25519PublicKey.from_public_bytes(ed25519_public_key)
            if ed25519_public_key is not None
            else None
        )

    def _check_signature(self, fields: dict[str, str]) -> None:
        assert self._ed25519 is not None
        encoded = fields.get("signature", "")
        try:
            signature = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except (ValueError, binascii.Error) as exc:
            raise InitDataInvalid("signature malformed") from exc
        if len(signature) != 64:
            raise InitDataInvalid("no valid signature")
        signed = "\n".join(
            [f"{self._bot_id}:WebAppData"]
            + [f"{k}={v}" for k, v in sorted(fields.items()) if k != "signature"]
        )
        try:
            self._ed25519.verify(signature, signed.encode())
        except InvalidSignature as exc:
            raise InitDataInvalid("signature does not match") from exc

    def verify(self, raw: str, *, now: datetime) -> InitData:
        try:
            pairs = parse_query(raw)
        except ValueError as exc:
            raise InitDataInvalid("not a query string") from exc
        fields = dict(pairs)
        if len(fields) != len(pairs):
            raise InitDataInvalid("a field appears twice")
        received = fields.pop("hash", "")
        if not received:
            raise InitDataInvalid("no hash")
        check = "\n".join(f"{k}={v}" for k, v in sorted(fields.items()))
        expected = hmac.new(self._key, check.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, received.lower()):
            raise InitDataInvalid("hash does not match")
        if self._ed25519 is not None:
            self._check_signature(fields)
        try:
            auth_date = datetime.fromtimestamp(int(fields["auth_date"]), UTC)
            user = json.loads(fields["user"])
            web_user = WebAppUser(
                id=int(user["id"]),
                first_name=str(user.get("first_name") or ""),
                last_name=user.get("last_name"),
                username=user.get("username"),
                language_code=user.get("language_code"),
                is_premium=bool(user.get("is_premium", False)),
            )
        except (KeyError, ValueError, TypeError, OverflowError) as exc:
            raise InitDataInvalid("auth_date or user malformed") from exc
        if auth_date > now + CLOCK_SKEW:
            raise InitDataInvalid("auth_date in the future")
        if now - auth_date > self.max_age:
            raise InitDataExpired(f"auth_date {auth_date.isoformat()}")
        return InitData(
            user=web_user,
            auth_date=auth_date,
            start_param=fields.get("start_param"),
            query_id=fields.get("query_id"),
            chat_type=fields.get("chat_type"),
            hash=received.lower(),
        )
