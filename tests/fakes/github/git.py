"""Git as the fake GitHub keeps it: one bare repository per fake repository, under `root`.

Commits are made without a work tree (`_commit`), tests inspect branches, history, files and diffs, and git's
smart HTTP is the real `git http-backend` run as a CGI (`_http_backend`), which records the refs each push
changed in `pushes`. The routes that reach it, and their Basic auth, are in `routes/git.py`.

Many repositories at once (`create_fleet`) skip git's subprocesses: a copy of one freshly initialized bare
repository (`_bare_template`) gets its first commit written as loose objects by Python (`_write_initial_commit`),
byte for byte what git writes, so each stays an ordinary, independent bare repository.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from tests.fakes.github.state import Push, State, _Repo

ZERO = "0" * 40
OCTOCAT = ("Octo Cat", "octocat@github.com")


def split_person(person: str | tuple[str, str]) -> tuple[str, str]:
    if isinstance(person, tuple):
        return person
    match = re.fullmatch(r"\s*(.*?)\s*<([^>]*)>\s*", person)
    if not match:
        raise ValueError(f"expected 'Name <email>', got {person!r}")
    return match.group(1), match.group(2)


def _cgi_response(proc: subprocess.CompletedProcess[bytes]) -> Response:
    """The HTTP answer in a CGI program's output (headers, a blank line, the body)."""
    head, sep, payload = proc.stdout.partition(b"\r\n\r\n")
    if not sep:
        head, sep, payload = proc.stdout.partition(b"\n\n")
    status, headers = 200, {}
    for line in head.decode(errors="replace").splitlines():
        key, _, value = line.partition(":")
        if key.lower() == "status":
            status = int(value.split()[0])
        elif key:
            headers[key.strip()] = value.strip()
    if proc.returncode != 0 and not sep:
        return Response(proc.stderr, status_code=500, media_type="text/plain")
    return Response(payload, status_code=status, headers=headers)


class Git(State):
    @property
    def _root(self) -> Path:
        if self.root is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="fake-github-")
            self.root = Path(self._tmp.name)
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root

    def close(self) -> None:
        """Remove the temporary directory holding the repositories (when the fake made it)."""
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def _git_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        env.update({"HOME": str(self._root), "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
                    "LC_ALL": "C"})
        env.update(extra or {})
        return env

    def _git(self, repo: _Repo, *args: str, input: bytes | None = None,
             env: Mapping[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run(["git", *args], cwd=repo.path, input=input, capture_output=True,
                              env=self._git_env(env), check=False)
        if check and proc.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}")
        return proc

    def _out(self, repo: _Repo, *args: str, **kwargs: Any) -> str:
        return self._git(repo, *args, **kwargs).stdout.decode().strip()

    def _rev(self, repo: _Repo, ref: str) -> str | None:
        proc = self._git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        return proc.stdout.decode().strip() or None

    def _branch_sha(self, repo: _Repo, branch: str) -> str | None:
        proc = self._git(repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False)
        return proc.stdout.decode().strip() or None

    def _commit(self, repo: _Repo, branch: str, files: Mapping[str, str | bytes | None], message: str,
                author: tuple[str, str], committer: tuple[str, str]) -> str:
        parent = self._branch_sha(repo, branch)
        with tempfile.TemporaryDirectory(dir=self._root) as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index"), "GIT_AUTHOR_NAME": author[0],
                   "GIT_AUTHOR_EMAIL": author[1], "GIT_COMMITTER_NAME": committer[0],
                   "GIT_COMMITTER_EMAIL": committer[1]}
            if parent:
                self._git(repo, "read-tree", parent, env=env)
            lines = []
            for path, content in files.items():
                if content is None:
                    lines.append(f"0 {ZERO}\t{path}")
                    continue
                data = content.encode() if isinstance(content, str) else content
                sha = self._out(repo, "hash-object", "-w", "--stdin", input=data, env=env)
                lines.append(f"100644 {sha}\t{path}")
            if lines:
                self._git(repo, "update-index", "--index-info", input="\n".join(lines).encode() + b"\n", env=env)
            tree = self._out(repo, "write-tree", env=env)
            args = ["commit-tree", tree, *(["-p", parent] if parent else []), "-F", "-"]
            sha = self._out(repo, *args, input=message.encode(), env=env)
        self._git(repo, "update-ref", f"refs/heads/{branch}", sha, parent or ZERO)
        return sha

    # ----------------------------------------------------------------------------------------- fast creation

    def _bare_template(self, directory: Path, default_branch: str) -> Path:
        """A fresh bare repository (pushes allowed, no sample hooks) in `directory`, to be copied."""
        template = directory / "template.git"
        subprocess.run(["git", "init", "--bare", "--quiet", f"--initial-branch={default_branch}", str(template)],
                       env=self._git_env(), check=True, capture_output=True)
        subprocess.run(["git", "config", "http.receivepack", "true"], cwd=template, env=self._git_env(), check=True,
                       capture_output=True)
        for sample in (template / "hooks").glob("*"):
            sample.unlink()
        return template

    @staticmethod
    def _write_object(path: Path, kind: str, data: bytes) -> str:
        """Store one loose object in the bare repository at `path`, as `git hash-object -w` does; its SHA."""
        raw = f"{kind} {len(data)}\0".encode() + data
        sha = hashlib.sha1(raw).hexdigest()
        target = path / "objects" / sha[:2] / sha[2:]
        if not target.exists():
            target.parent.mkdir(exist_ok=True)
            target.write_bytes(zlib.compress(raw, 1))
        return sha

    def _write_tree(self, path: Path, files: Mapping[str, str | bytes]) -> str:
        """The tree of `files` (path -> content), subtrees included, written as loose objects; its SHA."""
        root: dict[str, Any] = {}
        for file_path, content in files.items():
            *dirs, leaf = file_path.strip("/").split("/")
            node = root
            for part in dirs:
                node = node.setdefault(part, {})
            node[leaf] = content.encode() if isinstance(content, str) else content

        def write(node: dict[str, Any]) -> str:
            entries = []
            for name, value in node.items():
                if isinstance(value, dict):  # git orders a subtree as if its name ended with "/"
                    entries.append(((name + "/").encode(), b"40000 ", name, write(value)))
                else:
                    entries.append((name.encode(), b"100644 ", name, self._write_object(path, "blob", value)))
            body = b"".join(mode + name.encode() + b"\0" + bytes.fromhex(sha)
                            for _, mode, name, sha in sorted(entries, key=lambda e: e[0]))
            return self._write_object(path, "tree", body)

        return write(root)

    def _write_initial_commit(self, path: Path, branch: str, files: Mapping[str, str | bytes], message: str,
                              author: tuple[str, str]) -> str:
        """The first commit of `branch` in a bare repository without one (a copy of `_bare_template`), written
        without git; HEAD names `branch`. Returns the commit's SHA."""
        tree = self._write_tree(path, files)
        stamp = f"{int(time.time())} +0000"
        person = f"{author[0]} <{author[1]}> {stamp}"
        sha = self._write_object(path, "commit", f"tree {tree}\nauthor {person}\ncommitter {person}\n\n{message}\n"
                                 .encode())
        ref = path / "refs" / "heads" / branch
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(sha + "\n")
        (path / "HEAD").write_text(f"ref: refs/heads/{branch}\n")
        return sha

    @staticmethod
    def _copy_bare(template: Path, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(template, path)

    def _hunk(self, repo: _Repo, pull: dict[str, Any], path: str, line: int) -> str:
        """The diff hunk GitHub shows above a review comment: its hunk, cut after the commented line."""
        diff = self._git(repo, "diff", f"{pull['base_sha']}...{pull['head_sha']}", "--", path,
                         check=False).stdout.decode()
        hunk: list[str] = []
        new_line = 0
        for text in diff.splitlines():
            header = re.match(r"@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@", text)
            if header:
                hunk, new_line = [text], int(header.group(1)) - 1
            elif hunk:
                hunk.append(text)
                if not text.startswith("-"):
                    new_line += 1
                if new_line == line and not text.startswith("-"):
                    return "\n".join(hunk)
        return f"@@ -{line},1 +{line},1 @@"

    # ----------------------------------------------------------------------------------------- inspection

    def branches(self, repo: str) -> dict[str, str]:
        r = self._repo(repo)
        out = self._out(r, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads/")
        return {ref.removeprefix("refs/heads/"): sha for ref, sha in (line.split() for line in out.splitlines())}

    def log(self, repo: str, ref: str) -> list[dict[str, str]]:
        """Commits reachable from `ref`, newest first."""
        r = self._repo(repo)
        out = self._git(r, "log", "--format=%H%x00%an%x00%ae%x00%cn%x00%ce%x00%B%x1e", ref, "--").stdout.decode()
        keys = ("sha", "author_name", "author_email", "committer_name", "committer_email", "message")
        return [dict(zip(keys, entry.strip("\n").split("\0"), strict=True))
                for entry in out.split("\x1e") if entry.strip()]

    def file_at(self, repo: str, ref: str, path: str) -> str | None:
        r = self._repo(repo)
        proc = self._git(r, "show", f"{ref}:{path}", check=False)
        return proc.stdout.decode() if proc.returncode == 0 else None

    def diff(self, repo: str, base: str, head: str) -> str:
        """What a pull request from `head` into `base` shows: `git diff base...head`."""
        return self._git(self._repo(repo), "diff", f"{base}...{head}", "--").stdout.decode()

    # ----------------------------------------------------------------------------------------- smart HTTP

    async def _http_backend(self, request: Request, repo: _Repo, path_info: str) -> Response:
        """Answer a smart-HTTP request (already authorized for `repo`) with `git http-backend`."""
        body = await request.body()
        encoding = request.headers.get("content-encoding", "")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        env = self._git_env({"GIT_PROJECT_ROOT": str(self._root), "GIT_HTTP_EXPORT_ALL": "1",
                             "PATH_INFO": f"/{repo.owner}/{repo.name}.git/{path_info}",
                             "QUERY_STRING": request.url.query, "REQUEST_METHOD": request.method,
                             "CONTENT_TYPE": request.headers.get("content-type", ""),
                             "CONTENT_LENGTH": str(len(body)), "REMOTE_USER": "x-access-token",
                             "REMOTE_ADDR": "127.0.0.1", "GIT_HTTP_MAX_REQUEST_BUFFER": "100M"})
        if "git-protocol" in request.headers:
            env["HTTP_GIT_PROTOCOL"] = request.headers["git-protocol"]
        pushing = path_info == "git-receive-pack"
        before = self.branches(repo.full_name) if pushing else {}
        proc = await asyncio.to_thread(subprocess.run, ["git", "http-backend"], input=body, env=env,
                                       capture_output=True, check=False)
        if pushing:
            self._record_pushes(repo, before)
        return _cgi_response(proc)

    def _record_pushes(self, repo: _Repo, before: dict[str, str]) -> None:
        after = self.branches(repo.full_name)
        for branch in sorted(set(before) | set(after)):
            old, new = before.get(branch, ZERO), after.get(branch, ZERO)
            if old == new:
                continue
            forced = old != ZERO and new != ZERO and self._git(
                repo, "merge-base", "--is-ancestor", old, new, check=False).returncode != 0
            self.pushes.append(Push(repo.full_name, f"refs/heads/{branch}", old, new, forced))
