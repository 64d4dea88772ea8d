"""Processes own the holds they make, and holds die with their owner.

Invariants:
- Every process that serves turns has one owner id (``machine:pid:random``; the machine is the
  host name and, on Linux, the boot id and the pid namespace), written on each reservation it
  makes, and a heartbeat key in Redis (``netroom:owner:<id>``) that lives ``ttl`` seconds and
  is renewed well within that.
- A process starting drops the heartbeats of processes of its own machine whose process id is
  gone (``forget_dead_neighbours``): after a crash and a restart on the same machine, the dead
  process's locks and holds are taken over at once, not when its key expires.
- The sweeper, at start-up and then periodically in each such process, first applies the
  settlements kept while Postgres was away (core/services/settlement.py), then releases held
  reservations whose owner process has no heartbeat, and ownerless ones older than
  ``ownerless_after``, never one with a kept settlement nor one owned by durable background work
  (``job:…``, settled or released by that work; the hourly stale-hold release still bounds it).
  Releases go through the ledger's guarded statement, so the balances stay exact
  (reserved = Σ held) however many sweepers run at once.
- A process that stops cleanly drops its heartbeat and sweeps: nothing it held outlives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import RedisError

from core.clock import utcnow
from core.services import settlement
from db.uow import UnitOfWork

log = logging.getLogger(__name__)

HEARTBEAT_PREFIX = "netroom:owner:"
# Holds owned by durable background work (a video being made at the provider, watched by a job
# that survives restarts) rather than by a process: the work settles or releases them itself.
JOB_OWNER = "job:"
SWEEP_BATCH = 1_000
OWNERLESS_AFTER = timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class HoldTimes:
    """How fast a dead process's holds come back (the defaults are the product's promise)."""

    heartbeat_ttl: timedelta = timedelta(seconds=30)
    sweep_every: timedelta = timedelta(seconds=30)
    ownerless_after: timedelta = OWNERLESS_AFTER

    @property
    def beat_every(self) -> float:
        return max(self.heartbeat_ttl.total_seconds() / 3, 0.1)


@dataclass(frozen=True, slots=True)
class Swept:
    settlements_applied: int
    holds_released: int


def _machine() -> str:
    """This machine as process ids see it: the host name and, on Linux, the kernel's boot id
    and the pid namespace. Two machines may share a host name (and every machine's first pid
    namespace has the same number), and two containers on one machine have process ids of
    their own: only the three together say that a process id means the same process."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")
        return f"{socket.gethostname()}/{boot}/{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return socket.gethostname()


def new_owner_id() -> str:
    return f"{_machine()}:{os.getpid()}:{secrets.token_hex(4)}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        # Someone else's process: alive.
        return True
    return True


async def forget_dead_neighbours(redis: Redis, me: str) -> list[str]:
    """Drop the heartbeats of processes of this machine that are gone (``kill -9``, a crash)
    while their keys still live: their locks can then be taken over and their holds released
    at once, not when the keys expire. Only where the machine is known by its pid namespace
    (Linux); a process id now used by this process counts as gone."""
    machine, _, _ = me.rsplit(":", 2)
    if "/" not in machine:
        return []
    dead: list[str] = []
    async for key in redis.scan_iter(match=f"{HEARTBEAT_PREFIX}{machine}:*", count=500):
        owner = (key.decode() if isinstance(key, bytes) else str(key))[len(HEARTBEAT_PREFIX) :]
        if owner == me:
            continue
        try:
            their_machine, pid_text, _ = owner.rsplit(":", 2)
            pid = int(pid_text)
        except ValueError:
            continue
        if their_machine == machine and (pid == os.getpid() or not _pid_alive(pid)):
            dead.append(owner)
    if dead:
        await redis.delete(*(heartbeat_key(owner) for owner in dead))
        log.info("heartbeats of %d stopped processes of this machine dropped", len(dead))
    return dead


def heartbeat_key(owner: str) -> str:
    return HEARTBEAT_PREFIX + owner


async def beat(redis: Redis, owner: str, ttl: timedelta) -> None:
    await redis.set(heartbeat_key(owner), "1", px=max(int(ttl.total_seconds() * 1000), 1))


async def alive(redis: Redis, owners: list[str]) -> set[str]:
    if not owners:
        return set()
    values = await redis.mget([heartbeat_key(o) for o in owners])
    return {o for o, v in zip(owners, values, strict=True) if v is not None}


async def sweep(
    uow_factory: Callable[[], UnitOfWork],
    redis: Redis,
    *,
    now: datetime,
    ownerless_after: timedelta = OWNERLESS_AFTER,
) -> Swept:
    """Apply kept settlements, then release the holds nobody alive owns."""
    applied = await settlement.apply_pending(uow_factory, redis)
    async with uow_factory() as uow:
        async with uow.reading():
            owners = await uow.ledger.held_owners()
        processes = [o for o in owners if not o.startswith(JOB_OWNER)]
        dead = sorted(set(processes) - await alive(redis, processes))
        # Read after the liveness check: a settlement kept by a process that then died is in
        # the hash by now, and its hold stays for apply_pending.
        keep = sorted(await settlement.pending_ids(redis))
        async with uow.transaction():
            released = await uow.ledger.release_orphans(
                dead_owners=dead,
                ownerless_before=now - ownerless_after,
                keep=keep,
                limit=SWEEP_BATCH,
            )
    if released:
        log.info("released %d holds of stopped processes", released)
    return Swept(applied, released)


async def keep_alive(
    uow_factory: Callable[[], UnitOfWork],
    redis: Redis,
    owner: str,
    times: HoldTimes,
    *,
    clock: Callable[[], datetime] = utcnow,
) -> None:
    """Renew the heartbeat and sweep periodically, until cancelled. Failures (Postgres or
    Redis away) are logged and retried at the next tick, never fatal."""
    loop = asyncio.get_running_loop()
    next_sweep = loop.time()
    while True:
        try:
            await beat(redis, owner, times.heartbeat_ttl)
        except (RedisError, OSError):
            log.warning("heartbeat could not be written", exc_info=True)
        if loop.time() >= next_sweep:
            next_sweep = loop.time() + times.sweep_every.total_seconds()
            try:
                await sweep(uow_factory, redis, now=clock(), ownerless_after=times.ownerless_after)
            except Exception:
                log.warning("hold sweep failed; retrying later", exc_info=True)
        await asyncio.sleep(min(times.beat_every, times.sweep_every.total_seconds()))


async def step_down(
    uow_factory: Callable[[], UnitOfWork],
    redis: Redis,
    owner: str,
    *,
    ownerless_after: timedelta,
    clock: Callable[[], datetime] = utcnow,
) -> None:
    """On a clean stop: drop the heartbeat, then sweep, so nothing this process held stays."""
    with contextlib.suppress(RedisError, OSError):
        await redis.delete(heartbeat_key(owner))
    try:
        await sweep(uow_factory, redis, now=clock(), ownerless_after=ownerless_after)
    except Exception:
        log.warning("final hold sweep failed; another process will do it", exc_info=True)
