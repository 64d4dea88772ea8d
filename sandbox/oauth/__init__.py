"""Local Google and Yandex OAuth 2.0 providers (authorization code with PKCE), over real HTTP.

Google: ``/oauth/google/authorize`` (a consent page), ``/oauth/google/token``,
``/oauth/google/userinfo`` (``Authorization: Bearer``). Yandex: ``/oauth/yandex/authorize``,
``/oauth/yandex/token``, ``/oauth/yandex/info`` (``Authorization: OAuth``). Point a client at
them with ``<sandbox>/oauth/<provider>/...`` as its endpoints; register it first through the
control API under ``/sandbox/api/oauth`` (see ``sandbox.oauth.control``).
"""

from __future__ import annotations

from aiohttp import web

from sandbox.oauth.control import setup_control
from sandbox.oauth.provider import setup_endpoints
from sandbox.oauth.state import OAUTH, Account, Client, OAuthState

__all__ = ["OAUTH", "Account", "Client", "OAuthState", "setup_oauth"]


def setup_oauth(app: web.Application) -> OAuthState:
    state = OAuthState()
    app[OAUTH] = state
    setup_endpoints(app)
    setup_control(app)
    return state
