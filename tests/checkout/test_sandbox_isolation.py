"""What the sandbox shows of the host (a short list of /etc, the job's git directory read-only) and that it is
really over, every background process included, before Honk reads the tree."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from app.agent import Task
from app.checkout.sandbox import Sandbox, namespace_members
from app.checkout.workspace import Workspace, git_dir_for
from tests.agent.conftest import AgentFactory, needs_bwrap, run
from tests.fakes.messages_api import FakeMessagesAPI, bash, end, reply


def _processes_with(tag: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if tag.encode() in f.read().replace(b"\0", b" "):
                        found.append(int(entry))
            except OSError:
                continue
    return found


@needs_bwrap
def test_only_what_programs_need_of_etc(repo: Path) -> None:
    output = run(Sandbox(repo, mode="bwrap").run(
        "ls /etc; echo ---; for f in shadow gshadow hostname machine-id gitconfig pip.conf resolv.conf ssh sudoers; "
        "do test -e /etc/$f && echo VISIBLE $f; done; echo ---; id -un; getent passwd root | cut -d: -f1; "
        "date +%Z; git --version >/dev/null && echo GIT-OK; /usr/bin/python3 -c 'print(\"PY-OK\")'")).output
    listing, hidden, works = output.split("---\n")
    assert "VISIBLE" not in hidden, hidden
    assert {"passwd", "group", "ld.so.cache"} <= set(listing.split())
    assert "root" in works.split() and "GIT-OK" in works
    if Path("/usr/bin/python3").exists():
        assert "PY-OK" in works


@needs_bwrap
def test_the_git_directory_is_readable_and_never_writable_inside(tmp_path: Path) -> None:
    upstream = tmp_path / "upstream"
    upstream.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(upstream)], check=True)
    (upstream / "a.txt").write_text("a\n")
    subprocess.run(["git", "-C", str(upstream), "add", "."], check=True)
    subprocess.run(["git", "-C", str(upstream), "-c", "user.name=n", "-c", "user.email=e@x", "commit", "-qm", "a"],
                   check=True)
    tree = tmp_path / "job-1"
    subprocess.run(["git", "clone", "-q", f"--separate-git-dir={git_dir_for(tree)}", str(upstream), str(tree)],
                   check=True)
    config_before = (git_dir_for(tree) / "config").read_text()
    (tree / "a.txt").write_text("changed\n")
    sandbox = Sandbox(tree, mode="bwrap", git_dir=git_dir_for(tree))
    output = run(sandbox.run(
        "git status --short; git diff --stat | tail -1; gd=$(sed 's/^gitdir: //' .git); "
        "echo '[core] fsmonitor = evil' >> $gd/config || echo CONFIG-READ-ONLY; "
        "touch $gd/hooks/pre-commit || echo HOOKS-READ-ONLY; "
        "echo 'gitdir: /tmp/evil' > .git || echo POINTER-READ-ONLY; rm -f .git || echo POINTER-STAYS")).output
    assert " M a.txt" in output and "1 file changed" in output  # the model's git works, read-only
    for word in ("CONFIG-READ-ONLY", "HOOKS-READ-ONLY", "POINTER-READ-ONLY", "POINTER-STAYS"):
        assert word in output, output
    assert (git_dir_for(tree) / "config").read_text() == config_before
    assert (tree / ".git").read_text().startswith("gitdir: ")


@pytest.mark.parametrize("mode", [pytest.param("bwrap", marks=needs_bwrap), "none"])
def test_closing_the_shell_ends_every_process_it_started(repo: Path, mode: str) -> None:
    tag = f"4{os.getpid() % 100000}.25"

    async def main() -> tuple[list[int], list[int]]:
        shell = Sandbox(repo, mode=mode).shell()  # type: ignore[arg-type]
        await shell.run(f"(while :; do sleep {tag}; done) & (setsid sleep {tag} &); nohup sleep {tag} >/dev/null "
                        f"2>&1 & disown -a; echo started")
        alive = _processes_with(f"sleep {tag}")
        await shell.close()
        return alive, _processes_with(f"sleep {tag}")

    alive, after = run(main())
    assert alive, "the background processes should have been running"
    assert after == []


@needs_bwrap
def test_the_agents_sandbox_is_gone_before_honk_stages(make_agent: AgentFactory, fake: FakeMessagesAPI,
                                                       repo: Path) -> None:
    """The model leaves a loop running that would keep rewriting the tree; by the time the pipeline stages,
    nothing of the sandbox runs any more (its PID namespace is empty)."""
    from app.jobs import steps

    tag = f"5{os.getpid() % 100000}.5"
    fake.script(reply(bash(f"(while :; do echo $RANDOM > churn.txt; sleep {tag}; done) & setsid sleep {tag} & "
                           "echo ok")), end("done"))
    agent, _ = make_agent()
    seen: dict[str, object] = {}

    class Watched(Workspace):
        async def stage_all(self) -> list[str]:
            seen["processes"] = _processes_with(f"sleep {tag}")
            seen["churn"] = (repo / "churn.txt").read_text()
            return ["churn.txt"]

        async def nested_repositories(self) -> list[str]:
            return []

    workspace = Watched(path=repo, git_dir=repo / ".git", mirror=None, branch="b", base="HEAD")  # type: ignore[arg-type]

    async def main() -> list[str]:
        async with agent:
            await agent.run(Task("churn"))
            assert _processes_with(f"sleep {tag}"), "the loop runs until Honk ends the sandbox"
            namespaces = {os.readlink(f"/proc/{pid}/ns/pid") for pid in _processes_with(f"sleep {tag}")}
            staged = await steps._stage(agent, workspace)
            assert namespace_members(namespaces) == []
            return staged

    assert run(main()) == ["churn.txt"]
    assert seen["processes"] == []
    assert (repo / "churn.txt").read_text() == seen["churn"]  # nothing wrote to the tree after staging began
