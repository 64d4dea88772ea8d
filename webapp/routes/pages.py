"""Pages: the home page, the privacy policy and the app."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from aiohttp import web

from core.services import voice
from webapp.headers import app_csp
from webapp.i18n import app_texts, render_page, request_language
from webapp.keys import CONTEXT

POLICY_FILE = Path(__file__).resolve().parent.parent / "policy" / "privacy-policy.txt"
SECTION = re.compile(r"^(\d+)\.\s+(.+)$")


@cache
def policy_sections() -> list[tuple[str, list[str]]]:
    """The policy text as (heading, paragraphs) pairs; numbered lines are headings."""
    sections: list[tuple[str, list[str]]] = [("", [])]
    for line in POLICY_FILE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        if SECTION.match(line):
            sections.append((line, []))
        else:
            sections[-1][1].append(line)
    return [s for s in sections if s[0] or s[1]]


async def show_home(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    username = await ctx.resolved_bot_username()
    bot_link = f"https://t.me/{username}" if username else None
    return render_page(request, "home.html", {"bot_link": bot_link})


async def show_privacy(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    return render_page(
        request,
        "privacy.html",
        {
            "sections": policy_sections(),
            "policy_date": ctx.policy_date,
            "policy_version": ctx.policy_version,
        },
    )


async def redirect_privacy(request: web.Request) -> web.Response:
    raise web.HTTPPermanentRedirect("/privacy/")


async def show_mini_app(request: web.Request) -> web.Response:
    """The app, for the Telegram Mini App and a normal browser: inside Telegram it signs in with
    the launch data in the URL fragment, elsewhere with email or Google and Yandex. Its scripts
    get their texts, in the page's language, from a JSON block."""
    ctx = request.app[CONTEXT]
    language = request_language(request)
    config = {
        "lang": language,
        "strings": app_texts(language),
        "oauth": sorted(ctx.oauth.providers) if ctx.oauth is not None else [],
        # Sign-up sends a confirmation mail unless the operator turned confirmation off.
        "email_signup": ctx.mailer is not None or not ctx.email_confirmation,
        # Sign-in links go out by mail.
        "email_link": ctx.mailer is not None,
        # Documents for chats: offered when uploads are stored and indexed here.
        "upload_limit_mb": (
            ctx.file_limits.max_bytes // (1024 * 1024)
            if ctx.media_store is not None and ctx.jobs is not None
            else None
        ),
        # The chat's microphone: recordings are transcribed here (None: not offered).
        "voice_limit_mb": (
            voice.MAX_AUDIO_BYTES // (1024 * 1024)
            if ctx.transcription is not None and ctx.providers is not None
            else None
        ),
        # Pictures are drawn here: the gallery's Create panel and image mode in the chat.
        "images": bool(ctx.image_models and ctx.providers and ctx.media_store),
        # The "Read replies aloud" setting (the bot's voice replies).
        "read_aloud": ctx.read_aloud_offered,
        # The page names no other site; the script makes the link to the bot.
        "bot_username": await ctx.resolved_bot_username(),
    }
    response = render_page(request, "app.html", {"config": config})
    # Telegram's web clients open it in a frame; no other site may frame it or run scripts in it.
    response.headers["Content-Security-Policy"] = app_csp(ctx.app_framers)
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def setup(app: web.Application) -> None:
    app.router.add_get("/", show_home, name="home")
    app.router.add_get("/app", show_mini_app, name="mini_app")
    app.router.add_get("/privacy/", show_privacy, name="privacy")
    app.router.add_get("/privacy", redirect_privacy)
