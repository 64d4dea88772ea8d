"""Browser sessions in cookies, and the CSRF check that goes with them.

A browser keeps its refresh token in ``__Host-netroom_refresh`` (Secure, HttpOnly,
SameSite=Lax, Path=/): scripts never see it. ``__Host-netroom_csrf`` (readable by the page's
script) holds a token derived from the session; every state-changing request authenticated by
that cookie must echo it in ``X-CSRF-Token`` (double submit, compared in constant time, and
checked against the session it names). Requests with a bearer token (the Mini App) carry no
cookie credential and need no CSRF token.

The ``__Host-`` prefix makes browsers refuse these cookies unless they are Secure, set by the
host itself, without a Domain and with Path=/: no sibling subdomain can plant one. Browsers
treat http://localhost as secure; other plain-http origins drop them.
"""

from __future__ import annotations

import base64
import hmac

from aiohttp import web

from core.errors import Forbidden
from core.i18n import N_
from core.security.tokens import derive_key

REFRESH_COOKIE = "__Host-netroom_refresh"
CSRF_COOKIE = "__Host-netroom_csrf"
# The browser an OAuth sign-in started in (a nonce; its hash is kept with the flow's state).
OAUTH_COOKIE = "__Host-netroom_oauth"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CsrfRejected(Forbidden):
    code = "csrf_failed"
    msgid = N_("This request could not be verified. Please reload the page and try again.")


def csrf_token(secret: str, session_id: str) -> str:
    mac = hmac.new(derive_key(secret, "csrf"), session_id.encode(), "sha256").digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def check_csrf(request: web.Request, *, secret: str, session_id: str) -> None:
    """Refuse a state-changing, cookie-authenticated request without the matching token."""
    if request.method in SAFE_METHODS:
        return
    header = request.headers.get(CSRF_HEADER, "")
    cookie = request.cookies.get(CSRF_COOKIE, "")
    expected = csrf_token(secret, session_id)
    # Evaluated in full whatever matches, so the time taken tells nothing.
    same = hmac.compare_digest(header.encode(), cookie.encode())
    valid = hmac.compare_digest(header.encode(), expected.encode())
    if not header or not (same and valid):
        raise CsrfRejected("missing or wrong CSRF token")


def _set(
    response: web.StreamResponse, name: str, value: str, *, max_age: int, http_only: bool
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        secure=True,
        httponly=http_only,
        samesite="Lax",
    )


def set_session_cookies(
    response: web.StreamResponse,
    *,
    refresh_token: str,
    session_id: str,
    secret: str,
    max_age: int,
) -> None:
    _set(response, REFRESH_COOKIE, refresh_token, max_age=max_age, http_only=True)
    _set(response, CSRF_COOKIE, csrf_token(secret, session_id), max_age=max_age, http_only=False)


def clear_session_cookies(response: web.StreamResponse) -> None:
    for name, http_only in ((REFRESH_COOKIE, True), (CSRF_COOKIE, False)):
        _set(response, name, "", max_age=0, http_only=http_only)


def set_oauth_cookie(response: web.StreamResponse, nonce: str, *, max_age: int) -> None:
    _set(response, OAUTH_COOKIE, nonce, max_age=max_age, http_only=True)


def clear_oauth_cookie(response: web.StreamResponse) -> None:
    _set(response, OAUTH_COOKIE, "", max_age=0, http_only=True)
