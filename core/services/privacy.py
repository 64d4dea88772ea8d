"""The privacy policy made true: export of everything held about a user, erasure of the account.

``EXPORTED`` and ``NOT_EXPORTED`` together name every column of every table that refers to a
user; a test driven by the schema fails when a new column has no decision. The export streams
rows from the database into a spooled file, so memory stays bounded however large the history.

Three formats: one pretty-printed JSON document (amounts named for their unit, such as
``amount_kopecks``), a ZIP of CSV tables, and a readable HTML transcript of the chats (a
self-contained page: every user and model text escaped, no scripts, nothing loaded from
elsewhere). Each format may be asked for once an hour.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import html
import io
import json
import secrets
import tempfile
import textwrap
import zipfile
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO, Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select, text, update

from core.errors import InvalidInput, RateLimited
from core.i18n import N_
from core.media import MediaStore
from core.services import inbox
from core.services.accounts import LANGUAGE_ZONES
from core.services.chat import display_name
from db.models import (
    AdminAction,
    ChatMessageRow,
    Consent,
    Conversation,
    File,
    FileLink,
    FreeUsage,
    Identity,
    Media,
    Preset,
    PrivacyRequest,
    PromoRedemption,
    RequestLog,
    Reservation,
    Session,
    ShareLink,
    SignupAttribution,
    Subscription,
    SupportMessage,
    SupportThread,
    User,
)
from db.uow import UnitOfWork

# Category (policy section 3) → (table, column holding the user's id, exported columns).
EXPORTED: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "account": (
        "users",
        "id",
        (
            "id",
            "telegram_id",
            "username",
            "profile_name",
            "referral_code",
            "is_blocked",
            "created_at",
            "deleted_at",
        ),
    ),
    "settings": (
        "users",
        "id",
        ("language", "timezone", "theme", "features", "history_enabled", "marketing_opt_in"),
    ),
    "session": (
        "users",
        "id",
        (
            "last_activity_at",
            "last_auth_at",
            "last_auth_platform",
            "last_auth_device",
            "last_auth_os",
            "last_auth_browser",
            "last_auth_ip",
            "last_auth_user_agent",
            "bot_blocked_at",
        ),
    ),
    "referrals": ("users", "id", ("invited_by", "ref1_count", "ref2_count")),
    "identities": (
        "identities",
        "user_id",
        ("id", "provider", "subject", "email", "email_verified", "created_at"),
    ),
    "consents": ("consents", "user_id", ("id", "policy_version", "platform", "accepted_at")),
    "signup_attribution": (
        "signup_attributions",
        "user_id",
        (
            "landing_page",
            "referrer",
            "utm_source",
            "utm_medium",
            "utm_campaign",
            "utm_term",
            "utm_content",
            "platform",
            "device_type",
            "os",
            "browser",
            "ip",
            "user_agent",
            "created_at",
        ),
    ),
    "balance": (
        "balances",
        "user_id",
        ("balance", "reserved", "discount_percent", "bonus_percent", "updated_at"),
    ),
    "transactions": (
        "ledger_entries",
        "user_id",
        (
            "id",
            "kind",
            "category",
            "amount",
            "balance_after",
            "input_tokens",
            "output_tokens",
            "cost",
            "markup_percent",
            "discount_percent",
            "model_id",
            "metadata",
            "created_at",
        ),
    ),
    "reservations": (
        "reservations",
        "user_id",
        ("id", "amount", "status", "model_id", "created_at", "closed_at"),
    ),
    "payments": (
        "payments",
        "user_id",
        (
            "id",
            "provider",
            "external_id",
            "currency",
            "amount",
            "credited",
            "status",
            "created_at",
            "refunded_at",
        ),
    ),
    "privacy_requests": ("privacy_requests", "user_id", ("kind", "format", "created_at")),
    "presets": (
        "presets",
        "user_id",
        ("id", "title", "system_prompt", "created_at", "updated_at"),
    ),
    "conversations": (
        "conversations",
        "user_id",
        ("id", "title", "model_id", "preset_id", "created_at", "updated_at"),
    ),
    "request_log": ("request_log", "user_id", ("method", "endpoint", "status", "created_at")),
    "promo_redemptions": (
        "promo_redemptions",
        "user_id",
        ("id", "code_id", "status", "credited", "created_at"),
    ),
    "media": (
        "media",
        "user_id",
        (
            "id",
            "kind",
            "prompt",
            "model_id",
            "status",
            "mime",
            "width",
            "height",
            "duration_seconds",
            "cost",
            "provider_data",
            "created_at",
        ),
    ),
    "free_tier": ("free_usage", "user_id", ("tier", "used", "reset_at")),
    "files": (
        "files",
        "user_id",
        (
            "id",
            "name",
            "mime",
            "size",
            "sha256",
            "status",
            "error",
            "pages",
            "chunks",
            "billed_tokens",
            "created_at",
            "updated_at",
        ),
    ),
    "share_links": (
        "share_links",
        "user_id",
        (
            "id",
            "conversation_id",
            "preset_id",
            "created_at",
            "revoked_at",
            "disabled_at",
            "views",
        ),
    ),
    "file_links": (
        "file_links",
        "user_id",
        ("file_id", "conversation_id", "preset_id", "created_at"),
    ),
    "sessions": (
        "sessions",
        "user_id",
        (
            "platform",
            "device",
            "os",
            "browser",
            "ip",
            "user_agent",
            "created_at",
            "last_used_at",
            "expires_at",
            "revoked_at",
        ),
    ),
    "support": (
        "support_threads",
        "user_id",
        ("admin_chat_id", "topic_id", "header_message_id", "created_at", "last_message_at"),
    ),
    "support_messages": (
        "support_messages",
        "user_id",
        (
            "id",
            "direction",
            "user_message_id",
            "admin_chat_id",
            "admin_message_id",
            "created_at",
        ),
    ),
    "subscriptions": (
        "subscriptions",
        "user_id",
        (
            "id",
            "plan",
            "stars",
            "status",
            "first_charge_id",
            "last_charge_id",
            "current_period_end",
            "created_at",
            "cancelled_at",
        ),
    ),
    "payment_orders": (
        "payment_orders",
        "user_id",
        ("id", "provider", "amount", "external_id", "status", "created_at", "updated_at"),
    ),
    "admin_actions": (
        "admin_actions",
        "target_user_id",
        ("id", "action", "target", "before", "after", "reason", "created_at"),
    ),
    "messages": (
        "messages",
        "user_id",
        (
            "id",
            "conversation_id",
            "role",
            "content",
            "reasoning",
            "model_id",
            "input_tokens",
            "output_tokens",
            "status",
            "is_pinned",
            "replaced",
            "rating",
            "cost",
            "sources",
            "created_at",
            "expires_at",
        ),
    ),
    # Updates received from the person and not handled yet (normally for a few seconds only),
    # matched by their Telegram id.
    "waiting_updates": ("inbox_updates", "telegram_id", ("update_id", "payload", "received_at")),
}

# Columns deliberately left out of the export, each with the reason.
NOT_EXPORTED: dict[str, dict[str, str]] = {
    "users": {},
    "identities": {
        "user_id": "the account's own id, exported once under account",
        "password_hash": "a secret derived from the password; never handed out (policy 3.1)",  # nosec B105 # a description
    },
    "consents": {"user_id": "the account's own id"},
    "signup_attributions": {"id": "an internal row number", "user_id": "the account's own id"},
    "balances": {"user_id": "the account's own id"},
    "ledger_entries": {
        "user_id": "the account's own id",
        "idempotency_key": "an internal key that makes each operation apply once",
    },
    "reservations": {
        "user_id": "the account's own id",
        "idempotency_key": "an internal key that makes each operation apply once",
        "owner": "which server process holds the money for a reply in progress (host and "
        "process number of the service, nothing about the user)",
    },
    "payments": {
        "user_id": "the account's own id",
        "payload": "an internal signed reference; the payment itself is exported",
    },
    "privacy_requests": {"id": "an internal row number", "user_id": "the account's own id"},
    "presets": {"user_id": "the account's own id"},
    "conversations": {"user_id": "the account's own id"},
    "messages": {"user_id": "the account's own id"},
    "promo_redemptions": {"user_id": "the account's own id"},
    "request_log": {"id": "an internal row number", "user_id": "the account's own id"},
    "media": {
        "user_id": "the account's own id",
        "storage_key": "where the file lies in our store; the metadata is exported",
    },
    "free_usage": {"user_id": "the account's own id"},
    "files": {
        "user_id": "the account's own id",
        "storage_key": "where the file lies in our store; the metadata is exported",
        "attempts": "an internal count of indexing starts; the indexing state is exported",
    },
    "file_chunks": dict.fromkeys(
        (
            "id",
            "file_id",
            "user_id",
            "ordinal",
            "text",
            "page",
            "section",
            "token_count",
            "tsv_en",
            "tsv_ru",
        ),
        "a search index cut from the user's own uploaded file, whose metadata is exported",
    ),
    "file_links": {"id": "an internal row number", "user_id": "the account's own id"},
    "share_links": {
        "user_id": "the account's own id",
        "token_hash": "a hash of a secret link; the link itself is never kept",  # nosec B105 # a description
    },
    "support_threads": {"user_id": "the account's own id"},
    "sessions": {
        "id": "the session's internal handle, inside every token",
        "user_id": "the account's own id",
        "refresh_hash": "a hash of a secret token; never handed out (policy 3.1)",
        "retired_hashes": "hashes of replaced secret tokens; never handed out (policy 3.1)",
    },
    "support_messages": {"user_id": "the account's own id"},
    "subscriptions": {"user_id": "the account's own id"},
    "payment_orders": {
        "user_id": "the account's own id",
        "idempotence_key": "an internal key that makes a payment request apply once",
    },
    "admin_actions": {
        "target_user_id": "the account's own id",
        "admin_telegram_id": "the administrator's identity, not data about the user",
    },
}

# Money columns under the name of their unit, in the JSON and CSV alike: (table, column) → name.
UNIT_NAMES: dict[tuple[str, str], str] = {
    ("balances", "balance"): "balance_kopecks",
    ("balances", "reserved"): "reserved_kopecks",
    ("ledger_entries", "amount"): "amount_kopecks",
    ("ledger_entries", "balance_after"): "balance_after_kopecks",
    ("ledger_entries", "cost"): "cost_kopecks",
    ("reservations", "amount"): "amount_kopecks",
    # Stars for XTR, kopecks for RUB: the row's currency says which.
    ("payments", "amount"): "amount_minor_units",
    ("payments", "credited"): "credited_kopecks",
    ("promo_redemptions", "credited"): "credited_kopecks",
    ("media", "cost"): "cost_kopecks",
    ("payment_orders", "amount"): "amount_kopecks",
}
UNITS = {
    "*_kopecks": "kopecks: hundredths of a rouble",
    "amount_minor_units": "Stars when currency is XTR, kopecks when it is RUB",
    "stars": "Telegram Stars",
    "times": "ISO 8601, UTC",
}

EXPORT_INTERVAL = timedelta(hours=1)
DELETE_TOKEN_TTL = timedelta(minutes=10)
FORMATS = ("json", "zip", "html")
_MIME = {
    "json": ("netroom-export.json", "application/json"),
    "zip": ("netroom-export.zip", "application/zip"),
    "html": ("netroom-chats.html", "text/html; charset=utf-8"),
}


class ExportTooSoon(RateLimited):
    code = "export_too_soon"
    msgid = N_("You can ask for an export in each format once an hour. Please try again later.")


# The transcript's own words, translated by the transport that asked for it.
TRANSCRIPT_TITLE = N_("NetRoom: your chats")
TRANSCRIPT_EXPORTED = N_(
    "Exported {time} ({zone}); times are in that zone. Messages are kept for 14 days; older ones "
    "are gone."
)
TRANSCRIPT_EMPTY = N_("There are no chat messages to show.")
TRANSCRIPT_UNTITLED = N_("Untitled chat")
TRANSCRIPT_YOU = N_("You")
TRANSCRIPT_ASSISTANT = N_("Assistant")
TRANSCRIPT_REASONING = N_("Reasoning")
TRANSCRIPT_SOURCES = N_("Sources: {sources}")


class DeleteLinkExpired(InvalidInput):
    code = "delete_link_expired"
    msgid = N_("This confirmation has expired. Send /delete again to start over.")


@dataclass(frozen=True)
class Export:
    file_name: str
    mime: str
    data: IO[bytes]
    rows: int


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, (int, float, bool, str, list, dict)):
        return value
    return str(value)


async def _rows(
    uow: UnitOfWork, table: str, user_column: str, columns: tuple[str, ...], user_id: int
) -> AsyncIterator[dict[str, Any]]:
    # Table and column names come from the constant plan above, never from input.
    quoted = ", ".join(
        f'"{c}" AS "{UNIT_NAMES[table, c]}"' if (table, c) in UNIT_NAMES else f'"{c}"'
        for c in columns
    )
    match = ":user_id"
    if user_column == "telegram_id" and table != "users":
        # Rows that name the person by their Telegram id, not by the account.
        match = "(SELECT telegram_id FROM users WHERE id = :user_id)"
    sql = text(
        f'SELECT {quoted} FROM "{table}" WHERE "{user_column}" = {match} ORDER BY 1'  # noqa: S608  # nosec B608
    )
    result = await uow.session.stream(sql.execution_options(yield_per=1000), {"user_id": user_id})
    async for row in result.mappings():
        yield {k: _json_value(v) for k, v in row.items()}


async def _check_rate(uow: UnitOfWork, user_id: int, fmt: str, now: datetime) -> None:
    last = await uow.session.scalar(
        select(PrivacyRequest.created_at)
        .filter_by(user_id=user_id, kind="export", format=fmt)
        .order_by(PrivacyRequest.created_at.desc())
        .limit(1)
    )
    if last is not None and now - last < EXPORT_INTERVAL:
        raise ExportTooSoon(f"user {user_id} exported {fmt} at {last.isoformat()}")


def _identity(text: str) -> str:
    return text


async def export_user(
    uow: UnitOfWork,
    user_id: int,
    *,
    fmt: str,
    now: datetime,
    translate: Callable[[str], str] = _identity,
    language: str = "en",
    model_names: Mapping[str, str] | None = None,
    fallback_zone: str = "UTC",
) -> Export:
    """Everything NetRoom holds about the user, as one JSON document or a ZIP of CSV files; or
    the chats as a readable HTML transcript (its words through ``translate``, each model by its
    display name from ``model_names``, a model no longer named there by its id; its times in the
    user's zone: their own, else their language's, else ``fallback_zone``)."""
    if fmt not in FORMATS:
        raise InvalidInput(f"export format {fmt!r}")
    await _check_rate(uow, user_id, fmt, now)
    uow.session.add(PrivacyRequest(user_id=user_id, kind="export", format=fmt, created_at=now))
    await uow.commit()
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115
    async with uow.reading():
        if fmt == "json":
            rows = await _write_json(uow, user_id, spool, now)
        elif fmt == "zip":
            rows = await _write_zip(uow, user_id, spool)
        else:
            user = await uow.users.get(user_id)
            zone = fallback_zone
            if user is not None:
                zone = user.timezone or LANGUAGE_ZONES.get(user.language, fallback_zone)
            rows = await _write_transcript(
                uow,
                user_id,
                spool,
                now.astimezone(ZoneInfo(zone)),
                translate,
                language,
                model_names or {},
            )
    spool.seek(0)
    name, mime = _MIME[fmt]
    return Export(file_name=name, mime=mime, data=spool, rows=rows)


def _indented(value: Any, depth: int) -> str:
    return textwrap.indent(json.dumps(value, ensure_ascii=False, indent=2), "  " * depth).lstrip()


async def _write_json(uow: UnitOfWork, user_id: int, spool: IO[bytes], now: datetime) -> int:
    """Pretty-printed, written row by row."""
    rows = 0
    writer = io.TextIOWrapper(spool, encoding="utf-8", write_through=True)
    writer.write("{\n")
    writer.write(f'  "exported_at": {json.dumps(now.isoformat())},\n')
    writer.write(f'  "units": {_indented(UNITS, 1)},\n')
    writer.write('  "categories": {')
    for n, (category, (table, user_column, columns)) in enumerate(EXPORTED.items()):
        writer.write(("," if n else "") + f"\n    {json.dumps(category)}: [")
        first = True
        async for row in _rows(uow, table, user_column, columns, user_id):
            writer.write(("" if first else ",") + "\n      " + _indented(row, 3))
            first = False
            rows += 1
        writer.write("]" if first else "\n    ]")
    writer.write("\n  }\n}\n")
    writer.detach()
    return rows


async def _write_zip(uow: UnitOfWork, user_id: int, spool: IO[bytes]) -> int:
    rows = 0
    with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for category, (table, user_column, columns) in EXPORTED.items():
            with archive.open(f"{category}.csv", "w") as raw:
                out = io.TextIOWrapper(raw, encoding="utf-8", newline="", write_through=True)
                table_writer = csv.writer(out)
                table_writer.writerow(UNIT_NAMES.get((table, c), c) for c in columns)
                async for row in _rows(uow, table, user_column, columns, user_id):
                    table_writer.writerow(
                        json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v
                        for v in row.values()
                    )
                    rows += 1
                out.detach()
    return rows


TRANSCRIPT_STYLE = """
body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto;
  max-width: 820px; padding: 24px 16px; color: #1b1f24; background: #fff; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 20px; margin: 36px 0 12px; }
.muted { color: #5b6570; font-size: 14px; }
.msg { margin: 12px 0; padding: 10px 14px; border-radius: 12px; border: 1px solid #d8dde3; }
.msg.user { background: #eaf4fe; margin-left: 48px; }
.msg.assistant { margin-right: 48px; }
.who { font-size: 13px; color: #5b6570; margin-bottom: 4px; }
.text { white-space: pre-wrap; overflow-wrap: anywhere; }
details { margin-bottom: 6px; color: #5b6570; } details .text { font-size: 14px; }
.sources { margin-top: 6px; font-size: 13px; color: #5b6570; }
@media (prefers-color-scheme: dark) {
  body { color: #e6e9ec; background: #16181b; } .muted, .who, details, .sources { color: #9aa4ad; }
  .msg { border-color: #343a40; } .msg.user { background: #1d2a38; }
}
@media print { .msg { break-inside: avoid; } }
""".strip()

TRANSCRIPT_ROWS = text(
    """
    SELECT m.conversation_id, c.title, m.role, m.content, m.reasoning, m.model_id, m.sources,
           m.created_at
    FROM messages m LEFT JOIN conversations c ON c.id = m.conversation_id
    WHERE m.user_id = :user_id
    ORDER BY m.conversation_id, m.created_at, m.id
    """
)


async def _write_transcript(
    uow: UnitOfWork,
    user_id: int,
    spool: IO[bytes],
    now: datetime,
    translate: Callable[[str], str],
    language: str,
    model_names: Mapping[str, str],
) -> int:
    """The chats as one HTML page, its times in the zone of ``now``. Every text from the user or
    a model goes through ``html.escape``; the page holds no script and loads nothing."""
    esc = html.escape
    out = io.TextIOWrapper(spool, encoding="utf-8", write_through=True)
    title = esc(translate(TRANSCRIPT_TITLE))
    out.write(
        f'<!doctype html>\n<html lang="{esc(language)}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        # A saved page may be opened from anywhere: it runs nothing and fetches nothing.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">\n"
        f"<title>{title}</title>\n<style>\n{TRANSCRIPT_STYLE}\n</style>\n</head>\n<body>\n"
        f"<h1>{title}</h1>\n"
        f'<p class="muted">'
        + esc(
            translate(TRANSCRIPT_EXPORTED).format(
                time=now.strftime("%Y-%m-%d %H:%M"), zone=str(now.tzinfo)
            )
        )
        + "</p>\n"
    )
    names = {
        "user": esc(translate(TRANSCRIPT_YOU)),
        "assistant": esc(translate(TRANSCRIPT_ASSISTANT)),
    }
    reasoning_label = esc(translate(TRANSCRIPT_REASONING))
    rows = 0
    current: int | None = None
    result = await uow.session.stream(
        TRANSCRIPT_ROWS.execution_options(yield_per=500), {"user_id": user_id}
    )
    async for row in result.mappings():
        if row["conversation_id"] != current:
            if current is not None:
                out.write("</section>\n")
            current = row["conversation_id"]
            heading = row["title"] or translate(TRANSCRIPT_UNTITLED)
            out.write(f"<section>\n<h2>{esc(heading)}</h2>\n")
        role = row["role"] if row["role"] in names else "assistant"
        who = names.get(row["role"], esc(str(row["role"])))
        when = row["created_at"].astimezone(now.tzinfo).strftime("%Y-%m-%d %H:%M")
        model_id = row["model_id"]
        model = (
            f" · {esc(display_name(model_names, model_id))}"
            if role == "assistant" and model_id
            else ""
        )
        out.write(f'<article class="msg {role}">\n<div class="who">{who}{model} · {when}</div>\n')
        if row["reasoning"]:
            out.write(
                f"<details><summary>{reasoning_label}</summary>"
                f'<div class="text">{esc(row["reasoning"])}</div></details>\n'
            )
        out.write(f'<div class="text">{esc(row["content"])}</div>\n')
        if row["sources"]:
            listed = translate(TRANSCRIPT_SOURCES).format(sources="; ".join(row["sources"]))
            out.write(f'<div class="sources">{esc(listed)}</div>\n')
        out.write("</article>\n")
        rows += 1
    if current is not None:
        out.write("</section>\n")
    else:
        out.write(f'<p class="muted">{esc(translate(TRANSCRIPT_EMPTY))}</p>\n')
    out.write("</body>\n</html>\n")
    out.detach()
    return rows


def delete_token(user_id: int, *, secret: str, now: datetime) -> str:
    """A short-lived confirmation for erasing this account (fits in a button's data)."""
    expires = int((now + DELETE_TOKEN_TTL).timestamp())
    body = f"{user_id}.{expires}"
    sig = hmac.new(secret.encode(), f"delete:{body}".encode(), hashlib.sha256).hexdigest()[:16]
    return f"{expires}.{sig}"


def check_delete_token(token: str, user_id: int, *, secret: str, now: datetime) -> None:
    try:
        expires_text, sig = token.split(".")
        expires = int(expires_text)
    except ValueError as exc:
        raise DeleteLinkExpired("malformed token") from exc
    body = f"{user_id}.{expires}"
    good = hmac.new(secret.encode(), f"delete:{body}".encode(), hashlib.sha256).hexdigest()[:16]
    if not hmac.compare_digest(sig, good) or now.timestamp() > expires:
        raise DeleteLinkExpired(f"token for user {user_id} invalid or expired")


async def delete_user(
    uow: UnitOfWork, user_id: int, *, now: datetime, store: MediaStore | None = None
) -> None:
    """Erase the account in one transaction: personal data deleted, the financial records law
    keeps (balance, ledger, payments) left attached to an anonymous row; then the media files.
    Signing in again creates a new account."""
    async with uow.transaction():
        keys = list(
            await uow.session.scalars(
                select(Media.storage_key).where(
                    Media.user_id == user_id, Media.storage_key.is_not(None)
                )
            )
        )
        keys += list(
            await uow.session.scalars(select(File.storage_key).where(File.user_id == user_id))
        )
        telegram_id = await uow.session.scalar(select(User.telegram_id).where(User.id == user_id))
        if telegram_id is not None:
            await inbox.erase_sender(uow, telegram_id)
        for model in (
            RequestLog,
            ShareLink,
            FileLink,
            File,
            PromoRedemption,
            Media,
            ChatMessageRow,
            Conversation,
            Preset,
            Identity,
            Consent,
            SignupAttribution,
            PrivacyRequest,
            FreeUsage,
            Subscription,
            SupportMessage,
            SupportThread,
            Session,
        ):
            await uow.session.execute(delete(model).where(model.user_id == user_id))
        # The ledger stays as accounting law requires, without the free text an administrator may
        # have written about the person.
        await uow.session.execute(
            text(
                "UPDATE ledger_entries SET metadata = metadata - 'reason'"
                " WHERE user_id = :u AND metadata ? 'reason'"
            ),
            {"u": user_id},
        )
        # The administrative log keeps what was done (balances before and after) but no free text
        # or handle that could name the person.
        await uow.session.execute(
            update(AdminAction)
            .where(AdminAction.target_user_id == user_id)
            .values(target=None, reason=None)
        )
        # Money held for requests in flight goes back to the balance before it is frozen.
        await uow.session.execute(
            text("UPDATE balances SET reserved = 0 WHERE user_id = :u"), {"u": user_id}
        )
        await uow.session.execute(
            update(Reservation)
            .where(Reservation.user_id == user_id, Reservation.status == "held")
            .values(status="released", closed_at=now)
        )
        await uow.session.execute(
            update(User)
            .where(User.id == user_id)
            .values(
                telegram_id=None,
                username=None,
                profile_name=None,
                language="en",
                timezone=None,
                theme="auto",
                features={},
                history_enabled=True,
                marketing_opt_in=False,
                bot_blocked_at=None,
                is_blocked=True,
                referral_code="x" + secrets.token_hex(8),
                invited_by=None,
                ref1_count=0,
                ref2_count=0,
                last_activity_at=None,
                last_auth_at=None,
                last_auth_platform=None,
                last_auth_device=None,
                last_auth_os=None,
                last_auth_browser=None,
                last_auth_ip=None,
                last_auth_user_agent=None,
                deleted_at=now,
            )
            .execution_options(synchronize_session=False)
        )
    if store is not None:
        for key in keys:
            if key:
                await store.delete(key)


def iter_plan() -> Iterator[tuple[str, str, tuple[str, ...]]]:
    """(table, user column, exported columns) for every category, for tests and docs."""
    yield from EXPORTED.values()
