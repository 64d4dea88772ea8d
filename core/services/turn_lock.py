"""One reply at a time per user, across the bot and the web app and every process, and Stop.

The lock is one Redis key per user, ``netroom:turn-lock:{user_id}``, holding a random token of
its owner. Invariants:

- only the owner renews or deletes it (compare-and-renew, compare-and-delete in Lua), so a lock
  that expired and was taken by a later turn is never freed by the earlier one;
- it lives ``LOCK_TTL`` seconds and its turn renews it every ``RENEW_EVERY`` seconds, so a crashed
  owner's lock frees itself within ``LOCK_TTL`` seconds; sooner when the token names its
  process (``owner|random``) and that process's heartbeat (``netroom:owner:<owner>``, see
  core/owners.py) is gone: the next turn takes such a lock over at once;
- a turn releases it as soon as it ends, whatever the ending (complete, Stop, failure, cut);
- a second message while the lock is held waits briefly (the previous turn may be finishing its
  bookkeeping) and is refused only while that turn really runs.

Turn ids and their stop flags are per turn: ``netroom:turn:{turn_id}`` names the user whose turn
it is (for Stop from any transport), ``netroom:stop:{turn_id}`` asks it to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import weakref
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from redis.asyncio import Redis

from core.errors import DomainError, NotFound
from core.i18n import N_

log = logging.getLogger(__name__)

LOCK_TTL = 30.0
RENEW_EVERY = 10.0
# How long a turn id stays known after its start, so a late Stop is no error.
TURN_TTL = 600
CLAIM_ATTEMPTS = 10
CLAIM_PAUSE = 0.1
# Where a process's heartbeat lives (core/owners.py).
HEARTBEAT_PREFIX = "netroom:owner:"

# KEYS: the lock, the turn. ARGV: token, user id, lock TTL ms, turn TTL s, heartbeat prefix.
_ACQUIRE = """
local taken = redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[3])
if not taken then
    local held = redis.call('get', KEYS[1])
    local sep = held and string.find(held, '|', 1, true)
    if sep and redis.call('exists', ARGV[5] .. string.sub(held, 1, sep - 1)) == 0 then
        redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[3])
        taken = true
    end
end
if taken then
    redis.call('set', KEYS[2], ARGV[2], 'EX', ARGV[4])
    return 1
end
return 0
"""
# KEYS: the lock, its turn's stop flag. ARGV: token.
_RELEASE = """
redis.call('del', KEYS[2])
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""


class ReplyInProgress(DomainError):
    code = "busy"
    msgid = N_("⏳ I am still answering your previous message. Wait for it or tap Stop.")


def lock_key(user_id: int) -> str:
    return f"netroom:turn-lock:{user_id}"


def _turn_key(turn_id: str) -> str:
    return f"netroom:turn:{turn_id}"


def stop_key(turn_id: str) -> str:
    return f"netroom:stop:{turn_id}"


def new_turn_id() -> str:
    return secrets.token_hex(8)


@dataclass(slots=True)
class TurnLock:
    """A held lock: the user's, for one turn, with its owner's token."""

    user_id: int
    turn_id: str
    token: str
    ttl: float = LOCK_TTL
    released: bool = False

    async def renew(self, redis: Redis) -> bool:
        """Extend the lock; False when it is no longer ours (it expired and was taken)."""
        renewed = await redis.eval(  # type: ignore[misc]
            _RENEW, 1, lock_key(self.user_id), self.token, str(int(self.ttl * 1000))
        )
        return bool(renewed)

    async def release(self, redis: Redis) -> bool:
        """Free the lock if it is still ours (once); forget the stop flag."""
        if self.released:
            return False
        freed = await redis.eval(  # type: ignore[misc]
            _RELEASE, 2, lock_key(self.user_id), stop_key(self.turn_id), self.token
        )
        self.released = True
        return bool(freed)


async def acquire(
    redis: Redis,
    *,
    user_id: int,
    turn_id: str,
    ttl: float = LOCK_TTL,
    attempts: int = CLAIM_ATTEMPTS,
    pause: float = CLAIM_PAUSE,
    owner: str | None = None,
) -> TurnLock:
    """Take the user's one turn, or ReplyInProgress. ``owner``: the process taking it, whose
    heartbeat vouches for the lock (None: only the TTL frees it after a crash)."""
    token = secrets.token_hex(16)
    if owner:
        token = f"{owner.replace('|', '/')}|{token}"
    for attempt in range(attempts):
        taken = await redis.eval(  # type: ignore[misc]
            _ACQUIRE,
            2,
            lock_key(user_id),
            _turn_key(turn_id),
            token,
            str(user_id),
            str(int(ttl * 1000)),
            str(TURN_TTL),
            HEARTBEAT_PREFIX,
        )
        if taken:
            return TurnLock(user_id, turn_id, token, ttl)
        if attempt + 1 < attempts:
            await asyncio.sleep(pause)
    raise ReplyInProgress(f"user {user_id} has a reply in progress")


@contextlib.asynccontextmanager
async def holding(
    redis: Redis,
    *,
    user_id: int,
    turn_id: str,
    ttl: float = LOCK_TTL,
    renew_every: float = RENEW_EVERY,
    attempts: int = CLAIM_ATTEMPTS,
    pause: float = CLAIM_PAUSE,
    owner: str | None = None,
) -> AsyncIterator[TurnLock]:
    """The lock for the block, renewed while it runs and released when it ends (also when the
    block is cancelled: the release is shielded)."""
    lock = await acquire(
        redis,
        user_id=user_id,
        turn_id=turn_id,
        ttl=ttl,
        attempts=attempts,
        pause=pause,
        owner=owner,
    )

    async def keep() -> None:
        while True:
            await asyncio.sleep(renew_every)
            try:
                if lock.released or not await lock.renew(redis):
                    log.warning("turn %s lost its lock", turn_id)
                    return
            except Exception:
                # Redis away for a moment: the next renewal tries again before the TTL ends.
                log.warning("turn %s: lock not renewed", turn_id, exc_info=True)

    renewer = asyncio.create_task(keep())
    try:
        yield lock
    finally:
        renewer.cancel()
        await asyncio.wait([renewer])
        try:
            await asyncio.shield(lock.release(redis))
        except Exception:
            # The TTL frees it anyway.
            log.warning("turn %s: lock not released", turn_id, exc_info=True)


async def request_stop(redis: Redis, *, user_id: int, turn_id: str) -> None:
    """Stop the user's own turn; anybody else's is NotFound."""
    owner = await redis.get(_turn_key(turn_id))
    if owner is None or int(owner) != user_id:
        raise NotFound(f"turn {turn_id}")
    await redis.set(stop_key(turn_id), "1", ex=TURN_TTL)


class StopWatch:
    """The Stop requests of every turn this process streams, read for all of them in one
    ``MGET`` a few times a second, rather than one read per turn each time: with hundreds of
    replies streaming at once the per-turn reads were a good part of the process's work.

    ``watching(turn_id)`` gives the event set when that turn's Stop is seen. The reading task
    runs only while some turn is watched."""

    def __init__(self, redis: Redis, every: float) -> None:
        # Weakly: the watch is kept per client (``stop_watch``) and must not keep it alive.
        self.redis = weakref.ref(redis)
        self.every = every
        self.turns: dict[str, asyncio.Event] = {}
        self.task: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def watching(self, turn_id: str) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        self.turns[turn_id] = event
        task = self.task
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            self.task = asyncio.create_task(self._run())
        try:
            yield event
        finally:
            self.turns.pop(turn_id, None)

    async def _run(self) -> None:
        while self.turns:
            await asyncio.sleep(self.every)
            watched = list(self.turns)
            if not watched:
                break
            redis = self.redis()
            if redis is None:
                break
            try:
                found = await redis.mget([stop_key(turn_id) for turn_id in watched])
            except Exception:
                log.warning("stop flags of %d turns not read", len(watched), exc_info=True)
                continue
            for turn_id, flag in zip(watched, found, strict=True):
                event = self.turns.get(turn_id)
                if flag is not None and event is not None:
                    event.set()


_WATCHES: weakref.WeakKeyDictionary[Redis, StopWatch] = weakref.WeakKeyDictionary()


def stop_watch(redis: Redis, every: float) -> StopWatch:
    """The process's StopWatch for this Redis client."""
    watch = _WATCHES.get(redis)
    if watch is None:
        watch = _WATCHES[redis] = StopWatch(redis, every)
    return watch
