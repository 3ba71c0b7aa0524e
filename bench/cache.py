"""Benchmark of the prompt cache: the share of input tokens read from it, on scripted runs.

The scripted Messages API (tests/fakes/messages_api.py) simulates Anthropic's prompt caching over the prefix
tools -> system -> messages at the breakpoints each request marks. Honk's strategy (app/agent/context.py
`with_breakpoints`) marks the tools, the system prompt and the newest two user turns: the previous request's
newest breakpoint is this request's second newest, so each call reads the whole conversation so far and writes
only the newest turn. Beside it, for comparison, breakpoints on the fixed prefix alone (no conversation cached).
The simulation reads the cache only at the request's breakpoints; the API also looks back up to 20 blocks from
each, so against it one breakpoint on the newest turn would do about as well: the second makes the hit explicit.
The share is cache_read / (input + cache_creation + cache_read), as the job page shows it; target: at least 85%
on a 30-turn run.

Scenarios:
- short: 5 turns (what most runs of the end-to-end tests look like);
- 30 turns, small results: the run of bench/agent.py;
- 30 turns, a job's shape: reading 6 KB files, parallel tool calls, a reply cut off at max_tokens, and the
  verifiers failing once (a resume after 20 turns).

Run: .venv/bin/python bench/cache.py
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import anthropic

from app.agent import Agent, Task
from app.agent import loop as agent_loop
from app.agent.context import with_breakpoints
from app.audit import MemoryAudit
from app.settings import Settings
from tests.fakes.messages_api import FakeMessagesAPI, bash, cut_off, edit, end, reply, text, thinking

TARGET = 0.85
HAS_BWRAP = shutil.which("bwrap") is not None
Breakpoints = Callable[[str, list[dict[str, Any]], list[dict[str, Any]]], dict[str, Any]]


def prefix_only(system: str, tools: list[dict[str, Any]], messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Breakpoints on the tools and the system prompt only: each job's fixed prefix, no conversation."""
    marked = with_breakpoints(system, tools, [])
    return {**marked, "messages": list(messages)}


STRATEGIES: list[tuple[str, Breakpoints]] = [("tools+system only", prefix_only),
                                             ("Honk's: +newest two turns", with_breakpoints)]


@contextmanager
def strategy(breakpoints: Breakpoints) -> Iterator[None]:
    saved = agent_loop.with_breakpoints
    agent_loop.with_breakpoints = breakpoints
    try:
        yield
    finally:
        agent_loop.with_breakpoints = saved


def make_repo(root: Path) -> Path:
    repo = root / "repo"
    (repo / "src").mkdir(parents=True)
    for i in range(20):
        (repo / "src" / f"mod{i}.py").write_text(
            "".join(f"def f{j}(x):\n    \"\"\"Add {j}.\"\"\"\n    return x + {j}\n\n" for j in range(120)))
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit",
                    "-q", "-m", "start"], check=True)
    return repo


def small_run(turns: int) -> list[dict[str, Any]]:
    steps = [lambda i: bash("true"), lambda i: edit("view", f"src/mod{i % 20}.py", view_range=[1, 40]),
             lambda i: bash(f"grep -c def src/mod{i % 20}.py"), lambda i: bash("ls src | head -5")]
    return [reply(thinking(f"step {i}"), steps[i % len(steps)](i)) for i in range(turns - 1)] + [end("done")]


def job_shaped() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A run of 20 turns, then (after the verifiers failed) a resume of 10: 30 turns in all."""
    first: list[dict[str, Any]] = [reply(thinking("Look around first."), bash("ls -R src | head -40"))]
    for i in range(1, 19):
        if i % 5 == 0:
            first.append(reply(thinking(f"two at once {i}"), edit("view", f"src/mod{i}.py"),
                               bash(f"grep -n 'def f1' src/mod{i + 1}.py")))
        elif i == 9:
            first.append(cut_off(text("A long explanation " * 40)))  # max_tokens: Honk asks it to continue
        elif i % 3 == 0:
            first.append(reply(thinking(f"step {i}"), edit("str_replace", f"src/mod{i}.py", old_str=f"return x + {i}\n",
                                                             new_str=f"return x + {i}  # checked\n")))
        else:
            first.append(reply(thinking(f"step {i}"), edit("view", f"src/mod{i}.py")))
    first.append(end("Done: the functions are checked."))
    resumed = [reply(thinking(f"fix {i}"), bash(f"python -c 'print({i})'")) for i in range(9)] + [end("Fixed.")]
    return first, resumed


async def run(settings: Settings, repo: Path, first: list[dict[str, Any]],
              resumed: list[dict[str, Any]] | None = None) -> dict[str, int]:
    with FakeMessagesAPI(*first) as fake:
        client = anthropic.AsyncAnthropic(base_url=fake.url, api_key="bench-key")
        async with Agent(settings, repo, MemoryAudit(), client=client) as agent:
            result = await agent.run(Task("benchmark", repository="bench/repo"))
            if resumed:
                fake.script(*resumed)
                result = await agent.resume("The verifiers failed: fix it.")
        assert not fake.rejected, fake.rejected[0]["error"]
    usage = dict(result.usage)
    usage["turns"] = result.turns
    return usage


def share(usage: dict[str, int]) -> float:
    inputs = usage["input_tokens"] + usage["cache_creation_input_tokens"] + usage["cache_read_input_tokens"]
    return usage["cache_read_input_tokens"] / inputs if inputs else 0.0


async def main() -> None:
    settings = Settings(_env_file=None, anthropic_api_key="sk-ant-bench-key-0123456789",  # type: ignore[call-arg]
                        honk_sandbox="bwrap" if HAS_BWRAP else "none")
    print(f"honk prompt-cache benchmark · python {sys.version.split()[0]} · sandbox {settings.honk_sandbox}")
    print("  share of input tokens read from the cache, by breakpoint strategy "
          "(uncached / cache write / cache read tokens for Honk's)")
    print(f"  {'scenario':<34} {'turns':>5}  " + "  ".join(f"{name:>20}" for name, _ in STRATEGIES))
    with tempfile.TemporaryDirectory(prefix="honk-bench-") as tmp:
        repo = make_repo(Path(tmp))
        scenarios = [("short run", (small_run(5),)), ("30 turns, small results", (small_run(30),)),
                     ("30 turns, a job's shape (resumed)", job_shaped())]
        for label, script in scenarios:
            shares = []
            for _, breakpoints in STRATEGIES:
                with strategy(breakpoints):
                    usage = await run(settings, repo, *script)
                subprocess.run(["git", "-C", str(repo), "checkout", "-q", "--", "."], check=True)
                shares.append(share(usage))
            verdict = "" if usage["turns"] < 30 else (
                "meets the 85% target" if shares[-1] >= TARGET else "BELOW the 85% target")
            figures = f"({usage['input_tokens']}/{usage['cache_creation_input_tokens']}/" \
                      f"{usage['cache_read_input_tokens']})"
            print(f"  {label:<34} {usage['turns']:>5}  " + "  ".join(f"{x:>20.1%}" for x in shares)
                  + f"  {figures} {verdict}")


if __name__ == "__main__":
    asyncio.run(main())
