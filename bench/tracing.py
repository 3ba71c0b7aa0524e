"""Benchmark of tracing's cost (app/tracing.py) on a scripted 30-turn run, as a worker runs it.

The agent runs against the instant scripted model with its transcript going through `JobAudit` into a SQLite
queue, as in a worker; traced, `JobAudit` feeds the job's `JobTrace`, whose spans the OTLP/HTTP exporter sends
to a local receiver in another process (tests/fakes/otlp.py). Honk's own time is the run's wall time minus the
model's (the harness, the tools and the transcript writes): the goal is tracing under 2% of it.

Figures, each the median over interleaved runs:
- A/B: Honk's own time per run, traced and not;
- direct: the time spent in the tracing hooks (making spans) and the exporter's CPU time (encoding, sending),
  measured on separate instrumented runs, as a share of Honk's own time;
- per event: the hook's CPU time for each kind of event, and with tracing off.

Run: .venv/bin/python bench/tracing.py [runs]
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import anthropic

from app import tracing
from app.agent import Agent, Task
from app.process import HonkState
from app.queue.context import JobAudit
from app.queue.requests import JobKind, JobRequest
from app.settings import Settings
from tests.fakes.messages_api import FakeMessagesAPI, bash, edit, end, reply, thinking

TURNS = 30
GOAL = 0.02
HAS_BWRAP = shutil.which("bwrap") is not None
RECEIVER = """
import sys
from tests.fakes.otlp import OTLPReceiver
with OTLPReceiver() as receiver:
    print(receiver.url, flush=True)
    sys.stdin.readline()
    print(len(receiver.spans), len(receiver.rejected), flush=True)
"""


def script() -> list[dict[str, Any]]:
    steps = [lambda i: bash("true"), lambda i: edit("view", f"src/mod{i % 20}.py"),
             lambda i: bash(f"grep -c def src/mod{i % 20}.py"), lambda i: bash("ls src | head -5")]
    return [reply(thinking(f"step {i}"), steps[i % len(steps)](i)) for i in range(TURNS - 1)] + [end("done")]


def make_repo(root: Path) -> Path:
    repo = root / "repo"
    (repo / "src").mkdir(parents=True)
    for i in range(20):
        (repo / "src" / f"mod{i}.py").write_text("".join(f"def f{j}(x):\n    return x + {j}\n\n" for j in range(30)))
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    return repo


@contextmanager
def receiver() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen([sys.executable, "-c", RECEIVER], cwd=root, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdin is not None
    url = proc.stdout.readline().strip()
    try:
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.kill()


class Timed:
    """Wraps the tracing hooks and the exporter to add up the CPU time they take (instrumented runs only): CPU
    time of the thread that runs them, so that waiting for the GIL behind other threads does not count."""

    def __init__(self) -> None:
        self.hooks = 0.0
        self.export_cpu = 0.0
        self.spans = 0

    def wrap(self, trace: tracing.JobTrace) -> tracing.JobTrace:
        event, end = trace.event, trace.end

        def timed_event(kind: str, data: dict[str, Any], at: int) -> None:
            started = time.thread_time()
            event(kind, data, at)
            self.hooks += time.thread_time() - started

        def timed_end(*args: Any, **kwargs: Any) -> None:
            started = time.thread_time()
            end(*args, **kwargs)
            self.hooks += time.thread_time() - started

        trace.event, trace.end = timed_event, timed_end  # type: ignore[method-assign]
        return trace


def exporter(timed: Timed) -> Any:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    class CountedExporter(OTLPSpanExporter):
        def export(self, spans: Any) -> Any:
            started = time.thread_time()
            try:
                return super().export(spans)
            finally:
                timed.export_cpu += time.thread_time() - started
                timed.spans += len(spans)

    return CountedExporter()


async def one_run(state: HonkState, repo: Path, settings: Settings, *, traced: bool,
                  timed: Timed | None = None) -> dict[str, float]:
    job_id = state.queue.enqueue(JobRequest(kind=JobKind.RESOLVE_ISSUE, repo="bench/repo", number=1,
                                            requester="bench", installation_id=1))
    job = state.queue.claim("bench")
    assert job is not None and job.id == job_id
    trace = None
    started = time.perf_counter()
    if traced:
        trace = tracing.job_started(job_id=job.id, kind=job.kind, subject=job.subject, repo=job.repo,
                                    delivery_id=job.delivery_id, attempt=job.attempts, created_at=job.created_at,
                                    ready_at=job.run_after, claimed_at=job.updated_at, worker="bench")
        assert trace is not None
        if timed is not None:
            trace = timed.wrap(trace)
    audit = JobAudit(state.queue, job.id, trace)
    with FakeMessagesAPI(*script()) as fake:
        client = anthropic.AsyncAnthropic(base_url=fake.url, api_key="bench-key")
        async with Agent(settings, repo, audit, client=client) as agent:
            result = await agent.run(Task("benchmark", repository="bench/repo"))
    if trace is not None:
        trace.end("succeeded", final=True, status="succeeded")
    total = time.perf_counter() - started
    state.queue.complete(job.id, "bench", {})
    assert result.turns == TURNS, result
    events = state.queue.events(job.id)
    model = sum(e.data["duration_s"] for e in events if e.kind == "model.response")
    tools = sum(e.data["duration_s"] for e in events if e.kind == "tool.result")
    return {"total": total, "model": model, "tools": tools, "own": total - model, "events": len(events)}


def per_event(events: list[tuple[str, dict[str, Any]]], reps: int = 30) -> dict[str, float]:
    """Median CPU seconds of the tracing hook per audit event kind, replaying a run's events into fresh traces;
    "off" is what JobAudit.record does with tracing off: one check."""
    times: dict[str, list[float]] = {}
    now = datetime.now(UTC).replace(tzinfo=None)
    for _ in range(reps):
        trace = tracing.job_started(job_id=1, kind="resolve_issue", subject="s", repo="r", delivery_id=None,
                                    attempt=1, created_at=now, ready_at=now, claimed_at=now, worker="bench")
        assert trace is not None
        for kind, data in events:
            started = time.thread_time_ns()
            trace.event(kind, data, time.time_ns())
            times.setdefault(kind, []).append((time.thread_time_ns() - started) / 1e9)
        trace.end("succeeded", final=True)
    off: Any = None
    started = time.thread_time_ns()
    for _ in range(100_000):
        if off is not None:
            raise AssertionError
    times["off"] = [(time.thread_time_ns() - started) / 1e9 / 100_000]
    return {kind: statistics.median(values) for kind, values in times.items()}


def line(label: str, value: str, note: str = "") -> None:
    print(f"  {label:<52} {value:>14}  {note}")


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 9
    print(f"honk tracing benchmark · python {sys.version.split()[0]} · {runs} runs of {TURNS} turns each way")
    with tempfile.TemporaryDirectory(prefix="honk-bench-") as tmp, receiver() as (url, collector):
        root = Path(tmp)
        settings = Settings(_env_file=None, anthropic_api_key="sk-ant-bench-key-0123456789",  # type: ignore[call-arg]
                            honk_sandbox="bwrap" if HAS_BWRAP else "none", honk_data_dir=root / "data",
                            honk_database_url=f"sqlite:///{root / 'honk.db'}")
        state = HonkState.create(settings)
        state.db.migrate()
        repo = make_repo(root)
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = url
        timed = Timed()
        tracing.configure(exporter(timed))

        async def measure() -> tuple[list[dict[str, float]], list[dict[str, float]], list[float]]:
            await one_run(state, repo, settings, traced=False)  # warm-up: imports, caches, the sandbox
            await one_run(state, repo, settings, traced=True)
            off, on = [], []
            for i in range(runs):  # interleaved, each first in turn, so that drift hits both alike
                for traced in (False, True) if i % 2 == 0 else (True, False):
                    (on if traced else off).append(await one_run(state, repo, settings, traced=traced))
            await asyncio.to_thread(tracing.flush)
            # Instrumented: the spans go out in the batches the processor makes (512 spans, or every 5 s).
            timed.hooks = timed.export_cpu = 0.0
            own = [(await one_run(state, repo, settings, traced=True, timed=timed))["own"] for _ in range(runs)]
            await asyncio.to_thread(tracing.flush)
            return off, on, [timed.hooks / sum(own), timed.export_cpu / sum(own)]

        off, on, direct = asyncio.run(measure())
        tracing.flush()
        spans_sent = timed.spans
        timed.spans = 0
        replayed = per_event([(e.kind, e.data) for e in state.queue.events(1) if not e.kind.startswith("job.")])
        tracing.reset()
        state.db.dispose()
        assert collector.stdin is not None and collector.stdout is not None
        collector.stdin.write("\n")
        collector.stdin.flush()
        received, rejected = (int(x) for x in collector.stdout.readline().split())

    def median(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(row[key] for row in rows)

    own_off, own_on = median(off, "own"), median(on, "own")
    print("a 30-turn run, transcript in SQLite (as a worker), per run (median)")
    line("wall time, not traced", f"{median(off, 'total') * 1e3:.1f} ms")
    line("  model calls (SDK + loopback HTTP)", f"{median(off, 'model') * 1e3:.1f} ms")
    line("  Honk's own time (harness, tools, transcript)", f"{own_off * 1e3:.1f} ms", "baseline")
    spread = max(statistics.quantiles([r["own"] for r in rows], n=4)[2] - statistics.quantiles(
        [r["own"] for r in rows], n=4)[0] for rows in (off, on))
    paired = statistics.median(b["own"] / a["own"] - 1 for a, b in zip(off, on, strict=True))
    line("Honk's own time, traced (A/B)", f"{own_on * 1e3:.1f} ms",
         f"{(own_on - own_off) / own_off:+.1%} (median of pairs {paired:+.1%}); runs vary by "
         f"{spread / own_off:.0%} (IQR), so see the CPU time")
    share = sum(direct)
    verdict = "under the 2% goal" if share < GOAL else "OVER the 2% goal"
    line("tracing's own CPU time, over every instrumented run", f"{share:.2%}", f"of Honk's own time; {verdict}")
    line("  making spans (the hooks, in the job's thread)", f"{direct[0]:.2%}")
    line("  exporting them (encoding, HTTP: the processor's thread)", f"{direct[1]:.2%}")
    line("  spans per run", f"{spans_sent / (2 * runs + 1):.0f}", f"{median(off, 'events'):.0f} audit events")
    line("  spans received by the collector", f"{received}", f"{rejected} rejected")
    print("the tracing hook per audit event (median CPU time, replaying a run's events)")
    line("tracing off: JobAudit's one `is not None` check", f"{replayed['off'] * 1e6:.3f} µs")
    line("model.response: a chat span (16 attributes)", f"{replayed['model.response'] * 1e6:.1f} µs")
    line("tool.result: an execute_tool span", f"{replayed['tool.result'] * 1e6:.1f} µs")
    line("model.request, tool.call: remembered until the pair ends", f"{replayed['tool.call'] * 1e6:.1f} µs")


if __name__ == "__main__":
    main()
