"""SMPC sessions: parties, their certificate-bound session keys, relayed messages.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 18:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "smpc_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("function", sa.String(length=64), nullable=False),
        sa.Column("parties_json", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("deadline", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("outcome_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "smpc_members",
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("join_json", sa.Text(), nullable=False),
        sa.Column("joined_at", sa.Float(), nullable=False),
        sa.Column("released_json", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["session_id"], ["smpc_sessions.id"]),
        sa.PrimaryKeyConstraint("session_id", "site"),
    )
    op.create_table(
        "smpc_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("step", sa.String(length=64), nullable=False),
        sa.Column("sender", sa.String(length=64), nullable=False),
        sa.Column("recipient", sa.String(length=64), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("blob", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["session_id"], ["smpc_sessions.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("session_id", "step", "sender", "recipient"),
    )
    with op.batch_alter_table("smpc_messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_smpc_messages_session_id"), ["session_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("smpc_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_smpc_messages_session_id"))
    op.drop_table("smpc_messages")
    op.drop_table("smpc_members")
    op.drop_table("smpc_sessions")
