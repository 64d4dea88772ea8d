"""Generated images and videos by their link: ``/media/<key>``. The key is 128 random bits, so the
link is the capability; deleting the media (or the account) makes it answer 404."""

from __future__ import annotations

from aiohttp import web

from core.media import KEY
from webapp.keys import CONTEXT

TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".webp": "image/webp", ".mp4": "video/mp4"}


async def show_media(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    key = request.match_info["key"]
    if ctx.media_store is None or not KEY.fullmatch(key):
        raise web.HTTPNotFound()
    try:
        data = await ctx.media_store.load(key)
    except (FileNotFoundError, ValueError) as exc:
        raise web.HTTPNotFound() from exc
    suffix = key[key.rfind(".") :]
    return web.Response(
        body=data,
        content_type=TYPES.get(suffix, "application/octet-stream"),
        headers={
            "Cache-Control": "private, max-age=86400",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'",
        },
    )


def setup(app: web.Application) -> None:
    app.router.add_get("/media/{key}", show_media, name="media")
