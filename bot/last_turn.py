"""Where the bot showed a user's last turn: the Telegram ids of the prompt and of the reply's
last message, with the stored prompt's id (None when history is off). An edit of that prompt
asks again; the reply is marked replaced when it is. Ids only, never text; it lapses with the
history it points to. Redis failing here costs only the edit-to-ask-again of this turn."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass

from redis.asyncio import Redis

from core.services.turns import RETENTION

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LastTurn:
    chat_id: int
    prompt_tg: int | None
    prompt_id: int | None
    reply_tg: int | None


def _key(user_id: int) -> str:
    return f"bot:last_turn:{user_id}"


async def remember(redis: Redis, user_id: int, last: LastTurn) -> None:
    try:
        await redis.set(_key(user_id), json.dumps(asdict(last)), ex=int(RETENTION.total_seconds()))
    except Exception:
        log.warning("user %s: the last turn was not remembered", user_id, exc_info=True)


async def recall(redis: Redis, user_id: int) -> LastTurn | None:
    try:
        raw = await redis.get(_key(user_id))
    except Exception:
        log.warning("user %s: the last turn was not read", user_id, exc_info=True)
        return None
    if not raw:
        return None
    try:
        return LastTurn(**json.loads(raw))
    except (TypeError, ValueError):
        return None
