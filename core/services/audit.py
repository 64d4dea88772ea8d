"""Records the privacy policy promises: the technical request log."""

from __future__ import annotations

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
