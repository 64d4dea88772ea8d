from __future__ import annotations

import logging
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from webapp import contract, headers, observe
from webapp.errors import error_middleware, request_log_middleware
from webapp.i18n import translations
from webapp.keys import CONTEXT, WebContext
from webapp.routes import (
    account_api,
    api,
    auth,
    chat_api,
    conversations_api,
    gallery_api,
    health,
    linking,
    media,
    pages,
    pay_result,
    payments,
    privacy,
    sharing,
    voice,
)

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent


def create_app(context: WebContext) -> web.Application:
    app = web.Application(middlewares=[request_log_middleware, error_middleware])
    app[CONTEXT] = context
    observe.setup(app)
    headers.setup(app)
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
    )
    env.globals["_"] = translations("en").gettext
    app.router.add_static("/static/", HERE / "static", name="static")
    health.setup(app)
    pages.setup(app)
    api.setup(app)
    auth.setup(app)
    linking.setup(app)
    media.setup(app)
    payments.setup(app)
    pay_result.setup(app)
    privacy.setup(app)
    account_api.setup(app)
    gallery_api.setup(app)
    chat_api.setup(app)
    conversations_api.setup(app)
    contract.setup(app)
    sharing.setup(app)
    voice.setup(app)
    contract.check_contracts(app)
    return app
