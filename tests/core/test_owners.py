"""A process of this machine that died leaves its heartbeat key behind until it expires: the
next process to start drops it at once, and only the keys of processes that are really gone."""

from __future__ import annotations

import asyncio
import sys

from redis.asyncio import Redis

from core import owners


async def _python(code: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, "-c", code)


async def _dead_pid() -> int:
    proc = await _python("pass")
    await proc.wait()
    return proc.pid


async def test_heartbeats_of_this_machines_dead_processes_are_dropped_and_no_other(
    redis: Redis,
) -> None:
    me = owners.new_owner_id()
    machine = me.rsplit(":", 2)[0]
    living = await _python("import time; time.sleep(30)")
    try:
        dead = f"{machine}:{await _dead_pid()}:dead0001"
        alive = f"{machine}:{living.pid}:live0001"
        elsewhere = f"another-host/1:{await _dead_pid()}:else0001"
        for owner in (me, dead, alive, elsewhere):
            await owners.beat(redis, owner, owners.HoldTimes().heartbeat_ttl)
        assert await owners.forget_dead_neighbours(redis, me) == [dead]
        assert await owners.alive(redis, [me, dead, alive, elsewhere]) == {me, alive, elsewhere}
    finally:
        living.kill()
        await living.wait()
        await redis.delete(*(owners.heartbeat_key(o) for o in (me, alive, elsewhere)))
