"""A property-based model of the ledger: random credits, debits, reserves, settles and
releases, replays of keys included, against a plain Python model of what must happen."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from core.services import billing
from core.services.billing import InsufficientFunds
from db.engine import UnitOfWorkFactory, create_engine
from tests.factories import register

amounts = st.integers(min_value=1, max_value=5_000)


class LedgerMachine(RuleBasedStateMachine):
    database_url: str = ""
    reservations = Bundle("reservations")
    keys = Bundle("keys")

    def __init__(self) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        self.engine = create_engine(self.database_url, pool_size=2, max_overflow=0)
        self.factory = UnitOfWorkFactory.for_engine(self.engine)
        self.balance = 0
        self.held: dict[int, int] = {}
        self.applied: dict[str, int] = {}  # key -> signed amount it applied

    def run(self, coro: Any) -> Any:
        return self.runner.run(coro)

    async def _call(self, fn: Any, **kwargs: Any) -> Any:
        async with self.factory() as uow, uow.transaction():
            return await fn(uow, **kwargs)

    @initialize()
    def make_user(self) -> None:
        async def make() -> int:
            async with self.factory() as uow:
                return (await register(uow)).user.id

        self.user_id = self.run(make())

    @rule(target=keys, amount=amounts)
    def credit(self, amount: int) -> str:
        key = secrets.token_hex(8)
        entry = self.run(
            self._call(
                billing.credit, user_id=self.user_id, amount=amount, category="topup", key=key
            )
        )
        assert entry.applied
        self.balance += amount
        self.applied[key] = amount
        return key

    @rule(target=keys, amount=amounts)
    def debit(self, amount: int) -> str:
        key = secrets.token_hex(8)
        available = self.balance - sum(self.held.values())
        try:
            self.run(
                self._call(
                    billing.debit, user_id=self.user_id, amount=amount, category="text", key=key
                )
            )
        except InsufficientFunds:
            assert amount > available
            return key
        assert amount <= available
        self.balance -= amount
        self.applied[key] = -amount
        return key

    @rule(key=keys)
    def replay(self, key: str) -> None:
        """Any key used again changes nothing."""
        before = self.balance
        amount = self.applied.get(key)
        if amount is None:
            return
        fn = billing.credit if amount > 0 else billing.debit
        entry = self.run(
            self._call(fn, user_id=self.user_id, amount=abs(amount), category="other", key=key)
        )
        assert not entry.applied
        assert self.balance == before

    @rule(target=reservations, amount=amounts)
    def reserve(self, amount: int) -> billing.ReservationDTO | None:
        available = self.balance - sum(self.held.values())
        try:
            held = self.run(
                self._call(
                    billing.reserve, user_id=self.user_id, amount=amount, key=secrets.token_hex(8)
                )
            )
        except InsufficientFunds:
            assert amount > available
            return None
        assert amount <= available
        self.held[held.id] = amount
        return held

    @rule(reservation=consumes(reservations), amount=st.integers(min_value=0, max_value=8_000))
    def settle(self, reservation: billing.ReservationDTO | None, amount: int) -> None:
        if reservation is None or reservation.id not in self.held:
            return
        held = self.held.pop(reservation.id)
        can_pay = self.balance - sum(self.held.values())
        self.run(
            self._call(
                billing.settle,
                reservation=reservation,
                amount=amount,
                category="text",
                key=secrets.token_hex(8),
            )
        )
        assert can_pay >= held
        self.balance -= min(amount, can_pay)

    @rule(reservation=consumes(reservations))
    def release(self, reservation: billing.ReservationDTO | None) -> None:
        if reservation is None or reservation.id not in self.held:
            return
        del self.held[reservation.id]
        assert self.run(self._call(billing.release, reservation_id=reservation.id))

    @invariant()
    def matches_the_model(self) -> None:
        if not hasattr(self, "user_id"):
            return

        async def check() -> tuple[billing.BalanceDTO, bool]:
            async with self.factory() as uow:
                return (
                    await billing.get_balance(uow, self.user_id),
                    await billing.check_consistency(uow, self.user_id),
                )

        balance, consistent = self.run(check())
        assert balance.balance == self.balance
        assert balance.reserved == sum(self.held.values())
        assert balance.balance >= balance.reserved >= 0
        assert consistent

    def teardown(self) -> None:
        self.run(self.engine.dispose())
        self.runner.close()


def test_the_ledger_matches_its_model_under_random_operations(database_url: str) -> None:
    LedgerMachine.database_url = database_url
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=25,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
