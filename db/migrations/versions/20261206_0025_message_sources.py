"""messages.sources: where the passages a reply cites came from ("a.pdf, p. 3"), shown under it

Null for prompts and for replies that cite no document. The names are the user's own file names
(already held with the files); they go with the message, and are removed with it.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-06 00:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("sources", postgresql.ARRAY(sa.Text()), nullable=True))


def downgrade() -> None:
    op.drop_column("messages", "sources")
