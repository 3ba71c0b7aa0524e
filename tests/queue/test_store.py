"""The durable job queue (app/queue.py), on SQLite and on the real PostgreSQL.

These protect the queue's promises (README, "How it works"): an accepted request is never lost nor run twice at
once, work on one issue or pull request is serialised oldest first, a job cut off by a dead worker runs again,
and a redelivered webhook never queues a second job.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError

from app.queue.db import Database
from app.queue.models import Delivery, Job, JobStatus
from app.queue.requests import JobKind, JobRequest
from app.queue.store import JobBackoff, JobQueue, Lease
from tests.support import wait_for

LEASE = 0.3  # seconds: short, so that expiry tests stay quick


def request(number: int = 7, repo: str = "acme/widgets", kind: JobKind = JobKind.RESOLVE_ISSUE,
            delivery: str | None = None) -> JobRequest:
    trigger: dict[str, Any] = {"delivery_id": delivery} if delivery else {}
    return JobRequest(kind=kind, repo=repo, number=number, requester="alice", installation_id=42, trigger=trigger)


def kinds(queue: JobQueue, job_id: int) -> list[str]:
    return [event.kind for event in queue.events(job_id)]


def job(queue: JobQueue, job_id: int) -> Job:
    found = queue.get(job_id)
    assert found is not None, f"job {job_id} vanished"
    return found


def expire_leases() -> None:
    """Let every lease taken with LEASE run out."""
    time.sleep(LEASE + 0.1)


@pytest.fixture
def queue(db: Database) -> JobQueue:
    return JobQueue(db, JobBackoff(max_attempts=3, base_seconds=0.25, max_seconds=0.4), lease_seconds=LEASE)


@pytest.fixture
def other_db(database_url: str, db: Database) -> Iterator[Callable[[], Database]]:
    """A factory of further `Database` instances on the same database, as other processes would hold."""
    made: list[Database] = []

    def make() -> Database:
        made.append(Database(database_url))
        return made[-1]

    yield make
    for database in made:
        database.dispose()


# Basics and the audit trail


def test_enqueue_claim_complete_records_each_transition(queue: JobQueue) -> None:
    """A job goes queued -> running -> succeeded, keeps its result, and its audit trail (the queue's own events
    and those its handler appends) says so in order."""
    assert (queue.get(999), queue.cancel(999), queue.events(999)) == (None, None, [])
    job_id = queue.enqueue(request(number=3))
    queued = job(queue, job_id)
    assert (queued.status, queued.attempts, queued.max_attempts, queued.subject, queued.kind) == (
        "queued", 0, 3, "acme/widgets#3", "resolve_issue")
    assert queue.depth() == {"queued": 1}

    claimed = queue.claim("w1")
    assert claimed is not None and claimed.id == job_id
    running = job(queue, job_id)
    assert (running.status, running.attempts, running.lease_owner) == ("running", 1, "w1")
    assert running.started_at is not None and running.lease_expires_at is not None
    assert queue.claim("w2") is None, "the only job is taken"
    for n in range(3):
        queue.append_event(job_id, "agent.turn", {"n": n})

    assert queue.complete(job_id, "w1", {"pull_request": 12}) is True
    done = job(queue, job_id)
    assert (done.status, done.result, done.lease_owner, done.lease_expires_at) == (
        "succeeded", {"pull_request": 12}, None, None)
    assert done.finished_at is not None
    assert queue.depth() == {"succeeded": 1}
    assert queue.claim("w1") is None, "a finished job is never claimed again"
    assert queue.heartbeat(job_id, "w1") is Lease.LOST, "nobody holds a lease on a finished job"
    assert queue.complete(job_id, "w1") is False, "a job completes once"

    events = queue.events(job_id)
    assert [e.kind for e in events] == ["job.queued", "job.started", *["agent.turn"] * 3, "job.succeeded"]
    assert events[0].data["subject"] == "acme/widgets#3" and events[0].data["requester"] == "alice"
    assert events[1].data == {"worker": "w1", "attempt": 1}
    assert [e.data["n"] for e in events[2:5]] == [0, 1, 2]
    assert [e.id for e in events] == sorted(e.id for e in events)


# Concurrent claimers


def test_concurrent_claimers_never_take_one_job_twice(queue: JobQueue, other_db: Callable[[], Database]) -> None:
    """Several workers (each with its own connection pool, like separate processes) share the queue: every job is
    claimed exactly once and none is lost."""
    ids = [queue.enqueue(request(number=n)) for n in range(40)]
    workers = 8
    queues = [JobQueue(other_db(), lease_seconds=60) for _ in range(workers)]
    barrier = threading.Barrier(workers)

    def claim_all(index: int) -> list[int]:
        mine: list[int] = []
        barrier.wait()
        misses = 0
        while misses < 3:  # a claim may come back empty while others hold the last rows; look again
            claimed = queues[index].claim(f"w{index}")
            if claimed is None:
                misses += 1
                time.sleep(0.02)
                continue
            misses = 0
            mine.append(claimed.id)
        return mine

    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(claim_all, range(workers)))

    claimed = [job_id for mine in results for job_id in mine]
    assert sorted(claimed) == sorted(ids), "each job claimed exactly once"
    assert queue.depth() == {"running": 40}
    owners = {job(queue, job_id).lease_owner for job_id in ids}
    assert owners <= {f"w{i}" for i in range(workers)}
    for index, mine in enumerate(results):
        assert all(job(queue, job_id).lease_owner == f"w{index}" for job_id in mine)
        assert all(job(queue, job_id).attempts == 1 for job_id in mine)


def test_concurrent_workers_keep_each_subject_serial_and_in_order(queue: JobQueue,
                                                                  other_db: Callable[[], Database]) -> None:
    """Workers racing over several jobs per subject never run two of one subject at once, and run each subject's
    jobs oldest first."""
    ids: dict[str, list[int]] = defaultdict(list)
    for _ in range(5):
        for subject in (1, 2, 3):
            ids[f"acme/widgets#{subject}"].append(queue.enqueue(request(number=subject)))
    workers = 6
    queues = [JobQueue(other_db(), lease_seconds=60) for _ in range(workers)]
    lock = threading.Lock()
    running: set[str] = set()
    overlaps: list[str] = []
    order: dict[str, list[int]] = defaultdict(list)
    barrier = threading.Barrier(workers)

    def work(index: int) -> None:
        mine = queues[index]
        barrier.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            claimed = mine.claim(f"w{index}")
            if claimed is None:
                if mine.depth() == {"succeeded": 15}:
                    return
                time.sleep(0.01)
                continue
            with lock:
                if claimed.subject in running:
                    overlaps.append(claimed.subject)
                running.add(claimed.subject)
                order[claimed.subject].append(claimed.id)
            time.sleep(0.005)
            with lock:  # before completing: until the commit the database still shows it running
                running.discard(claimed.subject)
            assert mine.complete(claimed.id, f"w{index}")

    with ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(work, i) for i in range(workers)]:
            future.result()

    assert overlaps == []
    assert queue.depth() == {"succeeded": 15}
    assert dict(order) == dict(ids), "each subject's jobs ran once each, oldest first"


# Delivery de-duplication


def test_redelivery_is_a_duplicate_and_queues_nothing(queue: JobQueue, db: Database) -> None:
    """GitHub redelivering a webhook (same X-GitHub-Delivery) never queues a second job."""
    first = queue.accept_delivery("d-1", "issues", "labeled", request(delivery="d-1"))
    assert first.duplicate is False and first.job_id is not None
    second = queue.accept_delivery("d-1", "issues", "labeled", request(delivery="d-1"))
    assert second.duplicate is True and second.job_id is None
    assert queue.depth() == {"queued": 1}
    assert job(queue, first.job_id).delivery_id == "d-1"

    ignored = queue.accept_delivery("d-2", "issues", "opened", None, reason="not labelled")
    assert ignored.duplicate is False and ignored.job_id is None
    assert queue.accept_delivery("d-2", "issues", "opened", None, reason="not labelled").duplicate is True
    assert queue.accept_delivery("d-2", "issues", "labeled", request(number=8)).duplicate is True
    assert queue.depth() == {"queued": 1}, "a duplicate of an ignored delivery queues nothing either"

    with db.session() as session:
        rows = {d.id: (d.outcome, d.job_id, d.reason) for d in session.scalars(select(Delivery))}
    assert rows == {"d-1": ("queued", first.job_id, None), "d-2": ("ignored", None, "not labelled")}


def test_same_delivery_accepted_concurrently_queues_once(queue: JobQueue, db: Database,
                                                         other_db: Callable[[], Database]) -> None:
    """Two web processes receiving the same delivery at the same moment: exactly one accepts it."""
    queues = [JobQueue(other_db()) for _ in range(2)]
    rounds = 8
    for n in range(rounds):
        barrier = threading.Barrier(2)

        def accept(index: int, n: int = n, barrier: threading.Barrier = barrier) -> bool:
            barrier.wait()
            return queues[index].accept_delivery(f"race-{n}", "issues", "labeled",
                                                 request(number=n, delivery=f"race-{n}")).duplicate

        with ThreadPoolExecutor(2) as pool:
            duplicates = list(pool.map(accept, range(2)))
        assert sorted(duplicates) == [False, True], f"round {n}: exactly one accepted"
    assert queue.depth() == {"queued": rounds}
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == rounds
        assert session.scalar(select(func.count()).select_from(Delivery)) == rounds


# Per-subject serialisation


def test_one_subject_runs_one_job_at_a_time_oldest_first(queue: JobQueue) -> None:
    """A new request on an issue waits for the running one; other issues are not held up; FIFO per subject."""
    a1, a2, a3 = (queue.enqueue(request(number=1)) for _ in range(3))
    b1 = queue.enqueue(request(number=2))

    first = queue.claim("w1")
    assert first is not None and first.id == a1
    second = queue.claim("w2")
    assert second is not None and second.id == b1, "another subject is claimable while #1 runs"
    assert queue.claim("w3") is None, "#1 already has a running job"
    assert (job(queue, a2).status, job(queue, a3).status) == ("queued", "queued")

    assert queue.complete(a1, "w1")
    nxt = queue.claim("w3")
    assert nxt is not None and nxt.id == a2, "the next of the subject, oldest first"
    assert queue.claim("w1") is None
    assert queue.fail(a2, "w3", "broken", retry=False) == JobStatus.FAILED
    last = queue.claim("w1")
    assert last is not None and last.id == a3
    assert queue.complete(a3, "w1") and queue.complete(b1, "w2")
    assert queue.depth() == {"succeeded": 3, "failed": 1}


def test_database_refuses_two_running_jobs_on_one_subject(queue: JobQueue, db: Database) -> None:
    """Even a writer that skips the claim logic cannot make a second job of one subject running (partial unique
    index ux_jobs_running_subject)."""
    a1 = queue.enqueue(request(number=1))
    a2 = queue.enqueue(request(number=1))
    b1 = queue.enqueue(request(number=2))
    assert queue.claim("w1") is not None

    with pytest.raises(IntegrityError), db.session() as session:
        session.execute(text("UPDATE jobs SET status = 'running' WHERE id = :id"), {"id": a2})
    with db.session() as session:  # a running job on another subject is fine
        session.execute(update(Job).where(Job.id == b1).values(status=JobStatus.RUNNING))
    assert (job(queue, a1).status, job(queue, a2).status, job(queue, b1).status) == (
        "running", "queued", "running")


# Retries


def test_retry_policy_backs_off_exponentially_up_to_a_cap() -> None:
    """Retries wait longer each time, but never longer than the cap."""
    policy = JobBackoff(max_attempts=5, base_seconds=10, max_seconds=600)
    assert [policy.delay(a) for a in (1, 2, 3, 4, 5, 6, 7, 20)] == [10, 20, 40, 80, 160, 320, 600, 600]
    assert policy.delay(0) == 10


def test_failed_attempt_is_retried_after_backoff_then_fails_for_good(queue: JobQueue) -> None:
    """A failure worth retrying goes back to the queue after the backoff (not before), and after the last
    attempt the job is failed for good with its error."""
    job_id = queue.enqueue(request())
    assert queue.claim("w1") is not None

    assert queue.fail(job_id, "w1", "flaky 1") == JobStatus.QUEUED
    after_first = job(queue, job_id)
    assert (after_first.status, after_first.attempts, after_first.error) == ("queued", 1, "flaky 1")
    assert after_first.lease_owner is None and after_first.finished_at is None
    assert after_first.run_after - after_first.updated_at == timedelta(seconds=0.25)  # delay(1) = base
    assert queue.claim("w2") is None, "not claimable before run_after"

    again = wait_for(lambda: queue.claim("w2"), timeout=5, what="the job after its backoff")
    assert again.id == job_id and again.attempts == 2
    assert queue.fail(job_id, "w2", "flaky 2") == JobStatus.QUEUED
    after_second = job(queue, job_id)
    assert after_second.run_after - after_second.updated_at == timedelta(seconds=0.4)  # 2 * 0.25, capped at 0.4
    assert queue.events(job_id)[-1].data == {"error": "flaky 2", "attempt": 2, "retry_in_seconds": 0.4}

    third = wait_for(lambda: queue.claim("w3"), timeout=5, what="the third attempt")
    assert third.attempts == 3
    assert queue.fail(job_id, "w3", "flaky 3") == JobStatus.FAILED
    final = job(queue, job_id)
    assert (final.status, final.attempts, final.error) == ("failed", 3, "flaky 3")
    assert final.finished_at is not None
    assert queue.claim("w1") is None, "a job failed for good is never retried"
    assert kinds(queue, job_id) == ["job.queued", "job.started", "job.retry", "job.started", "job.retry",
                                    "job.started", "job.failed"]
    assert queue.events(job_id)[-1].data == {"error": "flaky 3", "attempt": 3}


def test_failure_not_worth_retrying_fails_at_once(queue: JobQueue) -> None:
    """`fail(retry=False)` ends the job on its first attempt, attempts left or not."""
    job_id = queue.enqueue(request())
    assert queue.claim("w1") is not None
    assert queue.fail(job_id, "w1", "not authorised", retry=False) == JobStatus.FAILED
    failed = job(queue, job_id)
    assert (failed.status, failed.attempts, failed.error, failed.lease_owner) == (
        "failed", 1, "not authorised", None)
    assert queue.claim("w1") is None


# Leases


def test_heartbeat_keeps_a_running_job_from_being_reclaimed(db: Database) -> None:
    """A worker that keeps renewing its lease keeps its job, however long it runs."""
    queue = JobQueue(db, lease_seconds=0.6)
    job_id = queue.enqueue(request())
    assert queue.claim("w1") is not None
    for _ in range(4):  # 0.8 s in all: longer than the lease
        time.sleep(0.2)
        assert queue.heartbeat(job_id, "w1") is Lease.HELD
        assert queue.reclaim_expired() == []
    assert job(queue, job_id).status == "running" and job(queue, job_id).lease_owner == "w1"


def test_expired_lease_is_reclaimed_and_the_old_owner_is_locked_out(queue: JobQueue) -> None:
    """A worker that stopped renewing (it died or hung) loses the job to another worker; when it wakes up it can
    neither finish, fail, cancel nor release the job."""
    job_id = queue.enqueue(request())
    assert queue.claim("old") is not None
    assert queue.reclaim_expired() == [], "the lease has not run out yet"
    expire_leases()

    assert queue.reclaim_expired() == [job_id]
    reclaimed = job(queue, job_id)
    assert (reclaimed.status, reclaimed.lease_owner, reclaimed.attempts) == ("queued", None, 1)
    assert queue.reclaim_expired() == [], "reclaimed once"

    taken = queue.claim("new")
    assert taken is not None and taken.id == job_id and taken.attempts == 2

    assert queue.heartbeat(job_id, "old") is Lease.LOST
    assert queue.complete(job_id, "old", {"stale": True}) is False
    assert queue.fail(job_id, "old", "stale failure") is None
    assert queue.cancelled(job_id, "old") is False
    assert queue.release(job_id, "old") is False
    unchanged = job(queue, job_id)
    assert (unchanged.status, unchanged.lease_owner, unchanged.attempts, unchanged.error, unchanged.result) == (
        "running", "new", 2, None, None)

    assert queue.heartbeat(job_id, "new") is Lease.HELD
    assert queue.complete(job_id, "new", {"pull_request": 5})
    assert job(queue, job_id).result == {"pull_request": 5}
    assert kinds(queue, job_id) == ["job.queued", "job.started", "job.reclaimed", "job.started", "job.succeeded"]
    assert queue.events(job_id)[2].data == {"lost_worker": "old", "attempt": 1}


def test_job_that_kills_every_worker_fails_for_good(db: Database) -> None:
    """A job whose worker dies on each of its attempts ends `failed` instead of looping forever."""
    queue = JobQueue(db, JobBackoff(max_attempts=1), lease_seconds=LEASE)
    job_id = queue.enqueue(request())
    claimed = queue.claim("w1")
    assert claimed is not None and claimed.attempts == 1 and claimed.max_attempts == 1
    expire_leases()
    assert queue.reclaim_expired() == [job_id]
    failed = job(queue, job_id)
    assert (failed.status, failed.attempts, failed.lease_owner) == ("failed", 1, None)
    assert failed.finished_at is not None and "1 attempts" in (failed.error or "")
    assert queue.claim("w2") is None
    assert kinds(queue, job_id) == ["job.queued", "job.started", "job.failed"]


# Cancelling


def test_cancel_queued_job_ends_it_at_once(queue: JobQueue) -> None:
    """Cancelling a waiting job ends it right away; no worker ever picks it up, and the next job of its subject
    is no longer held up by it."""
    job_id = queue.enqueue(request(number=1))
    later = queue.enqueue(request(number=1))
    assert queue.cancel(job_id) == JobStatus.CANCELLED
    cancelled = job(queue, job_id)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None and cancelled.attempts == 0
    claimed = queue.claim("w1")
    assert claimed is not None and claimed.id == later
    assert queue.claim("w1") is None
    assert queue.cancel(job_id) == JobStatus.CANCELLED, "cancelling twice is harmless"
    assert kinds(queue, job_id) == ["job.queued", "job.cancelled"]


def test_cancel_running_job_asks_its_worker_to_stop(queue: JobQueue) -> None:
    """Cancelling a running job flags it; its owner learns on the next heartbeat and records it cancelled."""
    job_id = queue.enqueue(request())
    assert queue.claim("w1") is not None
    assert queue.heartbeat(job_id, "w1") is Lease.HELD
    assert queue.cancel(job_id) == JobStatus.RUNNING
    assert job(queue, job_id).cancel_requested is True
    assert queue.cancel(job_id) == JobStatus.RUNNING
    assert kinds(queue, job_id).count("job.cancel_requested") == 1, "asked once"

    assert queue.heartbeat(job_id, "w1") is Lease.CANCEL
    assert queue.heartbeat(job_id, "someone-else") is Lease.LOST
    assert queue.cancelled(job_id, "w1") is True
    done = job(queue, job_id)
    assert (done.status, done.lease_owner, done.error) == ("cancelled", None, "cancelled while running")
    assert kinds(queue, job_id) == ["job.queued", "job.started", "job.cancel_requested", "job.cancelled"]
    assert queue.cancel(job_id) == JobStatus.CANCELLED

    # A job whose attempt fails after someone asked to cancel it is not put back in the queue.
    other = queue.enqueue(request())
    assert queue.claim("w1") is not None
    queue.cancel(other)
    assert queue.fail(other, "w1", "interrupted") == JobStatus.FAILED
    assert queue.claim("w1") is None


def test_cancel_requested_job_whose_worker_died_is_not_run_again(queue: JobQueue) -> None:
    """An operator cancelled a running job and then its worker died: the job must end cancelled, not be handed to
    another worker that would start the work (and its side effects on GitHub) over again."""
    job_id = queue.enqueue(request())
    assert queue.claim("w1") is not None
    assert queue.cancel(job_id) == JobStatus.RUNNING
    expire_leases()
    queue.reclaim_expired()
    assert queue.claim("w2") is None, "a job whose cancel was requested is handed to a new worker"
    assert job(queue, job_id).status == "cancelled"


def test_cancel_requested_job_released_at_shutdown_is_not_run_again(queue: JobQueue) -> None:
    """An operator cancelled a running job and its worker shut down before noticing: the job ends cancelled rather
    than going back to the queue to be started again."""
    job_id = queue.enqueue(request())
    assert queue.claim("w1") is not None
    assert queue.cancel(job_id) == JobStatus.RUNNING
    queue.release(job_id, "w1")
    assert queue.claim("w2") is None, "a job whose cancel was requested is handed to a new worker"
    assert job(queue, job_id).status == "cancelled"


# Graceful shutdown


def test_release_puts_the_job_back_without_spending_an_attempt(queue: JobQueue) -> None:
    """A worker shutting down hands its job back: it is claimable at once and the attempt does not count."""
    job_id = queue.enqueue(request())
    assert queue.claim("w1") is not None
    assert queue.release(job_id, "w1") is True
    back = job(queue, job_id)
    assert (back.status, back.attempts, back.lease_owner, back.lease_expires_at) == ("queued", 0, None, None)
    assert back.run_after <= back.updated_at
    assert queue.release(job_id, "w1") is False, "no longer ours"

    again = queue.claim("w2")
    assert again is not None and again.id == job_id and again.attempts == 1
    assert kinds(queue, job_id) == ["job.queued", "job.started", "job.released", "job.started"]
    assert queue.events(job_id)[2].data == {"worker": "w1"}


# Follow-ups: a short delay, then one run absorbs the burst

def test_a_delayed_job_waits_then_absorbs_its_queued_siblings(queue: JobQueue) -> None:
    """Several review comments within a few seconds become one run: the first follow-up, once due, takes
    the others of its subject and kind with it, oldest first; other kinds and subjects are left alone."""
    follow = [JobRequest(kind=JobKind.FOLLOW_UP, repo="acme/widgets", number=3, requester="alice",
                         installation_id=42, trigger={"n": n}, delay_seconds=0.3) for n in range(3)]
    ids = [queue.enqueue(r) for r in follow]
    other = queue.enqueue(request(number=4, kind=JobKind.FOLLOW_UP))
    assert {queue.claim("early").id} == {other}  # the burst is not due yet
    time.sleep(0.35)
    first = queue.claim("w")
    assert first is not None and first.id == ids[0]
    absorbed = queue.absorb(first.id, "w")
    assert [job.id for job in absorbed] == ids[1:] and [job.payload for job in absorbed] == [{"n": 1}, {"n": 2}]
    for job_id in ids[1:]:
        merged = job(queue, job_id)
        assert (merged.status, merged.result) == ("succeeded", {"outcome": "merged", "merged_into": ids[0]})
    assert queue.absorb(first.id, "someone else") == []  # only the lease holder may absorb
    assert [j.id for j in queue.on_subject("acme/widgets#3")] == ids[::-1]
