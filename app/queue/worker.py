"""The worker: claims jobs, runs their handlers on asyncio, keeps their leases alive, stops gracefully.

Handlers come from the registry the caller passes in (app/jobs/registry.py, wired by app/cli.py), so the queue
never imports the jobs it runs. A job whose worker dies is re-run by another once its lease expires.
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
from collections.abc import Awaitable
from typing import Any

from app.queue.context import Handlers, JobAudit, JobContext, JobFailed
from app.queue.models import Job
from app.queue.store import JobQueue, Lease
from app.settings import Settings

log = logging.getLogger("honk.worker")

CLAIM_SPACING = 0.05  # seconds between claim rounds, however often the worker is woken


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
        self._claims = 0

    def wake(self) -> None:
        """Tell the worker new work may be waiting. Safe to call from any thread."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        log.info("worker %s started: %d at once, lease %.0fs", self.id, self.concurrency,
                 self.settings.honk_lease_seconds)
        next_reclaim = 0.0
        while not stop.is_set():
            round_started = time.monotonic()
            try:
                if time.monotonic() >= next_reclaim:
                    for job_id in await asyncio.to_thread(self.queue.reclaim_expired):
                        log.warning("job=%d transition=reclaimed reason=lease_expired", job_id)
                    next_reclaim = time.monotonic() + min(5.0, self.settings.honk_lease_seconds / 2)
                self._wake.clear()
                while len(self._running) < self.concurrency and not stop.is_set():
                    self._claims += 1
                    lease = f"{self.id}/{self._claims}"
                    job = await asyncio.to_thread(self.queue.claim, lease)
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

    def _start(self, job: Job, lease: str) -> None:
        task = asyncio.create_task(self._run_job(job, lease), name=f"job-{job.id}")
        self._running[lease] = task

        def done(_: asyncio.Task[None]) -> None:
            self._running.pop(lease, None)
            self._stop_reason.pop(lease, None)
            self._wake.set()  # a slot is free

        task.add_done_callback(done)

    async def _run_job(self, job: Job, lease: str) -> None:
        _transition(job, "started", worker=lease, attempt=job.attempts)
        handler = self.handlers.get(job.kind)
        heartbeat = asyncio.create_task(self._heartbeat(job, lease))
        started = time.monotonic()
        try:
            if handler is None:
                raise JobFailed(f"this Honk has no handler for jobs of kind {job.kind!r}")
            ctx = JobContext(job=job, settings=self.settings, queue=self.queue,
                             audit=JobAudit(self.queue, job.id), lease=lease)
            result = await handler(ctx) or {}
            await self._settle(job, "succeeded", asyncio.to_thread(self.queue.complete, job.id, lease, result),
                               started)
        except JobFailed as exc:
            status = await asyncio.to_thread(self.queue.fail, job.id, lease, str(exc), retry=exc.retry)
            _transition(job, _failed_word(status), error=str(exc), seconds=_since(started))
        except asyncio.CancelledError:
            await self._after_cancel(job, lease, started)
        except Exception as exc:
            log.error("job=%d handler raised:\n%s", job.id, traceback.format_exc())
            status = await asyncio.to_thread(self.queue.fail, job.id, lease, f"{type(exc).__name__}: {exc}",
                                             retry=True)
            _transition(job, _failed_word(status), error=f"{type(exc).__name__}: {exc}",
                        seconds=_since(started))
        finally:
            heartbeat.cancel()

    async def _settle(self, job: Job, word: str, write: Awaitable[bool], started: float) -> None:
        if await write:
            _transition(job, word, seconds=_since(started))
        else:
            _transition(job, "lease_lost", note="another worker owns this job now; result discarded")

    async def _after_cancel(self, job: Job, lease: str, started: float) -> None:
        reason = self._stop_reason.get(lease, "shutdown")
        if reason == "cancel":
            await self._settle(job, "cancelled", asyncio.to_thread(self.queue.cancelled, job.id, lease), started)
        elif reason == "shutdown":
            await self._settle(job, "released", asyncio.to_thread(self.queue.release, job.id, lease), started)
        else:
            _transition(job, "lease_lost", seconds=_since(started))

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


def _transition(job: Job, transition: str, **fields: Any) -> None:
    """One structured log line per job transition (logfmt, so it greps and parses)."""
    parts = [f"job={job.id}", f"kind={job.kind}", f"subject={job.subject}", f"transition={transition}"]
    parts += [f"{key}={_logfmt(value)}" for key, value in fields.items()]
    log.info(" ".join(parts))


def _logfmt(value: Any) -> str:
    text = str(value)
    return f'"{text.replace(chr(34), chr(39))}"' if (not text or any(c in text for c in ' ="')) else text
