"""Signing in with Google and Yandex: OAuth 2.0 authorization code with PKCE (S256), over the
shared httpx client.

The user's key is Google's ``sub`` or Yandex's ``id``, never the email (which may change hands).
Google's profile comes from its userinfo endpoint with the access token just obtained over TLS
from the token endpoint, so it needs no signature check of its own. Yandex has no
``email_verified``: its ``default_email`` is the account's own mailbox and is taken as verified.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode

import httpx

from core.config import OAuthSettings
from core.errors import DomainError, InvalidInput
from core.i18n import N_

log = logging.getLogger(__name__)
ProviderName = Literal["google", "yandex"]
PROVIDERS: tuple[ProviderName, ...] = ("google", "yandex")
SCOPES: dict[ProviderName, str] = {
    "google": "openid email profile",
    "yandex": "login:info login:email",
}
TIMEOUT = httpx.Timeout(15.0, connect=10.0)


class OAuthUnavailable(DomainError):
    code = "oauth_unavailable"
    msgid = N_("Signing in with this provider is not possible right now. Please try again later.")


class OAuthRejected(InvalidInput):
    """The provider refused the code (used, expired, or not ours) or the user said no."""

    code = "oauth_rejected"
    msgid = N_("Signing in was not completed. Please start again.")


@dataclass(frozen=True, slots=True)
class OAuthProvider:
    name: ProviderName
    client_id: str
    client_secret: str = field(repr=False)
    auth_url: str
    token_url: str
    userinfo_url: str

    @property
    def scope(self) -> str:
        return SCOPES[self.name]


@dataclass(frozen=True, slots=True)
class OAuthProfile:
    provider: ProviderName
    subject: str
    email: str | None
    email_verified: bool
    name: str | None


def new_verifier() -> str:
    """A PKCE code verifier: 86 characters of the unreserved set (RFC 7636: 43 to 128)."""
    return secrets.token_urlsafe(64)


def challenge_of(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class OAuthClient:
    http: httpx.AsyncClient
    providers: Mapping[str, OAuthProvider]

    def provider(self, name: str) -> OAuthProvider:
        found = self.providers.get(name)
        if found is None:
            raise OAuthUnavailable(f"{name} sign-in is not configured")
        return found

    def authorize_url(self, name: str, *, redirect_uri: str, state: str, verifier: str) -> str:
        p = self.provider(name)
        query = {
            "response_type": "code",
            "client_id": p.client_id,
            "redirect_uri": redirect_uri,
            "scope": p.scope,
            "state": state,
            "code_challenge": challenge_of(verifier),
            "code_challenge_method": "S256",
        }
        if p.name == "google":
            query["prompt"] = "select_account"
        separator = "&" if "?" in p.auth_url else "?"
        return f"{p.auth_url}{separator}{urlencode(query)}"

    async def exchange(self, name: str, *, code: str, redirect_uri: str, verifier: str) -> str:
        """The access token for an authorization code."""
        p = self.provider(name)
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": p.client_id,
            "client_secret": p.client_secret,
            "code_verifier": verifier,
        }
        body = await self._call("POST", p, p.token_url, data=data)
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise OAuthUnavailable(f"{name}: no access_token in the token answer")
        return token

    async def profile(self, name: str, access_token: str) -> OAuthProfile:
        p = self.provider(name)
        if p.name == "google":
            body = await self._call(
                "GET", p, p.userinfo_url, headers={"Authorization": f"Bearer {access_token}"}
            )
            return _google_profile(body)
        body = await self._call(
            "GET",
            p,
            p.userinfo_url,
            params={"format": "json"},
            headers={"Authorization": f"OAuth {access_token}"},
        )
        return _yandex_profile(body)

    async def _call(self, method: str, p: OAuthProvider, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self.http.request(
                method, url, timeout=TIMEOUT, headers=kwargs.pop("headers", None), **kwargs
            )
        except httpx.HTTPError as exc:
            raise OAuthUnavailable(f"{p.name}: {type(exc).__name__}") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise OAuthUnavailable(f"{p.name}: {response.status_code}, not a JSON object")
        if response.status_code == 400 and body.get("error") in (
            "invalid_grant",
            "invalid_request",
        ):
            # RFC 6749 5.2: the code was used, has expired, or the verifier does not match.
            raise OAuthRejected(f"{p.name}: {body.get('error')}")
        if response.status_code != 200:
            raise OAuthUnavailable(f"{p.name}: {response.status_code} {body.get('error')}")
        return body


def _google_profile(body: Mapping[str, Any]) -> OAuthProfile:
    sub = body.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 255:
        raise OAuthUnavailable("google: no sub in userinfo")
    email = body.get("email")
    verified = body.get("email_verified")
    return OAuthProfile(
        provider="google",
        subject=sub,
        email=email.lower() if isinstance(email, str) and email else None,
        email_verified=verified is True or verified == "true",
        name=_name(body.get("name")),
    )


def _yandex_profile(body: Mapping[str, Any]) -> OAuthProfile:
    ident = body.get("id")
    if not isinstance(ident, str | int) or not str(ident) or len(str(ident)) > 255:
        raise OAuthUnavailable("yandex: no id in info")
    email = body.get("default_email")
    email = email.lower() if isinstance(email, str) and email else None
    return OAuthProfile(
        provider="yandex",
        subject=str(ident),
        email=email,
        email_verified=email is not None,
        name=_name(body.get("real_name") or body.get("display_name")),
    )


def _name(value: object) -> str | None:
    return value[:256] if isinstance(value, str) and value.strip() else None


def oauth_client(settings: OAuthSettings, http: httpx.AsyncClient) -> OAuthClient | None:
    """The providers with a client id and secret (None: none is)."""
    found: dict[str, OAuthProvider] = {}
    for name in PROVIDERS:
        p = settings.google if name == "google" else settings.yandex
        if p.client_id and p.client_secret:
            found[name] = OAuthProvider(
                name=name,
                client_id=p.client_id,
                client_secret=p.client_secret.get_secret_value(),
                auth_url=p.auth_url,
                token_url=p.token_url,
                userinfo_url=p.userinfo_url,
            )
    return OAuthClient(http, found) if found else None
