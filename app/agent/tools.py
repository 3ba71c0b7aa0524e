"""The model's two tools (README, "The agent"): how they are declared and how a call is carried out.

By default they are declared as Anthropic's own tool types, which the model was trained on; the
`custom` style declares the same names and input shapes as ordinary JSON-schema tools for endpoints
or models that lack those types.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Literal

from app.agent.editor import Editor, EditorError
from app.checkout.sandbox import Shell

EDITOR = "str_replace_based_edit_tool"
BASH = "bash"
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


def tool_definitions(style: ToolStyle) -> list[dict[str, Any]]:
    if style == "anthropic":
        return [{"type": "text_editor_20250728", "name": EDITOR}, {"type": "bash_20250124", "name": BASH}]
    return [
        {"name": EDITOR, "input_schema": _EDITOR_SCHEMA,
         "description": "View, create and edit text files in the repository. view shows a file with line "
                        "numbers (cat -n) or lists a directory two levels deep; create writes a whole file; "
                        "str_replace replaces text that occurs exactly once; insert adds text after a line."},
        {"name": BASH, "input_schema": _BASH_SCHEMA,
         "description": "Run a command in a persistent bash shell that starts in the repository root; the "
                        "working directory and exported variables persist between calls. No network. "
                        "Output is cut in the middle when long. Use restart: true for a fresh shell."},
    ]


@dataclass(frozen=True)
class ToolResult:
    content: str
    is_error: bool = False
    duration: float = 0.0


class Toolbox:
    """Carries out tool calls against one repository and one persistent shell."""

    def __init__(self, editor: Editor, shell: Shell, command_timeout: float) -> None:
        self.editor = editor
        self.shell = shell
        self.command_timeout = command_timeout

    async def run(self, name: str, tool_input: object, *, timeout: float | None = None) -> ToolResult:
        started = time.monotonic()
        if not isinstance(tool_input, dict):
            result = ToolResult("tool input must be a JSON object", True)
        elif name == EDITOR:
            result = await self._edit(tool_input)
        elif name == BASH:
            result = await self._bash(tool_input, timeout or self.command_timeout)
        else:
            result = ToolResult(f"unknown tool {name!r}; the tools are {EDITOR} and {BASH}", True)
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


def _bound(text: str, limit: int = MAX_RESULT_CHARS) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return (text[:half] + f"\n[... {len(text) - 2 * half} characters cut here ...]\n" + text[-half:])
