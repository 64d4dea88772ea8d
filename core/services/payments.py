"""Top-ups: Telegram Stars invoices, the pre-checkout check, crediting each payment exactly
once, refunds, and the referral earnings a paid top-up brings the inviters.

Invoice payloads are signed (HMAC-SHA256, truncated to 128 bits) so nobody can forge an invoice
for another user or another amount: ``s1.<user id>.<stars>.<nonce>.<signature>``, well under
Telegram's 128-byte limit.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert

from core import metrics
from core.errors import DomainError, NotFound
from core.i18n import N_
from core.services import billing, promo
from db.models import LedgerEntry, Payment, PromoRedemption, Subscription, User
from db.uow import UnitOfWork


class PaymentRefused(DomainError):
    code = "payment_refused"
    msgid = N_("This invoice is not valid any more. Please ask for a new one with /topup.")


@dataclass(frozen=True)
class PaymentTerms:
    kopecks_per_star: int
    star_packages: tuple[int, ...]
    referral_percents: tuple[int, int]
    secret: bytes

    @classmethod
    def build(
        cls,
        *,
        kopecks_per_star: int,
        star_packages: list[int],
        referral_level1_percent: int,
        referral_level2_percent: int,
        signing_secret: str,
    ) -> PaymentTerms:
        # A key of its own, derived from the deployment's secret.
        key = hmac.new(signing_secret.encode(), b"netroom invoice payload", hashlib.sha256)
        return cls(
            kopecks_per_star=kopecks_per_star,
            star_packages=tuple(star_packages),
            referral_percents=(referral_level1_percent, referral_level2_percent),
            secret=key.digest(),
        )


@dataclass(frozen=True)
class StarOffer:
    stars: int
    kopecks: int


@dataclass(frozen=True)
class TopUp:
    payment_id: int
    user_id: int
    credited: int
    balance_after: int
    # False when this payment had been recorded before (a redelivered update).
    applied: bool


@dataclass(frozen=True)
class Refund:
    payment_id: int
    user_id: int
    taken_back: int
    # Referral earnings reversed, per inviter.
    reversed_earnings: dict[int, int]
    # Recorded earlier (by Telegram's refund notice or a first /refund): the figures are what
    # was taken back then.
    recorded_before: bool = False


def star_offers(terms: PaymentTerms) -> list[StarOffer]:
    return [StarOffer(stars, stars * terms.kopecks_per_star) for stars in terms.star_packages]


def sign(terms: PaymentTerms, body: str) -> str:
    digest = hmac.new(terms.secret, body.encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def verify(terms: PaymentTerms, payload: str, version: str) -> tuple[str, str, str]:
    """The three fields of a payload this deployment signed (``<version>.<a>.<b>.<nonce>.<sig>``),
    else PaymentRefused."""
    parts = payload.split(".")
    if len(parts) != 5 or parts[0] != version:
        raise PaymentRefused("malformed invoice payload")
    body = ".".join(parts[:4])
    if not hmac.compare_digest(parts[4], sign(terms, body)):
        raise PaymentRefused("invoice payload signature does not match")
    return parts[0], parts[1], parts[2]


def invoice_payload(terms: PaymentTerms, *, user_id: int, stars: int) -> str:
    if stars not in terms.star_packages:
        raise PaymentRefused(f"{stars} Stars is not an offered package")
    body = f"s1.{user_id}.{stars}.{secrets.token_urlsafe(6)}"
    return f"{body}.{sign(terms, body)}"


def parse_payload(terms: PaymentTerms, payload: str) -> tuple[int, int]:
    """(user id, stars) from a payload this deployment signed, else PaymentRefused."""
    _, user_id, stars = verify(terms, payload, "s1")
    try:
        return int(user_id), int(stars)
    except ValueError as exc:
        raise PaymentRefused("malformed invoice payload") from exc


async def _payer(
    uow: UnitOfWork, terms: PaymentTerms, telegram_id: int, payload: str
) -> tuple[User, int]:
    user_id, stars = parse_payload(terms, payload)
    user = await uow.users.get(user_id)
    if user is None or user.telegram_id != telegram_id:
        raise PaymentRefused(f"invoice of user {user_id} paid by telegram id {telegram_id}")
    return user, stars


async def check_stars_checkout(
    uow: UnitOfWork,
    terms: PaymentTerms,
    *,
    telegram_id: int,
    payload: str,
    currency: str,
    total_amount: int,
) -> None:
    """The pre-checkout check: our invoice, for this user, for the amount we asked."""
    async with uow.reading():
        user, stars = await _payer(uow, terms, telegram_id, payload)
        blocked, user_id = user.is_blocked, user.id
    if currency != "XTR" or total_amount != stars:
        raise PaymentRefused(f"{total_amount} {currency} does not match {stars} XTR")
    if blocked:
        raise PaymentRefused(f"user {user_id} is blocked")


async def record_stars_payment(
    uow: UnitOfWork,
    terms: PaymentTerms,
    *,
    telegram_id: int,
    charge_id: str,
    payload: str,
    currency: str,
    total_amount: int,
) -> TopUp:
    """Credit a successful Stars payment once, however many times its update arrives, and pay
    the inviters their share. One transaction: all of it happens or none."""
    try:
        user, stars = await _payer(uow, terms, telegram_id, payload)
        if currency != "XTR" or total_amount != stars:
            raise PaymentRefused(f"paid {total_amount} {currency} for {stars} XTR")
    except PaymentRefused:
        metrics.payment("stars", "refused")
        raise
    return await credit_payment(
        uow,
        terms,
        user=user,
        provider="stars",
        external_id=charge_id,
        currency=currency,
        amount=total_amount,
        kopecks=stars * terms.kopecks_per_star,
        payload=payload,
    )


async def credit_payment(
    uow: UnitOfWork,
    terms: PaymentTerms,
    *,
    user: User,
    provider: str,
    external_id: str,
    currency: str,
    amount: int,
    kopecks: int,
    payload: str | None,
) -> TopUp:
    balance = await billing.get_balance(uow, user.id)
    credited = billing.with_bonus(kopecks, balance.bonus_percent)
    inserted = await uow.session.scalar(
        insert(Payment)
        .values(
            user_id=user.id,
            provider=provider,
            external_id=external_id,
            currency=currency,
            amount=amount,
            credited=credited,
            payload=payload,
        )
        .on_conflict_do_nothing(index_elements=["provider", "external_id"])
        .returning(Payment.id)
    )
    if inserted is None:
        await uow.rollback()
        metrics.payment(provider, "duplicate")
        existing = await _payment(uow, provider, external_id)
        after = await billing.get_balance(uow, existing.user_id)
        return TopUp(existing.id, existing.user_id, existing.credited, after.balance, False)
    meta = {"payment_id": inserted, "provider": provider, "external_id": external_id}
    entry = await billing.add_credit(
        uow,
        user_id=user.id,
        amount=credited,
        category="topup",
        key=f"payment:{inserted}",
        charge=billing.Charge(meta=meta),
    )
    await _pay_inviters(uow, terms, user=user, payment_id=inserted, base=kopecks)
    balance_after = entry.balance_after
    bonus = await promo.take_pending_bonus(uow, user.id)
    if bonus is not None:
        # A percentage promo waiting for this top-up; bonuses never earn the inviters anything.
        redemption_id, percent = bonus
        extra = kopecks * percent // 100
        if extra > 0:
            bonus_entry = await billing.add_credit(
                uow,
                user_id=user.id,
                amount=extra,
                category="bonus",
                key=f"promo-bonus:{redemption_id}",
                charge=billing.Charge(meta={"payment_id": inserted, "percent": percent}),
            )
            await uow.session.execute(
                update(PromoRedemption)
                .where(PromoRedemption.id == redemption_id)
                .values(credited=extra)
            )
            credited += extra
            balance_after = bonus_entry.balance_after
    await uow.commit()
    metrics.payment(provider, "credited")
    return TopUp(inserted, user.id, credited, balance_after, True)


async def _pay_inviters(
    uow: UnitOfWork, terms: PaymentTerms, *, user: User, payment_id: int, base: int
) -> None:
    """Level 1 and level 2 earn a share of the paid amount (bonuses never count)."""
    chain = await uow.users.inviter_chain(user.id, depth=2)
    for level, (inviter_id, percent) in enumerate(
        zip(chain, terms.referral_percents, strict=False), start=1
    ):
        earning = base * percent // 100
        if earning <= 0:
            continue
        await billing.add_credit(
            uow,
            user_id=inviter_id,
            amount=earning,
            category="referral",
            key=f"referral:{payment_id}:{level}",
            charge=billing.Charge(
                meta={"payment_id": payment_id, "level": level, "from_user_id": user.id}
            ),
        )


async def _payment(uow: UnitOfWork, provider: str, external_id: str) -> Payment:
    row = (
        await uow.session.scalars(
            select(Payment).filter_by(provider=provider, external_id=external_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"{provider} payment {external_id}")
    return row


async def refund_payment(
    uow: UnitOfWork, *, provider: str, external_id: str, now: datetime
) -> Refund:
    """After the provider refunded a payment: take back its credit and the referral earnings it
    brought, as far as the money has not been spent. Idempotent."""
    async with uow.transaction():
        payment = await _payment(uow, provider, external_id)
        payment_id, user_id = payment.id, payment.user_id
        changed = await uow.session.execute(
            update(Payment)
            .where(Payment.id == payment_id, Payment.status == "paid")
            .values(status="refunded", refunded_at=now)
            .execution_options(synchronize_session=False)
        )
        if changed.rowcount == 0:  # type: ignore[attr-defined]
            # Refunded before: nothing changes; say what was taken back then.
            return await _refund_recorded(uow, payment_id, user_id)
        # A refunded subscription charge ends the period it paid for.
        await uow.session.execute(
            update(Subscription)
            .where(Subscription.last_charge_id == external_id, Subscription.status != "expired")
            .values(status="expired", current_period_end=now)
            .execution_options(synchronize_session=False)
        )
        taken = await billing.take_up_to(
            uow,
            user_id=payment.user_id,
            amount=payment.credited,
            category="topup",
            key=f"refund:{payment.id}",
            charge=billing.Charge(meta={"payment_id": payment.id, "external_id": external_id}),
        )
        reversed_earnings: dict[int, int] = {}
        for level in (1, 2):
            earning = await uow.ledger.entry_by_key(f"referral:{payment.id}:{level}")
            if earning is None:
                continue
            back = await billing.take_up_to(
                uow,
                user_id=earning.user_id,
                amount=earning.amount,
                category="referral",
                key=f"referral-refund:{payment.id}:{level}",
                charge=billing.Charge(meta={"payment_id": payment.id, "level": level}),
            )
            reversed_earnings[earning.user_id] = -back.amount if back else 0
    metrics.payment(provider, "refunded")
    return Refund(payment.id, payment.user_id, -taken.amount if taken else 0, reversed_earnings)


async def _refund_recorded(uow: UnitOfWork, payment_id: int, user_id: int) -> Refund:
    taken = await uow.ledger.entry_by_key(f"refund:{payment_id}")
    reversed_earnings: dict[int, int] = {}
    for level in (1, 2):
        back = await uow.ledger.entry_by_key(f"referral-refund:{payment_id}:{level}")
        if back is not None:
            reversed_earnings[back.user_id] = -back.amount
    return Refund(
        payment_id,
        user_id,
        -taken.amount if taken else 0,
        reversed_earnings,
        recorded_before=True,
    )


@dataclass(frozen=True, slots=True)
class ReferralEarning:
    """What one inviter earned from one payment, and where to tell them."""

    user_id: int
    telegram_id: int | None
    language: str
    amount: int
    level: int
    # The ledger entry: which earning this is, for telling it once.
    entry_id: int = 0
    recorded_at: datetime | None = None

    @property
    def once_key(self) -> str:
        """Names this earning uniquely, even across a database restored or recreated under
        the same Redis."""
        stamp = self.recorded_at.timestamp() if self.recorded_at is not None else 0
        return f"{self.entry_id}:{stamp:.6f}"


async def earnings_from_payment(uow: UnitOfWork, payment_id: int) -> list[ReferralEarning]:
    """The inviters' earnings a payment brought (none when it had no inviters)."""
    keys = [f"referral:{payment_id}:{level}" for level in (1, 2)]
    async with uow.reading():
        rows = (
            await uow.session.execute(
                select(
                    LedgerEntry.user_id,
                    User.telegram_id,
                    User.language,
                    LedgerEntry.amount,
                    LedgerEntry.idempotency_key,
                    LedgerEntry.id,
                    LedgerEntry.created_at,
                )
                .join(User, User.id == LedgerEntry.user_id)
                .where(LedgerEntry.idempotency_key.in_(keys))
                .order_by(LedgerEntry.idempotency_key)
            )
        ).all()
    return [
        ReferralEarning(
            row.user_id,
            row.telegram_id,
            row.language,
            row.amount,
            int(row.idempotency_key.rsplit(":", 1)[1]),
            row.id,
            row.created_at,
        )
        for row in rows
    ]


async def balance_of(uow: UnitOfWork, user_id: int) -> billing.BalanceDTO:
    async with uow.reading():
        return await billing.get_balance(uow, user_id)


async def history_of(
    uow: UnitOfWork, user_id: int, *, limit: int, before_id: int | None = None
) -> list[billing.EntryDTO]:
    """A page of the user's ledger, newest first (``before_id`` pages back)."""
    async with uow.reading():
        return await billing.history(uow, user_id, limit=limit, before_id=before_id)


async def referral_earnings(uow: UnitOfWork, user_id: int) -> int:
    async with uow.reading():
        earned = await uow.ledger.earned(user_id, "referral")
    return earned


# --- Stars invoices for the Mini App -----------------------------------------------------------


class InvoiceLinks(Protocol):
    """Makes a Telegram Stars invoice link (the bot's ``createInvoiceLink``), which the Mini App
    opens with ``openInvoice``; the payment then arrives at the bot like any other. With a
    ``subscription_period`` (seconds) Telegram charges it again every period until cancelled."""

    async def __call__(
        self,
        *,
        title: str,
        description: str,
        payload: str,
        stars: int,
        subscription_period: int | None = None,
    ) -> str: ...


async def stars_invoice_link(
    links: InvoiceLinks,
    terms: PaymentTerms,
    *,
    user_id: int,
    stars: int,
    title: str,
    description: str,
) -> str:
    """An invoice link for one of the offered Star packages, payable by this user only (the
    signed payload names them; the pre-checkout check compares the payer)."""
    payload = invoice_payload(terms, user_id=user_id, stars=stars)
    return await links(title=title, description=description, payload=payload, stars=stars)
