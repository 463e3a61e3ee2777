"""Sites' signed reports.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "site_reports",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("study_id", sa.String(length=64), nullable=False),
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("report_json", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["studies.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("study_id", "site", "digest"),
    )
    with op.batch_alter_table("site_reports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_site_reports_study_id"), ["study_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("site_reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_site_reports_study_id"))

    op.drop_table("site_reports")
