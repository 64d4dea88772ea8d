"""The job queue: a Redis stream read by one consumer group, each job acknowledged after it ends.

Invariants:
- A job leaves the queue (XACK, then XDEL) only after its function returned or raised: the
  worker acknowledges when the job is over (taskiq's ``WHEN_SAVED``; there is no result
  backend, so that is as soon as it ends). A worker killed mid-job leaves the message pending.
- While a job runs, its worker touches the message every third of ``idle_timeout`` (XCLAIM
  JUSTID), so a long job is never handed to a second worker. When the worker dies the touches
  stop, and any worker takes the message over (XAUTOCLAIM) once it has been idle
  ``idle_timeout``: a job whose worker died runs again elsewhere.
- The group reads the stream from its start, so a job queued before any worker ever ran is
  not skipped; a group lost with Redis's data is declared again.
- A message delivered ``max_deliveries`` times (a job that kills its worker every time) is moved
  to the ``<queue>:dead`` stream and logged, instead of killing workers for ever.
- Jobs left in the list the queue used to be (a Redis list under the same name without ``:stream``)
  are moved into the stream at start-up, so an upgrade loses none.
- A worker takes one message at a time, when it has room to run it: it never sits on jobs an
  idle worker could run.
- Redis going away is waited out: reading, touching and acknowledging retry until it is back.
  Every job must therefore be idempotent: a job may run again after a crash or a lost ack.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from taskiq import AckableMessage
from taskiq_redis import RedisStreamBroker

log = logging.getLogger(__name__)

GROUP = "netroom"
FORGET_AFTER_MS = 24 * 3600 * 1000
RETRY_SECONDS = 1.0
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


class DurableStreamBroker(RedisStreamBroker):
    """taskiq's stream broker with in-flight touches, crash-safe reclaiming and a dead-letter
    stream (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        queue_name: str,
        idle_timeout: float = 60.0,
        max_deliveries: int = 5,
        legacy_list: str | None = None,
        batch: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            url,
            queue_name=queue_name,
            consumer_group_name=GROUP,
            consumer_id="0",
            idle_timeout=int(idle_timeout * 1000),
            xread_count=batch,
            unacknowledged_batch_size=batch,
            **kwargs,
        )
        self.max_deliveries = max_deliveries
        self.dead_letters = f"{queue_name}:dead"
        self.legacy_list = legacy_list
        self._touching: dict[bytes, asyncio.Task[None]] = {}

    async def startup(self) -> None:
        await super().startup()
        if self.legacy_list is not None:
            await self._adopt_legacy_list(self.legacy_list)
        if self.is_worker_process:
            await self._forget_gone_consumers()

    async def _forget_gone_consumers(self) -> None:
        """Each worker process is a new consumer; those long gone with nothing pending are
        dropped from the group (one that is alive after all is simply added again)."""
        async with Redis(connection_pool=self.connection_pool) as redis:
            for consumer in await redis.xinfo_consumers(self.queue_name, self.consumer_group_name):
                if int(consumer["pending"]) == 0 and int(consumer["idle"]) > FORGET_AFTER_MS:
                    await redis.xgroup_delconsumer(
                        self.queue_name, self.consumer_group_name, consumer["name"]
                    )

    async def shutdown(self) -> None:
        # Jobs still held here stay pending and are taken over after the idle timeout.
        for task in self._touching.values():
            task.cancel()
        self._touching.clear()
        await super().shutdown()

    async def _adopt_legacy_list(self, name: str) -> None:
        async with Redis(connection_pool=self.connection_pool) as redis:
            if await redis.type(name) not in (b"list", "list"):
                return
            moved = 0
            # Oldest first (the list broker pushed on the left and popped on the right).
            while (data := await redis.rpop(name)) is not None:  # type: ignore[misc]
                await redis.xadd(self.queue_name, {b"data": data})
                moved += 1
            if moved:
                log.info("jobs: %d queued job(s) moved from the list %s to the stream", moved, name)

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        unreachable = False
        async with Redis(connection_pool=self.connection_pool) as redis:
            while True:
                try:
                    claimed = await self._reclaim(redis)
                    fetched = await redis.xreadgroup(
                        self.consumer_group_name,
                        self.consumer_name,
                        {self.queue_name: ">"},
                        block=self.block,
                        count=self.count,
                    )
                except _UNREACHABLE as exc:
                    # Once per outage, not once per retry.
                    if not unreachable:
                        log.warning("jobs: Redis unreachable (%s); waiting for it", exc)
                    unreachable = True
                    await asyncio.sleep(RETRY_SECONDS)
                    continue
                except ResponseError as exc:
                    if "NOGROUP" not in str(exc):
                        raise
                    log.warning("jobs: the consumer group is gone (Redis lost its data)")
                    await self._declare_consumer_group()
                    continue
                if unreachable:
                    log.warning("jobs: Redis reachable again; taking jobs")
                    unreachable = False
                # Touched from the moment they are held, even while they wait their turn here.
                batch = [self._deliver(self.queue_name, msg_id, f) for msg_id, f in claimed]
                batch += [
                    self._deliver(stream, msg_id, f)
                    for stream, messages in fetched
                    for msg_id, f in messages
                ]
                for message in batch:
                    yield message

    async def _reclaim(self, redis: Redis) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """Messages idle past the timeout, taken over by this consumer; those delivered too
        often go to the dead-letter stream instead."""
        reply = await redis.xautoclaim(
            self.queue_name,
            self.consumer_group_name,
            self.consumer_name,
            min_idle_time=self.idle_timeout,
            count=self.unacknowledged_batch_size,
        )
        claimed: list[tuple[bytes, dict[bytes, bytes]]] = []
        for msg_id, fields in reply[1]:
            if not fields:
                # Trimmed or deleted meanwhile: nothing to run.
                await redis.xack(self.queue_name, self.consumer_group_name, msg_id)
                continue
            info = await redis.xpending_range(
                self.queue_name, self.consumer_group_name, min=msg_id, max=msg_id, count=1
            )
            deliveries = int(info[0]["times_delivered"]) if info else 1
            if deliveries > self.max_deliveries:
                log.error(
                    "jobs: message %s was delivered %d times; moved to %s",
                    msg_id,
                    deliveries,
                    self.dead_letters,
                )
                async with redis.pipeline(transaction=True) as pipe:
                    pipe.xadd(self.dead_letters, fields)
                    pipe.xack(self.queue_name, self.consumer_group_name, msg_id)
                    pipe.xdel(self.queue_name, msg_id)
                    await pipe.execute()
                continue
            log.info("jobs: message %s taken over (delivery %d)", msg_id, deliveries)
            claimed.append((msg_id, fields))
        return claimed

    def _deliver(self, stream: bytes | str, msg_id: bytes, fields: dict[bytes, bytes]) -> Any:
        key = msg_id
        self._touching[key] = asyncio.create_task(self._touch(stream, msg_id))

        async def ack() -> None:
            toucher = self._touching.pop(key, None)
            if toucher is not None:
                toucher.cancel()
            await self._retrying(lambda: self._ack(stream, msg_id))

        return AckableMessage(data=fields[b"data"], ack=ack)

    async def _ack(self, stream: bytes | str, msg_id: bytes) -> None:
        async with (
            Redis(connection_pool=self.connection_pool) as redis,
            redis.pipeline(transaction=True) as pipe,
        ):
            pipe.xack(stream, self.consumer_group_name, msg_id)
            pipe.xdel(stream, msg_id)
            await pipe.execute()

    async def _touch(self, stream: bytes | str, msg_id: bytes) -> None:
        """Keep a message this worker holds from looking abandoned."""
        every = self.idle_timeout / 3000
        while True:
            await asyncio.sleep(every)
            with contextlib.suppress(RedisError, OSError):
                async with Redis(connection_pool=self.connection_pool) as redis:
                    await redis.xclaim(
                        stream,
                        self.consumer_group_name,
                        self.consumer_name,
                        min_idle_time=0,
                        message_ids=[msg_id],
                        justid=True,
                    )

    async def _retrying(
        self, action: Callable[[], Awaitable[None]], *, for_seconds: float = 300
    ) -> None:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + for_seconds
        while True:
            try:
                await action()
                return
            except _UNREACHABLE as exc:
                if loop.time() > give_up:
                    # The message stays pending and runs again elsewhere; jobs are idempotent.
                    log.error("jobs: acknowledgement lost (%s)", exc)
                    return
                await asyncio.sleep(RETRY_SECONDS)
