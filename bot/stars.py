"""Telegram's own record of Star payments (with the payer and the invoice payload, so a charge
whose update was lost can be credited), for reconciliation; subscription renewals."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import TransactionPartnerUser

from core.services.reconciliation import ProviderCharge
from core.services.subscriptions import RenewalRefused, RenewalSwitch

PAGE = 100


def renewal_switch(bot: Bot) -> RenewalSwitch:
    """Cancelling and resuming a subscription's renewals, told to Telegram by this bot (from the
    bot's /subscribe and from the web app); a refusal becomes a domain error, so nothing is
    recorded."""

    async def switch(*, telegram_id: int, charge_id: str, renew: bool) -> None:
        try:
            await bot.edit_user_star_subscription(
                user_id=telegram_id, telegram_payment_charge_id=charge_id, is_canceled=not renew
            )
        except TelegramAPIError as exc:
            raise RenewalRefused(f"editUserStarSubscription: {exc}") from exc

    return switch


class TelegramStars:
    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def star_charges(self, since: datetime) -> list[ProviderCharge]:
        """Payments users made since ``since`` (newest first from Telegram, paged), each marked
        refunded when a refund of the same charge appears."""
        incoming: dict[str, ProviderCharge] = {}
        refunded: set[str] = set()
        offset = 0
        while True:
            page = await self.bot.get_star_transactions(offset=offset, limit=PAGE)
            for t in page.transactions:
                when = (
                    t.date if isinstance(t.date, datetime) else datetime.fromtimestamp(t.date, UTC)
                )
                if isinstance(t.receiver, TransactionPartnerUser):
                    refunded.add(t.id)
                elif isinstance(t.source, TransactionPartnerUser) and when >= since:
                    incoming[t.id] = ProviderCharge(
                        "stars",
                        t.id,
                        t.amount,
                        when,
                        payload=t.source.invoice_payload,
                        payer_telegram_id=t.source.user.id,
                        subscription_period=t.source.subscription_period,
                    )
            if len(page.transactions) < PAGE:
                break
            offset += PAGE
        return [replace(c, refunded=c.external_id in refunded) for c in incoming.values()]
