"""The model's three tools (README, "The agent"): how they are declared and how a call is carried out.

By default the editor and the shell are declared as Anthropic's own tool types, which the model was trained
on; the `custom` style declares the same names and input shapes as ordinary JSON-schema tools for endpoints
or models that lack those types. `verify` is Honk's own: it runs the repository's verifiers (lint, types,
tests) in fresh sandboxes and answers with only what locates each failure (app/checkout/extract.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from app.agent.editor import Editor, EditorError
from app.checkout.sandbox import Sandbox, Shell
from app.checkout.verify import VERDICT_CHARS, Verifier, run_verifiers

EDITOR = "str_replace_based_edit_tool"
BASH = "bash"
VERIFY = "verify"
TOOL_NAMES = (EDITOR, BASH, VERIFY)
MAX_RESULT_CHARS = 40_000  # a last bound on any tool result the model sees

ToolStyle = Literal["anthropic", "custom"]

_EDITOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "command": {"type": "string", "enum": ["view", "create", "str_replace", "insert"],
                    "description": "The operation to perform."},
        "path": {"type": "string",
                 "description": "File or directory, relative to the repository root or absolute under it."},
        "view_range": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2,
                       "description": "For view on a file: [start, end] line numbers, 1-based; end -1 "
                                      "means the end of the file."},
        "old_str": {"type": "string", "description": "For str_replace: the exact text to replace; it "
                                                     "must occur exactly once."},
        "new_str": {"type": "string", "description": "For str_replace: the replacement (empty deletes). "
                                                     "For insert: accepted in place of insert_text."},
        "file_text": {"type": "string", "description": "For create: the whole content of the file."},
        "insert_line": {"type": "integer", "description": "For insert: the line after which to insert; "
                                                          "0 inserts at the start of the file."},
        "insert_text": {"type": "string", "description": "For insert: the text to insert."},
    },
    "required": ["command", "path"],
}
_BASH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "command": {"type": "string", "description": "The bash command to run."},
        "restart": {"type": "boolean", "description": "Set to true to restart the shell."},
    },
}


_VERIFY_TOOL: dict[str, Any] = {
    "name": VERIFY,
    "description": "Run the repository's verifiers (its formatter, linters, type checker and tests, as the "
                   "repository configures them) on the working tree, each in a fresh sandbox, and get their "
                   "verdict: one line when all pass; otherwise only what locates each failure (file:line and "
                   "message, failing test ids with their assertion). Give `checks` to run only some of them. "
                   "Call it before you say you are done.",
    "input_schema": {"type": "object", "properties": {
        "checks": {"type": "array", "items": {"type": "string"},
                   "description": "Names of the verifiers to run; all of them when left out."}}},
}


def tool_definitions(style: ToolStyle) -> list[dict[str, Any]]:
    if style == "anthropic":
        return [{"type": "text_editor_20250728", "name": EDITOR}, {"type": "bash_20250124", "name": BASH},
                _VERIFY_TOOL]
    return [
        {"name": EDITOR, "input_schema": _EDITOR_SCHEMA,
         "description": "View, create and edit text files in the repository. view shows a file with line "
                        "numbers (cat -n) or lists a directory two levels deep; create writes a whole file; "
                        "str_replace replaces text that occurs exactly once; insert adds text after a line."},
        {"name": BASH, "input_schema": _BASH_SCHEMA,
         "description": "Run a command in a persistent bash shell that starts in the repository root; the "
                        "working directory and exported variables persist between calls. No network. "
                        "Output is cut in the middle when long. Use restart: true for a fresh shell."},
        _VERIFY_TOOL,
    ]


@dataclass(frozen=True)
class ToolResult:
    content: str
    is_error: bool = False
    duration: float = 0.0


class Toolbox:
    """Carries out tool calls against one repository, one persistent shell and the repository's verifiers."""

    def __init__(self, editor: Editor, shell: Shell, command_timeout: float, *,
                 verifiers: Sequence[Verifier] = (), sandbox: Sandbox | None = None,
                 verify_timeout: float = 900.0, no_verifiers: str = "") -> None:
        self.editor = editor
        self.shell = shell
        self.command_timeout = command_timeout
        self.verifiers = {v.name: v for v in verifiers}
        self.sandbox = sandbox or shell.sandbox
        self.verify_timeout = verify_timeout
        self.no_verifiers = no_verifiers  # why there are none, for the model

    async def run(self, name: str, tool_input: object, *, remaining: float | None = None) -> ToolResult:
        """Carry out one call; `remaining` is what is left of the run's time, which bounds every command."""
        started = time.monotonic()
        if not isinstance(tool_input, dict):
            result = ToolResult("tool input must be a JSON object", True)
        elif name == EDITOR:
            result = await self._edit(tool_input)
        elif name == BASH:
            result = await self._bash(tool_input, _within(self.command_timeout, remaining))
        elif name == VERIFY:
            result = await self._verify(tool_input, _within(self.verify_timeout, remaining))
        else:
            result = ToolResult(f"unknown tool {name!r}; the tools are {', '.join(TOOL_NAMES)}", True)
        return ToolResult(_bound(result.content), result.is_error, time.monotonic() - started)

    async def _edit(self, args: dict[str, Any]) -> ToolResult:
        command, path = args.get("command"), args.get("path")
        if not isinstance(command, str) or not isinstance(path, str):
            return ToolResult("`command` and `path` are required strings", True)
        rest = {k: v for k, v in args.items() if k not in ("command", "path")}
        for key in ("old_str", "new_str", "file_text", "insert_text"):
            if key in rest and rest[key] is not None and not isinstance(rest[key], str):
                return ToolResult(f"`{key}` must be a string", True)
        try:
            # File work happens off the event loop so other runs in this process keep going.
            return ToolResult(await asyncio.to_thread(self.editor, command, path, **rest))
        except EditorError as exc:
            return ToolResult(str(exc), True)
        except OSError as exc:
            return ToolResult(f"{path}: {exc.strerror or exc}", True)

    async def _bash(self, args: dict[str, Any], timeout: float) -> ToolResult:
        if args.get("restart"):
            await self.shell.restart()
            return ToolResult("The shell has been restarted in the repository root.")
        command = args.get("command")
        if not isinstance(command, str) or not command.strip():
            return ToolResult("`command` is required (or restart: true)", True)
        result = await self.shell.run(command, timeout)
        output = result.output if result.output.strip() else "(no output)"
        if result.timed_out:
            return ToolResult(f"{output}\n[timed out after {timeout:g} s: the command and everything it started "
                              f"were killed; the next command runs in a fresh shell in {self.shell.cwd} "
                              "(exported variables and background processes are gone)]", True)
        if result.exit_code:
            output += f"\n[exit code {result.exit_code}]"
        return ToolResult(output)


    async def _verify(self, args: dict[str, Any], timeout: float) -> ToolResult:
        checks = args.get("checks")
        if checks is not None and (not isinstance(checks, list) or not all(isinstance(c, str) for c in checks)):
            return ToolResult("`checks` must be a list of verifier names, or left out to run them all", True)
        if not self.verifiers:
            return ToolResult(f"This repository has no verifiers ({self.no_verifiers or 'none configured'}). "
                              "Run its tests with bash instead.", True)
        unknown = [c for c in checks or [] if c not in self.verifiers]
        if unknown:
            return ToolResult(f"unknown verifier {', '.join(map(repr, unknown))}; this repository's verifiers "
                              f"are {', '.join(self.verifiers)}", True)
        chosen = [self.verifiers[c] for c in dict.fromkeys(checks)] if checks else list(self.verifiers.values())
        verification = await run_verifiers(self.sandbox, chosen, timeout)
        skipped = (f"\n(not installed in the sandbox, so skipped: {', '.join(verification.skipped)})"
                   if verification.skipped else "")
        return ToolResult(verification.verdict(VERDICT_CHARS - len(skipped)) + skipped)


def _within(timeout: float, remaining: float | None) -> float:
    return timeout if remaining is None else min(timeout, max(remaining, 1.0))


def _bound(text: str, limit: int = MAX_RESULT_CHARS) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return (text[:half] + f"\n[... {len(text) - 2 * half} characters cut here ...]\n" + text[-half:])
