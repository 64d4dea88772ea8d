"""One account everywhere: linking a Telegram account to a web account, and the merge rule.

A web account (signed in with email, Google or Yandex) links Telegram with a one-time code:
``create_telegram_code`` keeps ``{user_id, session_id}`` in Redis for ten minutes under a random
code, and the web shows it as the deep link ``https://t.me/<bot>?start=link-<code>``. The bot's
/start with that payload shows whose account it is (``telegram_link_request``, nothing used up)
and asks the Telegram user to confirm; ``confirm_telegram_link`` links. The session that asked
must still be alive when the code is shown and when it is confirmed. The code is removed after
the link is committed, and what it did is kept ten minutes more for the page that asked
(``link_status``: that page may be signed out by then, its account merged away). Confirming
twice (a redelivered tap) finds the accounts linked already, or the code used, and changes
nothing; a code that is gone, expired or of an ended session links nothing.

The merge rule, when the Telegram user already has an account of their own. Money never moves
between ledgers (every balance stays the sum of its own entries); history always moves:

* An account *has money* when it has a ledger entry of a non-zero amount (so a non-zero balance),
  money held for a request in flight, a payment, a payment order (even one not paid), a
  subscription (even an ended one), a promo code redeemed, or anybody it invited (their top-ups
  pay it a share: the inviter relation is a money relation and never moves).
* The *survivor*: the side with money. If both have money nothing is merged
  (``AccountsNotMergeable``, with what to do instead) and both stay exactly as they were. If
  neither has, the Telegram account survives.
* The other account is emptied into the survivor and then erased as /delete erases an account
  (its web sessions end, so the web asks to sign in again when the web account was erased).
  In one transaction, with both account rows locked, so two confirmations cannot both merge.
* Moved to the survivor: sign-in methods; conversations with their messages; presets; files
  with their passages, vectors and attachments (a file whose content the survivor has too is
  kept once: the survivor's, now attached where the other one was); generated pictures and
  videos; shared links; the support thread's relayed messages, and the thread itself when the
  survivor has none; settings the survivor has none of (time zone, name, the current
  conversation, preset and model picks, per-feature switches); and the Telegram id, when the
  web account survives.
* Not moved, erased with the other account: its consent records and sign-up attribution (the
  survivor's own stand), its web sessions, export/deletion requests, request log, free-tier
  counters (the allowance is the survivor's; a merge gives no fresh one) and its support thread
  when the survivor has one. Its financial rows (zero-amount ledger entries, a zero balance)
  stay on the anonymous row as they do after /delete, as do audit rows about it.
* Referrals: the invitee relation (who invited this person) is never duplicated. The survivor
  keeps its own inviter; if it has none, it takes the other account's inviter, unless that
  would make a loop (the inviter is the survivor or was invited through it). Nobody's counters
  change: the inviter counted this person once, and still does.
* A sign-in method of the same kind on both sides (two Google accounts) is refused
  (``SameSignInMethods``): an account has one of each kind.

The other direction, a Telegram account adding email and password, is
``core.services.auth.add_email_password``; Google and Yandex use the OAuth link flow.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from redis.asyncio import Redis
from sqlalchemy import exists, or_, select, text, update
from sqlalchemy.exc import IntegrityError

from core.errors import InvalidInput
from core.i18n import N_
from core.media import MediaStore
from core.security.tokens import SessionInvalid
from core.services import files, privacy, sessions
from core.services.accounts import IdentityTaken
from db.models import (
    Balance,
    ChatMessageRow,
    Conversation,
    File,
    FileLink,
    Identity,
    LedgerEntry,
    Media,
    Payment,
    PaymentOrder,
    Preset,
    PromoRedemption,
    Reservation,
    ShareLink,
    Subscription,
    SupportMessage,
    SupportThread,
    User,
)
from db.uow import UnitOfWork

CODE_TTL = timedelta(minutes=10)
PAYLOAD_PREFIX = "link-"
KEY = "netroom:link:telegram"
# What a confirmed code did, for the website that asked (it may be signed out by then).
DONE_KEY = "netroom:link:telegram:done"
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
        "Nothing was linked: both accounts have money of their own (a balance or payments, a "
        "plan, a promo code or invited friends). Chats and files can move from one account to "
        "another, but money never does, so these two cannot become one. Keep using them "
        "separately, or write to support with /support and we will help."
    )


class SameSignInMethods(IdentityTaken):
    code = "same_sign_in_methods"
    msgid = N_(
        "Nothing was linked: both accounts have a sign-in method of the same kind (for example, "
        "each has its own Google account), and one account can have only one of each kind."
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
    # The web account was emptied into the Telegram one and is gone: the website asks to sign
    # in again.
    web_signed_out: bool = False
    # The erased account had chats, presets, files or media: they are the survivor's now.
    history_moved: bool = False


@dataclass(frozen=True, slots=True)
class LinkStatus:
    """What became of a code, for the website that asked for it."""

    linked: bool
    web_signed_out: bool = False
    history_moved: bool = False


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


async def has_money(uow: UnitOfWork, user_id: int) -> bool:
    """Money of its own, which never moves to another account (see the module docstring)."""
    checks = [
        exists().where(model.user_id == user_id)
        for model in (Payment, PaymentOrder, Subscription, PromoRedemption)
    ]
    checks += [
        exists().where(LedgerEntry.user_id == user_id, LedgerEntry.amount != 0),
        exists().where(
            Balance.user_id == user_id, or_(Balance.balance != 0, Balance.reserved != 0)
        ),
        exists().where(Reservation.user_id == user_id, Reservation.status == "held"),
        exists().where(User.invited_by == user_id),
    ]
    return bool(await uow.session.scalar(select(or_(*checks))))


async def _has_history(uow: UnitOfWork, user_id: int) -> bool:
    checks = [
        exists().where(model.user_id == user_id)
        for model in (Conversation, Preset, File, Media, SupportThread)
    ]
    return bool(await uow.session.scalar(select(or_(*checks))))


async def link_status(redis: Redis, *, code: str) -> LinkStatus:
    """Whether the code was confirmed yet, and what it did; unknown codes are refused."""
    if not code or len(code) > CODE_MAX:
        raise LinkCodeInvalid("malformed code")
    done = await redis.get(f"{DONE_KEY}:{code}")
    if done is not None:
        data = json.loads(done)
        return LinkStatus(
            linked=True,
            web_signed_out=bool(data["web_signed_out"]),
            history_moved=bool(data["history_moved"]),
        )
    if await redis.exists(_key(code)):
        return LinkStatus(linked=False)
    raise LinkCodeInvalid("unknown or expired code")


async def confirm_telegram_link(
    uow: UnitOfWork,
    redis: Redis,
    *,
    code: str,
    telegram_id: int,
    username: str | None,
    now: datetime,
    store: MediaStore | None = None,
) -> LinkOutcome:
    """Link the Telegram user to the code's web account, merging by the module's rule. Commits
    once; the code is then replaced by what it did (for the website), and the files of the
    erased account that the survivor had already (the same content) leave ``store``."""
    web_id, _ = await _pending(uow, redis, code, now)
    try:
        outcome = await _link(uow, web_id, telegram_id, username, now, store)
    except IntegrityError as exc:
        # The Telegram user registered in the bot at the same moment: the code stays, and the
        # link opened again meets the account that exists now.
        raise LinkRaced(f"telegram user of user {web_id} changed meanwhile") from exc
    done = {"web_signed_out": outcome.web_signed_out, "history_moved": outcome.history_moved}
    await redis.set(f"{DONE_KEY}:{code}", json.dumps(done), ex=int(CODE_TTL.total_seconds()))
    await redis.delete(_key(code))
    return outcome


async def _link(
    uow: UnitOfWork,
    web_id: int,
    telegram_id: int,
    username: str | None,
    now: datetime,
    store: MediaStore | None,
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
            outcome = await _merge(
                uow, web=web, tg=rows[other.id], username=username, now=now, store=store
            )
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
    uow: UnitOfWork,
    *,
    web: User,
    tg: User,
    username: str | None,
    now: datetime,
    store: MediaStore | None,
) -> LinkOutcome:
    web_money = await has_money(uow, web.id)
    if web_money and await has_money(uow, tg.id):
        raise AccountsNotMergeable(f"users {web.id} and {tg.id} both have money")
    keeper, loser = (web, tg) if web_money else (tg, web)
    kept = {i.provider for i in await uow.users.identities(keeper.id)}
    moved = {i.provider for i in await uow.users.identities(loser.id)}
    if kept & moved:
        raise SameSignInMethods(f"both have {sorted(kept & moved)}")
    history = await _has_history(uow, loser.id)
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
    await _take_settings(uow, keeper, loser)
    await uow.session.flush()
    await _move_history(uow, keeper_id=keeper.id, loser_id=loser.id)
    await uow.session.execute(
        update(Identity)
        .where(Identity.user_id == loser.id)
        .values(user_id=keeper.id)
        .execution_options(synchronize_session=False)
    )
    await uow.session.flush()
    loser_id = loser.id
    # Joins this transaction and commits it, the moves above with the erasure; what is left of
    # the erased account's files (those the survivor had already) leaves the store after.
    await privacy.delete_user(uow, loser_id, now=now, store=store)
    return LinkOutcome(
        keeper.id, erased_user_id=loser_id, web_signed_out=loser is web, history_moved=history
    )


async def _take_settings(uow: UnitOfWork, keeper: User, loser: User) -> None:
    """The erased account's settings where the survivor has none, and its inviter where that
    gives the survivor its only inviter and no loop."""
    if keeper.timezone is None:
        keeper.timezone = loser.timezone
    if keeper.profile_name is None:
        keeper.profile_name = loser.profile_name
    features = {k: v for k, v in (loser.features or {}).items() if v is not None}
    features.update({k: v for k, v in (keeper.features or {}).items() if v is not None})
    if features != (keeper.features or {}):
        keeper.features = features
    inviter = loser.invited_by
    if (
        keeper.invited_by is None
        and inviter is not None
        and inviter != keeper.id
        and keeper.id not in await uow.users.inviter_chain(inviter)
    ):
        keeper.invited_by = inviter


# What a merge does with each table that refers to an account (a test keeps it complete).
MOVED, SURVIVORS, MONEY, ERASED = "moved", "survivor's", "money", "erased"
MERGE_PLAN: dict[str, str] = {
    "users": "the survivor keeps its row; settings it has none of are taken (_take_settings)",
    "identities": MOVED,
    "presets": MOVED,
    "conversations": MOVED,
    "messages": MOVED,
    "media": MOVED,
    "share_links": MOVED,
    "files": MOVED + " (content the survivor has already: the survivor's copy is kept)",
    "file_chunks": MOVED + " with their files",
    "file_links": MOVED + " (to the survivor's copy of the same content)",
    "support_messages": MOVED,
    "support_threads": MOVED + " when the survivor has none, else " + ERASED,
    "balances": MONEY,
    "ledger_entries": MONEY,
    "reservations": MONEY,
    "payments": MONEY,
    "payment_orders": MONEY,
    "subscriptions": MONEY,
    "promo_redemptions": MONEY,
    "consents": SURVIVORS + "; the other's " + ERASED,
    "signup_attributions": SURVIVORS + "; the other's " + ERASED,
    "free_usage": SURVIVORS + "; the other's " + ERASED,
    "sessions": ERASED + " (the other account's sessions end)",
    "privacy_requests": ERASED,
    "request_log": ERASED,
    "admin_actions": "kept about the erased account, anonymised as after /delete",
}

# Moved as they are: rows that belong to the person's history and name nothing else of theirs.
_MOVED = (Preset, Conversation, ChatMessageRow, Media, ShareLink, FileLink, SupportMessage)


async def _move_history(uow: UnitOfWork, *, keeper_id: int, loser_id: int) -> None:
    ids = {"k": keeper_id, "l": loser_id}
    # A file the survivor has too (the same content) is kept once, the survivor's, attached
    # wherever the other copy was; the other copy stays behind and is erased with its account.
    await uow.session.execute(
        text(
            "UPDATE file_links AS fl SET file_id = kf.id"
            " FROM files AS lf JOIN files AS kf ON kf.sha256 = lf.sha256 AND kf.user_id = :k"
            " WHERE fl.file_id = lf.id AND lf.user_id = :l"
        ),
        ids,
    )
    await uow.session.execute(
        text(
            "UPDATE files SET user_id = :k WHERE user_id = :l"
            " AND sha256 NOT IN (SELECT sha256 FROM files WHERE user_id = :k)"
        ),
        ids,
    )
    await uow.session.execute(
        text(
            "UPDATE file_chunks SET user_id = :k WHERE user_id = :l"
            " AND file_id IN (SELECT id FROM files WHERE user_id = :k)"
        ),
        ids,
    )
    if await files.vectors_available(uow):
        await uow.session.execute(
            text(
                "UPDATE file_chunk_vectors SET user_id = :k WHERE user_id = :l"
                " AND chunk_id IN (SELECT id FROM file_chunks WHERE user_id = :k)"
            ),
            ids,
        )
    for model in _MOVED:
        await uow.session.execute(
            update(model)
            .where(model.user_id == loser_id)
            .values(user_id=keeper_id)
            .execution_options(synchronize_session=False)
        )
    # One support thread per account: the survivor's own stays, else the other one moves.
    await uow.session.execute(
        text(
            "UPDATE support_threads SET user_id = :k WHERE user_id = :l"
            " AND NOT EXISTS (SELECT 1 FROM support_threads WHERE user_id = :k)"
        ),
        ids,
    )
