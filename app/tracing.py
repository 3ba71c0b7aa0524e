"""OpenTelemetry traces of jobs (README, "Traces"), built from the audit events every job already records.

On when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set and `OTEL_SDK_DISABLED`
is not `true`; the other `OTEL_*` variables (service name, resource attributes, headers, timeout, compression,
sampler, batch sizes) are the SDK's and the OTLP/HTTP exporter's own. Off, `ENABLED` is False, nothing here
imports the SDK, and every hook is one check of it.

Every job is one trace. The web process (the intake) and the workers are different processes, possibly on
different hosts, so nothing is propagated between them: the trace id and the root span's id are derived from the
job (`job_ids`), and each process parents its spans on them. The worker that ends the job for good (succeeded,
failed, cancelled) emits the root, which covers the job from its creation to its end:

    job <kind>                          root; honk.job.*, honk.delivery.id
    ├── POST /api/github/webhooks       the intake, in the web process: honk.delivery.id, github.event, ...
    ├── queue wait                      from ready (created, or retry due) to the claim, per attempt
    └── attempt                         one claim by one worker: honk.job.attempt, honk.worker.id, outcome
        ├── workspace                   fetch and checkout
        ├── invoke_agent honk           one drive of the agent (run, and each resume)
        │   ├── chat <model>            each model call: gen_ai.* (semantic conventions), cost
        │   └── execute_tool <name>     each tool call: gen_ai.tool.name, gen_ai.tool.call.id
        ├── verify                      the final gate's verifiers
        ├── judge                       the judge's model call(s): gen_ai.*, its decision
        └── git push
        (events: pull_request, check_run.*, and the other audit events, without their content)

Spans are made from pairs of events (model.request/model.response, tool.call/tool.result, judge.request/
judge.verdict, agent.start/agent.stop) or from one event and the duration it reports (verify.tests, git.pushed,
workspace), with explicit start and end times, so the agent and job code make no tracing calls. No prompt,
reply, command, output or diff goes into a span: only names, ids, counts, durations and outcomes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("honk.tracing")

# gen_ai.system / gen_ai.provider.name by HONK_PROVIDER.
PROVIDERS = {"anthropic": "anthropic", "bedrock": "aws.bedrock", "vertex": "gcp.vertex_ai"}
INTAKE_SPAN = "POST /api/github/webhooks"
FLUSH_SECONDS = 5.0
# Audit events that become no span event: content (message.user) or what a span already says.
_QUIET = frozenset({"message.user", "model.request", "model.response", "model.retry", "tool.call", "tool.result",
                    "agent.start", "agent.stop", "judge.request", "judge.verdict", "verify.tests", "git.pushed",
                    "workspace"})
# Fields of other events never copied into span events: content, not metadata.
_CONTENT = frozenset({"content", "output", "diff", "input", "system", "tools", "body", "text", "summary",
                      "message", "commands", "verifiers", "findings", "stop_details", "usage", "total_usage"})
_MAX_TEXT = 300


def _wanted(environ: Mapping[str, str]) -> bool:
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return bool(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
                or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip())


ENABLED = _wanted(os.environ)  # read once, at import: the variables are the process's, set before it starts

_pipeline: Any = None  # the SDK's objects, built on first use (`_Pipeline`)
_failed = False
_lock = threading.Lock()


def enabled() -> bool:
    return ENABLED


def job_ids(job_id: int, delivery_id: str | None) -> tuple[int, int]:
    """The trace id and the root span id of a job: the first 16 and the next 8 bytes of
    sha256("honk-job-<job id>-<delivery id>"). The delivery id (a GitHub GUID, empty for a job queued without
    one) keeps job 1 of one database apart from job 1 of another."""
    digest = hashlib.sha256(f"honk-job-{job_id}-{delivery_id or ''}".encode()).digest()
    return int.from_bytes(digest[:16], "big") or 1, int.from_bytes(digest[16:24], "big") or 1


def trace_id_hex(job_id: int, delivery_id: str | None) -> str:
    return f"{job_ids(job_id, delivery_id)[0]:032x}"


def configure(exporter: Any = None) -> None:
    """Build the pipeline now, whatever the environment says, e.g. with an in-memory exporter (tests, bench).
    Without an exporter, the OTLP/HTTP one configured by the OTEL_* variables."""
    global ENABLED, _pipeline, _failed
    with _lock:
        if _pipeline is not None:
            _pipeline.shutdown()
        _pipeline, _failed = _Pipeline(exporter), False
        ENABLED = True


def reset() -> None:
    """Flush and drop the pipeline, and go back to what the environment says (tests)."""
    global ENABLED, _pipeline, _failed
    with _lock:
        if _pipeline is not None:
            _pipeline.shutdown()
        _pipeline, _failed = None, False
        ENABLED = _wanted(os.environ)


def prepare() -> None:
    """Build the pipeline ahead of the first span (it imports the SDK: tens of milliseconds, once)."""
    if ENABLED:
        _get()


def flush(timeout: float = FLUSH_SECONDS) -> None:
    """Export what is buffered (a worker stopping calls this; the SDK also flushes when the process exits)."""
    pipeline = _pipeline
    if pipeline is not None:
        try:
            pipeline.provider.force_flush(int(timeout * 1000))
        except Exception as exc:  # an unreachable collector must not stop the worker from stopping
            log.warning("tracing: flush failed: %s", exc)


def _get() -> _Pipeline | None:
    global _pipeline, _failed
    if _pipeline is not None or _failed or not ENABLED:
        return _pipeline
    with _lock:
        if _pipeline is None and not _failed:
            try:
                _pipeline = _Pipeline()
                log.info("tracing: sending spans to %s", _pipeline.endpoint)
            except Exception as exc:  # e.g. a bad OTEL_* value: say so once, and run without traces
                _failed = True
                log.warning("tracing is off: cannot set up OpenTelemetry: %s", exc)
    return _pipeline


def _ns(when: datetime) -> int:
    """A naive UTC datetime (the database's) as nanoseconds since the epoch."""
    return int(when.replace(tzinfo=UTC).timestamp() * 1e9) if when.tzinfo is None else int(when.timestamp() * 1e9)


class _Pipeline:
    """The SDK's pieces, configured by the OTEL_* variables: the tracer provider's resource and sampler, a batch
    span processor and the OTLP/HTTP exporter. Honk's spans are finished when they are made (from events, with
    their times), so they go to the processor as they are, without the tracer's per-span machinery (about a
    sixth of the cost: bench/tracing.py); the sampler decides once per trace, from the trace id."""

    def __init__(self, exporter: Any = None) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
        self.endpoint = getattr(exporter, "_endpoint", type(exporter).__name__)
        resource = Resource.create({"service.version": _version()})
        if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
            resource = resource.merge(Resource({"service.name": "honk"}))  # unless OTEL_SERVICE_NAME says
        self.provider = TracerProvider(resource=resource)  # its sampler: OTEL_TRACES_SAMPLER(_ARG)
        self.processor = BatchSpanProcessor(exporter)  # OTEL_BSP_* (delay, queue and batch sizes)
        self.provider.add_span_processor(self.processor)  # the provider flushes it when the process exits
        self.scope = InstrumentationScope("honk", _version())
        self.resource = resource
        self._span, self._event, self._context = ReadableSpan, Event, SpanContext
        self._sampled = TraceFlags(TraceFlags.SAMPLED)
        self.ok, self._error = Status(StatusCode.UNSET), (Status, StatusCode.ERROR)
        self.INTERNAL, self.SERVER, self.CLIENT, self.CONSUMER = (SpanKind.INTERNAL, SpanKind.SERVER, SpanKind.CLIENT,
                                                                  SpanKind.CONSUMER)

    def sampled(self, trace_id: int, name: str) -> bool:
        """What the configured sampler decides for a trace with no parent: the same in every process."""
        return self.provider.sampler.should_sample(None, trace_id, name).decision.is_sampled()

    def emit(self, name: str, trace_id: int, span_id: int, parent_id: int | None, start: int, end: int,
             attributes: dict[str, Any], *, kind: Any = None, events: list[tuple[str, dict[str, Any], int]] = (),
             error: str | None = None, remote_parent: bool = False) -> None:
        """Hand one finished span to the batch processor (a queue append; export happens in its thread)."""
        context, make = self._context, self._event
        parent = context(trace_id, parent_id, remote_parent, self._sampled) if parent_id else None
        status = self.ok
        if error is not None:
            kind_of_status, code = self._error
            status = kind_of_status(code, error[:_MAX_TEXT] or None)
        self.processor.on_end(self._span(
            name, context=context(trace_id, span_id, False, self._sampled), parent=parent, resource=self.resource,
            attributes=attributes, events=[make(n, a, t) for n, a, t in events], kind=kind or self.INTERNAL,
            status=status, start_time=start, end_time=max(end, start), instrumentation_scope=self.scope))

    def shutdown(self) -> None:
        self.provider.shutdown()


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("honk")
    except Exception:
        return "0"


def _span_id() -> int:
    return random.getrandbits(64) or 1


# The intake (app/intake/webhooks.py), in the web process.

def intake(*, job_id: int, delivery_id: str, event: str, action: str | None, status: int, start: int,
           end: int) -> None:
    """The webhook route's span for a delivery that queued a job: a child of the job's root."""
    pipeline = _get()
    if pipeline is None:
        return
    try:
        trace_id, root = job_ids(job_id, delivery_id)
        if not pipeline.sampled(trace_id, "job"):
            return
        attributes = {"honk.delivery.id": delivery_id, "honk.job.id": job_id, "github.event": event,
                      "http.request.method": "POST", "http.route": "/api/github/webhooks",
                      "http.response.status_code": status}
        if action:
            attributes["github.action"] = action
        pipeline.emit(INTAKE_SPAN, trace_id, _span_id(), root, start, end, attributes, kind=pipeline.SERVER,
                      remote_parent=True)
    except Exception as exc:  # tracing never fails a delivery
        log.debug("tracing: no intake span for job %s: %s", job_id, exc)


# A job's attempt (app/queue/worker.py starts it; app/queue/context.py's JobAudit feeds it every event).

def job_started(*, job_id: int, kind: str, subject: str, repo: str, delivery_id: str | None, attempt: int,
                created_at: datetime, ready_at: datetime, claimed_at: datetime, worker: str,
                provider: str = "anthropic", judge_provider: str | None = None) -> JobTrace | None:
    """The trace of one attempt of a job, or None when tracing is off (or the sampler leaves this job out)."""
    pipeline = _get() if ENABLED else None
    if pipeline is None:
        return None
    try:
        if not pipeline.sampled(job_ids(job_id, delivery_id)[0], "job"):
            return None
        return JobTrace(pipeline, job_id=job_id, kind=kind, subject=subject, repo=repo, delivery_id=delivery_id,
                        attempt=attempt, created_at=created_at, ready_at=ready_at, claimed_at=claimed_at,
                        worker=worker, provider=provider, judge_provider=judge_provider)
    except Exception as exc:
        log.debug("tracing: no trace for job %s: %s", job_id, exc)
        return None


class _Open:
    """A span that contains others (the attempt, an agent drive): its id is known when it starts, and it is
    emitted when it ends."""

    __slots__ = ("attributes", "events", "id", "start")

    def __init__(self, start: int, attributes: dict[str, Any]) -> None:
        self.id = _span_id()
        self.start = start
        self.attributes = attributes
        self.events: list[tuple[str, dict[str, Any], int]] = []


class JobTrace:
    """The spans of one attempt of one job, made from its audit events as they are recorded."""

    def __init__(self, pipeline: _Pipeline, *, job_id: int, kind: str, subject: str, repo: str,
                 delivery_id: str | None, attempt: int, created_at: datetime, ready_at: datetime,
                 claimed_at: datetime, worker: str, provider: str, judge_provider: str | None) -> None:
        self._p = pipeline
        self.trace_id, self.root_id = job_ids(job_id, delivery_id)
        self._job = {"honk.job.id": job_id, "honk.job.kind": kind, "honk.job.subject": subject, "honk.job.repo": repo}
        if delivery_id:
            self._job["honk.delivery.id"] = delivery_id
        self._kind, self._attempt, self._created = kind, attempt, _ns(created_at)
        self._system = PROVIDERS.get(provider, provider)
        self._judge_system = PROVIDERS.get(judge_provider or provider, judge_provider or provider)
        claimed = min(_ns(claimed_at), time.time_ns())
        self._child("queue wait", self.root_id, _ns(ready_at), claimed,
                    {"honk.job.id": job_id, "honk.job.kind": kind, "honk.job.attempt": attempt}, remote_parent=True)
        self._attempt_span = _Open(claimed, {**self._job, "honk.job.attempt": attempt, "honk.worker.id": worker})
        self._agent: _Open | None = None  # the open invoke_agent span
        self._model = ""
        self._request: tuple[int, int | None, str] | None = None  # model.request: when, max_tokens, model
        self._retries: list[tuple[str, dict[str, Any], int]] = []
        self._tools: dict[str, int] = {}  # tool.call id -> when
        self._judge: tuple[int, str] | None = None  # judge.request: when, model

    def _child(self, name: str, parent: int, start: int, end: int, attributes: dict[str, Any], *, kind: Any = None,
               events: list[tuple[str, dict[str, Any], int]] = (), error: str | None = None,
               remote_parent: bool = False) -> None:
        self._p.emit(name, self.trace_id, _span_id(), parent, start, end, attributes, kind=kind, events=events,
                     error=error, remote_parent=remote_parent)

    @property
    def _inner(self) -> int:
        """The span that calls and tools are made in: the agent's drive when one is open, else the attempt."""
        return (self._agent or self._attempt_span).id

    # Events

    def event(self, kind: str, data: dict[str, Any], at: int) -> None:
        """One audit event, recorded at `at` (ns since the epoch). Never raises."""
        try:
            handle = _HANDLERS.get(kind)
            if handle is not None:
                handle(self, data, at)
            elif kind not in _QUIET:
                (self._agent or self._attempt_span).events.append((kind, _scalars(data), at))
        except Exception as exc:  # an odd event must never break a job
            log.debug("tracing: job event %s not traced: %s", kind, exc)

    def _agent_started(self, data: dict[str, Any], at: int) -> None:
        self._model = str(data.get("model") or self._model)
        self._open_agent(at)

    def _open_agent(self, at: int) -> None:
        if self._agent is None:
            attributes = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "honk",
                          "gen_ai.system": self._system, "gen_ai.provider.name": self._system}
            if self._model:
                attributes["gen_ai.request.model"] = self._model
            self._agent = _Open(at, attributes)

    def _close_agent(self, at: int, attributes: dict[str, Any], error: str | None = None) -> None:
        agent, self._agent = self._agent, None
        if agent is not None:
            self._p.emit("invoke_agent honk", self.trace_id, agent.id, self._attempt_span.id, agent.start, at,
                         {**agent.attributes, **attributes}, events=agent.events, error=error)

    def _agent_stopped(self, data: dict[str, Any], at: int) -> None:
        stop = data.get("stop")
        if self._request is not None:  # the call that failed and ended the run
            self._model_span({}, at, error=str(data.get("error") or stop))
        attributes = {"honk.agent.stop": str(stop), "honk.agent.turns": int(data.get("turns") or 0),
                      "honk.agent.tool_calls": int(data.get("tool_calls") or 0),
                      "honk.cost_usd": float(data.get("cost_usd") or 0.0), **_usage(data.get("usage") or {})}
        if data.get("budget"):
            attributes["honk.agent.budget"] = str(data["budget"])
        failed = stop in ("api_error", "context_exhausted")
        self._close_agent(at, attributes, error=str(data.get("error") or stop) if failed else None)

    def _model_requested(self, data: dict[str, Any], at: int) -> None:
        self._open_agent(at)  # a resumed conversation has no agent.start of its own
        self._request = (at, data.get("max_tokens"), str(data.get("model") or self._model))
        self._retries = []

    def _model_retried(self, data: dict[str, Any], at: int) -> None:
        self._retries.append(("retry", {"honk.retry.attempt": int(data.get("attempt") or 0),
                                        "honk.retry.error": str(data.get("error") or "")[:_MAX_TEXT],
                                        "honk.retry.wait_s": float(data.get("wait_s") or 0.0)}, at))

    def _model_span(self, data: dict[str, Any], at: int, error: str | None = None) -> None:
        requested, max_tokens, model = self._request or (at, None, self._model)
        self._request = None
        duration = data.get("duration_s")
        start = at - int(float(duration) * 1e9) if isinstance(duration, (int, float)) else requested
        system = PROVIDERS.get(data["provider"], data["provider"]) if data.get("provider") else self._system
        attributes: dict[str, Any] = {"gen_ai.operation.name": "chat", "gen_ai.system": system,
                                      "gen_ai.provider.name": system, "gen_ai.request.model": model,
                                      **_usage(data.get("usage") or {})}
        if max_tokens is not None:
            attributes["gen_ai.request.max_tokens"] = int(max_tokens)
        if data.get("model"):
            attributes["gen_ai.response.model"] = str(data["model"])
        if data.get("stop_reason"):
            attributes["gen_ai.response.finish_reasons"] = (str(data["stop_reason"]),)
        if data.get("turn") is not None:
            attributes["honk.turn"] = int(data["turn"])
        if data.get("cost_usd") is not None:
            attributes["honk.cost_usd"] = float(data["cost_usd"])
        if error:
            attributes["error.type"] = "api_error"
        retries, self._retries = self._retries, []
        self._child(f"chat {model}", self._inner, start, at, attributes, kind=self._p.CLIENT, events=retries,
                    error=error)

    def _model_responded(self, data: dict[str, Any], at: int) -> None:
        self._model_span(data, at)

    def _tool_called(self, data: dict[str, Any], at: int) -> None:
        self._tools[str(data.get("id"))] = at

    def _tool_returned(self, data: dict[str, Any], at: int) -> None:
        called = self._tools.pop(str(data.get("id")), at)
        duration = data.get("duration_s")
        start = at - int(float(duration) * 1e9) if isinstance(duration, (int, float)) else called
        name = str(data.get("name"))
        attributes = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name,
                      "gen_ai.tool.call.id": str(data.get("id"))}
        failed = bool(data.get("is_error"))
        if failed:
            attributes["error.type"] = "tool_error"
        self._child(f"execute_tool {name}", self._inner, max(start, called), at, attributes,
                    error="the tool reported an error" if failed else None)

    def _verified(self, data: dict[str, Any], at: int) -> None:
        verifiers = [v for v in data.get("verifiers") or [] if isinstance(v, dict)]
        attributes = {"honk.verify.status": str(data.get("status")),
                      "honk.verify.verifiers": tuple(str(v.get("name")) for v in verifiers),
                      "honk.verify.failed": tuple(str(v.get("name")) for v in verifiers if not v.get("passed"))}
        if data.get("after_catch_up"):
            attributes["honk.verify.after_catch_up"] = True
        error = "verifiers failed" if data.get("status") == "failed" else None
        self._child("verify", self._attempt_span.id, _before(at, data.get("duration_s")), at, attributes, error=error)

    def _judge_asked(self, data: dict[str, Any], at: int) -> None:
        self._judge = (at, str(data.get("model") or ""))

    def _judged(self, data: dict[str, Any], at: int) -> None:
        start, model = self._judge or (at, "")
        self._judge = None
        model = str(data.get("model") or model)
        system = PROVIDERS.get(data["provider"], data["provider"]) if data.get("provider") else self._judge_system
        attributes = {"gen_ai.operation.name": "chat", "gen_ai.system": system, "gen_ai.provider.name": system,
                      "gen_ai.request.model": model, "honk.judge.decision": str(data.get("decision")),
                      "honk.cost_usd": float(data.get("cost_usd") or 0.0), **_usage(data.get("usage") or {})}
        if data.get("diff_cut"):
            attributes["honk.judge.diff_cut"] = True
        error = str(data["error"]) if data.get("error") else None
        self._child("judge", self._attempt_span.id, start, at, attributes, kind=self._p.CLIENT, error=error)

    def _pushed(self, data: dict[str, Any], at: int) -> None:
        files = data.get("files")
        attributes = {"honk.git.branch": str(data.get("branch")), "honk.git.commit": str(data.get("commit")),
                      "honk.git.files": len(files) if isinstance(files, list) else 0}
        self._child("git push", self._attempt_span.id, _before(at, data.get("seconds")), at, attributes)

    def _workspace(self, data: dict[str, Any], at: int) -> None:
        fetch, clone = float(data.get("fetch_s") or 0.0), float(data.get("clone_s") or 0.0)
        attributes = {"honk.git.branch": str(data.get("branch")),
                      "honk.workspace.continued": bool(data.get("continued")),
                      "honk.workspace.fetch_s": fetch, "honk.workspace.clone_s": clone}
        self._child("workspace", self._attempt_span.id, _before(at, fetch + clone), at, attributes)

    # The end of the attempt

    def end(self, outcome: str, *, final: bool, error: str | None = None, status: str | None = None,
            result: Mapping[str, Any] | None = None) -> None:
        """The attempt ended with `outcome` (the worker's transition word). When `final`, the job has ended for
        good and this process emits the job's root span too. Never raises."""
        try:
            at = time.time_ns()
            if self._agent is not None:  # the job was cancelled or failed mid-run
                self._close_agent(at, {"honk.agent.stop": outcome})
            attempt = self._attempt_span
            self._p.emit("attempt", self.trace_id, attempt.id, self.root_id, attempt.start, at,
                         {**attempt.attributes, "honk.job.outcome": outcome}, kind=self._p.CONSUMER,
                         events=attempt.events, error=error, remote_parent=True)
            if final:
                attributes = {**self._job, "honk.job.status": status or outcome, "honk.job.attempts": self._attempt}
                if result and isinstance(result.get("outcome"), str):
                    attributes["honk.job.outcome"] = result["outcome"]
                failed = error or ("the job failed" if (status or outcome) == "failed" else None)
                self._p.emit(f"job {self._kind}", self.trace_id, self.root_id, None, min(self._created, at), at,
                             attributes, kind=self._p.CONSUMER, error=failed)
        except Exception as exc:
            log.debug("tracing: job %s not ended: %s", self._job.get("honk.job.id"), exc)


_HANDLERS = {
    "agent.start": JobTrace._agent_started, "agent.stop": JobTrace._agent_stopped,
    "model.request": JobTrace._model_requested, "model.retry": JobTrace._model_retried,
    "model.response": JobTrace._model_responded,
    "tool.call": JobTrace._tool_called, "tool.result": JobTrace._tool_returned,
    "verify.tests": JobTrace._verified, "judge.request": JobTrace._judge_asked, "judge.verdict": JobTrace._judged,
    "git.pushed": JobTrace._pushed, "workspace": JobTrace._workspace,
}


def _before(at: int, seconds: Any) -> int:
    """The start of something that ended at `at` and took `seconds` (reported by its event)."""
    return at - int(float(seconds) * 1e9) if isinstance(seconds, (int, float)) else at


def _usage(usage: Mapping[str, Any]) -> dict[str, int]:
    """Anthropic's usage as the GenAI conventions have it: input_tokens counts every input token, cached ones
    too, with the cache's share apart; honk.usage.input_tokens is the API's own (uncached) figure."""
    uncached = int(usage.get("input_tokens") or 0)
    read = int(usage.get("cache_read_input_tokens") or 0)
    written = int(usage.get("cache_creation_input_tokens") or 0)
    return {"gen_ai.usage.input_tokens": uncached + read + written,
            "gen_ai.usage.output_tokens": int(usage.get("output_tokens") or 0),
            "gen_ai.usage.cache_read.input_tokens": read, "gen_ai.usage.cache_creation.input_tokens": written,
            "honk.usage.input_tokens": uncached}


def _scalars(data: Mapping[str, Any]) -> dict[str, Any]:
    """An event's metadata as span event attributes: scalars only, no content, long text cut."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in _CONTENT:
            continue
        if isinstance(value, str):
            out[f"honk.{key}"] = value[:_MAX_TEXT]
        elif isinstance(value, (bool, int, float)):
            out[f"honk.{key}"] = value
    return out
