"""Crash survival with real worker processes (tests/worker_process.py), on SQLite and on the real PostgreSQL.

Protects a promise of the README ("How it works"): "a job cut off by a crash or a killed worker runs again once
any worker is up", and a worker told to stop (SIGTERM, as on a deploy) hands its job back without spending an attempt.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.queue.db import Database
from app.queue.models import Job
from app.queue.requests import JobKind, JobRequest
from app.queue.store import JobQueue
from tests.support import ROOT, honk_env, wait_for

pytestmark = pytest.mark.slow


class WorkerProcess:
    """`python -m tests.worker_process` in a subprocess, its output kept in a log file."""

    def __init__(self, database_url: str, marker: Path, mode: str, log: Path, *extra: str) -> None:
        self.log_path = log
        env = honk_env(marker.parent, PYTHONPATH=os.pathsep.join(
            filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.worker_process", "--db", database_url, "--marker", str(marker),
                 "--mode", mode, *extra],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    """Worker processes started by a test; each is killed at the end whatever happened."""
    started: list[WorkerProcess] = []
    try:
        yield started
    finally:
        for worker in started:
            worker.kill()


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    path = tmp_path / "markers"
    path.mkdir()
    return path


def start(workers: list[WorkerProcess], database_url: str, marker: Path, mode: str, *extra: str) -> WorkerProcess:
    worker = WorkerProcess(database_url, marker, mode, marker.parent / f"worker-{len(workers) + 1}.log", *extra)
    workers.append(worker)
    return worker


def wait_marker(worker: WorkerProcess, path: Path) -> None:
    """Wait until the worker's handler has started the given attempt (failing fast if the worker died)."""
    try:
        wait_for(lambda: path.exists() or not worker.alive(), timeout=20, what=path.name)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nworker log:\n{worker.output()}") from None
    assert path.exists(), f"the worker exited with {worker.proc.returncode}:\n{worker.output()}"


def job_in(queue: JobQueue, job_id: int, status: str) -> Job | None:
    job = queue.get(job_id)
    return job if job is not None and job.status == status else None


def enqueue(db: Database) -> tuple[JobQueue, int]:
    queue = JobQueue(db)
    job_id = queue.enqueue(JobRequest(kind=JobKind.RESOLVE_ISSUE, repo="acme/widgets", number=7, requester="alice",
                                      installation_id=42, trigger={"delivery_id": "d-crash"}))
    return queue, job_id


def test_job_of_a_killed_worker_runs_again_on_another(db: Database, database_url: str, marker: Path,
                                                      workers: list[WorkerProcess]) -> None:
    """A worker killed mid-job (SIGKILL: no chance to clean up) does not lose the job: once its lease expires
    another worker reclaims it and it succeeds on its second attempt, still as one job."""
    queue, job_id = enqueue(db)
    first = start(workers, database_url, marker, "slow")
    wait_marker(first, marker / f"{job_id}.1.started")
    first.proc.send_signal(signal.SIGKILL)
    assert first.proc.wait(10) == -signal.SIGKILL
    running = queue.get(job_id)
    assert running is not None and (running.status, running.attempts) == ("running", 1)

    second = start(workers, database_url, marker, "finish")
    wait_marker(second, marker / f"{job_id}.2.started")
    job = wait_for(lambda: job_in(queue, job_id, "succeeded"), timeout=20, what="the job to succeed")
    assert (job.status, job.attempts, job.result, job.lease_owner) == ("succeeded", 2, {"done": True}, None)
    kinds = [event.kind for event in queue.events(job_id)]
    assert kinds == ["job.queued", "job.started", "job.reclaimed", "job.started", "job.succeeded"]
    assert queue.depth() == {"succeeded": 1}, "exactly one job"
    assert sorted(p.name for p in marker.glob("*.started")) == [f"{job_id}.1.started", f"{job_id}.2.started"]


def test_sigterm_hands_a_long_job_back_without_spending_an_attempt(db: Database, database_url: str, marker: Path,
                                                                   workers: list[WorkerProcess]) -> None:
    """SIGTERM (a deploy, a scale-down) stops a worker cleanly: exit status 0, and a job still running after the
    grace period goes straight back to the queue with its attempt not spent."""
    queue, job_id = enqueue(db)
    worker = start(workers, database_url, marker, "slow", "--grace", "0.3")
    wait_marker(worker, marker / f"{job_id}.1.started")
    worker.proc.send_signal(signal.SIGTERM)
    try:
        code = worker.proc.wait(20)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the worker did not stop on SIGTERM:\n{worker.output()}") from None
    assert code == 0, worker.output()
    job = queue.get(job_id)
    assert job is not None
    assert (job.status, job.attempts, job.lease_owner, job.lease_expires_at) == ("queued", 0, None, None)
    assert [event.kind for event in queue.events(job_id)] == ["job.queued", "job.started", "job.released"]
    assert queue.claim("next") is not None, "claimable again at once"
