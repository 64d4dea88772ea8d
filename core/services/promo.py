"""Promo codes: an amount credited at once (category bonus), or a percentage bonus applied to the
user's next paid top-up. Limits per code and per user, expiry, and the redemption history."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update

from core.errors import InvalidInput, NotFound
from core.i18n import N_
from core.services import billing
from db.models import PromoCode, PromoRedemption
from db.uow import UnitOfWork

CODE_RE = re.compile(r"^[A-Z0-9_-]{3,32}$")


class PromoUnknown(NotFound):
    code = "promo_unknown"
    msgid = N_("There is no such promo code.")


class PromoExpired(InvalidInput):
    code = "promo_expired"
    msgid = N_("This promo code has expired or has been used up.")


class PromoAlreadyUsed(InvalidInput):
    code = "promo_already_used"
    msgid = N_("You have already used this promo code.")


@dataclass(frozen=True, slots=True)
class Redeemed:
    kind: str
    # Kopecks credited now (amount codes), or the percent waiting for the next top-up.
    value: int


def normalise(code: str) -> str:
    return code.strip().upper()


async def create_code(
    uow: UnitOfWork,
    *,
    code: str,
    kind: str,
    value: int,
    max_redemptions: int | None = None,
    per_user: int = 1,
    expires_at: datetime | None = None,
) -> None:
    code = normalise(code)
    if not CODE_RE.fullmatch(code) or kind not in ("amount", "percent") or value <= 0:
        raise InvalidInput(f"promo code {code!r} {kind} {value}")
    if kind == "percent" and value > 100:
        raise InvalidInput("a percentage bonus is at most 100")
    uow.session.add(
        PromoCode(
            code=code,
            kind=kind,
            value=value,
            max_redemptions=max_redemptions,
            per_user=per_user,
            expires_at=expires_at,
        )
    )
    await uow.commit()


async def redeem(uow: UnitOfWork, *, user_id: int, code: str, now: datetime) -> Redeemed:
    """Use a code once (or as many times per user as it allows). The code row is locked, so
    concurrent redemptions never exceed its limits."""
    async with uow.transaction():
        promo = (
            await uow.session.scalars(
                select(PromoCode).where(PromoCode.code == normalise(code)).with_for_update()
            )
        ).first()
        if promo is None:
            raise PromoUnknown(code[:32])
        if (promo.expires_at is not None and promo.expires_at <= now) or (
            promo.max_redemptions is not None and promo.redeemed >= promo.max_redemptions
        ):
            raise PromoExpired(promo.code)
        used = await uow.session.scalar(
            select(func.count())
            .select_from(PromoRedemption)
            .where(PromoRedemption.code_id == promo.id, PromoRedemption.user_id == user_id)
        )
        if (used or 0) >= promo.per_user:
            raise PromoAlreadyUsed(promo.code)
        kind, value, promo_id = promo.kind, promo.value, promo.id
        redemption = PromoRedemption(
            code_id=promo_id,
            user_id=user_id,
            status="credited" if kind == "amount" else "pending",
            credited=value if kind == "amount" else 0,
            created_at=now,
        )
        uow.session.add(redemption)
        await uow.session.execute(
            update(PromoCode)
            .where(PromoCode.id == promo_id)
            .values(redeemed=PromoCode.redeemed + 1)
        )
        await uow.session.flush()
        if kind == "amount":
            await billing.add_credit(
                uow,
                user_id=user_id,
                amount=value,
                category="bonus",
                key=f"promo:{redemption.id}",
                charge=billing.Charge(meta={"promo_code": promo.code}),
            )
    return Redeemed(kind, value)


async def take_pending_bonus(uow: UnitOfWork, user_id: int) -> tuple[int, int] | None:
    """(redemption id, percent) of a bonus waiting for this user's next top-up, marked applied.
    A step of the top-up's own transaction."""
    row = (
        await uow.session.execute(
            select(PromoRedemption.id, PromoCode.value)
            .join(PromoCode, PromoCode.id == PromoRedemption.code_id)
            .where(PromoRedemption.user_id == user_id, PromoRedemption.status == "pending")
            .order_by(PromoRedemption.id)
            .limit(1)
            .with_for_update(of=PromoRedemption)
        )
    ).first()
    if row is None:
        return None
    await uow.session.execute(
        update(PromoRedemption).where(PromoRedemption.id == row[0]).values(status="applied")
    )
    return int(row[0]), int(row[1])
