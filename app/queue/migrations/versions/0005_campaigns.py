"""Fleet campaigns: campaigns, their targets, and a priority for jobs (campaign work yields to people).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # A plain ADD COLUMN, also on SQLite: a batch "move and copy" of `jobs` there would drop the old table, and
    # the ON DELETE CASCADE of job_events with it.
    op.add_column("jobs", sa.Column("priority", sa.Integer(), nullable=False, server_default=sa.text("0")))
    op.create_table(
        "campaigns",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("repo", sa.String(250), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("installation_id", sa.BigInteger(), nullable=False),
        sa.Column("requester", sa.String(100), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("task", sa.Text(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("budget_usd", sa.Float()),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("note", sa.Text()),
        sa.Column("table_comment_id", sa.BigInteger()),
        sa.Column("table_edited_at", sa.DateTime()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("rollout_at", sa.DateTime()),
        sa.Column("finished_at", sa.DateTime()),
    )
    op.create_index("ux_campaigns_issue", "campaigns", ["repo", "number"], unique=True)
    op.create_table(
        "campaign_targets",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("campaign_id", Id, sa.ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False),
        sa.Column("repo", sa.String(250), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("canary", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("job_id", Id),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("pull_number", sa.Integer()),
        sa.Column("pull_url", sa.Text()),
        sa.Column("pull_state", sa.String(20)),
        sa.Column("head_sha", sa.String(64)),
        sa.Column("checks", sa.String(20)),
        sa.Column("review", sa.String(30)),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("opened_at", sa.DateTime()),
        sa.Column("merged_at", sa.DateTime()),
        sa.Column("finished_at", sa.DateTime()),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ux_campaign_targets_repo", "campaign_targets", ["campaign_id", "repo"], unique=True)
    op.create_index("ix_campaign_targets_state", "campaign_targets", ["campaign_id", "state"])


def downgrade() -> None:
    op.drop_table("campaign_targets")
    op.drop_table("campaigns")
    with op.batch_alter_table("jobs") as jobs:
        jobs.drop_column("priority")
