"""Settlements that survive the database going away at the end of a turn.

Invariants:
- ``settle_or_keep`` settles a reservation in a unit of work of its own and commits. When
  Postgres cannot be reached (connection errors, never domain errors) it retries briefly, then
  keeps the settlement in Redis (hash ``netroom:settlements``, field = reservation id, value =
  JSON of the arguments) and returns None: the money owed for a delivered reply is never lost.
- ``apply_pending`` applies each kept settlement exactly once (the ledger's idempotency key makes
  a second apply a no-op) and only then removes it from the hash. When the hold was released in
  the meantime, the amount is charged as a debit capped at what the user can pay (never below
  zero), under the same key.
- A hold with a kept settlement is never released by the sweeper (core/owners.py): the kept
  settlement closes it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import asyncpg
from redis.asyncio import Redis
from sqlalchemy import exc as sa_exc

from core.services import billing
from core.services.billing import Charge, EntryDTO, ReservationClosed, ReservationDTO
from db.uow import UnitOfWork

log = logging.getLogger(__name__)

PENDING = "netroom:settlements"
# Brief retries before a settlement is kept for later: seconds to wait before each retry.
RETRY_PAUSES = (0.2, 0.5, 1.0)

UowFactory = Callable[[], UnitOfWork]


def unreachable(exc: BaseException) -> bool:
    """The database could not be reached or dropped the connection (as opposed to refusing the
    statement): the same call may succeed later."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError | TimeoutError | ConnectionError):
            return True
        if isinstance(
            current,
            asyncpg.PostgresConnectionError
            | asyncpg.InterfaceError
            | asyncpg.exceptions.OperatorInterventionError
            | asyncpg.exceptions.CannotConnectNowError,
        ):
            return True
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, sa_exc.DBAPIError | sa_exc.InterfaceError) and isinstance(
            getattr(current, "orig", None), BaseException
        ):
            orig = current.orig
            if orig is not None and orig is not current and unreachable(orig):
                return True
        current = current.__cause__ or current.__context__
    return False


def _encode(
    *, reservation: ReservationDTO, amount: int, category: str, key: str, charge: Charge | None
) -> str:
    return json.dumps(
        {
            "reservation": asdict(reservation),
            "amount": amount,
            "category": category,
            "key": key,
            "charge": asdict(charge) if charge is not None else None,
        },
        ensure_ascii=False,
        sort_keys=True,
    )


def _decode(raw: bytes | str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(raw)
    data["reservation"] = ReservationDTO(**data["reservation"])
    if data.get("charge") is not None:
        data["charge"] = Charge(**data["charge"])
    return data


async def _apply(
    uow: UnitOfWork,
    *,
    reservation: ReservationDTO,
    amount: int,
    category: str,
    key: str,
    charge: Charge | None,
) -> EntryDTO | None:
    """Settle; when the hold was released meanwhile, take the amount as a capped debit."""
    try:
        # Settling is one statement: it commits by itself, in one round trip.
        async with uow.statement():
            return await billing.settle(
                uow,
                reservation=reservation,
                amount=amount,
                category=category,
                key=key,
                charge=charge,
            )
    except ReservationClosed:
        pass
    if amount <= 0:
        return None
    async with uow.transaction():
        existing = await uow.ledger.entry_by_key(key)
        if existing is not None:
            return billing.entry_of(existing, applied=False)
        entry = await billing.take_up_to(
            uow,
            user_id=reservation.user_id,
            amount=amount,
            category=category,
            key=key,
            kind="debit",
            charge=charge,
        )
    return entry


async def settle_or_keep(
    uow_factory: UowFactory,
    redis: Redis,
    *,
    reservation: ReservationDTO,
    amount: int,
    category: str,
    key: str,
    charge: Charge | None = None,
) -> EntryDTO | None:
    """Settle ``reservation`` for ``amount`` now, in its own transaction; None when Postgres is
    unreachable and the settlement was kept in Redis for ``apply_pending``."""
    for pause in (*RETRY_PAUSES, None):
        try:
            async with uow_factory() as uow:
                return await _apply(
                    uow,
                    reservation=reservation,
                    amount=amount,
                    category=category,
                    key=key,
                    charge=charge,
                )
        except Exception as exc:
            if not unreachable(exc):
                raise
            if pause is None:
                break
            log.warning("settlement of reservation %s: database unreachable, retrying", key)
            await asyncio.sleep(pause)
    await redis.hset(  # type: ignore[misc]  # redis-py types both its sync and async returns
        PENDING,
        str(reservation.id),
        _encode(reservation=reservation, amount=amount, category=category, key=key, charge=charge),
    )
    log.warning("settlement of reservation %s kept until the database is back", reservation.id)
    return None


async def pending_ids(redis: Redis) -> set[int]:
    """Reservations with a kept settlement."""
    return {int(field) for field in await redis.hkeys(PENDING)}  # type: ignore[misc]


async def apply_pending(uow_factory: UowFactory, redis: Redis) -> int:
    """Apply every kept settlement; how many were applied (or found already applied). Stops at
    the first connection error, leaving the rest for the next run."""
    applied = 0
    kept: dict[bytes, bytes] = await redis.hgetall(PENDING)  # type: ignore[misc]
    for field, raw in kept.items():
        try:
            data = _decode(raw)
        except (ValueError, TypeError, KeyError):
            log.error("kept settlement %r cannot be read; left in place", field)
            continue
        try:
            async with uow_factory() as uow:
                await _apply(uow, **data)
        except Exception as exc:
            if unreachable(exc):
                log.warning("kept settlements: database still unreachable")
                break
            log.exception("kept settlement %r failed; left in place", field)
            continue
        await redis.hdel(PENDING, field.decode())  # type: ignore[misc]
        applied += 1
    return applied
