"""Retention: expired messages purged in small batches, technical data scrubbed. Generated
pictures and videos are not purged: they stay until their owner deletes them."""

from __future__ import annotations

import dataclasses
import logging

from core.services import job_runs, retention
from worker.deps import JobDeps

log = logging.getLogger(__name__)


async def scrub_technical_data(deps: JobDeps) -> int:
    async with deps.uow_factory() as uow:
        changed = await retention.scrub_technical_data(uow, now=deps.clock())
    log.info("retention: technical data scrubbed from %d rows", changed)
    async with deps.uow_factory() as uow:
        history = await job_runs.purge_history(uow, now=deps.clock())
    log.info("jobs: %d runs older than the kept history dropped", history)
    return changed


async def purge_expired(deps: JobDeps) -> dict[str, int]:
    async with deps.uow_factory() as uow:
        purged = await retention.purge_expired(uow, now=deps.clock())
    log.info("retention: %s", purged)
    return dataclasses.asdict(purged)
