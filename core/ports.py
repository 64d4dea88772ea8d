"""What the core needs from the outside to reach a user; the bot implements it."""

from __future__ import annotations

from typing import Protocol


class Notifier(Protocol):
    async def send_video(
        self,
        *,
        telegram_id: int,
        data: bytes,
        file_name: str,
        prompt: str,
        model_id: str,
        charged: int,
        language: str,
    ) -> None:
        """The finished video, captioned with its prompt, model and price (kopecks)."""
        ...

    async def send_notice(
        self, *, telegram_id: int, msgid: str, language: str, **params: object
    ) -> None:
        """A translated message; ``params`` are formatted into it after translation."""
        ...

    async def send_top_up(
        self, *, telegram_id: int, credited: int, balance: int, language: str
    ) -> None: ...

    async def send_referral_earning(
        self, *, telegram_id: int, amount: int, level: int, language: str
    ) -> None:
        """Tell an inviter that a friend's top-up earned them ``amount`` kopecks."""
        ...

    async def send_admin_report(self, *, chat_ids: tuple[int, ...], text: str) -> None: ...

    async def copy_message(self, *, telegram_id: int, from_chat_id: int, message_id: int) -> str:
        """Copy a message to a user: ``sent``, ``blocked`` (they blocked the bot) or ``failed``."""
        ...

    async def edit_text(self, *, chat_id: int, message_id: int, text: str) -> None: ...

    async def cancel_star_subscription(self, *, telegram_id: int, charge_id: str) -> bool: ...

    async def erase_support_trace(
        self, *, admin_chat_id: int, topic_id: int | None, message_ids: tuple[int, ...]
    ) -> None:
        """Delete an erased user's support topic (or their messages) from the admin chat."""
        ...


class JobQueue(Protocol):
    """Background work handed to the worker (any process, any machine)."""

    async def enqueue(self, task_name: str, **kwargs: object) -> None: ...
