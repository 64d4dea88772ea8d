"""What administrators do to accounts. Every action writes an audit record in the same
transaction as the change itself."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from core.errors import InvalidInput, NotFound
from core.i18n import N_
from core.services import audit, billing, payments
from core.services.billing import EntryDTO, InsufficientFunds
from core.services.payments import Refund
from db.models import Identity, Payment, User
from db.repositories.ledger import DuplicateKey
from db.uow import UnitOfWork

MAX_ADJUSTMENT = 10_000_000  # kopecks: 100 000 roubles at a time


async def adjust_balance(
    uow: UnitOfWork,
    *,
    admin_telegram_id: int,
    user_id: int,
    amount: int,
    reason: str,
    key: str,
) -> EntryDTO:
    """Add (``amount`` > 0) or take (< 0) kopecks by hand: an adjustment entry plus the audit
    record. ``key`` makes a repeated command apply once. Taking more than is available is
    refused: the balance never goes below zero."""
    reason = reason.strip()
    if amount == 0 or abs(amount) > MAX_ADJUSTMENT:
        raise InvalidInput(f"adjustment of {amount} kopecks")
    if not reason:
        raise InvalidInput("an adjustment needs a reason")
    try:
        async with uow.transaction():
            existing = await uow.ledger.entry_by_key(key)
            if existing is not None:
                return billing.entry_of(existing, applied=False)
            user = await uow.users.get(user_id)
            if user is None or user.deleted_at is not None:
                raise NotFound(f"user {user_id}")
            before = await billing.get_balance(uow, user_id)
            charge = billing.Charge(meta={"admin": admin_telegram_id, "reason": reason[:200]})
            if amount > 0:
                entry = await billing.add_credit(
                    uow,
                    user_id=user_id,
                    amount=amount,
                    category="other",
                    key=key,
                    kind="adjustment",
                    charge=charge,
                )
            else:
                args = billing.posting_args(
                    user_id=user_id,
                    amount=-amount,
                    kind="adjustment",
                    category="other",
                    key=key,
                    charge=charge,
                )
                row = await uow.ledger.debit(args)
                if row is None:
                    raise InsufficientFunds(
                        f"user {user_id} has {before.available}, cannot take {-amount}",
                        needed=-amount,
                        available=before.available,
                    )
                entry = billing.record_of(row)
            await audit.record_admin_action(
                uow,
                admin_telegram_id=admin_telegram_id,
                action="adjust",
                target_user_id=user_id,
                before={"balance": before.balance},
                after={"balance": entry.balance_after},
                reason=reason,
            )
    except DuplicateKey:
        # Applied meanwhile by the same command: answered as a repeat.
        return await adjust_balance(
            uow,
            admin_telegram_id=admin_telegram_id,
            user_id=user_id,
            amount=amount,
            reason=reason,
            key=key,
        )
    return entry


class UserNotFound(NotFound):
    code = "user_not_found"
    msgid = N_("No such user.")


async def find_user(uow: UnitOfWork, query: str) -> int:
    """An account by internal id, Telegram id, @username or email."""
    query = query.strip()
    user_id: int | None = None
    async with uow.reading():
        if query.startswith("@") and len(query) > 1:
            user_id = await uow.session.scalar(
                select(User.id).where(func.lower(User.username) == query[1:].lower()).limit(1)
            )
        elif "@" in query:
            user_id = await uow.session.scalar(
                select(Identity.user_id)
                .where(Identity.provider.in_(("email", "google", "yandex")))
                .where(
                    (func.lower(Identity.email) == query.lower())
                    | ((Identity.provider == "email") & (Identity.subject == query.lower()))
                )
                .limit(1)
            )
        elif query.lstrip("-").isdigit():
            number = int(query)
            user_id = await uow.session.scalar(
                select(User.id).where((User.telegram_id == number) | (User.id == number)).limit(1)
            )
    if user_id is None:
        raise UserNotFound(f"no user for {query!r}")
    return user_id


async def set_blocked(
    uow: UnitOfWork, *, admin_telegram_id: int, user_id: int, blocked: bool, reason: str = ""
) -> bool:
    """Block or unblock an account (a blocked account gets nothing from the bot or the web app).
    False when it already was in that state."""
    async with uow.transaction():
        user = await uow.users.get(user_id, for_update=True)
        if user is None or user.deleted_at is not None:
            raise UserNotFound(f"user {user_id}")
        before = user.is_blocked
        if before == blocked:
            # Nothing to change.
            return False
        user.is_blocked = blocked
        await audit.record_admin_action(
            uow,
            admin_telegram_id=admin_telegram_id,
            action="block" if blocked else "unblock",
            target_user_id=user_id,
            before={"is_blocked": before},
            after={"is_blocked": blocked},
            reason=reason or None,
        )
    return True


async def stars_charge_owner(uow: UnitOfWork, charge_id: str) -> tuple[int, int]:
    """(user id, Telegram id) of a Stars charge, for refunding it."""
    async with uow.reading():
        row = (
            await uow.session.execute(
                select(Payment.user_id, User.telegram_id)
                .join(User, User.id == Payment.user_id)
                .where(Payment.provider == "stars", Payment.external_id == charge_id)
            )
        ).first()
    if row is None or row[1] is None:
        raise NotFound(f"stars charge {charge_id}")
    return int(row[0]), int(row[1])


async def record_refund(
    uow: UnitOfWork, *, admin_telegram_id: int, charge_id: str, now: datetime
) -> Refund:
    """After Telegram refunded a charge: take back its credit and earnings, and log who did it."""
    refund = await payments.refund_payment(uow, provider="stars", external_id=charge_id, now=now)
    async with uow.transaction():
        await audit.record_admin_action(
            uow,
            admin_telegram_id=admin_telegram_id,
            action="refund",
            target_user_id=refund.user_id,
            target=charge_id,
            before={"payment_id": refund.payment_id},
            after={"taken_back": refund.taken_back, "reversed_earnings": refund.reversed_earnings},
        )
    return refund
