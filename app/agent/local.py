"""`honk run --repo PATH "TASK"`: the agent on a local checkout, no GitHub, with live progress.

How a new user tries Honk in a minute, and how we debug it: every turn, tool call, token and cent
shows as it happens, and the run ends with the model's summary and `git diff --stat`.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anthropic
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.status import Status

from app.agent.loop import Agent, AgentResult
from app.agent.prompts import Task
from app.agent.tools import BASH, VERIFY
from app.audit import MemoryAudit
from app.checkout.sandbox import SandboxError
from app.checkout.verify import Verifier
from app.settings import Settings


async def run_local(settings: Settings, repo: Path, task: str, *, console: Console | None = None,
                    client: anthropic.AsyncAnthropic | None = None, verifiers: Sequence[Verifier] = (),
                    no_verifiers: str = "") -> int:
    """Run the agent on `repo` (its `verify` tool runs `verifiers`); the exit code is 0 when it completed, 1 when
    it stopped otherwise, 2 when it could not start."""
    console = console or Console()
    repo = Path(repo).expanduser().resolve()
    if not repo.is_dir():
        console.print(f"[red]honk run: {escape(str(repo))} is not a directory[/]")
        return 2
    if not task.strip():
        console.print("[red]honk run: the task is empty[/]")
        return 2
    for noisy in ("httpx", "httpx2"):  # one line per API request would drown the progress display
        logging.getLogger(noisy).setLevel(logging.WARNING)
    view = _Progress(console)
    try:
        agent = Agent(settings, repo, MemoryAudit(on_event=view.on_event), client=client, verifiers=verifiers,
                      no_verifiers=no_verifiers)
    except anthropic.AnthropicError as exc:  # e.g. an SDK profile that cannot be read, a provider's region missing
        console.print(f"[red]honk run: cannot set up the Anthropic client: {escape(str(exc))}[/]")
        return 2
    console.print(f"[bold]honk run[/] {escape(str(repo))} · model {escape(agent.route.describe())} · "
                  f"sandbox {agent.sandbox.mode} · verifiers {', '.join(v.name for v in verifiers) or 'none'}")
    if agent.sandbox.mode == "none":
        console.print("[bold red]HONK_SANDBOX=none: commands run WITHOUT a sandbox, with your files and "
                      "network[/]")
    try:
        with view.status:
            result = await agent.run(Task(instruction=task, repository=repo.name))
    except SandboxError as exc:
        console.print(f"[red]honk run: {escape(str(exc))}[/]")
        return 2
    finally:
        await agent.close()
    _report(console, result, repo)
    return 0 if result.stop == "completed" else 1


class _Progress:
    """Turns transcript events into lines above a one-line live status."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.status = Status("starting", console=console)
        self.started = time.monotonic()
        self.turns = 0
        self.tool_calls = 0
        self.usage: dict[str, int] = {}
        self.cost = 0.0

    def on_event(self, kind: str, data: dict[str, Any]) -> None:
        handler = getattr(self, "_" + kind.replace(".", "_"), None)
        if handler is not None:
            handler(data)
        self.status.update(self._line())

    def _line(self) -> str:
        tokens = sum(self.usage.values())
        read = self.usage.get("cache_read_input_tokens", 0)
        inputs = read + self.usage.get("input_tokens", 0) + self.usage.get("cache_creation_input_tokens", 0)
        cached = f" ({read / inputs:.0%} of input from cache)" if inputs else ""
        return (f"turn {self.turns} · {self.tool_calls} tool calls · {tokens:,} tokens{cached} · "
                f"${self.cost:.4f} · {time.monotonic() - self.started:.0f} s")

    def _model_response(self, data: dict[str, Any]) -> None:
        self.turns = data["turn"]
        self.usage = data["total_usage"]
        self.cost = data["total_cost_usd"]
        final = data["stop_reason"] == "end_turn"  # its text is the summary, shown at the end
        for block in data["content"]:
            if block["type"] == "text" and block["text"].strip() and not final:
                self.console.print(Panel(escape(_first_lines(block["text"], 20)), title=f"turn {self.turns}",
                                         title_align="left", border_style="cyan"))
            elif block["type"] == "thinking" and block.get("thinking", "").strip():
                self.console.print(f"[dim italic]thinking: {escape(_first_lines(block['thinking'], 3))}[/]")

    def _tool_call(self, data: dict[str, Any]) -> None:
        self.tool_calls += 1
        args = data["input"] if isinstance(data["input"], dict) else {}
        if data["name"] == BASH:
            shown = "restart the shell" if args.get("restart") else f"$ {args.get('command', '')}"
        elif data["name"] == VERIFY:
            shown = "✔ verify " + (", ".join(map(str, args["checks"])) if isinstance(args.get("checks"), list)
                                   else "(all)")
        else:
            shown = f"✎ {args.get('command', '?')} {args.get('path', '')}"
            if args.get("view_range"):
                shown += f" {args['view_range']}"
        self.console.print(f"[bold]{escape(_first_lines(shown, 3))}[/]")

    def _tool_result(self, data: dict[str, Any]) -> None:
        lines = [line for line in data["content"].splitlines() if line.strip()] or ["(no output)"]
        if len(lines) > 5:  # the head says what ran, the tail how it ended
            lines = [*lines[:2], f"… {len(lines) - 4} more lines …", *lines[-2:]]
        style = "red" if data["is_error"] else "dim"
        self.console.print(f"[{style}]  {escape(_first_lines(chr(10).join(lines), 5))}[/]")

    def _model_fallback(self, data: dict[str, Any]) -> None:
        self.console.print(f"[bold yellow]{escape(data['from']['provider'])} kept failing ({escape(data['error'])}); "
                           f"going on with {escape(data['to']['model'])} on {escape(data['to']['provider'])}[/]")

    def _model_retry(self, data: dict[str, Any]) -> None:
        self.console.print(f"[yellow]API: {escape(data['error'])}; retry {data['attempt']} in "
                           f"{data['wait_s']:.1f} s[/]")

    def _context_cleared(self, data: dict[str, Any]) -> None:
        self.console.print(f"[yellow]context: cleared {data['cleared']} old tool results ({data['reason']})[/]")

    def _model_more_room(self, data: dict[str, Any]) -> None:
        self.console.print(f"[yellow]reply cut off; retrying with max_tokens={data['max_tokens']}[/]")


def _first_lines(text: str, max_lines: int, width: int = 240) -> str:
    lines = text.strip().splitlines() or [""]
    shown = [line if len(line) <= width else line[:width] + "…" for line in lines[:max_lines]]
    if len(lines) > max_lines:
        shown.append(f"… {len(lines) - max_lines} more lines")
    return "\n".join(shown)


def _report(console: Console, result: AgentResult, repo: Path) -> None:
    outcome = {"completed": "[green]completed[/]",
               "budget": f"[yellow]stopped: {result.budget} budget reached[/]",
               "refusal": f"[red]refused (category: {result.refusal_category or 'none given'})[/]",
               "context_exhausted": "[red]stopped: the context window is full[/]",
               "api_error": f"[red]stopped: API error: {escape(result.error or '')}[/]"}[result.stop]
    console.print(Panel(escape(result.summary or "(the model gave no summary)"), title="summary",
                        title_align="left", border_style="green" if result.stop == "completed" else "yellow"))
    usage = result.usage
    console.print(f"{outcome} · {result.turns} turns · {result.tool_calls} tool calls · "
                  f"in {usage['input_tokens']:,} / cache write {usage['cache_creation_input_tokens']:,} / "
                  f"cache read {usage['cache_read_input_tokens']:,} / out {usage['output_tokens']:,} tokens · "
                  f"${result.cost_usd:.4f} · {result.duration_s:.1f} s")
    if result.fallback:
        console.print(f"[yellow]fallback: {escape(result.fallback)}[/]")
    console.print(_git_changes(repo))


def _git_changes(repo: Path) -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-c", "core.fsmonitor=false", "-C", str(repo), *args],
                              capture_output=True, text=True, timeout=30)
        return done.stdout if done.returncode == 0 else ""
    try:
        if not git("rev-parse", "--is-inside-work-tree").strip():
            return "(not a git repository: no diff to show)"
        stat = git("diff", "--stat").rstrip()
        new = git("ls-files", "--others", "--exclude-standard").split()
    except (OSError, subprocess.TimeoutExpired):
        return "(git is not available: no diff to show)"
    out = ["git diff --stat:", stat or "  (no changes to tracked files)"]
    if new:
        out.append("new files: " + ", ".join(new))
    return escape("\n".join(out))
