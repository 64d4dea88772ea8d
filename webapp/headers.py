"""Security headers on every response, set once as it is prepared (pages, API, static files,
errors alike).

Every response: ``X-Content-Type-Options: nosniff``. Every HTML page: a Content-Security-Policy
(a route's own, such as the app's or a shared page's, or the strict default here), which says
who may frame it: the app (``/app``) only Telegram's web clients, every other page nobody.
Every API answer that sets no caching of its own: ``Cache-Control: no-store``, so tokens and
personal data stay out of shared and browser caches.
"""

from __future__ import annotations

import re

from aiohttp import web

PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?")


def app_csp(framers: tuple[str, ...]) -> str:
    """The app's policy. Telegram's web clients (Web K, Web A) open Mini Apps in a frame; the
    mobile and desktop apps in a webview of their own, where frame-ancestors does not apply.
    Only plain origins are taken, so a setting cannot add a directive."""
    allowed = " ".join(f for f in framers if ORIGIN.fullmatch(f)) or "'none'"
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        f"form-action 'self'; frame-ancestors {allowed}"
    )


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers["X-Content-Type-Options"] = "nosniff"
    if response.content_type == "text/html":
        headers.setdefault("Content-Security-Policy", PAGE_CSP)
        if "frame-ancestors 'none'" in headers["Content-Security-Policy"]:
            # For browsers that know no frame-ancestors.
            headers.setdefault("X-Frame-Options", "DENY")
    if request.path.startswith("/api/"):
        headers.setdefault("Cache-Control", "no-store")


def setup(app: web.Application) -> None:
    app.on_response_prepare.append(add_security_headers)
