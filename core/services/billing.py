"""The ledger: balances in integer kopecks, append-only entries, reservations for requests in
flight. Every operation carries an idempotency key and applies exactly once.

Pricing rule: price = cost × (100 + markup)% × (100 − discount)%, rounded UP to a whole kopeck
(a fraction of a kopeck is never given away, and the user never pays more than one kopeck over
the exact figure). A settle never charges more than the user can pay: the charge is capped at the
reserve plus what is still available, so the balance never goes below zero.

Every step here (credit, debit, reserve, settle, release...) is a building block: it joins the
caller's transaction and never commits; the use case commits once (``uow.transaction()``). A
replayed idempotency key is detected inside a savepoint, so the caller's transaction goes on and
the step returns the earlier entry (``applied=False``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from core import metrics
from core.errors import DomainError, InvalidInput
from core.i18n import N_
from db.models import LedgerEntry
from db.repositories.ledger import DuplicateKey, entry_args
from db.uow import UnitOfWork

KINDS = ("debit", "credit", "refund", "adjustment")
STALE_HOLD = timedelta(hours=1)
CATEGORIES = ("text", "image", "video", "topup", "referral", "bonus", "subscription", "other")


class InsufficientFunds(DomainError):
    code = "insufficient_funds"
    msgid = N_("Not enough money on your balance for this request. Top up to continue.")


class ReservationClosed(DomainError):
    code = "reservation_closed"
    msgid = N_("This request has already been paid for or cancelled.")


@dataclass(frozen=True, slots=True)
class BalanceDTO:
    user_id: int
    balance: int
    reserved: int
    discount_percent: int
    bonus_percent: int

    @property
    def available(self) -> int:
        return self.balance - self.reserved


@dataclass(frozen=True, slots=True)
class EntryDTO:
    id: int
    user_id: int
    kind: str
    category: str
    amount: int
    balance_after: int
    model_id: str | None
    input_tokens: int | None
    output_tokens: int | None
    created_at: datetime | None
    # False when the idempotency key had been used before: nothing new happened.
    applied: bool = True
    # The plan a "subscription" entry paid for or charged (from the entry's metadata).
    plan: str | None = None


@dataclass(frozen=True, slots=True)
class ReservationDTO:
    id: int
    user_id: int
    amount: int
    status: str
    applied: bool = True


@dataclass(frozen=True, slots=True)
class Charge:
    """What a request cost and why: the provider's cost and the terms applied to it."""

    cost: int | None = None
    markup_percent: int | None = None
    discount_percent: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    model_id: str | None = None
    meta: dict[str, Any] | None = None


def price(cost: int, *, markup_percent: int, discount_percent: int) -> int:
    """The user's price in kopecks for a provider cost in kopecks (see the module docstring)."""
    if cost < 0 or markup_percent < -100 or not 0 <= discount_percent <= 100:
        raise ValueError("cost, markup or discount out of range")
    numerator = cost * (100 + markup_percent) * (100 - discount_percent)
    return -(-numerator // 10_000)


def with_bonus(amount: int, bonus_percent: int) -> int:
    """A top-up with the user's bonus coefficient: the bonus is rounded down."""
    return amount + amount * bonus_percent // 100


def _entry(row: LedgerEntry, *, applied: bool = True) -> EntryDTO:
    return EntryDTO(
        id=row.id,
        user_id=row.user_id,
        kind=row.kind,
        category=row.category,
        amount=row.amount,
        balance_after=row.balance_after,
        model_id=row.model_id,
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
        created_at=row.created_at,
        applied=applied,
        plan=_plan_of(row.category, row.meta),
    )


def _plan_of(category: str, meta: Mapping[str, Any] | None) -> str | None:
    plan = (meta or {}).get("plan") if category == "subscription" else None
    return plan if isinstance(plan, str) else None


def _record(row: Mapping[str, Any]) -> EntryDTO:
    return EntryDTO(
        id=row["id"],
        user_id=row["user_id"],
        kind=row["kind"],
        category=row["category"],
        amount=row["amount"],
        balance_after=row["balance_after"],
        model_id=row["model_id"],
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        created_at=row["created_at"],
    )


def _args(
    *, user_id: int, amount: int, kind: str, category: str, key: str, charge: Charge | None
) -> list[Any]:
    if kind not in KINDS or category not in CATEGORIES:
        raise InvalidInput(f"kind {kind!r} / category {category!r}")
    if not key or len(key) > 128:
        raise InvalidInput("idempotency key must be 1-128 characters")
    c = charge or Charge()
    return entry_args(
        user_id=user_id,
        amount=amount,
        kind=kind,
        category=category,
        key=key,
        meta=json.dumps(c.meta or {}, ensure_ascii=False, sort_keys=True),
        input_tokens=c.input_tokens,
        output_tokens=c.output_tokens,
        cost=c.cost,
        markup_percent=c.markup_percent,
        discount_percent=c.discount_percent,
        model_id=c.model_id,
    )


async def _replayed(uow: UnitOfWork, key: str) -> EntryDTO:
    """After a unique-key conflict (rolled back to its savepoint): the entry recorded first."""
    existing = await uow.ledger.entry_by_key(key)
    if existing is None:
        raise RuntimeError(f"ledger write failed without an entry for key {key}")
    return _entry(existing, applied=False)


async def get_balance(uow: UnitOfWork, user_id: int) -> BalanceDTO:
    row = await uow.ledger.balance(user_id)
    if row is None:
        return BalanceDTO(user_id, 0, 0, 0, 0)
    return BalanceDTO(user_id, row.balance, row.reserved, row.discount_percent, row.bonus_percent)


async def add_credit(
    uow: UnitOfWork,
    *,
    user_id: int,
    amount: int,
    category: str,
    key: str,
    kind: str = "credit",
    charge: Charge | None = None,
) -> EntryDTO:
    """A credit as one step of a larger use case, where a replayed key is the caller's to
    handle (DuplicateKey): joins its transaction, does not commit."""
    if amount <= 0:
        raise InvalidInput("a credit must be positive")
    args = _args(
        user_id=user_id, amount=amount, kind=kind, category=category, key=key, charge=charge
    )
    row = await uow.ledger.credit(args)
    metrics.ledger("credit", "applied")
    return _record(row)


async def take_up_to(
    uow: UnitOfWork,
    *,
    user_id: int,
    amount: int,
    category: str,
    key: str,
    kind: str = "refund",
    charge: Charge | None = None,
) -> EntryDTO | None:
    """Take back up to ``amount`` (a reversal after a refund), never more than is available:
    money already spent cannot be taken back. A step of a larger use case; does not commit."""
    available = await uow.ledger.lock_available(user_id)
    take = min(amount, available)
    if take <= 0:
        return None
    args = _args(user_id=user_id, amount=take, kind=kind, category=category, key=key, charge=charge)
    row = await uow.ledger.debit(args)
    metrics.ledger("debit", "refused" if row is None else "applied")
    return None if row is None else _record(row)


async def credit(
    uow: UnitOfWork,
    *,
    user_id: int,
    amount: int,
    category: str,
    key: str,
    kind: str = "credit",
    charge: Charge | None = None,
) -> EntryDTO:
    """Add money (a top-up, a bonus, a referral earning, a refund of a charge)."""
    if amount <= 0:
        raise InvalidInput("a credit must be positive")
    if kind not in ("credit", "refund", "adjustment"):
        raise InvalidInput(f"kind {kind!r} cannot credit")
    args = _args(
        user_id=user_id, amount=amount, kind=kind, category=category, key=key, charge=charge
    )
    try:
        async with uow.session.begin_nested():
            row = await uow.ledger.credit(args)
    except DuplicateKey:
        metrics.ledger("credit", "replayed")
        return await _replayed(uow, key)
    metrics.ledger("credit", "applied")
    return _record(row)


async def debit(
    uow: UnitOfWork,
    *,
    user_id: int,
    amount: int,
    category: str,
    key: str,
    kind: str = "debit",
    charge: Charge | None = None,
) -> EntryDTO:
    """Take money now, or raise InsufficientFunds and change nothing."""
    if amount <= 0:
        raise InvalidInput("a debit must be positive")
    if kind not in ("debit", "refund", "adjustment"):
        raise InvalidInput(f"kind {kind!r} cannot debit")
    args = _args(
        user_id=user_id, amount=amount, kind=kind, category=category, key=key, charge=charge
    )
    try:
        async with uow.session.begin_nested():
            row = await uow.ledger.debit(args)
    except DuplicateKey:
        metrics.ledger("debit", "replayed")
        return await _replayed(uow, key)
    if row is None:
        # Nothing changed: the guard refused, or the key was used by an earlier debit.
        existing = await uow.ledger.entry_by_key(key)
        if existing is not None:
            metrics.ledger("debit", "replayed")
            return _entry(existing, applied=False)
        metrics.ledger("debit", "refused")
        balance = await get_balance(uow, user_id)
        raise InsufficientFunds(
            f"user {user_id} needs {amount}, has {balance.available}",
            needed=amount,
            available=balance.available,
        )
    metrics.ledger("debit", "applied")
    return _record(row)


async def reserve(
    uow: UnitOfWork,
    *,
    user_id: int,
    amount: int,
    key: str,
    model_id: str | None = None,
    owner: str | None = None,
    fresh_key: bool = False,
) -> ReservationDTO:
    """Hold money for a request before calling the provider. ``owner`` is the process serving
    the request (core/owners.py): when it dies, the sweeper gives the hold back. A ``key`` that
    may have been used before is replayed; a ``fresh_key`` (new and random, so never used
    before) saves the savepoint's two round trips, and should it ever meet an old key the
    transaction fails as a whole."""
    if amount <= 0:
        raise InvalidInput("a reserve must be positive")
    guard = contextlib.nullcontext() if fresh_key else uow.session.begin_nested()
    try:
        async with guard:
            reservation_id = await uow.ledger.reserve(
                user_id=user_id, amount=amount, model_id=model_id, key=key, owner=owner
            )
    except DuplicateKey:
        if fresh_key:
            raise
        reservation_id = None
    if reservation_id is None:
        existing = await uow.ledger.reservation_by_key(key)
        if existing is not None:
            metrics.ledger("reserve", "replayed")
            return ReservationDTO(
                existing.id, existing.user_id, existing.amount, existing.status, False
            )
        metrics.ledger("reserve", "refused")
        balance = await get_balance(uow, user_id)
        raise InsufficientFunds(
            f"user {user_id} needs {amount}, has {balance.available}",
            needed=amount,
            available=balance.available,
        )
    metrics.ledger("reserve", "applied")
    return ReservationDTO(reservation_id, user_id, amount, "held")


async def settle(
    uow: UnitOfWork,
    *,
    reservation: ReservationDTO,
    amount: int,
    category: str,
    key: str,
    charge: Charge | None = None,
) -> EntryDTO:
    """Charge a request's actual price against its reserve and free the rest. The charge is
    capped at what the user can pay. A zero price releases the reserve and records nothing."""
    if amount < 0:
        raise InvalidInput("a charge cannot be negative")
    if amount == 0:
        await release(uow, reservation_id=reservation.id)
        balance = await get_balance(uow, reservation.user_id)
        return EntryDTO(
            0, reservation.user_id, "debit", category, 0, balance.balance, None, 0, 0, None, False
        )
    args = _args(
        user_id=reservation.user_id,
        amount=amount,
        kind="debit",
        category=category,
        key=key,
        charge=charge,
    )
    # No savepoint here (it costs two round trips on every reply): the entry is written by the
    # same statement that closes the hold, so a settle replayed with its key finds the hold
    # closed and writes nothing, and the key cannot meet its own entry while the hold is open.
    row = await uow.ledger.settle(args, reservation.id)
    if row is None:
        existing = await uow.ledger.entry_by_key(key)
        if existing is not None:
            metrics.ledger("settle", "replayed")
            return _entry(existing, applied=False)
        metrics.ledger("settle", "refused")
        raise ReservationClosed(f"reservation {reservation.id} is not held")
    metrics.ledger("settle", "applied")
    return _record(row)


async def release(uow: UnitOfWork, *, reservation_id: int) -> bool:
    """Give a reserve back (the request failed or was cancelled before it cost anything).
    False if it was already settled or released."""
    released = await uow.ledger.release(reservation_id)
    metrics.ledger("release", "applied" if released else "replayed")
    return released


async def release_stale_holds(uow: UnitOfWork, *, now: datetime) -> int:
    """Money held by requests that never finished (a process stopped mid-stream) goes back to
    the balance after an hour; how many balances changed."""
    return await uow.ledger.release_stale(now - STALE_HOLD, 1_000)


async def history(
    uow: UnitOfWork, user_id: int, *, limit: int = 10, before_id: int | None = None
) -> list[EntryDTO]:
    rows = await uow.ledger.entries(user_id, limit=min(max(limit, 1), 100), before_id=before_id)
    return [_entry(r) for r in rows]


async def check_consistency(uow: UnitOfWork, user_id: int) -> bool:
    """The balance equals the sum of the user's entries."""
    balance = await get_balance(uow, user_id)
    return balance.balance == await uow.ledger.entries_sum(user_id)


# For use cases that post entries as steps of their own transactions.
entry_of = _entry
record_of = _record
posting_args = _args
