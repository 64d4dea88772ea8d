"""The sandbox's browser page: a person plays a Telegram user chatting with the bot.

``GET /`` serves a single-page app built on the control API (``/sandbox/api``); its files are
served under ``/sandbox/static/``. Plain files, no build step, nothing fetched from elsewhere.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).with_name("static")
STATIC_PREFIX = "/sandbox/static/"
# Explicit types: the platform's mimetypes table differs between machines, and browsers refuse
# JavaScript modules served with a non-script type.
CONTENT_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
ASSET_NAME = re.compile(r"^[A-Za-z0-9_-]+\.(?:js|css|svg|png)$")
# Only our own scripts run; Mini Apps may come from any http(s) origin, and only in a frame.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "frame-src http: https:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
    ]
)
PAGE_INSTALLED = web.AppKey("sandbox_page_installed", bool)
HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


async def _read(path: Path) -> bytes:
    return await asyncio.to_thread(path.read_bytes)


async def page(request: web.Request) -> web.Response:
    body = await _read(STATIC_DIR / "index.html")
    return web.Response(
        body=body,
        content_type="text/html",
        charset="utf-8",
        headers={**HEADERS, "Content-Security-Policy": CONTENT_SECURITY_POLICY},
    )


async def asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if not ASSET_NAME.match(name):
        raise web.HTTPNotFound()
    path = STATIC_DIR / name
    if not path.is_file():
        raise web.HTTPNotFound()
    suffix = path.suffix
    charset = "utf-8" if suffix in (".js", ".css", ".svg") else None
    return web.Response(
        body=await _read(path),
        content_type=CONTENT_TYPES[suffix],
        charset=charset,
        headers=HEADERS,
    )


def setup_page(app: web.Application) -> None:
    """Add the page (``GET /``) and its files (``GET /sandbox/static/{name}``) to ``app``.

    Calling it again on the same app does nothing, so a caller may add it to an app that may
    already have it.
    """
    if app.get(PAGE_INSTALLED):
        return
    app[PAGE_INSTALLED] = True
    app.router.add_get("/", page, name="sandbox_page")
    app.router.add_get(STATIC_PREFIX + "{name}", asset, name="sandbox_static")
