"""turn statuses: a reply may also be cut short (the service restarted) or undelivered

Revision ID: 0014
Revises: 0019
Create Date: 2026-12-05 18:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ck_messages_status_known"


def upgrade() -> None:
    op.drop_constraint(op.f(NAME), "messages", type_="check")
    op.create_check_constraint(
        op.f(NAME), "messages", "status IN ('complete', 'stopped', 'cut', 'failed', 'undelivered')"
    )


def downgrade() -> None:
    # The older schema knows neither: a cut reply was a stopped one, an undelivered one failed.
    op.execute("UPDATE messages SET status = 'stopped' WHERE status = 'cut'")
    op.execute("UPDATE messages SET status = 'failed' WHERE status = 'undelivered'")
    op.drop_constraint(op.f(NAME), "messages", type_="check")
    op.create_check_constraint(
        op.f(NAME), "messages", "status IN ('complete', 'stopped', 'failed')"
    )
