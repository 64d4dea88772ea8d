"""Find and name conversations: full-text indexes over message text and conversation titles,
and conversations.model_id nullable (null: the user's default model).

Both indexes are GIN over ``to_tsvector('russian', x) || to_tsvector('english', x)``: a query is
``websearch_to_tsquery('russian', q) || websearch_to_tsquery('english', q)``, so a word matches
in either language's stemming (the expressions must stay exactly as ``core.services.search``
writes them, or the planner cannot use the indexes).

Existing conversations were stamped with the model picked when they began, while turns always
used the user's current pick: they become null (the user's default), which is what they did.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-05 23:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _document(column: str) -> str:
    return (
        f"(to_tsvector('russian'::regconfig, {column})"
        f" || to_tsvector('english'::regconfig, {column}))"
    )


def upgrade() -> None:
    op.alter_column("conversations", "model_id", existing_type=sa.String(128), nullable=True)
    op.execute("UPDATE conversations SET model_id = NULL")
    op.execute(f"CREATE INDEX ix_messages_search ON messages USING gin ({_document('content')})")
    title = _document("coalesce(title, '')")
    op.execute(f"CREATE INDEX ix_conversations_search ON conversations USING gin ({title})")


def downgrade() -> None:
    op.drop_index("ix_conversations_search", table_name="conversations")
    op.drop_index("ix_messages_search", table_name="messages")
    # The model that last answered there, else the empty id (the menu's default then).
    op.execute(
        "UPDATE conversations AS c SET model_id = coalesce(("
        " SELECT m.model_id FROM messages AS m"
        " WHERE m.conversation_id = c.id AND m.model_id IS NOT NULL"
        " ORDER BY m.id DESC LIMIT 1), '') WHERE c.model_id IS NULL"
    )
    op.alter_column("conversations", "model_id", existing_type=sa.String(128), nullable=False)
