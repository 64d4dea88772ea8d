"""Chat statements on the hot path: appending a message is one statement on the unit of work's
own asyncpg connection (``db.driver``: outside a transaction it commits on its own)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from db.driver import driver_of

APPEND = """
    INSERT INTO messages (conversation_id, user_id, role, content, reasoning, model_id,
                          input_tokens, output_tokens, status, created_at, expires_at, cost,
                          sources)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
    RETURNING id
"""


NEW_CONVERSATION = """
    WITH c AS (
        INSERT INTO conversations (user_id, title, model_id, preset_id)
        VALUES ($1, $2, NULL, $3)
        RETURNING id),
    u AS (
        UPDATE users SET features = features || jsonb_build_object('conversation_id', c.id)
        FROM c WHERE users.id = $1)
    SELECT id FROM c
"""


class ChatsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def execute_raw(self, sql: str, *args: object) -> None:
        """A statement from the repositories' own constants on the asyncpg connection."""
        driver = await driver_of(self.session)
        await driver.execute(sql, *args)

    async def new_conversation(
        self, *, user_id: int, title: str | None, preset_id: int | None
    ) -> int:
        """A conversation following the user's default model, made the user's current one:
        one statement."""
        driver = await driver_of(self.session)
        return int(await driver.fetchval(NEW_CONVERSATION, user_id, title, preset_id))

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
        driver = await driver_of(self.session)
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
