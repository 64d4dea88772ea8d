"""reservation owners: which process holds each reservation

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-05 18:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("reservations", sa.Column("owner", sa.String(length=128), nullable=True))
    op.create_index(
        "ix_reservations_held_owner",
        "reservations",
        ["owner"],
        postgresql_where=sa.text("status = 'held'"),
    )


def downgrade() -> None:
    op.drop_index("ix_reservations_held_owner", table_name="reservations")
    op.drop_column("reservations", "owner")
