"""One account everywhere: linking a Telegram account to a web account, and the merge rule.

A web account (signed in with email, Google or Yandex) links Telegram with a one-time code:
``create_telegram_code`` keeps ``{user_id, session_id}`` in Redis for ten minutes under a random
code, and the web shows it as the deep link ``https://t.me/<bot>?start=link-<code>``. The bot's
/start with that payload shows whose account it is (``telegram_link_request``, nothing used up)
and asks the Telegram user to confirm; ``confirm_telegram_link`` links. The session that asked
must still be alive when the code is shown and when it is confirmed. The code is removed after
the link is committed: confirming twice (a redelivered tap) finds the accounts linked already
and changes nothing; a code that is gone, expired or of an ended session links nothing.

The merge rule, when the Telegram user already has an account of their own:

* An account is *empty* when it has no money and no history: no ledger entries (so a zero
  balance), no payments or payment orders, no subscriptions, no conversations, presets, files,
  media or support threads, and nobody it invited.
* If the Telegram account is empty, its Telegram sign-in moves to the web account and the
  emptied Telegram account is erased as /delete erases an account.
* Else, if the web account is empty, its sign-in methods (email, Google, Yandex) move to the
  Telegram account and the emptied web account is erased the same way (its web sessions end:
  the person signs in again and finds the Telegram account, now with those methods).
* Else both have money or history: nothing is merged (``AccountsNotMergeable``), both stay as
  they were. No money is ever moved, so every balance stays the sum of its own entries.
* A method of the same kind on both sides (two Google accounts) is refused the same way.

The other direction, a Telegram account adding email and password, is
``core.services.auth.add_email_password``; Google and Yandex use the OAuth link flow.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from redis.asyncio import Redis
from sqlalchemy import exists, select, update
from sqlalchemy.exc import IntegrityError

from core.errors import InvalidInput
from core.i18n import N_
from core.security.tokens import SessionInvalid
from core.services import privacy, sessions
from core.services.accounts import IdentityTaken
from db.models import (
    Balance,
    Conversation,
    File,
    Identity,
    LedgerEntry,
    Media,
    Payment,
    PaymentOrder,
    Preset,
    Subscription,
    SupportThread,
    User,
)
from db.uow import UnitOfWork

CODE_TTL = timedelta(minutes=10)
PAYLOAD_PREFIX = "link-"
KEY = "netroom:link:telegram"
# token_urlsafe(12): 16 characters of [A-Za-z0-9_-], within a /start payload and callback data.
CODE_BYTES = 12
CODE_MAX = 32


class LinkCodeInvalid(InvalidInput):
    code = "link_code_invalid"
    msgid = N_(
        "This link is invalid, has expired or has already been used. "
        "Please create a new one on the NetRoom website."
    )


class TelegramAlreadyLinked(IdentityTaken):
    code = "telegram_already_linked"
    msgid = N_("This NetRoom account is already linked to another Telegram account.")


class AccountsNotMergeable(IdentityTaken):
    code = "accounts_not_mergeable"
    msgid = N_(
        "This Telegram account already has its own NetRoom account with a balance or history, "
        "and so does the other account. Accounts that both have money or history are not "
        "merged: keep using them separately, or delete one of them first."
    )


class LinkRaced(InvalidInput):
    code = "link_raced"
    msgid = N_("Something changed meanwhile. Please open the link from the website again.")


@dataclass(frozen=True, slots=True)
class LinkCode:
    code: str
    expires_in: int

    @property
    def payload(self) -> str:
        return PAYLOAD_PREFIX + self.code


@dataclass(frozen=True, slots=True)
class LinkRequest:
    """What the Telegram user is asked to confirm: the web account, named by its address (or
    its name when it has none)."""

    code: str
    user_id: int
    account: str


@dataclass(frozen=True, slots=True)
class LinkOutcome:
    # The account that has both sign-ins now.
    user_id: int
    # The emptied account that was erased, if any.
    erased_user_id: int | None = None
    # The accounts were linked already (a second confirmation): nothing changed.
    already: bool = False
    # The web account was the empty one and is gone: the website asks to sign in again.
    web_signed_out: bool = False


def code_of_payload(payload: str | None) -> str | None:
    """The code in a /start payload ``link-<code>``; None for any other payload."""
    if not payload or not payload.startswith(PAYLOAD_PREFIX):
        return None
    code = payload[len(PAYLOAD_PREFIX) :]
    return code if 0 < len(code) <= CODE_MAX else None


def _key(code: str) -> str:
    return f"{KEY}:{code}"


async def create_telegram_code(
    uow: UnitOfWork, redis: Redis, *, user_id: int, session_id: str
) -> LinkCode:
    """A one-time code (ten minutes) for linking Telegram to this web account."""
    async with uow.reading():
        user = await uow.users.get(user_id)
        if user is None or user.deleted_at is not None:
            raise SessionInvalid(f"user {user_id} gone")
        if user.telegram_id is not None:
            raise TelegramAlreadyLinked(f"user {user_id} has telegram already")
    code = secrets.token_urlsafe(CODE_BYTES)
    ttl = int(CODE_TTL.total_seconds())
    await redis.set(_key(code), json.dumps({"user_id": user_id, "session_id": session_id}), ex=ttl)
    return LinkCode(code, ttl)


async def _pending(uow: UnitOfWork, redis: Redis, code: str, now: datetime) -> tuple[int, str]:
    if not code or len(code) > CODE_MAX:
        raise LinkCodeInvalid("malformed code")
    raw = await redis.get(_key(code))
    if raw is None:
        raise LinkCodeInvalid("unknown, expired or used code")
    data = json.loads(raw)
    user_id, session_id = int(data["user_id"]), str(data["session_id"])
    try:
        await sessions.check(uow, session_id=session_id, user_id=user_id, now=now)
    except SessionInvalid as exc:
        raise LinkCodeInvalid(f"session of user {user_id} ended") from exc
    return user_id, session_id


async def _account_name(uow: UnitOfWork, user: User) -> str:
    by_provider = {i.provider: i for i in await uow.users.identities(user.id)}
    email = by_provider.get("email")
    if email is not None:
        return email.subject
    for provider in ("google", "yandex"):
        found = by_provider.get(provider)
        if found is not None and found.email:
            return found.email
    return user.profile_name or f"#{user.id}"


async def telegram_link_request(
    uow: UnitOfWork, redis: Redis, *, code: str, telegram_id: int, now: datetime
) -> LinkRequest:
    """What confirming the code would link, for the question; nothing is used up."""
    user_id, _ = await _pending(uow, redis, code, now)
    async with uow.reading():
        user = await uow.users.get(user_id)
        if user is None or user.deleted_at is not None:
            raise LinkCodeInvalid(f"user {user_id} gone")
        if user.telegram_id is not None and user.telegram_id != telegram_id:
            raise TelegramAlreadyLinked(f"user {user_id} has another telegram")
        name = await _account_name(uow, user)
    return LinkRequest(code, user_id, name)


async def is_empty(uow: UnitOfWork, user_id: int) -> bool:
    """No money and no history (see the module docstring)."""
    checks = [
        exists().where(model.user_id == user_id)
        for model in (
            LedgerEntry,
            Payment,
            PaymentOrder,
            Subscription,
            Conversation,
            Preset,
            File,
            Media,
            SupportThread,
        )
    ]
    checks.append(exists().where(Balance.user_id == user_id, Balance.balance != 0))
    checks.append(exists().where(User.invited_by == user_id))
    for check in checks:
        if await uow.session.scalar(select(check)):
            return False
    return True


async def confirm_telegram_link(
    uow: UnitOfWork,
    redis: Redis,
    *,
    code: str,
    telegram_id: int,
    username: str | None,
    now: datetime,
) -> LinkOutcome:
    """Link the Telegram user to the code's web account, merging by the module's rule. Commits
    once; the code is removed after."""
    web_id, _ = await _pending(uow, redis, code, now)
    try:
        outcome = await _link(uow, web_id, telegram_id, username, now)
    except IntegrityError as exc:
        # The Telegram user registered in the bot at the same moment: the code stays, and the
        # link opened again meets the account that exists now.
        raise LinkRaced(f"telegram user of user {web_id} changed meanwhile") from exc
    await redis.delete(_key(code))
    return outcome


async def _link(
    uow: UnitOfWork, web_id: int, telegram_id: int, username: str | None, now: datetime
) -> LinkOutcome:
    async with uow.transaction():
        other = await uow.users.by_telegram_id(telegram_id)
        # Both rows locked in id order: two confirmations cannot interleave.
        ids = sorted({web_id} | ({other.id} if other is not None else set()))
        rows = {
            row.id: row
            for row in await uow.session.scalars(
                select(User)
                .where(User.id.in_(ids))
                .order_by(User.id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        }
        web = rows.get(web_id)
        if web is None or web.deleted_at is not None:
            raise LinkCodeInvalid(f"user {web_id} gone")
        if web.telegram_id == telegram_id:
            outcome = LinkOutcome(web_id, already=True)
        elif web.telegram_id is not None:
            raise TelegramAlreadyLinked(f"user {web_id} has another telegram")
        elif other is None:
            await _attach_telegram(uow, web, telegram_id, username)
            outcome = LinkOutcome(web_id)
        elif rows[other.id].telegram_id != telegram_id:
            raise LinkRaced(f"user {other.id} changed meanwhile")
        else:
            outcome = await _merge(uow, web=web, tg=rows[other.id], username=username, now=now)
    return outcome


async def _attach_telegram(
    uow: UnitOfWork, user: User, telegram_id: int, username: str | None
) -> None:
    user.telegram_id = telegram_id
    if username:
        user.username = username[:64]
    uow.session.add(Identity(user_id=user.id, provider="telegram", subject=str(telegram_id)))
    await uow.session.flush()


async def _merge(
    uow: UnitOfWork, *, web: User, tg: User, username: str | None, now: datetime
) -> LinkOutcome:
    if await is_empty(uow, tg.id):
        keeper, loser = web, tg
    elif await is_empty(uow, web.id):
        keeper, loser = tg, web
    else:
        raise AccountsNotMergeable(f"users {web.id} and {tg.id} both have money or history")
    kept = {i.provider for i in await uow.users.identities(keeper.id)}
    moved = {i.provider for i in await uow.users.identities(loser.id)}
    if kept & moved:
        raise AccountsNotMergeable(f"both have {sorted(kept & moved)}")
    telegram_id = tg.telegram_id
    assert telegram_id is not None
    if loser is tg:
        # Freed first: the Telegram id is unique among accounts. The erased account's inbox
        # records stay, as they are the person's who keeps an account.
        tg.telegram_id = None
        tg.username = None
        await uow.session.flush()
        web.telegram_id = telegram_id
        if username:
            web.username = username[:64]
    await uow.session.execute(
        update(Identity)
        .where(Identity.user_id == loser.id)
        .values(user_id=keeper.id)
        .execution_options(synchronize_session=False)
    )
    await uow.session.flush()
    loser_id = loser.id
    # Joins this transaction and commits it, the moves above with the erasure.
    await privacy.delete_user(uow, loser_id, now=now)
    return LinkOutcome(keeper.id, erased_user_id=loser_id, web_signed_out=loser is web)
