"""Workspaces: mirrors fetched incrementally, per-job clones with no remote, commits and plain pushes."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from app.checkout.workspace import GitError, Mirror, Workspace, branch_name, token_env


def sh(*args: str, cwd: Path) -> str:
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    """A bare repository standing in for GitHub, with one commit on main."""
    seed = tmp_path / "seed"
    seed.mkdir()
    sh("git", "init", "-q", "-b", "main", cwd=seed)
    (seed / "widgets.py").write_text("def spin():\n    return 'backwards'\n")
    sh("git", "add", ".", cwd=seed)
    sh("git", "-c", "user.name=Octo Cat", "-c", "user.email=octo@example.com", "commit", "-qm", "init", cwd=seed)
    bare = tmp_path / "upstream.git"
    sh("git", "clone", "-q", "--bare", str(seed), str(bare), cwd=tmp_path)
    return bare


def test_branch_names_are_findable_and_readable() -> None:
    assert branch_name("honk/", 12, "Widgets spin BACKWARDS!") == "honk/issue-12-widgets-spin-backwards"
    assert branch_name("honk/", 3, "???") == "honk/issue-3"
    assert len(branch_name("bot/", 1, "x" * 200)) <= len("bot/issue-1-") + 40


def test_token_goes_to_git_as_basic_auth_in_the_environment_only() -> None:
    env = token_env("ghs_abc")
    assert env["GIT_CONFIG_KEY_0"] == "http.extraHeader"
    # base64 of "x-access-token:ghs_abc"
    assert env["GIT_CONFIG_VALUE_0"] == "Authorization: Basic eC1hY2Nlc3MtdG9rZW46Z2hzX2FiYw=="
    assert token_env(None) == {}


def test_job_workspace_from_mirror_commit_and_push(tmp_path: Path, upstream: Path) -> None:
    async def scenario() -> None:
        mirror = Mirror.for_url(tmp_path / "data", str(upstream))
        await mirror.fetch(token=None)
        assert await mirror.head_of("main")
        ws = await Workspace.create(mirror, tmp_path / "ws" / "job-1", branch="honk/issue-7-x", start="main")
        assert (await ws.git("remote")).strip() == ""  # nothing to leak, nothing to push to by accident
        # The git directory lives beside the tree; the tree holds only a pointer to it.
        assert ws.git_dir == tmp_path / "ws" / "job-1.git" and (ws.git_dir / "HEAD").is_file()
        assert (ws.path / ".git").read_text() == f"gitdir: {ws.git_dir}\n"
        (ws.path / "widgets.py").write_text("def spin():\n    return 'forwards'\n")
        (ws.path / "NEW.md").write_text("new\n")
        assert sorted(await ws.stage_all()) == ["NEW.md", "widgets.py"]
        sha = await ws.commit("Spin forwards\n\nCo-authored-by: alice <alice@users.noreply.github.com>",
                              name="honk-test[bot]", email="9+honk-test[bot]@users.noreply.github.com")
        await ws.push(token=None)
        assert sh("git", "rev-parse", "refs/heads/honk/issue-7-x", cwd=upstream).strip() == sha
        author = sh("git", "log", "-1", "--format=%an <%ae>|%B", "honk/issue-7-x", cwd=upstream)
        assert author.startswith("honk-test[bot] <9+honk-test[bot]@users.noreply.github.com>|Spin forwards")
        ws.remove()
        assert not ws.path.exists() and not ws.git_dir.exists()

    asyncio.run(scenario())


def test_push_never_forces(tmp_path: Path, upstream: Path) -> None:
    async def scenario() -> None:
        mirror = Mirror.for_url(tmp_path / "data", str(upstream))
        await mirror.fetch(token=None)
        first = await Workspace.create(mirror, tmp_path / "a", branch="honk/issue-1", start="main")
        (first.path / "a.txt").write_text("a")
        await first.stage_all()
        await first.commit("a", name="n", email="e@x")
        await first.push(token=None)
        # A second workspace from the old main has diverged from the pushed branch: its push must fail.
        second = await Workspace.create(mirror, tmp_path / "b", branch="honk/issue-1", start="main")
        (second.path / "b.txt").write_text("b")
        await second.stage_all()
        await second.commit("b", name="n", email="e@x")
        with pytest.raises(GitError, match="push"):
            await second.push(token=None)

    asyncio.run(scenario())


def test_mirror_fetch_is_incremental_and_safe_for_concurrent_jobs(tmp_path: Path, upstream: Path) -> None:
    async def scenario() -> None:
        mirror = Mirror.for_url(tmp_path / "data", str(upstream))
        await asyncio.gather(*(mirror.fetch(token=None) for _ in range(4)))
        # A new upstream branch arrives with the next fetch; existing objects are not fetched again.
        sh("git", "branch", "feature", "main", cwd=upstream)
        await mirror.fetch(token=None)
        assert await mirror.branches("feature") == ["feature"]
        sh("git", "branch", "honk/issue-1-fix-it", "main", cwd=upstream)
        sh("git", "branch", "honk/issue-12", "main", cwd=upstream)
        await mirror.fetch(token=None)
        assert await mirror.branches("honk/issue-1") == ["honk/issue-1-fix-it", "honk/issue-12"]
        workspaces = await asyncio.gather(*(Workspace.create(mirror, tmp_path / f"w{n}", branch=f"honk/issue-{n}",
                                                             start="main") for n in range(3)))
        assert len({ws.base for ws in workspaces}) == 1

    asyncio.run(scenario())


def _plant_everything(ws: Workspace, marker: Path) -> None:
    """Every way a file in the tree (or, failing every other defence, in the git directory) could ask git to
    run a program: hooks, fsmonitor, clean/smudge/process filters, textconv and external diff drivers, an
    include of a file the model wrote, a `.git` of its own at the top and in a nested repository."""
    run = f"sh -c 'echo pwned >> {marker}'"
    evil_config = (f"[core]\n\tfsmonitor = {run}\n\thooksPath = hooks\n\tpager = {run}\n"
                   f"[filter \"x\"]\n\tclean = {run}\n\tsmudge = {run}\n\tprocess = {run}\n\trequired = true\n"
                   f"[diff \"x\"]\n\ttextconv = {run}\n\tcommand = {run}\n"
                   f"[diff]\n\texternal = {run}\n")
    (ws.path / "included.cfg").write_text(evil_config)
    evil_config += f"[include]\n\tpath = {ws.path}/included.cfg\n"
    (ws.path / ".gitattributes").write_text("* filter=x diff=x\n")
    (ws.path / ".gitconfig").write_text(evil_config)
    for hooks in (ws.git_dir / "hooks", ws.path / "hooks"):
        hooks.mkdir(exist_ok=True)
        for name in ("pre-commit", "post-commit", "commit-msg", "pre-push", "post-checkout", "reference-transaction",
                     "fsmonitor-watchman", "post-index-change", "pre-auto-gc"):
            (hooks / name).write_text(f"#!/bin/sh\necho pwned >> {marker}\n")
            (hooks / name).chmod(0o755)
    # Past every other defence: the git directory's own config and info/attributes (Honk rewrites the former).
    with (ws.git_dir / "config").open("a") as config:
        config.write(evil_config)
    (ws.git_dir / "info" / "attributes").write_text("* filter=x diff=x\n")
    # A nested repository with the same config, and a top-level `.git` swapped for a directory of the model's.
    nested = ws.path / "vendor" / "lib"
    subprocess.run(["git", "init", "-q", str(nested)], check=True)
    (nested / "x.txt").write_text("x")
    sh("git", "add", "x.txt", cwd=nested)
    sh("git", "-c", "user.name=n", "-c", "user.email=e@x", "commit", "-qm", "nested", cwd=nested)
    (nested / "x.txt").write_text("dirty")
    with (nested / ".git" / "config").open("a") as config:
        config.write(evil_config)
    (nested / ".gitattributes").write_text("* filter=x\n")
    (ws.path / ".git").unlink()
    (ws.path / ".git").mkdir()
    (ws.path / ".git" / "config").write_text(evil_config)
    (ws.path / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (ws.path / ".git" / "objects").mkdir()
    (ws.path / ".git" / "refs").mkdir()
    (ws.path / "widgets.py").write_text("changed\n")


def test_nothing_planted_in_the_tree_runs_a_program_in_honks_git(tmp_path: Path, upstream: Path) -> None:
    """The model can write anything into the tree; Honk's staging, diffs, status, commit, push and a rebase
    must not run a program it names, by any route."""
    async def scenario() -> None:
        mirror = Mirror.for_url(tmp_path / "data", str(upstream))
        await mirror.fetch(token=None)
        ws = await Workspace.create(mirror, tmp_path / "ws", branch="honk/issue-9", start="main")
        marker = tmp_path / "pwned"
        _plant_everything(ws, marker)
        assert await ws.nested_repositories() == ["vendor/lib"]  # what the job refuses before staging
        changed = await ws.stage_all()
        assert "widgets.py" in changed and "vendor/lib" in changed  # the gitlink is staged, for the guard
        assert "filter" not in (ws.git_dir / "config").read_text()  # Honk put its own config back
        await ws.diff()
        await ws.diff("--stat")
        await ws.git("status", "--short")
        await ws.commit("x", name="n", email="e@x")
        await ws.push(token=None)
        assert await ws.catch_up(None, name="n", email="e@x")
        await ws.git("checkout", "--quiet", "-B", "other", "HEAD")
        assert not marker.exists(), marker.read_text()
        assert (ws.path / ".git").read_text() == f"gitdir: {ws.git_dir}\n"  # the model's `.git` is gone

    asyncio.run(scenario())


def test_a_finished_checkout_is_reset_and_reused_by_the_next_job(tmp_path: Path, upstream: Path) -> None:
    """A big tree is checked out once per repository, not once per job; nothing of the last job survives."""
    async def scenario() -> None:
        mirror = Mirror.for_url(tmp_path / "data", str(upstream))
        await mirror.fetch(token=None)
        first = await Workspace.create(mirror, tmp_path / "ws" / "job-1", branch="honk/issue-1", start="main")
        (first.git_dir / "reused").write_text("same directory\n")  # a trace only Honk could leave
        (first.path / "widgets.py").write_text("changed\n")
        (first.path / "scratch.txt").write_text("untracked\n")
        (first.path / ".venv").mkdir()
        (first.git_dir / "info" / "exclude").write_text("/.venv\n")
        first.remove()
        assert not first.path.exists()

        second = await Workspace.create(mirror, tmp_path / "ws" / "job-2", branch="honk/issue-2", start="main")
        assert (second.git_dir / "reused").exists()  # the spare was taken, not a fresh clone
        assert (second.path / ".git").read_text() == f"gitdir: {second.git_dir}\n"  # pointing at its new place
        assert (second.path / "widgets.py").read_text() == "def spin():\n    return 'backwards'\n"
        assert not (second.path / "scratch.txt").exists() and not (second.path / ".venv").exists()
        assert (second.git_dir / "info" / "exclude").read_text() == ""
        assert (await second.git("rev-parse", "--abbrev-ref", "HEAD")).strip() == "honk/issue-2"
        assert second.base == sh("git", "rev-parse", "main", cwd=upstream).strip()
        assert (await second.git("status", "--porcelain")).strip() == ""
        third = await Workspace.create(mirror, tmp_path / "ws" / "job-3", branch="honk/issue-3", start="main")
        assert not (third.git_dir / "reused").exists()  # no spare left: a fresh clone

    asyncio.run(scenario())
