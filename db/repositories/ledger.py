"""Ledger statements. The hot paths (credit, debit, reserve, settle, release) are each one SQL
statement sent on the unit of work's own asyncpg connection: one round trip, atomic on its own.
The balance row's constraints make overspending impossible and the unique idempotency key makes
each operation apply once, whatever the concurrency."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.driver import driver_of
from db.models import Balance, LedgerEntry, Reservation

# Parameters of an entry: $1 user_id, $2 amount (kopecks, positive), $3 kind, $4 category,
# $5 input_tokens, $6 output_tokens, $7 cost, $8 markup_percent, $9 discount_percent,
# $10 model_id, $11 metadata (JSON text), $12 idempotency key.
ENTRY_INSERT = """
    INSERT INTO ledger_entries (
        user_id, kind, category, amount, balance_after, input_tokens, output_tokens, cost,
        markup_percent, discount_percent, model_id, metadata, idempotency_key)
"""
ENTRY_RETURNING = """
    RETURNING id, user_id, kind, category, amount, balance_after, model_id, input_tokens,
              output_tokens, created_at
"""

DEBIT = f"""
    WITH b AS (
        UPDATE balances SET balance = balance - $2, updated_at = now()
        WHERE user_id = $1::bigint AND balance - reserved >= $2::bigint
        RETURNING user_id, balance)
    {ENTRY_INSERT}
    SELECT b.user_id, $3::text, $4::text, -$2::bigint, b.balance, $5::int, $6::int, $7::bigint,
           $8::int, $9::int, $10::text, $11::jsonb, $12::text
    FROM b
    {ENTRY_RETURNING}
"""  # noqa: S608 (assembled from constants only)  # nosec B608

CREDIT = f"""
    WITH b AS (
        INSERT INTO balances (user_id, balance) VALUES ($1::bigint, $2::bigint)
        ON CONFLICT (user_id) DO UPDATE
            SET balance = balances.balance + EXCLUDED.balance, updated_at = now()
        RETURNING user_id, balance)
    {ENTRY_INSERT}
    SELECT b.user_id, $3::text, $4::text, $2::bigint, b.balance, $5::int, $6::int, $7::bigint,
           $8::int, $9::int, $10::text, $11::jsonb, $12::text
    FROM b
    {ENTRY_RETURNING}
"""  # noqa: S608  # nosec B608

# The charge ($2) is capped at what the user can pay: the reserve plus what is still available.
# The balance row is locked first (FOR UPDATE sees its latest version), so the cap is exact.
SETTLE = f"""
    WITH r AS (
        UPDATE reservations SET status = 'settled', closed_at = now()
        WHERE id = $13::bigint AND user_id = $1::bigint AND status = 'held'
        RETURNING user_id, amount),
    locked AS (
        SELECT bal.user_id, LEAST($2::bigint, bal.balance - bal.reserved + r.amount) AS charged,
               r.amount AS held
        FROM balances bal JOIN r ON bal.user_id = r.user_id
        FOR UPDATE OF bal),
    b AS (
        UPDATE balances SET balance = balance - locked.charged,
                            reserved = reserved - locked.held, updated_at = now()
        FROM locked WHERE balances.user_id = locked.user_id
        RETURNING balances.user_id, balances.balance, locked.charged)
    {ENTRY_INSERT}
    SELECT b.user_id, $3::text, $4::text, -b.charged, b.balance, $5::int, $6::int, $7::bigint,
           $8::int, $9::int, $10::text, $11::jsonb, $12::text
    FROM b
    {ENTRY_RETURNING}
"""  # noqa: S608  # nosec B608

RESERVE = """
    WITH b AS (
        UPDATE balances SET reserved = reserved + $2, updated_at = now()
        WHERE user_id = $1::bigint AND balance - reserved >= $2::bigint
        RETURNING user_id)
    INSERT INTO reservations (user_id, amount, status, model_id, idempotency_key, owner)
    SELECT b.user_id, $2::bigint, 'held', $3::text, $4::text, $5::text FROM b
    RETURNING id
"""

RELEASE = """
    WITH r AS (
        UPDATE reservations SET status = 'released', closed_at = now()
        WHERE id = $1::bigint AND status = 'held'
        RETURNING user_id, amount)
    UPDATE balances SET reserved = reserved - r.amount, updated_at = now()
    FROM r WHERE balances.user_id = r.user_id
    RETURNING balances.user_id
"""


class DuplicateKey(Exception):
    """The idempotency key was used before: the operation had already been applied."""


def entry_args(
    *,
    user_id: int,
    amount: int,
    kind: str,
    category: str,
    key: str,
    meta: str = "{}",
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    cost: int | None = None,
    markup_percent: int | None = None,
    discount_percent: int | None = None,
    model_id: str | None = None,
) -> list[Any]:
    return [
        user_id,
        amount,
        kind,
        category,
        input_tokens,
        output_tokens,
        cost,
        markup_percent,
        discount_percent,
        model_id,
        meta,
        key,
    ]


class LedgerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _driver(self) -> asyncpg.Connection:
        """The asyncpg connection under this unit of work's session (see ``db.driver``)."""
        return await driver_of(self.session)

    async def _fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        driver = await self._driver()
        try:
            return await driver.fetchrow(sql, *args)
        except asyncpg.UniqueViolationError as exc:
            raise DuplicateKey(exc.constraint_name or "") from exc

    async def debit(self, args: list[Any]) -> asyncpg.Record | None:
        return await self._fetchrow(DEBIT, *args)

    async def credit(self, args: list[Any]) -> asyncpg.Record:
        row = await self._fetchrow(CREDIT, *args)
        assert row is not None
        return row

    async def settle(self, args: list[Any], reservation_id: int) -> asyncpg.Record | None:
        return await self._fetchrow(SETTLE, *args, reservation_id)

    async def reserve(
        self, *, user_id: int, amount: int, model_id: str | None, key: str, owner: str | None = None
    ) -> int | None:
        row = await self._fetchrow(RESERVE, user_id, amount, model_id, key, owner)
        return None if row is None else int(row["id"])

    async def release(self, reservation_id: int) -> bool:
        return await self._fetchrow(RELEASE, reservation_id) is not None

    async def lock_available(self, user_id: int) -> int:
        """What the user can spend now, with the balance row locked until the transaction ends."""
        row = await self._fetchrow(
            "SELECT balance - reserved AS available FROM balances WHERE user_id = $1 FOR UPDATE",
            user_id,
        )
        return 0 if row is None else int(row["available"])

    async def earned(self, user_id: int, category: str) -> int:
        total = await self.session.scalar(
            text(
                "SELECT COALESCE(SUM(amount), 0) FROM ledger_entries"
                " WHERE user_id = :u AND category = :c"
            ),
            {"u": user_id, "c": category},
        )
        return int(total or 0)

    async def release_stale(self, cutoff: datetime, limit: int) -> int:
        """Release holds older than ``cutoff`` (a process died mid-request)."""
        rows = await self._driver()
        result = await rows.fetch(
            """
            WITH r AS (
                UPDATE reservations SET status = 'released', closed_at = now()
                WHERE id IN (SELECT id FROM reservations WHERE status = 'held'
                             AND created_at < $1 ORDER BY created_at LIMIT $2
                             FOR UPDATE SKIP LOCKED)
                RETURNING user_id, amount),
            sums AS (SELECT user_id, SUM(amount) AS amount FROM r GROUP BY user_id)
            UPDATE balances SET reserved = reserved - sums.amount, updated_at = now()
            FROM sums WHERE balances.user_id = sums.user_id
            RETURNING balances.user_id
            """,
            cutoff,
            limit,
        )
        return len(result)

    async def held_owners(self) -> list[str]:
        """The processes that hold money now."""
        result = await self.session.execute(
            text(
                "SELECT DISTINCT owner FROM reservations"
                " WHERE status = 'held' AND owner IS NOT NULL"
            )
        )
        return [row[0] for row in result]

    async def release_orphans(
        self,
        *,
        dead_owners: list[str],
        ownerless_before: datetime,
        keep: list[int],
        limit: int,
    ) -> int:
        """Release holds of processes that are gone, and ownerless holds older than
        ``ownerless_before``, except the reservations in ``keep``; how many holds."""
        driver = await self._driver()
        result = await driver.fetch(
            """
            WITH r AS (
                UPDATE reservations SET status = 'released', closed_at = now()
                WHERE id IN (SELECT id FROM reservations WHERE status = 'held'
                             AND (owner = ANY($1::text[])
                                  OR (owner IS NULL AND created_at < $2))
                             AND NOT (id = ANY($3::bigint[]))
                             ORDER BY id LIMIT $4
                             FOR UPDATE SKIP LOCKED)
                RETURNING user_id, amount),
            sums AS (SELECT user_id, SUM(amount) AS amount, COUNT(*) AS holds
                     FROM r GROUP BY user_id)
            UPDATE balances SET reserved = reserved - sums.amount, updated_at = now()
            FROM sums WHERE balances.user_id = sums.user_id
            RETURNING sums.holds
            """,
            dead_owners,
            ownerless_before,
            keep,
            limit,
        )
        return sum(int(row["holds"]) for row in result)

    async def ensure_balance(self, user_id: int) -> None:
        await self.session.execute(insert(Balance).values(user_id=user_id).on_conflict_do_nothing())

    async def price_terms(self, user_id: int, now: datetime) -> tuple[int, str | None]:
        """What a request's price depends on, in one round trip: the balance's discount and
        the plan of the subscription running at ``now`` (None: none)."""
        driver = await self._driver()
        row = await driver.fetchrow(
            """
            SELECT (SELECT discount_percent FROM balances WHERE user_id = $1) AS discount,
                   (SELECT plan FROM subscriptions
                    WHERE user_id = $1 AND current_period_end > $2 AND status <> 'expired'
                    ORDER BY current_period_end DESC LIMIT 1) AS plan
            """,
            user_id,
            now,
        )
        assert row is not None
        return int(row["discount"] or 0), row["plan"]

    async def balance(self, user_id: int) -> Balance | None:
        return await self.session.get(Balance, user_id, populate_existing=True)

    async def reservation(self, reservation_id: int) -> Reservation | None:
        return await self.session.get(Reservation, reservation_id, populate_existing=True)

    async def reservation_by_key(self, key: str) -> Reservation | None:
        return (
            await self.session.scalars(select(Reservation).filter_by(idempotency_key=key))
        ).first()

    async def entry_by_key(self, key: str) -> LedgerEntry | None:
        return (
            await self.session.scalars(select(LedgerEntry).filter_by(idempotency_key=key))
        ).first()

    async def entries(
        self, user_id: int, *, limit: int, before_id: int | None = None
    ) -> list[LedgerEntry]:
        query = select(LedgerEntry).filter_by(user_id=user_id)
        if before_id is not None:
            query = query.where(LedgerEntry.id < before_id)
        query = query.order_by(LedgerEntry.id.desc()).limit(limit)
        return list((await self.session.scalars(query)).all())

    async def entries_sum(self, user_id: int) -> int:
        total = await self.session.scalar(
            text("SELECT COALESCE(SUM(amount), 0) FROM ledger_entries WHERE user_id = :u"),
            {"u": user_id},
        )
        return int(total or 0)
