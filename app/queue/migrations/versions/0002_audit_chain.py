"""The audit trail's hash chains: each event's prev_hash, digest and hash, each job's chain head; chains backfilled
for the events already there (app/queue/chain.py).

Revision ID: 0002
Revises: 0001
"""

import json

import sqlalchemy as sa
from alembic import op

from app.queue.chain import GENESIS, data_text, digest_of, link

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JOBS_PER_BATCH = 500

jobs = sa.table("jobs", sa.column("id", sa.Integer()), sa.column("chain_head", sa.String()))
events = sa.table("job_events", sa.column("id", sa.Integer()), sa.column("job_id", sa.Integer()),
                  sa.column("at", sa.DateTime()), sa.column("kind", sa.String()), sa.column("data", sa.Text()),
                  sa.column("prev_hash", sa.String()), sa.column("digest", sa.String()),
                  sa.column("hash", sa.String()))


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("chain_head", sa.String(64)))
    with op.batch_alter_table("job_events") as batch:
        for name in ("prev_hash", "digest", "hash"):
            batch.add_column(sa.Column(name, sa.String(64)))
    backfill(op.get_bind())
    with op.batch_alter_table("job_events") as batch:
        for name in ("prev_hash", "digest", "hash"):
            batch.alter_column(name, existing_type=sa.String(64), nullable=False)


def backfill(conn: sa.Connection) -> None:
    """Chain each job's events in id order, a batch of jobs at a time. The digest covers the data as
    `json.dumps` writes it (how Honk has always stored it), whatever the stored text's spacing."""
    after = 0
    while job_ids := conn.execute(sa.select(jobs.c.id).where(jobs.c.id > after).order_by(jobs.c.id)
                                  .limit(JOBS_PER_BATCH)).scalars().all():
        after = job_ids[-1]
        rows = conn.execute(sa.select(events.c.id, events.c.job_id, events.c.at, events.c.kind,
                                      sa.cast(events.c.data, sa.Text()))
                            .where(events.c.job_id.in_(job_ids)).order_by(events.c.job_id, events.c.id)).all()
        links: list[dict[str, object]] = []
        heads: dict[int, str] = {}
        for event_id, job_id, at, kind, text in rows:
            prev = heads.get(job_id, GENESIS)
            digest = digest_of(at, kind, data_text(json.loads(text)))
            heads[job_id] = link(prev, job_id, digest)
            links.append({"event": event_id, "prev_hash": prev, "digest": digest, "hash": heads[job_id]})
        if links:
            conn.execute(sa.update(events).where(events.c.id == sa.bindparam("event")).values(
                prev_hash=sa.bindparam("prev_hash"), digest=sa.bindparam("digest"), hash=sa.bindparam("hash")),
                links)
            conn.execute(sa.update(jobs).where(jobs.c.id == sa.bindparam("job")).values(
                chain_head=sa.bindparam("head")), [{"job": job, "head": head} for job, head in heads.items()])


def downgrade() -> None:
    with op.batch_alter_table("job_events") as batch:
        for name in ("hash", "digest", "prev_hash"):
            batch.drop_column(name)
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("chain_head")
