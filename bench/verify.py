"""Benchmark of the verify verdict: what a failed test run costs the model's context, and Honk's time to say it.

Prints figures and ratios against baselines measured in the same run; asserts nothing.
- a generated pytest suite of 2,000 tests, 3 of them failing (through helpers, with captured output and
  warnings as real suites have), run for real once with `pytest -q`;
- its raw output, today's verification tail (app.checkout.verify keeps the last OUTPUT_TAIL characters, the
  baseline) and the verdict: size in characters (target: under 4,000), the share of the raw output kept, and
  whether every failing test's id is in it;
- the extractor's own time per call and the whole verdict's (median), beside pytest's own time;
- the real `verify` tool call as the model makes it, `Toolbox.run("verify", {})` (Sandbox.run starts the
  verifier in bubblewrap, then run_verifiers and the verdict), CALLS calls interleaved with the same command run
  without Honk: bash alone (the baseline) and bwrap with the argv Sandbox builds. Honk's overhead per verify
  call (target: under 50 ms) is the median of (tool call − bash) over the pairs, with its noise (σ/√n), split
  into bwrap's start (bwrap − bash), extraction and verdict, and the rest (building the argv, the event loop's
  process and pipe handling, the PID-namespace checks). It is measured four ways:
  - the real pytest in bubblewrap. The sandbox mounts /usr but not this venv (under /work or /root), so the
    verifier runs a sandbox-visible Python (/usr/bin/python3) with its own pytest or, when it has none, with
    this venv's pytest and its pure-Python dependencies copied into the project's `.bench-site` (a dot
    directory, which pytest does not collect) on PYTHONPATH: the same pytest, another interpreter;
  - a replay in bubblewrap: the verifier `cat`s the output pytest printed and exits 1, so the command's own
    time is near zero and what is left is Honk's overhead, free of pytest's run-to-run noise;
  - HONK_SANDBOX=none running this venv's real pytest, and the replay there too.
  Without bwrap (or a working user namespace) a note says so and only the HONK_SANDBOX=none ways run; without a
  sandbox-visible Python that can run pytest, only the replay runs in bubblewrap;
  and the tool's result: size (target: under 4,000), the share of the raw output kept, every failing id in it.
- as a worst case, 1 MB of output that no parser recognises (the generic scan).

Run: .venv/bin/python bench/verify.py
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from packaging.requirements import Requirement

from app.agent.editor import Editor
from app.agent.tools import Toolbox
from app.checkout.extract import VerifierResult, extract, verdict
from app.checkout.sandbox import Sandbox, SandboxError
from app.checkout.verify import OUTPUT_TAIL, VERDICT_CHARS, Verifier, run_verifiers

FILES, TESTS_PER_FILE = 20, 100  # 2,000 tests
FAILING = {(3, 17): "test_total_includes_tax", (11, 64): "test_parses_dates", (17, 99): "test_widget_round_trip"}
RUNS = 200
CALLS = 20  # verify tool calls per way of running it
COMMAND = "pytest -q"
PYTEST_ARGS = "-m pytest -q -p no:cacheprovider"
SANDBOX_PYTHONS = ("/usr/bin/python3", "/usr/local/bin/python3")  # under the system paths the sandbox mounts
SITE = ".bench-site"  # pytest copied into the project for a sandbox Python without it
REPLAY = ".bench-replay.txt"

HELPERS = '''
import json
import logging
import warnings

log = logging.getLogger("shop")


def total(prices, tax):
    log.info("computing total of %d prices", len(prices))
    return round(sum(prices) * (1 + tax), 2)


def parse_date(text):
    year, month, day = text.split("-")
    return int(year), int(month), int(day)


def round_trip(widget):
    warnings.warn("round_trip() is deprecated", DeprecationWarning, stacklevel=2)
    data = json.loads(json.dumps(widget))
    data["tags"] = sorted(data["tags"])
    return data
'''

BROKEN = {
    "test_total_includes_tax": '''
def test_total_includes_tax():
    print("cart: 3 items, region EU")
    assert total([10.0, 20.0, 5.5], 0.2) == 42.66
''',
    "test_parses_dates": '''
def test_parses_dates():
    assert parse_date("2024/05/06") == (2024, 5, 6)
''',
    "test_widget_round_trip": '''
def test_widget_round_trip():
    widget = {"id": 7, "name": "sprocket", "tags": ["b", "a"], "sizes": [1, 2, 3], "price": 9.5}
    assert round_trip(widget) == widget
''',
}


def make_suite(root: Path) -> list[str]:
    """The suite on disk; the ids of its failing tests."""
    (root / "tests").mkdir(parents=True)
    (root / "pytest.ini").write_text("[pytest]\nlog_level = INFO\n")
    (root / "shop.py").write_text(HELPERS)
    ids = []
    for f in range(FILES):
        parts = ["from shop import parse_date, round_trip, total\n"]
        for t in range(TESTS_PER_FILE):
            name = FAILING.get((f, t))
            if name:
                parts.append(BROKEN[name])
                ids.append(f"tests/test_shop_{f:02}.py::{name}")
            else:
                parts.append(f"\ndef test_case_{t:03}():\n    assert total([{t}.0], 0.0) == {t}.0\n")
        (root / "tests" / f"test_shop_{f:02}.py").write_text("".join(parts))
    return ids


def per_call(fn: Callable[[], object], n: int) -> float:
    """Median seconds per call over n calls, after a warm-up call."""
    fn()
    times = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def vendor_pytest(site: Path) -> None:
    """This venv's pytest and what it requires (pure Python), copied into `site`; no third-party plugins."""
    seen, todo = set(), ["pytest"]
    while todo:
        dist = importlib.metadata.distribution(todo.pop())
        if dist.metadata["Name"].lower() in seen:
            continue
        seen.add(dist.metadata["Name"].lower())
        for file in dist.files or []:
            source = Path(str(dist.locate_file(file)))
            if ".." not in file.parts and source.is_file():
                (site / file).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, site / file)  # keeps mtimes: the copied bytecode stays valid
        todo += [r.name for r in map(Requirement, dist.requires or [])
                 if r.marker is None or r.marker.evaluate({"extra": ""})]


def bare(argv: list[str], sandbox: Sandbox) -> str:
    """The command without Honk: one process, its output read to the end, as Sandbox.run would spawn it."""
    return subprocess.run(argv, cwd=sandbox.root, env=sandbox.env(), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                          text=True).stdout


def sandbox_pytest(sandbox: Sandbox) -> tuple[str, str] | None:
    """A pytest command that runs inside the sandbox, and how; None when no sandbox-visible Python can."""
    for python in [p for p in SANDBOX_PYTHONS if Path(p).exists()]:
        for prefix, how in (("", "its own pytest"), (f"PYTHONPATH={SITE} ", f"this venv's pytest in {SITE}")):
            if prefix and not (sandbox.root / SITE).exists():
                vendor_pytest(sandbox.root / SITE)
            probe = f"{prefix}{python} -c 'import pytest, sys; print(sys.version.split()[0], pytest.__version__)'"
            versions = bare(sandbox.argv(["/bin/bash", "-c", probe]), sandbox).split()
            if len(versions) == 2 and versions[1][:1].isdigit():
                return (f"{prefix}{python} {PYTEST_ARGS}",
                        f"{python} (Python {versions[0]}) with {how} (pytest {versions[1]})")
    return None


@dataclass
class Calls:
    """One way of running the verify tool: per-call seconds of the tool and of the bare command(s)."""

    tool: list[float] = field(default_factory=list)
    bash: list[float] = field(default_factory=list)
    bwrap: list[float] = field(default_factory=list)
    verdict_s: float = 0.0  # Verification.verdict() on the output the tool got, median
    argv_s: float = 0.0  # Sandbox.argv(), median
    content: str = ""  # the tool's result, as the model reads it
    output: str = ""  # the command's raw output, run bare


async def verify_calls(sandbox: Sandbox, command: str, n: int) -> Calls:
    """n verify tool calls, each followed (in rotating order) by the same command run bare."""
    verifier = Verifier("test", command, "bench")
    toolbox = Toolbox(Editor(sandbox.root), sandbox.shell(), 120, verifiers=[verifier])
    argv = ["/bin/bash", "--noprofile", "--norc", "-c", command]
    calls = Calls()

    async def tool() -> None:
        calls.content = (await toolbox.run("verify", {})).content

    async def plain() -> None:
        calls.output = bare(argv, sandbox)

    steps: list[tuple[list[float], Callable[[], Awaitable[None]]]] = [(calls.tool, tool), (calls.bash, plain)]
    if sandbox.mode == "bwrap":
        boxed = sandbox.argv(argv)  # built once: building it is Honk's, not the command's
        calls.argv_s = per_call(lambda: sandbox.argv(argv), RUNS)

        async def in_bwrap() -> None:
            bare(boxed, sandbox)

        steps.append((calls.bwrap, in_bwrap))
    try:
        verification = await run_verifiers(sandbox, [verifier], toolbox.verify_timeout)  # also the warm-up
        calls.verdict_s = per_call(lambda: verification.verdict(VERDICT_CHARS), RUNS)
        for _, step in steps:
            await step()
        for i in range(n):
            for times, step in steps[i % len(steps):] + steps[:i % len(steps)]:
                started = time.perf_counter()
                await step()
                times.append(time.perf_counter() - started)
    finally:
        await toolbox.shell.close()
    return calls


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if abs(seconds) >= 0.001 else f"{seconds * 1e3:.2f} ms"


def p90(times: list[float]) -> float:
    return statistics.quantiles(times, n=10)[-1]


def paired(a: list[float], b: list[float]) -> float:
    """Median of the per-pair differences: steadier than a difference of medians when the command drifts."""
    return statistics.median(x - y for x, y in zip(a, b, strict=True))


def report(title: str, calls: Calls, ids: list[str], raw: str) -> None:
    print(f"{title} ({len(calls.tool)} calls, interleaved; medians)")
    command = statistics.median(calls.bash)
    line("the command alone, bash (baseline)", ms(command), f"σ {ms(statistics.stdev(calls.bash))}")
    if calls.bwrap:
        line("the command in bwrap, argv as Sandbox builds it", ms(statistics.median(calls.bwrap)),
             f"{statistics.median(calls.bwrap) / command:.2f}x baseline")
    tool = statistics.median(calls.tool)
    line('Toolbox.run("verify", {})', ms(tool), f"p90 {ms(p90(calls.tool))}; {tool / command:.2f}x baseline")
    overhead = paired(calls.tool, calls.bash)
    error = statistics.stdev(x - y for x, y in zip(calls.tool, calls.bash, strict=True)) / len(calls.tool) ** 0.5
    goal = ("under the 50 ms target" if overhead + 2 * error < 0.050 else
            "OVER the 50 ms target" if overhead - 2 * error > 0.050 else "the 50 ms target is within the noise")
    line("Honk's overhead per verify call", ms(overhead),
         f"± {ms(error)} (σ/√n of the pairs); {goal}; {overhead / command:.1%} of the command's time")
    start = paired(calls.bwrap, calls.bash) if calls.bwrap else 0.0
    if calls.bwrap:
        line("  sandbox start (bwrap − bash)", ms(start))
    line("  extraction + verdict", ms(calls.verdict_s))
    line("  the rest: argv, process and pipes, namespaces", ms(overhead - start - calls.verdict_s),
         f"of which building bwrap's argv {ms(calls.argv_s)}" if calls.bwrap else "")
    present = all(i in calls.content for i in ids)
    goal = "under the 4,000 target" if len(calls.content) < 4000 else "OVER the 4,000 target"
    line("the tool's result", f"{len(calls.content):,} chars",
         f"{share(len(calls.content), len(raw))}; {goal}; every failing id: {'yes' if present else 'NO'}")


async def tool_calls(root: Path, ids: list[str], output: str) -> None:
    """The verify tool as the model calls it: in bubblewrap (real pytest, then a replay), and unsandboxed."""
    (root / REPLAY).write_text(output)
    replay = f"cat {REPLAY}; exit 1"
    boxed: Sandbox | None = Sandbox(root, mode="bwrap")
    try:
        await boxed.check()
    except SandboxError as exc:
        print(f"note: {exc}; only HONK_SANDBOX=none is measured")
        boxed = None
    if boxed is not None:
        found = sandbox_pytest(boxed)
        if found is None:
            print(f"note: no Python visible in the sandbox ({', '.join(SANDBOX_PYTHONS)}) runs pytest, even with "
                  "this venv's copied in: in bubblewrap only the replay is measured")
        else:
            command, how = found
            print(f"in bubblewrap, pytest runs with {how}")
            calls = await verify_calls(boxed, command, CALLS)
            report(f"verify tool call, real pytest in bubblewrap: `{command}`", calls, ids, calls.output)
        calls = await verify_calls(boxed, replay, CALLS)
        report(f"verify tool call, replay in bubblewrap: `{replay}`", calls, ids, output)
    unboxed = Sandbox(root, mode="none")
    calls = await verify_calls(unboxed, f"{sys.executable} {PYTEST_ARGS}", CALLS)
    report("verify tool call, HONK_SANDBOX=none: this venv's real pytest", calls, ids, calls.output)
    calls = await verify_calls(unboxed, replay, CALLS)
    report(f"verify tool call, replay, HONK_SANDBOX=none: `{replay}`", calls, ids, output)


def line(label: str, value: str, note: str = "") -> None:
    print(f"  {label:<46} {value:>14}  {note}")


def share(part: int, whole: int) -> str:
    return f"{part / whole:.1%} of the raw output"


def suite(root: Path) -> str:
    """The suite's figures and the verify tool calls; the verdict's text."""
    ids = make_suite(root)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=root,
                          capture_output=True, text=True)
    run_s = time.perf_counter() - started
    output, code = proc.stdout + proc.stderr, proc.returncode
    result = VerifierResult("test", COMMAND, code, output, run_s, root=str(root))
    text = verdict([result])
    extract_s = per_call(lambda: extract(output, COMMAND, code, root=str(root)), RUNS)
    verdict_s = per_call(lambda: verdict([result]), RUNS)

    print("what the model reads")
    tail = output[-OUTPUT_TAIL:]
    line("raw output of `pytest -q`", f"{len(output):,} chars", f"exit {code}, {output.count(chr(10)):,} lines")
    line(f"today's tail, last {OUTPUT_TAIL:,} (baseline)", f"{len(tail):,} chars",
         f"{share(len(tail), len(output))}; all failing ids: {all(i in tail for i in ids)}")
    goal = "under the 4,000 target" if len(text) < 4000 else "OVER the 4,000 target"
    line("verdict", f"{len(text):,} chars", f"{share(len(text), len(output))}; {goal}")
    line("  against the baseline", f"{len(text) / len(tail):.2f}x", "its size")
    present = all(i in text for i in ids)
    line("every failing test id in the verdict", "yes" if present else "NO", ", ".join(i.split("::")[1] for i in ids))

    print(f"Honk's extraction time per verify call (median of {RUNS})")
    line("pytest itself, one run (baseline)", f"{run_s * 1e3:.0f} ms")
    line("extract()", f"{extract_s * 1e3:.2f} ms", f"{extract_s / run_s:.2%} of pytest's time")
    goal = "under the 50 ms target" if verdict_s < 0.050 else "OVER the 50 ms target"
    line("verdict() (extract, fit, render)", f"{verdict_s * 1e3:.2f} ms", goal)

    asyncio.run(tool_calls(root, ids, output))
    return text


def main() -> None:
    print(f"honk verify benchmark · python {sys.version.split()[0]} · {FILES * TESTS_PER_FILE} tests, "
          f"{len(FAILING)} failing")
    with tempfile.TemporaryDirectory(prefix="honk-bench-") as tmp:
        text = suite(Path(tmp))

    print("worst case: 1 MB that no parser recognises")
    noise = "".join(f"2024-05-06T10:{n // 60 % 60:02}:{n % 60:02} worker-{n % 8} step {n} done in {n % 97} ms\n"
                    for n in range(16_000))
    noise += "".join(f"2024-05-06T11:00:00 worker-1 error: job {n} failed: disk full\n" for n in range(20))
    noise = (noise * (1_000_000 // len(noise) + 1))[:1_000_000]
    scan_s = per_call(lambda: extract(noise, "./run-checks.sh", 1), 20)
    found = extract(noise, "./run-checks.sh", 1)
    size = len(verdict([VerifierResult("checks", "./run-checks.sh", 1, noise)]))
    goal = "under the 50 ms target" if scan_s < 0.050 else "OVER the 50 ms target"
    line("extract() on 1 MB, generic scan", f"{scan_s * 1e3:.1f} ms",
         f"{goal}; {found.parser}, {len(found.failures)} windows, {size:,} chars of verdict")
    print()
    print(text)


if __name__ == "__main__":
    main()
