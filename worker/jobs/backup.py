"""The daily backup (embedded Postgres only; elsewhere the deployment has none)."""

from __future__ import annotations

from worker.deps import JobDeps


async def daily_backup(deps: JobDeps) -> dict[str, int]:
    if deps.backup is None:
        return {}
    return await deps.backup(deps.clock())
