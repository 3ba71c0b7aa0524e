"""Traces (app/tracing.py): every job is one trace, sent over OTLP/HTTP, from the intake in the web process to the
push in a worker; off without OTEL_EXPORTER_OTLP_ENDPOINT, when it loads nothing and sends nothing.

The end-to-end tests run a real `honk web` and a real `honk worker` (two processes, nothing propagated between
them) against the local GitHub, the scripted model and a local OTLP receiver, and check the spans that arrive
against the job's own audit trail."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app import tracing
from tests.e2e import FIX, REPO, World, serve
from tests.fakes.otlp import OTLPReceiver, Span

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")
MODEL = "claude-opus-5-5"


@pytest.fixture
def otlp() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as receiver:
        yield receiver


def traced(otlp: OTLPReceiver, **more: str) -> dict[str, str]:
    # Batches leave within 100 ms rather than the default 5 s.
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url, "OTEL_BSP_SCHEDULE_DELAY": "100", **more}


def web_and_worker(world: World, **env: str) -> None:
    web = world.start("web", "--port", world.url.rsplit(":", 1)[1], **env)
    web.wait_http(f"{world.url}/healthz")
    world.start("worker", **env)


def one(spans: list[Span], name: str) -> Span:
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


# End to end

@pytest.mark.slow
@needs_bwrap
@pytest.mark.parametrize("processes", ["web+worker", "serve"])
def test_a_job_is_one_trace_from_the_intake_to_the_push(world: World, otlp: OTLPReceiver, processes: str) -> None:
    if processes == "serve":
        serve(world, **traced(otlp))
    else:
        web_and_worker(world, **traced(otlp))
    issue = world.github.create_issue(REPO, "Widgets spin backwards", "They should spin forwards.", user="alice")
    world.model.script(*FIX)
    answer = world.label(issue)
    assert answer.status_code == 202, answer.text
    delivery = world.github.deliveries[-1].id
    job = world.finished(answer.json()["job"])
    assert job["status"] == "succeeded", world.logs()

    trace_id = tracing.trace_id_hex(job["id"], delivery)
    spans = otlp.wait_for(lambda got: any(s.name == "job resolve_issue" and s.trace_id == trace_id for s in got)
                          and any(s.name.startswith("POST") and s.trace_id == trace_id for s in got))
    assert {span.trace_id for span in spans} == {trace_id}, "one job, one trace, nothing else"
    assert not otlp.rejected
    by_id = {span.span_id: span for span in spans}
    assert len(by_id) == len(spans), "no span id twice"

    # The root: the whole job, with the id both processes derive from it.
    root = one(spans, "job resolve_issue")
    assert root.parent_id == "" and int(root.span_id, 16) == tracing.job_ids(job["id"], delivery)[1]
    assert root.attributes["honk.job.id"] == job["id"] and root.attributes["honk.delivery.id"] == delivery
    assert root.attributes["honk.job.status"] == "succeeded"
    assert root.attributes["honk.job.outcome"] == "pull_request"
    assert root.attributes["honk.job.subject"] == f"{REPO}#{issue}"

    # The intake, in the web process; the queue wait and the attempt, in the worker: all children of the root.
    intake = one(spans, "POST /api/github/webhooks")
    assert intake.kind == "server" and intake.parent_id == root.span_id
    assert intake.attributes["honk.delivery.id"] == delivery
    assert (intake.attributes["github.event"], intake.attributes["github.action"]) == ("issues", "labeled")
    assert intake.attributes["http.response.status_code"] == 202 and intake.attributes["honk.job.id"] == job["id"]
    wait, attempt = one(spans, "queue wait"), one(spans, "attempt")
    assert wait.parent_id == attempt.parent_id == root.span_id
    if processes == "web+worker":  # each process parents its spans on the same ids, derived from the job
        assert intake.resource["service.instance.id"] != attempt.resource["service.instance.id"]
    assert intake.resource["service.name"] == attempt.resource["service.name"] == "honk"
    assert wait.end <= attempt.start + 1_000_000 and wait.start >= intake.start
    assert attempt.attributes["honk.job.attempt"] == 1 and attempt.attributes["honk.job.outcome"] == "succeeded"
    assert intake.start <= attempt.start <= attempt.end <= root.end

    # The agent's model calls: GenAI attributes whose figures are the job's own.
    events = job["events"]
    agent = one(spans, "invoke_agent honk")
    assert agent.parent_id == attempt.span_id and agent.attributes["gen_ai.operation.name"] == "invoke_agent"
    responses = [e["data"] for e in events if e["kind"] == "model.response"]
    chats = sorted((s for s in spans if s.name.startswith("chat ")), key=lambda s: s.attributes["honk.turn"])
    assert [c.attributes["honk.turn"] for c in chats] == [r["turn"] for r in responses] == [1, 2, 3]
    for chat, response in zip(chats, responses, strict=True):
        usage, a = response["usage"], chat.attributes
        assert chat.name == f"chat {MODEL}" and chat.kind == "client" and chat.parent_id == agent.span_id
        assert (a["gen_ai.operation.name"], a["gen_ai.system"], a["gen_ai.provider.name"]) == \
            ("chat", "anthropic", "anthropic")
        assert a["gen_ai.request.model"] == MODEL and a["gen_ai.request.max_tokens"] > 0
        assert a["gen_ai.response.finish_reasons"] == [response["stop_reason"]]
        assert a["gen_ai.usage.output_tokens"] == usage["output_tokens"]
        assert a["gen_ai.usage.cache_read.input_tokens"] == usage["cache_read_input_tokens"]
        assert a["gen_ai.usage.cache_creation.input_tokens"] == usage["cache_creation_input_tokens"]
        assert a["honk.usage.input_tokens"] == usage["input_tokens"]
        assert a["gen_ai.usage.input_tokens"] == (usage["input_tokens"] + usage["cache_read_input_tokens"]
                                                  + usage["cache_creation_input_tokens"])
        assert a["honk.cost_usd"] == pytest.approx(response["cost_usd"])
        assert chat.seconds == pytest.approx(response["duration_s"], abs=0.002)
    assert chats[1].attributes["gen_ai.usage.cache_read.input_tokens"] > 0  # the second call read the cache
    # The job page's figure for the same calls: the share of input tokens read from the prompt cache.
    read = sum(c.attributes["gen_ai.usage.cache_read.input_tokens"] for c in chats)
    share = read / sum(c.attributes["gen_ai.usage.input_tokens"] for c in chats)
    assert job["totals"]["cache_share"] == pytest.approx(share, abs=1e-4)
    assert [run["cache_share"] for run in job["runs"]] == [job["totals"]["cache_share"]]
    page = httpx.get(f"{world.url}/jobs/{job['id']}", timeout=10).text
    assert f"{share:.0%} of input tokens read from the cache" in page

    # Each tool call, by its id.
    calls = [e["data"] for e in events if e["kind"] == "tool.call"]
    tools = [s for s in spans if s.name.startswith("execute_tool ")]
    assert sorted(s.attributes["gen_ai.tool.call.id"] for s in tools) == sorted(c["id"] for c in calls)
    for tool in tools:
        assert tool.parent_id == agent.span_id and tool.attributes["gen_ai.operation.name"] == "execute_tool"
        assert tool.name == f"execute_tool {tool.attributes['gen_ai.tool.name']}"
    assert {s.attributes["gen_ai.tool.name"] for s in tools} == {"bash", "str_replace_based_edit_tool"}

    # The verifiers, the judge and the push, in the attempt.
    verify = one(spans, "verify")
    assert verify.parent_id == attempt.span_id and verify.attributes["honk.verify.status"] == "passed"
    assert verify.attributes["honk.verify.verifiers"] == ["test"] and verify.status != "error"
    judge = one(spans, "judge")
    [verdict] = [e["data"] for e in events if e["kind"] == "judge.verdict"]
    assert judge.parent_id == attempt.span_id and judge.attributes["honk.judge.decision"] == "approve"
    assert judge.attributes["gen_ai.request.model"] == verdict["model"]
    assert judge.attributes["gen_ai.usage.output_tokens"] == verdict["usage"]["output_tokens"]
    push = one(spans, "git push")
    assert push.parent_id == attempt.span_id
    assert push.attributes["honk.git.branch"] == "honk/issue-1-widgets-spin-backwards"
    assert one(spans, "workspace").parent_id == attempt.span_id
    assert "pull_request" in [e["name"] for e in attempt.events]
    assert agent.start <= chats[0].start and chats[-1].end <= agent.end <= verify.end <= push.end

    # Metadata only: no prompt, reply, command, output or diff leaves Honk in a span.
    shown = repr([(s.attributes, s.events) for s in spans])
    for content in ("They should spin forwards", "return 'forwards'", "cat widgets.py", "Read the code first"):
        assert content not in shown


@pytest.mark.slow
@needs_bwrap
def test_without_the_variable_nothing_loads_and_nothing_is_sent(world: World, otlp: OTLPReceiver) -> None:
    # Every import the processes make is logged (PYTHONPROFILEIMPORTTIME), and the OTLP variables that remain
    # (the service name, headers) turn nothing on without an endpoint.
    web_and_worker(world, PYTHONPROFILEIMPORTTIME="1", OTEL_SERVICE_NAME="honk-test", OTEL_BSP_SCHEDULE_DELAY="100")
    issue = world.github.create_issue(REPO, "Widgets spin backwards", "", user="alice")
    world.model.script(*FIX)
    job = world.finished(world.label(issue).json()["job"])
    assert job["status"] == "succeeded", world.logs()[-3000:]
    for process in world.processes:
        process.stop()
    logs = "\n".join(process.output() for process in world.processes)
    imported = set(re.findall(r"^import time:.*\|\s*([\w.]+)$", logs, re.MULTILINE))
    assert {"app.queue.worker", "app.intake.webhooks", "app.tracing", "anthropic"} <= imported
    assert not [name for name in imported if name.startswith(("opentelemetry.sdk", "opentelemetry.exporter"))]
    assert "honk.tracing" not in logs  # no "tracing: ..." line either
    time.sleep(0.3)
    assert otlp.exports == []


# The spans of one attempt, in-process (an in-memory exporter)

@pytest.fixture
def memory() -> Iterator[Any]:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracing.configure(exporter)
    try:
        yield exporter
    finally:
        tracing.reset()


def started(job_id: int = 9, attempt: int = 1, delivery: str | None = "d-9") -> tracing.JobTrace:
    now = datetime.now(UTC).replace(tzinfo=None)
    trace = tracing.job_started(job_id=job_id, kind="resolve_issue", subject="acme/widgets#1", repo="acme/widgets",
                                delivery_id=delivery, attempt=attempt, created_at=now - timedelta(seconds=3),
                                ready_at=now - timedelta(seconds=1), claimed_at=now, worker="host:1:abc/1",
                                provider="bedrock")
    assert trace is not None
    return trace


def finished(memory: Any) -> dict[str, Any]:
    tracing.flush()
    return {span.name: span for span in memory.get_finished_spans()}


def test_the_switch_is_the_standard_variables() -> None:
    wanted = tracing._wanted
    assert not wanted({})
    assert not wanted({"OTEL_SERVICE_NAME": "honk", "OTEL_EXPORTER_OTLP_HEADERS": "a=b"})
    assert wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert wanted({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"})
    assert not wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"})
    assert not wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"})
    assert not wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "})


def test_ids_come_from_the_job_alone() -> None:
    trace_id, root = tracing.job_ids(42, "72d3162e-cc78-11e3-81ab-4c9367dc0958")
    assert (trace_id, root) == tracing.job_ids(42, "72d3162e-cc78-11e3-81ab-4c9367dc0958")
    assert 0 < trace_id < 2**128 and 0 < root < 2**64
    assert tracing.job_ids(43, "72d3162e-cc78-11e3-81ab-4c9367dc0958")[0] != trace_id
    assert tracing.job_ids(42, "another delivery")[0] != trace_id  # job 42 of another database
    assert tracing.trace_id_hex(42, "72d3162e-cc78-11e3-81ab-4c9367dc0958") == f"{trace_id:032x}"


def test_off_nothing_is_made() -> None:
    tracing.reset()
    if tracing.ENABLED:
        pytest.skip("OTEL_EXPORTER_OTLP_ENDPOINT is set for this test run")
    now = datetime.now(UTC).replace(tzinfo=None)
    assert tracing.job_started(job_id=1, kind="k", subject="s", repo="r", delivery_id=None, attempt=1,
                               created_at=now, ready_at=now, claimed_at=now, worker="w") is None
    tracing.intake(job_id=1, delivery_id="d", event="issues", action=None, status=202, start=0, end=1)
    assert tracing._pipeline is None


def test_a_failed_call_a_retry_and_a_cancelled_run(memory: Any) -> None:
    trace = started()
    at = time.time_ns()
    trace.event("agent.start", {"model": "claude-opus-5-5", "provider": "bedrock"}, at)
    trace.event("model.request", {"turn": 1, "max_tokens": 1000, "model": "us.anthropic.claude-opus-5-5"}, at + 1)
    trace.event("model.retry", {"attempt": 1, "error": "HTTP 529 overloaded_error: Overloaded", "wait_s": 0.5},
                at + 2)
    trace.event("agent.stop", {"stop": "api_error", "error": "HTTP 529 overloaded_error: Overloaded", "turns": 0},
                at + 3)
    trace.event("agent.stop", {"stop": "odd"}, at + 4)  # a second stop, with nothing open: no harm
    trace.event("model.response", {"turn": "not a number", "usage": "odd"}, at + 5)  # malformed: never raises
    trace.event("context.cleared", {"cleared": 3, "kept": 1, "reason": "near the context window",
                                    "content": "never copied"}, at + 6)
    trace.event("model.request", {"turn": 2, "max_tokens": 1000}, at + 7)  # a resumed conversation, cancelled
    trace.end("cancelled", final=True, status="cancelled")
    spans = finished(memory)

    chat = spans["chat us.anthropic.claude-opus-5-5"]
    assert chat.status.status_code.name == "ERROR" and chat.attributes["error.type"] == "api_error"
    assert chat.attributes["gen_ai.system"] == "aws.bedrock" and chat.attributes["gen_ai.request.max_tokens"] == 1000
    [retry] = chat.events
    assert retry.name == "retry" and retry.attributes["honk.retry.attempt"] == 1
    attempt = spans["attempt"]
    [cleared] = [e for e in attempt.events if e.name == "context.cleared"]
    assert dict(cleared.attributes) == {"honk.cleared": 3, "honk.kept": 1, "honk.reason": "near the context window"}
    agents = [s for s in memory.get_finished_spans() if s.name == "invoke_agent honk"]
    assert len(agents) == 2 and agents[-1].attributes["honk.agent.stop"] == "cancelled"
    root = spans["job resolve_issue"]
    assert (root.context.trace_id, root.context.span_id) == tracing.job_ids(9, "d-9") and root.parent is None
    assert root.attributes["honk.job.status"] == "cancelled"
    assert spans["queue wait"].end_time - spans["queue wait"].start_time == pytest.approx(1e9, rel=0.01)


def test_only_the_attempt_that_ends_the_job_emits_its_root(memory: Any) -> None:
    first = started(attempt=1)
    first.end("retry_scheduled", final=False, error="RuntimeError: boom")
    second = started(attempt=2)
    second.end("succeeded", final=True, result={"outcome": "pull_request"})
    tracing.flush()
    spans = memory.get_finished_spans()
    roots = [s for s in spans if s.name == "job resolve_issue"]
    attempts = [s for s in spans if s.name == "attempt"]
    assert len(roots) == 1 and len(attempts) == 2 and len([s for s in spans if s.name == "queue wait"]) == 2
    [root] = roots
    assert root.attributes["honk.job.attempts"] == 2 and root.attributes["honk.job.outcome"] == "pull_request"
    assert {a.parent.span_id for a in attempts} == {root.context.span_id}
    assert {s.context.trace_id for s in spans} == {root.context.trace_id}
    assert attempts[0].status.status_code.name == "ERROR" and attempts[1].status.status_code.name == "UNSET"
    # The root starts when the job was created, before either attempt.
    assert root.start_time < min(a.start_time for a in attempts)
