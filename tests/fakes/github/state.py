"""The data of the fake GitHub: repositories, users, the ids GitHub hands out, and what tests read afterwards.

`State` is the bottom layer of `FakeGitHub` (see `tests.fakes.github.fake`): its dataclass fields are the
attributes tests script (`permissions`, `delays`, `failures`, ...) and read (`requests`, `pushes`,
`deliveries`, ...); its private dictionaries hold issues' comments, reactions, reviews, review comments,
review threads, check suites and runs, and Actions' workflow runs and jobs. Every other layer builds on it.
"""

from __future__ import annotations

import base64
import random
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization


def iso(moment: datetime | None = None) -> str:
    """GitHub's timestamps: UTC, to the second."""
    return (moment or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_id(kind: str, number: int) -> str:
    """A GraphQL node id in GitHub's legacy format."""
    return base64.b64encode(f"0{len(kind)}:{kind}{number}".encode()).decode().rstrip("=")


@dataclass
class Recorded:
    method: str
    path: str
    route: str
    auth: str
    json: Any = None  # the request's JSON body, when it had one


@dataclass
class Metered:
    """One API request as the fake's rate limits saw it (see `ratelimit.py`)."""

    at: float  # time.monotonic() when it arrived
    installation: int | None  # None: the App's JWT (or no credential)
    method: str
    path: str
    content: bool  # content-creating: POST, PATCH, PUT or DELETE, or a GraphQL mutation
    limited: str | None = None  # "secondary" or "primary" when the fake answered with a rate limit


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
    topics: list[str] = field(default_factory=list)
    language: str | None = None
    archived: bool = False  # read-only: writes over REST answer 403 and pushes are refused
    labels: dict[str, dict[str, Any]] = field(default_factory=dict)
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass
class State:
    app_id: int
    private_key_pem: str = field(repr=False)
    slug: str = "honk-test"
    permissions: dict[str, str] = field(default_factory=dict)  # login -> role, on every repository
    repo_permissions: dict[str, dict[str, str]] = field(default_factory=dict)  # full name -> login -> role first
    delays: dict[str, float] = field(default_factory=dict)
    failures: dict[str, list[int | str]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    tokens: dict[str, int] = field(default_factory=dict)  # installation token -> installation id
    root: Path | None = None  # where bare repositories live; a temporary directory (removed by close()) if None
    token_lifetime: timedelta = timedelta(hours=1)
    installation_id: int = 42  # the installation new repositories belong to
    app_owner: str = "acme"  # the organization that owns the App
    base_url: str = ""  # how tests reach the fake; set by serve() or by the first request
    rate_limit: int = 5000  # requests per credential and window
    rate_window: float = 3600.0  # seconds; a window starts with the first request after the last one ended
    enforce_rate_limit: bool = False  # a credential past `rate_limit` gets 403 (remaining 0) until the reset
    secondary_share: float = 0.0  # this share of API requests (drawn from `seed`) answers a secondary limit
    content_interval: float = 0.0  # content-creating requests closer to the installation's last one: secondary
    secondary_retry_after: int | None = 1  # the `retry-after` of those answers (None: no header)
    secondary_status: int = 403  # or 429
    seed: int = 0
    metered: list[Metered] = field(default_factory=list)  # every API request, as the rate limits saw it
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
        self._check_suites: dict[int, dict[str, Any]] = {}  # the Checks API (see `checks`), by id
        self._check_runs: dict[int, dict[str, Any]] = {}
        self._workflow_runs: dict[int, dict[str, Any]] = {}  # GitHub Actions: runs, their jobs and job logs
        self._jobs: dict[int, dict[str, Any]] = {}
        self._rate_used: dict[str, int] = {}
        self._rate_reset = 0  # the first request opens a window of `rate_window` seconds
        self._random = random.Random(self.seed)
        self._last_content: dict[int | None, float] = {}  # installation -> its last accepted content-creating
        self._hook: tuple[str, str] | None = None
        self._hook_id = 400000 + self.app_id
        self._register(self.bot_login, "Bot")
        self._register(self.app_owner, "Organization")

    def calls(self, route: str) -> list[Recorded]:
        """The recorded requests that hit one route (by its failure-injection name)."""
        return [r for r in self.requests if r.route == route]

    def content_requests(self, installation: int | None, *, accepted: bool | None = None) -> list[Metered]:
        """The content-creating requests one installation (None: the App) made, in order of arrival; only those
        the fake let through (`accepted=True`) or only those it answered with a rate limit (False)."""
        with self._lock:
            return [m for m in self.metered if m.content and m.installation == installation
                    and (accepted is None or (m.limited is None) == accepted)]

    def rate_limited(self, kind: str | None = None) -> list[Metered]:
        """The requests the fake answered with a rate limit (`kind`: "secondary" or "primary")."""
        with self._lock:
            return [m for m in self.metered if m.limited and (kind is None or m.limited == kind)]

    @property
    def bot_login(self) -> str:
        return f"{self.slug}[bot]"

    @property
    def bot_email(self) -> str:
        """The noreply address GitHub attributes to the App's bot in commits."""
        return f"{self._register(self.bot_login, 'Bot')}+{self.bot_login}@users.noreply.github.com"

    def set_permission(self, repo: str, login: str, role: str) -> None:
        """Give `login` the `role` (`admin`, `maintain`, `write`, `triage`, `read`, or `none` for no access) on
        one repository, over its role in `permissions`."""
        with self._lock:
            known = self._repos.get(repo.lower())
            self.repo_permissions.setdefault(known.full_name if known else repo, {})[login] = role

    def role_of(self, repo: str, login: str) -> str | None:
        """`login`'s role on the repository: from `repo_permissions` (by full name, any case), else from
        `permissions`; None when neither names it."""
        with self._lock:
            for name, roles in self.repo_permissions.items():
                if name.lower() == repo.lower() and login in roles:
                    return roles[login]
            return self.permissions.get(login)

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
