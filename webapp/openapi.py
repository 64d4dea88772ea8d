"""The OpenAPI 3.1 description of the JSON API, served at ``GET /api/openapi.json``.

The document is built from the routes the app really has: every ``/api`` route registered in the
router gets its operation from ``ROUTES`` (keyed by method and path pattern), with its path
parameters read from the route itself. ``undocumented(app)`` names the routes without an entry,
and a test keeps that list empty, so a new route cannot ship undescribed.

Errors always have the shape ``{"error": code, "message": translated text}``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from webapp.cookies import CSRF_HEADER, REFRESH_COOKIE
from webapp.keys import CONTEXT

Schema = dict[str, Any]
JSON = "application/json"


# --- schema shorthands -----------------------------------------------------------------------


def _s(description: str | None = None, **extra: Any) -> Schema:
    return {"type": "string", **({"description": description} if description else {}), **extra}


def _i(description: str | None = None, **extra: Any) -> Schema:
    return {"type": "integer", **({"description": description} if description else {}), **extra}


def _b(description: str | None = None) -> Schema:
    return {"type": "boolean", **({"description": description} if description else {})}


def _null(schema: Schema) -> Schema:
    kind = schema.get("type")
    if isinstance(kind, str):
        return {**schema, "type": [kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _list(item: Schema) -> Schema:
    return {"type": "array", "items": item}


def _obj(properties: Mapping[str, Schema], *, optional: tuple[str, ...] = ()) -> Schema:
    return {
        "type": "object",
        "properties": dict(properties),
        "required": [name for name in properties if name not in optional],
    }


def _loose(description: str) -> Schema:
    return {"type": "object", "description": description, "additionalProperties": True}


TIME = _s(format="date-time")
KOPECKS = _i("Money in kopecks (1/100 rouble).")

SCHEMAS: dict[str, Schema] = {
    "Error": _obj({"error": _s("A machine code."), "message": _s("Text for the user.")}),
    "Tokens": _obj(
        {
            "access_token": _s("A JWT for the Authorization header."),
            "token_type": _s(enum=["bearer"]),
            "expires_in": _i("Seconds the access token stays valid."),
            "refresh_token": _s("Exchanged at /api/auth/refresh for new tokens."),
        },
        optional=("refresh_token",),
    ),
    "Me": _obj(
        {
            "id": _i(),
            "name": _null(_s()),
            "username": _null(_s()),
            "email": _null(_s("The address of email-and-password sign-in.", format="email")),
            "language": _s(),
            "balance_kopecks": KOPECKS,
            "reserved_kopecks": KOPECKS,
            "model": _null(_s("The picked model id.")),
            "referral_code": _s(),
            "referrals": _obj({"level1": _i(), "level2": _i()}),
            "timezone": _null(_s("The chosen IANA time zone; null until chosen.")),
        }
    ),
    "Model": _obj(
        {
            "id": _s(),
            "name": _s("Display name."),
            "provider": _s(),
            "vision": _b("Reads pictures."),
            "reasoning": _b("Can think before answering."),
            "price_hint_kopecks": _i("Price of a short request (500 + 500 tokens)."),
        },
        optional=("name",),
    ),
    "Conversation": _obj(
        {
            "id": _i(),
            "title": _null(_s()),
            "model_id": _s(),
            "preset_id": _null(_i()),
            "updated_at": TIME,
        }
    ),
    "Message": _obj(
        {
            "id": _i(),
            "role": _s(enum=["user", "assistant"]),
            "content": _s(),
            "reasoning": _null(_s()),
            "model_id": _null(_s()),
            "is_pinned": _b(),
            "status": _s(enum=["complete", "stopped", "failed"]),
            "created_at": TIME,
            "replaced": _b("Asked again: shown, marked, never sent to a model again."),
            "rating": _null(_i("The user's 👍 (1) or 👎 (-1).", enum=[1, -1])),
            "cost_kopecks": _null(_i("What the reply was charged (0: free; null: not known).")),
        }
    ),
    "ChatStart": _obj({"turn_id": _s(), "conversation_id": _i()}),
    "ChatText": _obj({"text": _s()}),
    "ChatDone": _obj(
        {
            "message_id": _null(_i("The stored reply (null when history is off).")),
            "status": _s(enum=["complete", "stopped", "failed"]),
            "charged_kopecks": KOPECKS,
            "free": _b("Covered by the free tier."),
            "balance_kopecks": KOPECKS,
        }
    ),
    "File": _obj(
        {
            "id": _i(),
            "name": _s(),
            "mime": _s(),
            "size": _i("Bytes."),
            "status": _s(enum=["queued", "indexing", "ready", "failed"]),
            "error": _null(_s()),
            "error_message": _null(_s("Why it failed, in the user's language.")),
            "pages": _null(_i()),
            "chunks": _null(_i()),
            "billed_tokens": _null(_i()),
            "created_at": TIME,
        }
    ),
    "Session": _obj(
        {
            "id": _s(),
            "current": _b("The session of this request."),
            "platform": _null(_s()),
            "device": _null(_s()),
            "os": _null(_s()),
            "browser": _null(_s()),
            "ip": _null(_s()),
            "created_at": TIME,
            "last_used_at": TIME,
            "expires_at": TIME,
        }
    ),
    "SignInMethods": _obj(
        {
            "email": _null(_s("The address of email-and-password sign-in.", format="email")),
            "password": _b("A password is set (it can be changed)."),
            "google": _b("A Google account is linked."),
            "yandex": _b("A Yandex account is linked."),
            "telegram": _b("A Telegram account is linked."),
            "google_email": _null(_s("The linked Google account's verified address.")),
            "yandex_email": _null(_s("The linked Yandex account's verified address.")),
            "oauth_offered": _list(_s(enum=["google", "yandex"])),
        }
    ),
    "Preset": _obj(
        {"id": _i(), "title": _s(), "system_prompt": _s(), "active": _b("In use for new chats.")}
    ),
    "ShareCreated": _obj({"id": _i(), "url": _s(format="uri"), "token": _s()}),
    "ShareLink": _obj(
        {
            "id": _i(),
            "kind": _s(enum=["conversation", "preset"]),
            "target_id": _i(),
            "title": _null(_s()),
            "created_at": TIME,
            "revoked_at": _null(TIME),
            "disabled_at": _null(TIME),
            "views": _i(),
            "active": _b(),
        }
    ),
    "Media": _obj(
        {
            "id": _i(),
            "kind": _s(enum=["image", "video"]),
            "prompt": _s(),
            "model_id": _null(_s()),
            "status": _s(enum=["pending", "ready", "failed"]),
            "created_at": TIME,
            "url": _null(_s()),
            "mime": _null(_s()),
            "width": _null(_i()),
            "height": _null(_i()),
            "duration_seconds": _null({"type": "number"}),
        }
    ),
    "CurrentPlan": _obj(
        {
            "id": _s(),
            "stars": _i("Stars every 30 days."),
            "discount_percent": _i(),
            "until": _null(TIME),
            "renews": _b("False once the renewal is cancelled."),
        }
    ),
    "Settings": _obj(
        {
            "language": _s(),
            "theme": _s(),
            "reasoning": _b(),
            "web_search": _b(),
            "history_enabled": _b(),
            "marketing_opt_in": _b(),
            "read_aloud": _b("Replies also come as voice messages in the bot."),
            "timezone": _null(
                _s(
                    "The IANA time zone times are shown in; null until chosen. Read-only here: "
                    "set with PUT /api/settings/timezone.",
                    readOnly=True,
                )
            ),
        }
    ),
}
ENDED = _obj({"ended_sessions": _i()})
STATUS = _obj({"status": _s()})
FILE_TARGET: Schema = {
    "oneOf": [_obj({"conversation_id": _i()}), _obj({"preset_id": _i()})],
}
PAGE = (
    ("limit", _i(minimum=1), "At most this many."),
    ("before", _i(), "Only items older than this id (the previous page's next_before)."),
)


# --- operations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    """One operation: what it does, who may call it, what it takes and what it answers."""

    summary: str
    # "bearer", "session" (bearer token or refresh cookie with X-CSRF-Token), "tma" or "none".
    auth: str = "bearer"
    body: Schema | None = None
    body_type: str = JSON
    # status → (description, schema or None, media type)
    responses: Mapping[int, tuple[str, Schema | None, str]] = field(
        default_factory=lambda: {200: ("OK", None, JSON)}
    )
    query: tuple[tuple[str, Schema, str], ...] = ()
    description: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


def _ok(schema: Schema | None, status: int = 200, text: str = "OK") -> dict[int, Any]:
    return {status: (text, schema, JSON)}


NO_CONTENT = {204: ("Done.", None, JSON)}

CHAT_EVENTS = (
    "Server-Sent Events, in this order: `start` (ChatStart) once the prompt is stored and "
    "money held; `reasoning` (ChatText, when reasoning is shown) and `delta` (ChatText) as the "
    "model writes; `error` (Error as {code, message}) when the turn cannot start (then it is "
    "the only event and nothing is charged, e.g. `insufficient_funds`) or the model fails; "
    "`done` (ChatDone) last for every turn that started. Closing the connection stops the "
    "reply: only what was delivered is paid for."
)

ROUTES: dict[tuple[str, str], Op] = {
    # --- sign-in and the account
    ("POST", "/api/auth/telegram"): Op(
        "Sign in from the Mini App with Telegram's initData",
        auth="tma",
        responses={**_ok(_ref("Tokens")), 403: ("The policy is not accepted yet.", None, JSON)},
        description="`Authorization: tma <initData>`; each initData signs in once.",
    ),
    ("GET", "/api/me"): Op("The signed-in account", responses=_ok(_ref("Me"))),
    ("POST", "/api/auth/register"): Op(
        "Sign up with email and password",
        auth="none",
        body=_obj(
            {
                "email": _s(format="email"),
                "password": _s(),
                "accept_policy": _b("Must be true."),
                "language": _s(enum=["en", "ru"]),
            },
            optional=("language",),
        ),
        responses={
            201: ("Registered (no confirmation needed).", STATUS, JSON),
            202: ("A confirmation mail was sent.", STATUS, JSON),
            409: ("The address is taken (without confirmation only).", _ref("Error"), JSON),
        },
    ),
    ("POST", "/api/auth/confirm"): Op(
        "Confirm an email address with the mailed token",
        auth="none",
        body=_obj({"token": _s()}),
        responses=_ok(_obj({"confirmed": _b()})),
    ),
    ("POST", "/api/auth/confirm/resend"): Op(
        "Mail the confirmation link again",
        auth="none",
        body=_obj({"email": _s(format="email")}),
        responses={202: ("Sent, whatever the address.", STATUS, JSON)},
    ),
    ("POST", "/api/auth/sign-in"): Op(
        "Sign in with email and password (also sets the session cookies)",
        auth="none",
        body=_obj(
            {"email": _s(format="email"), "password": _s(), "accept_policy": _b()},
            optional=("accept_policy",),
        ),
        responses={
            **_ok(_ref("Tokens")),
            401: ("Unknown address or wrong password.", _ref("Error"), JSON),
            429: ("Too many failures; see Retry-After.", _ref("Error"), JSON),
        },
    ),
    ("POST", "/api/auth/email-link"): Op(
        "Mail a sign-in link (once, within 15 minutes) to a confirmed address",
        auth="none",
        body=_obj({"email": _s(format="email")}),
        responses={202: ("Sent, whatever the address.", STATUS, JSON)},
    ),
    ("POST", "/api/auth/email-link/sign-in"): Op(
        "Sign in with the mailed link's token (also sets the session cookies)",
        auth="none",
        body=_obj({"token": _s(), "accept_policy": _b()}, optional=("accept_policy",)),
        responses={
            **_ok(_ref("Tokens")),
            400: ("The link is invalid, expired or used.", _ref("Error"), JSON),
        },
    ),
    ("POST", "/api/auth/password"): Op(
        "Change the password; every other session ends",
        body=_obj({"current": _s(), "new": _s()}),
        responses=_ok(ENDED),
    ),
    ("GET", "/api/auth/methods"): Op(
        "How the account signs in, and the providers this server offers to link",
        responses=_ok(_ref("SignInMethods")),
    ),
    ("POST", "/api/auth/refresh"): Op(
        "New tokens for a refresh token (body) or the refresh cookie (with X-CSRF-Token)",
        auth="none",
        body=_obj({"refresh_token": _s()}, optional=("refresh_token",)),
        responses=_ok(_ref("Tokens")),
    ),
    ("POST", "/api/auth/sign-out"): Op("End this session", auth="session", responses=NO_CONTENT),
    ("POST", "/api/auth/sign-out-everywhere"): Op(
        "End every session of the account", auth="session", responses=_ok(ENDED)
    ),
    ("GET", "/api/sessions"): Op(
        "The account's live sessions, most recently used first",
        responses=_ok(_obj({"sessions": _list(_ref("Session"))})),
    ),
    ("DELETE", "/api/sessions/{session_id}"): Op(
        "End one of the account's sessions (anyone else's: 404)", responses=NO_CONTENT
    ),
    ("GET", "/api/auth/{provider}/start"): Op(
        "Start Google or Yandex sign-in (or linking, with ?link=1 and a bearer token)",
        auth="none",
        query=(
            ("accept_policy", _s(enum=["1"]), "The user accepted the policy."),
            ("link", _s(enum=["1"]), "Add the account to the signed-in user."),
        ),
        responses={
            200: ("With Accept: application/json.", _obj({"authorize_url": _s()}), JSON),
            302: ("To the provider.", None, JSON),
        },
    ),
    ("GET", "/api/auth/{provider}/callback"): Op(
        "Where Google or Yandex sends the browser back",
        auth="none",
        query=(("code", _s(), "From the provider."), ("state", _s(), "From the provider.")),
        responses={302: ("To /app, signed in (cookies set) or linked.", None, JSON)},
    ),
    # --- money
    ("POST", "/api/payments/yookassa"): Op(
        "Start a card top-up; send the user to confirmation_url",
        body=_obj({"rub": _i("One of the offered amounts, in roubles.")}),
        responses=_ok(_obj({"order_id": _s(), "confirmation_url": _s()}), 201, "Created."),
    ),
    ("POST", "/api/payments/yookassa/notifications"): Op(
        "YooKassa's payment notifications (from YooKassa's networks only)",
        auth="none",
        body=_loose("YooKassa's notification: {type, event, object}."),
        responses={
            **_ok(STATUS),
            403: ("Not from YooKassa.", _ref("Error"), JSON),
            503: ("Could not check the payment; YooKassa retries.", None, JSON),
        },
    ),
    ("POST", "/api/payments/stars"): Op(
        "A Telegram Stars invoice link for Telegram.WebApp.openInvoice",
        body=_obj({"stars": _i("One of the offered packages.")}),
        responses=_ok(_obj({"invoice_link": _s()}), 201, "Created."),
    ),
    ("POST", "/api/subscription"): Op(
        "A Telegram Stars subscription invoice link (renewed every 30 days) for openInvoice",
        body=_obj({"plan": _s("The id of a plan on offer.")}),
        responses={
            **_ok(_obj({"invoice_link": _s()}), 201, "Created."),
            404: ("No such plan, or no Telegram account to pay with.", _ref("Error"), JSON),
            409: ("A subscription is already active.", _ref("Error"), JSON),
        },
    ),
    ("PATCH", "/api/subscription"): Op(
        "Cancel (false) or resume (true) the renewal of the user's subscription",
        body=_obj({"renews": _b()}),
        responses={
            **_ok(_ref("CurrentPlan")),
            404: ("The user has no active subscription.", _ref("Error"), JSON),
            502: ("Telegram did not accept the change; nothing changed.", _ref("Error"), JSON),
        },
        description="Telegram is told first; the plan stays active until the paid period ends.",
    ),
    ("GET", "/api/balance"): Op(
        "Balance, free-tier allowances, plan and the top-up offers",
        responses=_ok(
            _obj(
                {
                    "balance_kopecks": KOPECKS,
                    "reserved_kopecks": KOPECKS,
                    "available_kopecks": KOPECKS,
                    "discount_percent": _i(),
                    "bonus_percent": _i(),
                    "free_tier": _null(_loose("Period, next reset and allowances.")),
                    "plan": _null(_ref("CurrentPlan")),
                    "plans": _list(_loose("A plan on offer.")),
                    "plans_purchasable": _b(
                        "Plans can be bought and their renewal changed here (with Telegram)."
                    ),
                    "stars": _null(_loose("Stars packages.")),
                    "card": _null(_loose("Card packages.")),
                }
            )
        ),
    ),
    ("GET", "/api/transactions"): Op(
        "Ledger entries, newest first",
        query=PAGE,
        responses=_ok(
            _obj(
                {
                    "transactions": _list(
                        _loose(
                            "An entry: kind, category, amounts, tokens; plan (the plan a "
                            "subscription entry paid for, else null)."
                        )
                    ),
                    "next_before": _null(_i()),
                }
            )
        ),
    ),
    ("GET", "/api/referrals"): Op(
        "Referral code, links, counts and earnings",
        responses=_ok(_loose("code, bot_link, app_link, level1, level2, earned_kopecks.")),
    ),
    # --- privacy and documents
    ("GET", "/api/privacy/export"): Op(
        "Download everything held about the account, or the chats as a page (each format "
        "once an hour)",
        query=(
            (
                "format",
                _s(enum=["json", "zip", "html"]),
                "json by default; html: a readable transcript of the chats.",
            ),
        ),
        responses={
            200: ("An attachment.", {"type": "string", "format": "binary"}, "application/zip"),
            429: ("This format was exported less than an hour ago.", _ref("Error"), JSON),
        },
    ),
    ("POST", "/api/privacy/delete"): Op(
        "Step one of erasure: a confirmation token (10 minutes)",
        responses=_ok(_obj({"confirm_token": _s(), "expires_in": _i()})),
    ),
    ("POST", "/api/privacy/delete/confirm"): Op(
        "Erase the account; every session ends",
        body=_obj({"confirm_token": _s()}),
        responses=_ok(_obj({"deleted": _b()})),
    ),
    ("GET", "/api/files"): Op(
        "The user's documents", responses=_ok(_obj({"files": _list(_ref("File"))}))
    ),
    ("POST", "/api/files"): Op(
        "Upload a document (indexed in the background)",
        body=_obj({"file": _s(format="binary")}),
        body_type="multipart/form-data",
        responses={
            201: ("Stored.", _ref("File"), JSON),
            200: ("The same content was stored before.", _ref("File"), JSON),
        },
    ),
    ("POST", "/api/transcriptions"): Op(
        "Transcribe a recording from the chat's microphone into text for the composer",
        body=_obj(
            {
                "file": _s(
                    "The recording (WebM, Ogg, MP4 or any audio), at most 20 MB.", format="binary"
                ),
                "duration": _i("Its length in whole seconds, as the browser measured it."),
            },
            optional=("duration",),
        ),
        body_type="multipart/form-data",
        responses={
            **_ok(
                _obj(
                    {
                        "text": _s("What was said; empty when no words were heard."),
                        "minutes": _i("Started minutes billed."),
                        "charged_kopecks": KOPECKS,
                    }
                )
            ),
            402: ("Not enough money for the transcription.", _ref("Error"), JSON),
            404: ("Voice input is not offered here.", _ref("Error"), JSON),
            415: ("Not an audio recording.", _ref("Error"), JSON),
        },
        description=(
            "Billed per started minute: the longer of `duration` and the length the model "
            "billed. An `Idempotency-Key` header names the recording, so a retried upload is "
            "charged once. The audio is not stored."
        ),
    ),
    ("GET", "/api/files/{file_id}"): Op("One of the user's documents", responses=_ok(_ref("File"))),
    ("DELETE", "/api/files/{file_id}"): Op("Delete a document", responses=NO_CONTENT),
    ("POST", "/api/files/{file_id}/links"): Op(
        "Attach a document to a conversation or a preset: its passages answer there",
        body=FILE_TARGET,
        responses=NO_CONTENT,
    ),
    ("DELETE", "/api/files/{file_id}/links"): Op(
        "Detach a document from a conversation or a preset",
        body=FILE_TARGET,
        responses=NO_CONTENT,
    ),
    # --- chat
    ("GET", "/api/models"): Op(
        "The text models on offer, the default and the user's current one",
        responses=_ok(
            _obj(
                {
                    "models": _list(_ref("Model")),
                    "default": _null(_s()),
                    "current": _null(_s()),
                }
            )
        ),
    ),
    ("PUT", "/api/settings/model"): Op(
        "Pick the model for the next requests (ids of the menu only)",
        body=_obj({"model_id": _s()}),
        responses={
            **_ok(_obj({"current": _s()})),
            404: ("Not on the menu.", _ref("Error"), JSON),
        },
    ),
    ("GET", "/api/conversations"): Op(
        "The user's conversations, most recently active first",
        responses=_ok(_obj({"conversations": _list(_ref("Conversation"))})),
    ),
    ("POST", "/api/conversations"): Op(
        "Start a new, empty conversation and make it the current one (to attach files first)",
        body=_obj({"title": _s("At most 64 characters are kept.")}, optional=("title",)),
        responses={201: ("Started.", _ref("Conversation"), JSON)},
    ),
    ("GET", "/api/conversations/{conversation_id}/files"): Op(
        "The documents attached to a conversation, newest first",
        responses=_ok(_obj({"files": _list(_ref("File"))})),
    ),
    ("DELETE", "/api/conversations/{conversation_id}"): Op(
        "Delete a conversation with its messages", responses=NO_CONTENT
    ),
    ("GET", "/api/conversations/{conversation_id}/messages"): Op(
        "A conversation's messages, oldest first (the newest 1000)",
        responses=_ok(_obj({"messages": _list(_ref("Message"))})),
    ),
    ("POST", "/api/messages/{message_id}/pin"): Op(
        "Pin or unpin a message",
        body=_obj({"pinned": _b()}),
        responses=_ok(_ref("Message")),
    ),
    ("POST", "/api/chat"): Op(
        "Send a message; the reply streams back as Server-Sent Events",
        body=_obj(
            {
                "text": _s(),
                "conversation_id": _null(_i("Omitted: the current conversation; null: a new one.")),
                "model_id": _s("A model of the menu, for this request."),
            },
            optional=("conversation_id", "model_id"),
        ),
        responses={
            200: ("The reply as it is written.", _s(CHAT_EVENTS), "text/event-stream"),
            404: ("No such conversation of the user, or no such model.", _ref("Error"), JSON),
            409: ("A reply to the user is still being written.", _ref("Error"), JSON),
        },
        extra={
            "x-sse-events": {
                "start": _ref("ChatStart"),
                "reasoning": _ref("ChatText"),
                "delta": _ref("ChatText"),
                "error": _obj({"code": _s(), "message": _s()}),
                "done": _ref("ChatDone"),
            }
        },
    ),
    ("POST", "/api/messages/{message_id}/redo"): Op(
        "Ask the last turn again (regenerate, retry, or edit its prompt); the reply streams "
        "back as Server-Sent Events, as for POST /api/chat",
        body=_obj(
            {
                "text": _s("The edited prompt; omitted: the prompt as it was."),
                "model_id": _s("A model of the menu; omitted: the one that answered."),
            },
            optional=("text", "model_id"),
        ),
        responses={
            200: ("The reply as it is written.", _s(CHAT_EVENTS), "text/event-stream"),
            400: ("Not the last turn, or already replaced.", _ref("Error"), JSON),
            404: ("No such message of the user, or no such model.", _ref("Error"), JSON),
            409: ("A reply to the user is still being written.", _ref("Error"), JSON),
        },
        extra={
            "x-sse-events": {
                "start": _ref("ChatStart"),
                "reasoning": _ref("ChatText"),
                "delta": _ref("ChatText"),
                "error": _obj({"code": _s(), "message": _s()}),
                "done": _ref("ChatDone"),
            }
        },
    ),
    ("POST", "/api/messages/{message_id}/rating"): Op(
        "Rate a reply (or the reply to a prompt) 👍 (1), 👎 (-1) or not at all (null)",
        body=_obj({"rating": _null(_i(enum=[1, -1]))}),
        responses=_ok(_obj({"message_id": _i("The reply rated."), "rating": _null(_i())})),
    ),
    ("POST", "/api/chat/{turn_id}/stop"): Op(
        "Stop a reply being written (the user's own; others: 404)", responses=NO_CONTENT
    ),
    # --- presets, gallery, settings
    ("GET", "/api/presets"): Op(
        "The user's presets and the one in use",
        responses=_ok(_obj({"presets": _list(_ref("Preset")), "active_id": _null(_i())})),
    ),
    ("POST", "/api/presets"): Op(
        "Create a preset",
        body=_obj({"title": _s(maxLength=64), "system_prompt": _s(maxLength=4000)}),
        responses=_ok(_ref("Preset"), 201, "Created."),
    ),
    ("PUT", "/api/presets/{preset_id}"): Op(
        "Edit a preset",
        body=_obj({"title": _s(maxLength=64), "system_prompt": _s(maxLength=4000)}),
        responses=_ok(_ref("Preset")),
    ),
    ("DELETE", "/api/presets/{preset_id}"): Op("Delete a preset", responses=NO_CONTENT),
    ("POST", "/api/presets/{preset_id}/use"): Op(
        "Use a preset for new conversations", responses=_ok(_obj({"active_id": _null(_i())}))
    ),
    ("DELETE", "/api/presets/active"): Op(
        "New conversations start without a preset",
        responses=_ok(_obj({"active_id": _null(_i())})),
    ),
    ("GET", "/api/media"): Op(
        "Generated images and videos, newest first",
        query=PAGE,
        responses=_ok(_obj({"media": _list(_ref("Media")), "next_before": _null(_i())})),
    ),
    ("DELETE", "/api/media/{media_id}"): Op(
        "Delete a generated image or video (the record and the file)",
        responses={**NO_CONTENT, 400: ("A video still being made.", None, JSON)},
    ),
    ("GET", "/api/settings"): Op("Account settings", responses=_ok(_ref("Settings"))),
    ("PATCH", "/api/settings"): Op(
        "Change some account settings",
        body={**_ref("Settings"), "description": "Any subset of the settings."},
        responses=_ok(_ref("Settings")),
    ),
    ("PUT", "/api/settings/timezone"): Op(
        "Choose the time zone times are shown in (the app sends the browser's once, when none "
        "is chosen)",
        body=_obj({"timezone": _s("An IANA name such as Europe/Moscow.")}),
        responses={
            **_ok(_obj({"timezone": _s("The zone's canonical spelling.")})),
            400: ("No such time zone (error unknown_time_zone).", _ref("Error"), JSON),
        },
    ),
    # --- sharing
    ("POST", "/api/conversations/{conversation_id}/share"): Op(
        "A public read-only link to a conversation",
        responses=_ok(_ref("ShareCreated"), 201, "Created."),
    ),
    ("POST", "/api/presets/{preset_id}/share"): Op(
        "A public link to a preset", responses=_ok(_ref("ShareCreated"), 201, "Created.")
    ),
    ("GET", "/api/shares"): Op(
        "The user's share links, newest first",
        responses=_ok(_obj({"links": _list(_ref("ShareLink"))})),
    ),
    ("DELETE", "/api/shares/{link_id}"): Op("Revoke a share link", responses=NO_CONTENT),
    ("POST", "/api/shared/{token}/copy"): Op(
        "Copy a shared preset into the user's presets",
        responses=_ok(_ref("Preset"), 201, "Created."),
    ),
    # --- this document
    ("GET", "/api/openapi.json"): Op(
        "This OpenAPI document", auth="none", responses=_ok(_loose("OpenAPI 3.1."))
    ),
}

SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "bearer": [{"bearer": []}],
    "session": [{"bearer": []}, {"refreshCookie": [], "csrfToken": []}],
    "tma": [{"telegramInitData": []}],
    "none": [],
}
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
    "telegramInitData": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "`tma <initData>` as the Mini App receives it from Telegram.",
    },
    "refreshCookie": {"type": "apiKey", "in": "cookie", "name": REFRESH_COOKIE},
    "csrfToken": {"type": "apiKey", "in": "header", "name": CSRF_HEADER},
}


# --- building the document from the router ---------------------------------------------------


def _api_routes(app: web.Application) -> Iterator[tuple[str, str, web.AbstractRoute]]:
    for route in app.router.routes():
        # aiohttp adds HEAD beside every GET; it answers like the GET.
        if route.method in ("HEAD", "*"):
            continue
        path = route.resource.canonical if route.resource is not None else ""
        if path.startswith("/api/"):
            yield route.method, path, route


def undocumented(app: web.Application) -> list[str]:
    """The app's /api routes with no entry in ROUTES, as ``METHOD /path``."""
    return [f"{m} {p}" for m, p, _ in _api_routes(app) if (m, p) not in ROUTES]


def _parameters(route: web.AbstractRoute, op: Op) -> list[Schema]:
    params: list[Schema] = []
    info = route.resource.get_info() if route.resource is not None else {}
    pattern = info.get("pattern")
    source = pattern.pattern if isinstance(pattern, re.Pattern) else ""
    formatter = str(info.get("formatter", ""))
    for name in re.findall(r"\{(\w+)\}", formatter):
        numeric = f"(?P<{name}>\\d+)" in source
        params.append(
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "integer"} if numeric else {"type": "string"},
            }
        )
    for name, schema, description in op.query:
        params.append(
            {
                "name": name,
                "in": "query",
                "required": False,
                "schema": schema,
                "description": description,
            }
        )
    return params


def _operation(route: web.AbstractRoute, op: Op) -> Schema:
    out: Schema = {"summary": op.summary, "security": SECURITY[op.auth]}
    if op.description:
        out["description"] = op.description
    parameters = _parameters(route, op)
    if parameters:
        out["parameters"] = parameters
    if op.body is not None:
        out["requestBody"] = {"required": True, "content": {op.body_type: {"schema": op.body}}}
    responses: Schema = {}
    for status, (description, schema, media) in op.responses.items():
        answer: Schema = {"description": description}
        if schema is not None:
            answer["content"] = {media: {"schema": schema}}
        responses[str(status)] = answer
    if op.auth in ("bearer", "session", "tma") and "401" not in responses:
        responses["401"] = {
            "description": "Not signed in, or the session ended.",
            "content": {JSON: {"schema": _ref("Error")}},
        }
    responses["default"] = {
        "description": "An error.",
        "content": {JSON: {"schema": _ref("Error")}},
    }
    out["responses"] = responses
    out.update(op.extra)
    return out


def document(app: web.Application) -> Schema:
    paths: dict[str, Schema] = {}
    for method, path, route in _api_routes(app):
        op = ROUTES.get((method, path)) or Op("Undocumented", auth="none")
        paths.setdefault(path, {})[method.lower()] = _operation(route, op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "NetRoom API", "version": "1"},
        "servers": [{"url": app[CONTEXT].public_url.rstrip("/")}],
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": SCHEMAS, "securitySchemes": SECURITY_SCHEMES},
    }


async def show_openapi(request: web.Request) -> web.Response:
    return web.json_response(document(request.app))


def setup(app: web.Application) -> None:
    app.router.add_get("/api/openapi.json", show_openapi)
