"""The sandbox's Google and Yandex OAuth answer as the real ones do (RFC 6749 and 7636): the
consent page, single-use codes bound to client, redirect URI and PKCE verifier, user info in
each provider's shape; and its SMTP sink keeps what it receives, over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import AsyncIterator
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiosmtplib
import httpx
import pytest

from sandbox.app import SandboxServer, start_sandbox
from sandbox.mail import MAILBOX

REDIRECT = "https://app.example/oauth/callback"


@pytest.fixture(scope="module")
async def sandbox() -> AsyncIterator[SandboxServer]:
    server = await start_sandbox()
    yield server
    await server.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class Provider:
    def __init__(self, sandbox: SandboxServer, http: httpx.AsyncClient, name: str) -> None:
        self.base, self.http, self.name = sandbox.url, http, name
        self.client: dict[str, Any] = {}

    async def control(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return await self.http.post(f"{self.base}/sandbox/api/oauth{path}", json=body)

    async def setup(self) -> Provider:
        response = await self.control(
            "/clients", {"provider": self.name, "redirect_uris": [REDIRECT]}
        )
        assert response.status_code == 201
        self.client = response.json()["client"]
        return self

    async def account(self, email: str = "ada@example.test") -> dict[str, Any]:
        response = await self.control(
            "/accounts", {"provider": self.name, "email": email, "name": "Ada Lovelace"}
        )
        return dict(response.json()["account"])

    def authorize_url(self, verifier: str | None, **extra: str) -> str:
        query = {
            "response_type": "code",
            "client_id": self.client["client_id"],
            "redirect_uri": REDIRECT,
            "scope": "openid email profile" if self.name == "google" else "login:info login:email",
            "state": "st-123",
        }
        if verifier is not None:
            query |= {"code_challenge": _challenge(verifier), "code_challenge_method": "S256"}
        query |= extra
        return f"{self.base}/oauth/{self.name}/authorize?{urlencode(query)}"

    async def code(self, verifier: str | None, subject: str) -> str:
        response = await self.control(
            "/approve", {"authorize_url": self.authorize_url(verifier), "subject": subject}
        )
        assert response.status_code == 200, response.text
        return str(response.json()["code"])

    async def token(self, code: str, verifier: str | None, **override: str) -> httpx.Response:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": self.client["client_id"],
            "client_secret": self.client["client_secret"],
        }
        if verifier is not None:
            form["code_verifier"] = verifier
        form |= override
        return await self.http.post(f"{self.base}/oauth/{self.name}/token", data=form)

    async def info(self, access_token: str, scheme: str | None = None) -> httpx.Response:
        if self.name == "google":
            return await self.http.get(
                f"{self.base}/oauth/google/userinfo",
                headers={"Authorization": f"{scheme or 'Bearer'} {access_token}"},
            )
        return await self.http.get(
            f"{self.base}/oauth/yandex/info",
            params={"format": "json"},
            headers={"Authorization": f"{scheme or 'OAuth'} {access_token}"},
        )


@pytest.fixture(params=["google", "yandex"])
async def provider(
    request: pytest.FixtureRequest, sandbox: SandboxServer, http: httpx.AsyncClient
) -> Provider:
    return await Provider(sandbox, http, request.param).setup()


def _verifier() -> str:
    return secrets.token_urlsafe(48)


async def test_a_code_with_its_verifier_gives_a_token_and_the_user_info(provider: Provider) -> None:
    account = await provider.account()
    verifier = _verifier()
    response = await provider.token(await provider.code(verifier, account["subject"]), verifier)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["token_type"].lower() == "bearer" and body["expires_in"] > 0
    info = await provider.info(body["access_token"])
    assert info.status_code == 200
    data = info.json()
    if provider.name == "google":
        assert (data["sub"], data["email"], data["email_verified"], data["name"]) == (
            account["subject"],
            "ada@example.test",
            True,
            "Ada Lovelace",
        )
    else:
        assert (data["id"], data["default_email"], data["real_name"]) == (
            account["subject"],
            "ada@example.test",
            "Ada Lovelace",
        )
        assert "email_verified" not in data


async def test_a_code_works_once_and_its_reuse_revokes_the_token(provider: Provider) -> None:
    account = await provider.account()
    verifier = _verifier()
    code = await provider.code(verifier, account["subject"])
    first = await provider.token(code, verifier)
    assert first.status_code == 200
    again = await provider.token(code, verifier)
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")
    assert (await provider.info(first.json()["access_token"])).status_code == 401


async def test_pkce_is_enforced(provider: Provider) -> None:
    account = await provider.account()
    verifier = _verifier()
    for wrong in (None, _verifier(), "short"):
        code = await provider.code(verifier, account["subject"])
        response = await provider.token(code, wrong)
        assert (response.status_code, response.json()["error"]) == (400, "invalid_grant"), wrong


async def test_client_and_redirect_uri_must_match(provider: Provider) -> None:
    account = await provider.account()
    verifier = _verifier()
    code = await provider.code(verifier, account["subject"])
    bad_secret = await provider.token(code, verifier, client_secret="nope")
    assert (bad_secret.status_code, bad_secret.json()["error"]) == (401, "invalid_client")
    bad_redirect = await provider.token(code, verifier, redirect_uri="https://evil.example/cb")
    assert (bad_redirect.status_code, bad_redirect.json()["error"]) == (400, "invalid_grant")
    grant = await provider.token(code, verifier, grant_type="password")
    assert (grant.status_code, grant.json()["error"]) == (400, "unsupported_grant_type")
    missing = await provider.token("", verifier)
    assert (missing.status_code, missing.json()["error"]) == (400, "invalid_request")


async def test_the_consent_page_approves_with_a_redirect_carrying_code_and_state(
    provider: Provider,
) -> None:
    account = await provider.account("page@example.test")
    url = provider.authorize_url(_verifier())
    page = await provider.http.get(url)
    assert page.status_code == 200 and "page@example.test" in page.text
    form = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    decided = await provider.http.post(
        f"{provider.base}/oauth/{provider.name}/authorize",
        data=form | {"decision": "approve", "account": account["subject"]},
    )
    assert decided.status_code == 302
    location = urlsplit(decided.headers["Location"])
    query = parse_qs(location.query)
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    assert query["state"] == ["st-123"] and query["code"][0]
    denied = await provider.http.post(
        f"{provider.base}/oauth/{provider.name}/authorize", data=form | {"decision": "deny"}
    )
    assert parse_qs(urlsplit(denied.headers["Location"]).query)["error"] == ["access_denied"]


async def test_bad_clients_and_redirect_uris_are_shown_never_redirected(
    provider: Provider,
) -> None:
    for extra in ({"client_id": "unknown"}, {"redirect_uri": "https://evil.example/cb"}):
        page = await provider.http.get(provider.authorize_url(_verifier(), **extra))
        assert page.status_code == 400 and "Location" not in page.headers
    unsupported = await provider.http.get(provider.authorize_url(None, response_type="token"))
    assert unsupported.status_code == 302
    assert "error=unsupported_response_type" in unsupported.headers["Location"]


async def test_user_info_needs_the_providers_own_scheme_and_a_live_token(
    provider: Provider,
) -> None:
    account = await provider.account()
    verifier = _verifier()
    token = (
        await provider.token(await provider.code(verifier, account["subject"]), verifier)
    ).json()
    other = "OAuth" if provider.name == "google" else "Bearer"
    assert (await provider.info(token["access_token"], scheme=other)).status_code == 401
    assert (await provider.info("made-up-token")).status_code == 401


async def test_the_smtp_sink_keeps_mail_readable_over_http(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    server = (await http.get(f"{sandbox.url}/sandbox/api/mail/server")).json()
    assert server["port"] == sandbox.app[MAILBOX].port > 0
    to = f"{secrets.token_hex(4)}@example.test"
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@netroom.test", to, "Привет"
    message.set_content("Open https://netroom.test/app#confirm=abc")
    await aiosmtplib.send(
        message,
        hostname=server["host"],
        port=server["port"],
        username="any",
        password="any",
        start_tls=False,
    )
    mails = (await http.get(f"{sandbox.url}/sandbox/api/mail", params={"to": to})).json()["mails"]
    assert [(m["to"], m["subject"]) for m in mails] == [([to], "Привет")]
    assert "#confirm=abc" in mails[0]["text"]
    others = (await http.get(f"{sandbox.url}/sandbox/api/mail", params={"to": "x@y.z"})).json()
    assert others["mails"] == []
