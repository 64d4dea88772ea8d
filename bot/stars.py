"""Telegram's own record of Star payments, for reconciliation."""

from __future__ import annotations

from datetime import UTC, datetime

from aiogram import Bot
from aiogram.types import TransactionPartnerUser

from core.services.reconciliation import ProviderCharge

PAGE = 100


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
                    incoming[t.id] = ProviderCharge("stars", t.id, t.amount, when)
            if len(page.transactions) < PAGE:
                break
            offset += PAGE
        return [
            ProviderCharge(
                c.provider, c.external_id, c.amount, c.created_at, c.external_id in refunded
            )
            for c in incoming.values()
        ]
