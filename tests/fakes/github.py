"""A local GitHub for tests: the REST, GraphQL and git endpoints Honk uses, with GitHub's shapes and auth.

It checks what real GitHub checks: `/app/...` routes need an App JWT signed with the App's key, repository
routes need an unexpired installation token it issued, and git over HTTP (served by the real
`git http-backend`) needs Basic auth as `x-access-token:<token>`. Tests script it through plain attributes:
`permissions` (login -> role), `delays` (route name -> seconds), `failures` (route name -> statuses to
answer next, or `PRIMARY_RATE_LIMIT`), and read `requests`, `pushes` and `deliveries` afterwards. Repositories,
issues, comments and reviews are created with methods (`create_repo`, `create_issue`, `add_review`, ...), and
webhooks go out with `deliver` to the target set by `webhook_target`. GitHub's App manifest flow works too: a
form posted to `/settings/apps/new` (or an organization's) redirects at once to the manifest's `redirect_url`
with a code (`manifest_codes`, which tests may also fill directly), and `POST /app-manifests/{code}/conversions`
turns it into this fake's App, new secrets included (`registered_apps`), aiming `deliver` at its webhook URL.

Serve it with `tests.support.live_server(fake.app)` (or `fake.serve()`, which also sets `base_url`).
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import hmac
import json
import os
import re
import secrets
import subprocess
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

# GitHub's legacy `permission` field for each role.
_LEGACY = {"admin": "admin", "maintain": "write", "write": "write", "triage": "read", "read": "read"}
_REACTIONS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes")
_REVIEW_STATES = {"APPROVED": "APPROVED", "APPROVE": "APPROVED", "CHANGES_REQUESTED": "CHANGES_REQUESTED",
                  "REQUEST_CHANGES": "CHANGES_REQUESTED", "COMMENTED": "COMMENTED", "COMMENT": "COMMENTED",
                  "DISMISSED": "DISMISSED", "PENDING": "PENDING"}
_DOCS = "https://docs.github.com/rest"
_ZERO = "0" * 40
#: Put this in `failures[route]` for GitHub's primary rate-limit answer (403, `x-ratelimit-remaining: 0`).
PRIMARY_RATE_LIMIT = "primary_rate_limit"
OCTOCAT = ("Octo Cat", "octocat@github.com")


def _iso(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _node_id(kind: str, number: int) -> str:
    return base64.b64encode(f"0{len(kind)}:{kind}{number}".encode()).decode().rstrip("=")


def _error(status: int, message: str, **extra: Any) -> HTTPException:
    return HTTPException(status, {"message": message, **extra})


def _not_found() -> HTTPException:
    return _error(404, "Not Found")


def _invalid(resource: str, field_name: str | None = None, code: str = "invalid",
             message: str | None = None) -> HTTPException:
    error: dict[str, Any] = {"resource": resource, "code": code}
    if field_name:
        error["field"] = field_name
    if message:
        error["message"] = message
    return _error(422, "Validation Failed", errors=[error])


def _split_person(person: str | tuple[str, str]) -> tuple[str, str]:
    if isinstance(person, tuple):
        return person
    match = re.fullmatch(r"\s*(.*?)\s*<([^>]*)>\s*", person)
    if not match:
        raise ValueError(f"expected 'Name <email>', got {person!r}")
    return match.group(1), match.group(2)


@dataclass
class Recorded:
    method: str
    path: str
    route: str
    auth: str
    json: Any = None  # the request's JSON body, when it had one


@dataclass
class Push:
    """One ref a `git push` changed; `forced` when the old commit is not an ancestor of the new one."""

    repo: str
    ref: str
    old: str
    new: str
    forced: bool


@dataclass
class Delivery:
    id: str
    event: str
    payload: dict[str, Any]
    status: int | None = None


@dataclass
class _Repo:
    id: int
    owner: str
    name: str
    path: Path
    default_branch: str
    private: bool
    installation_id: int
    description: str | None
    created_at: str
    next_number: int = 1
    labels: dict[str, dict[str, Any]] = field(default_factory=dict)
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass
class FakeGitHub:
    app_id: int
    private_key_pem: str = field(repr=False)
    slug: str = "honk-test"
    permissions: dict[str, str] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    failures: dict[str, list[int | str]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    tokens: dict[str, int] = field(default_factory=dict)  # installation token -> installation id
    root: Path | None = None  # where bare repositories live; a temporary directory (removed by close()) if None
    token_lifetime: timedelta = timedelta(hours=1)
    installation_id: int = 42  # the installation new repositories belong to
    app_owner: str = "acme"  # the organization that owns the App
    base_url: str = ""  # how tests reach the fake; set by serve() or by the first request
    rate_limit: int = 5000
    token_expiry: dict[str, datetime] = field(default_factory=dict)
    pushes: list[Push] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    manifest_codes: dict[str, dict[str, Any]] = field(default_factory=dict)  # manifest-flow code -> manifest
    registered_apps: list[dict[str, Any]] = field(default_factory=list)  # conversion answers, secrets included

    def __post_init__(self) -> None:
        key = serialization.load_pem_private_key(self.private_key_pem.encode(), password=None)
        self._public_key = key.public_key()
        self._lock = threading.RLock()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._repos: dict[str, _Repo] = {}
        self._users: dict[str, tuple[int, str]] = {}
        self._next = 1000
        self._comments: dict[int, dict[str, Any]] = {}
        self._reactions: list[dict[str, Any]] = []
        self._reviews: dict[int, dict[str, Any]] = {}
        self._review_comments: dict[int, dict[str, Any]] = {}
        self._threads: dict[str, dict[str, Any]] = {}
        self._rate_used: dict[str, int] = {}
        self._rate_reset = int(time.time()) + 3600
        self._hook: tuple[str, str] | None = None
        self._hook_id = 400000 + self.app_id
        self._register(self.bot_login, "Bot")
        self._register(self.app_owner, "Organization")
        self.app = self._build()

    # ----------------------------------------------------------------------------------------- lifecycle

    def calls(self, route: str) -> list[Recorded]:
        """The recorded requests that hit one route (by its failure-injection name)."""
        return [r for r in self.requests if r.route == route]

    @property
    def bot_login(self) -> str:
        return f"{self.slug}[bot]"

    @property
    def bot_email(self) -> str:
        """The noreply address GitHub attributes to the App's bot in commits."""
        return f"{self._register(self.bot_login, 'Bot')}+{self.bot_login}@users.noreply.github.com"

    @contextmanager
    def serve(self) -> Iterator[str]:
        """Serve on loopback (see `tests.support.live_server`) and yield the base URL."""
        from tests.support import live_server

        with live_server(self.app) as url:
            self.base_url = url
            yield url

    def close(self) -> None:
        """Remove the temporary directory holding the repositories (when the fake made it)."""
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> FakeGitHub:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def expire_tokens(self) -> None:
        """Make every installation token issued so far expire now."""
        with self._lock:
            for token in self.tokens:
                self.token_expiry[token] = datetime.now(UTC) - timedelta(seconds=1)

    def register_user(self, login: str, type: str = "User") -> int:
        """Make a user known with a type (`User`, `Bot`, `Organization`); returns its id."""
        with self._lock:
            uid = self._users.get(login, (0, ""))[0] or self._new_id()
            self._users[login] = (uid, type)
            return uid

    # ----------------------------------------------------------------------------------------- git

    @property
    def _root(self) -> Path:
        if self.root is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="fake-github-")
            self.root = Path(self._tmp.name)
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root

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
                    lines.append(f"0 {_ZERO}\t{path}")
                    continue
                data = content.encode() if isinstance(content, str) else content
                sha = self._out(repo, "hash-object", "-w", "--stdin", input=data, env=env)
                lines.append(f"100644 {sha}\t{path}")
            if lines:
                self._git(repo, "update-index", "--index-info", input="\n".join(lines).encode() + b"\n", env=env)
            tree = self._out(repo, "write-tree", env=env)
            args = ["commit-tree", tree, *(["-p", parent] if parent else []), "-F", "-"]
            sha = self._out(repo, *args, input=message.encode(), env=env)
        self._git(repo, "update-ref", f"refs/heads/{branch}", sha, parent or _ZERO)
        return sha

    # ----------------------------------------------------------------------------------------- scripting

    def create_repo(self, full_name: str, files: Mapping[str, str | bytes] | None = None,
                    default_branch: str = "main", private: bool = False, *, description: str | None = None,
                    installation_id: int | None = None) -> Path:
        """A bare repository with one commit of `files` on `default_branch`; returns its path on disk."""
        owner, name = full_name.split("/")
        with self._lock:
            if full_name.lower() in self._repos:
                raise ValueError(f"{full_name} exists")
            path = self._root / owner / f"{name}.git"
            path.mkdir(parents=True)
            if owner not in self._users:
                self.register_user(owner, "Organization")
            repo = _Repo(self._new_id(), owner, name, path, default_branch, private,
                         installation_id or self.installation_id, description, _iso())
            self._git(repo, "init", "--bare", "--quiet", f"--initial-branch={default_branch}")
            self._git(repo, "config", "http.receivepack", "true")
            self._commit(repo, default_branch, files or {"README.md": f"# {name}\n"}, "Initial commit",
                         OCTOCAT, OCTOCAT)
            self._repos[full_name.lower()] = repo
        return path

    def commit_files(self, repo: str, branch: str, files: Mapping[str, str | bytes | None], message: str,
                     author: str | tuple[str, str] = "Octo Cat <octocat@github.com>") -> str:
        """A human's commit on `branch` (made from the default branch if new); None deletes a file."""
        r = self._repo(repo)
        with self._lock:
            if self._branch_sha(r, branch) is None:
                base = self._branch_sha(r, r.default_branch)
                self._git(r, "update-ref", f"refs/heads/{branch}", base or _ZERO)
            person = _split_person(author)
            return self._commit(r, branch, files, message, person, person)

    def create_issue(self, repo: str, title: str, body: str | None = "", user: str = "alice",
                     labels: list[str] | None = None) -> int:
        """An open issue; returns its number (shared with pull requests, as on GitHub)."""
        r = self._repo(repo)
        with self._lock:
            number = self._new_number(r)
            now = _iso()
            r.issues[number] = {"number": number, "id": self._new_id(), "title": title, "body": body,
                                "user": user, "labels": [], "state": "open", "state_reason": None,
                                "created_at": now, "updated_at": now, "closed_at": None, "pull": False,
                                "via_app": False}
            for label in labels or []:
                self._add_label(r, number, label)
            return number

    def add_label(self, repo: str, number: int, label: str) -> dict[str, Any]:
        """Put a label on an issue or pull request (creating the label); returns the label."""
        r = self._repo(repo)
        with self._lock:
            return self._add_label(r, number, label)

    def add_comment(self, repo: str, number: int, body: str, user: str = "alice") -> int:
        """A comment on an issue or pull request; returns its id."""
        r = self._repo(repo)
        with self._lock:
            if number not in r.issues:
                raise KeyError(f"{repo}#{number} does not exist")
            return self._new_comment(r, number, body, user, via_app=False)["id"]

    def add_review(self, repo: str, pr: int, user: str, state: str = "COMMENTED", body: str = "",
                   comments: list[dict[str, Any]] | None = None) -> int:
        """A submitted review on a pull request with line comments `{path, line, body}` (or
        `{in_reply_to, body}` to answer a thread); returns the review id."""
        r = self._repo(repo)
        with self._lock:
            pull = r.pulls.get(pr)
            if pull is None:
                raise KeyError(f"{repo}#{pr} is not a pull request")
            self._refresh_head(r, pull)
            review = self._new_review(r, pr, user, _REVIEW_STATES[state.upper()], body, pull["head_sha"])
            for comment in comments or []:
                if comment.get("in_reply_to"):
                    self._new_review_comment(r, pr, review["id"], user, comment["body"],
                                             in_reply_to=int(comment["in_reply_to"]))
                else:
                    self._new_review_comment(r, pr, review["id"], user, comment["body"], path=comment["path"],
                                             line=int(comment["line"]))
            return review["id"]

    def open_pull(self, repo: str, head: str, base: str, title: str, user: str = "alice", body: str = "") -> int:
        """Open a pull request from `head` as a person (scripting, no API call); returns its number."""
        r = self._repo(repo)
        with self._lock:
            head_sha, base_sha = self._branch_sha(r, head), self._branch_sha(r, base)
            if head_sha is None or base_sha is None:
                raise ValueError(f"no branch {head!r} or {base!r} in {repo}")
            number, now = self._new_number(r), _iso()
            r.issues[number] = {"number": number, "id": self._new_id(), "title": title, "body": body, "user": user,
                                "labels": [], "state": "open", "state_reason": None, "created_at": now,
                                "updated_at": now, "closed_at": None, "pull": True, "via_app": False}
            r.pulls[number] = {"number": number, "id": self._new_id(), "head": head, "base": base,
                               "head_sha": head_sha, "base_sha": base_sha, "draft": False, "merged_at": None,
                               "reviewers": [], "state": "open"}
            return number

    def set_pull_state(self, repo: str, number: int, state: str) -> None:
        """Close (`closed`), reopen (`open`) or merge (`merged`, no merge commit is made) a pull request."""
        r = self._repo(repo)
        with self._lock:
            pull, issue, now = r.pulls[number], r.issues[number], _iso()
            pull["state"] = issue["state"] = "open" if state == "open" else "closed"
            pull["closed_at"] = issue["closed_at"] = None if state == "open" else now
            pull["merged_at"] = now if state == "merged" else None
            pull["updated_at"] = issue["updated_at"] = now

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

    def issue(self, repo: str, number: int) -> dict[str, Any]:
        """The issue (or pull request) as `GET /repos/{repo}/issues/{number}` answers."""
        r = self._repo(repo)
        with self._lock:
            return self._issue_json(self.base_url, r, r.issues[number])

    def pulls(self, repo: str) -> list[dict[str, Any]]:
        """Every pull request, oldest first, as `GET /repos/{repo}/pulls/{number}` answers."""
        r = self._repo(repo)
        with self._lock:
            return [self._pull_json(self.base_url, r, pull) for _, pull in sorted(r.pulls.items())]

    def comments(self, repo: str, number: int) -> list[dict[str, Any]]:
        r = self._repo(repo)
        with self._lock:
            return [self._comment_json(self.base_url, r, c) for c in self._comments.values()
                    if c["repo"] == r.full_name and c["number"] == number]

    def reactions(self, repo: str, number: int | None = None, *, comment_id: int | None = None,
                  review_comment_id: int | None = None) -> list[dict[str, Any]]:
        """Reactions on an issue/pull request, an issue comment, or a review comment."""
        subject = self._subject(self._repo(repo), number, comment_id, review_comment_id)
        with self._lock:
            return [self._reaction_json(self.base_url, x) for x in self._reactions if x["subject"] == subject]

    def review_comments(self, repo: str, pr: int) -> list[dict[str, Any]]:
        r = self._repo(repo)
        with self._lock:
            return [self._review_comment_json(self.base_url, r, c) for c in self._review_comments.values()
                    if c["repo"] == r.full_name and c["pr"] == pr]

    def review_threads(self, repo: str, pr: int) -> list[dict[str, Any]]:
        """Threads as the GraphQL `reviewThreads` query answers them."""
        r = self._repo(repo)
        with self._lock:
            return [self._thread_json(self.base_url, t) for t in self._threads.values()
                    if t["repo"] == r.full_name and t["pr"] == pr]

    # ----------------------------------------------------------------------------------------- webhooks

    def webhook_target(self, url: str, secret: str) -> None:
        """Where `deliver` posts (the App's webhook URL) and the secret it signs with."""
        self._hook = (url, secret)

    def deliver(self, event: str, payload: Mapping[str, Any], *, delivery: str | None = None,
                timeout: float = 10) -> httpx.Response:
        """POST a signed delivery like GitHub (which gives up after 10 s); `delivery` reuses an id, as GitHub's
        redelivery does."""
        if self._hook is None:
            raise RuntimeError("call webhook_target(url, secret) first")
        url, secret = self._hook
        body = json.dumps(payload).encode()
        record = Delivery(delivery or str(uuid.uuid4()), event, dict(payload))
        headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": record.id, "X-GitHub-Hook-ID": str(self._hook_id),
                   "X-GitHub-Hook-Installation-Target-ID": str(self.app_id),
                   "X-GitHub-Hook-Installation-Target-Type": "integration",
                   "X-Hub-Signature": "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest(),
                   "X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
                   "User-Agent": "GitHub-Hookshot/fake", "Content-Type": "application/json", "Accept": "*/*"}
        response = httpx.post(url, content=body, headers=headers, timeout=timeout)
        record.status = response.status_code
        self.deliveries.append(record)
        return response

    def redeliver(self, delivery_id: str) -> httpx.Response:
        """Send an earlier delivery again, same id and payload."""
        earlier = next(d for d in self.deliveries if d.id == delivery_id)
        return self.deliver(earlier.event, earlier.payload, delivery=earlier.id)

    def issues_labeled(self, repo: str, number: int, label: str, sender: str) -> dict[str, Any]:
        """Label the issue as `sender` and return the `issues.labeled` payload GitHub would send."""
        r = self._repo(repo)
        with self._lock:
            label_obj = self._add_label(r, number, label)
            b = self.base_url
            return {"action": "labeled", "issue": self._issue_json(b, r, r.issues[number]),
                    "label": label_obj, **self._envelope(b, r, sender)}

    def issue_comment_created(self, repo: str, number: int, body: str, sender: str) -> dict[str, Any]:
        """Comment as `sender` and return the `issue_comment.created` payload GitHub would send."""
        r = self._repo(repo)
        with self._lock:
            comment = self._new_comment(r, number, body, sender, via_app=sender == self.bot_login)
            b = self.base_url
            return {"action": "created", "issue": self._issue_json(b, r, r.issues[number]),
                    "comment": self._comment_json(b, r, comment), **self._envelope(b, r, sender)}

    def pull_request_review_submitted(self, repo: str, pr: int, review_id: int) -> dict[str, Any]:
        """The `pull_request_review.submitted` payload for a review made with `add_review`."""
        r = self._repo(repo)
        with self._lock:
            b, review = self.base_url, self._reviews[review_id]
            shaped = self._review_json(b, r, review)
            shaped["state"] = shaped["state"].lower()  # webhooks spell review states in lower case
            return {"action": "submitted", "review": shaped,
                    "pull_request": self._pull_json(b, r, r.pulls[pr], simple=True),
                    **self._envelope(b, r, review["user"])}

    def pull_request_review_comment_created(self, repo: str, pr: int, comment_id: int) -> dict[str, Any]:
        """The `pull_request_review_comment.created` payload for a review comment."""
        r = self._repo(repo)
        with self._lock:
            b, comment = self.base_url, self._review_comments[comment_id]
            return {"action": "created", "comment": self._review_comment_json(b, r, comment),
                    "pull_request": self._pull_json(b, r, r.pulls[pr], simple=True),
                    **self._envelope(b, r, comment["user"])}

    def _envelope(self, b: str, repo: _Repo, sender: str) -> dict[str, Any]:
        if not b:
            raise RuntimeError("set fake.base_url (fake.serve() does) so payload URLs point at the fake")
        envelope: dict[str, Any] = {"repository": self._repo_json(b, repo, complete=False),
                                    "sender": self._user(b, sender),
                                    "installation": {"id": repo.installation_id,
                                                     "node_id": _node_id("Integration::Installation",
                                                                         repo.installation_id)}}
        if self._users[repo.owner][1] == "Organization":
            envelope["organization"] = self._org_json(b, repo.owner)
        return envelope

    # ----------------------------------------------------------------------------------------- state

    def _new_id(self) -> int:
        with self._lock:
            self._next += 1
            return self._next

    def _new_number(self, repo: _Repo) -> int:
        number, repo.next_number = repo.next_number, repo.next_number + 1
        return number

    def _register(self, login: str, kind: str | None = None) -> int:
        with self._lock:
            if login not in self._users:
                self._users[login] = (self._new_id(), kind or ("Bot" if login.endswith("[bot]") else "User"))
            return self._users[login][0]

    def _repo(self, full_name: str) -> _Repo:
        repo = self._repos.get(full_name.lower())
        if repo is None:
            raise KeyError(f"no repository {full_name}; create_repo() it first")
        return repo

    def _add_label(self, repo: _Repo, number: int, name: str) -> dict[str, Any]:
        label = repo.labels.get(name.lower())
        if label is None:
            lid = self._new_id()
            label = {"id": lid, "node_id": _node_id("Label", lid), "url": "", "name": name, "description": None,
                     "color": "ededed", "default": False}
            repo.labels[name.lower()] = label
        issue = repo.issues[number]
        if label["name"] not in issue["labels"]:
            issue["labels"].append(label["name"])
            issue["updated_at"] = _iso()
        return {**label, "url": f"{self.base_url}/repos/{repo.full_name}/labels/{quote(label['name'])}"}

    def _new_comment(self, repo: _Repo, number: int, body: str, user: str, *, via_app: bool) -> dict[str, Any]:
        now, cid = _iso(), self._new_id()
        comment = {"id": cid, "repo": repo.full_name, "number": number, "body": body, "user": user,
                   "created_at": now, "updated_at": now, "via_app": via_app}
        self._comments[cid] = comment
        repo.issues[number]["updated_at"] = now
        return comment

    def _new_review(self, repo: _Repo, pr: int, user: str, state: str, body: str, commit: str) -> dict[str, Any]:
        rid = self._new_id()
        review = {"id": rid, "repo": repo.full_name, "pr": pr, "user": user, "state": state, "body": body,
                  "commit_id": commit, "submitted_at": _iso()}
        self._reviews[rid] = review
        return review

    def _new_review_comment(self, repo: _Repo, pr: int, review_id: int, user: str, body: str, *,
                            path: str | None = None, line: int | None = None,
                            in_reply_to: int | None = None) -> dict[str, Any]:
        pull = repo.pulls[pr]
        cid, now = self._new_id(), _iso()
        if in_reply_to is not None:
            parent = self._review_comments[in_reply_to]
            root = parent["in_reply_to_id"] or parent["id"]
            path, line, thread = parent["path"], parent["line"], parent["thread"]
        else:
            root, thread = None, f"PRRT_kwDO{cid}"
            self._threads[thread] = {"id": thread, "repo": repo.full_name, "pr": pr, "resolved": False,
                                     "comments": [], "path": path, "line": line}
        comment = {"id": cid, "repo": repo.full_name, "pr": pr, "review_id": review_id, "user": user, "body": body,
                   "path": path, "line": line, "in_reply_to_id": root, "thread": thread,
                   "commit_id": pull["head_sha"], "diff_hunk": self._hunk(repo, pull, path or "", line or 1),
                   "created_at": now, "updated_at": now}
        self._review_comments[cid] = comment
        self._threads[thread]["comments"].append(cid)
        return comment

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

    def _subject(self, repo: _Repo, number: int | None, comment_id: int | None,
                 review_comment_id: int | None) -> tuple[str, str, int]:
        if comment_id is not None:
            return ("comment", repo.full_name, comment_id)
        if review_comment_id is not None:
            return ("review_comment", repo.full_name, review_comment_id)
        if number is None:
            raise ValueError("name an issue number, comment_id or review_comment_id")
        return ("issue", repo.full_name, number)

    def _refresh_head(self, repo: _Repo, pull: dict[str, Any]) -> None:
        """Pull requests follow their branches, as on GitHub (a deleted branch keeps the last head)."""
        sha = self._branch_sha(repo, pull["head"])
        if sha:
            pull["head_sha"] = sha
        if pull["state"] == "open":
            pull["base_sha"] = self._branch_sha(repo, pull["base"]) or pull["base_sha"]

    # ----------------------------------------------------------------------------------------- JSON shapes

    def _user(self, b: str, login: str) -> dict[str, Any]:
        uid = self._register(login)
        kind = self._users[login][1]
        api = f"{b}/users/{quote(login)}"
        html = f"{b}/apps/{login.removesuffix('[bot]')}" if kind == "Bot" else f"{b}/{login}"
        return {"login": login, "id": uid, "node_id": _node_id(kind, uid),
                "avatar_url": f"{b}/avatars/u/{uid}?v=4", "gravatar_id": "", "url": api, "html_url": html,
                "followers_url": f"{api}/followers", "following_url": f"{api}/following{{/other_user}}",
                "gists_url": f"{api}/gists{{/gist_id}}", "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
                "subscriptions_url": f"{api}/subscriptions", "organizations_url": f"{api}/orgs",
                "repos_url": f"{api}/repos", "events_url": f"{api}/events{{/privacy}}",
                "received_events_url": f"{api}/received_events", "type": kind, "user_view_type": "public",
                "site_admin": False}

    def _org_json(self, b: str, login: str) -> dict[str, Any]:
        uid, api = self._register(login), f"{b}/orgs/{login}"
        return {"login": login, "id": uid, "node_id": _node_id("Organization", uid), "url": api,
                "repos_url": f"{api}/repos", "events_url": f"{api}/events", "hooks_url": f"{api}/hooks",
                "issues_url": f"{api}/issues", "members_url": f"{api}/members{{/member}}",
                "public_members_url": f"{api}/public_members{{/member}}",
                "avatar_url": f"{b}/avatars/u/{uid}?v=4", "description": None}

    def _app_json(self, b: str) -> dict[str, Any]:
        return {"id": self.app_id, "client_id": f"Iv1.{self.app_id:016x}", "slug": self.slug,
                "node_id": _node_id("Integration", self.app_id), "name": "Honk (test)",
                "owner": self._user(b, self.app_owner),
                "description": "", "external_url": "http://127.0.0.1", "html_url": f"{b}/apps/{self.slug}",
                "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
                "permissions": {"contents": "write", "issues": "write", "pull_requests": "write",
                                "metadata": "read"},
                "events": ["issues", "issue_comment", "pull_request_review", "pull_request_review_comment"]}

    def _association(self, repo: _Repo, login: str) -> str:
        if login == repo.owner:
            return "OWNER"
        role = self.permissions.get(login)
        if role in ("admin", "maintain", "write", "triage", "read"):
            return "MEMBER" if self._users[repo.owner][1] == "Organization" else "COLLABORATOR"
        return "NONE"

    def _repo_json(self, b: str, repo: _Repo, *, complete: bool = True) -> dict[str, Any]:
        """`GET /repos/{owner}/{repo}` when `complete`, else the thinner copy in pull requests and webhooks."""
        full = repo.full_name
        api, html, host = f"{b}/repos/{full}", f"{b}/{full}", b.split("://", 1)[-1]
        pushed = self._out(repo, "log", "-1", "--all", "--format=%cI") or repo.created_at
        pushed = _iso(datetime.fromisoformat(pushed).astimezone(UTC))
        open_issues = sum(1 for i in repo.issues.values() if i["state"] == "open")
        data: dict[str, Any] = {
            "id": repo.id, "node_id": _node_id("Repository", repo.id), "name": repo.name, "full_name": full,
            "private": repo.private, "owner": self._user(b, repo.owner), "html_url": html,
            "description": repo.description, "fork": False, "url": api,
            "archive_url": f"{api}/{{archive_format}}{{/ref}}", "assignees_url": f"{api}/assignees{{/user}}",
            "blobs_url": f"{api}/git/blobs{{/sha}}", "branches_url": f"{api}/branches{{/branch}}",
            "collaborators_url": f"{api}/collaborators{{/collaborator}}", "comments_url": f"{api}/comments{{/number}}",
            "commits_url": f"{api}/commits{{/sha}}", "compare_url": f"{api}/compare/{{base}}...{{head}}",
            "contents_url": f"{api}/contents/{{+path}}", "contributors_url": f"{api}/contributors",
            "deployments_url": f"{api}/deployments", "downloads_url": f"{api}/downloads",
            "events_url": f"{api}/events", "forks_url": f"{api}/forks", "git_commits_url": f"{api}/git/commits{{/sha}}",
            "git_refs_url": f"{api}/git/refs{{/sha}}", "git_tags_url": f"{api}/git/tags{{/sha}}",
            "git_url": f"git://{host}/{full}.git", "issue_comment_url": f"{api}/issues/comments{{/number}}",
            "issue_events_url": f"{api}/issues/events{{/number}}", "issues_url": f"{api}/issues{{/number}}",
            "keys_url": f"{api}/keys{{/key_id}}", "labels_url": f"{api}/labels{{/name}}",
            "languages_url": f"{api}/languages", "merges_url": f"{api}/merges",
            "milestones_url": f"{api}/milestones{{/number}}",
            "notifications_url": f"{api}/notifications{{?since,all,participating}}",
            "pulls_url": f"{api}/pulls{{/number}}", "releases_url": f"{api}/releases{{/id}}",
            "ssh_url": f"git@{host.split(':')[0]}:{full}.git", "stargazers_url": f"{api}/stargazers",
            "statuses_url": f"{api}/statuses/{{sha}}", "subscribers_url": f"{api}/subscribers",
            "subscription_url": f"{api}/subscription", "tags_url": f"{api}/tags", "teams_url": f"{api}/teams",
            "trees_url": f"{api}/git/trees{{/sha}}", "clone_url": f"{b}/{full}.git", "mirror_url": None,
            "hooks_url": f"{api}/hooks", "svn_url": html, "homepage": None, "language": None, "forks_count": 0,
            "stargazers_count": 0, "watchers_count": 0, "size": 1, "default_branch": repo.default_branch,
            "open_issues_count": open_issues, "is_template": False, "topics": [], "has_issues": True,
            "has_projects": True, "has_wiki": True, "has_pages": False, "has_downloads": True,
            "has_discussions": False, "archived": False, "disabled": False,
            "visibility": "private" if repo.private else "public", "pushed_at": pushed,
            "created_at": repo.created_at, "updated_at": pushed, "allow_forking": True,
            "web_commit_signoff_required": False, "license": None, "forks": 0, "open_issues": open_issues,
            "watchers": 0, "custom_properties": {},
        }
        if complete:
            data.update({"permissions": {"admin": False, "maintain": False, "push": True, "triage": True,
                                         "pull": True},
                         "temp_clone_token": "", "allow_squash_merge": True, "allow_merge_commit": True,
                         "allow_rebase_merge": True, "allow_auto_merge": False, "delete_branch_on_merge": False,
                         "allow_update_branch": False, "use_squash_pr_title_as_default": False,
                         "squash_merge_commit_message": "COMMIT_MESSAGES",
                         "squash_merge_commit_title": "COMMIT_OR_PR_TITLE",
                         "merge_commit_message": "PR_TITLE", "merge_commit_title": "MERGE_MESSAGE",
                         "subscribers_count": 0, "network_count": 0})
            if self._users[repo.owner][1] == "Organization":
                data["organization"] = self._user(b, repo.owner)
        return data

    def _rollup(self, url: str, subject: tuple[str, str, int]) -> dict[str, Any]:
        counts = dict.fromkeys(_REACTIONS, 0)
        for reaction in self._reactions:
            if reaction["subject"] == subject:
                counts[reaction["content"]] += 1
        return {"url": url, "total_count": sum(counts.values()), **counts}

    def _label_json(self, b: str, repo: _Repo, name: str) -> dict[str, Any]:
        label = repo.labels[name.lower()]
        return {**label, "url": f"{b}/repos/{repo.full_name}/labels/{quote(name)}"}

    def _issue_json(self, b: str, repo: _Repo, issue: dict[str, Any]) -> dict[str, Any]:
        n, api, html = issue["number"], f"{b}/repos/{repo.full_name}", f"{b}/{repo.full_name}"
        url = f"{api}/issues/{n}"
        comments = sum(1 for c in self._comments.values() if c["repo"] == repo.full_name and c["number"] == n)
        data: dict[str, Any] = {
            "url": url, "repository_url": api, "labels_url": f"{url}/labels{{/name}}",
            "comments_url": f"{url}/comments", "events_url": f"{url}/events",
            "html_url": f"{html}/{'pull' if issue['pull'] else 'issues'}/{n}", "id": issue["id"],
            "node_id": _node_id("PullRequest" if issue["pull"] else "Issue", issue["id"]), "number": n,
            "title": issue["title"], "user": self._user(b, issue["user"]),
            "labels": [self._label_json(b, repo, name) for name in issue["labels"]], "state": issue["state"],
            "locked": False, "assignee": None, "assignees": [], "milestone": None, "comments": comments,
            "created_at": issue["created_at"], "updated_at": issue["updated_at"], "closed_at": issue["closed_at"],
            "author_association": self._association(repo, issue["user"]), "type": None,
            "active_lock_reason": None, "sub_issues_summary": {"total": 0, "completed": 0, "percent_completed": 0},
            "body": issue["body"], "closed_by": None, "timeline_url": f"{url}/timeline",
            "reactions": self._rollup(f"{url}/reactions", ("issue", repo.full_name, n)),
            "performed_via_github_app": self._app_json(b) if issue["via_app"] else None,
            "state_reason": issue["state_reason"],
        }
        if issue["pull"]:
            pull = repo.pulls[n]
            data["draft"] = pull["draft"]
            data["pull_request"] = {"url": f"{api}/pulls/{n}", "html_url": f"{html}/pull/{n}",
                                    "diff_url": f"{html}/pull/{n}.diff", "patch_url": f"{html}/pull/{n}.patch",
                                    "merged_at": pull["merged_at"]}
        return data

    def _comment_json(self, b: str, repo: _Repo, comment: dict[str, Any]) -> dict[str, Any]:
        api, n = f"{b}/repos/{repo.full_name}", comment["number"]
        kind = "pull" if repo.issues[n]["pull"] else "issues"
        url = f"{api}/issues/comments/{comment['id']}"
        return {"url": url, "html_url": f"{b}/{repo.full_name}/{kind}/{n}#issuecomment-{comment['id']}",
                "issue_url": f"{api}/issues/{n}", "id": comment["id"],
                "node_id": _node_id("IssueComment", comment["id"]), "user": self._user(b, comment["user"]),
                "created_at": comment["created_at"], "updated_at": comment["updated_at"],
                "author_association": self._association(repo, comment["user"]), "body": comment["body"],
                "reactions": self._rollup(f"{url}/reactions", ("comment", repo.full_name, comment["id"])),
                "performed_via_github_app": self._app_json(b) if comment["via_app"] else None}

    def _reaction_json(self, b: str, reaction: dict[str, Any]) -> dict[str, Any]:
        return {"id": reaction["id"], "node_id": _node_id("Reaction", reaction["id"]),
                "user": self._user(b, reaction["user"]), "content": reaction["content"],
                "created_at": reaction["created_at"]}

    def _commit_json(self, b: str, repo: _Repo, sha: str) -> dict[str, Any]:
        fields = self._out(repo, "show", "-s", "--format=%H%x00%T%x00%P%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI"
                           "%x00%B", sha).split("\0")
        sha, tree, parents, an, ae, ad, cn, ce, cd, message = fields
        api, html = f"{b}/repos/{repo.full_name}", f"{b}/{repo.full_name}"

        def when(stamp: str) -> str:
            return _iso(datetime.fromisoformat(stamp).astimezone(UTC))

        def account(email: str) -> dict[str, Any] | None:
            match = re.fullmatch(r"(?:\d+\+)?([^@]+)@users\.noreply\.github\.com", email)
            return self._user(b, match.group(1)) if match else None

        return {"url": f"{api}/commits/{sha}", "sha": sha, "node_id": _node_id("Commit", int(sha[:7], 16)),
                "html_url": f"{html}/commit/{sha}", "comments_url": f"{api}/commits/{sha}/comments",
                "commit": {"url": f"{api}/git/commits/{sha}", "author": {"name": an, "email": ae, "date": when(ad)},
                           "committer": {"name": cn, "email": ce, "date": when(cd)}, "message": message.strip(),
                           "comment_count": 0, "tree": {"sha": tree, "url": f"{api}/git/trees/{tree}"},
                           "verification": {"verified": False, "reason": "unsigned", "signature": None,
                                            "payload": None, "verified_at": None}},
                "author": account(ae), "committer": account(ce),
                "parents": [{"sha": p, "url": f"{api}/commits/{p}", "html_url": f"{html}/commit/{p}"}
                            for p in parents.split()]}

    def _pull_json(self, b: str, repo: _Repo, pull: dict[str, Any], *, simple: bool = False) -> dict[str, Any]:
        self._refresh_head(repo, pull)
        n, api, html = pull["number"], f"{b}/repos/{repo.full_name}", f"{b}/{repo.full_name}"
        issue = repo.issues[n]
        repo_json, owner = self._repo_json(b, repo, complete=False), self._user(b, repo.owner)

        def side(ref: str, sha: str) -> dict[str, Any]:
            return {"label": f"{repo.owner}:{ref}", "ref": ref, "sha": sha, "user": owner, "repo": repo_json}

        links = {"self": f"{api}/pulls/{n}", "html": f"{html}/pull/{n}", "issue": f"{api}/issues/{n}",
                 "comments": f"{api}/issues/{n}/comments", "review_comments": f"{api}/pulls/{n}/comments",
                 "review_comment": f"{api}/pulls/comments{{/number}}", "commits": f"{api}/pulls/{n}/commits",
                 "statuses": f"{api}/statuses/{pull['head_sha']}"}
        data: dict[str, Any] = {
            "url": links["self"], "id": pull["id"], "node_id": _node_id("PullRequest", pull["id"]),
            "html_url": links["html"], "diff_url": f"{html}/pull/{n}.diff", "patch_url": f"{html}/pull/{n}.patch",
            "issue_url": links["issue"], "commits_url": links["commits"],
            "review_comments_url": links["review_comments"], "review_comment_url": links["review_comment"],
            "comments_url": links["comments"], "statuses_url": links["statuses"], "number": n,
            "state": issue["state"], "locked": False, "title": issue["title"], "user": self._user(b, issue["user"]),
            "body": issue["body"], "labels": [self._label_json(b, repo, name) for name in issue["labels"]],
            "milestone": None, "active_lock_reason": None, "created_at": issue["created_at"],
            "updated_at": issue["updated_at"], "closed_at": issue["closed_at"], "merged_at": pull["merged_at"],
            "merge_commit_sha": None, "assignee": None, "assignees": [],
            "requested_reviewers": [self._user(b, login) for login in pull["reviewers"]], "requested_teams": [],
            "head": side(pull["head"], pull["head_sha"]), "base": side(pull["base"], pull["base_sha"]),
            "_links": {k: {"href": v} for k, v in links.items()},
            "author_association": self._association(repo, issue["user"]), "auto_merge": None,
            "draft": pull["draft"],
        }
        if simple:
            return data
        stats = self._git(repo, "diff", "--numstat", f"{pull['base_sha']}...{pull['head_sha']}", "--",
                          check=False).stdout.decode().splitlines()
        counts = [line.split("\t") for line in stats if line]
        merge = self._git(repo, "merge-tree", "--write-tree", pull["base_sha"], pull["head_sha"], check=False)
        open_ = issue["state"] == "open"
        data.update({
            "merged": pull["merged_at"] is not None, "mergeable": (merge.returncode == 0) if open_ else None,
            "rebaseable": (merge.returncode == 0) if open_ else None,
            "mergeable_state": ("clean" if merge.returncode == 0 else "dirty") if open_ else "unknown",
            "merged_by": None, "comments": sum(1 for c in self._comments.values()
                                               if c["repo"] == repo.full_name and c["number"] == n),
            "review_comments": sum(1 for c in self._review_comments.values()
                                   if c["repo"] == repo.full_name and c["pr"] == n),
            "maintainer_can_modify": False,
            "commits": int(self._out(repo, "rev-list", "--count", f"{pull['base_sha']}..{pull['head_sha']}") or 0),
            "additions": sum(int(c[0]) for c in counts if c[0].isdigit()),
            "deletions": sum(int(c[1]) for c in counts if c[1].isdigit()), "changed_files": len(counts),
        })
        return data

    def _review_json(self, b: str, repo: _Repo, review: dict[str, Any]) -> dict[str, Any]:
        api, html, n = f"{b}/repos/{repo.full_name}", f"{b}/{repo.full_name}", review["pr"]
        page = f"{html}/pull/{n}#pullrequestreview-{review['id']}"
        return {"id": review["id"], "node_id": _node_id("PullRequestReview", review["id"]),
                "user": self._user(b, review["user"]), "body": review["body"], "state": review["state"],
                "html_url": page, "pull_request_url": f"{api}/pulls/{n}",
                "_links": {"html": {"href": page}, "pull_request": {"href": f"{api}/pulls/{n}"}},
                "submitted_at": review["submitted_at"], "commit_id": review["commit_id"],
                "author_association": self._association(repo, review["user"])}

    def _review_comment_json(self, b: str, repo: _Repo, comment: dict[str, Any]) -> dict[str, Any]:
        api, html, n, cid = f"{b}/repos/{repo.full_name}", f"{b}/{repo.full_name}", comment["pr"], comment["id"]
        url = f"{api}/pulls/comments/{cid}"
        data: dict[str, Any] = {
            "url": url, "pull_request_review_id": comment["review_id"], "id": cid,
            "node_id": _node_id("PullRequestReviewComment", cid), "diff_hunk": comment["diff_hunk"],
            "path": comment["path"], "position": 1, "original_position": 1, "commit_id": comment["commit_id"],
            "original_commit_id": comment["commit_id"], "user": self._user(b, comment["user"]),
            "body": comment["body"], "created_at": comment["created_at"], "updated_at": comment["updated_at"],
            "html_url": f"{html}/pull/{n}#discussion_r{cid}", "pull_request_url": f"{api}/pulls/{n}",
            "author_association": self._association(repo, comment["user"]),
            "_links": {"self": {"href": url}, "html": {"href": f"{html}/pull/{n}#discussion_r{cid}"},
                       "pull_request": {"href": f"{api}/pulls/{n}"}},
            "start_line": None, "original_start_line": None, "start_side": None, "line": comment["line"],
            "original_line": comment["line"], "side": "RIGHT", "subject_type": "line",
            "reactions": self._rollup(f"{url}/reactions", ("review_comment", repo.full_name, cid)),
        }
        if comment["in_reply_to_id"]:
            data["in_reply_to_id"] = comment["in_reply_to_id"]
        return data

    def _thread_json(self, b: str, thread: dict[str, Any]) -> dict[str, Any]:
        nodes = []
        for cid in thread["comments"]:
            comment = self._review_comments[cid]
            nodes.append({"id": _node_id("PullRequestReviewComment", cid), "databaseId": cid,
                          "body": comment["body"], "path": comment["path"], "author": {"login": comment["user"]},
                          "url": f"{b}/{comment['repo']}/pull/{comment['pr']}#discussion_r{cid}"})
        return {"id": thread["id"], "isResolved": thread["resolved"], "isOutdated": False, "path": thread["path"],
                "line": thread["line"], "comments": {"totalCount": len(nodes), "nodes": nodes,
                                                     "pageInfo": {"hasNextPage": False, "endCursor": None}}}

    def _content_json(self, b: str, repo: _Repo, ref: str, entry: tuple[str, str, str, str],
                      content: bytes | None) -> dict[str, Any]:
        _mode, kind, sha, path = entry
        api, html = f"{b}/repos/{repo.full_name}", f"{b}/{repo.full_name}"
        is_file = kind == "blob"
        self_url = f"{api}/contents/{quote(path)}?ref={quote(ref)}"
        git_url = f"{api}/git/{'blobs' if is_file else 'trees'}/{sha}"
        html_url = f"{html}/{'blob' if is_file else 'tree'}/{ref}/{path}"
        data: dict[str, Any] = {
            "type": "file" if is_file else "dir", "size": 0, "name": path.rsplit("/", 1)[-1], "path": path,
            "sha": sha, "url": self_url, "git_url": git_url, "html_url": html_url,
            "download_url": f"{b}/raw/{repo.full_name}/{ref}/{path}" if is_file else None,
            "_links": {"self": self_url, "git": git_url, "html": html_url}}
        if is_file:
            data["size"] = int(self._out(repo, "cat-file", "-s", sha))
        if content is not None:
            data.update({"content": base64.encodebytes(content).decode(), "encoding": "base64"})
        return data

    # ----------------------------------------------------------------------------------------- rate limits

    def _rate_headers(self, key: str, resource: str) -> dict[str, str]:
        with self._lock:
            if time.time() >= self._rate_reset:
                self._rate_reset, self._rate_used = int(time.time()) + 3600, {}
            used = self._rate_used[key] = self._rate_used.get(key, 0) + 1
        return {"x-ratelimit-limit": str(self.rate_limit), "x-ratelimit-remaining": str(max(self.rate_limit - used, 0)),
                "x-ratelimit-reset": str(self._rate_reset), "x-ratelimit-used": str(used),
                "x-ratelimit-resource": resource, "x-github-media-type": "github.v3; format=json",
                "x-github-request-id": uuid.uuid4().hex[:20].upper()}

    # ----------------------------------------------------------------------------------------- the app

    def _build(self) -> FastAPI:
        app = FastAPI()
        fake = self

        class RateLimitHeaders:
            """Adds GitHub's rate-limit headers to every API answer (not to git's)."""

            def __init__(self, inner: Any) -> None:
                self.inner = inner

            async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
                if scope["type"] != "http" or ".git/" in scope["path"]:
                    await self.inner(scope, receive, send)
                    return
                headers = dict(scope["headers"])
                if not fake.base_url and b"host" in headers:
                    fake.base_url = f"{scope.get('scheme', 'http')}://{headers[b'host'].decode()}"
                key = headers.get(b"authorization", b"").decode()
                resource = "graphql" if scope["path"] == "/graphql" else "core"

                async def send_with_headers(message: Any) -> None:
                    if message["type"] == "http.response.start":
                        have = {k.lower() for k, _ in message.get("headers", [])}
                        extra = [(k.encode(), v.encode()) for k, v in fake._rate_headers(key, resource).items()
                                 if k.encode() not in have]
                        message = {**message, "headers": [*message.get("headers", []), *extra]}
                    await send(message)

                await self.inner(scope, receive, send_with_headers)

        app.add_middleware(RateLimitHeaders)

        def base(request: Request) -> str:
            return str(request.base_url).rstrip("/")

        async def gate(request: Request, route: str) -> None:
            body: Any = None
            if "json" in request.headers.get("content-type", ""):
                try:
                    body = json.loads(await request.body() or b"null")
                except ValueError:
                    body = None
            fake.requests.append(Recorded(request.method, request.url.path, route,
                                          request.headers.get("authorization", ""), body))
            if fake.delays.get(route):
                await asyncio.sleep(fake.delays[route])
            queued = fake.failures.get(route)
            if queued:
                status = queued.pop(0)
                if status == PRIMARY_RATE_LIMIT:
                    raise HTTPException(403, {"message": "API rate limit exceeded for installation ID "
                                                         f"{fake.installation_id}.",
                                              "documentation_url": "https://docs.github.com/rest/overview/"
                                                                   "rate-limits-for-the-rest-api"},
                                        headers={"x-ratelimit-remaining": "0", "x-ratelimit-used": str(fake.rate_limit),
                                                 "x-ratelimit-limit": str(fake.rate_limit),
                                                 "x-ratelimit-reset": str(int(time.time()) + 1)})
                assert isinstance(status, int)
                if status in (403, 429):
                    raise HTTPException(status, {"message": "You have exceeded a secondary rate limit. Please wait a "
                                                            "few minutes before you try again.",
                                                 "documentation_url": "https://docs.github.com/rest/overview/"
                                                                      "rate-limits-for-the-rest-api"},
                                        headers={"retry-after": "1"})
                messages = {401: "Bad credentials", 404: "Not Found", 409: "Conflict", 422: "Validation Failed",
                            503: "Service Unavailable"}
                raise HTTPException(status, {"message": messages.get(status, "Server Error")})

        async def json_body(request: Request) -> dict[str, Any]:
            try:
                data = json.loads(await request.body() or b"{}")
            except ValueError:
                raise _error(400, "Problems parsing JSON") from None
            if not isinstance(data, dict):
                raise _error(400, "Problems parsing JSON")
            return data

        def app_jwt(request: Request) -> None:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer":
                raise _error(401, "A JSON web token could not be decoded")
            try:
                claims = jwt.decode(token, self._public_key, algorithms=["RS256"], options={"require": ["exp", "iat"]})
            except jwt.ExpiredSignatureError:
                raise _error(401, "'Expiration time' claim ('exp') must be a numeric value representing the "
                                  "future time at which the assertion expires") from None
            except jwt.PyJWTError:
                raise _error(401, "A JSON web token could not be decoded") from None
            if claims["exp"] - time.time() > 660:
                raise _error(401, "'Expiration time' claim ('exp') is too far in the future")
            if str(claims.get("iss")) != str(fake.app_id):
                raise _error(401, "Integration not found")

        def token_installation(token: str) -> int | None:
            with fake._lock:
                installation = fake.tokens.get(token)
                expiry = fake.token_expiry.get(token)
            if installation is None or (expiry is not None and expiry <= datetime.now(UTC)):
                return None
            return installation

        def installation_token(request: Request) -> int:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            installation = token_installation(token) if scheme.lower() in ("token", "bearer") else None
            if installation is None:
                raise _error(401, "Bad credentials")
            return installation

        async def repository(request: Request, route: str, owner: str, name: str) -> tuple[_Repo, str]:
            await gate(request, route)
            installation = installation_token(request)
            repo = fake._repos.get(f"{owner}/{name}".lower())
            if repo is None or repo.installation_id != installation:
                raise _not_found()
            return repo, base(request)

        def issue_of(repo: _Repo, number: int) -> dict[str, Any]:
            issue = repo.issues.get(number)
            if issue is None:
                raise _not_found()
            return issue

        def pull_of(repo: _Repo, number: int) -> dict[str, Any]:
            pull = repo.pulls.get(number)
            if pull is None:
                raise _not_found()
            return pull

        def paginate(request: Request, items: list[Any]) -> JSONResponse:
            try:
                per_page = min(max(int(request.query_params.get("per_page", 30)), 1), 100)
                page = max(int(request.query_params.get("page", 1)), 1)
            except ValueError:
                raise _error(422, "Invalid request.") from None
            last = max((len(items) + per_page - 1) // per_page, 1)
            links = []

            def link(p: int, rel: str) -> str:
                query = dict(request.query_params) | {"per_page": str(per_page), "page": str(p)}
                return f'<{request.url.replace_query_params(**query)}>; rel="{rel}"'

            if page > 1:
                links += [link(page - 1, "prev"), link(1, "first")]
            if page < last:
                links += [link(page + 1, "next"), link(last, "last")]
            headers = {"link": ", ".join(links)} if links else {}
            return JSONResponse(items[(page - 1) * per_page:page * per_page], headers=headers)

        @app.exception_handler(StarletteHTTPException)
        async def github_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
            body = dict(exc.detail) if isinstance(exc.detail, dict) else {"message": str(exc.detail)}
            body.setdefault("documentation_url", _DOCS)
            body.setdefault("status", str(exc.status_code))
            return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

        @app.exception_handler(RequestValidationError)
        async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
            return JSONResponse({"message": "Invalid request.", "documentation_url": _DOCS, "status": "422"},
                                status_code=422)

        # ------------------------------------------------------------------ the App

        @app.get("/app")
        async def get_app(request: Request) -> dict[str, Any]:
            await gate(request, "get_app")
            app_jwt(request)
            return fake._app_json(base(request))

        @app.post("/app/installations/{installation_id}/access_tokens", status_code=201)
        async def access_token(installation_id: int, request: Request) -> dict[str, Any]:
            await gate(request, "access_token")
            app_jwt(request)
            token = "ghs_" + secrets.token_urlsafe(27)[:36]
            expires = datetime.now(UTC) + fake.token_lifetime
            with fake._lock:
                fake.tokens[token] = installation_id
                fake.token_expiry[token] = expires
            return {"token": token, "expires_at": _iso(expires),
                    "permissions": {"contents": "write", "issues": "write", "pull_requests": "write",
                                    "metadata": "read"}, "repository_selection": "all"}

        @app.get("/repos/{owner}/{name}/installation")
        async def repo_installation(owner: str, name: str, request: Request) -> dict[str, Any]:
            await gate(request, "get_repo_installation")
            app_jwt(request)
            repo = fake._repos.get(f"{owner}/{name}".lower())
            if repo is None:
                raise _not_found()
            b, iid = base(request), repo.installation_id
            account = fake._user(b, repo.owner)
            return {"id": iid, "client_id": f"Iv1.{fake.app_id:016x}", "account": account,
                    "repository_selection": "all", "access_tokens_url": f"{b}/app/installations/{iid}/access_tokens",
                    "repositories_url": f"{b}/installation/repositories",
                    "html_url": f"{b}/organizations/{repo.owner}/settings/installations/{iid}",
                    "app_id": fake.app_id, "app_slug": fake.slug, "target_id": account["id"],
                    "target_type": account["type"], "permissions": fake._app_json(b)["permissions"],
                    "events": fake._app_json(b)["events"], "created_at": "2026-01-01T00:00:00Z",
                    "updated_at": "2026-01-01T00:00:00Z", "single_file_name": None, "has_multiple_single_files": False,
                    "single_file_paths": [], "suspended_by": None, "suspended_at": None}

        @app.get("/repos/{owner}/{repo}/collaborators/{username}/permission")
        async def permission(owner: str, repo: str, username: str, request: Request) -> dict[str, Any]:
            await gate(request, "permission")
            installation_token(request)
            role = fake.permissions.get(username)
            if role is None:
                raise _error(404, f"{username} is not a user")
            user = fake._user(base(request), username)
            return {"permission": _LEGACY.get(role, "none"), "role_name": role,
                    "user": {**user, "permissions": {"admin": role == "admin",
                                                     "maintain": role in ("admin", "maintain"),
                                                     "push": role in ("admin", "maintain", "write"),
                                                     "triage": role != "read", "pull": True},
                             "role_name": role}}

        @app.get("/users/{username}")
        async def get_user(username: str, request: Request) -> dict[str, Any]:
            await gate(request, "get_user")
            auth = request.headers.get("authorization", "")
            if auth:  # public data: anonymous is fine, but credentials sent must be good
                if auth.split(" ", 1)[0].lower() == "bearer" and "." in auth:
                    app_jwt(request)
                else:
                    installation_token(request)
            if username not in fake._users and username not in fake.permissions:
                raise _not_found()
            user = fake._user(base(request), username)
            return {**user, "name": None if user["type"] == "Bot" else username.title(), "company": None,
                    "blog": "", "location": None, "email": None, "hireable": None, "bio": None,
                    "twitter_username": None, "public_repos": 0, "public_gists": 0, "followers": 0, "following": 0,
                    "created_at": "2020-01-01T00:00:00Z", "updated_at": "2020-01-01T00:00:00Z"}

        # ------------------------------------------------------------------ repositories and contents

        @app.get("/repos/{owner}/{name}")
        async def get_repo(owner: str, name: str, request: Request) -> dict[str, Any]:
            repo, b = await repository(request, "get_repo", owner, name)
            with fake._lock:
                return fake._repo_json(b, repo)

        @app.get("/repos/{owner}/{name}/contents/{path:path}")
        async def get_content(owner: str, name: str, path: str, request: Request) -> Any:
            repo, b = await repository(request, "get_content", owner, name)
            ref = request.query_params.get("ref") or repo.default_branch
            path = path.strip("/")
            if fake._rev(repo, ref) is None:
                raise _error(404, f"No commit found for the ref {ref}")
            spec = f"{ref}:{path}"
            kind = fake._git(repo, "cat-file", "-t", spec, check=False).stdout.decode().strip()
            if kind == "blob":
                sha = fake._out(repo, "rev-parse", spec)
                content = fake._git(repo, "cat-file", "blob", sha).stdout
                return fake._content_json(b, repo, ref, ("100644", "blob", sha, path), content)
            if kind == "tree":
                listing = fake._out(repo, "ls-tree", spec)
                entries = [line.split(None, 3) for line in listing.splitlines()]
                return [fake._content_json(b, repo, ref, (m, k, s, f"{path}/{p}".lstrip("/")), None)
                        for m, k, s, p in entries]
            raise _not_found()

        @app.get("/repos/{owner}/{name}/branches/{branch:path}")
        async def get_branch(owner: str, name: str, branch: str, request: Request) -> dict[str, Any]:
            repo, b = await repository(request, "get_branch", owner, name)
            sha = fake._branch_sha(repo, branch)
            if sha is None:
                raise _error(404, "Branch not found")
            api = f"{b}/repos/{repo.full_name}"
            return {"name": branch, "commit": fake._commit_json(b, repo, sha),
                    "_links": {"self": f"{api}/branches/{quote(branch)}",
                               "html": f"{b}/{repo.full_name}/tree/{branch}"},
                    "protected": False, "protection": {"enabled": False, "required_status_checks": {
                        "enforcement_level": "off", "contexts": [], "checks": []}},
                    "protection_url": f"{api}/branches/{quote(branch)}/protection"}

        @app.get("/repos/{owner}/{name}/git/ref/{ref:path}")
        async def get_ref(owner: str, name: str, ref: str, request: Request) -> dict[str, Any]:
            repo, b = await repository(request, "get_ref", owner, name)
            proc = fake._git(repo, "rev-parse", "--verify", "--quiet", f"refs/{ref}", check=False)
            sha = proc.stdout.decode().strip()
            if not sha:
                raise _not_found()
            api = f"{b}/repos/{repo.full_name}"
            return {"ref": f"refs/{ref}", "node_id": _node_id("Ref", int(sha[:7], 16)),
                    "url": f"{api}/git/refs/{ref}",
                    "object": {"type": "commit", "sha": sha, "url": f"{api}/git/commits/{sha}"}}

        # ------------------------------------------------------------------ issues, comments, reactions

        @app.get("/repos/{owner}/{name}/issues/comments/{comment_id}")
        async def get_comment(owner: str, name: str, comment_id: int, request: Request) -> dict[str, Any]:
            repo, b = await repository(request, "get_comment", owner, name)
            with fake._lock:
                comment = fake._comments.get(comment_id)
                if comment is None or comment["repo"] != repo.full_name:
                    raise _not_found()
                return fake._comment_json(b, repo, comment)

        @app.patch("/repos/{owner}/{name}/issues/comments/{comment_id}")
        async def update_comment(owner: str, name: str, comment_id: int, request: Request) -> dict[str, Any]:
            repo, b = await repository(request, "update_comment", owner, name)
            data = await json_body(request)
            if not isinstance(data.get("body"), str):
                raise _invalid("IssueComment", "body", "missing_field")
            with fake._lock:
                comment = fake._comments.get(comment_id)
                if comment is None or comment["repo"] != repo.full_name:
                    raise _not_found()
                if comment["user"] != fake.bot_login:
                    raise _error(403, "Resource not accessible by integration")
                comment.update(body=data["body"], updated_at=_iso())
                return fake._comment_json(b, repo, comment)

        @app.post("/repos/{owner}/{name}/issues/comments/{comment_id}/reactions")
        async def comment_reaction(owner: str, name: str, comment_id: int, request: Request) -> JSONResponse:
            repo, b = await repository(request, "reaction", owner, name)
            if fake._comments.get(comment_id, {}).get("repo") != repo.full_name:
                raise _not_found()
            return await react(request, b, ("comment", repo.full_name, comment_id))

        @app.post("/repos/{owner}/{name}/pulls/comments/{comment_id}/reactions")
        async def review_comment_reaction(owner: str, name: str, comment_id: int, request: Request) -> JSONResponse:
            repo, b = await repository(request, "reaction", owner, name)
            if fake._review_comments.get(comment_id, {}).get("repo") != repo.full_name:
                raise _not_found()
            return await react(request, b, ("review_comment", repo.full_name, comment_id))

        @app.post("/repos/{owner}/{name}/issues/{number}/reactions")
        async def issue_reaction(owner: str, name: str, number: int, request: Request) -> JSONResponse:
            repo, b = await repository(request, "reaction", owner, name)
            issue_of(repo, number)
            return await react(request, b, ("issue", repo.full_name, number))

        async def react(request: Request, b: str, subject: tuple[str, str, int]) -> JSONResponse:
            content = (await json_body(request)).get("content")
            if content not in _REACTIONS:
                raise _invalid("Reaction", "content", "invalid")
            with fake._lock:
                for reaction in fake._reactions:
                    if (reaction["subject"], reaction["user"], reaction["content"]) == (subject, fake.bot_login,
                                                                                      content):
                        return JSONResponse(fake._reaction_json(b, reaction), status_code=200)
                reaction = {"id": fake._new_id(), "subject": subject, "user": fake.bot_login, "content": content,
                            "created_at": _iso()}
                fake._reactions.append(reaction)
                return JSONResponse(fake._reaction_json(b, reaction), status_code=201)

        @app.get("/repos/{owner}/{name}/issues/{number}")
        async def get_issue(owner: str, name: str, number: int, request: Request) -> dict[str, Any]:
            repo, b = await repository(request, "get_issue", owner, name)
            with fake._lock:
                return fake._issue_json(b, repo, issue_of(repo, number))

        @app.get("/repos/{owner}/{name}/issues/{number}/comments")
        async def list_comments(owner: str, name: str, number: int, request: Request) -> JSONResponse:
            repo, b = await repository(request, "list_comments", owner, name)
            with fake._lock:
                issue_of(repo, number)
                items = [fake._comment_json(b, repo, c) for c in fake._comments.values()
                         if c["repo"] == repo.full_name and c["number"] == number]
            return paginate(request, items)

        @app.post("/repos/{owner}/{name}/issues/{number}/comments", status_code=201)
        async def create_comment(owner: str, name: str, number: int, request: Request) -> dict[str, Any]:
            repo, b = await repository(request, "create_comment", owner, name)
            data = await json_body(request)
            if not isinstance(data.get("body"), str) or not data["body"]:
                raise _invalid("IssueComment", "body", "missing_field")
            if len(data["body"]) > 65536:
                raise _invalid("IssueComment", "body", "custom", "body is too long (maximum is 65536 characters)")
            with fake._lock:
                issue_of(repo, number)
                return fake._comment_json(b, repo, fake._new_comment(repo, number, data["body"], fake.bot_login,
                                                                     via_app=True))

        # ------------------------------------------------------------------ pull requests

        @app.post("/repos/{owner}/{name}/pulls", status_code=201)
        async def create_pull(owner: str, name: str, request: Request) -> dict[str, Any]:
            repo, b = await repository(request, "create_pull", owner, name)
            data = await json_body(request)
            for required in ("head", "base"):
                if not isinstance(data.get(required), str) or not data[required]:
                    raise _invalid("PullRequest", required, "missing_field")
            if not data.get("title") and not data.get("issue"):
                raise _invalid("PullRequest", "title", "missing_field")
            head_owner, _, head = data["head"].rpartition(":")
            if head_owner and head_owner.lower() != repo.owner.lower():
                raise _invalid("PullRequest", "head", "invalid")
            with fake._lock:
                head_sha, base_sha = fake._branch_sha(repo, head), fake._branch_sha(repo, data["base"])
                if base_sha is None:
                    raise _invalid("PullRequest", "base", "invalid")
                if head_sha is None:
                    raise _invalid("PullRequest", "head", "invalid")
                for pull in repo.pulls.values():
                    if pull["head"] == head and pull["base"] == data["base"] and pull["state"] == "open":
                        raise _invalid("PullRequest", code="custom",
                                       message=f"A pull request already exists for {repo.owner}:{head}.")
                if fake._out(repo, "rev-list", "--count", f"{base_sha}..{head_sha}") == "0":
                    raise _invalid("PullRequest", code="custom",
                                   message=f"No commits between {data['base']} and {head}")
                number, now = fake._new_number(repo), _iso()
                repo.issues[number] = {"number": number, "id": fake._new_id(), "title": data.get("title") or head,
                                       "body": data.get("body"), "user": fake.bot_login, "labels": [],
                                       "state": "open", "state_reason": None, "created_at": now, "updated_at": now,
                                       "closed_at": None, "pull": True, "via_app": True}
                pull = {"number": number, "id": fake._new_id(), "head": head, "base": data["base"],
                        "head_sha": head_sha, "base_sha": base_sha, "draft": bool(data.get("draft")),
                        "merged_at": None, "reviewers": [], "state": "open"}
                repo.pulls[number] = pull
                return fake._pull_json(b, repo, pull)

        @app.get("/repos/{owner}/{name}/pulls")
        async def list_pulls(owner: str, name: str, request: Request) -> JSONResponse:
            repo, b = await repository(request, "list_pulls", owner, name)
            query = request.query_params
            state, head, base_ref = query.get("state", "open"), query.get("head"), query.get("base")
            if state not in ("open", "closed", "all"):
                raise _invalid("PullRequest", "state", "invalid")
            with fake._lock:
                items = []
                for number in sorted(repo.pulls, reverse=query.get("direction", "desc") == "desc"):
                    pull, issue = repo.pulls[number], repo.issues[number]
                    if state != "all" and issue["state"] != state:
                        continue
                    # Like GitHub, a `head` filter without `owner:` matches nothing useful: it is ignored.
                    if head and ":" in head and head.lower() != f"{repo.owner}:{pull['head']}".lower():
                        continue
                    if base_ref and pull["base"] != base_ref:
                        continue
                    items.append(fake._pull_json(b, repo, pull, simple=True))
            return paginate(request, items)

        @app.get("/repos/{owner}/{name}/pulls/{number}")
        async def get_pull(owner: str, name: str, number: int, request: Request) -> dict[str, Any]:
            repo, b = await repository(request, "get_pull", owner, name)
            with fake._lock:
                return fake._pull_json(b, repo, pull_of(repo, number))

        @app.patch("/repos/{owner}/{name}/pulls/{number}")
        async def update_pull(owner: str, name: str, number: int, request: Request) -> dict[str, Any]:
            repo, b = await repository(request, "update_pull", owner, name)
            data = await json_body(request)
            with fake._lock:
                pull = pull_of(repo, number)
                issue = repo.issues[number]
                if "state" in data:
                    if data["state"] not in ("open", "closed"):
                        raise _invalid("PullRequest", "state", "invalid")
                    if data["state"] == "open" and issue["state"] == "closed":
                        if pull["merged_at"] or fake._branch_sha(repo, pull["head"]) is None:
                            raise _invalid("PullRequest", "state", "invalid",
                                           "state cannot be changed. The head branch was deleted or merged.")
                        if any(p["head"] == pull["head"] and p["state"] == "open" for p in repo.pulls.values()):
                            raise _invalid("PullRequest", code="custom",
                                           message=f"A pull request already exists for {repo.owner}:{pull['head']}.")
                    pull["state"] = issue["state"] = data["state"]
                    issue["closed_at"] = _iso() if data["state"] == "closed" else None
                if "base" in data:
                    if fake._branch_sha(repo, str(data["base"])) is None:
                        raise _invalid("PullRequest", "base", "invalid")
                    pull["base"] = data["base"]
                if "title" in data:
                    issue["title"] = data["title"]
                if "body" in data:
                    issue["body"] = data["body"]
                # `draft` is not patchable over REST (GitHub ignores it; GraphQL converts drafts).
                issue["updated_at"] = _iso()
                return fake._pull_json(b, repo, pull)

        @app.post("/repos/{owner}/{name}/pulls/{number}/requested_reviewers", status_code=201)
        async def request_reviewers(owner: str, name: str, number: int, request: Request) -> dict[str, Any]:
            repo, b = await repository(request, "request_reviewers", owner, name)
            data = await json_body(request)
            reviewers = data.get("reviewers") or []
            with fake._lock:
                pull = pull_of(repo, number)
                if repo.issues[number]["user"] in reviewers:
                    raise _error(422, "Review cannot be requested from pull request author.")
                if any(login not in fake.permissions for login in reviewers) or data.get("team_reviewers"):
                    raise _error(422, "Reviews may only be requested from collaborators. One or more of the users or "
                                      f"teams you specified is not a collaborator of the {repo.full_name} repository.")
                pull["reviewers"] += [login for login in reviewers if login not in pull["reviewers"]]
                return fake._pull_json(b, repo, pull, simple=True)

        @app.get("/repos/{owner}/{name}/pulls/{number}/reviews")
        async def list_reviews(owner: str, name: str, number: int, request: Request) -> JSONResponse:
            repo, b = await repository(request, "list_reviews", owner, name)
            with fake._lock:
                pull_of(repo, number)
                items = [fake._review_json(b, repo, r) for r in fake._reviews.values()
                         if r["repo"] == repo.full_name and r["pr"] == number]
            return paginate(request, items)

        @app.get("/repos/{owner}/{name}/pulls/{number}/reviews/{review_id}/comments")
        async def list_review_comments_for_review(owner: str, name: str, number: int, review_id: int,
                                                  request: Request) -> JSONResponse:
            repo, b = await repository(request, "list_review_comments_for_review", owner, name)
            with fake._lock:
                review = fake._reviews.get(review_id)
                if review is None or review["repo"] != repo.full_name or review["pr"] != number:
                    raise _not_found()
                items = []
                for c in fake._review_comments.values():
                    if c["review_id"] == review_id:
                        data = fake._review_comment_json(b, repo, c)
                        for key in ("line", "original_line", "side", "start_side", "start_line", "original_start_line",
                                    "subject_type"):
                            data.pop(key, None)  # the per-review listing is the older, thinner shape
                        items.append(data)
            return paginate(request, items)

        @app.get("/repos/{owner}/{name}/pulls/{number}/comments")
        async def list_review_comments(owner: str, name: str, number: int, request: Request) -> JSONResponse:
            repo, b = await repository(request, "list_review_comments", owner, name)
            with fake._lock:
                pull_of(repo, number)
                items = [fake._review_comment_json(b, repo, c) for c in fake._review_comments.values()
                         if c["repo"] == repo.full_name and c["pr"] == number]
            return paginate(request, items)

        @app.post("/repos/{owner}/{name}/pulls/{number}/comments/{comment_id}/replies", status_code=201)
        async def create_reply(owner: str, name: str, number: int, comment_id: int,
                               request: Request) -> dict[str, Any]:
            repo, b = await repository(request, "create_reply", owner, name)
            data = await json_body(request)
            if not isinstance(data.get("body"), str) or not data["body"]:
                raise _invalid("PullRequestReviewComment", "body", "missing_field")
            with fake._lock:
                pull = pull_of(repo, number)
                parent = fake._review_comments.get(comment_id)
                if parent is None or parent["repo"] != repo.full_name or parent["pr"] != number:
                    raise _not_found()
                fake._refresh_head(repo, pull)
                review = fake._new_review(repo, number, fake.bot_login, "COMMENTED", "", pull["head_sha"])
                reply = fake._new_review_comment(repo, number, review["id"], fake.bot_login, data["body"],
                                                 in_reply_to=comment_id)
                return fake._review_comment_json(b, repo, reply)

        # ------------------------------------------------------------------ GraphQL

        @app.post("/graphql")
        async def graphql(request: Request) -> JSONResponse:
            await gate(request, "graphql")
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            installation = token_installation(token) if scheme.lower() in ("token", "bearer") else None
            if installation is None:
                raise _error(401, "This endpoint requires you to be authenticated.")
            data = await json_body(request)
            query, variables = str(data.get("query", "")), data.get("variables") or {}

            def arg(name: str) -> Any:
                match = re.search(rf"\b{name}\s*:\s*(\$\w+|\"(?:[^\"\\]|\\.)*\"|-?\d+)", query)
                if not match:
                    return None
                value = match.group(1)
                if value.startswith("$"):
                    return variables.get(value[1:])
                return json.loads(value)

            b = base(request)
            with fake._lock:
                resolve = re.search(r"\b(un)?resolveReviewThread\b", query)
                if resolve:
                    field_name = resolve.group(0)
                    thread_id = arg("threadId")
                    thread = fake._threads.get(str(thread_id))
                    repo = fake._repos.get(thread["repo"].lower()) if thread else None
                    if thread is None or repo is None or repo.installation_id != installation:
                        return JSONResponse({"data": {field_name: None}, "errors": [
                            {"type": "NOT_FOUND", "path": [field_name], "locations": [],
                             "message": f"Could not resolve to a node with the global id of '{thread_id}'"}]})
                    thread["resolved"] = resolve.group(1) is None
                    return JSONResponse({"data": {field_name: {"thread": fake._thread_json(b, thread)}}})
                if "reviewThreads" in query and "repository" in query:
                    owner, name, number = arg("owner"), arg("name"), arg("number")
                    repo = fake._repos.get(f"{owner}/{name}".lower())
                    if repo is None or repo.installation_id != installation:
                        return JSONResponse({"data": {"repository": None}, "errors": [
                            {"type": "NOT_FOUND", "path": ["repository"], "locations": [],
                             "message": f"Could not resolve to a Repository with the name '{owner}/{name}'."}]})
                    if int(number or 0) not in repo.pulls:
                        return JSONResponse({"data": {"repository": {"pullRequest": None}}, "errors": [
                            {"type": "NOT_FOUND", "path": ["repository", "pullRequest"], "locations": [],
                             "message": f"Could not resolve to a PullRequest with the number of {number}."}]})
                    nodes = [fake._thread_json(b, t) for t in fake._threads.values()
                             if t["repo"] == repo.full_name and t["pr"] == int(number)]
                    return JSONResponse({"data": {"repository": {"pullRequest": {"reviewThreads": {
                        "totalCount": len(nodes), "nodes": nodes,
                        "pageInfo": {"hasNextPage": False, "endCursor": None}}}}}})
            return JSONResponse({"errors": [{"message": "this fake GitHub answers only resolveReviewThread and "
                                                        "repository.pullRequest.reviewThreads"}]})

        # ------------------------------------------------------------------ git smart HTTP

        async def git_http(request: Request, route: str, owner: str, name: str, path_info: str) -> Response:
            await gate(request, route)
            scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
            installation = None
            if scheme.lower() == "basic":
                try:
                    user, _, password = base64.b64decode(encoded).decode().partition(":")
                except (ValueError, UnicodeDecodeError):
                    user, password = "", ""
                if user == "x-access-token":
                    installation = token_installation(password)
            if installation is None:
                return Response(b"Invalid username or token. Password authentication is not supported for Git "
                                b"operations.\n", status_code=401,
                                headers={"WWW-Authenticate": 'Basic realm="GitHub"'}, media_type="text/plain")
            repo = fake._repos.get(f"{owner}/{name}".lower())
            if repo is None or repo.installation_id != installation:
                return Response(b"Repository not found.\n", status_code=404, media_type="text/plain")
            body = await request.body()
            encoding = request.headers.get("content-encoding", "")
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            env = fake._git_env({"GIT_PROJECT_ROOT": str(fake._root), "GIT_HTTP_EXPORT_ALL": "1",
                                 "PATH_INFO": f"/{repo.owner}/{repo.name}.git/{path_info}",
                                 "QUERY_STRING": request.url.query, "REQUEST_METHOD": request.method,
                                 "CONTENT_TYPE": request.headers.get("content-type", ""),
                                 "CONTENT_LENGTH": str(len(body)), "REMOTE_USER": "x-access-token",
                                 "REMOTE_ADDR": "127.0.0.1", "GIT_HTTP_MAX_REQUEST_BUFFER": "100M"})
            if "git-protocol" in request.headers:
                env["HTTP_GIT_PROTOCOL"] = request.headers["git-protocol"]
            pushing = path_info == "git-receive-pack"
            before = fake.branches(repo.full_name) if pushing else {}
            proc = await asyncio.to_thread(subprocess.run, ["git", "http-backend"], input=body, env=env,
                                           capture_output=True, check=False)
            if pushing:
                fake._record_pushes(repo, before)
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

        @app.get("/{owner}/{name}.git/info/refs")
        async def git_info_refs(owner: str, name: str, request: Request) -> Response:
            return await git_http(request, "git_info_refs", owner, name, "info/refs")

        @app.post("/{owner}/{name}.git/git-upload-pack")
        async def git_upload_pack(owner: str, name: str, request: Request) -> Response:
            return await git_http(request, "git_upload_pack", owner, name, "git-upload-pack")

        @app.post("/{owner}/{name}.git/git-receive-pack")
        async def git_receive_pack(owner: str, name: str, request: Request) -> Response:
            return await git_http(request, "git_receive_pack", owner, name, "git-receive-pack")

        # ------------------------------------------------------------------ registering an App from a manifest

        @app.post("/settings/apps/new")
        @app.post("/organizations/{org}/settings/apps/new")
        async def new_app_from_manifest(request: Request, org: str | None = None) -> Response:
            """GitHub's web page for a manifest form. There the user confirms and GitHub redirects to the
            manifest's `redirect_url` with a one-hour code and the form's `state`; the fake confirms at once."""
            await gate(request, "new_app_from_manifest")
            form = parse_qs((await request.body()).decode(errors="replace"))
            try:
                manifest = json.loads(form["manifest"][0])
                redirect = manifest["redirect_url"]
            except (KeyError, IndexError, ValueError, TypeError):
                return Response("Invalid GitHub App configuration: a manifest with a redirect_url is required",
                                status_code=422, media_type="text/plain")
            code = secrets.token_hex(10)
            with fake._lock:
                fake.manifest_codes[code] = {**manifest, "_organization": org}
            query = urlencode({"code": code, **({"state": request.query_params["state"]}
                                                if "state" in request.query_params else {})})
            joiner = "&" if "?" in redirect else "?"
            return Response(status_code=302, headers={"location": f"{redirect}{joiner}{query}"})

        @app.post("/app-manifests/{code}/conversions", status_code=201)
        async def manifest_conversion(code: str, request: Request) -> dict[str, Any]:
            """Needs no credentials: the single-use code is one. The App made is this fake's own (its id, key
            and slug), so Honk can act as it afterwards; the secrets are new."""
            await gate(request, "manifest_conversion")
            with fake._lock:
                manifest = fake.manifest_codes.pop(code, None)
            if manifest is None:
                raise _not_found()
            b = base(request)
            hook = manifest.get("hook_attributes") or {}
            answer = {**fake._app_json(b), "name": manifest.get("name") or "Honk (test)",
                      "description": manifest.get("description") or "", "external_url": manifest.get("url"),
                      "permissions": manifest.get("default_permissions") or {},
                      "events": manifest.get("default_events") or [],
                      "client_secret": secrets.token_hex(20), "webhook_secret": secrets.token_hex(20),
                      "pem": fake.private_key_pem}
            with fake._lock:
                fake.registered_apps.append(answer)
            if hook.get("url"):
                fake.webhook_target(hook["url"], answer["webhook_secret"])
            return answer

        return app

    def _record_pushes(self, repo: _Repo, before: dict[str, str]) -> None:
        after = self.branches(repo.full_name)
        for branch in sorted(set(before) | set(after)):
            old, new = before.get(branch, _ZERO), after.get(branch, _ZERO)
            if old == new:
                continue
            forced = old != _ZERO and new != _ZERO and self._git(
                repo, "merge-base", "--is-ancestor", old, new, check=False).returncode != 0
            self.pushes.append(Push(repo.full_name, f"refs/heads/{branch}", old, new, forced))


def basic_auth_header(token: str) -> str:
    """The `Authorization` header git sends for `x-access-token:<token>`."""
    return "Basic " + base64.b64encode(f"x-access-token:{token}".encode()).decode()


__all__ = ["OCTOCAT", "PRIMARY_RATE_LIMIT", "Delivery", "FakeGitHub", "Push", "Recorded", "basic_auth_header"]
