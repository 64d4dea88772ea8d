"""What the OAuth fakes remember: registered clients, provider accounts, codes and tokens."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

PROVIDERS = ("google", "yandex")
CODE_TTL = 600.0
TOKEN_TTL = {"google": 3599, "yandex": 31_536_000}


@dataclass
class Client:
    provider: str
    client_id: str
    client_secret: str
    redirect_uris: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "redirect_uris": self.redirect_uris,
        }


@dataclass
class Account:
    provider: str
    # Google `sub` or Yandex `id`.
    subject: str
    email: str
    email_verified: bool = True
    name: str | None = None

    @property
    def login(self) -> str:
        return self.email.split("@")[0]

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "subject": self.subject,
            "email": self.email,
            "email_verified": self.email_verified,
            "name": self.name,
        }


@dataclass
class Grant:
    code: str
    provider: str
    client_id: str
    redirect_uri: str
    account: Account
    scope: str
    challenge: str | None
    method: str | None
    expires_at: float
    used: bool = False
    tokens: list[str] = field(default_factory=list)


@dataclass
class Token:
    value: str
    provider: str
    client_id: str
    account: Account
    scope: str
    expires_at: float
    revoked: bool = False

    @property
    def live(self) -> bool:
        return not self.revoked and time.time() < self.expires_at


@dataclass
class OAuthState:
    clients: dict[tuple[str, str], Client] = field(default_factory=dict)
    accounts: dict[tuple[str, str], Account] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    tokens: dict[str, Token] = field(default_factory=dict)

    def new_subject(self, provider: str) -> str:
        while True:
            if provider == "google":
                subject = str(secrets.randbelow(9 * 10**20) + 10**20)
            else:
                subject = str(secrets.randbelow(9 * 10**8) + 10**8)
            if (provider, subject) not in self.accounts:
                return subject

    def add_account(
        self,
        provider: str,
        email: str,
        *,
        email_verified: bool = True,
        name: str | None = None,
        subject: str | None = None,
    ) -> Account:
        account = Account(
            provider=provider,
            subject=subject or self.new_subject(provider),
            email=email,
            email_verified=email_verified,
            name=name,
        )
        self.accounts[(provider, account.subject)] = account
        return account

    def issue_code(
        self,
        client: Client,
        redirect_uri: str,
        account: Account,
        scope: str,
        challenge: str | None,
        method: str | None,
    ) -> Grant:
        grant = Grant(
            code=secrets.token_urlsafe(24),
            provider=client.provider,
            client_id=client.client_id,
            redirect_uri=redirect_uri,
            account=account,
            scope=scope,
            challenge=challenge,
            method=method,
            expires_at=time.time() + CODE_TTL,
        )
        self.grants[grant.code] = grant
        return grant

    def issue_token(self, grant: Grant) -> Token:
        token = Token(
            value=("ya29." if grant.provider == "google" else "y0_") + secrets.token_urlsafe(32),
            provider=grant.provider,
            client_id=grant.client_id,
            account=grant.account,
            scope=grant.scope,
            expires_at=time.time() + TOKEN_TTL[grant.provider],
        )
        self.tokens[token.value] = token
        grant.tokens.append(token.value)
        return token


OAUTH = web.AppKey("oauth", OAuthState)
