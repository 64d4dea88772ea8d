"""Generated images and videos by their link: ``/media/<key>``. The key is 128 random bits, so the
link is the capability; deleting the media (or the account) makes it answer 404.

Only pictures and videos are served here. Uploaded documents live in the same store, but their
keys are never links: this route answers 404 for them whoever asks, the owner included (only
the server itself reads them, to index them)."""

from __future__ import annotations

from aiohttp import web

from core.media import KEY
from webapp.keys import CONTEXT

TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".webp": "image/webp", ".mp4": "video/mp4"}


async def show_media(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    key = request.match_info["key"]
    suffix = key[key.rfind(".") :]
    if ctx.media_store is None or not KEY.fullmatch(key) or suffix not in TYPES:
        raise web.HTTPNotFound()
    try:
        data = await ctx.media_store.load(key)
    except (FileNotFoundError, ValueError) as exc:
        raise web.HTTPNotFound() from exc
    headers = {
        "Cache-Control": "private, max-age=86400",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'",
        # Video players (Safari's and Telegram's on iOS above all) ask for byte ranges.
        "Accept-Ranges": "bytes",
    }
    try:
        wanted = request.http_range
    except ValueError:
        wanted = slice(len(data), None)
    if wanted.start is None and wanted.stop is None:
        return web.Response(body=data, content_type=TYPES[suffix], headers=headers)
    start, stop, _ = wanted.indices(len(data))
    if start >= stop:
        raise web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{len(data)}"})
    return web.Response(
        status=206,
        body=data[start:stop],
        content_type=TYPES[suffix],
        headers={**headers, "Content-Range": f"bytes {start}-{stop - 1}/{len(data)}"},
    )


def setup(app: web.Application) -> None:
    app.router.add_get("/media/{key}", show_media, name="media")
