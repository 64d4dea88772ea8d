"""One account everywhere, from the web side (see ``core.services.linking`` for the rules).

``POST /api/auth/email/add``: an account without an email address (one made in Telegram) adds
email-and-password sign-in; the address is confirmed by the mailed link, as at sign-up.
``POST /api/link/telegram``: a one-time code (ten minutes) for linking Telegram, shown as the
deep link ``https://t.me/<bot>?start=link-<code>`` that the bot confirms.
``GET /api/link/telegram/{code}``: whether the bot confirmed the code yet and what it did (the
web account may have been merged into the Telegram one and be signed out by then).
``POST /api/auth/{provider}/link-handoff``: inside Telegram, a one-time URL that starts linking
Google or Yandex in the phone's browser (the flow cannot run inside Telegram's frame).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from aiohttp import web
from pydantic import Field

from core.services import auth, linking
from core.services.auth import EmailSignUpUnavailable
from webapp.auth import bearer_session, bearer_user
from webapp.contract import Answer, Body, Out, PathParams, add_routes, operation
from webapp.keys import CONTEXT
from webapp.routes.auth import ProviderPath, Status, _confirmation_mail, _mail_quota, _provider

TAGS = ("sign-in",)
# Link codes and handoff URLs one account may ask for, per hour (each lives in Redis a while).
LINKS_PER_HOUR = 20


class AddEmail(Body):
    email: Annotated[str, Field(min_length=1, max_length=320)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class Handoff(Out):
    url: str = Field(description="Open in the phone's browser: it links the provider's account.")
    expires_in: int


class TelegramLinkCode(Out):
    code: str = Field(description="The one-time code (ten minutes, used once).")
    deep_link: str | None = Field(
        description="https://t.me/<bot>?start=link-<code>; null when the bot is unknown."
    )
    expires_in: int = Field(description="Seconds the code stays valid.")


@operation(
    "POST",
    "/api/auth/email/add",
    summary="Add email-and-password sign-in to an account without an address",
    responses={
        201: Answer("Added (no confirmation needed).", Status),
        202: Answer("A confirmation mail was sent.", Status),
    },
    errors={
        409: "The address is taken (without confirmation only).",
        429: "Too many mails from this address; see Retry-After.",
    },
    tags=TAGS,
)
async def add_email(request: web.Request, body: AddEmail) -> web.Response:
    """``{email, password}`` with a bearer token → 202 ``{"status": "confirmation_sent"}``
    (the same whether or not the address belongs to another account: only its owner is told),
    or, with confirmation off, 201 ``{"status": "added"}``. 400 ``email_already_set`` for an
    account with a confirmed address."""
    ctx = request.app[CONTEXT]
    user_id = bearer_user(request)
    if ctx.email_confirmation and ctx.mailer is None:
        raise EmailSignUpUnavailable("no mailer configured")
    await _mail_quota(ctx, request)
    async with ctx.uow_factory() as uow:
        registration = await auth.add_email_password(
            uow,
            user_id=user_id,
            email=body.email,
            password=body.password,
            confirmation_required=ctx.email_confirmation,
            secret=ctx.jwt_secret,
            now=ctx.clock(),
            confirmation_ttl=ctx.confirmation_ttl,
        )
    if not ctx.email_confirmation:
        return web.json_response({"status": "added"}, status=201)
    assert ctx.mailer is not None
    await ctx.mailer.send(_confirmation_mail(ctx, registration))
    return web.json_response({"status": "confirmation_sent"}, status=202)


@operation(
    "POST",
    "/api/link/telegram",
    summary="A one-time code (ten minutes) and deep link for linking Telegram to this account",
    responses={200: Answer("The code.", TelegramLinkCode)},
    errors={
        409: "The account has a Telegram account already.",
        429: "Too many codes asked for; see Retry-After.",
    },
    tags=TAGS,
)
async def telegram_code(request: web.Request) -> web.Response:
    """A bearer token → ``{code, deep_link, expires_in}``: opening the deep link in Telegram and
    confirming in the bot links that Telegram account to this one."""
    ctx = request.app[CONTEXT]
    user_id, session_id = bearer_session(request)
    await auth.within_rate(
        ctx.redis, f"link:user:{user_id}", limit=LINKS_PER_HOUR, window=timedelta(hours=1)
    )
    async with ctx.uow_factory() as uow:
        issued = await linking.create_telegram_code(
            uow, ctx.redis, user_id=user_id, session_id=session_id
        )
    username = await ctx.resolved_bot_username()
    return web.json_response(
        {
            "code": issued.code,
            "deep_link": f"https://t.me/{username}?start={issued.payload}" if username else None,
            "expires_in": issued.expires_in,
        }
    )


class CodePath(PathParams):
    code: Annotated[str, Field(min_length=1, max_length=linking.CODE_MAX, pattern=r"^[\w-]+$")]


class TelegramLinkStatus(Out):
    linked: bool = Field(description="The bot confirmed the code.")
    web_signed_out: bool = Field(
        description="This web account was merged into the Telegram account and erased: sign in "
        "again the same way to find that account."
    )
    history_moved: bool = Field(
        description="The erased account's chats, presets, files and media moved to the one kept."
    )


@operation(
    "GET",
    "/api/link/telegram/{code}",
    summary="Whether a Telegram link code was confirmed in the bot, and what it did",
    responses={200: Answer("The code's state.", TelegramLinkStatus)},
    auth="none",
    errors={400: "The code is unknown, or expired ten minutes after it was made or used."},
    tags=TAGS,
)
async def telegram_code_status(request: web.Request, path: CodePath) -> web.Response:
    """No token needed: the web account may be gone by the time the page asks (merged into the
    Telegram account); the random code itself is what only the asking page knows."""
    ctx = request.app[CONTEXT]
    status = await linking.link_status(ctx.redis, code=path.code)
    return web.json_response(
        {
            "linked": status.linked,
            "web_signed_out": status.web_signed_out,
            "history_moved": status.history_moved,
        }
    )


@operation(
    "POST",
    "/api/auth/{provider}/link-handoff",
    summary="A one-time URL (five minutes) that links Google or Yandex from another browser",
    responses={200: Answer("The URL.", Handoff)},
    errors={429: "Too many asked for; see Retry-After."},
    tags=TAGS,
)
async def link_handoff(request: web.Request, path: ProviderPath) -> web.Response:
    """A bearer token → ``{url, expires_in}``. Inside Telegram the provider's page opens in the
    phone's browser, so the Mini App hands the link flow over: the URL starts it there, once,
    for this account and session."""
    ctx = request.app[CONTEXT]
    provider = _provider(request, path.provider)
    assert ctx.oauth is not None
    user_id, session_id = bearer_session(request)
    await auth.within_rate(
        ctx.redis, f"link:user:{user_id}", limit=LINKS_PER_HOUR, window=timedelta(hours=1)
    )
    token = await auth.begin_link_handoff(
        ctx.redis, ctx.oauth, provider=provider, user_id=user_id, session_id=session_id
    )
    url = f"{ctx.public_url.rstrip('/')}/api/auth/{provider}/start?handoff={token}"
    return web.json_response({"url": url, "expires_in": auth.HANDOFF_TTL})


def setup(app: web.Application) -> None:
    add_routes(app, add_email, telegram_code, telegram_code_status, link_handoff)
