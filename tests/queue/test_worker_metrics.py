"""`honk worker --metrics-port`: a standalone worker serves its own Prometheus metrics, so that every worker of a
fleet can be scraped: the queue's depth by kind, its attempts' durations, and its model tokens and cost by model.

A real `honk web` takes the delivery and a real `honk worker` runs the job, against the local GitHub and the
scripted model; the figures scraped from the worker are checked against the job's own audit trail."""

from __future__ import annotations

import shutil
import socket
from collections import Counter

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.queue.db import Database
from app.queue.requests import JobKind, JobRequest
from app.queue.store import JobQueue
from app.telemetry import TOKEN_TYPES
from tests.e2e import FIX, REPO, World
from tests.support import free_port, wait_for

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
KINDS = [kind.value for kind in JobKind]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        assert family.documentation, f"{family.name} has no HELP text"
        assert family.name.startswith("honk_"), family.name  # the worker's own registry: Honk's figures only
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape(url: str) -> Samples:
    answer = httpx.get(url, timeout=10)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return parse(answer.text)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")
def test_a_standalone_worker_serves_its_own_metrics(world: World) -> None:
    web = world.start("web", "--port", world.url.rsplit(":", 1)[1])
    web.wait_http(f"{world.url}/healthz")
    port = free_port()
    worker = world.start("worker", "--metrics-port", str(port))
    url = f"http://127.0.0.1:{port}/metrics"
    worker.wait_http(url)
    assert f"worker metrics on http://127.0.0.1:{port}/metrics" in worker.output()  # loopback unless told

    before = scrape(url)
    assert value(before, "honk_worker_database_up") == 1
    # Every kind this worker runs has a series, zeros included, so that alerts on a kind's backlog have one.
    for kind in KINDS:
        for state in ("ready", "delayed", "running"):
            assert (("honk_queue_depth", frozenset({"kind": kind, "state": state}.items())) in before), (kind, state)
            assert value(before, "honk_queue_depth", kind=kind, state=state) == 0

    # Another job in the shared database, waiting for later: the depth is the queue's, by kind.
    db = Database(world.env["HONK_DATABASE_URL"])
    try:
        JobQueue(db).enqueue(JobRequest(kind=JobKind.FOLLOW_UP, repo=REPO, number=99, requester="alice",
                                        installation_id=1, delay_seconds=3600))
    finally:
        db.dispose()
    issue = world.github.create_issue(REPO, "Widgets spin backwards", "They should spin forwards.", user="alice")
    world.model.script(*FIX)
    job = world.finished(world.label(issue).json()["job"])
    assert job["status"] == "succeeded", world.logs()

    # The job's figures are counted once the worker has recorded them; the job page sees them at the same time.
    def settled() -> Samples | None:
        samples = scrape(url)
        return samples if value(samples, "honk_worker_job_seconds_count", kind="resolve_issue",
                                outcome="succeeded") == 1 else None

    after = wait_for(settled, timeout=10, what="the attempt's duration")
    assert value(after, "honk_worker_job_seconds_sum", kind="resolve_issue", outcome="succeeded") > 0
    assert value(after, "honk_worker_job_seconds_bucket", kind="resolve_issue", outcome="succeeded",
                 le="+Inf") == 1
    assert value(after, "honk_worker_queue_wait_seconds_count", kind="resolve_issue") == 1
    assert value(after, "honk_worker_jobs_running", kind="resolve_issue") == 0
    assert value(after, "honk_queue_depth", kind="follow_up", state="delayed") == 1
    assert value(after, "honk_queue_depth", kind="resolve_issue", state="ready") == 0

    # Model tokens and cost by model: the agent's calls and the judge's, as the job's trail has them.
    tokens: Counter[tuple[str, str]] = Counter()
    cost: Counter[str] = Counter()
    for event in job["events"]:
        data = event["data"]
        if event["kind"] == "model.response":
            model = data.get("model") or job["result"].get("model") or "claude-opus-5-5"
        elif event["kind"] == "judge.verdict":
            model = data["model"]
        else:
            continue
        for key, kind in TOKEN_TYPES.items():
            tokens[(model, kind)] += int(data["usage"].get(key) or 0)
        cost[model] += data["cost_usd"]
    assert len(cost) >= 1 and sum(tokens.values()) > 0
    for (model, kind), count in tokens.items():
        assert value(after, "honk_worker_model_tokens_total", model=model, type=kind) == count, (model, kind)
    for model, usd in cost.items():
        assert value(after, "honk_worker_model_cost_usd_total", model=model) == pytest.approx(usd, abs=1e-6)
    assert value(after, "honk_sandbox_commands_total", outcome="ok") >= 1  # `cat widgets.py`


@pytest.mark.slow
def test_a_metrics_port_in_use_stops_the_worker_with_the_reason(world: World) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        worker = world.start("worker", "--metrics-port", str(port))
        assert worker.proc.wait(timeout=30) == 1
    assert f"honk: cannot serve metrics on 127.0.0.1:{port}" in worker.output()
