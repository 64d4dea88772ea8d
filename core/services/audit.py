"""Records the privacy policy promises: the technical request log and the administrative
action log."""

from __future__ import annotations

from typing import Any

from db.models import AdminAction
from db.uow import UnitOfWork


async def log_request(
    uow: UnitOfWork, *, user_id: int | None, method: str, endpoint: str, status: int
) -> None:
    """One row per web request; a single statement that commits on its own."""
    await uow.chats.execute_raw(
        "INSERT INTO request_log (user_id, method, endpoint, status) VALUES ($1, $2, $3, $4)",
        user_id,
        method[:8],
        endpoint[:128],
        status,
    )


async def record_admin_action(
    uow: UnitOfWork,
    *,
    admin_telegram_id: int,
    action: str,
    target_user_id: int | None = None,
    target: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str | None = None,
) -> None:
    """The administrative action log: who, what, when, target, before and after. A step of the
    action's own transaction: it is recorded exactly when the action happens."""
    uow.session.add(
        AdminAction(
            admin_telegram_id=admin_telegram_id,
            action=action[:32],
            target_user_id=target_user_id,
            target=None if target is None else target[:128],
            before=before or {},
            after=after or {},
            reason=None if reason is None else reason[:512],
        )
    )
    await uow.session.flush()
