"""The worker: claims jobs, runs their handlers on asyncio, keeps their leases alive, stops gracefully.

Handlers come from the registry the caller passes in (app/jobs/registry.py, wired by app/cli.py), so the queue
never imports the jobs it runs. A job whose worker dies is re-run by another once its lease expires.

Each attempt feeds the process's metrics (app/telemetry.py: queue wait, attempt durations, jobs running) and,
when tracing is on, its trace (app/tracing.py). `serve_metrics` serves those metrics, with the queue's depth by
kind, on a port of its own (`honk worker --metrics-port`), so that every worker of a fleet can be scraped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import traceback
import uuid
from collections.abc import Awaitable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, disable_created_metrics, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select

from app import telemetry, tracing
from app.queue.context import Handlers, JobAudit, JobContext, JobFailed, JobPostponed
from app.queue.models import Job, JobStatus
from app.queue.store import JobQueue, Lease
from app.settings import Settings

log = logging.getLogger("honk.worker")

PURGE_EVERY = 3600.0  # seconds between retention purges (HONK_AUDIT_RETENTION_DAYS)
CLAIM_SPACING = 0.05  # seconds between claim rounds, however often the worker is woken
FINAL = ("succeeded", "failed", "cancelled")  # the outcomes of an attempt that end the job for good


class Worker:
    def __init__(self, queue: JobQueue, handlers: Handlers, settings: Settings, worker_id: str | None = None):
        self.queue = queue
        self.handlers = handlers
        self.settings = settings
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.concurrency = settings.honk_worker_concurrency
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        # Keyed by lease: each claim gets its own lease owner, so a job this worker lost and claimed again
        # is a second entry, and the stale task can never act on the new claim.
        self._running: dict[str, asyncio.Task[None]] = {}
        self._stop_reason: dict[str, str] = {}  # why a job's task was cancelled: cancel | lost | shutdown
        self._background: set[str] = set()  # the leases of the background jobs running (campaign targets)
        # Background work may fill every slot but one: the last is kept for somebody's request (one slot alone
        # is shared, the queue still serving people first).
        self.background_slots = max(1, self.concurrency - 1)
        self._claims = 0

    def wake(self) -> None:
        """Tell the worker new work may be waiting. Safe to call from any thread."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        tracing.prepare()  # when tracing is on, the SDK loads now rather than inside the first job
        log.info("worker %s started: %d at once, lease %.0fs", self.id, self.concurrency,
                 self.settings.honk_lease_seconds)
        next_reclaim = next_purge = 0.0
        while not stop.is_set():
            round_started = time.monotonic()
            try:
                if time.monotonic() >= next_reclaim:
                    for job_id in await asyncio.to_thread(self.queue.reclaim_expired):
                        log.warning("job=%d transition=reclaimed reason=lease_expired", job_id)
                    next_reclaim = time.monotonic() + min(5.0, self.settings.honk_lease_seconds / 2)
                if (days := self.settings.honk_audit_retention_days) and time.monotonic() >= next_purge:
                    # Retention: old transcripts lose their bulk, their chains stay verifiable. Hourly is plenty;
                    # every worker may run it, and a purge finds nothing to do the second time.
                    purged = await asyncio.to_thread(self.queue.purge_transcripts, days)
                    log.info("audit retention (%d days): %s", days, purged)
                    next_purge = time.monotonic() + PURGE_EVERY
                self._wake.clear()
                while len(self._running) < self.concurrency and not stop.is_set():
                    self._claims += 1
                    lease = f"{self.id}/{self._claims}"
                    background = len(self._background) < self.background_slots
                    job = await asyncio.to_thread(self.queue.claim, lease, background=background)
                    if job is None:
                        break
                    self._start(job, lease)
            except Exception as exc:  # the database hiccuped: keep the worker alive and try again
                log.error("worker %s: cannot reach the queue: %s", self.id, exc)
            await _first_of(stop.wait(), self._wake.wait(), timeout=self.settings.honk_poll_seconds)
            # A busy intake wakes the worker for every queued delivery, but a claim is a write transaction that
            # competes with the intake's own: at most one claim round per CLAIM_SPACING seconds.
            spare = CLAIM_SPACING - (time.monotonic() - round_started)
            if spare > 0 and not stop.is_set():
                await _first_of(stop.wait(), timeout=spare)
        await self._drain()
        if tracing.ENABLED:
            await asyncio.to_thread(tracing.flush)  # the spans of the last jobs, before the process ends

    def _start(self, job: Job, lease: str) -> None:
        task = asyncio.create_task(self._run_job(job, lease), name=f"job-{job.id}")
        self._running[lease] = task
        if job.priority:
            self._background.add(lease)

        def done(_: asyncio.Task[None]) -> None:
            self._running.pop(lease, None)
            self._background.discard(lease)
            self._stop_reason.pop(lease, None)
            self._wake.set()  # a slot is free

        task.add_done_callback(done)

    async def _run_job(self, job: Job, lease: str) -> None:
        _transition(job, "started", worker=lease, attempt=job.attempts)
        handler = self.handlers.get(job.kind)
        heartbeat = asyncio.create_task(self._heartbeat(job, lease))
        started = time.monotonic()
        telemetry.PROCESS.job_claimed(job.kind, _waited(job))
        trace = self._trace(job, lease) if tracing.ENABLED else None
        outcome, error, result = "lease_lost", None, None  # what the attempt came to, for metrics and trace
        try:
            if handler is None:
                raise JobFailed(f"this Honk has no handler for jobs of kind {job.kind!r}")
            ctx = JobContext(job=job, settings=self.settings, queue=self.queue,
                             audit=JobAudit(self.queue, job.id, trace), lease=lease)
            result = await handler(ctx) or {}
            outcome = await self._settle(job, "succeeded",
                                         asyncio.to_thread(self.queue.complete, job.id, lease, result), started)
        except JobPostponed as exc:
            until = await asyncio.to_thread(self.queue.postpone, job.id, lease, exc.seconds, str(exc))
            outcome, error = "postponed", str(exc)
            _transition(job, outcome, reason=error, retry_at=until.isoformat() if until else None)
        except JobFailed as exc:
            status = await asyncio.to_thread(self.queue.fail, job.id, lease, str(exc), retry=exc.retry)
            outcome, error = _failed_word(status), str(exc)
            _transition(job, outcome, error=error, seconds=_since(started))
        except asyncio.CancelledError:
            outcome = await self._after_cancel(job, lease, started)
        except Exception as exc:
            log.error("job=%d handler raised:\n%s", job.id, traceback.format_exc())
            error = f"{type(exc).__name__}: {exc}"
            status = await asyncio.to_thread(self.queue.fail, job.id, lease, error, retry=True)
            outcome = _failed_word(status)
            _transition(job, outcome, error=error, seconds=_since(started))
        finally:
            heartbeat.cancel()
            telemetry.PROCESS.job_ended(job.kind, outcome, time.monotonic() - started)
            if trace is not None:
                trace.end(outcome, final=outcome in FINAL, error=error, result=result)

    def _trace(self, job: Job, lease: str) -> tracing.JobTrace | None:
        return tracing.job_started(
            job_id=job.id, kind=job.kind, subject=job.subject, repo=job.repo, delivery_id=job.delivery_id,
            attempt=job.attempts, created_at=job.created_at, ready_at=job.run_after, claimed_at=job.updated_at,
            worker=lease, provider=self.settings.honk_provider, judge_provider=self.settings.honk_judge_provider)

    async def _settle(self, job: Job, word: str, write: Awaitable[bool], started: float) -> str:
        if await write:
            _transition(job, word, seconds=_since(started))
            return word
        _transition(job, "lease_lost", note="another worker owns this job now; result discarded")
        return "lease_lost"

    async def _after_cancel(self, job: Job, lease: str, started: float) -> str:
        reason = self._stop_reason.get(lease, "shutdown")
        if reason == "cancel":
            return await self._settle(job, "cancelled", asyncio.to_thread(self.queue.cancelled, job.id, lease),
                                      started)
        if reason == "shutdown":
            return await self._settle(job, "released", asyncio.to_thread(self.queue.release, job.id, lease),
                                      started)
        _transition(job, "lease_lost", seconds=_since(started))
        return "lease_lost"

    async def _heartbeat(self, job: Job, lease: str) -> None:
        # Renew well within the lease, and often enough that "@honk stop" lands within seconds.
        interval = min(self.settings.honk_lease_seconds / 3, 5.0)
        while True:
            await asyncio.sleep(interval)
            try:
                state = await asyncio.to_thread(self.queue.heartbeat, job.id, lease)
            except Exception as exc:  # keep trying; the lease has slack for a few misses
                log.warning("job=%d heartbeat failed: %s", job.id, exc)
                continue
            if state is not Lease.HELD:
                self._stop_reason[lease] = "cancel" if state is Lease.CANCEL else "lost"
                task = self._running.get(lease)
                if task is not None:
                    task.cancel()
                return

    async def _drain(self) -> None:
        """Let running jobs finish within the grace period, then hand the rest back to the queue."""
        if not self._running:
            log.info("worker %s stopped", self.id)
            return
        grace = self.settings.honk_shutdown_grace_seconds
        log.info("worker %s stopping: waiting up to %.0fs for %d job(s)", self.id, grace, len(self._running))
        tasks = list(self._running.values())
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()  # _stop_reason defaults to "shutdown": the job is released
        if pending:
            await asyncio.wait(pending)
        log.info("worker %s stopped", self.id)


# The worker's own metrics endpoint (`honk worker --metrics-port`)

@dataclass
class MetricsServer:
    server: Any
    host: str
    port: int

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve_metrics(worker: Worker, host: str, port: int) -> MetricsServer:
    """Serve this process's metrics (app/telemetry.py) and the queue's depth by kind, in Prometheus's text
    format, from a thread of its own. Raises OSError when the address cannot be bound."""
    disable_created_metrics()  # as the web's /metrics does
    registry = CollectorRegistry(auto_describe=True)
    for collector in telemetry.PROCESS.collectors:
        registry.register(collector)
    registry.register(QueueDepth(worker.queue, worker.handlers.kinds()))
    server, _ = start_http_server(port, addr=host, registry=registry)
    return MetricsServer(server, host, server.server_address[1])


class QueueDepth(Collector):
    """Jobs waiting or running, by kind and state, read from the database at scrape time. Every worker of a fleet
    reports the same figures (the queue is shared): aggregate them with max(), not sum()."""

    def __init__(self, queue: JobQueue, kinds: Iterable[str] = ()) -> None:
        self.queue = queue
        self.kinds = list(kinds)  # reported with zeros when none are waiting, so that alerts have a series

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily("honk_queue_depth", ""), GaugeMetricFamily("honk_worker_database_up", "")]

    def collect(self) -> Iterator[Metric]:
        up = "1 when the database answered this scrape's query for the queue's depth"
        try:
            counts = queue_depth(self.queue)
        except Exception as exc:  # the scrape still answers, saying the database is not answering
            log.warning("metrics: cannot read the queue's depth: %s", exc)
            yield GaugeMetricFamily("honk_worker_database_up", up, 0)
            return
        yield GaugeMetricFamily("honk_worker_database_up", up, 1)
        depth = GaugeMetricFamily("honk_queue_depth", "jobs in the queue by kind and state: ready (queued and due), "
                                  "delayed (queued, waiting for a retry's backoff or a delay), running; the same "
                                  "on every worker", labels=["kind", "state"])
        for kind in sorted({*self.kinds, *(kind for kind, _ in counts)}):
            for state in ("ready", "delayed", "running"):
                depth.add_metric([kind, state], counts.get((kind, state), 0))
        yield depth


def queue_depth(queue: JobQueue) -> dict[tuple[str, str], int]:
    """{(kind, state): jobs} for the jobs queued (ready or delayed) or running."""
    with queue.db.session() as session:
        now = queue.db.now(session)
        state = case((Job.status == JobStatus.RUNNING, "running"), (Job.run_after <= now, "ready"),
                     else_="delayed").label("state")
        rows = session.execute(select(Job.kind, state, func.count())
                               .where(Job.status.in_((JobStatus.QUEUED, JobStatus.RUNNING)))
                               .group_by(Job.kind, state)).all()
    return {(kind, state): count for kind, state, count in rows}


async def _first_of(*waits: Awaitable[Any], timeout: float) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _failed_word(status: object) -> str:
    return {"queued": "retry_scheduled", "failed": "failed", None: "lease_lost"}.get(status, str(status))


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)


def _waited(job: Job) -> float:
    """Seconds from the job being ready to run (queued, or its retry due) to this claim (the database's clock)."""
    try:
        return (job.updated_at - job.run_after).total_seconds()
    except TypeError:
        return 0.0


def _transition(job: Job, transition: str, **fields: Any) -> None:
    """One structured log line per job transition (logfmt, so it greps and parses)."""
    parts = [f"job={job.id}", f"kind={job.kind}", f"subject={job.subject}", f"transition={transition}"]
    parts += [f"{key}={_logfmt(value)}" for key, value in fields.items()]
    log.info(" ".join(parts))


def _logfmt(value: Any) -> str:
    text = str(value)
    return f'"{text.replace(chr(34), chr(39))}"' if (not text or any(c in text for c in ' ="')) else text
