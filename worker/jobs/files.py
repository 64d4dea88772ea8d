"""Jobs that index uploaded documents, and the sweep that keeps none stuck.

``files.index`` may run twice for one file (a redelivery after a crash, a sweep racing a slow
queue): the use case claims the file first, so only one run works on it and only that run tells
the owner. While it works, it keeps its claim fresh every third of the deadline; a worker that
dies stops doing so. A run that finds the file held waits (up to twice the deadline) and takes
it over once the claim is stale, so the job of a dead worker, redelivered, finishes the file by
itself; ``files.reap`` (every minute, and once at each worker's start) catches what has no job
left, queuing it again or, after too many starts, failing it and telling the owner why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

from core.ports import JobQueue
from core.services import files
from worker.deps import JobDeps

log = logging.getLogger(__name__)


async def index_file(deps: JobDeps, file_id: int) -> str:
    """Index an uploaded file, then tell its owner it is ready (or why it is not)."""
    if deps.media_store is None:
        raise RuntimeError("this worker has no media store")
    store = deps.media_store
    # Only a claim made by this run (at or after this time) is kept fresh by it.
    since = deps.clock()
    keeper = asyncio.create_task(_keep_claim(deps, file_id, lambda: since))
    loop = asyncio.get_running_loop()
    deadline = deps.file_limits.index_deadline.total_seconds()
    give_up = loop.time() + 2 * deadline
    try:
        while True:
            since = deps.clock()
            async with deps.uow_factory() as uow:
                done = await files.index(
                    uow,
                    store,
                    file_id=file_id,
                    limits=deps.file_limits,
                    embedder=deps.embedder,
                    now=since,
                )
            if done.status != "indexing" or loop.time() > give_up:
                break
            # Another worker holds it. If that one died (this may be its job, taken over),
            # its claim goes stale within the deadline and this run takes the file.
            await asyncio.sleep(min(deadline / 3, 5.0))
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
    if done.finished_here:
        await _tell_owner(deps, done)
    return done.status


async def reap_stuck_files(deps: JobDeps, queue: JobQueue) -> dict[str, int]:
    """Files a stopped worker left queued or indexing: queued again, or failed."""
    async with deps.uow_factory() as uow:
        reaped = await files.reap_stuck(uow, limits=deps.file_limits, now=deps.clock())
    for file_id in reaped.requeued:
        await queue.enqueue("files.index", file_id=file_id)
    for failed in reaped.failed:
        try:
            await _tell_owner(deps, failed)
        except Exception:
            # One owner who blocked the bot does not keep the others from being told.
            log.warning("files: the owner of file %d was not told", failed.id, exc_info=True)
    return {"requeued": len(reaped.requeued), "failed": len(reaped.failed)}


async def _keep_claim(deps: JobDeps, file_id: int, since: Callable[[], datetime]) -> None:
    every = max(deps.file_limits.index_deadline.total_seconds() / 3, 0.1)
    while True:
        await asyncio.sleep(every)
        try:
            async with deps.uow_factory() as uow:
                await files.keep_claim(uow, file_id, now=deps.clock(), since=since())
        except Exception:
            # The database is away for a moment; the next beat tries again.
            log.warning("files: could not keep file %d in hand", file_id, exc_info=True)


async def _tell_owner(deps: JobDeps, done: files.FileDTO) -> None:
    if deps.notifier is None:
        return
    async with deps.uow_factory() as uow:
        owner = await files.owner_of(uow, done.id)
    if owner is None:
        return
    telegram_id, language = owner
    if done.status == "ready":
        await deps.notifier.send_notice(
            telegram_id=telegram_id,
            msgid=files.NOTICE_READY,
            language=language,
            name=done.name,
            chunks=done.chunks,
        )
    elif done.status == "failed":
        msgid, params = files.failure_reason(done.error, deps.file_limits)
        await deps.notifier.send_notice(
            telegram_id=telegram_id, msgid=msgid, language=language, **params
        )
