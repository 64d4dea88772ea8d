"""Factories for test data, built through the real use cases."""

from __future__ import annotations

import itertools
import random

from core.deeplinks import parse_start_payload
from core.dto import ClientInfo, Registration
from core.services import accounts
from db.uow import UnitOfWork

POLICY = "2026-11-01"
_ids = itertools.count(random.randrange(7_000_000_000, 8_000_000_000, 1000))


def telegram_id() -> int:
    """A Telegram id no other test uses."""
    return next(_ids)


async def register(
    uow: UnitOfWork,
    *,
    tg_id: int | None = None,
    payload: str | None = None,
    language_code: str | None = "en",
    client: ClientInfo | None = None,
    first_name: str = "Test",
) -> Registration:
    return await accounts.register_telegram_user(
        uow,
        telegram_id=tg_id if tg_id is not None else telegram_id(),
        username=None,
        first_name=first_name,
        last_name=None,
        language_code=language_code,
        payload=parse_start_payload(payload),
        policy_version=POLICY,
        client=client or ClientInfo(platform="telegram"),
    )
