"""The durable job queue: every accepted request is a row that survives crashes until it finishes.

Claiming takes a lease that the worker renews while it runs the job; a lease that expires means the worker
died, and the job is claimed again. One subject (an issue or pull request) never has two running jobs: the
claim only takes the oldest queued job of a subject with nothing running, and a partial unique index on
running subjects makes the database itself refuse a second one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, exists, func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from app.queue import chain
from app.queue.db import Database
from app.queue.models import Delivery, Job, JobEvent, JobStatus
from app.queue.requests import JobRequest, Priority


@dataclass(frozen=True)
class JobBackoff:
    max_attempts: int = 5
    base_seconds: float = 10.0
    max_seconds: float = 600.0

    def delay(self, attempt: int) -> float:
        """Exponential backoff after the given (1-based) failed attempt."""
        return min(self.max_seconds, self.base_seconds * 2 ** max(0, attempt - 1))


@dataclass(frozen=True)
class Incoming:
    """A delivery to record, as the trigger rules decided it: with the job it asks for, or the reason it asks
    for none."""

    delivery_id: str
    event: str
    action: str | None
    request: JobRequest | None
    reason: str | None = None


@dataclass(frozen=True)
class Accepted:
    duplicate: bool
    job_id: int | None = None


class Lease(enum.Enum):
    HELD = "held"
    LOST = "lost"  # the lease expired and the job went back to the queue or to another worker
    CANCEL = "cancel"  # still ours, but someone asked to cancel it


class JobQueue:
    def __init__(self, db: Database, retry: JobBackoff | None = None, lease_seconds: float = 60.0) -> None:
        self.db = db
        self.retry = retry or JobBackoff()
        self.lease = timedelta(seconds=lease_seconds)

    # Intake

    def accept_delivery(self, delivery_id: str, event: str, action: str | None,
                        request: JobRequest | None, reason: str | None = None) -> Accepted:
        """Record one delivery and, when it asks for work, its job (see `accept_deliveries`)."""
        return self.accept_deliveries([Incoming(delivery_id, event, action, request, reason)])[0]

    def accept_deliveries(self, batch: list[Incoming]) -> list[Accepted]:
        """Record deliveries and the jobs of those that ask for work, all in one transaction: a batch costs one
        durable commit however many deliveries it holds (group commit). A delivery id seen before, by any
        process sharing the database or earlier in the same batch, is a duplicate and queues nothing; the
        database decides (`ON CONFLICT DO NOTHING` on the delivery's key), so concurrent web processes agree."""
        answers: list[Accepted] = [Accepted(duplicate=True)] * len(batch)
        first: dict[str, int] = {}  # delivery id -> its first place in the batch
        for place, item in enumerate(batch):
            first.setdefault(item.delivery_id, place)
        with self.db.session() as session:
            now = self.db.now(session)
            rows = [{"id": item.delivery_id, "event": item.event, "action": item.action, "received_at": now,
                     "outcome": "queued" if item.request else "ignored", "reason": item.reason, "job_id": None}
                    for item in (batch[place] for place in first.values())]
            # The dialect's INSERT, for ON CONFLICT; it serves the plain inserts below as well.
            insert = sqlite_insert if self.db.is_sqlite else postgresql_insert
            # Parameters apart from the statement, so that SQLAlchemy compiles it once and caches it.
            table = Delivery.__table__
            new = set(session.scalars(insert(table).on_conflict_do_nothing(index_elements=["id"])
                                      .returning(table.c.id), rows).all())
            places = [place for delivery_id, place in first.items() if delivery_id in new]
            asked = [place for place in places if batch[place].request is not None]
            # Core statements, not the ORM's unit of work: a batch is a few multi-row statements however large.
            job_ids: list[int] = []
            if asked:
                rows = [self._job_row(batch[place].request, now)  # type: ignore[arg-type]
                        | {"delivery_id": batch[place].delivery_id} for place in asked]
                jobs, events, deliveries = Job.__table__, JobEvent.__table__, Delivery.__table__
                # Matched back by delivery id (unique in the batch), so the rows need not come back in order: one
                # multi-row INSERT instead of one per row.
                made = {delivery: job_id for delivery, job_id in
                        session.execute(insert(jobs).returning(jobs.c.delivery_id, jobs.c.id), rows).all()}
                job_ids = [made[row["delivery_id"]] for row in rows]
                # Each job's first event, its chain's first link computed here (app/queue/chain.py).
                queued = [(job_id, {"kind": row["kind"], "subject": row["subject"], "requester": row["requester"]})
                          for job_id, row in zip(job_ids, rows, strict=True)]
                session.execute(insert(events), [
                    {"job_id": job_id, "at": now, "kind": "job.queued", "data": data}
                    | chain.genesis(job_id, now, "job.queued", data) for job_id, data in queued])
                session.execute(update(deliveries).where(deliveries.c.id == bindparam("delivery")).values(
                    job_id=bindparam("job")), [{"delivery": batch[place].delivery_id, "job": job_id}
                                               for place, job_id in zip(asked, job_ids, strict=True)])
            for place in places:
                answers[place] = Accepted(duplicate=False)
            for place, job_id in zip(asked, job_ids, strict=True):
                answers[place] = Accepted(duplicate=False, job_id=job_id)
        return answers

    def enqueue(self, request: JobRequest) -> int:
        with self.db.session() as session:
            return self.enqueue_in(session, request, self.db.now(session))

    def _new_job(self, request: JobRequest, now: datetime) -> Job:
        return Job(**self._job_row(request, now))

    def _job_row(self, request: JobRequest, now: datetime) -> dict[str, Any]:
        return {"kind": request.kind.value, "subject": request.subject, "repo": request.repo,
                "number": request.number, "installation_id": request.installation_id,
                "requester": request.requester, "delivery_id": request.trigger.get("delivery_id"),
                "payload": request.trigger, "status": JobStatus.QUEUED, "priority": int(request.priority),
                "attempts": 0,
                "max_attempts": self.retry.max_attempts, "run_after": now + timedelta(seconds=request.delay_seconds),
                "cancel_requested": False, "created_at": now, "updated_at": now}

    # Worker side

    def enqueue_in(self, session: Session, request: JobRequest, now: datetime) -> int:
        """Queue a job inside the caller's transaction, so that it exists exactly when the caller's own change
        does (a campaign's target is marked queued and its job made in one commit)."""
        job = self._new_job(request, now)
        session.add(job)
        session.flush()
        session.add(_queued_event(job, now))
        return job.id

    def claim(self, worker_id: str, *, background: bool = True) -> Job | None:
        """Take the next runnable job, or None: somebody's request before background work (`Job.priority`), then
        the oldest. `background=False` takes somebody's request only (the worker's slot kept for people). On
        PostgreSQL concurrent claimers skip each other's rows (`FOR UPDATE SKIP LOCKED`); on SQLite the claim is
        one short IMMEDIATE write transaction."""
        try:
            with self.db.session() as session:
                now = self.db.now(session)
                other = aliased(Job)
                busy_subject = exists().where(
                    other.subject == Job.subject,
                    (other.status == JobStatus.RUNNING)
                    | and_(other.status == JobStatus.QUEUED, other.id < Job.id),
                )
                ready = [Job.status == JobStatus.QUEUED, Job.run_after <= now, ~busy_subject,
                         Job.cancel_requested.is_(False)]
                if not background:
                    ready.append(Job.priority == Priority.PERSON)
                job = session.scalars(
                    select(Job)
                    .where(*ready)
                    .order_by(Job.priority, Job.run_after, Job.id)
                    .limit(1)
                    .with_for_update(skip_locked=True, of=Job)
                ).first()
                if job is None:
                    return None
                job.status = JobStatus.RUNNING
                job.attempts += 1
                job.lease_owner = worker_id
                job.lease_expires_at = now + self.lease
                job.started_at = job.started_at or now
                job.updated_at = now
                session.flush()
                _event(session, job.id, now, "job.started", worker=worker_id, attempt=job.attempts)
                return job
        except IntegrityError:
            # Another host started a job on the same subject between our read and write; try later.
            return None

    def heartbeat(self, job_id: int, worker_id: str) -> Lease:
        with self.db.session() as session:
            now = self.db.now(session)
            held = _held(job_id, worker_id)
            renewed = session.execute(update(Job).where(*held).values(
                lease_expires_at=now + self.lease, updated_at=now)).rowcount
            if not renewed:
                return Lease.LOST
            cancel = session.scalar(select(Job.cancel_requested).where(Job.id == job_id))
            return Lease.CANCEL if cancel else Lease.HELD

    def complete(self, job_id: int, worker_id: str, result: dict[str, Any] | None = None) -> bool:
        return self._finish(job_id, worker_id, JobStatus.SUCCEEDED, "job.succeeded", result=result or {})

    def cancelled(self, job_id: int, worker_id: str, note: str = "cancelled while running") -> bool:
        return self._finish(job_id, worker_id, JobStatus.CANCELLED, "job.cancelled", error=note)

    def fail(self, job_id: int, worker_id: str, error: str, *, retry: bool = True) -> JobStatus | None:
        """Record a failed attempt: back to the queue after a backoff while attempts remain (and the
        failure is worth retrying), else failed for good. None if the lease was no longer ours."""
        with self.db.session() as session:
            now = self.db.now(session)
            job = session.scalars(select(Job).where(*_held(job_id, worker_id))).first()
            if job is None:
                return None
            job.error = error
            job.updated_at = now
            job.lease_owner = job.lease_expires_at = None
            if retry and job.attempts < job.max_attempts and not job.cancel_requested:
                delay = self.retry.delay(job.attempts)
                job.status = JobStatus.QUEUED
                job.run_after = now + timedelta(seconds=delay)
                _event(session, job_id, now, "job.retry", error=error, attempt=job.attempts,
                       retry_in_seconds=delay)
            else:
                job.status = JobStatus.FAILED
                job.finished_at = now
                _event(session, job_id, now, "job.failed", error=error, attempt=job.attempts)
            return JobStatus(job.status)

    def release(self, job_id: int, worker_id: str) -> bool:
        """Give a job back untouched (graceful shutdown): it runs again at once, and this attempt does not
        count against it. A job someone asked to cancel is cancelled instead."""
        with self.db.session() as session:
            now = self.db.now(session)
            job = session.scalars(select(Job).where(*_held(job_id, worker_id))).first()
            if job is None:
                return False
            job.lease_owner = job.lease_expires_at = None
            job.updated_at = now
            if job.cancel_requested:
                _cancel(session, job, now, "cancelled; its worker stopped before the job finished")
            else:
                job.status = JobStatus.QUEUED
                job.run_after = now
                job.attempts -= 1
                _event(session, job_id, now, "job.released", worker=worker_id)
            return True

    def postpone(self, job_id: int, worker_id: str, seconds: float, reason: str) -> datetime | None:
        """Put a job back to run again after `seconds`, this attempt not counted: the job could not go on for a
        reason that is nobody's failure (GitHub holding the installation's requests for a long while). Returns
        when it will run again ("retry at", also in its audit trail); None if the lease was no longer ours."""
        with self.db.session() as session:
            now = self.db.now(session)
            job = session.scalars(select(Job).where(*_held(job_id, worker_id))).first()
            if job is None:
                return None
            job.lease_owner = job.lease_expires_at = None
            job.updated_at = now
            if job.cancel_requested:
                _cancel(session, job, now, "cancelled while it waited for GitHub")
                return None
            job.status = JobStatus.QUEUED
            job.run_after = now + timedelta(seconds=max(0.0, seconds))
            job.attempts -= 1
            _event(session, job_id, now, "job.postponed", reason=reason, retry_at=job.run_after.isoformat() + "Z",
                   retry_in_seconds=round(seconds, 1))
            return job.run_after

    def reclaim_expired(self) -> list[int]:
        """Put jobs whose worker stopped renewing its lease back in the queue (or fail them once they
        have used every attempt, so a job that kills its worker cannot loop forever)."""
        with self.db.session() as session:
            now = self.db.now(session)
            jobs = session.scalars(
                select(Job).where(Job.status == JobStatus.RUNNING, Job.lease_expires_at < now)
                .with_for_update(skip_locked=True)
            ).all()
            for job in jobs:
                lost = job.lease_owner
                job.lease_owner = job.lease_expires_at = None
                job.updated_at = now
                if job.cancel_requested:
                    _cancel(session, job, now, "cancelled; its worker stopped before the job finished")
                elif job.attempts >= job.max_attempts:
                    job.status = JobStatus.FAILED
                    job.finished_at = now
                    job.error = f"its worker stopped answering on each of {job.attempts} attempts"
                    _event(session, job.id, now, "job.failed", error=job.error, attempt=job.attempts)
                else:
                    job.status = JobStatus.QUEUED
                    job.run_after = now
                    _event(session, job.id, now, "job.reclaimed", lost_worker=lost, attempt=job.attempts)
            return [job.id for job in jobs]

    # Operators and handlers

    def cancel(self, job_id: int) -> JobStatus | None:
        """Cancel a queued job at once; ask a running one to stop (its worker sees it on the next
        heartbeat). Returns the job's status afterwards, None when there is no such job."""
        with self.db.session() as session:
            now = self.db.now(session)
            job = session.get(Job, job_id)
            if job is None:
                return None
            if job.status == JobStatus.QUEUED:
                _cancel(session, job, now, "cancelled before it started")
            elif job.status == JobStatus.RUNNING and not job.cancel_requested:
                job.cancel_requested = True
                job.updated_at = now
                _event(session, job_id, now, "job.cancel_requested")
            return JobStatus(job.status)

    def absorb(self, job_id: int, worker_id: str) -> list[Job]:
        """Fold the queued jobs of the same kind and subject into this running one, oldest first: a burst
        of review comments becomes one run. Each absorbed job ends as succeeded, pointing at this one."""
        with self.db.session() as session:
            now = self.db.now(session)
            job = session.scalars(select(Job).where(*_held(job_id, worker_id))).first()
            if job is None:
                return []
            siblings = list(session.scalars(
                select(Job).where(Job.subject == job.subject, Job.kind == job.kind, Job.id != job.id,
                                  Job.status == JobStatus.QUEUED, Job.cancel_requested.is_(False))
                .order_by(Job.id).with_for_update(skip_locked=True)))
            for sibling in siblings:
                sibling.status = JobStatus.SUCCEEDED
                sibling.result = {"outcome": "merged", "merged_into": job.id}
                sibling.finished_at = sibling.updated_at = now
                _event(session, sibling.id, now, "job.merged", into=job.id)
            if siblings:
                _event(session, job.id, now, "job.absorbed", jobs=[s.id for s in siblings])
            return siblings

    def on_subject(self, subject: str, *, statuses: tuple[str, ...] | None = None, limit: int = 20) -> list[Job]:
        """The newest jobs on a subject (optionally of some statuses), newest first."""
        with self.db.session() as session:
            query = select(Job).where(Job.subject == subject)
            if statuses:
                query = query.where(Job.status.in_(statuses))
            return list(session.scalars(query.order_by(Job.id.desc()).limit(limit)))

    def append_event(self, job_id: int, kind: str, data: dict[str, Any]) -> None:
        """Add an event to the job's audit trail, linked onto its hash chain (app/queue/chain.py)."""
        with self.db.session() as session:
            _event(session, job_id, self.db.now(session), kind, **data)

    def verify_chains(self, job_id: int | None = None) -> chain.Verification:
        """Check every job's audit chain, or one job's (`honk audit verify`)."""
        return chain.verify(self.db, job_id)

    def purge_transcripts(self, days: int) -> chain.Purged:
        """Retention (HONK_AUDIT_RETENTION_DAYS): drop the bulky data of events of jobs finished more than `days`
        days ago, keeping every chain verifiable."""
        return chain.purge(self.db, days)

    def get(self, job_id: int) -> Job | None:
        with self.db.session() as session:
            return session.get(Job, job_id)

    def events(self, job_id: int) -> list[JobEvent]:
        with self.db.session() as session:
            return list(session.scalars(select(JobEvent).where(JobEvent.job_id == job_id)
                                        .order_by(JobEvent.id)))

    def depth(self) -> dict[str, int]:
        with self.db.session() as session:
            rows = session.execute(select(Job.status, func.count()).group_by(Job.status)).all()
            return {status: count for status, count in rows}

    def _finish(self, job_id: int, worker_id: str, status: JobStatus, kind: str, **fields: Any) -> bool:
        with self.db.session() as session:
            now = self.db.now(session)
            done = session.execute(update(Job).where(*_held(job_id, worker_id)).values(
                status=status, lease_owner=None, lease_expires_at=None, finished_at=now, updated_at=now,
                **fields)).rowcount
            if done:
                _event(session, job_id, now, kind, **{k: v for k, v in fields.items() if k != "result"})
            return bool(done)


def _cancel(session: Session, job: Job, now: datetime, note: str) -> None:
    job.status = JobStatus.CANCELLED
    job.finished_at = job.updated_at = now
    job.error = note
    _event(session, job.id, now, "job.cancelled", error=note)


def _held(job_id: int, worker_id: str) -> tuple[Any, ...]:
    return Job.id == job_id, Job.lease_owner == worker_id, Job.status == JobStatus.RUNNING


def _queued_event(job: Job, at: datetime) -> JobEvent:
    return JobEvent(job_id=job.id, at=at, kind="job.queued",
                    data={"kind": job.kind, "subject": job.subject, "requester": job.requester})


def _event(session: Session, job_id: int, at: datetime, kind: str, /, **data: Any) -> None:
    # Linked onto the job's chain when flushed, under the job row's lock (chain's before_insert listener).
    session.add(JobEvent(job_id=job_id, at=at, kind=kind, data=data))
