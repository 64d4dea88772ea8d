"""files.attempts: how many times indexing of a file has started

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05 18:50:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("files", sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
    # The stuck-file sweep looks for unfinished files by age.
    op.create_index(
        "ix_files_unfinished",
        "files",
        ["updated_at"],
        postgresql_where=sa.text("status IN ('queued', 'indexing')"),
    )


def downgrade() -> None:
    op.drop_index("ix_files_unfinished", table_name="files")
    op.drop_column("files", "attempts")
