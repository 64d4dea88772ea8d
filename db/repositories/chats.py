"""Chat statements on the hot path: appending a message is one statement on the unit of work's
own asyncpg connection (outside a transaction it commits on its own)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

APPEND = """
    INSERT INTO messages (conversation_id, user_id, role, content, reasoning, model_id,
                          input_tokens, output_tokens, status, created_at, expires_at, cost,
                          sources)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
    RETURNING id
"""


class ChatsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def execute_raw(self, sql: str, *args: object) -> None:
        """A statement from the repositories' own constants on the asyncpg connection."""
        connection = await self.session.connection()
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        await driver.execute(sql, *args)

    async def append_message(
        self,
        *,
        conversation_id: int,
        user_id: int,
        role: str,
        content: str,
        reasoning: str | None,
        model_id: str | None,
        input_tokens: int | None,
        output_tokens: int | None,
        status: str,
        created_at: datetime,
        expires_at: datetime,
        cost: int | None = None,
        sources: list[str] | None = None,
    ) -> int:
        connection = await self.session.connection()
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        message_id = await driver.fetchval(
            APPEND,
            conversation_id,
            user_id,
            role,
            content,
            reasoning,
            model_id,
            input_tokens,
            output_tokens,
            status,
            created_at,
            expires_at,
            cost,
            sources,
        )
        return int(message_id)
