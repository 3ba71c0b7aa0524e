"""Benchmark of the verify verdict: what a failed test run costs the model's context, and Honk's time to say it.

Prints figures and ratios against baselines measured in the same run; asserts nothing.
- a generated pytest suite of 2,000 tests, 3 of them failing (through helpers, with captured output and
  warnings as real suites have), run for real once with `pytest -q`;
- its raw output, today's verification tail (app.checkout.verify keeps the last OUTPUT_TAIL characters, the
  baseline) and the verdict: size in characters (target: under 4,000), the share of the raw output kept, and
  whether every failing test's id is in it;
- the extractor's own time per call and the whole verdict's (median; target: Honk's overhead per verify call
  under 50 ms, the extraction being most of it), beside pytest's own time; and, as a worst case, 1 MB of output
  that no parser recognises (the generic scan).

Run: .venv/bin/python bench/verify.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.checkout.extract import VerifierResult, extract, verdict
from app.checkout.verify import OUTPUT_TAIL

FILES, TESTS_PER_FILE = 20, 100  # 2,000 tests
FAILING = {(3, 17): "test_total_includes_tax", (11, 64): "test_parses_dates", (17, 99): "test_widget_round_trip"}
RUNS = 200
COMMAND = "pytest -q"

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


def line(label: str, value: str, note: str = "") -> None:
    print(f"  {label:<46} {value:>14}  {note}")


def share(part: int, whole: int) -> str:
    return f"{part / whole:.1%} of the raw output"


def main() -> None:
    print(f"honk verify benchmark · python {sys.version.split()[0]} · {FILES * TESTS_PER_FILE} tests, "
          f"{len(FAILING)} failing")
    with tempfile.TemporaryDirectory(prefix="honk-bench-") as tmp:
        root = Path(tmp)
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

    print(f"Honk's time per verify call (median of {RUNS})")
    line("pytest itself, one run (baseline)", f"{run_s * 1e3:.0f} ms")
    line("extract()", f"{extract_s * 1e3:.2f} ms", f"{extract_s / run_s:.2%} of pytest's time")
    goal = "under the 50 ms target" if verdict_s < 0.050 else "OVER the 50 ms target"
    line("verdict() (extract, fit, render)", f"{verdict_s * 1e3:.2f} ms", goal)

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
