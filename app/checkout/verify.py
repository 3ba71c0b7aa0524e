"""Verification: Honk itself runs the repository's setup and its verifiers in the sandbox.

A verifier is a named command (`lint: ruff check .`, `test: python -m pytest -q`), declared in the
repository's `.github/honk.yml` or detected from its build files (app/jobs/verifiers.py). The model can run
them through its `verify` tool while it works, and Honk runs them all again after it stops: the model's own
claim that tests pass is not evidence; this is. A `Verification` is one such run of every verifier, passed,
failed or not run (with the reason), and it goes into the pull request, the check run and the status comment.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from app.checkout.extract import VerifierResult, verdict
from app.checkout.sandbox import CommandResult, Sandbox

OUTPUT_TAIL = 6_000  # characters of setup output kept for the status comment
VERDICT_CHARS = 4_000  # what the model (and the pull request) sees of failing verifiers
RAW_OUTPUT_CHARS = 200_000  # per verifier, the output kept for the extractors (they cut from the middle)
_NO_MODULE = re.compile(r"No module named '?([\w.]+)'?")


@dataclass(frozen=True)
class Verifier:
    name: str  # "lint", "test"
    command: str  # run with bash in the repository root
    reason: str  # where it came from, for the pull request: "from `.github/honk.yml`", "found ruff.toml"
    declared: bool = False  # named in `.github/honk.yml`: its tool missing is a failure, not a skip

    def missing_tool(self, result: VerifierResult) -> bool:
        """A detected verifier whose tool is not installed in the sandbox is skipped, not failed: Honk never
        installs linters of its own choosing, and a repository that did not install one did not ask for it."""
        if self.declared or result.passed or result.timed_out:
            return False
        if result.exit_code == 127:
            return True
        found = _NO_MODULE.search(result.output[-2000:])
        return bool(found and re.search(rf"-m\s+{re.escape(found.group(1).split('.')[0])}\b", self.command))


@dataclass(frozen=True)
class Verification:
    """One run of the repository's verifiers; `reason` says why none ran when none did."""

    results: tuple[VerifierResult, ...] = ()
    skipped: tuple[str, ...] = ()  # detected verifiers whose tool is not installed
    reason: str = ""

    @property
    def status(self) -> Literal["passed", "failed", "not_run"]:
        if not self.results:
            return "not_run"
        return "failed" if self.failing else "passed"

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    @property
    def failing(self) -> list[VerifierResult]:
        return [r for r in self.results if not r.passed]

    @property
    def duration_s(self) -> float:
        return sum(r.duration_s for r in self.results)

    def verdict(self, limit: int = VERDICT_CHARS) -> str:
        """What the model sees: one line when all passed, else each failure located, within `limit`."""
        return verdict(list(self.results), limit) if self.results else f"No verifiers ran: {self.reason}"

    def to_dict(self) -> dict[str, object]:
        return {"status": self.status, "command": "; ".join(r.command for r in self.results) or None,
                "reason": self.reason, "skipped": list(self.skipped), "duration_s": round(self.duration_s, 2),
                "verifiers": [{"name": r.name, "command": r.command, "exit_code": r.exit_code,
                               "passed": r.passed, "timed_out": r.timed_out, "duration_s": round(r.duration_s, 2),
                               "output": r.output[-OUTPUT_TAIL:]} for r in self.results],
                # For the job page: what failed, located; when all passed, what they printed last.
                "output": self.verdict() if self.failed else "\n".join(r.output[-OUTPUT_TAIL:] for r in self.results)}


async def run_setup(sandbox: Sandbox, commands: list[str], timeout: float) -> SetupFailure | None:
    """Run the setup commands in order; the first failure is returned (None when all pass)."""
    for command in commands:
        result = await sandbox.run(command, timeout=timeout)
        if result.exit_code != 0:
            return SetupFailure(command, result.exit_code, _tail(result))
    return None


@dataclass(frozen=True)
class SetupFailure:
    command: str
    exit_code: int | None
    output: str


async def run_verifiers(sandbox: Sandbox, verifiers: Iterable[Verifier], timeout: float, *,
                        reason: str = "") -> Verification:
    """Run each verifier in a fresh sandbox, one after another (they may share build caches), all of them
    even when one fails: the model fixes everything in one round."""
    results, skipped = [], []
    for verifier in verifiers:
        result = _result(verifier, await sandbox.run(verifier.command, timeout=timeout), str(sandbox.root))
        if verifier.missing_tool(result):
            skipped.append(verifier.name)
        else:
            results.append(result)
    if not results and skipped:
        reason = f"the tools of {', '.join(skipped)} are not installed in the sandbox"
    return Verification(tuple(results), tuple(skipped), reason)


def _result(verifier: Verifier, run: CommandResult, root: str) -> VerifierResult:
    output = run.output if len(run.output) <= RAW_OUTPUT_CHARS else (
        run.output[:RAW_OUTPUT_CHARS // 2] + "\n[…]\n" + run.output[-RAW_OUTPUT_CHARS // 2:])
    return VerifierResult(verifier.name, verifier.command, run.exit_code, output, run.duration, run.timed_out, root)


def _tail(result: CommandResult) -> str:
    output = result.output[-OUTPUT_TAIL:]
    if result.timed_out:
        output += f"\n[killed after {result.duration:.0f}s: the command timed out]"
    return output
