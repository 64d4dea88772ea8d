"""What administrators do to accounts. Every action writes an audit record in the same
transaction as the change itself."""

from __future__ import annotations

from core.errors import InvalidInput, NotFound
from core.services import audit, billing
from core.services.billing import EntryDTO, InsufficientFunds
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
    existing = await uow.ledger.entry_by_key(key)
    if existing is not None:
        replay = billing.entry_of(existing, applied=False)
        await uow.end_read()
        return replay
    user = await uow.users.get(user_id)
    if user is None or user.deleted_at is not None:
        raise NotFound(f"user {user_id}")
    await uow.begin()
    before = await billing.get_balance(uow, user_id)
    charge = billing.Charge(meta={"admin": admin_telegram_id, "reason": reason[:200]})
    try:
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
                await uow.rollback()
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
        await uow.commit()
    except DuplicateKey:
        await uow.rollback()
        return await adjust_balance(
            uow,
            admin_telegram_id=admin_telegram_id,
            user_id=user_id,
            amount=amount,
            reason=reason,
            key=key,
        )
    return entry
