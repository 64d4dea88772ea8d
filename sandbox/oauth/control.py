"""Control API under ``/sandbox/api/oauth``, for tests and people without a browser.

- ``POST /clients`` ``{provider, client_id?, client_secret?, redirect_uris}`` → the client
- ``POST /accounts`` ``{provider, email, email_verified?, name?, subject?}`` → the account
- ``GET /accounts?provider=`` → the accounts
- ``POST /approve`` ``{authorize_url, subject | email}`` → ``{redirect_url, code}``: what the
  consent page would send the browser to after "allow" (a new account for an unknown email)
- ``POST /deny`` ``{authorize_url}`` → ``{redirect_url}`` with ``error=access_denied``
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web

from sandbox.oauth.provider import PageError, approve, parse_authorize
from sandbox.oauth.state import OAUTH, PROVIDERS, Client

PREFIX = "/sandbox/api/oauth"


def _bad(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=f'{{"error": "{message}"}}', content_type="application/json")


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise _bad("body is not JSON") from exc
    if not isinstance(body, dict):
        raise _bad("body is not an object")
    return body


def _provider(value: Any) -> str:
    if value not in PROVIDERS:
        raise _bad("provider must be google or yandex")
    return str(value)


async def create_client(request: web.Request) -> web.Response:
    body = await _json(request)
    provider = _provider(body.get("provider"))
    uris = body.get("redirect_uris")
    if not isinstance(uris, list) or not uris or not all(isinstance(u, str) for u in uris):
        raise _bad("redirect_uris must be a non-empty list of URLs")
    client = Client(
        provider=provider,
        client_id=str(body.get("client_id") or f"{secrets.token_hex(6)}.apps.sandbox"),
        client_secret=str(body.get("client_secret") or secrets.token_urlsafe(18)),
        redirect_uris=list(uris),
    )
    request.app[OAUTH].clients[(provider, client.client_id)] = client
    return web.json_response({"client": client.to_json()}, status=201)


async def create_account(request: web.Request) -> web.Response:
    body = await _json(request)
    provider = _provider(body.get("provider"))
    email = body.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise _bad("email required")
    account = request.app[OAUTH].add_account(
        provider,
        email,
        email_verified=bool(body.get("email_verified", True)),
        name=body.get("name"),
        subject=str(body["subject"]) if body.get("subject") else None,
    )
    return web.json_response({"account": account.to_json()}, status=201)


async def list_accounts(request: web.Request) -> web.Response:
    provider = request.query.get("provider")
    accounts = [
        a.to_json()
        for (p, _), a in request.app[OAUTH].accounts.items()
        if provider is None or p == provider
    ]
    return web.json_response({"accounts": accounts})


def _authorize_request(request: web.Request, body: dict[str, Any]) -> tuple[str, Any]:
    url = body.get("authorize_url")
    if not isinstance(url, str):
        raise _bad("authorize_url required")
    parts = urlsplit(url)
    segments = parts.path.strip("/").split("/")
    if len(segments) != 3 or segments[0] != "oauth" or segments[2] != "authorize":
        raise _bad("not an authorize URL of the sandbox")
    provider = _provider(segments[1])
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    try:
        return provider, parse_authorize(request.app[OAUTH], provider, query)
    except PageError as exc:
        raise _bad(str(exc)) from exc


async def approve_request(request: web.Request) -> web.Response:
    body = await _json(request)
    provider, parsed = _authorize_request(request, body)
    state = request.app[OAUTH]
    account = None
    if body.get("subject"):
        account = state.accounts.get((provider, str(body["subject"])))
        if account is None:
            raise _bad("no such account")
    elif isinstance(body.get("email"), str):
        email = str(body["email"])
        account = next(
            (a for (p, _), a in state.accounts.items() if p == provider and a.email == email),
            None,
        ) or state.add_account(provider, email, name=body.get("name"))
    else:
        raise _bad("subject or email required")
    location, code = approve(state, parsed, account)
    return web.json_response({"redirect_url": location, "code": code or None})


async def deny_request(request: web.Request) -> web.Response:
    body = await _json(request)
    _, parsed = _authorize_request(request, body)
    return web.json_response({"redirect_url": parsed.redirect(error="access_denied")})


def setup_control(app: web.Application) -> None:
    app.router.add_post(f"{PREFIX}/clients", create_client)
    app.router.add_post(f"{PREFIX}/accounts", create_account)
    app.router.add_get(f"{PREFIX}/accounts", list_accounts)
    app.router.add_post(f"{PREFIX}/approve", approve_request)
    app.router.add_post(f"{PREFIX}/deny", deny_request)
