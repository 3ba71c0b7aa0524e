"""Workspaces: a bare mirror per repository, fetched incrementally, and a fresh clone of it per job.

The second job on a big repository costs a fetch and a hard-linked local clone, not a network clone. The
installation token reaches git only through its environment (`GIT_CONFIG_*` naming an `http.extraHeader`),
so it is never on a command line, in a git config file, in a remote URL or anywhere the sandbox can see.

Nothing the model writes may make Honk's own git run a program. So a job's git directory lives beside its
working tree, never in it (`workspaces/job-7.git` for `workspaces/job-7`): the editor cannot reach it and the
sandbox sees it read-only. The tree holds only a `.git` file, which Honk rewrites before every git command
it runs there, and those commands name the git directory and the tree explicitly (`GIT_DIR`,
`GIT_WORK_TREE`), so a `.git` the model planted anywhere is never read. Honk's git reads no system config,
its own global file (`honk.gitconfig`) and a repository config that Honk writes; hooks and fsmonitor are
off on the command line as well. With no filter, diff or merge driver configured, `.gitattributes` cannot
name a program either.
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


# The only global configuration Honk's git reads (GIT_CONFIG_GLOBAL); it ships with the package.
HONK_GITCONFIG = Path(__file__).resolve().with_name("honk.gitconfig")
# The whole repository config of a job's git directory, rewritten by Honk before it uses git there.
WORKSPACE_CONFIG = "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n" \
                   "\tlogallrefupdates = true\n"
# On the command line, which outranks every config file: the two ways git runs programs on its own.
SAFE_OPTIONS = ("-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false")


def git_env() -> dict[str, str]:
    """The environment of every git command Honk runs: a few host values and Honk's own configuration."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update({"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": str(HONK_GITCONFIG),
                "GIT_ASKPASS": "/bin/false", "GIT_EDITOR": "true", "GIT_OPTIONAL_LOCKS": "0",
                "GIT_ATTR_NOSYSTEM": "1", "GIT_NO_REPLACE_OBJECTS": "1"})
    return env


async def git(*args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None,
              check: bool = True, timeout: float = GIT_TIMEOUT, input: bytes | None = None) -> str:
    """Run git (outside the sandbox: this is Honk's own, trusted git) and return its stdout."""
    full_env = git_env() | dict(env or {})
    proc = await asyncio.create_subprocess_exec(
        "git", *SAFE_OPTIONS, *args, cwd=cwd, env=full_env,
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
    """One job's checkout: a working tree on `branch` and, beside it, its git directory, with no remote."""

    path: Path  # the working tree: the sandbox and the editor work here
    git_dir: Path  # out of their reach (the sandbox sees it read-only)
    mirror: Mirror
    branch: str
    base: str  # the commit the work started from (the default branch, or the branch's existing head)

    @classmethod
    async def create(cls, mirror: Mirror, path: Path, *, branch: str, start: str) -> Workspace:
        """A checkout of `start` (a branch of the mirror) at `path`, on `branch`. A spare checkout an earlier
        job left for this repository is reset and reused: on a large tree that rewrites only the files that
        differ, where a fresh clone writes every one."""
        git_dir = git_dir_for(path)
        for old in (path, git_dir):
            if old.exists():
                shutil.rmtree(old)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not _take_spare(mirror, path, git_dir):
            # --local hard-links the mirror's objects: cheap however big the history (same filesystem only).
            local = ["--local"] if os.stat(mirror.path).st_dev == os.stat(path.parent).st_dev else []
            await git("clone", "--quiet", *local, "--no-checkout", "--no-tags", f"--separate-git-dir={git_dir}",
                      str(mirror.path), str(path))
        workspace = cls(path=path, git_dir=git_dir, mirror=mirror, branch=branch, base="")
        await workspace.git("fetch", "--quiet", "--no-tags", str(mirror.path), f"+refs/heads/{start}:refs/honk/start")
        for leftover in ("rebase-merge", "rebase-apply"):  # a spare from a job that stopped mid-rebase
            shutil.rmtree(git_dir / leftover, ignore_errors=True)
        await workspace.git("checkout", "--quiet", "--force", "-B", branch, "refs/honk/start")
        await workspace.git("clean", "--quiet", "-ffdx")
        (git_dir / "info").mkdir(exist_ok=True)
        (git_dir / "info" / "exclude").write_text("")  # the last job's setup artifacts are gone
        workspace.base = (await workspace.git("rev-parse", "HEAD")).strip()
        return workspace

    def pin(self) -> None:
        """Put back what Honk's git relies on: the tree's `.git` file naming the git directory (for git inside
        the sandbox; Honk's own git never reads it) and the git directory's config, as Honk wrote them."""
        pointer = self.path / ".git"
        wanted = f"gitdir: {self.git_dir}\n"
        if pointer.is_symlink() or pointer.is_file():
            if not pointer.is_symlink() and pointer.read_text(errors="replace") == wanted:
                wanted = ""
            else:
                pointer.unlink()
        elif pointer.exists():
            shutil.rmtree(pointer)
        if wanted:
            pointer.write_text(wanted)
        config = self.git_dir / "config"
        if config.is_symlink() or not config.is_file() or config.read_text(errors="replace") != WORKSPACE_CONFIG:
            config.unlink(missing_ok=True)
            config.write_text(WORKSPACE_CONFIG)

    def git_env(self) -> dict[str, str]:
        """For git commands on this workspace: its git directory and tree named explicitly, so that git never
        looks for either in the tree."""
        return {"GIT_DIR": str(self.git_dir), "GIT_WORK_TREE": str(self.path)}

    async def git(self, *args: str, env: Mapping[str, str] | None = None, check: bool = True,
                  input: bytes | None = None) -> str:
        """Run Honk's git on this workspace."""
        self.pin()
        return await git(*args, cwd=self.path, env=self.git_env() | dict(env or {}), check=check, input=input)

    async def nested_repositories(self) -> list[str]:
        """Directories of the tree, not ignored, that hold a `.git` of their own: git would stage them as
        gitlinks, or fail on them, and a nested repository is never Honk's to push. The walk follows no
        symlink and skips what setup left (the paths in `info/exclude`)."""
        excluded = {line.strip("/") for line in (self.git_dir / "info" / "exclude").read_text().splitlines()
                    if line.startswith("/")} if (self.git_dir / "info" / "exclude").is_file() else set()
        found: list[str] = []
        for top, dirs, files in os.walk(self.path):
            relative = os.path.relpath(top, self.path)
            if relative != "." and ".git" in dirs + files:
                found.append(relative)
            dirs[:] = [d for d in dirs if d != ".git" and os.path.normpath(os.path.join(relative, d)) not in excluded]
        if not found:
            return []
        ignored = await self.git("check-ignore", "--stdin", "-z", input="\0".join(found).encode(), check=False)
        return [path for path in found if path not in set(ignored.split("\0"))]

    async def stage_all(self) -> list[str]:
        """Stage every change (new, modified, deleted files) and list the changed paths."""
        await self.git("add", "--all")
        out = await self.git("diff", "--cached", "--name-only", "--no-renames", self.base)
        return [line for line in out.splitlines() if line]

    async def diff(self, *args: str) -> str:
        return await self.git("diff", "--cached", "--no-color", "--no-ext-diff", "--no-textconv", *args, self.base)

    async def commit(self, message: str, *, name: str, email: str) -> str:
        env = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email, "GIT_COMMITTER_NAME": name,
               "GIT_COMMITTER_EMAIL": email}
        await self.git("commit", "--quiet", "--no-verify", "--file", "-", env=env, input=message.encode())
        return await self.head()

    async def push(self, token: str | None) -> None:
        """Push the branch to GitHub, fast-forward only (never force)."""
        await self.git("push", "--quiet", "--porcelain", self.mirror.url, f"HEAD:refs/heads/{self.branch}",
                       env=token_env(token))

    async def catch_up(self, token: str | None, *, name: str, email: str) -> bool:
        """The branch moved on GitHub while we worked (a human pushed): fetch it and replay our commits on top.
        False, with nothing changed, when they conflict."""
        await self.mirror.fetch(token)
        await self.git("fetch", "--quiet", "--no-tags", str(self.mirror.path), f"refs/heads/{self.branch}")
        env = {"GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}
        try:
            await self.git("rebase", "--quiet", "FETCH_HEAD", env=env)
        except GitError:
            await self.git("rebase", "--abort", check=False)
            return False
        return True

    async def head(self) -> str:
        return (await self.git("rev-parse", "HEAD")).strip()

    def remove(self) -> None:
        """Done with it: keep it as a spare for the repository's next job, or delete it."""
        spares = mirror_spares(self.mirror)
        spares.mkdir(parents=True, exist_ok=True)
        if len(list(spares.iterdir())) < SPARES_PER_REPOSITORY and os.stat(spares).st_dev == os.stat(self.path).st_dev:
            spare = spares / f"{os.getpid()}-{id(self)}-{self.path.name}"
            try:
                spare.mkdir()
                os.rename(self.path, spare / "tree")
                os.rename(self.git_dir, spare / "git")
                return
            except OSError:
                shutil.rmtree(spare, ignore_errors=True)
        shutil.rmtree(self.path, ignore_errors=True)
        shutil.rmtree(self.git_dir, ignore_errors=True)


SPARES_PER_REPOSITORY = 2


def git_dir_for(path: Path) -> Path:
    """Where the git directory of the working tree at `path` lives: beside it, never inside it."""
    return path.with_name(path.name + ".git")


def mirror_spares(mirror: Mirror) -> Path:
    return mirror.path.with_name(mirror.path.name + ".spares")


def _take_spare(mirror: Mirror, path: Path, git_dir: Path) -> bool:
    """Claim a spare checkout by renaming it into place; a rename either wins or fails, so concurrent jobs
    never share one."""
    spares = mirror_spares(mirror)
    claim = path.with_name(path.name + ".claim")
    for spare in sorted(spares.iterdir()) if spares.is_dir() else []:
        try:
            os.rename(spare, claim)
        except OSError:
            continue  # another job took it first
        try:
            os.rename(claim / "tree", path)
            os.rename(claim / "git", git_dir)
            claim.rmdir()
            return True
        except OSError:  # a spare left half-made by a crash: not worth saving
            for leftover in (claim, path, git_dir):
                shutil.rmtree(leftover, ignore_errors=True)
    return False


def branch_name(prefix: str, number: int, title: str) -> str:
    """`honk/issue-12-widgets-spin-backwards`: the number makes it findable, the slug makes it readable."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40].rstrip("-")
    return f"{prefix}issue-{number}" + (f"-{slug}" if slug else "")
