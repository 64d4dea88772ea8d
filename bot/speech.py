"""Replies read aloud: after a reply is complete, a user who turned "Read replies aloud" on gets
it again as a voice message, synthesised by the speech model and billed like any request."""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import BufferedInputFile, Message
from aiogram.utils.i18n import gettext as _
from redis.asyncio import Redis

from bot.context import BotContext
from core.errors import DomainError
from core.providers.registry import ProviderRegistry
from core.services import voice
from core.services.billing import InsufficientFunds
from db.engine import UnitOfWorkFactory

log = logging.getLogger(__name__)


class Speaker:
    """Reads one user's replies aloud into one chat."""

    def __init__(
        self,
        message: Message,
        bot: Bot,
        ctx: BotContext,
        *,
        user_id: int,
        redis: Redis,
        providers: ProviderRegistry,
        uow_factory: UnitOfWorkFactory,
    ) -> None:
        assert ctx.speech is not None
        self.message = message
        self.bot = bot
        self.model = ctx.speech
        self.owner = ctx.owner
        self.user_id = user_id
        self.redis = redis
        self.providers = providers
        self.uow_factory = uow_factory

    async def __call__(self, text: str, *, key: str) -> None:
        """Send ``text`` as a voice message; a refusal or a failure is told, never raised."""
        try:
            spoken = await voice.speak(
                self.uow_factory,
                self.redis,
                provider=self.providers.speech(self.model.provider),
                model=self.model,
                user_id=self.user_id,
                text=text,
                key=key,
                owner=self.owner,
            )
        except InsufficientFunds:
            await self.message.answer(
                _("🔇 Not enough money on your balance to read the reply aloud.")
            )
            return
        except DomainError as exc:
            log.info("chat %s: reply not read aloud: %s", self.message.chat.id, exc.detail)
            await self.message.answer(
                _("🔇 The reply could not be read aloud. {reason}").format(reason=_(exc.msgid))
            )
            return
        if spoken is None:
            return
        try:
            await self.bot.send_voice(
                self.message.chat.id,
                BufferedInputFile(spoken.data, filename="reply.ogg"),
                message_thread_id=self.message.message_thread_id
                if self.message.is_topic_message
                else None,
            )
        except TelegramAPIError as exc:
            # Paid for and not delivered: the money goes back.
            log.warning(
                "chat %s: the spoken reply %s was not delivered: %s",
                self.message.chat.id,
                key,
                exc,
            )
            await voice.refund_speech(
                self.uow_factory,
                user_id=self.user_id,
                model_id=self.model.id,
                amount=spoken.charged,
                key=key,
            )
