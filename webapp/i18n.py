from __future__ import annotations

import gettext
from functools import cache

import jinja2
from aiohttp import web

from core.i18n import DOMAIN, LANGUAGES, LOCALES_DIR


@cache
def translations(language: str) -> gettext.NullTranslations:
    return gettext.translation(DOMAIN, LOCALES_DIR, languages=[language], fallback=True)


def install_i18n(env: jinja2.Environment) -> None:
    env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=lambda s: translations("en").gettext(s),
        ngettext=lambda s, p, n: translations("en").ngettext(s, p, n),
        newstyle=True,
    )


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
