"""Google's and Yandex's OAuth endpoints: the consent page, the token endpoint (RFC 6749 with
PKCE, RFC 7636) and the user-info endpoints, each answering in its provider's shape.

Errors follow RFC 6749: a bad ``client_id`` or ``redirect_uri`` is shown on the page and never
redirected (4.1.2.1); other authorization errors go back to the client with ``error`` and
``state``; the token endpoint answers 400 ``invalid_request`` / ``invalid_grant`` /
``unsupported_grant_type`` and 401 ``invalid_client`` (5.2). A code works once, for ten minutes,
from the same client and redirect URI; using it again also revokes the tokens it gave (4.1.2).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import html
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from aiohttp import web

from sandbox.oauth.state import OAUTH, PROVIDERS, TOKEN_TTL, Account, Client, OAuthState

VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class PageError(Exception):
    """An authorization request that cannot go back to the client: shown to the person."""


@dataclass(frozen=True)
class AuthorizeRequest:
    client: Client
    redirect_uri: str
    scope: str
    state: str | None
    challenge: str | None
    method: str | None
    # An error to send back to the client instead of asking the person.
    error: str | None = None

    def redirect(self, **params: str) -> str:
        if self.state is not None:
            params["state"] = self.state
        parts = urlsplit(self.redirect_uri)
        query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
        return urlunsplit(parts._replace(query=urlencode(query)))


def parse_authorize(state: OAuthState, provider: str, query: Any) -> AuthorizeRequest:
    client_id = str(query.get("client_id", ""))
    client = state.clients.get((provider, client_id))
    if client is None:
        raise PageError("invalid_client: the OAuth client was not found")
    redirect_uri = str(query.get("redirect_uri", ""))
    if not redirect_uri and len(client.redirect_uris) == 1:
        redirect_uri = client.redirect_uris[0]
    if redirect_uri not in client.redirect_uris:
        raise PageError("redirect_uri_mismatch: the redirect URI is not registered for the client")
    challenge = query.get("code_challenge")
    method = query.get("code_challenge_method")
    base = AuthorizeRequest(
        client=client,
        redirect_uri=redirect_uri,
        scope=str(query.get("scope", "")),
        state=query.get("state"),
        challenge=str(challenge) if challenge else None,
        method=(str(method) if method else "plain") if challenge else None,
    )
    error = None
    pkce_ok = not challenge or (
        base.method in ("S256", "plain") and VERIFIER.match(str(challenge)) is not None
    )
    if query.get("response_type") != "code":
        error = "unsupported_response_type"
    elif (method and not challenge) or not pkce_ok:
        error = "invalid_request"
    if error is not None:
        return dataclasses.replace(base, error=error)
    return base


def approve(state: OAuthState, request: AuthorizeRequest, account: Account) -> tuple[str, str]:
    """The redirect back to the client with a fresh code, and the code."""
    if request.error is not None:
        return request.redirect(error=request.error), ""
    grant = state.issue_code(
        request.client,
        request.redirect_uri,
        account,
        request.scope,
        request.challenge,
        request.method,
    )
    return request.redirect(code=grant.code), grant.code


# --- the consent page --------------------------------------------------------------------------


def _hidden(query: Any) -> str:
    return "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(str(v))}">'
        for k, v in query.items()
        if k in AUTHORIZE_PARAMS
    )


AUTHORIZE_PARAMS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "force_confirm",
    "login_hint",
)


def _page(provider: str, body: str, status: int = 200) -> web.Response:
    title = "Sign in with Google" if provider == "google" else "Yandex ID"
    return web.Response(
        text=(
            f"<!doctype html><html><head><meta charset='utf-8'><title>{title} (sandbox)"
            f"</title></head><body><h1>{title} <small>(sandbox)</small></h1>{body}</body></html>"
        ),
        content_type="text/html",
        status=status,
    )


def _handler(provider: str) -> Any:
    async def show(request: web.Request) -> web.Response:
        state = request.app[OAUTH]
        try:
            parsed = parse_authorize(state, provider, request.query)
        except PageError as exc:
            return _page(provider, f"<p>Error: {html.escape(str(exc))}</p>", status=400)
        if parsed.error is not None:
            raise web.HTTPFound(parsed.redirect(error=parsed.error))
        action = f"/oauth/{provider}/authorize"
        hidden = _hidden(request.query)
        accounts = [a for (p, _), a in state.accounts.items() if p == provider]
        items = "".join(
            f"<li><form method='post' action='{action}'>{hidden}"
            f"<input type='hidden' name='account' value='{html.escape(a.subject)}'>"
            f"<button name='decision' value='approve'>{html.escape(a.name or a.email)} "
            f"&lt;{html.escape(a.email)}&gt;</button></form></li>"
            for a in accounts
        )
        body = (
            f"<p>{html.escape(parsed.client.client_id)} asks for: "
            f"{html.escape(parsed.scope or '(default scopes)')}</p>"
            f"<ul>{items}</ul>"
            f"<form method='post' action='{action}'>{hidden}"
            "<p><label>Email <input name='email' type='email' required></label> "
            "<label>Name <input name='name'></label> "
            "<button name='decision' value='approve'>Use a new account</button></p></form>"
            f"<form method='post' action='{action}'>{hidden}"
            "<button name='decision' value='deny'>Cancel</button></form>"
        )
        return _page(provider, body)

    async def decide(request: web.Request) -> web.Response:
        state = request.app[OAUTH]
        form = await request.post()
        try:
            parsed = parse_authorize(state, provider, form)
        except PageError as exc:
            return _page(provider, f"<p>Error: {html.escape(str(exc))}</p>", status=400)
        if form.get("decision") != "approve":
            raise web.HTTPFound(parsed.redirect(error="access_denied"))
        account = state.accounts.get((provider, str(form.get("account", ""))))
        if account is None:
            email = str(form.get("email", "")).strip()
            if "@" not in email:
                return _page(provider, "<p>Error: choose an account</p>", status=400)
            account = state.add_account(provider, email, name=str(form.get("name") or "") or None)
        location, _ = approve(state, parsed, account)
        raise web.HTTPFound(location)

    return show, decide


# --- the token endpoint ------------------------------------------------------------------------


def token_error(error: str, description: str, status: int = 400) -> web.Response:
    headers = dict(NO_STORE)
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="oauth"'
    return web.json_response(
        {"error": error, "error_description": description}, status=status, headers=headers
    )


def _client_credentials(request: web.Request, form: Any) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        client_id, colon, secret = decoded.partition(":")
        return (client_id, secret) if colon else None
    if "client_id" in form:
        return str(form["client_id"]), str(form.get("client_secret", ""))
    return None


def _pkce_ok(challenge: str, method: str | None, verifier: str) -> bool:
    if method == "S256":
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    else:
        computed = verifier
    return hmac.compare_digest(computed, challenge)


def _token_handler(provider: str) -> Any:
    async def token(request: web.Request) -> web.Response:
        state = request.app[OAUTH]
        form = await request.post()
        credentials = _client_credentials(request, form)
        if credentials is None:
            return token_error("invalid_client", "Client authentication failed.", 401)
        client = state.clients.get((provider, credentials[0]))
        if client is None or not hmac.compare_digest(client.client_secret, credentials[1]):
            return token_error("invalid_client", "Client authentication failed.", 401)
        if form.get("grant_type") != "authorization_code":
            return token_error("unsupported_grant_type", "Invalid grant_type.")
        code = str(form.get("code", ""))
        if not code:
            return token_error("invalid_request", "Missing required parameter: code")
        grant = state.grants.get(code)
        if grant is None or grant.provider != provider:
            return token_error("invalid_grant", "Malformed auth code.")
        if grant.used:
            # A code used twice: whatever it gave is withdrawn too.
            for value in grant.tokens:
                state.tokens[value].revoked = True
            return token_error("invalid_grant", "Code was already redeemed.")
        if time.time() >= grant.expires_at:
            return token_error("invalid_grant", "Code has expired.")
        if grant.client_id != client.client_id:
            return token_error("invalid_grant", "Code was issued to another client.")
        if str(form.get("redirect_uri", "")) != grant.redirect_uri:
            return token_error("invalid_grant", "Bad Request: redirect_uri does not match.")
        verifier = form.get("code_verifier")
        if grant.challenge is not None:
            if not isinstance(verifier, str) or not VERIFIER.match(verifier):
                return token_error("invalid_grant", "Missing code verifier.")
            if not _pkce_ok(grant.challenge, grant.method, verifier):
                return token_error("invalid_grant", "Invalid code verifier.")
        grant.used = True
        issued = state.issue_token(grant)
        body: dict[str, Any] = {
            "access_token": issued.value,
            "expires_in": TOKEN_TTL[provider],
        }
        if provider == "google":
            body |= {"token_type": "Bearer", "scope": grant.scope}  # nosec B105 # the token type
        else:
            body |= {"token_type": "bearer", "refresh_token": "1:" + issued.value[3:]}  # nosec B105 # the token type
        return web.json_response(body, headers=NO_STORE)

    return token


# --- user info ---------------------------------------------------------------------------------


def _live_token(request: web.Request, provider: str, scheme: str) -> Account | None:
    given, _, value = request.headers.get("Authorization", "").partition(" ")
    if given.lower() != scheme.lower():
        return None
    token = request.app[OAUTH].tokens.get(value.strip())
    if token is None or token.provider != provider or not token.live:
        return None
    return token.account


async def google_userinfo(request: web.Request) -> web.Response:
    state = request.app[OAUTH]
    account = _live_token(request, "google", "Bearer")
    if account is None:
        return web.json_response(
            {"error": "invalid_request", "error_description": "Invalid Credentials"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
        )
    token = state.tokens[request.headers["Authorization"].partition(" ")[2].strip()]
    scopes = token.scope.split()
    body: dict[str, Any] = {"sub": account.subject}
    if "email" in scopes:
        body |= {"email": account.email, "email_verified": account.email_verified}
    if "profile" in scopes and account.name:
        given, _, family = account.name.partition(" ")
        body |= {"name": account.name, "given_name": given}
        if family:
            body["family_name"] = family
    return web.json_response(body)


async def yandex_info(request: web.Request) -> web.Response:
    state = request.app[OAUTH]
    if request.query.get("format", "json") != "json":
        return web.json_response({"error": "only json in the sandbox"}, status=400)
    account = _live_token(request, "yandex", "OAuth")
    if account is None:
        return web.Response(status=401, text="Unauthorized")
    token = state.tokens[request.headers["Authorization"].partition(" ")[2].strip()]
    scopes = token.scope.split()
    body: dict[str, Any] = {
        "id": account.subject,
        "login": account.login,
        "client_id": token.client_id,
        "psuid": "1." + account.subject,
    }
    if not scopes or "login:info" in scopes:
        name = account.name or account.login
        first, _, last = name.partition(" ")
        body |= {
            "display_name": account.login,
            "real_name": name,
            "first_name": first,
            "last_name": last,
        }
    if not scopes or "login:email" in scopes:
        body |= {"default_email": account.email, "emails": [account.email]}
    return web.json_response(body)


def setup_endpoints(app: web.Application) -> None:
    for provider in PROVIDERS:
        show, decide = _handler(provider)
        app.router.add_get(f"/oauth/{provider}/authorize", show)
        app.router.add_post(f"/oauth/{provider}/authorize", decide)
        app.router.add_post(f"/oauth/{provider}/token", _token_handler(provider))
    app.router.add_get("/oauth/google/userinfo", google_userinfo)
    app.router.add_post("/oauth/google/userinfo", google_userinfo)
    app.router.add_get("/oauth/yandex/info", yandex_info)
