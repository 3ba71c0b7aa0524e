"""Workspaces: a bare mirror per repository, fetched incrementally, and a fresh clone of it per job.

The second job on a big repository costs a fetch and a hard-linked local clone, not a network clone. The
installation token reaches git only through its environment (`GIT_CONFIG_*` naming an `http.extraHeader`),
so it is never on a command line, in `.git/config`, in a remote URL or anywhere the sandbox can see. Git
runs with system and global config, hooks and prompts switched off: the model could have written into the
working tree, and nothing it wrote may execute outside the sandbox.
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import os
import re
import shutil
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

GIT_TIMEOUT = 600.0


class GitError(Exception):
    """A git command failed; the message has its (token-free) output."""


def token_env(token: str | None) -> dict[str, str]:
    """Environment that makes git send the installation token as GitHub expects: basic auth as
    `x-access-token`. An environment variable is visible only to this user's processes, unlike argv."""
    if not token:
        return {}
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    return {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}"}


def _base_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update({"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
                "GIT_ASKPASS": "/bin/false", "GIT_EDITOR": "true", "GIT_OPTIONAL_LOCKS": "0"})
    return env


async def git(*args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None,
              check: bool = True, timeout: float = GIT_TIMEOUT, input: bytes | None = None) -> str:
    """Run git (outside the sandbox: this is Honk's own, trusted git) and return its stdout."""
    full_env = _base_env() | dict(env or {})
    proc = await asyncio.create_subprocess_exec(
        "git", "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", *args, cwd=cwd, env=full_env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL)
    try:
        out, err = await asyncio.wait_for(proc.communicate(input), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise GitError(f"git {args[0]} took longer than {timeout:.0f}s") from None
    if check and proc.returncode != 0:
        detail = (err or out).decode(errors="replace").strip()
        raise GitError(f"git {args[0]} failed ({proc.returncode}): {_scrub(detail, env)}")
    return out.decode(errors="replace")


def _scrub(text: str, env: Mapping[str, str] | None) -> str:
    for value in (env or {}).values():
        if len(value) > 12:
            text = text.replace(value, "***")
    return text[-2000:]


@asynccontextmanager
async def _locked(path: Path) -> AsyncIterator[None]:
    """An exclusive lock shared by every process on this host, so concurrent jobs fetch a mirror in turn."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        await asyncio.to_thread(fcntl.flock, handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class Mirror:
    path: Path
    url: str

    @classmethod
    def for_url(cls, data_dir: Path, url: str) -> Mirror:
        parts = urlsplit(url)
        name = re.sub(r"[^A-Za-z0-9._/-]", "_", f"{parts.hostname}_{parts.port or ''}{parts.path}").strip("/")
        if not name.endswith(".git"):
            name += ".git"
        return cls(path=(data_dir / "mirrors" / name).resolve(), url=url)

    async def fetch(self, token: str | None) -> None:
        """Create the mirror on first use, then bring every branch up to date (only new objects travel)."""
        async with _locked(self.path.with_suffix(".lock")):
            if not (self.path / "HEAD").exists():
                self.path.mkdir(parents=True, exist_ok=True)
                await git("init", "--bare", "--quiet", str(self.path))
            # The URL goes on the command line each time rather than into a remote: nothing is stored.
            await git("fetch", "--quiet", "--prune", "--no-tags", self.url, "+refs/heads/*:refs/heads/*",
                      cwd=self.path, env=token_env(token))

    async def head_of(self, branch: str) -> str | None:
        out = await git("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}", cwd=self.path,
                        check=False)
        return out.strip() or None

    async def branches(self, prefix: str) -> list[str]:
        """Branches whose name starts with `prefix` (a plain for-each-ref pattern only matches whole path
        components, so `honk/issue-1` alone would miss `honk/issue-1-fix`)."""
        out = await git("for-each-ref", "--format=%(refname:strip=2)", f"refs/heads/{prefix}*",
                        f"refs/heads/{prefix}", cwd=self.path)
        return sorted({line for line in out.splitlines() if line})


@dataclass
class Workspace:
    """One job's checkout: a local clone of the mirror on `branch`, with no remote at all."""

    path: Path
    mirror: Mirror
    branch: str
    base: str  # the commit the work started from (the default branch, or the branch's existing head)

    @classmethod
    async def create(cls, mirror: Mirror, path: Path, *, branch: str, start: str) -> Workspace:
        """A checkout of `start` (a branch of the mirror) at `path`, on `branch`. A spare checkout an earlier
        job left for this repository is reset and reused: on a large tree that rewrites only the files that
        differ, where a fresh clone writes every one."""
        if path.exists():
            shutil.rmtree(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not _take_spare(mirror, path):
            # --local hard-links the mirror's objects: cheap however big the history (same filesystem only).
            local = ["--local"] if os.stat(mirror.path).st_dev == os.stat(path.parent).st_dev else []
            await git("clone", "--quiet", *local, "--no-checkout", "--no-tags", str(mirror.path), str(path))
            await git("remote", "remove", "origin", cwd=path)
        await git("fetch", "--quiet", "--no-tags", str(mirror.path), f"+refs/heads/{start}:refs/honk/start", cwd=path)
        for leftover in ("rebase-merge", "rebase-apply"):  # a spare from a job that stopped mid-rebase
            shutil.rmtree(path / ".git" / leftover, ignore_errors=True)
        await git("checkout", "--quiet", "--force", "-B", branch, "refs/honk/start", cwd=path)
        await git("clean", "--quiet", "-ffdx", cwd=path)
        (path / ".git" / "info").mkdir(exist_ok=True)
        (path / ".git" / "info" / "exclude").write_text("")  # the last job's setup artifacts are gone
        base = (await git("rev-parse", "HEAD", cwd=path)).strip()
        return cls(path=path, mirror=mirror, branch=branch, base=base)

    async def stage_all(self) -> list[str]:
        """Stage every change (new, modified, deleted files) and list the changed paths."""
        await git("add", "--all", cwd=self.path)
        out = await git("diff", "--cached", "--name-only", "--no-renames", self.base, cwd=self.path)
        return [line for line in out.splitlines() if line]

    async def diff(self, *args: str) -> str:
        return await git("diff", "--cached", "--no-color", "--no-ext-diff", *args, self.base, cwd=self.path)

    async def commit(self, message: str, *, name: str, email: str) -> str:
        env = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email, "GIT_COMMITTER_NAME": name,
               "GIT_COMMITTER_EMAIL": email}
        await git("commit", "--quiet", "--no-verify", "--file", "-", cwd=self.path, env=env, input=message.encode())
        return (await git("rev-parse", "HEAD", cwd=self.path)).strip()

    async def push(self, token: str | None) -> None:
        """Push the branch to GitHub, fast-forward only (never force)."""
        await git("push", "--quiet", "--porcelain", self.mirror.url, f"HEAD:refs/heads/{self.branch}",
                  cwd=self.path, env=token_env(token))

    async def catch_up(self, token: str | None, *, name: str, email: str) -> bool:
        """The branch moved on GitHub while we worked (a human pushed): fetch it and replay our commits on top.
        False, with nothing changed, when they conflict."""
        await self.mirror.fetch(token)
        await git("fetch", "--quiet", "--no-tags", str(self.mirror.path), f"refs/heads/{self.branch}", cwd=self.path)
        env = {"GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}
        try:
            await git("rebase", "--quiet", "FETCH_HEAD", cwd=self.path, env=env)
        except GitError:
            await git("rebase", "--abort", cwd=self.path, check=False)
            return False
        return True

    async def head(self) -> str:
        return (await git("rev-parse", "HEAD", cwd=self.path)).strip()

    def remove(self) -> None:
        """Done with it: keep it as a spare for the repository's next job, or delete it."""
        spares = mirror_spares(self.mirror)
        spares.mkdir(parents=True, exist_ok=True)
        if len(list(spares.iterdir())) < SPARES_PER_REPOSITORY and os.stat(spares).st_dev == os.stat(self.path).st_dev:
            try:
                os.rename(self.path, spares / f"{os.getpid()}-{id(self)}-{self.path.name}")
                return
            except OSError:
                pass
        shutil.rmtree(self.path, ignore_errors=True)


SPARES_PER_REPOSITORY = 2


def mirror_spares(mirror: Mirror) -> Path:
    return mirror.path.with_name(mirror.path.name + ".spares")


def _take_spare(mirror: Mirror, path: Path) -> bool:
    """Claim a spare checkout by renaming it into place; a rename either wins or fails, so concurrent jobs
    never share one."""
    spares = mirror_spares(mirror)
    for spare in sorted(spares.iterdir()) if spares.is_dir() else []:
        try:
            os.rename(spare, path)
            return True
        except OSError:
            continue  # another job took it first
    return False


def branch_name(prefix: str, number: int, title: str) -> str:
    """`honk/issue-12-widgets-spin-backwards`: the number makes it findable, the slug makes it readable."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40].rstrip("-")
    return f"{prefix}issue-{number}" + (f"-{slug}" if slug else "")
