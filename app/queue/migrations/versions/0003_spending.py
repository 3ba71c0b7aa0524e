"""The spending ledger: one row per model call, monthly counters per scope, reservations of calls under way.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "spend_calls",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("installation_id", sa.BigInteger()),
        sa.Column("organization", sa.String(100), nullable=False),
        sa.Column("repository", sa.String(250), nullable=False),
        sa.Column("requester", sa.String(100)),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("provider", sa.String(20), nullable=False),
        sa.Column("job_id", Id),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_creation_input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_read_input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
    )
    op.create_index("ix_spend_calls_month_day", "spend_calls", ["month", "day"])
    op.create_index("ix_spend_calls_job", "spend_calls", ["job_id"])
    op.create_table(
        "spend_counters",
        sa.Column("month", sa.String(7), primary_key=True),
        sa.Column("scope", sa.String(20), primary_key=True),
        sa.Column("key", sa.String(250), primary_key=True),
        sa.Column("spent_usd", sa.Float(), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
    )
    op.create_table(
        "spend_reservations",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("installation", sa.String(40)),
        sa.Column("organization", sa.String(100), nullable=False),
        sa.Column("repository", sa.String(250), nullable=False),
        sa.Column("requester", sa.String(100)),
        sa.Column("job_id", Id),
        sa.Column("amount_usd", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sqlite_autoincrement=True,  # ids are never reused: a worker settles its reservation by id
    )
    op.create_index("ix_spend_reservations_month", "spend_reservations", ["month", "expires_at"])


def downgrade() -> None:
    op.drop_table("spend_reservations")
    op.drop_table("spend_counters")
    op.drop_table("spend_calls")
