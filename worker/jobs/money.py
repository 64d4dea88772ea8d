"""Money and subscriptions: the top-up notice, free-tier resets, subscription expiry and
cancellation, an erased account's support trace, and reconciliation with the providers."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from core.services import accounts, billing, payments, reconciliation, tariffs
from worker.deps import JobDeps

log = logging.getLogger(__name__)


async def notify_top_up(deps: JobDeps, user_id: int, credited: int) -> bool:
    """Tell the user in Telegram that a card payment reached the balance."""
    if deps.notifier is None:
        return False
    async with deps.uow_factory() as uow:
        user = await accounts.get_user(uow, user_id)
        balance = await billing.get_balance(uow, user_id)
    if user.telegram_id is None:
        return False
    await deps.notifier.send_top_up(
        telegram_id=user.telegram_id,
        credited=credited,
        balance=balance.balance,
        language=user.language,
    )
    return True


REFERRAL_TOLD_KEY = "netroom:referral-told:{earning}"
REFERRAL_TOLD_TTL = 7 * 86400


async def notify_referral_earnings(deps: JobDeps, payment_id: int) -> int:
    """Tell each inviter what a friend's top-up earned them; once per payment, however often
    the job runs (a redelivered job, a payment healed by reconciliation). How many were told."""
    if deps.notifier is None:
        return 0
    async with deps.uow_factory() as uow:
        earnings = await payments.earnings_from_payment(uow, payment_id)
    told = 0
    for earning in earnings:
        if earning.telegram_id is None or earning.amount <= 0:
            continue
        if deps.redis is not None:
            key = REFERRAL_TOLD_KEY.format(earning=earning.once_key)
            if not await deps.redis.set(key, 1, nx=True, ex=REFERRAL_TOLD_TTL):
                continue
        try:
            await deps.notifier.send_referral_earning(
                telegram_id=earning.telegram_id,
                amount=earning.amount,
                level=earning.level,
                language=earning.language,
            )
            told += 1
        except Exception:
            # A notice, not money: the earning is in the ledger and shown by /referral.
            log.warning("referral notice to user %d not sent", earning.user_id, exc_info=True)
    return told


async def cancel_subscription(deps: JobDeps, telegram_id: int, charge_id: str) -> bool:
    """Stop Telegram renewing a subscription (its account was erased)."""
    if deps.notifier is None:
        raise RuntimeError("this worker has no bot")
    return await deps.notifier.cancel_star_subscription(
        telegram_id=telegram_id, charge_id=charge_id
    )


async def erase_support_trace(
    deps: JobDeps, admin_chat_id: int, topic_id: int | None, message_ids: list[int]
) -> bool:
    """An erased account's support conversation leaves the admin chat too."""
    if deps.notifier is None:
        raise RuntimeError("this worker has no bot")
    await deps.notifier.erase_support_trace(
        admin_chat_id=admin_chat_id, topic_id=topic_id, message_ids=tuple(message_ids)
    )
    return True


async def reset_free_tier(deps: JobDeps) -> int:
    if deps.tariffs is None:
        return 0
    async with deps.uow_factory() as uow:
        return await tariffs.reset_free_tier(uow, deps.tariffs, now=deps.clock())


async def expire_subscriptions(deps: JobDeps) -> int:
    async with deps.uow_factory() as uow:
        return await tariffs.expire_subscriptions(uow, now=deps.clock())


async def reconcile_payments(deps: JobDeps, days: int = 2) -> dict[str, object]:
    report = await reconcile_now(deps, days=days)
    if report.worth_telling and deps.notifier is not None and deps.admin_chat_ids:
        await deps.notifier.send_admin_report(chat_ids=deps.admin_chat_ids, text=report.summary())
    # The payer never heard their top-up arrive (its update was lost): now they do.
    for healed in report.healed:
        if healed.top_up:
            try:
                await notify_top_up(deps, healed.user_id, healed.kopecks)
            except Exception:
                log.warning("top-up notice for user %d not sent", healed.user_id, exc_info=True)
        if healed.payment_id is not None:
            await notify_referral_earnings(deps, healed.payment_id)
    return {
        "checked": report.checked,
        "healed": len(report.healed),
        "differences": len(report.differences),
    }


async def reconcile_now(deps: JobDeps, *, days: int) -> reconciliation.Report:
    """Compare the last ``days`` of payments with Telegram's and YooKassa's records, and heal
    what their records prove (with ``deps.payment_terms``)."""
    until = deps.clock()
    since = until - timedelta(days=days)
    charges: list[reconciliation.ProviderCharge] = []
    providers: list[str] = []
    window = reconciliation.MARGIN
    if deps.stars_source is not None:
        charges += await deps.stars_source.star_charges(since - window)
        providers.append("stars")
    if deps.yookassa is not None:
        for p in await deps.yookassa.list_payments(
            created_from=since - window, created_before=until + window, status="succeeded"
        ):
            charges.append(
                reconciliation.ProviderCharge(
                    provider="yookassa",
                    external_id=p.id,
                    amount=p.amount,
                    created_at=datetime.fromisoformat(p.created_at.replace("Z", "+00:00")),
                    refunded=p.refunded_amount >= p.amount > 0,
                )
            )
        providers.append("yookassa")
    async with deps.uow_factory() as uow:
        report = await reconciliation.reconcile(
            uow, since=since, until=until, charges=charges, providers=providers
        )
        if deps.payment_terms is not None and deps.tariffs is not None:
            report = await reconciliation.heal(
                uow,
                report,
                charges,
                terms=deps.payment_terms,
                tariffs=deps.tariffs,
                yookassa=deps.yookassa,
                now=deps.clock(),
            )
    for difference in report.differences:
        log.warning("reconciliation: %s", difference)
    log.info("reconciliation: %s", report.checked)
    return report
