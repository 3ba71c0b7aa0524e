"""Benchmark of the agent harness's own costs, against an instant scripted model.

Prints figures and ratios against baselines measured in the same run; asserts nothing.
- sandbox command start-up: `true` in bubblewrap vs unsandboxed, one-shot and in the persistent shell
  (target: sandboxed `true` under 20 ms per call);
- tool dispatch through the toolbox, and transcript writes (redaction included);
- a 30-turn run: harness time per turn beside model and tool time, and the share of input tokens
  read from the prompt cache (target: at least 80%).

Run: .venv/bin/python bench/agent.py
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import anthropic

from app.agent import Agent, Task
from app.agent.editor import Editor
from app.agent.tools import Toolbox
from app.audit import MemoryAudit
from app.checkout.sandbox import Sandbox
from app.redact import Redactor
from app.settings import Settings
from tests.fakes.messages_api import FakeMessagesAPI, bash, edit, end, reply, thinking

TURNS = 30
HAS_BWRAP = shutil.which("bwrap") is not None


async def per_call(fn: Callable[[], Awaitable[Any]], n: int) -> float:
    """Median seconds per call over n calls, after a warm-up call."""
    await fn()
    times = []
    for _ in range(n):
        started = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def make_repo(root: Path) -> Path:
    repo = root / "repo"
    (repo / "src").mkdir(parents=True)
    for i in range(20):
        (repo / "src" / f"mod{i}.py").write_text("".join(f"def f{j}(x):\n    return x + {j}\n\n" for j in range(30)))
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    return repo


def line(label: str, value: str, note: str = "") -> None:
    print(f"  {label:<46} {value:>14}  {note}")


async def sandbox_startup(repo: Path) -> None:
    print("sandbox: `true` per call (median)")

    async def plain_bash() -> None:
        proc = await asyncio.create_subprocess_exec("/bin/bash", "-c", "true", stdout=asyncio.subprocess.PIPE)
        await proc.communicate()

    base = await per_call(plain_bash, 50)
    line("one-shot, plain bash subprocess (baseline)", f"{base * 1e3:.2f} ms")
    modes = ["none", "bwrap"] if HAS_BWRAP else ["none"]
    shells: dict[str, float] = {}
    for mode in modes:
        sandbox = Sandbox(repo, mode=mode)  # type: ignore[arg-type]
        one_shot = await per_call(lambda s=sandbox: s.run("true"), 50)
        shell = sandbox.shell()
        try:
            shells[mode] = await per_call(lambda sh=shell: sh.run("true"), 300)
        finally:
            await shell.close()
        verdict = "" if mode == "none" else (
            "under the 20 ms target" if one_shot < 0.020 else "OVER the 20 ms target")
        label = "Sandbox.run, bubblewrap" if mode == "bwrap" else "Sandbox.run, HONK_SANDBOX=none (subreaper)"
        line(label, f"{one_shot * 1e3:.2f} ms", f"{one_shot / base:.1f}x baseline; {verdict}".rstrip("; "))
    line("persistent shell, HONK_SANDBOX=none (baseline)", f"{shells['none'] * 1e3:.3f} ms")
    if "bwrap" in shells:
        boxed = shells["bwrap"]
        verdict = "under the 20 ms target" if boxed < 0.020 else "OVER the 20 ms target"
        line("persistent shell, bubblewrap (the bash tool)", f"{boxed * 1e3:.3f} ms",
             f"{boxed / shells['none']:.1f}x baseline; {verdict}")
    else:
        print("  (bwrap is not installed: sandboxed figures skipped)")


async def dispatch_and_transcript(repo: Path, settings: Settings) -> None:
    print("tool dispatch and transcript writes (median)")
    sandbox = Sandbox(repo, settings)
    toolbox = Toolbox(Editor(repo), sandbox.shell(), 30)
    try:
        direct = await per_call(lambda: toolbox.shell.run("true"), 300)
        via = await per_call(lambda: toolbox.run("bash", {"command": "true"}), 300)
        view = await per_call(lambda: toolbox.run("str_replace_based_edit_tool",
                                                  {"command": "view", "path": "src/mod1.py"}), 300)
    finally:
        await toolbox.shell.close()
    line("bash `true`, shell directly (baseline)", f"{direct * 1e3:.3f} ms")
    line("bash `true`, through the toolbox", f"{via * 1e3:.3f} ms", f"+{(via - direct) * 1e6:.0f} µs dispatch")
    line("editor view of a 90-line file", f"{view * 1e3:.3f} ms")

    audit = MemoryAudit()
    redactor = Redactor(settings.secrets())
    result = {"id": "toolu_1", "name": "bash", "is_error": False, "content": (repo / "src/mod1.py").read_text()}

    async def plain() -> None:
        await audit.record("tool.result", **result)

    async def redacted() -> None:
        await audit.record("tool.result", **redactor.redact_data(result))

    base = await per_call(plain, 2000)
    full = await per_call(redacted, 2000)
    line("transcript write, no redaction (baseline)", f"{base * 1e6:.1f} µs")
    line("transcript write, redacted 2.5 KB result", f"{full * 1e6:.1f} µs", f"{full / base:.0f}x baseline")


async def long_run(repo: Path, settings: Settings) -> None:
    print(f"a {TURNS}-turn run against the instant scripted model")
    steps = [lambda i: bash("true"), lambda i: edit("view", f"src/mod{i % 20}.py"),
             lambda i: bash(f"grep -c def src/mod{i % 20}.py"), lambda i: bash("ls src | head -5")]
    script = [reply(thinking(f"step {i}"), steps[i % len(steps)](i)) for i in range(TURNS - 1)]
    with FakeMessagesAPI(*script, end("done")) as fake:
        audit = MemoryAudit()
        client = anthropic.AsyncAnthropic(base_url=fake.url, api_key="bench-key")
        agent = Agent(settings, repo, audit, client=client)
        started = time.perf_counter()
        async with agent:
            result = await agent.run(Task("benchmark", repository="bench/repo"))
        total = time.perf_counter() - started
    model = sum(e["duration_s"] for e in audit.of_kind("model.response"))
    tools = sum(e["duration_s"] for e in audit.of_kind("tool.result"))
    harness = total - model - tools
    usage = result.usage
    inputs = usage["input_tokens"] + usage["cache_creation_input_tokens"] + usage["cache_read_input_tokens"]
    share = usage["cache_read_input_tokens"] / inputs
    line("turns, tool calls, stop", f"{result.turns}, {result.tool_calls}", result.stop)
    line("wall time per turn", f"{total / result.turns * 1e3:.2f} ms")
    line("  model call (SDK + loopback HTTP, baseline)", f"{model / result.turns * 1e3:.2f} ms")
    line("  tools (sandboxed shell, editor)", f"{tools / result.turns * 1e3:.2f} ms")
    line("  harness (loop, context, transcript, start-up)", f"{harness / result.turns * 1e3:.2f} ms",
         f"{harness / model:.2f}x the model call")
    line("transcript events", f"{len(audit.events)}")
    line("input tokens: uncached / cache write / read",
         f"{usage['input_tokens']}/{usage['cache_creation_input_tokens']}/{usage['cache_read_input_tokens']}")
    verdict = "meets the 80% target" if share >= 0.8 else "BELOW the 80% target"
    line("share of input tokens read from cache", f"{share:.1%}", verdict)
    line("cost at list price", f"${result.cost_usd:.4f}",
         f"vs ${agent.info.cost({'input_tokens': inputs, 'output_tokens': usage['output_tokens']}):.4f} uncached")


async def main() -> None:
    settings = Settings(_env_file=None, anthropic_api_key="sk-ant-bench-key-0123456789",  # type: ignore[call-arg]
                        honk_sandbox="bwrap" if HAS_BWRAP else "none")
    print(f"honk agent benchmark · python {sys.version.split()[0]} · sandbox {settings.honk_sandbox}")
    with tempfile.TemporaryDirectory(prefix="honk-bench-") as tmp:
        repo = make_repo(Path(tmp))
        await sandbox_startup(repo)
        await dispatch_and_transcript(repo, settings)
        await long_run(repo, settings)


if __name__ == "__main__":
    asyncio.run(main())
