"""inbox_updates and inbox_marks

Revision ID: 0017
Revises: 0015
Create Date: 2026-12-05 18:45:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0017"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inbox_updates",
        sa.Column("update_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("telegram_id", sa.BigInteger(), nullable=True),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("update_id", name=op.f("pk_inbox_updates")),
    )
    op.create_index(
        op.f("ix_inbox_updates_telegram_id"), "inbox_updates", ["telegram_id"], unique=False
    )
    op.create_index("ix_inbox_updates_received_at", "inbox_updates", ["received_at"], unique=False)
    op.create_table(
        "inbox_marks",
        sa.Column("bot_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("last_update_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("bot_id", name=op.f("pk_inbox_marks")),
    )


def downgrade() -> None:
    op.drop_table("inbox_marks")
    op.drop_index("ix_inbox_updates_received_at", table_name="inbox_updates")
    op.drop_index(op.f("ix_inbox_updates_telegram_id"), table_name="inbox_updates")
    op.drop_table("inbox_updates")
