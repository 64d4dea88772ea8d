"""Mini App launch data signed exactly as Telegram signs it (the first-party HMAC scheme).

The Ed25519 ``signature`` field is left out: only Telegram holds the private key it is made with.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit


def sign_init_data(
    bot_token: str,
    *,
    user: dict[str, Any],
    auth_date: int,
    start_param: str | None = None,
    chat_type: str | None = None,
    query_id: str | None = None,
) -> str:
    fields: dict[str, str] = {
        "auth_date": str(auth_date),
        "user": json.dumps(user, ensure_ascii=False, separators=(",", ":")),
    }
    if chat_type:
        fields["chat_type"] = chat_type
        fields["chat_instance"] = str(secrets.randbits(62))
    else:
        fields["query_id"] = query_id or "AAH" + secrets.token_urlsafe(18)
    if start_param:
        fields["start_param"] = start_param
    return sign_fields(fields, bot_token)


def sign_fields(fields: dict[str, str], bot_token: str) -> str:
    check = "\n".join(f"{k}={v}" for k, v in sorted(fields.items()))
    secret = hmac.new(b"WebAppData", bot_token.encode(), hashlib.sha256).digest()
    digest = hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()
    return urlencode({**fields, "hash": digest}, quote_via=quote)


def launch_url(url: str, init_data: str, start_param: str | None) -> str:
    """The URL a Telegram client opens: initData and the platform in the fragment."""
    parts = urlsplit(url)
    query = parts.query
    if start_param:
        extra = urlencode({"tgWebAppStartParam": start_param})
        query = f"{query}&{extra}" if query else extra
    fragment = urlencode(
        {"tgWebAppData": init_data, "tgWebAppVersion": "10.1", "tgWebAppPlatform": "web"},
        quote_via=quote,
    )
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, fragment))
