"""Signing in on the web: email and password (with address confirmation), Google and Yandex.

An emailed sign-in link (15 minutes, once) lets the owner of a confirmed address in whatever
the password attempts on the account: nobody can lock the owner out. Only confirmed addresses
get one, so a stranger who registered someone's address first gains nothing from its owner
signing in by link.

Failed password attempts are counted in Redis per account and client address together, per
address, and per account (see ``LoginGuard``): too many lock further attempts from that address
for a while (429 with Retry-After), and failures on an account from everywhere only slow down the
addresses that fail, so nobody can lock the owner out. Unknown addresses and wrong passwords
get the same answer in about the same time, and an account's state (unconfirmed, blocked) is told
only to someone who knows its password.

An account found through Google or Yandex is keyed by that provider's user id; an email address
never attaches one sign-in method to another account. Linking happens only in a flow a signed-in
user started themselves. A new account is created only for someone who accepted the policy
before being sent to the provider (``accept_policy=1`` on the start URL).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core.dto import ClientInfo
from core.errors import (
    ConsentRequired,
    DomainError,
    Forbidden,
    InvalidInput,
    NotFound,
    RateLimited,
    Unauthorized,
    UserBlocked,
)
from core.i18n import N_
from core.oauth import OAuthClient, OAuthProfile, new_verifier
from core.security import passwords
from core.security.tokens import SessionInvalid, issue_signed, read_signed
from core.services import accounts, sessions
from core.services.accounts import IdentityTaken, NewIdentity
from core.services.sessions import IssuedSession
from db.models import Identity, User
from db.uow import UnitOfWork

EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s.]+$")
CONFIRMATION = "email-confirmation"
SIGN_IN_LINK = "email-sign-in"
SIGN_IN_LINK_TTL = timedelta(minutes=15)
OAUTH_STATE_TTL = 600
KEY = "netroom:auth"


# --- errors ------------------------------------------------------------------------------------


class ConsentMissing(ConsentRequired):
    """Signing up without ticking "I accept the privacy policy": the request is incomplete."""

    code = "consent_required"


class EmailSignUpUnavailable(NotFound):
    code = "email_sign_up_unavailable"
    msgid = N_("Signing up with email is not available here.")


class BadCredentials(Unauthorized):
    code = "bad_credentials"
    msgid = N_("Wrong email or password.")


class TooManyAttempts(RateLimited):
    code = "too_many_attempts"
    msgid = N_("Too many failed sign-in attempts. Please wait a few minutes and try again.")

    def __init__(self, detail: str = "", *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = max(1, retry_after)


class EmailNotConfirmed(Forbidden):
    code = "email_not_confirmed"
    msgid = N_(
        "Please confirm your email first: open the link we sent you. "
        "You can ask for a new link on the sign-in page."
    )


class EmailTaken(DomainError):
    code = "email_taken"
    msgid = N_("An account with this email already exists. Please sign in.")


class InvalidEmail(InvalidInput):
    code = "invalid_email"
    msgid = N_("Please enter a valid email address.")


class ConfirmationInvalid(InvalidInput):
    code = "confirmation_invalid"
    msgid = N_("This confirmation link is invalid or has expired. Please ask for a new one.")


class WrongPassword(Forbidden):
    code = "wrong_password"
    msgid = N_("The current password is wrong.")


class NoPassword(InvalidInput):
    code = "no_password"
    msgid = N_("This account signs in without a password.")


class SignInLinkInvalid(InvalidInput):
    code = "sign_in_link_invalid"
    msgid = N_(
        "This sign-in link is invalid, has expired or has already been used. "
        "Please ask for a new one."
    )


class OAuthStateInvalid(InvalidInput):
    code = "oauth_state_invalid"
    msgid = N_("This sign-in link is invalid or has already been used. Please start again.")


# --- attempt limits ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoginLimits:
    # Failures on one account from one address before that pair is locked for the window.
    per_account: int = 5
    # Failures from one address, on any accounts, before the address is locked.
    per_ip: int = 20
    window: timedelta = timedelta(minutes=15)
    # Failures on one account, from all addresses together, after which every address that
    # fails on it waits ``slow_delay`` before its next try. Never a lock: an address without
    # failures of its own (the owner's) signs in at once.
    slow_after: int = 10
    slow_delay: timedelta = timedelta(seconds=30)


@dataclass(frozen=True)
class LoginGuard:
    """Failed sign-in counters in Redis, keyed so that nobody can lock the owner out.

    A pair (account, address) with ``per_account`` failures within the window is locked for a
    full window from its last failure; an address with ``per_ip`` failures likewise. Failures on
    an account from all addresses only slow down the addresses that fail: an attacker spread
    over many addresses gets a few guesses per address and window, and the owner, from an
    address of their own, is not held back at all (and Google, Yandex and the Mini App do not
    pass here). A success clears the pair's counter. Unknown accounts are counted like known
    ones, so a lock tells nothing either."""

    redis: Redis
    limits: LoginLimits = LoginLimits()

    @staticmethod
    def _account(account: str) -> str:
        return hashlib.sha256(account.encode()).hexdigest()

    def _pair_key(self, account: str, ip: str | None) -> str:
        return f"{KEY}:fail:pair:{self._account(account)}:{ip or 'unknown'}"

    def _account_key(self, account: str) -> str:
        return f"{KEY}:fail:account:{self._account(account)}"

    def _wait_key(self, account: str, ip: str | None) -> str:
        return f"{KEY}:wait:{self._account(account)}:{ip or 'unknown'}"

    def _ip_key(self, ip: str | None) -> str:
        return f"{KEY}:fail:ip:{ip or 'unknown'}"

    async def check(self, account: str, ip: str | None) -> None:
        checks = (
            (self._pair_key(account, ip), self.limits.per_account),
            (self._ip_key(ip), self.limits.per_ip),
        )
        for key, limit in checks:
            count = await self.redis.get(key)
            if count is not None and int(count) >= limit:
                ttl = await self.redis.ttl(key)
                raise TooManyAttempts("locked", retry_after=ttl if ttl > 0 else 1)
        wait = await self.redis.pttl(self._wait_key(account, ip))
        if wait > 0:
            raise TooManyAttempts("slowed down", retry_after=-(-wait // 1000))

    async def _count(self, key: str, limit: int | None) -> int:
        window = int(self.limits.window.total_seconds())
        # SET NX starts the window; INCR counts (works on Redis 6.2, the embedded one).
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(key, 0, ex=window, nx=True)
            pipe.incr(key)
            _, count = await pipe.execute()
        if limit is not None and int(count) >= limit:
            # Locked for a whole window from the failure that reached the limit.
            await self.redis.expire(key, window)
        return int(count)

    async def failed(self, account: str, ip: str | None) -> None:
        await self._count(self._pair_key(account, ip), self.limits.per_account)
        await self._count(self._ip_key(ip), self.limits.per_ip)
        if await self._count(self._account_key(account), None) >= self.limits.slow_after:
            delay = max(1, int(self.limits.slow_delay.total_seconds() * 1000))
            await self.redis.set(self._wait_key(account, ip), 1, px=delay)

    async def succeeded(self, account: str, ip: str | None) -> None:
        await self.redis.delete(self._pair_key(account, ip), self._wait_key(account, ip))


async def within_rate(redis: Redis, name: str, *, limit: int, window: timedelta) -> None:
    """A plain fixed-window limit (mails sent per address): ``TooManyAttempts`` beyond it."""
    key = f"{KEY}:rate:{name}"
    async with redis.pipeline(transaction=True) as pipe:
        # SET NX starts the window; INCR counts (works on Redis 6.2, the embedded one).
        pipe.set(key, 0, ex=int(window.total_seconds()), nx=True)
        pipe.incr(key)
        pipe.ttl(key)
        _, count, ttl = await pipe.execute()
    if int(count) > limit:
        raise TooManyAttempts(f"{name} over {limit}", retry_after=int(ttl))


# --- email and password ------------------------------------------------------------------------


def normalize_email(email: str) -> str:
    value = email.strip().lower()
    if len(value) > 254 or not EMAIL_RE.match(value):
        raise InvalidEmail("malformed address")
    return value


def _fingerprint(password_hash: str | None) -> str:
    return hashlib.sha256((password_hash or "").encode()).hexdigest()[:16]


def confirmation_token(
    *,
    user_id: int,
    email: str,
    password_hash: str | None,
    secret: str,
    now: datetime,
    ttl: timedelta,
) -> str:
    """A link token proving the mailbox. It names the password set at registration, so a link
    mailed for an earlier (perhaps someone else's) registration of the address stops working."""
    return issue_signed(
        CONFIRMATION,
        {"sub": str(user_id), "email": email, "pwf": _fingerprint(password_hash)},
        secret=secret,
        now=now,
        ttl=ttl,
    )


class RegistrationOutcome(StrEnum):
    # A new account: a confirmation link is to be sent (unless confirmation is off).
    CREATED = "created"
    # Registered before, not confirmed yet: the new password replaces the old, a new link goes out.
    PENDING = "pending"
    # A confirmed account exists: its owner is told someone tried to sign up with the address.
    EXISTS = "exists"


@dataclass(frozen=True, slots=True)
class EmailRegistration:
    outcome: RegistrationOutcome
    user_id: int
    email: str
    language: str
    # The link token to mail, when one is to be mailed.
    confirmation_token: str | None


async def _email_identity(
    uow: UnitOfWork, email: str, *, for_update: bool = False
) -> tuple[Identity, User] | None:
    stmt = (
        select(Identity, User)
        .join(User, User.id == Identity.user_id)
        .where(Identity.provider == "email", Identity.subject == email)
    )
    if for_update:
        stmt = stmt.with_for_update(of=Identity)
    row = (await uow.session.execute(stmt)).first()
    return None if row is None else (row[0], row[1])


async def register_with_email(
    uow: UnitOfWork,
    *,
    email: str,
    password: str,
    accept_policy: bool,
    language: str,
    policy_version: str,
    client: ClientInfo,
    confirmation_required: bool,
    secret: str,
    now: datetime,
    confirmation_ttl: timedelta,
) -> EmailRegistration:
    """Sign up with email and password. Without confirmation, a taken address is refused
    (``EmailTaken``); with it, every outcome looks the same to the caller and differs only in
    what is mailed to the address."""
    address = normalize_email(email)
    passwords.check_rules(password)
    if not accept_policy:
        raise ConsentMissing("sign-up without accepting the policy")
    # Hashed before looking anything up: every outcome costs the same time.
    password_hash = await passwords.hash_password(password)

    def token(user_id: int, stored_hash: str | None) -> str:
        return confirmation_token(
            user_id=user_id,
            email=address,
            password_hash=stored_hash,
            secret=secret,
            now=now,
            ttl=confirmation_ttl,
        )

    found = await _email_identity(uow, address, for_update=True)
    if found is None:
        try:
            user = await accounts.register_web_user(
                uow,
                identity=NewIdentity(
                    provider="email",
                    subject=address,
                    email=address,
                    email_verified=False,
                    password_hash=password_hash,
                ),
                language=language,
                profile_name=None,
                policy_version=policy_version,
                client=client,
            )
        except IdentityTaken:
            # Someone registered the address a moment ago.
            found = await _email_identity(uow, address, for_update=True)
            if found is None:
                raise
        else:
            return EmailRegistration(
                RegistrationOutcome.CREATED,
                user.id,
                address,
                user.language,
                token(user.id, password_hash) if confirmation_required else None,
            )
    # Joins the transaction that locked the identity.
    async with uow.transaction():
        identity, user_row = found
        user_id, user_language = user_row.id, user_row.language
        if not confirmation_required:
            raise EmailTaken(f"user {user_id}")
        exists = identity.email_verified or user_row.is_blocked
        if not exists:
            identity.password_hash = password_hash
    if exists:
        return EmailRegistration(RegistrationOutcome.EXISTS, user_id, address, user_language, None)
    return EmailRegistration(
        RegistrationOutcome.PENDING,
        user_id,
        address,
        user_language,
        token(user_id, password_hash),
    )


class EmailAlreadySet(InvalidInput):
    code = "email_already_set"
    msgid = N_("This account already has an email address.")


async def add_email_password(
    uow: UnitOfWork,
    *,
    user_id: int,
    email: str,
    password: str,
    confirmation_required: bool,
    secret: str,
    now: datetime,
    confirmation_ttl: timedelta,
) -> EmailRegistration:
    """Give an account without an email address (one made in Telegram) email-and-password
    sign-in. The address is confirmed by the mailed link, as at sign-up; until then the password
    does not sign in. An address of another account is not attached: with confirmation on, the
    answer is the same as for a free one and only the address's owner is told (EXISTS); without
    it, ``EmailTaken``. Asking again before confirming replaces the pending address."""
    address = normalize_email(email)
    passwords.check_rules(password)
    password_hash = await passwords.hash_password(password)
    async with uow.transaction():
        user = await uow.users.get(user_id)
        if user is None:
            raise NotFound(f"user {user_id}")
        language = user.language
        own = await uow.session.scalar(
            select(Identity)
            .where(Identity.user_id == user_id, Identity.provider == "email")
            .with_for_update()
        )
        if own is not None and own.email_verified:
            raise EmailAlreadySet(f"user {user_id} has a confirmed address")
        found = await _email_identity(uow, address, for_update=True)
        if found is not None and found[1].id != user_id:
            if not confirmation_required:
                raise EmailTaken(f"address of user {found[1].id}")
            return EmailRegistration(
                RegistrationOutcome.EXISTS, found[1].id, address, found[1].language, None
            )
        outcome = RegistrationOutcome.CREATED if own is None else RegistrationOutcome.PENDING
        if own is None:
            try:
                async with uow.session.begin_nested():
                    uow.session.add(
                        Identity(
                            user_id=user_id,
                            provider="email",
                            subject=address,
                            email=address,
                            email_verified=not confirmation_required,
                            password_hash=password_hash,
                        )
                    )
                    await uow.session.flush()
            except IntegrityError as exc:
                raise IdentityTaken("email identity added meanwhile") from exc
        else:
            own.subject = address
            own.email = address
            own.password_hash = password_hash
    token = (
        confirmation_token(
            user_id=user_id,
            email=address,
            password_hash=password_hash,
            secret=secret,
            now=now,
            ttl=confirmation_ttl,
        )
        if confirmation_required
        else None
    )
    return EmailRegistration(outcome, user_id, address, language, token)


async def confirmation_to_resend(
    uow: UnitOfWork, *, email: str, secret: str, now: datetime, confirmation_ttl: timedelta
) -> EmailRegistration | None:
    """A fresh link for an address registered and not confirmed yet; None otherwise (the caller
    answers the same either way)."""
    address = normalize_email(email)
    async with uow.reading():
        found = await _email_identity(uow, address)
        if found is None or found[0].email_verified or found[1].is_blocked:
            return None
        identity, user = found
        user_id, language, stored = user.id, user.language, identity.password_hash
    return EmailRegistration(
        RegistrationOutcome.PENDING,
        user_id,
        address,
        language,
        confirmation_token(
            user_id=user_id,
            email=address,
            password_hash=stored,
            secret=secret,
            now=now,
            ttl=confirmation_ttl,
        ),
    )


async def confirm_email(uow: UnitOfWork, *, token: str, secret: str, now: datetime) -> int:
    """Mark the address confirmed; the account's id. Opening the link again changes nothing."""
    try:
        claims = read_signed(CONFIRMATION, token, secret=secret, now=now)
        user_id = int(claims["sub"])
        address = str(claims["email"])
        fingerprint = str(claims["pwf"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfirmationInvalid(type(exc).__name__) from exc
    async with uow.transaction():
        found = await _email_identity(uow, address, for_update=True)
        if (
            found is None
            or found[1].id != user_id
            or not hmac.compare_digest(_fingerprint(found[0].password_hash), fingerprint)
        ):
            raise ConfirmationInvalid(f"link for user {user_id} no longer matches")
        found[0].email_verified = True
    return user_id


@dataclass(frozen=True, slots=True)
class SignInLink:
    email: str
    language: str
    token: str


async def sign_in_link_to_send(
    uow: UnitOfWork, *, email: str, secret: str, now: datetime
) -> SignInLink | None:
    """A sign-in link for a confirmed address of an account that may sign in; None otherwise
    (the caller answers the same either way)."""
    address = normalize_email(email)
    async with uow.reading():
        found = await _email_identity(uow, address)
        if found is None or not found[0].email_verified or found[1].is_blocked:
            return None
        user_id, language = found[1].id, found[1].language
    token = issue_signed(
        SIGN_IN_LINK,
        {"sub": str(user_id), "email": address, "jti": secrets.token_urlsafe(16)},
        secret=secret,
        now=now,
        ttl=SIGN_IN_LINK_TTL,
    )
    return SignInLink(address, language, token)


async def sign_in_with_link(
    uow: UnitOfWork,
    redis: Redis,
    *,
    token: str,
    secret: str,
    accept_policy: bool,
    policy_version: str,
    client: ClientInfo,
    now: datetime,
    session_ttl: timedelta,
) -> IssuedSession:
    """A session for the owner of an emailed sign-in link. The link works once: it is checked
    in full before it is used up, so a wrong one spends nothing."""
    try:
        claims = read_signed(SIGN_IN_LINK, token, secret=secret, now=now)
        user_id = int(claims["sub"])
        address = str(claims["email"])
        link_id = str(claims["jti"])
    except (ValueError, KeyError, TypeError) as exc:
        raise SignInLinkInvalid(type(exc).__name__) from exc
    async with uow.transaction():
        found = await _email_identity(uow, address)
        if found is None or found[1].id != user_id or not found[0].email_verified:
            raise SignInLinkInvalid(f"link for user {user_id} no longer matches")
        user = found[1]
        if user.is_blocked or user.deleted_at is not None:
            raise UserBlocked(f"user {user_id} is blocked")
        if not accept_policy and await uow.users.latest_consent_version(user_id) != policy_version:
            # Asked before the link is used up: the same link works once the policy is accepted.
            raise ConsentRequired(f"user {user_id} has not accepted {policy_version}")
        used = f"{KEY}:link-used:{hashlib.sha256(link_id.encode()).hexdigest()}"
        ttl = max(1, int(SIGN_IN_LINK_TTL.total_seconds()))
        if not await redis.set(used, 1, ex=ttl, nx=True):
            raise SignInLinkInvalid(f"link for user {user_id} used before")
        await _accept_or_refuse(
            uow,
            user,
            accept_policy=accept_policy,
            policy_version=policy_version,
            platform=client.platform,
        )
        # Commits the consent with the new session.
        return await sessions.open_session(
            uow, user_id=user_id, client=client, now=now, ttl=session_ttl
        )


async def _accept_or_refuse(
    uow: UnitOfWork, user: User, *, accept_policy: bool, policy_version: str, platform: str
) -> None:
    if user.is_blocked or user.deleted_at is not None:
        raise UserBlocked(f"user {user.id} is blocked")
    if await uow.users.latest_consent_version(user.id) != policy_version:
        if not accept_policy:
            raise ConsentRequired(f"user {user.id} has not accepted {policy_version}")
        await accounts.accept_policy(uow, user.id, policy_version=policy_version, platform=platform)


async def sign_in_with_password(
    uow: UnitOfWork,
    guard: LoginGuard,
    *,
    email: str,
    password: str,
    accept_policy: bool,
    policy_version: str,
    client: ClientInfo,
    confirmation_required: bool,
    now: datetime,
    session_ttl: timedelta,
) -> IssuedSession:
    try:
        address = normalize_email(email)
    except InvalidEmail:
        # Not an address at all: answered like any wrong password.
        address = email.strip().lower()[:320]
    await guard.check(address, client.ip)
    # No transaction stays open while the hash is computed.
    async with uow.reading():
        found = await _email_identity(uow, address)
        stored = found[0].password_hash if found is not None else None
        identity_id = found[0].id if found is not None else None
        verified = found[0].email_verified if found is not None else False
        user_id = found[1].id if found is not None else None
    matches = await passwords.verify_password(password[:1024], stored)
    if user_id is None or identity_id is None or not matches:
        await guard.failed(address, client.ip)
        raise BadCredentials("unknown address or wrong password")
    await guard.succeeded(address, client.ip)
    if confirmation_required and not verified:
        raise EmailNotConfirmed(f"user {user_id}")
    rehashed = None
    if stored is not None and passwords.needs_rehash(stored):
        rehashed = await passwords.hash_password(password)
    user = await uow.users.get(user_id)
    if user is None:
        raise BadCredentials(f"user {user_id} vanished")
    await _accept_or_refuse(
        uow,
        user,
        accept_policy=accept_policy,
        policy_version=policy_version,
        platform=client.platform,
    )
    if rehashed is not None:
        identity_row = await uow.session.get(Identity, identity_id)
        if identity_row is not None:
            identity_row.password_hash = rehashed
    return await sessions.open_session(
        uow, user_id=user_id, client=client, now=now, ttl=session_ttl
    )


async def change_password(
    uow: UnitOfWork,
    guard: LoginGuard,
    *,
    user_id: int,
    session_id: str | None,
    current: str,
    new: str,
    ip: str | None,
    now: datetime,
) -> int:
    """Replace the password after checking the current one; every other session ends (the one
    making the change stays). How many sessions ended."""
    passwords.check_rules(new)
    account = f"user:{user_id}"
    await guard.check(account, ip)
    async with uow.reading():
        found = (
            await uow.session.execute(
                select(Identity.id, Identity.password_hash).where(
                    Identity.user_id == user_id, Identity.provider == "email"
                )
            )
        ).first()
    if found is None or found.password_hash is None:
        raise NoPassword(f"user {user_id} has no password")
    if not await passwords.verify_password(current[:1024], found.password_hash):
        await guard.failed(account, ip)
        raise WrongPassword(f"user {user_id}")
    await guard.succeeded(account, ip)
    new_hash = await passwords.hash_password(new)
    async with uow.transaction():
        row = await uow.session.get(Identity, found.id, with_for_update=True)
        if row is None or row.password_hash != found.password_hash:
            # Changed by another request meanwhile: the password checked is no longer current.
            raise WrongPassword(f"user {user_id}: password changed meanwhile")
        row.password_hash = new_hash
        ended = await sessions.end_all(uow, user_id, now, keep=session_id)
    return ended


@dataclass(frozen=True, slots=True)
class SignInMethods:
    """How an account signs in, for its owner: the email address, whether a password is set,
    which providers are linked and their verified addresses (policy 3.1). Never the provider
    ids, the password hash or anything of another account."""

    email: str | None
    password: bool
    google: bool
    yandex: bool
    telegram: bool
    google_email: str | None = None
    yandex_email: str | None = None


async def sign_in_methods(uow: UnitOfWork, user_id: int) -> SignInMethods:
    async with uow.reading():
        by_provider = {i.provider: i for i in await uow.users.identities(user_id)}
        email = by_provider.get("email")

        def verified(provider: str) -> str | None:
            found = by_provider.get(provider)
            return found.email if found is not None and found.email_verified else None

        methods = SignInMethods(
            email=email.subject if email is not None else None,
            password=email is not None and email.password_hash is not None,
            google="google" in by_provider,
            yandex="yandex" in by_provider,
            telegram="telegram" in by_provider,
            google_email=verified("google"),
            yandex_email=verified("yandex"),
        )
    return methods


# --- Google and Yandex -------------------------------------------------------------------------


class OAuthMode(StrEnum):
    SIGN_IN = "sign_in"
    LINK = "link"


@dataclass(frozen=True, slots=True)
class OAuthFlow:
    """What was started, kept in Redis for ten minutes under the ``state`` and used once."""

    provider: str
    verifier: str
    mode: OAuthMode
    accept_policy: bool
    # SHA-256 of the nonce in the browser's cookie: the flow finishes in the browser it began in.
    binding: str
    user_id: int | None = None
    session_id: str | None = None

    def dump(self) -> str:
        return json.dumps(
            {
                "provider": self.provider,
                "verifier": self.verifier,
                "mode": self.mode.value,
                "accept_policy": self.accept_policy,
                "binding": self.binding,
                "user_id": self.user_id,
                "session_id": self.session_id,
            }
        )

    @classmethod
    def load(cls, raw: str | bytes) -> OAuthFlow:
        data: dict[str, Any] = json.loads(raw)
        return cls(
            provider=str(data["provider"]),
            verifier=str(data["verifier"]),
            mode=OAuthMode(data["mode"]),
            accept_policy=bool(data["accept_policy"]),
            binding=str(data["binding"]),
            user_id=int(data["user_id"]) if data.get("user_id") is not None else None,
            session_id=str(data["session_id"]) if data.get("session_id") else None,
        )


@dataclass(frozen=True, slots=True)
class OAuthStart:
    authorize_url: str
    # Goes into the browser's cookie; only its hash is kept.
    nonce: str


def _state_key(state: str) -> str:
    return f"{KEY}:oauth:{hashlib.sha256(state.encode()).hexdigest()}"


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


async def begin_oauth(
    redis: Redis,
    client: OAuthClient,
    *,
    provider: str,
    redirect_uri: str,
    mode: OAuthMode,
    accept_policy: bool,
    user_id: int | None = None,
    session_id: str | None = None,
) -> OAuthStart:
    client.provider(provider)
    state = secrets.token_urlsafe(32)
    nonce = secrets.token_urlsafe(32)
    verifier = new_verifier()
    flow = OAuthFlow(
        provider=provider,
        verifier=verifier,
        mode=mode,
        accept_policy=accept_policy,
        binding=_hash(nonce),
        user_id=user_id,
        session_id=session_id,
    )
    await redis.set(_state_key(state), flow.dump(), ex=OAUTH_STATE_TTL)
    url = client.authorize_url(provider, redirect_uri=redirect_uri, state=state, verifier=verifier)
    return OAuthStart(url, nonce)


HANDOFF_TTL = 300


def _handoff_key(token: str) -> str:
    return f"{KEY}:oauth-handoff:{_hash(token)}"


async def begin_link_handoff(
    redis: Redis, client: OAuthClient, *, provider: str, user_id: int, session_id: str
) -> str:
    """A one-time token (five minutes) that starts linking ``provider`` to the user in another
    browser: inside Telegram the provider's page opens in the phone's browser, away from the
    Mini App, so the flow (and its binding cookie) has to begin there. Only the token's hash is
    kept; the session that asked must still be alive when the flow completes."""
    client.provider(provider)
    token = secrets.token_urlsafe(32)
    data = json.dumps({"provider": provider, "user_id": user_id, "session_id": session_id})
    await redis.set(_handoff_key(token), data, ex=HANDOFF_TTL)
    return token


async def take_link_handoff(redis: Redis, *, provider: str, token: str) -> tuple[int, str]:
    """The user and session a handoff token links for, removed as it is taken (used once)."""
    if not token or len(token) > 256:
        raise OAuthStateInvalid("no handoff token")
    raw = await redis.getdel(_handoff_key(token))
    if raw is None:
        raise OAuthStateInvalid("unknown, expired or used handoff")
    data = json.loads(raw)
    if data.get("provider") != provider:
        raise OAuthStateInvalid(f"handoff of {data.get('provider')}, started for {provider}")
    return int(data["user_id"]), str(data["session_id"])


async def take_oauth_flow(
    redis: Redis, *, provider: str, state: str | None, nonce: str | None
) -> OAuthFlow:
    """The flow a callback finishes, removed as it is taken: a state works once, and only in
    the browser that started it. The browser's cookie is checked before the state is used up,
    so a callback from elsewhere (a forged link, a leaked URL) cannot spend the owner's flow."""
    if not state or len(state) > 256:
        raise OAuthStateInvalid("no state")
    if not nonce or len(nonce) > 256:
        raise OAuthStateInvalid("no browser binding cookie")
    key = _state_key(state)
    raw = await redis.get(key)
    if raw is None:
        raise OAuthStateInvalid("unknown, expired or used state")
    flow = OAuthFlow.load(raw)
    if flow.provider != provider:
        raise OAuthStateInvalid(f"state of {flow.provider}, callback of {provider}")
    if not hmac.compare_digest(_hash(nonce), flow.binding):
        raise OAuthStateInvalid("flow started in another browser")
    if await redis.getdel(key) != raw:
        # Taken by a concurrent callback of the same browser.
        raise OAuthStateInvalid("state used meanwhile")
    return flow


@dataclass(frozen=True, slots=True)
class OAuthResult:
    user_id: int
    # A new session (signing in); None when an identity was linked to the signed-in user.
    session: IssuedSession | None
    created: bool = False


async def complete_oauth(
    uow: UnitOfWork,
    *,
    flow: OAuthFlow,
    profile: OAuthProfile,
    language: str,
    policy_version: str,
    client: ClientInfo,
    now: datetime,
    session_ttl: timedelta,
) -> OAuthResult:
    if flow.mode is OAuthMode.LINK:
        return await _link(uow, flow=flow, profile=profile, now=now)
    async with uow.transaction():
        identity = await _identity(uow, profile)
        if identity is not None:
            user = await uow.users.get(identity.user_id)
            if user is None:
                raise SessionInvalid(f"identity {identity.id} without an account")
            _record_email(identity, profile)
            await _accept_or_refuse(
                uow,
                user,
                accept_policy=flow.accept_policy,
                policy_version=policy_version,
                platform=client.platform,
            )
            # Commits the address and the consent with the new session.
            issued = await sessions.open_session(
                uow, user_id=user.id, client=client, now=now, ttl=session_ttl
            )
            return OAuthResult(user.id, issued)

    if not flow.accept_policy:
        raise ConsentMissing(f"new {profile.provider} account without accepting the policy")
    created = await accounts.register_web_user(
        uow,
        identity=NewIdentity(
            provider=profile.provider,
            subject=profile.subject,
            email=profile.email,
            email_verified=profile.email_verified,
        ),
        language=language,
        profile_name=profile.name,
        policy_version=policy_version,
        client=client,
    )
    issued = await sessions.open_session(
        uow, user_id=created.id, client=client, now=now, ttl=session_ttl
    )
    return OAuthResult(created.id, issued, created=True)


def _record_email(identity: Identity, profile: OAuthProfile) -> None:
    """The provider's current address (policy 3.1: the verified email)."""
    identity.email = profile.email
    identity.email_verified = profile.email_verified


async def _identity(uow: UnitOfWork, profile: OAuthProfile) -> Identity | None:
    return await uow.session.scalar(
        select(Identity)
        .where(Identity.provider == profile.provider, Identity.subject == profile.subject)
        .with_for_update()
    )


async def _link(
    uow: UnitOfWork, *, flow: OAuthFlow, profile: OAuthProfile, now: datetime
) -> OAuthResult:
    if flow.user_id is None or flow.session_id is None:
        raise OAuthStateInvalid("link flow without a user")
    user_id = flow.user_id
    # The session that asked for the link must still be alive.
    await sessions.check(uow, session_id=flow.session_id, user_id=user_id, now=now)
    async with uow.transaction():
        identity = await _identity(uow, profile)
        if identity is not None and identity.user_id != user_id:
            raise IdentityTaken(f"{profile.provider} identity belongs to another account")
        if identity is not None:
            _record_email(identity, profile)
        else:
            try:
                async with uow.session.begin_nested():
                    uow.session.add(
                        Identity(
                            user_id=user_id,
                            provider=profile.provider,
                            subject=profile.subject,
                            email=profile.email,
                            email_verified=profile.email_verified,
                        )
                    )
                    await uow.session.flush()
            except IntegrityError as exc:
                raise IdentityTaken(f"{profile.provider} identity linked meanwhile") from exc
    return OAuthResult(user_id, None)
