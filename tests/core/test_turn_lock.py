"""The user's one turn lock on real Redis: renewed while held, released only by its owner,
and a short wait lets a turn in right after the previous one ends."""

from __future__ import annotations

import asyncio
import contextlib
import secrets

import pytest
from redis.asyncio import Redis

from core.errors import NotFound
from core.services import turn_lock


def _user() -> int:
    return secrets.randbelow(10**9) + 10**9


async def test_a_held_lock_is_renewed_past_its_ttl_and_freed_at_the_end(redis: Redis) -> None:
    user_id = _user()
    key = turn_lock.lock_key(user_id)
    async with turn_lock.holding(
        redis, user_id=user_id, turn_id="t1", ttl=0.5, renew_every=0.1
    ) as lock:
        await asyncio.sleep(1.5)
        assert (await redis.get(key)) == lock.token.encode()
        with pytest.raises(turn_lock.ReplyInProgress):
            await turn_lock.acquire(redis, user_id=user_id, turn_id="t2", attempts=2, pause=0.05)
    assert not await redis.exists(key)


async def test_only_the_owner_frees_the_lock(redis: Redis) -> None:
    user_id = _user()
    key = turn_lock.lock_key(user_id)
    first = await turn_lock.acquire(redis, user_id=user_id, turn_id="a", ttl=0.2)
    await asyncio.sleep(0.4)
    # The first owner's lock expired and a later turn took it: the late release leaves it.
    second = await turn_lock.acquire(redis, user_id=user_id, turn_id="b", ttl=5)
    assert not await first.release(redis)
    assert (await redis.get(key)) == second.token.encode()
    assert await second.release(redis)
    assert not await redis.exists(key)


async def test_a_turn_waits_briefly_for_one_that_is_ending(redis: Redis) -> None:
    user_id = _user()
    first = await turn_lock.acquire(redis, user_id=user_id, turn_id="x")

    async def finish_soon() -> None:
        await asyncio.sleep(0.25)
        await first.release(redis)

    ending = asyncio.create_task(finish_soon())
    second = await turn_lock.acquire(redis, user_id=user_id, turn_id="y")
    await ending
    assert second.turn_id == "y"
    await second.release(redis)


async def test_stop_is_for_the_turns_own_user_only(redis: Redis) -> None:
    user_id = _user()
    lock = await turn_lock.acquire(redis, user_id=user_id, turn_id=turn_lock.new_turn_id())
    with pytest.raises(NotFound):
        await turn_lock.request_stop(redis, user_id=user_id + 1, turn_id=lock.turn_id)
    assert not await redis.exists(turn_lock.stop_key(lock.turn_id))
    await turn_lock.request_stop(redis, user_id=user_id, turn_id=lock.turn_id)
    assert await redis.exists(turn_lock.stop_key(lock.turn_id))
    await lock.release(redis)
    assert not await redis.exists(turn_lock.stop_key(lock.turn_id))


async def test_a_lock_of_a_process_without_a_heartbeat_is_taken_over_at_once(
    redis: Redis,
) -> None:
    user_id = _user()
    alive, dead = f"alive-{secrets.token_hex(4)}", f"dead-{secrets.token_hex(4)}"
    await redis.set(turn_lock.HEARTBEAT_PREFIX + alive, "1", ex=30)
    held = await turn_lock.acquire(redis, user_id=user_id, turn_id="a", owner=alive)
    # A living owner's lock holds.
    with pytest.raises(turn_lock.ReplyInProgress):
        await turn_lock.acquire(redis, user_id=user_id, turn_id="b", attempts=2, pause=0.05)
    await held.release(redis)
    # A lock left by a process whose heartbeat is gone does not wait for its TTL.
    await redis.set(turn_lock.lock_key(user_id), f"{dead}|token", px=30_000)
    taken = await turn_lock.acquire(redis, user_id=user_id, turn_id="c", attempts=1)
    assert (await redis.get(turn_lock.lock_key(user_id))) == taken.token.encode()
    await taken.release(redis)
    await redis.delete(turn_lock.HEARTBEAT_PREFIX + alive)


async def test_one_stop_watch_sees_each_turns_own_stop_and_ends_with_the_last_turn(
    redis: Redis,
) -> None:
    user_id = _user()
    locks = [
        await turn_lock.acquire(redis, user_id=user_id + n, turn_id=turn_lock.new_turn_id())
        for n in range(3)
    ]
    watch = turn_lock.stop_watch(redis, 0.05)
    assert turn_lock.stop_watch(redis, 0.05) is watch
    with contextlib.ExitStack() as stack:
        events = [stack.enter_context(watch.watching(lock.turn_id)) for lock in locks]
        await asyncio.sleep(0.2)
        assert not any(event.is_set() for event in events)
        await turn_lock.request_stop(redis, user_id=user_id + 1, turn_id=locks[1].turn_id)
        async with asyncio.timeout(2):
            await events[1].wait()
        await asyncio.sleep(0.2)
        assert not events[0].is_set() and not events[2].is_set()
        task = watch.task
        assert task is not None and not task.done()
    # Nothing watched: the reading task ends by itself.
    async with asyncio.timeout(2):
        await task
    for lock in locks:
        await lock.release(redis)
