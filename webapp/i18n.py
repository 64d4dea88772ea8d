from __future__ import annotations

import gettext
from functools import cache
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from core.i18n import DOMAIN, LANGUAGES, LOCALES_DIR


@cache
def translations(language: str) -> gettext.NullTranslations:
    return gettext.translation(DOMAIN, LOCALES_DIR, languages=[language], fallback=True)


def render_page(request: web.Request, template: str, context: dict[str, Any]) -> web.Response:
    """A page in the request's language; templates translate with ``_()``. A language picked
    with ``?lang=`` is remembered in a cookie."""
    language = request_language(request)
    page = {"lang": language, "_": translations(language).gettext, **context}
    response = aiohttp_jinja2.render_template(template, request, page)
    if request.query.get("lang") == language:
        response.set_cookie("lang", language, max_age=365 * 86400, samesite="Lax", httponly=True)
    return response


def request_language(request: web.Request) -> str:
    """The language asked for by ?lang=, the `lang` cookie, or the browser."""
    asked = request.query.get("lang") or request.cookies.get("lang")
    if asked in LANGUAGES:
        return asked
    header = request.headers.get("Accept-Language", "")
    for part in header.split(","):
        code = part.split(";")[0].strip().split("-")[0].lower()
        if code in LANGUAGES:
            return code
    return "en"
