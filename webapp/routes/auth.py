"""Signing in on the web and managing sessions.

Email and password: ``POST /api/auth/register``, ``/confirm``, ``/confirm/resend``,
``/sign-in``, ``/password``; a sign-in link by email: ``POST /api/auth/email-link`` and
``/email-link/sign-in``. How the account signs in: ``GET /api/auth/methods``. Google and
Yandex: ``GET /api/auth/{provider}/start`` and ``/callback``. Sessions: ``POST
/api/auth/refresh``, ``/sign-out``, ``/sign-out-everywhere``, ``GET /api/sessions``,
``DELETE /api/sessions/{id}``.

Sign-in answers carry ``{access_token, token_type, expires_in, refresh_token}``; for a browser
they also set the session cookies (see ``webapp.cookies``). The session endpoints accept either
the bearer token (Mini App, API clients; no CSRF token) or the refresh cookie (browsers; with
the CSRF token in ``X-CSRF-Token``).
"""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta
from typing import Annotated, Literal
from urllib.parse import quote

from aiohttp import web
from pydantic import Field

from core.errors import DomainError, NotFound
from core.i18n import N_
from core.mail import Mail
from core.oauth import PROVIDERS, OAuthRejected
from core.security.tokens import SessionInvalid, refresh_session_id
from core.services import auth, sessions
from core.services.accounts import LANGUAGES
from core.services.auth import (
    EmailRegistration,
    EmailSignUpUnavailable,
    LoginGuard,
    OAuthMode,
    RegistrationOutcome,
)
from core.services.sessions import IssuedSession
from webapp.auth import bearer_session, bearer_user, install
from webapp.contract import (
    TIME,
    Answer,
    Body,
    Consent,
    Out,
    PathParams,
    Query,
    add_routes,
    operation,
)
from webapp.cookies import (
    OAUTH_COOKIE,
    REFRESH_COOKIE,
    check_csrf,
    clear_oauth_cookie,
    clear_session_cookies,
    set_oauth_cookie,
    set_session_cookies,
)
from webapp.i18n import request_language, translations
from webapp.keys import CONTEXT, WebContext
from webapp.routes.api import Tokens, client_info, token_body

log = logging.getLogger(__name__)

# Sign-up and confirmation mails per client address, per hour.
MAILS_PER_IP = 10
# Sign-in links mailed to one address at the asking of one client address, per hour.
LINKS_PER_ADDRESS = 5


TAGS = ("sign-in",)


# --- the contract --------------------------------------------------------------------------------

Email = Annotated[str, Field(min_length=1, max_length=320)]
Secret = Annotated[str, Field(min_length=1, max_length=4096)]


class Status(Out):
    status: str


class Registration(Body):
    email: Email
    password: Annotated[str, Field(min_length=1, max_length=1024)]
    accept_policy: Consent = Field(False, description="Must be true.")
    language: Annotated[str, Field(max_length=16)] | None = Field(
        None, description="en or ru (else the request's language)."
    )


class TokenBody(Body):
    token: Secret


class EmailBody(Body):
    email: Email


class PasswordSignIn(Body):
    email: Email
    password: Secret
    accept_policy: Consent = False


class LinkSignIn(Body):
    token: Secret
    accept_policy: Consent = False


class Confirmed(Out):
    confirmed: bool


class PasswordChange(Body):
    current: Secret
    new: Secret


class Ended(Out):
    ended_sessions: int


class SignInMethods(Out):
    email: str | None = Field(description="The address of email-and-password sign-in.")
    password: bool = Field(description="A password is set (it can be changed).")
    google: bool = Field(description="A Google account is linked.")
    yandex: bool = Field(description="A Yandex account is linked.")
    telegram: bool = Field(description="A Telegram account is linked.")
    google_email: str | None = Field(description="The linked Google account's verified address.")
    yandex_email: str | None = Field(description="The linked Yandex account's verified address.")
    oauth_offered: list[Literal["google", "yandex"]]


class Refresh(Body):
    refresh_token: Annotated[str, Field(min_length=1, max_length=256)] | None = Field(
        None, description="Omitted: the refresh cookie (with X-CSRF-Token) is used."
    )


class Session(Out):
    id: str
    current: bool = Field(description="The session of this request.")
    platform: str | None
    device: str | None
    os: str | None
    browser: str | None
    ip: str | None
    created_at: TIME
    last_used_at: TIME
    expires_at: TIME


class Sessions(Out):
    sessions: list[Session]


class SessionPath(PathParams):
    session_id: Annotated[str, Field(max_length=64)]


class ProviderPath(PathParams):
    provider: Literal["google", "yandex"]


Flag = Annotated[str, Field(max_length=16)] | None


class OAuthStartQuery(Query):
    accept_policy: Flag = Field(None, description="1: the user accepted the policy.")
    link: Flag = Field(None, description="1: add the account to the signed-in user.")
    handoff: Annotated[str, Field(max_length=256)] | None = Field(
        None, description="A one-time link handoff token (see .../link-handoff): link, no bearer."
    )


class AuthorizeUrl(Out):
    authorize_url: str


class OAuthCallbackQuery(Query):
    """What the provider sends back (any of it may be missing)."""

    code: str | None = None
    state: str | None = None
    error: str | None = None


def _guard(ctx: WebContext) -> LoginGuard:
    return LoginGuard(ctx.redis, ctx.login_limits)


def _signed_in(
    ctx: WebContext, issued: IssuedSession, *, cookies: bool, status: int = 200
) -> web.Response:
    response = web.json_response(token_body(ctx, issued), status=status)
    if cookies:
        _set_cookies(ctx, response, issued)
    return response


def _set_cookies(ctx: WebContext, response: web.StreamResponse, issued: IssuedSession) -> None:
    set_session_cookies(
        response,
        refresh_token=issued.refresh_token,
        session_id=issued.session_id,
        secret=ctx.jwt_secret,
        max_age=max(0, int((issued.expires_at - ctx.clock()).total_seconds())),
    )


# --- email and password ------------------------------------------------------------------------


def _confirmation_mail(ctx: WebContext, registration: EmailRegistration) -> Mail:
    _ = translations(registration.language).gettext
    if registration.confirmation_token is None:
        return Mail(
            to=registration.email,
            subject=_(N_("Someone tried to sign up to NetRoom with your address")),
            text=_(
                N_(
                    "Someone, perhaps you, tried to create a NetRoom account with this email "
                    "address. You already have an account: sign in at {url}. If it was not "
                    "you, you can ignore this message."
                )
            ).format(url=ctx.public_url.rstrip("/") + "/app"),
        )
    link = f"{ctx.public_url.rstrip('/')}/app#confirm={quote(registration.confirmation_token)}"
    hours = int(ctx.confirmation_ttl.total_seconds() // 3600)
    return Mail(
        to=registration.email,
        subject=_(N_("Confirm your email for NetRoom")),
        text=_(
            N_(
                "To finish signing up to NetRoom, open this link within {hours} hours:\n\n"
                "{link}\n\nIf you did not sign up, ignore this message: nothing happens "
                "without the link."
            )
        ).format(hours=hours, link=link),
    )


async def _mail_quota(ctx: WebContext, request: web.Request) -> None:
    ip = client_info(request, "web").ip or "unknown"
    await auth.within_rate(
        ctx.redis, f"mail:ip:{ip}", limit=MAILS_PER_IP, window=timedelta(hours=1)
    )


@operation(
    "POST",
    "/api/auth/register",
    summary="Sign up with email and password",
    auth="none",
    responses={
        201: Answer("Registered (no confirmation needed).", Status),
        202: Answer("A confirmation mail was sent.", Status),
    },
    errors={
        409: "The address is taken (without confirmation only).",
        429: "Too many mails from this address; see Retry-After.",
    },
    tags=TAGS,
)
async def register(request: web.Request, body: Registration) -> web.Response:
    """``{email, password, accept_policy: true, language?}`` → 202 ``{"status":
    "confirmation_sent"}`` (the same whether or not the address had an account), or, with
    confirmation off, 201 ``{"status": "registered"}`` (409 ``email_taken`` for a taken one)."""
    ctx = request.app[CONTEXT]
    if ctx.email_confirmation and ctx.mailer is None:
        raise EmailSignUpUnavailable("no mailer configured")
    language = body.language
    if language not in LANGUAGES:
        language = request_language(request)
    await _mail_quota(ctx, request)
    async with ctx.uow_factory() as uow:
        registration = await auth.register_with_email(
            uow,
            email=body.email,
            password=body.password,
            accept_policy=body.accept_policy,
            language=str(language),
            policy_version=ctx.policy_version,
            client=client_info(request, "web"),
            confirmation_required=ctx.email_confirmation,
            secret=ctx.jwt_secret,
            now=ctx.clock(),
            confirmation_ttl=ctx.confirmation_ttl,
        )
    if not ctx.email_confirmation:
        return web.json_response({"status": "registered"}, status=201)
    assert ctx.mailer is not None
    await ctx.mailer.send(_confirmation_mail(ctx, registration))
    return web.json_response({"status": "confirmation_sent"}, status=202)


@operation(
    "POST",
    "/api/auth/confirm/resend",
    summary="Mail the confirmation link again",
    auth="none",
    responses={202: Answer("Sent, whatever the address.", Status)},
    errors={429: "Too many mails from this address; see Retry-After."},
    tags=TAGS,
)
async def resend_confirmation(request: web.Request, body: EmailBody) -> web.Response:
    """``{email}`` → 202 ``{"status": "confirmation_sent"}``, whatever the address."""
    ctx = request.app[CONTEXT]
    if ctx.mailer is None:
        raise EmailSignUpUnavailable("no mailer configured")
    await _mail_quota(ctx, request)
    async with ctx.uow_factory() as uow:
        registration = await auth.confirmation_to_resend(
            uow,
            email=body.email,
            secret=ctx.jwt_secret,
            now=ctx.clock(),
            confirmation_ttl=ctx.confirmation_ttl,
        )
    if registration is not None and registration.outcome is RegistrationOutcome.PENDING:
        await ctx.mailer.send(_confirmation_mail(ctx, registration))
    return web.json_response({"status": "confirmation_sent"}, status=202)


@operation(
    "POST",
    "/api/auth/confirm",
    summary="Confirm an email address with the mailed token",
    auth="none",
    responses={200: Answer("Confirmed.", Confirmed)},
    tags=TAGS,
)
async def confirm(request: web.Request, body: TokenBody) -> web.Response:
    """``{token}`` (from the emailed link) → ``{"confirmed": true}``."""
    ctx = request.app[CONTEXT]
    async with ctx.uow_factory() as uow:
        await auth.confirm_email(uow, token=body.token, secret=ctx.jwt_secret, now=ctx.clock())
    return web.json_response({"confirmed": True})


@operation(
    "POST",
    "/api/auth/sign-in",
    summary="Sign in with email and password (also sets the session cookies)",
    auth="none",
    responses={200: Answer("Signed in.", Tokens)},
    errors={
        401: "Unknown address or wrong password.",
        403: "The policy is not accepted yet, or the account is blocked.",
        429: "Too many failures; see Retry-After.",
    },
    tags=TAGS,
)
async def sign_in(request: web.Request, body: PasswordSignIn) -> web.Response:
    """``{email, password, accept_policy?}`` → tokens, and the session cookies. 401
    ``bad_credentials`` for an unknown address and a wrong password alike; 429 with
    Retry-After after too many failures."""
    ctx = request.app[CONTEXT]
    async with ctx.uow_factory() as uow:
        issued = await auth.sign_in_with_password(
            uow,
            _guard(ctx),
            email=body.email,
            password=body.password,
            accept_policy=body.accept_policy,
            policy_version=ctx.policy_version,
            client=client_info(request, "web"),
            confirmation_required=ctx.email_confirmation,
            now=ctx.clock(),
            session_ttl=ctx.session_ttl,
        )
    return _signed_in(ctx, issued, cookies=True)


def _sign_in_link_mail(ctx: WebContext, link: auth.SignInLink) -> Mail:
    _ = translations(link.language).gettext
    url = f"{ctx.public_url.rstrip('/')}/app#signin={quote(link.token)}"
    minutes = int(auth.SIGN_IN_LINK_TTL.total_seconds() // 60)
    return Mail(
        to=link.email,
        subject=_(N_("Your NetRoom sign-in link")),
        text=_(
            N_(
                "To sign in to NetRoom, open this link within {minutes} minutes. It works "
                "once:\n\n{link}\n\nIf you did not ask for it, ignore this message: nobody "
                "can sign in without the link."
            )
        ).format(minutes=minutes, link=url),
    )


@operation(
    "POST",
    "/api/auth/email-link",
    summary="Mail a sign-in link (once, within 15 minutes) to a confirmed address",
    auth="none",
    responses={202: Answer("Sent, whatever the address.", Status)},
    errors={429: "Too many mails; see Retry-After."},
    tags=TAGS,
)
async def send_sign_in_link(request: web.Request, body: EmailBody) -> web.Response:
    """``{email}`` → 202 ``{"status": "link_sent"}``, whatever the address: a confirmed one gets
    a link that signs in once within 15 minutes, whatever failed passwords did to the account."""
    ctx = request.app[CONTEXT]
    if ctx.mailer is None:
        raise EmailSignUpUnavailable("no mailer configured")
    email = body.email
    await _mail_quota(ctx, request)
    # Counted per address and client address together: a stranger asking for links to the
    # owner's address spends only their own allowance, never the owner's.
    address = hashlib.sha256(email.strip().lower().encode()).hexdigest()
    await auth.within_rate(
        ctx.redis,
        f"mail:link:{address}:{client_info(request, 'web').ip or 'unknown'}",
        limit=LINKS_PER_ADDRESS,
        window=timedelta(hours=1),
    )
    async with ctx.uow_factory() as uow:
        link = await auth.sign_in_link_to_send(
            uow, email=email, secret=ctx.jwt_secret, now=ctx.clock()
        )
    if link is not None:
        await ctx.mailer.send(_sign_in_link_mail(ctx, link))
    return web.json_response({"status": "link_sent"}, status=202)


@operation(
    "POST",
    "/api/auth/email-link/sign-in",
    summary="Sign in with the mailed link's token (also sets the session cookies)",
    auth="none",
    responses={200: Answer("Signed in.", Tokens)},
    errors={
        400: "The link is invalid, expired or used.",
        403: "The policy is not accepted yet, or the account is blocked.",
    },
    tags=TAGS,
)
async def sign_in_by_link(request: web.Request, body: LinkSignIn) -> web.Response:
    """``{token, accept_policy?}`` (from the emailed link) → tokens, and the session
    cookies."""
    ctx = request.app[CONTEXT]
    async with ctx.uow_factory() as uow:
        issued = await auth.sign_in_with_link(
            uow,
            ctx.redis,
            token=body.token,
            secret=ctx.jwt_secret,
            accept_policy=body.accept_policy,
            policy_version=ctx.policy_version,
            client=client_info(request, "web"),
            now=ctx.clock(),
            session_ttl=ctx.session_ttl,
        )
    return _signed_in(ctx, issued, cookies=True)


@operation(
    "POST",
    "/api/auth/password",
    summary="Change the password; every other session ends",
    responses={200: Answer("Changed.", Ended)},
    errors={429: "Too many failures; see Retry-After."},
    tags=TAGS,
)
async def change_password(request: web.Request, body: PasswordChange) -> web.Response:
    """``{current, new}`` with a bearer token → ``{"ended_sessions": n}``: every other session
    of the account ends."""
    ctx = request.app[CONTEXT]
    user_id, session_id = bearer_session(request)
    async with ctx.uow_factory() as uow:
        ended = await auth.change_password(
            uow,
            _guard(ctx),
            user_id=user_id,
            session_id=session_id,
            current=body.current,
            new=body.new,
            ip=client_info(request, "web").ip,
            now=ctx.clock(),
        )
    return web.json_response({"ended_sessions": ended})


@operation(
    "GET",
    "/api/auth/methods",
    summary="How the account signs in, and the providers this server offers to link",
    responses={200: Answer("OK.", SignInMethods)},
    tags=TAGS,
)
async def sign_in_methods(request: web.Request) -> web.Response:
    """``{email, password, google, yandex, telegram, google_email, yandex_email,
    oauth_offered}`` with a bearer token: how the account signs in, and the providers this
    server offers to link."""
    ctx = request.app[CONTEXT]
    user_id = bearer_user(request)
    async with ctx.uow_factory() as uow:
        methods = await auth.sign_in_methods(uow, user_id)
    return web.json_response(
        {
            "email": methods.email,
            "password": methods.password,
            "google": methods.google,
            "yandex": methods.yandex,
            "telegram": methods.telegram,
            "google_email": methods.google_email,
            "yandex_email": methods.yandex_email,
            "oauth_offered": sorted(ctx.oauth.providers) if ctx.oauth is not None else [],
        }
    )


# --- sessions ----------------------------------------------------------------------------------


async def _session_of_request(request: web.Request) -> tuple[int, str]:
    """The session a request speaks for: its bearer token's, or else its refresh cookie's (the
    CSRF token required then)."""
    ctx = request.app[CONTEXT]
    if "Authorization" in request.headers:
        return bearer_session(request)
    cookie = request.cookies.get(REFRESH_COOKIE)
    if not cookie:
        raise SessionInvalid("no bearer token and no session cookie")
    session_id = refresh_session_id(cookie)
    if session_id is None:
        raise SessionInvalid("malformed session cookie")
    check_csrf(request, secret=ctx.jwt_secret, session_id=session_id)
    async with ctx.uow_factory() as uow:
        return await sessions.owner_of_refresh_token(uow, cookie, now=ctx.clock())


@operation(
    "POST",
    "/api/auth/refresh",
    summary="New tokens for a refresh token (body) or the refresh cookie (with X-CSRF-Token)",
    auth="none",
    responses={200: Answer("New tokens.", Tokens)},
    errors={401: "The refresh token or the session is not valid.", 403: "CSRF check failed."},
    tags=TAGS,
)
async def refresh(request: web.Request, body: Refresh | None) -> web.Response:
    """``{refresh_token}`` → new tokens (the refresh token replaced); or, from a browser, the
    refresh cookie with ``X-CSRF-Token`` → a new access token, the cookie replaced. An old
    refresh token presented again ends its session."""
    ctx = request.app[CONTEXT]
    token = body.refresh_token if body is not None else None
    by_cookie = token is None
    if token is None:
        token = request.cookies.get(REFRESH_COOKIE)
        if not token:
            raise SessionInvalid("no refresh token")
        session_id = refresh_session_id(token)
        if session_id is None:
            raise SessionInvalid("malformed session cookie")
        check_csrf(request, secret=ctx.jwt_secret, session_id=session_id)
    async with ctx.uow_factory() as uow:
        issued = await sessions.refresh(
            uow, refresh_token=token, now=ctx.clock(), ttl=ctx.session_ttl
        )
    if not by_cookie:
        return web.json_response(token_body(ctx, issued))
    response = web.json_response(token_body(ctx, issued, with_refresh_token=False))
    _set_cookies(ctx, response, issued)
    return response


@operation(
    "POST",
    "/api/auth/sign-out",
    summary="End this session",
    auth="session",
    responses={204: Answer("Ended.")},
    errors={403: "CSRF check failed."},
    tags=TAGS,
)
async def sign_out(request: web.Request) -> web.Response:
    """End this session (the bearer token's or the cookie's) → 204."""
    ctx = request.app[CONTEXT]
    user_id, session_id = await _session_of_request(request)
    async with ctx.uow_factory() as uow:
        await sessions.revoke(uow, user_id=user_id, session_id=session_id, now=ctx.clock())
    response = web.Response(status=204)
    clear_session_cookies(response)
    return response


@operation(
    "POST",
    "/api/auth/sign-out-everywhere",
    summary="End every session of the account",
    auth="session",
    responses={200: Answer("Ended.", Ended)},
    errors={403: "CSRF check failed."},
    tags=TAGS,
)
async def sign_out_everywhere(request: web.Request) -> web.Response:
    """End every session of the account, this one included → ``{"ended_sessions": n}``."""
    ctx = request.app[CONTEXT]
    user_id, _ = await _session_of_request(request)
    async with ctx.uow_factory() as uow:
        ended = await sessions.revoke_all(uow, user_id, ctx.clock())
    response = web.json_response({"ended_sessions": ended})
    clear_session_cookies(response)
    return response


@operation(
    "GET",
    "/api/sessions",
    summary="The account's live sessions, most recently used first",
    responses={200: Answer("OK.", Sessions)},
    tags=TAGS,
)
async def list_sessions(request: web.Request) -> web.Response:
    """``{"sessions": [{id, current, platform, device, os, browser, ip, created_at,
    last_used_at, expires_at}]}``: the account's live sessions, most recently used first."""
    ctx = request.app[CONTEXT]
    user_id, current = bearer_session(request)
    async with ctx.uow_factory() as uow:
        found = await sessions.list_sessions(uow, user_id, now=ctx.clock())
    return web.json_response(
        {
            "sessions": [
                {
                    "id": s.id,
                    "current": s.id == current,
                    "platform": s.platform,
                    "device": s.device,
                    "os": s.os,
                    "browser": s.browser,
                    "ip": s.ip,
                    "created_at": s.created_at.isoformat(),
                    "last_used_at": s.last_used_at.isoformat(),
                    "expires_at": s.expires_at.isoformat(),
                }
                for s in found
            ]
        }
    )


@operation(
    "DELETE",
    "/api/sessions/{session_id}",
    summary="End one of the account's sessions (anyone else's: 404)",
    responses={204: Answer("Ended.")},
    tags=TAGS,
)
async def delete_session(request: web.Request, path: SessionPath) -> web.Response:
    """End one of the account's own sessions → 204; anyone else's is 404."""
    ctx = request.app[CONTEXT]
    user_id, _ = bearer_session(request)
    async with ctx.uow_factory() as uow:
        await sessions.revoke(uow, user_id=user_id, session_id=path.session_id, now=ctx.clock())
    return web.Response(status=204)


# --- Google and Yandex -------------------------------------------------------------------------


def _provider(request: web.Request, name: str) -> str:
    ctx = request.app[CONTEXT]
    if name not in PROVIDERS or ctx.oauth is None or name not in ctx.oauth.providers:
        raise NotFound(f"{name} sign-in is not offered")
    return name


def _redirect_uri(ctx: WebContext, provider: str) -> str:
    return f"{ctx.public_url.rstrip('/')}/api/auth/{provider}/callback"


def _flag(value: str | None) -> bool:
    return value in ("1", "true", "yes")


@operation(
    "GET",
    "/api/auth/{provider}/start",
    summary="Start Google or Yandex sign-in (or linking, with ?link=1 and a bearer token)",
    auth="none",
    responses={
        200: Answer("With Accept: application/json.", AuthorizeUrl),
        302: Answer("To the provider."),
    },
    errors={401: "Linking without a valid bearer token."},
    tags=TAGS,
)
async def oauth_start(
    request: web.Request, path: ProviderPath, query: OAuthStartQuery
) -> web.Response:
    """302 to the provider. ``?accept_policy=1``: the user accepted the policy, so a new
    account may be created; ``?link=1`` with a bearer token: add the provider's account to the
    signed-in user instead; ``?handoff=<token>`` (from ``link-handoff``, in another browser): the
    same, for the token's user. With ``Accept: application/json`` the answer is
    ``{"authorize_url"}`` (a script cannot follow a cross-site redirect itself)."""
    ctx = request.app[CONTEXT]
    provider = _provider(request, path.provider)
    assert ctx.oauth is not None
    link = _flag(query.link) or query.handoff is not None
    user_id: int | None
    session_id: str | None
    if query.handoff is not None:
        # Opened in the phone's browser from the Mini App: the token stands for its session.
        user_id, session_id = await auth.take_link_handoff(
            ctx.redis, provider=provider, token=query.handoff
        )
    elif link:
        user_id, session_id = bearer_session(request)
    else:
        user_id, session_id = None, None
    start = await auth.begin_oauth(
        ctx.redis,
        ctx.oauth,
        provider=provider,
        redirect_uri=_redirect_uri(ctx, provider),
        mode=OAuthMode.LINK if link else OAuthMode.SIGN_IN,
        accept_policy=_flag(query.accept_policy),
        user_id=user_id,
        session_id=session_id,
    )
    if "application/json" in request.headers.get("Accept", ""):
        response = web.json_response({"authorize_url": start.authorize_url})
    else:
        response = web.Response(status=302, headers={"Location": start.authorize_url})
    set_oauth_cookie(response, start.nonce, max_age=auth.OAUTH_STATE_TTL)
    return response


@operation(
    "GET",
    "/api/auth/{provider}/callback",
    summary="Where Google or Yandex sends the browser back",
    auth="none",
    responses={302: Answer("To /app, signed in (cookies set) or linked, or with the error.")},
    errors={
        401: "The provider's answer did not sign anyone in.",
        403: "The policy is not accepted yet, or the account is blocked.",
        409: "The provider's account belongs to another user.",
        502: "The provider could not be reached.",
    },
    tags=TAGS,
)
async def oauth_callback(
    request: web.Request, path: ProviderPath, query: OAuthCallbackQuery
) -> web.Response:
    """The provider sends the browser back here with ``code`` and ``state``. Signed in: 302 to
    ``/app#signed_in=<provider>`` with the session cookies set (the page then calls
    ``/api/auth/refresh``); linked: 302 to ``/app#linked=<provider>``. A flow that fails is a
    JSON error, except for a browser page load (``Accept: text/html``): that goes back to the app
    with ``#auth_error=<code>``, which the page explains (it shows only texts of its own)."""
    try:
        return await _finish_oauth(request, path.provider, query)
    except DomainError as exc:
        if "text/html" not in request.headers.get("Accept", ""):
            raise
        log.info("oauth callback refused: %s (%s)", exc.code, exc.detail)
        ctx = request.app[CONTEXT]
        app_url = ctx.public_url.rstrip("/") + "/app"
        fragment = f"auth_error={quote(exc.code)}"
        provider = request.match_info.get("provider", "")
        if ctx.oauth is not None and provider in ctx.oauth.providers:
            # A newcomer who came through "Sign in": the page asks for consent and sends them
            # to the same provider again.
            fragment += f"&provider={provider}"
        response = web.Response(status=302, headers={"Location": f"{app_url}#{fragment}"})
        clear_oauth_cookie(response)
        return response


async def _finish_oauth(request: web.Request, name: str, query: OAuthCallbackQuery) -> web.Response:
    ctx = request.app[CONTEXT]
    provider = _provider(request, name)
    assert ctx.oauth is not None
    flow = await auth.take_oauth_flow(
        ctx.redis,
        provider=provider,
        state=query.state,
        nonce=request.cookies.get(OAUTH_COOKIE),
    )
    if query.error is not None or not query.code:
        raise OAuthRejected(f"{provider}: {query.error or 'no code'}")
    redirect_uri = _redirect_uri(ctx, provider)
    access = await ctx.oauth.exchange(
        provider, code=query.code, redirect_uri=redirect_uri, verifier=flow.verifier
    )
    profile = await ctx.oauth.profile(provider, access)
    async with ctx.uow_factory() as uow:
        result = await auth.complete_oauth(
            uow,
            flow=flow,
            profile=profile,
            language=request_language(request),
            policy_version=ctx.policy_version,
            client=client_info(request, "web"),
            now=ctx.clock(),
            session_ttl=ctx.session_ttl,
        )
    app_url = ctx.public_url.rstrip("/") + "/app"
    if result.session is None:
        response = web.Response(status=302, headers={"Location": f"{app_url}#linked={provider}"})
    else:
        response = web.Response(status=302, headers={"Location": f"{app_url}#signed_in={provider}"})
        _set_cookies(ctx, response, result.session)
    clear_oauth_cookie(response)
    return response


def setup(app: web.Application) -> None:
    install(app)
    add_routes(
        app,
        register,
        confirm,
        resend_confirmation,
        sign_in,
        send_sign_in_link,
        sign_in_by_link,
        change_password,
        sign_in_methods,
        refresh,
        sign_out,
        sign_out_everywhere,
        list_sessions,
        delete_session,
        oauth_start,
        oauth_callback,
    )
