"""Slack: linked users, used link states, channels bound to repositories, threads that follow requests.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "slack_links",
        sa.Column("team_id", sa.String(40), primary_key=True),
        sa.Column("user_id", sa.String(40), primary_key=True),
        sa.Column("github_login", sa.String(100), nullable=False),
        sa.Column("github_id", sa.BigInteger(), nullable=False),
        sa.Column("linked_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "slack_nonces",
        sa.Column("nonce", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "slack_channels",
        sa.Column("team_id", sa.String(40), primary_key=True),
        sa.Column("channel_id", sa.String(40), primary_key=True),
        sa.Column("repo", sa.String(250), nullable=False),
        sa.Column("bound_by", sa.String(100), nullable=False),
        sa.Column("bound_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "slack_threads",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("team_id", sa.String(40), nullable=False),
        sa.Column("channel_id", sa.String(40), nullable=False),
        sa.Column("thread_ts", sa.String(40), nullable=False),
        sa.Column("status_ts", sa.String(40)),
        sa.Column("slack_user", sa.String(40), nullable=False),
        sa.Column("requester", sa.String(100), nullable=False),
        sa.Column("repo", sa.String(250), nullable=False),
        sa.Column("issue_number", sa.Integer()),
        sa.Column("pull_number", sa.Integer()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ux_slack_threads_message", "slack_threads", ["team_id", "channel_id", "thread_ts"], unique=True)
    op.create_index("ix_slack_threads_issue", "slack_threads", ["repo", "issue_number"])
    op.create_index("ix_slack_threads_pull", "slack_threads", ["repo", "pull_number"])


def downgrade() -> None:
    op.drop_table("slack_threads")
    op.drop_table("slack_channels")
    op.drop_table("slack_nonces")
    op.drop_table("slack_links")
