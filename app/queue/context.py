"""What a job's code gets from the queue, apart from the worker that runs it: its context (the job row,
settings, the queue, its audit trail and its claim), the failure it may raise, and the registry of kinds.

A handler is an async function of a `JobContext`. It returns a result dict (the job succeeded), raises
`JobFailed` (a reasoned failure, retried only when it says so), or raises anything else (an unexpected
failure, retried with backoff).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from app import telemetry
from app.queue.models import Job
from app.queue.store import JobQueue
from app.settings import Settings
from app.tracing import JobTrace


class JobFailed(Exception):
    """A failure the handler understands; `retry` says whether another attempt could succeed."""

    def __init__(self, message: str, *, retry: bool = False) -> None:
        super().__init__(message)
        self.retry = retry


class JobPostponed(Exception):
    """The job cannot go on before `seconds` have passed, through nobody's fault (GitHub holds the installation's
    requests): it goes back to the queue to run again then, and the attempt does not count."""

    def __init__(self, reason: str, seconds: float) -> None:
        super().__init__(reason)
        self.seconds = seconds


class JobAudit:
    """The `AuditLog` of one job: events go to the database in order, off the event loop."""

    def __init__(self, queue: JobQueue, job_id: int, trace: JobTrace | None = None) -> None:
        self._queue = queue
        self._job_id = job_id
        self.trace = trace  # the attempt's spans when tracing is on (app/tracing.py), else None

    async def record(self, kind: str, /, **data: Any) -> None:
        trace = self.trace
        at = time.time_ns() if trace is not None else 0  # when it happened, before the write
        await asyncio.to_thread(self._queue.append_event, self._job_id, kind, data)
        telemetry.job_event(self._job_id, kind, data)  # every job event passes here: sandbox, model, API errors
        if trace is not None:
            trace.event(kind, data, at)  # and, traced, becomes spans: model and tool calls, verify, judge, push


@dataclass
class JobContext:
    job: Job
    settings: Settings
    queue: JobQueue
    audit: JobAudit
    lease: str = ""  # this claim's lease owner, for queue calls made on the job's behalf


Handler = Callable[[JobContext], Awaitable[dict[str, Any] | None]]


class Handlers:
    """The job kinds this process can run."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def register(self, kind: str) -> Callable[[Handler], Handler]:
        def add(handler: Handler) -> Handler:
            self._handlers[kind] = handler
            return handler
        return add

    def get(self, kind: str) -> Handler | None:
        return self._handlers.get(kind)

    def kinds(self) -> list[str]:
        return sorted(self._handlers)
