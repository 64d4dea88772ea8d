"""Shared pieces of the sign-in tests: the web app wired to the sandbox's SMTP sink and OAuth
providers over real HTTP, a client address of its own per test (through the trusted proxy
header, so per-address limits of one test never touch another), and cookie handling.

Session cookies are ``__Host-`` cookies and so Secure: over the tests' plain http a cookie jar
would drop them. The tests read ``Set-Cookie`` headers and send ``Cookie`` themselves.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import timedelta
from http.cookies import Morsel, SimpleCookie
from ipaddress import ip_network
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from core.mail import SmtpMailer
from core.oauth import OAuthClient, OAuthProvider
from core.security.initdata import InitDataVerifier
from core.services.auth import LoginLimits
from db.engine import UnitOfWorkFactory
from sandbox.app import SandboxServer
from sandbox.mail import MAILBOX
from sandbox.telegram.initdata import sign_init_data
from tests.webapp.conftest import ClientMaker, make_context
from webapp.app import create_app
from webapp.cookies import CSRF_COOKIE, CSRF_HEADER, REFRESH_COOKIE

Client = TestClient[web.Request, web.Application]
SECRET = "auth-tests-signing-secret-of-40-bytes!!!"
BOT_TOKEN = "7000000009:" + "Q" * 35
PUBLIC_URL = "http://netroom.test"
LINK = re.compile(r"/app#confirm=(\S+)")
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"


def new_email() -> str:
    return f"User.{secrets.token_hex(5)}@Example.test"


def new_ip() -> str:
    return f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"


def set_cookies(response: Any) -> dict[str, Morsel[str]]:
    """The cookies a response sets, with their attributes."""
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.getall("Set-Cookie", []):
        jar.load(header)
    return dict(jar)


@dataclass
class Kit:
    client: Client
    sandbox: SandboxServer
    http: httpx.AsyncClient
    factory: UnitOfWorkFactory
    ip: str = field(default_factory=new_ip)

    def headers(self, extra: dict[str, str] | None = None, **kw: str) -> dict[str, str]:
        return {"X-Forwarded-For": self.ip, "User-Agent": BROWSER, **(extra or {}), **kw}

    async def post(
        self, path: str, body: Any = None, *, headers: dict[str, str] | None = None
    ) -> Any:
        kwargs: dict[str, Any] = {"headers": self.headers(headers)}
        if body is not None:
            kwargs["json"] = body
        return await self.client.post(path, **kwargs)

    async def get(self, path: str, *, headers: dict[str, str] | None = None) -> Any:
        return await self.client.get(path, headers=self.headers(headers), allow_redirects=False)

    async def me(self, access_token: str) -> int:
        response = await self.get("/api/me", headers={"Authorization": f"Bearer {access_token}"})
        return int(response.status)

    # --- mail ---------------------------------------------------------------------------------

    async def mails(self, to: str) -> list[dict[str, Any]]:
        response = await self.http.get(f"{self.sandbox.url}/sandbox/api/mail", params={"to": to})
        assert response.status_code == 200
        return list(response.json()["mails"])

    async def confirmation_token(self, to: str) -> str:
        mails = await self.mails(to)
        assert mails, f"no mail to {to}"
        found = LINK.search(mails[-1]["text"])
        assert found, mails[-1]["text"]
        return unquote(found.group(1))

    # --- accounts -----------------------------------------------------------------------------

    async def register(self, email: str, password: str, **extra: Any) -> Any:
        return await self.post(
            "/api/auth/register",
            {"email": email, "password": password, "accept_policy": True, **extra},
        )

    async def signed_up(self, email: str, password: str = "correct horse battery") -> None:
        """Registered and confirmed through the emailed link."""
        assert (await self.register(email, password)).status == 202
        token = await self.confirmation_token(email)
        assert (await self.post("/api/auth/confirm", {"token": token})).status == 200

    async def sign_in(self, email: str, password: str, **extra: Any) -> Any:
        return await self.post("/api/auth/sign-in", {"email": email, "password": password, **extra})

    async def telegram(self, tg_id: int) -> dict[str, Any]:
        """A Mini App sign-in of a registered Telegram user."""
        init = sign_init_data(
            BOT_TOKEN,
            user={"id": tg_id, "first_name": "Mina", "language_code": "en"},
            auth_date=int(time.time()),
        )
        response = await self.post("/api/auth/telegram", headers={"Authorization": f"tma {init}"})
        assert response.status == 200, await response.text()
        return dict(await response.json())

    # --- OAuth --------------------------------------------------------------------------------

    async def control(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.http.post(f"{self.sandbox.url}/sandbox/api/oauth{path}", json=body)
        assert response.status_code < 300, response.text
        return dict(response.json())

    async def callback(self, redirect_url: str, nonce: str | None) -> Any:
        parts = urlsplit(redirect_url)
        assert f"{parts.scheme}://{parts.netloc}" == PUBLIC_URL, redirect_url
        cookie = {"Cookie": f"__Host-netroom_oauth={nonce}"} if nonce else {}
        return await self.get(f"{parts.path}?{parts.query}", headers=cookie)


def cookie_headers(refresh: str, csrf: str | None, header: str | None) -> dict[str, str]:
    cookie = f"{REFRESH_COOKIE}={refresh}"
    if csrf is not None:
        cookie += f"; {CSRF_COOKIE}={csrf}"
    headers = {"Cookie": cookie}
    if header is not None:
        headers[CSRF_HEADER] = header
    return headers


async def make_kit(
    aiohttp_client: ClientMaker,
    engine: AsyncEngine,
    redis: Redis,
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
    **overrides: Any,
) -> Kit:
    box = sandbox.app[MAILBOX]
    values: dict[str, Any] = {
        "jwt_secret": SECRET,
        "public_url": PUBLIC_URL,
        "init_data": InitDataVerifier(BOT_TOKEN, timedelta(hours=1)),
        "trusted_proxy_header": "X-Forwarded-For",
        "trusted_proxies": (ip_network("127.0.0.1/32"), ip_network("::1/128")),
        "mailer": SmtpMailer(
            host=box.host, port=box.port, sender="NetRoom <noreply@netroom.test>", starttls=False
        ),
        "login_limits": LoginLimits(per_account=5, per_ip=20, window=timedelta(minutes=15)),
    }
    values.update(overrides)
    client = await aiohttp_client(create_app(make_context(engine, redis, **values)))
    return Kit(client, sandbox, http, UnitOfWorkFactory.for_engine(engine))


async def oauth_clients(sandbox: SandboxServer, http: httpx.AsyncClient) -> OAuthClient:
    """Google and Yandex clients registered with the sandbox's providers."""
    providers: dict[str, OAuthProvider] = {}
    for name, info in (("google", "userinfo"), ("yandex", "info")):
        response = await http.post(
            f"{sandbox.url}/sandbox/api/oauth/clients",
            json={
                "provider": name,
                "redirect_uris": [f"{PUBLIC_URL}/api/auth/{name}/callback"],
            },
        )
        client = response.json()["client"]
        providers[name] = OAuthProvider(
            name=name,  # type: ignore[arg-type]
            client_id=client["client_id"],
            client_secret=client["client_secret"],
            auth_url=f"{sandbox.url}/oauth/{name}/authorize",
            token_url=f"{sandbox.url}/oauth/{name}/token",
            userinfo_url=f"{sandbox.url}/oauth/{name}/{info}",
        )
    return OAuthClient(http, providers)
