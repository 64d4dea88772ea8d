"""Broadcasts: delivered from their cursor on at a steady rate, one run at a time per broadcast
(a Redis lock kept fresh while it works), and resumed after a restart."""

from __future__ import annotations

import asyncio
import logging
import secrets

from core.ports import JobQueue
from core.services import broadcasts, support
from worker.deps import JobDeps

log = logging.getLogger(__name__)

LOCK_SECONDS = 60
PROGRESS_EVERY = 2.0


async def run_broadcast(deps: JobDeps, broadcast_id: int) -> dict[str, int]:
    """Deliver a broadcast from its cursor on; a second run of the same one waits its turn."""
    if deps.notifier is None or deps.redis is None:
        raise RuntimeError("this worker cannot send broadcasts (no bot or no Redis)")
    lock = f"netroom:broadcast:{broadcast_id}"
    token = secrets.token_hex(8)
    if not await deps.redis.set(lock, token, nx=True, ex=LOCK_SECONDS):
        return {"skipped": 1}
    try:
        return await deliver(deps, broadcast_id, lock, token)
    finally:
        if await deps.redis.get(lock) == token.encode():
            await deps.redis.delete(lock)


async def resume_broadcasts(deps: JobDeps, queue: JobQueue) -> int:
    """After a restart: every unfinished broadcast nobody is running goes on."""
    if deps.redis is None:
        return 0
    async with deps.uow_factory() as uow:
        pending = await broadcasts.unfinished(uow)
    resumed = 0
    for broadcast_id in pending:
        if not await deps.redis.exists(f"netroom:broadcast:{broadcast_id}"):
            await queue.enqueue("broadcasts.run", broadcast_id=broadcast_id)
            resumed += 1
    return resumed


def progress_text(b: broadcasts.BroadcastDTO, *, finished: bool) -> str:
    head = f"Broadcast #{b.id} {'finished' if finished else 'in progress'}"
    return f"{head}: {b.done}/{b.total} handled, {b.sent} delivered, {b.failed} not delivered."


async def deliver(deps: JobDeps, broadcast_id: int, lock: str, token: str) -> dict[str, int]:
    """The delivery loop of a run holding ``lock`` (with ``token``)."""
    assert deps.notifier is not None and deps.redis is not None
    interval = 1.0 / max(deps.broadcast_rate, 0.1)
    loop = asyncio.get_running_loop()
    last_report = loop.time()
    while True:
        async with deps.uow_factory() as uow:
            current = await broadcasts.get(uow, broadcast_id)
            if current.status in ("done", "cancelled"):
                return {"sent": current.sent, "failed": current.failed}
            batch = await broadcasts.next_recipients(uow, current)
        if not batch:
            break
        for user_id, telegram_id in batch:
            started = loop.time()
            outcome = await deps.notifier.copy_message(
                telegram_id=telegram_id,
                from_chat_id=current.source_chat_id,
                message_id=current.source_message_id,
            )
            async with deps.uow_factory() as uow:
                if outcome == "blocked":
                    await support.mark_bot_blocked(uow, user_id=user_id, now=deps.clock())
                await broadcasts.advance(
                    uow, broadcast_id, user_id=user_id, delivered=outcome == "sent"
                )
            await deps.redis.expire(lock, LOCK_SECONDS)
            if current.progress_message_id and loop.time() - last_report > PROGRESS_EVERY:
                last_report = loop.time()
                async with deps.uow_factory() as uow:
                    now_state = await broadcasts.get(uow, broadcast_id)
                await _report(deps, now_state, finished=False)
            await asyncio.sleep(max(0.0, interval - (loop.time() - started)))
    async with deps.uow_factory() as uow:
        done = await broadcasts.finish(uow, broadcast_id, now=deps.clock())
    await _report(deps, done, finished=True)
    log.info("broadcast %d: %d sent, %d failed", done.id, done.sent, done.failed)
    return {"sent": done.sent, "failed": done.failed}


async def _report(deps: JobDeps, b: broadcasts.BroadcastDTO, *, finished: bool) -> None:
    if deps.notifier is None or b.progress_chat_id is None or b.progress_message_id is None:
        return
    await deps.notifier.edit_text(
        chat_id=b.progress_chat_id,
        message_id=b.progress_message_id,
        text=progress_text(b, finished=finished),
    )
