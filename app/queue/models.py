"""Tables: webhook deliveries (for de-duplication), jobs, and each job's append-only events."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
Id = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    type_annotation_map: ClassVar = {dict[str, Any]: JSON, datetime: DateTime(timezone=False)}


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class Delivery(Base):
    """One accepted webhook delivery. The primary key is GitHub's `X-GitHub-Delivery`, so a second web
    process trying to accept the same delivery fails on the unique key instead of queueing twice."""

    __tablename__ = "deliveries"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    event: Mapped[str] = mapped_column(String(100))
    action: Mapped[str | None] = mapped_column(String(100))
    outcome: Mapped[str] = mapped_column(String(20))  # queued | ignored
    reason: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[int | None] = mapped_column(Id, ForeignKey("jobs.id"))
    received_at: Mapped[datetime]


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(50))
    # "owner/repo#number": jobs on one subject run one at a time, in order.
    subject: Mapped[str] = mapped_column(String(300))
    repo: Mapped[str] = mapped_column(String(250))
    number: Mapped[int | None] = mapped_column(Integer)
    installation_id: Mapped[int | None] = mapped_column(BigInteger)
    requester: Mapped[str | None] = mapped_column(String(100))
    delivery_id: Mapped[str | None] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(20), default=JobStatus.QUEUED)
    # Lower first (app/queue/requests.py `Priority`): 0 is somebody's request, 1 a campaign's background work.
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    run_after: Mapped[datetime]
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None]
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
    # The hash of the job's newest event, moved under the row's lock by each append (app/queue/chain.py); NULL
    # while the chain holds its genesis event only, so that intake need not write the row twice.
    chain_head: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_jobs_claimable", "status", "run_after"),
        Index("ix_jobs_subject", "subject", "status"),
        # The database itself guarantees that one subject never has two running jobs.
        Index("ux_jobs_running_subject", "subject", unique=True,
              sqlite_where=text("status = 'running'"), postgresql_where=text("status = 'running'")),
    )


class JobEvent(Base):
    """One line of a job's audit trail. Rows are only ever inserted (retention may later replace a bulky `data`
    with a summary); `id` orders them. Each job's events form a hash chain (app/queue/chain.py, which fills the
    three hash columns of every event added through the ORM)."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(Id, ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(100))
    data: Mapped[dict[str, Any]]
    prev_hash: Mapped[str] = mapped_column(String(64))  # the hash of the job's event before, or 64 zeros
    digest: Mapped[str] = mapped_column(String(64))  # SHA-256 of the canonical {"at", "data", "kind"}
    hash: Mapped[str] = mapped_column(String(64))  # SHA-256 of prev_hash, job_id and digest
