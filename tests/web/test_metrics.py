"""`GET /metrics` (app/metrics.py): Prometheus text that parses, and figures that move with real work.

Deliveries go through a live server; jobs run through a real in-process worker; the job-level figures are read
from the database (SQLite and the real PostgreSQL) and must agree with the queue. Process-wide counters are
shared by every app in the test process, so those assertions compare before and after.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.github.client import GitHubApp, GitHubRetry
from app.process import HonkState
from app.queue.db import Database
from app.queue.models import Job, JobEvent
from app.queue.requests import JobKind, JobRequest
from app.queue.worker import Handlers, JobContext, Worker
from app.settings import Settings
from app.web.app import create_app
from app.web.metrics import RESCAN_IDS, Metrics
from tests.fakes.github import FakeGitHub
from tests.support import app_private_key, delivery_headers, free_port, labeled_payload, live_server, post_delivery

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample, keyed by name and labels. Parsing is itself the check that the format is right."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        assert family.documentation, f"{family.name} has no HELP text"
        assert family.name.startswith("honk_"), family.name
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape(client: httpx.Client) -> Samples:
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(answer.text)


def request(number: int = 7) -> JobRequest:
    return JobRequest(kind=JobKind.RESOLVE_ISSUE, repo="acme/widgets", number=number, requester="alice",
                      installation_id=42)


@pytest.fixture
def served(state: HonkState) -> Iterator[tuple[HonkState, httpx.Client]]:
    with live_server(create_app(state)) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield state, client


def test_metrics_parse_and_count_every_kind_of_delivery_answer(served: tuple[HonkState, httpx.Client]) -> None:
    _, client = served
    before = scrape(client)
    assert value(before, "honk_database_up") == 1
    assert value(before, "honk_webhook_ack_seconds_count") == 0  # this app's own registry starts empty

    delivery = str(uuid.uuid4())
    assert post_delivery(client, "issues", labeled_payload(), delivery=delivery).status_code == 202
    assert post_delivery(client, "issues", labeled_payload(), delivery=delivery).json() == {"status": "duplicate"}
    assert post_delivery(client, "issues", labeled_payload(label="bug")).json()["status"] == "ignored"
    assert post_delivery(client, "issues", labeled_payload(), secret="wrong").status_code == 401
    assert post_delivery(client, "issues", b"not json").status_code == 400

    after = scrape(client)
    deliveries = "honk_webhook_deliveries_total"
    assert value(after, deliveries, event="issues", outcome="queued", status="202") == 1
    assert value(after, deliveries, event="issues", outcome="duplicate", status="200") == 1
    assert value(after, deliveries, event="issues", outcome="ignored", status="200") == 1
    # An unverified delivery's headers are anyone's text: they never become a label value.
    assert value(after, deliveries, event="unverified", outcome="rejected", status="401") == 1
    assert value(after, deliveries, event="issues", outcome="rejected", status="400") == 1
    assert value(after, "honk_webhook_ack_seconds_count") == 5
    assert 0 < value(after, "honk_webhook_ack_seconds_sum") < 5
    assert value(after, "honk_webhook_ack_seconds_bucket", le="+Inf") == 5

    # The queued delivery is a job in the database, and the job-level figures say so.
    assert value(after, "honk_jobs", kind="resolve_issue", status="queued") == 1
    assert value(after, "honk_jobs", kind="resolve_issue", status="succeeded") == 0  # zeros have a series
    assert value(after, "honk_queue_jobs", state="ready") == 1
    assert value(after, "honk_queue_oldest_age_seconds") >= 0


def test_a_413_and_a_missing_secret_are_counted_too(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    state = HonkState.create(make_settings(honk_database_url=f"sqlite:///{tmp_path / 'm.db'}",
                                           github_webhook_secret=None))
    state.db.migrate()
    try:
        with live_server(create_app(state)) as url, httpx.Client(base_url=url, timeout=10) as client:
            assert post_delivery(client, "issues", labeled_payload()).status_code == 401
            body = b'{"pad": "' + b"x" * (25 * 1024 * 1024) + b'"}'
            assert client.post("/api/github/webhooks", content=body, headers=delivery_headers("issues", body)
                               ).status_code == 413
            samples = scrape(client)
    finally:
        state.db.dispose()
    deliveries = "honk_webhook_deliveries_total"
    assert value(samples, deliveries, event="unverified", outcome="rejected", status="401") == 1
    assert value(samples, deliveries, event="unverified", outcome="rejected", status="413") == 1
    assert value(samples, "honk_webhook_ack_seconds_count") == 2


def run_worker(honk: HonkState, handlers: Handlers, done: Callable[[], bool]) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(Worker(honk.queue, handlers, honk.settings, worker_id="m1").run(stop))
        deadline = time.monotonic() + 20
        try:
            while not await asyncio.to_thread(done):
                assert time.monotonic() < deadline, "the job did not finish"
                await asyncio.sleep(0.03)
        finally:
            stop.set()
            await asyncio.wait_for(task, 15)

    asyncio.run(main())


def test_a_job_run_moves_tokens_cost_sandbox_and_api_error_figures(state: HonkState) -> None:
    model = f"claude-test-{uuid.uuid4().hex[:8]}"  # process-wide counters: a model name of this test's own
    metrics = Metrics(state.db)
    handlers = Handlers()

    @handlers.register("resolve_issue")
    async def resolve(ctx: JobContext) -> dict[str, Any]:
        await ctx.audit.record("agent.start", model=model)
        await ctx.audit.record("model.retry", attempt=1, error="HTTP 529 overloaded_error: Overloaded", wait_s=0)
        await ctx.audit.record("model.response", turn=1, usage={
            "input_tokens": 1000, "output_tokens": 200, "cache_creation_input_tokens": 300,
            "cache_read_input_tokens": 4000}, cost_usd=0.125)
        await ctx.audit.record("tool.result", id="t1", name="bash", is_error=False, content="ok", duration_s=0.25)
        await ctx.audit.record("tool.result", id="t2", name="bash", is_error=True, content="no", duration_s=0.5)
        await ctx.audit.record("tool.result", id="t3", name="str_replace_based_edit_tool", is_error=False,
                               content="", duration_s=0.01)
        await ctx.audit.record("model.response", turn=2, usage={"input_tokens": 50, "output_tokens": 10},
                               cost_usd=0.0625)
        await ctx.audit.record("model.retry", attempt=1, error="connection error: reset by peer", wait_s=0)
        await ctx.audit.record("agent.stop", stop="api_error", error="HTTP 401 authentication_error: bad key")
        return {"outcome": "no_change"}

    before = parse(metrics.render().decode())
    job_id = state.queue.enqueue(request())
    run_worker(state, handlers, lambda: state.queue.depth() == {"succeeded": 1})
    after = parse(metrics.render().decode())

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # From the database: every job's audit trail, whichever process ran it.
    assert value(after, "honk_model_responses_total", model=model) == 2
    assert value(after, "honk_model_tokens_total", model=model, type="input") == 1050
    assert value(after, "honk_model_tokens_total", model=model, type="output") == 210
    assert value(after, "honk_model_tokens_total", model=model, type="cache_write") == 300
    assert value(after, "honk_model_tokens_total", model=model, type="cache_read") == 4000
    assert value(after, "honk_model_cost_usd_total", model=model) == pytest.approx(0.1875)
    assert value(after, "honk_jobs", kind="resolve_issue", status="succeeded") == 1
    assert value(after, "honk_job_duration_seconds_count", kind="resolve_issue", status="succeeded") == 1
    assert value(after, "honk_job_duration_seconds_sum", kind="resolve_issue", status="succeeded") >= 0
    assert value(after, "honk_job_queue_wait_seconds_count", kind="resolve_issue") == 1
    assert value(after, "honk_queue_jobs", state="ready") == 0

    # From this process, as the worker recorded the events.
    assert moved("honk_worker_model_tokens_total", model=model, type="input") == 1050
    assert moved("honk_worker_model_cost_usd_total", model=model) == pytest.approx(0.1875)
    assert moved("honk_sandbox_commands_total", outcome="ok") == 1
    assert moved("honk_sandbox_commands_total", outcome="error") == 1
    assert moved("honk_sandbox_command_seconds_count") == 2  # the editor is not a sandbox command
    assert moved("honk_sandbox_command_seconds_sum") == pytest.approx(0.75)
    assert moved("honk_anthropic_api_errors_total", status="529") == 1
    assert moved("honk_anthropic_api_errors_total", status="connection") == 1
    assert moved("honk_anthropic_api_errors_total", status="401") == 1  # the failure that ended the run
    assert [e.kind for e in state.queue.events(job_id)][-1] == "job.succeeded"


def test_database_gauges_match_the_queue(state: HonkState) -> None:
    metrics = Metrics(state.db)
    ready, delayed, running, cancelled = (state.queue.enqueue(request(n)) for n in (1, 2, 3, 4))
    with state.db.session() as session:
        first, second = session.get(Job, ready), session.get(Job, delayed)
        assert first is not None and second is not None
        first.created_at -= timedelta(seconds=90)  # it waited a minute and a half for a worker
        first.run_after -= timedelta(seconds=90)
        second.run_after += timedelta(hours=1)  # in retry backoff
    claimed = state.queue.claim("m1/1")
    assert claimed is not None and claimed.id == ready  # oldest first
    state.queue.cancel(cancelled)
    assert running  # the third job stays queued and ready behind nothing

    samples = parse(metrics.render().decode())
    depth = state.queue.depth()
    for status in ("queued", "running", "succeeded", "failed", "cancelled"):
        assert value(samples, "honk_jobs", kind="resolve_issue", status=status) == depth.get(status, 0), status
    assert value(samples, "honk_queue_jobs", state="ready") == 1  # job 3
    assert value(samples, "honk_queue_jobs", state="delayed") == 1  # job 2, an hour from now
    assert value(samples, "honk_queue_jobs", state="running") == 1  # job 1
    # The oldest queued job is job 2 (created before job 3); job 3 is the only ready one.
    assert 0 <= value(samples, "honk_queue_oldest_age_seconds") < 60
    assert 0 <= value(samples, "honk_queue_oldest_ready_seconds") < 60
    assert value(samples, "honk_job_queue_wait_seconds_count", kind="resolve_issue") == 1
    assert value(samples, "honk_job_queue_wait_seconds_sum", kind="resolve_issue") >= 89

    assert state.queue.complete(ready, "m1/1", {})
    samples = parse(metrics.render().decode())
    assert value(samples, "honk_jobs", kind="resolve_issue", status="succeeded") == 1
    assert value(samples, "honk_queue_jobs", state="running") == 0
    assert value(samples, "honk_job_duration_seconds_count", kind="resolve_issue", status="succeeded") == 1


def test_token_totals_count_each_event_once_even_when_it_commits_late(state: HonkState) -> None:
    """Totals are read incrementally; an event whose id is below ones already counted (a later commit on
    PostgreSQL) is still counted, and once only. A fresh collector reads the same totals from scratch."""
    job_id = state.queue.enqueue(request())
    state.queue.append_event(job_id, "agent.start", {"model": "m"})

    def response(tokens: int, event_id: int | None = None) -> None:
        with state.db.session() as session:
            session.add(JobEvent(id=event_id, job_id=job_id, at=state.db.now(session), kind="model.response",
                                 data={"usage": {"input_tokens": tokens, "output_tokens": 1}, "cost_usd": 0.5}))

    metrics = Metrics(state.db)
    response(10)
    assert value(parse(metrics.render().decode()), "honk_model_tokens_total", model="m", type="input") == 10
    newest = max(e.id for e in state.queue.events(job_id))
    response(100, newest + 50)  # commits first...
    assert value(parse(metrics.render().decode()), "honk_model_tokens_total", model="m", type="input") == 110
    response(1000, newest + 10)  # ...then an event with a lower id
    for _ in range(2):  # a repeated scrape counts nothing twice
        samples = parse(metrics.render().decode())
        assert value(samples, "honk_model_tokens_total", model="m", type="input") == 1110
        assert value(samples, "honk_model_responses_total", model="m") == 3
        assert value(samples, "honk_model_cost_usd_total", model="m") == 1.5
    fresh = parse(Metrics(state.db).render().decode())
    assert value(fresh, "honk_model_tokens_total", model="m", type="input") == 1110
    assert RESCAN_IDS > 50


def test_a_long_history_is_summed_in_bulk_then_read_incrementally(state: HonkState,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The first scrape sums all but the newest events in SQL; the totals are the same as reading them one by
    one, per model, and later events add to them exactly once."""
    models = {state.queue.enqueue(request(n)): model for n, model in ((1, "opus"), (2, "haiku"))}
    for job_id, model in models.items():
        state.queue.append_event(job_id, "agent.start", {"model": model})
    for turn in range(12):
        for job_id in models:
            state.queue.append_event(job_id, "model.response", {"turn": turn, "cost_usd": 0.25, "usage": {
                "input_tokens": 100, "output_tokens": 10, "cache_read_input_tokens": 1000}})

    monkeypatch.setattr("app.web.metrics.RESCAN_IDS", 5)  # so that most of the history is below the window
    bulk = Metrics(state.db)
    samples = parse(bulk.render().decode())
    for model in ("opus", "haiku"):
        assert value(samples, "honk_model_responses_total", model=model) == 12
        assert value(samples, "honk_model_tokens_total", model=model, type="input") == 1200
        assert value(samples, "honk_model_tokens_total", model=model, type="cache_read") == 12000
        assert value(samples, "honk_model_tokens_total", model=model, type="cache_write") == 0
        assert value(samples, "honk_model_cost_usd_total", model=model) == 3.0
    assert 0 < bulk.database._floor < bulk.database._high

    opus = next(job for job, model in models.items() if model == "opus")
    state.queue.append_event(opus, "model.response", {"cost_usd": 1.0, "usage": {"input_tokens": 7}})
    for _ in range(2):
        samples = parse(bulk.render().decode())
        assert value(samples, "honk_model_tokens_total", model="opus", type="input") == 1207
        assert value(samples, "honk_model_responses_total", model="haiku") == 12


def test_a_scrape_does_not_wait_for_sqlite_writers(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    """Scrapes read beside writers (WAL) instead of queueing for the write lock the webhook route needs."""
    state = HonkState.create(make_settings(honk_database_url=f"sqlite:///{tmp_path / 'busy.db'}"))
    state.db.migrate()
    state.queue.enqueue(request())
    writer = sqlite3.connect(tmp_path / "busy.db", isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # a writer holding the lock, as an accepting webhook does
        started = time.monotonic()
        samples = parse(Metrics(state.db).render().decode())
        assert time.monotonic() - started < 5
        assert value(samples, "honk_database_up") == 1
        assert value(samples, "honk_jobs", kind="resolve_issue", status="queued") == 1
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        state.db.dispose()


def test_github_errors_are_counted_by_status(make_settings: Callable[..., Settings]) -> None:
    key = app_private_key()
    fake = FakeGitHub(app_id=4242, private_key_pem=key, failures={"get_app": [502]})
    metrics = Metrics(Database("sqlite://"))
    with fake.serve() as url:
        github = GitHubApp(make_settings(github_app_id=4242, github_private_key=key, github_api_url=url),
                           retry=GitHubRetry(base_seconds=0.01))
        before = parse(metrics.render().decode())
        info = asyncio.run(github.app_info())  # a 502, retried, then the answer
        wrong = GitHubApp(make_settings(github_app_id=4242, github_private_key=app_private_key(),
                                        github_api_url=url), retry=GitHubRetry(retries=0))
        with pytest.raises(Exception, match=r"401|credentials|JSON web token"):
            asyncio.run(wrong.app_info())
        after = parse(metrics.render().decode())
    assert info["slug"] == fake.slug
    for status in ("502", "401"):
        assert value(after, "honk_github_api_errors_total", status=status) - value(
            before, "honk_github_api_errors_total", status=status) == 1, status


def test_metrics_still_answer_when_the_database_does_not() -> None:
    metrics = Metrics(Database(f"postgresql+psycopg://honk@127.0.0.1:{free_port()}/nothing"))
    samples = parse(metrics.render().decode())
    assert value(samples, "honk_database_up") == 0
    assert ("honk_webhook_ack_seconds_count", frozenset()) in samples  # process figures are still there


def test_metrics_need_the_dashboard_token_when_one_is_set(make_settings: Callable[..., Settings],
                                                          tmp_path: Path) -> None:
    """The figures name repositories and requesters: behind HONK_DASHBOARD_TOKEN like the job pages, as a bearer
    token (what Prometheus's `authorization:` sends) or the login form's session."""
    token = "a-scraper-token-of-decent-length"
    state = HonkState.create(make_settings(honk_database_url=f"sqlite:///{tmp_path / 'm.db'}",
                                           honk_dashboard_token=token))
    state.db.migrate()
    try:
        with live_server(create_app(state)) as url, httpx.Client(base_url=url, timeout=10) as client:
            bare = client.get("/metrics")
            assert bare.status_code == 401 and bare.headers["www-authenticate"] == "Bearer"
            assert "dashboard token" in bare.text and "honk_" not in bare.text
            assert client.get("/metrics", headers={"Authorization": "Bearer not-the-token"}).status_code == 401
            assert client.get("/metrics", headers={"Authorization": token}).status_code == 401  # no scheme
            scraped = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
            assert scraped.status_code == 200 and value(parse(scraped.text), "honk_database_up") == 1

            login = client.post("/login", data={"token": token, "next": "/jobs"})
            assert login.status_code == 303
            assert client.get("/metrics").status_code == 200  # the browser's session will do too
    finally:
        state.db.dispose()
