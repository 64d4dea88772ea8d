"""The JSON API the Mini App and the web app use. Every route answers JSON; errors come from the
one error middleware."""

from __future__ import annotations

import re
from typing import Literal

from aiohttp import web
from pydantic import Field

from core.deeplinks import parse_start_payload
from core.dto import ClientInfo
from core.errors import ConsentRequired, Unauthorized
from core.security.initdata import InitDataInvalid
from core.security.tokens import SessionInvalid, issue_access_token
from core.services import accounts, auth, billing, chat, sessions
from core.services.sessions import IssuedSession
from webapp.auth import bearer_user
from webapp.clientip import client_address
from webapp.contract import Answer, Body, Consent, Out, add_routes, operation
from webapp.keys import CONTEXT, WebContext

TMA = re.compile(r"^tma (.+)$", re.DOTALL)


def client_info(request: web.Request, platform: str) -> ClientInfo:
    agent = request.headers.get("User-Agent", "")
    lowered = agent.lower()
    os_name = next(
        (
            n
            for k, n in (
                ("android", "Android"),
                ("iphone", "iOS"),
                ("ipad", "iOS"),
                ("windows", "Windows"),
                ("mac os", "macOS"),
                ("linux", "Linux"),
            )
            if k in lowered
        ),
        None,
    )
    browser = next(
        (
            n
            for k, n in (
                ("edg/", "Edge"),
                ("chrome/", "Chrome"),
                ("firefox/", "Firefox"),
                ("safari/", "Safari"),
            )
            if k in lowered
        ),
        None,
    )
    device = "mobile" if any(k in lowered for k in ("mobile", "android", "iphone")) else "desktop"
    return ClientInfo(
        platform=platform,
        device_type=device if agent else None,
        os=os_name,
        browser=browser,
        ip=str(address) if (address := client_address(request)) else None,
        user_agent=agent or None,
    )


def token_body(
    ctx: WebContext, issued: IssuedSession, *, with_refresh_token: bool = True
) -> dict[str, object]:
    """An access token for the session (never outliving it), and its refresh token."""
    now = ctx.clock()
    ttl = min(ctx.access_ttl, issued.expires_at - now)
    token, claims = issue_access_token(
        issued.user_id, secret=ctx.jwt_secret, now=now, ttl=ttl, session_id=issued.session_id
    )
    body: dict[str, object] = {
        "access_token": token,
        "token_type": "bearer",  # nosec B105 # the token type
        "expires_in": int((claims.expires_at - now).total_seconds()),
    }
    if with_refresh_token:
        body["refresh_token"] = issued.refresh_token
    return body


class Tokens(Out):
    access_token: str = Field(description="A JWT for the Authorization header.")
    token_type: Literal["bearer"]
    expires_in: int = Field(description="Seconds the access token stays valid.")
    refresh_token: str = Field(
        "",
        description="Exchanged at /api/auth/refresh for new tokens (not given to a cookie "
        "refresh).",
    )


class TelegramSignIn(Body):
    accept_policy: Consent = Field(False, description="The user accepted the policy just now.")


@operation(
    "POST",
    "/api/auth/telegram",
    summary="Sign in from the Mini App with Telegram's initData",
    auth="tma",
    responses={200: Answer("Signed in: a new session.", Tokens)},
    errors={403: "The policy is not accepted yet (ask again with accept_policy)."},
    description="`Authorization: tma <initData>`; each initData signs in once.",
)
async def sign_in_telegram(request: web.Request, body: TelegramSignIn | None) -> web.Response:
    """``Authorization: tma <initData>`` → ``{access_token, token_type, expires_in,
    refresh_token}`` for the Mini App: a new session."""
    ctx = request.app[CONTEXT]
    if ctx.init_data is None:
        raise Unauthorized("no bot configured for Mini App sign-in")
    match = TMA.match(request.headers.get("Authorization", ""))
    if match is None:
        raise InitDataInvalid("no tma authorization header")
    now = ctx.clock()
    data = ctx.init_data.verify(match.group(1), now=now)
    accepted = body is not None and body.accept_policy
    async with ctx.uow_factory() as uow:
        user = await accounts.get_by_telegram_id(uow, data.user.id)
        if (user is None or user.needs_consent(ctx.policy_version)) and not accepted:
            # The page shows the policy and asks again with {"accept_policy": true}; the
            # launch data is not used up by this answer.
            raise ConsentRequired(f"telegram user {data.user.id} has not accepted the policy")
        if user is not None and user.is_blocked:
            raise Unauthorized(f"user {user.id} is blocked")
        # Each launch's initData signs in once: a copied one cannot be replayed.
        ttl = int(ctx.init_data.max_age.total_seconds()) + 60
        if not await ctx.redis.set(f"netroom:initdata:{data.hash}", "1", nx=True, ex=ttl):
            raise InitDataInvalid("initData used before")
        if user is None or user.needs_consent(ctx.policy_version):
            # Registered exactly as /start does: referral and campaign codes from start_param.
            registered = await accounts.register_telegram_user(
                uow,
                telegram_id=data.user.id,
                username=data.user.username,
                first_name=data.user.first_name,
                last_name=data.user.last_name,
                language_code=data.user.language_code,
                payload=parse_start_payload(data.start_param),
                policy_version=ctx.policy_version,
                client=client_info(request, "telegram"),
            )
            user_id = registered.user.id
        else:
            user_id = user.id
        issued = await sessions.open_session(
            uow,
            user_id=user_id,
            client=client_info(request, "telegram"),
            now=now,
            ttl=ctx.session_ttl,
        )
    return web.json_response(token_body(ctx, issued))


def user_id_of(request: web.Request) -> int:
    """The signed-in user: a valid access token whose session is alive (checked by the session
    middleware, see ``webapp.auth``)."""
    return bearer_user(request)


class Referrals(Out):
    level1: int
    level2: int


class Me(Out):
    id: int
    name: str | None
    username: str | None
    email: str | None = Field(description="The address of email-and-password sign-in.")
    language: str
    balance_kopecks: int = Field(description="Money in kopecks (1/100 rouble).")
    reserved_kopecks: int
    model: str | None = Field(description="The picked model id.")
    referral_code: str
    referrals: Referrals
    timezone: str | None = Field(description="The IANA time zone chosen; null until chosen.")


@operation("GET", "/api/me", summary="The signed-in account", responses={200: Answer("OK.", Me)})
async def me(request: web.Request) -> web.Response:
    """The signed-in account: who, language, balance, chat preferences."""
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    async with ctx.uow_factory() as uow:
        user = await accounts.get_user(uow, user_id)
        if user.is_blocked:
            # Erased or blocked accounts: any token still around is worth nothing.
            raise SessionInvalid(f"user {user_id} is blocked or erased")
        balance = await billing.get_balance(uow, user_id)
        prefs = await chat.get_prefs(uow, user_id)
        methods = await auth.sign_in_methods(uow, user_id)
    return web.json_response(
        {
            "id": user.id,
            "name": user.profile_name,
            "username": user.username,
            "email": methods.email,
            "language": user.language,
            "balance_kopecks": balance.balance,
            "reserved_kopecks": balance.reserved,
            "model": prefs.model_id,
            "referral_code": user.referral_code,
            "referrals": {"level1": user.ref1_count, "level2": user.ref2_count},
            "timezone": user.timezone,
        }
    )


def setup(app: web.Application) -> None:
    add_routes(app, sign_in_telegram, me)
