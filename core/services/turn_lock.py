"""One reply at a time per user, and Stop, across processes."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from core.errors import DomainError, NotFound
from core.i18n import N_


class ReplyInProgress(DomainError):
    code = "busy"
    msgid = N_("⏳ I am still answering your previous message. Wait for it or tap Stop.")


TURN_TTL = 600


def _busy_key(user_id: int) -> str:
    return f"netroom:web:busy:{user_id}"


def _turn_key(turn_id: str) -> str:
    return f"netroom:web:turn:{turn_id}"


def _stop_key(turn_id: str) -> str:
    return f"netroom:web:stop:{turn_id}"


async def claim_turn(
    redis: Redis, *, user_id: int, turn_id: str, attempts: int = 3, pause: float = 0.05
) -> None:
    """Take the user's one turn, or ReplyInProgress. The previous reply may be finishing its
    bookkeeping; a short wait covers that, so only a reply still being written refuses."""
    for attempt in range(attempts):
        if await redis.set(_busy_key(user_id), turn_id, nx=True, ex=TURN_TTL):
            # Whose turn it is, for Stop; kept a while after the end so a late Stop is no error.
            await redis.set(_turn_key(turn_id), str(user_id), ex=TURN_TTL)
            return
        if attempt + 1 < attempts:
            await asyncio.sleep(pause)
    raise ReplyInProgress(f"user {user_id} has a reply in progress")


async def release_turn(redis: Redis, *, user_id: int, turn_id: str) -> None:
    key = _busy_key(user_id)
    held = await redis.get(key)
    # Only our own flag: one that expired and was taken by a later turn stays.
    if held is not None and (held.decode() if isinstance(held, bytes) else held) == turn_id:
        await redis.delete(key)
    await redis.delete(_stop_key(turn_id))


async def request_stop(redis: Redis, *, user_id: int, turn_id: str) -> None:
    """Stop the user's own turn; anybody else's is NotFound."""
    owner = await redis.get(_turn_key(turn_id))
    if owner is None or int(owner) != user_id:
        raise NotFound(f"turn {turn_id}")
    await redis.set(_stop_key(turn_id), "1", ex=TURN_TTL)


async def stop_requested(redis: Redis, turn_id: str) -> bool:
    return bool(await redis.exists(_stop_key(turn_id)))
