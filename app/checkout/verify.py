"""Verification: Honk itself runs the repository's setup and tests in the sandbox, after the agent stops.

The model's own claim that tests pass is not evidence; this is. The outcome is one of passed, failed or
not run (with the reason), and it goes into the pull request and the status comment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from app.checkout.sandbox import CommandResult, Sandbox

OUTPUT_TAIL = 6_000  # characters of output kept for the PR and for the agent's next round


@dataclass(frozen=True)
class Verification:
    status: Literal["passed", "failed", "not_run"]
    command: str | None
    reason: str  # how the command was chosen, or why nothing ran
    output: str = ""
    exit_code: int | None = None
    duration_s: float = 0.0

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    def to_dict(self) -> dict[str, object]:
        return {"status": self.status, "command": self.command, "reason": self.reason, "exit_code": self.exit_code,
                "duration_s": round(self.duration_s, 2), "output": self.output}


async def run_setup(sandbox: Sandbox, commands: list[str], timeout: float) -> Verification | None:
    """Run the setup commands in order; the first failure is returned (None when all pass)."""
    for command in commands:
        result = await sandbox.run(command, timeout=timeout)
        if result.exit_code != 0:
            return _outcome("failed", command, f"setup command `{command}` failed", result)
    return None


async def run_tests(sandbox: Sandbox, command: str | None, reason: str, timeout: float) -> Verification:
    if command is None:
        return Verification("not_run", None, reason)
    result = await sandbox.run(command, timeout=timeout)
    return _outcome("passed" if result.exit_code == 0 else "failed", command, reason, result)


def _outcome(status: Literal["passed", "failed"], command: str, reason: str,
             result: CommandResult) -> Verification:
    output = result.output[-OUTPUT_TAIL:]
    if result.timed_out:
        output += f"\n[killed after {result.duration:.0f}s: the command timed out]"
    return Verification(status, command, reason, output, result.exit_code, result.duration)
