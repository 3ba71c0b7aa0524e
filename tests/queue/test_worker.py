"""The asyncio worker (app/worker.py), in-process, on SQLite and on the real PostgreSQL.

These protect what users see of a job's run: its outcome and audit trail, retries, the concurrency limit,
one job at a time per issue or pull request, cancelling, and graceful shutdown that loses no work.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from app.process import HonkState
from app.queue import chain
from app.queue.models import Job
from app.queue.requests import JobKind, JobRequest
from app.queue.worker import Handlers, JobContext, JobFailed, Worker
from app.settings import Settings

MakeHonk = Callable[..., HonkState]


def request(number: int = 7, kind: JobKind = JobKind.RESOLVE_ISSUE) -> JobRequest:
    return JobRequest(kind=kind, repo="acme/widgets", number=number, requester="alice", installation_id=42)


@pytest.fixture
def make_honk(make_settings: Callable[..., Settings], database_url: str) -> Iterator[MakeHonk]:
    """A HonkState on the test database, with worker settings fit for tests (short lease, short grace)."""
    made: list[HonkState] = []

    def make(**overrides: Any) -> HonkState:
        values: dict[str, Any] = {"honk_database_url": database_url, "honk_lease_seconds": 0.6,
                                  "honk_shutdown_grace_seconds": 0.5, "honk_worker_concurrency": 2}
        values.update(overrides)
        honk = HonkState.create(make_settings(**values))
        honk.db.migrate()
        made.append(honk)
        return honk

    yield make
    for honk in made:
        honk.db.dispose()


def get(honk: HonkState, job_id: int) -> Job:
    job = honk.queue.get(job_id)
    assert job is not None
    return job


async def until(predicate: Callable[[], Any], timeout: float = 15, what: str = "condition") -> Any:
    """Poll a (blocking) predicate off the event loop until it is truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await asyncio.to_thread(predicate)
        if value:
            return value
        await asyncio.sleep(0.03)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def status_is(honk: HonkState, job_id: int, *statuses: str) -> Callable[[], bool]:
    return lambda: get(honk, job_id).status in statuses


def run(worker: Worker, scenario: Callable[[asyncio.Event], Awaitable[None]], *, stop_timeout: float = 15) -> None:
    """Run the worker while the scenario plays, then stop it and wait for it to return."""

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            await scenario(stop)
        finally:
            stop.set()
            await asyncio.wait_for(task, stop_timeout)
        assert task.done() and task.exception() is None

    asyncio.run(main())


def test_succeeding_handler_stores_result_and_audit_events(make_honk: MakeHonk) -> None:
    """A job whose handler returns succeeds with that result (None counts as an empty result), and what the
    handler recorded is in its trail, in order, between the job's start and its success."""
    honk = make_honk()
    handlers = Handlers()
    seen: list[tuple[int, str, str]] = []

    @handlers.register("resolve_issue")
    async def resolve(ctx: JobContext) -> dict[str, Any] | None:
        seen.append((ctx.job.id, ctx.job.subject, ctx.settings.honk_model))
        if ctx.job.number == 4:
            return None  # nothing to report is still a success
        await ctx.audit.record("agent.turn", n=1)
        await ctx.audit.record("agent.tool", name="bash", ok=True)
        await ctx.audit.record("agent.turn", n=2)
        return {"pull_request": 12, "cost_usd": 0.5}

    job_id = honk.queue.enqueue(request(number=3))
    quiet = honk.queue.enqueue(request(number=4))

    async def scenario(stop: asyncio.Event) -> None:
        await until(lambda: honk.queue.depth() == {"succeeded": 2}, what="both jobs to succeed")

    run(Worker(honk.queue, handlers, honk.settings, worker_id="w1"), scenario)
    job = get(honk, job_id)
    assert (job.status, job.result, job.attempts, job.error, job.lease_owner) == (
        "succeeded", {"pull_request": 12, "cost_usd": 0.5}, 1, None, None)
    assert sorted(seen) == [(job_id, "acme/widgets#3", honk.settings.honk_model),
                            (quiet, "acme/widgets#4", honk.settings.honk_model)]
    assert (get(honk, quiet).status, get(honk, quiet).result) == ("succeeded", {})
    events = honk.queue.events(job_id)
    assert [(e.kind, e.data) for e in events[2:5]] == [
        ("agent.turn", {"n": 1}), ("agent.tool", {"name": "bash", "ok": True}), ("agent.turn", {"n": 2})]
    assert [e.kind for e in events] == ["job.queued", "job.started", "agent.turn", "agent.tool", "agent.turn",
                                        "job.succeeded"]
    assert events[1].data["worker"].startswith("w1/")  # each claim is its own lease of this worker


def test_reasoned_failure_without_retry_fails_with_its_message(make_honk: MakeHonk) -> None:
    """`JobFailed(retry=False)` ends the job failed at once, with the handler's message as its error."""
    honk = make_honk()
    handlers = Handlers()
    calls: list[int] = []

    @handlers.register("resolve_issue")
    async def resolve(ctx: JobContext) -> dict[str, Any]:
        calls.append(ctx.job.attempts)
        raise JobFailed("bob has 'read' access; only writers are obeyed", retry=False)

    job_id = honk.queue.enqueue(request())

    async def scenario(stop: asyncio.Event) -> None:
        await until(status_is(honk, job_id, "failed"), what="the job to fail")

    run(Worker(honk.queue, handlers, honk.settings), scenario)
    job = get(honk, job_id)
    assert (job.status, job.error, job.attempts) == ("failed", "bob has 'read' access; only writers are obeyed", 1)
    assert calls == [1], "not retried"
    assert [e.kind for e in honk.queue.events(job_id)][-1] == "job.failed"


def test_unexpected_exception_schedules_a_retry(make_honk: MakeHonk) -> None:
    """A handler crashing unexpectedly does not lose the job: it goes back to the queue after a backoff with the
    error recorded."""
    honk = make_honk(honk_retry_base_seconds=60)
    handlers = Handlers()

    @handlers.register("resolve_issue")
    async def resolve(ctx: JobContext) -> dict[str, Any]:
        raise RuntimeError("boom")

    job_id = honk.queue.enqueue(request())

    async def scenario(stop: asyncio.Event) -> None:
        await until(lambda: get(honk, job_id).error is not None, what="the attempt to fail")

    run(Worker(honk.queue, handlers, honk.settings), scenario)
    job = get(honk, job_id)
    assert (job.status, job.attempts, job.error, job.lease_owner) == ("queued", 1, "RuntimeError: boom", None)
    assert (job.run_after - job.updated_at).total_seconds() == 60
    assert [e.kind for e in honk.queue.events(job_id)] == ["job.queued", "job.started", "job.retry"]


def test_unexpected_exceptions_fail_the_job_after_its_last_attempt(make_honk: MakeHonk) -> None:
    """A handler that always crashes is retried up to HONK_MAX_ATTEMPTS, then the job is failed for good."""
    honk = make_honk(honk_max_attempts=2, honk_retry_base_seconds=0.05)
    handlers = Handlers()
    attempts: list[int] = []

    @handlers.register("resolve_issue")
    async def resolve(ctx: JobContext) -> dict[str, Any]:
        attempts.append(ctx.job.attempts)
        raise ValueError(f"bad {len(attempts)}")

    job_id = honk.queue.enqueue(request())

    async def scenario(stop: asyncio.Event) -> None:
        await until(status_is(honk, job_id, "failed"), what="the job to fail for good")

    run(Worker(honk.queue, handlers, honk.settings), scenario)
    job = get(honk, job_id)
    assert (job.status, job.attempts, job.error) == ("failed", 2, "ValueError: bad 2")
    assert attempts == [1, 2]


def test_unknown_job_kind_fails_with_a_clear_message(make_honk: MakeHonk) -> None:
    """A job this Honk has no handler for fails at once and says so, instead of retrying forever."""
    honk = make_honk()
    handlers = Handlers()

    @handlers.register("resolve_issue")
    async def resolve(ctx: JobContext) -> dict[str, Any]:
        return {}

    job_id = honk.queue.enqueue(request(kind=JobKind.FOLLOW_UP))

    async def scenario(stop: asyncio.Event) -> None:
        await until(status_is(honk, job_id, "failed"), what="the job to fail")

    run(Worker(honk.queue, handlers, honk.settings), scenario)
    job = get(honk, job_id)
    assert job.status == "failed" and job.attempts == 1
    assert job.error == "this Honk has no handler for jobs of kind 'follow_up'"


def test_concurrency_limit_is_respected(make_honk: MakeHonk) -> None:
    """With HONK_WORKER_CONCURRENCY=2, at most two jobs run at once, and both slots are used."""
    honk = make_honk(honk_worker_concurrency=2)
    handlers = Handlers()
    active = 0
    peak = 0

    @handlers.register("resolve_issue")
    async def resolve(ctx: JobContext) -> dict[str, Any]:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        try:
            await asyncio.sleep(0.25)
        finally:
            active -= 1
        return {"n": ctx.job.number}

    ids = [honk.queue.enqueue(request(number=n)) for n in (1, 2, 3)]

    async def scenario(stop: asyncio.Event) -> None:
        await until(lambda: honk.queue.depth() == {"succeeded": 3}, what="all three jobs to succeed")

    run(Worker(honk.queue, handlers, honk.settings), scenario)
    assert peak == 2
    assert [get(honk, job_id).result for job_id in ids] == [{"n": 1}, {"n": 2}, {"n": 3}]


def test_jobs_on_one_subject_never_overlap(make_honk: MakeHonk) -> None:
    """Requests on one issue run one after another, oldest first, even when the worker has free slots."""
    honk = make_honk(honk_worker_concurrency=3)
    handlers = Handlers()
    active = 0
    peak = 0
    order: list[int] = []

    @handlers.register("resolve_issue")
    async def resolve(ctx: JobContext) -> dict[str, Any]:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        order.append(ctx.job.id)
        try:
            await asyncio.sleep(0.15)
        finally:
            active -= 1
        return {}

    ids = [honk.queue.enqueue(request(number=9)) for _ in range(3)]

    async def scenario(stop: asyncio.Event) -> None:
        await until(lambda: honk.queue.depth() == {"succeeded": 3}, what="all three jobs to succeed")

    run(Worker(honk.queue, handlers, honk.settings), scenario)
    assert peak == 1
    assert order == ids


def test_cancelling_a_running_job_stops_its_handler(make_honk: MakeHonk) -> None:
    """Cancelling a running job from outside (another process) stops its handler on the next heartbeat, and the job
    ends cancelled rather than failed or retried."""
    honk = make_honk(honk_lease_seconds=0.6)
    handlers = Handlers()
    started = asyncio.Event()
    interrupted: list[str] = []

    @handlers.register("resolve_issue")
    async def resolve(ctx: JobContext) -> dict[str, Any]:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            interrupted.append("cancelled")
            raise
        return {"finished": True}

    job_id = honk.queue.enqueue(request())

    async def scenario(stop: asyncio.Event) -> None:
        await asyncio.wait_for(started.wait(), 15)
        assert await asyncio.to_thread(honk.queue.cancel, job_id) == "running"
        await until(status_is(honk, job_id, "cancelled", "succeeded", "failed", "queued"),
                    what="the job to end")

    run(Worker(honk.queue, handlers, honk.settings), scenario)
    job = get(honk, job_id)
    assert (job.status, job.result, job.attempts, job.lease_owner) == ("cancelled", None, 1, None)
    assert interrupted == ["cancelled"]
    assert [e.kind for e in honk.queue.events(job_id)] == ["job.queued", "job.started", "job.cancel_requested",
                                                           "job.cancelled"]


def test_worker_that_lost_its_lease_discards_its_work(make_honk: MakeHonk) -> None:
    """When another worker has taken a job over, the first one stops its handler and writes nothing, so the job is
    not finished twice."""
    honk = make_honk(honk_lease_seconds=0.6)
    handlers = Handlers()
    started = asyncio.Event()
    interrupted: list[str] = []

    @handlers.register("resolve_issue")
    async def resolve(ctx: JobContext) -> dict[str, Any]:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            interrupted.append("cancelled")
            raise
        return {"stale": True}

    job_id = honk.queue.enqueue(request())

    def take_over() -> None:  # as a reclaim and a claim elsewhere would; the other worker keeps its lease alive
        with honk.db.session() as session:
            session.execute(update(Job).where(Job.id == job_id).values(
                lease_owner="other-worker", lease_expires_at=honk.db.now(session) + timedelta(hours=1)))

    async def scenario(stop: asyncio.Event) -> None:
        await asyncio.wait_for(started.wait(), 15)
        await asyncio.to_thread(take_over)
        await until(lambda: interrupted, what="the handler to be stopped")

    run(Worker(honk.queue, handlers, honk.settings), scenario)
    job = get(honk, job_id)
    assert (job.status, job.lease_owner, job.result, job.error) == ("running", "other-worker", None, None)
    assert [e.kind for e in honk.queue.events(job_id)] == ["job.queued", "job.started"]


def test_graceful_stop_releases_a_job_that_outlasts_the_grace_period(make_honk: MakeHonk) -> None:
    """Stopping the worker while a long job runs hands the job back to the queue once the grace period is over,
    without spending an attempt, and claims nothing new after the stop."""
    honk = make_honk(honk_shutdown_grace_seconds=0.3, honk_worker_concurrency=1)
    handlers = Handlers()
    started = asyncio.Event()
    interrupted: list[str] = []

    @handlers.register("resolve_issue")
    async def resolve(ctx: JobContext) -> dict[str, Any]:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            interrupted.append("cancelled")
            raise
        return {"finished": True}

    job_id = honk.queue.enqueue(request(number=1))
    waiting = honk.queue.enqueue(request(number=2))

    async def scenario(stop: asyncio.Event) -> None:
        await asyncio.wait_for(started.wait(), 15)
        stop.set()

    run(Worker(honk.queue, handlers, honk.settings), scenario)
    job = get(honk, job_id)
    assert (job.status, job.attempts, job.lease_owner, job.result) == ("queued", 0, None, None)
    assert interrupted == ["cancelled"]
    assert [e.kind for e in honk.queue.events(job_id)] == ["job.queued", "job.started", "job.released"]
    assert (get(honk, waiting).status, get(honk, waiting).attempts) == ("queued", 0)


def test_graceful_stop_lets_a_short_job_finish(make_honk: MakeHonk) -> None:
    """A job that finishes within the grace period completes normally when the worker is asked to stop."""
    honk = make_honk(honk_shutdown_grace_seconds=10)
    handlers = Handlers()
    started = asyncio.Event()

    @handlers.register("resolve_issue")
    async def resolve(ctx: JobContext) -> dict[str, Any]:
        started.set()
        await asyncio.sleep(0.3)
        return {"finished": True}

    job_id = honk.queue.enqueue(request())

    async def scenario(stop: asyncio.Event) -> None:
        await asyncio.wait_for(started.wait(), 15)
        stop.set()
        assert get(honk, job_id).status == "running", "stop was asked while the job ran"

    run(Worker(honk.queue, handlers, honk.settings), scenario)
    job = get(honk, job_id)
    assert (job.status, job.attempts, job.result) == ("succeeded", 1, {"finished": True})
    assert [e.kind for e in honk.queue.events(job_id)] == ["job.queued", "job.started", "job.succeeded"]


def test_a_worker_applies_the_audit_retention_on_its_own(make_honk: MakeHonk) -> None:
    """With HONK_AUDIT_RETENTION_DAYS set, a running worker purges the bulk of old transcripts without anyone
    running `honk audit purge`; the chain still verifies."""
    honk = make_honk(honk_audit_retention_days=30)
    old = honk.queue.enqueue(request(number=5))
    assert honk.queue.claim("w0") is not None
    honk.queue.append_event(old, "tool.result", {"id": "t1", "name": "bash", "content": "x" * 5000})
    honk.queue.complete(old, "w0", {"outcome": "no_change"})
    with honk.db.engine.begin() as conn:
        conn.execute(update(Job.__table__).where(Job.__table__.c.id == old).values(finished_at=datetime(2020, 1, 1)))

    async def scenario(stop: asyncio.Event) -> None:
        await until(lambda: any(e.kind == "audit.purged" for e in honk.queue.events(old)), what="the purge")

    run(Worker(honk.queue, Handlers(), honk.settings), scenario)
    result = next(e for e in honk.queue.events(old) if e.kind == "tool.result")
    assert "content" not in result.data and result.data["purged"]["fields"]["content"] >= 5000
    assert chain.verify(honk.db).intact
