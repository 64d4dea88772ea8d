"""messages: replaced by a newer answer, the user's rating of a reply, and what it cost

Revision ID: 0020
Revises: 0014
Create Date: 2026-12-05 21:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "messages",
        sa.Column("replaced", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.add_column("messages", sa.Column("rating", sa.SmallInteger(), nullable=True))
    op.add_column("messages", sa.Column("cost", sa.BigInteger(), nullable=True))
    op.create_check_constraint(op.f("ck_messages_rating_known"), "messages", "rating IN (-1, 1)")
    op.create_check_constraint(op.f("ck_messages_cost_not_negative"), "messages", "cost >= 0")


def downgrade() -> None:
    op.drop_constraint(op.f("ck_messages_cost_not_negative"), "messages", type_="check")
    op.drop_constraint(op.f("ck_messages_rating_known"), "messages", type_="check")
    op.drop_column("messages", "cost")
    op.drop_column("messages", "rating")
    op.drop_column("messages", "replaced")
