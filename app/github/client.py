"""Honk as a GitHub App, on githubkit, against `GITHUB_API_URL`.

One installation token serves both the REST calls and git (which needs the raw token), so Honk mints it
itself and caches it until shortly before it expires. Responses are read as raw JSON: githubkit's strict
models reject some real (older or thinner) payloads, and a schema mismatch must never stop a job.

Every request of an App goes through its `Pacer` (app/github/pacing.py), keyed by installation: GitHub's rate
limits slow an installation's requests down instead of failing them. git's push and fetch are not API requests
and are not paced.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from githubkit import AppAuthStrategy, GitHub, TokenAuthStrategy
from githubkit.cache import MemCacheStrategy
from githubkit.exception import GitHubException, RateLimitExceeded, RequestError, RequestFailed
from githubkit.typing import RetryOption

from app.github.pacing import Key, Pacer, RateLimitWaitTooLong, limit_of
from app.settings import Settings
from app.telemetry import PROCESS as PROCESS_METRICS

WRITE_ROLES = frozenset({"admin", "maintain", "write"})
_TOKEN_MARGIN = timedelta(minutes=5)  # never hand out a token that could expire mid-push
JOB_LOG_LIMIT = 4 * 1024 * 1024  # bytes of a job's log kept (its end: where a failure is told)
# githubkit sleeps a minute when a retry names no wait, and a zero timedelta is falsy: "at once" is a millisecond.
_AT_ONCE = timedelta(milliseconds=1)


class GitHubNotConfigured(Exception):
    """Honk lacks the App credentials it needs to act on GitHub."""


class MergeRefused(Exception):
    """GitHub would not merge a pull request; `reason` is GitHub's own message. 405: not mergeable (a conflict,
    a draft, branch protection's required reviews or checks, a merge method the repository does not allow);
    409: the head moved; 422: the request itself (an unknown merge method)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"GitHub refused the merge ({status}): {reason}")
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class GitHubRetry:
    """When to repeat a GitHub request (githubkit's `auto_retry`). A rate limit: always, at once, and not
    counted against `retries`: the retry waits in the App's `Pacer` until the installation may go on, and the
    pacer ends the wait when it grows too long (`RateLimitWaitTooLong`, never retried here). Server errors and
    dropped connections: up to `retries` times with exponential backoff. `retries=0` takes the first answer,
    whatever it is (a doctor's check)."""

    retries: int = 4
    base_seconds: float = 1.0

    def __call__(self, exc: GitHubException, count: int) -> RetryOption:
        if self.retries <= 0 or isinstance(exc, RateLimitWaitTooLong):
            return RetryOption(False)
        if isinstance(exc, RequestFailed) and (isinstance(exc, RateLimitExceeded)
                                               or limit_of(exc.response.raw_response) is not None):
            return RetryOption(True, _AT_ONCE)  # githubkit misses a 403 that only *says* "secondary rate limit"
        if count >= self.retries:
            return RetryOption(False)
        if isinstance(exc, RequestFailed):  # a subclass of RequestError: test it first
            if exc.response.status_code < 500:
                return RetryOption(False)  # 4xx other than rate limits: asking again changes nothing
        elif not isinstance(exc, RequestError):  # RequestError: connection refused or reset, timeouts
            return RetryOption(False)
        return RetryOption(True, timedelta(seconds=self._backoff(count)))

    def _backoff(self, count: int) -> float:
        return self.base_seconds * 2**count * (1 + random.random() / 4)


@dataclass(frozen=True)
class AppIdentity:
    id: int
    slug: str
    name: str
    bot_id: int | None

    @property
    def bot_login(self) -> str:
        return f"{self.slug}[bot]"

    @property
    def bot_email(self) -> str:
        # GitHub attributes commits to an App's bot by this noreply address.
        prefix = f"{self.bot_id}+" if self.bot_id else ""
        return f"{prefix}{self.bot_login}@users.noreply.github.com"


@dataclass(frozen=True)
class InstallationToken:
    token: str
    expires_at: datetime


class GitHubApp:
    """One per process and App (see `for_settings`): installation tokens and the App's identity are reused by
    every job until they expire."""

    _shared: dict[tuple[int | None, str, str], GitHubApp] = {}  # noqa: RUF012 - a deliberate process cache

    @classmethod
    def for_settings(cls, settings: Settings) -> GitHubApp:
        key = settings.github_private_key.get_secret_value() if settings.github_private_key else ""
        ident = (settings.github_app_id, settings.github_api_url, hashlib.sha256(key.encode()).hexdigest())
        if ident not in cls._shared:
            cls._shared[ident] = cls(settings)
        return cls._shared[ident]

    def __init__(self, settings: Settings, retry: GitHubRetry | None = None, pacer: Pacer | None = None) -> None:
        missing = [name for name in settings.missing_github() if "WEBHOOK" not in name]
        if missing:
            raise GitHubNotConfigured(f"set {', '.join(missing)} so Honk can act as its GitHub App")
        assert settings.github_app_id is not None and settings.github_private_key is not None
        self._app_id = settings.github_app_id
        self._key = settings.github_private_key.get_secret_value()
        self.base_url = settings.github_api_url
        self.retry = retry or GitHubRetry()
        # Per App object, and so per process through for_settings.
        self.pacer = pacer or Pacer(min_interval=settings.honk_github_content_interval,
                                    burst=settings.honk_github_content_burst,
                                    per_hour=settings.honk_github_content_per_hour)
        self._tokens: dict[int, InstallationToken] = {}
        self._token_locks: dict[int, asyncio.Lock] = {}
        self._identity: AppIdentity | None = None
        # One cache per App: githubkit keeps the App's JWT there (signing one re-parses the RSA key, ~40 ms),
        # and its process-wide default is keyed without the base URL, so two Apps would share entries.
        self._cache = MemCacheStrategy()

    def _client(self, auth: AppAuthStrategy | TokenAuthStrategy, key: Key,
                on_response: Callable[[httpx.Response], Awaitable[None]] | None = None) -> GitHub[Any]:
        """A client acting as `key` (an installation, or None for the App's JWT), paced by the App's pacer."""
        hooks = [PROCESS_METRICS.github_response, self.pacer.observer(key)]  # errors for /metrics; the limits
        hooks += [on_response] if on_response else []
        return GitHub(auth, base_url=self.base_url + "/", cache_strategy=self._cache, timeout=30,
                      auto_retry=self.retry, http_cache=False, async_event_hooks={"response": hooks},
                      throttler=self.pacer.throttler(key))

    def as_app(self) -> GitHub[Any]:
        return self._client(AppAuthStrategy(self._app_id, self._key), None)

    async def app_info(self) -> dict[str, Any]:
        """`GET /app`, as the App itself: its id, slug and name."""
        async with self.as_app() as gh:
            return (await gh.arequest("GET", "/app")).json()

    async def identity(self, installation_id: int) -> AppIdentity:
        """The App's slug and bot account, learnt once: `GET /app` (as the App), then the bot's user id
        (as an installation: App tokens may only call `/app` routes)."""
        if self._identity is None:
            app = await self.app_info()
            slug = app["slug"]
            token = await self.token(installation_id)
            async with self._client(TokenAuthStrategy(token.token), installation_id) as gh:
                try:
                    bot = (await gh.arequest("GET", f"/users/{slug}[bot]")).json()
                    bot_id = bot.get("id") if isinstance(bot, dict) else None
                except GitHubException:
                    bot_id = None  # commits still attribute by login; only the noreply id is missing
            self._identity = AppIdentity(id=app["id"], slug=slug, name=app.get("name") or slug, bot_id=bot_id)
        return self._identity

    async def token(self, installation_id: int) -> InstallationToken:
        lock = self._token_locks.setdefault(installation_id, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(installation_id)
            if cached and cached.expires_at - _TOKEN_MARGIN > datetime.now(UTC):
                return cached
            async with self.as_app() as gh:
                answer = (await gh.arequest("POST", f"/app/installations/{installation_id}/access_tokens")).json()
            expires = datetime.fromisoformat(answer["expires_at"].replace("Z", "+00:00"))
            self._tokens[installation_id] = InstallationToken(answer["token"], expires)
            return self._tokens[installation_id]

    async def repo(self, installation_id: int, full_name: str) -> Repo:
        token = await self.token(installation_id)

        async def forget_revoked(response: httpx.Response) -> None:
            # A token GitHub no longer accepts (revoked, or the App reinstalled) must not outlive this job.
            if response.status_code == 401 and self._tokens.get(installation_id) == token:
                del self._tokens[installation_id]

        return Repo(self._client(TokenAuthStrategy(token.token), installation_id, forget_revoked), full_name,
                    token.token)

    async def permission(self, installation_id: int, full_name: str, login: str) -> str:
        """The login's role on the repository (admin, maintain, write, triage, read or none)."""
        async with await self.repo(installation_id, full_name) as repo:
            return await repo.permission(login)

    async def installation_repositories(self, installation_id: int) -> list[dict[str, Any]]:
        """Every repository the installation can reach (`GET /installation/repositories`, 100 a page), with the
        facts a campaign selects on: topics, language, archived, default branch."""
        token = await self.token(installation_id)
        found: list[dict[str, Any]] = []
        async with self._client(TokenAuthStrategy(token.token), installation_id) as gh:
            for page in range(1, 1001):
                data = (await gh.arequest("GET", "/installation/repositories",
                                          params={"per_page": 100, "page": page})).json()
                batch = data.get("repositories") or [] if isinstance(data, dict) else []
                found += [r for r in batch if isinstance(r, dict)]
                if len(batch) < 100 or len(found) >= int(data.get("total_count") or 0):
                    break
        return found

    async def installation_of(self, full_name: str) -> int | None:
        """The id of the App's installation on a repository (`GET /repos/{owner}/{repo}/installation`, as the
        App), or None when GitHub answers 404: there is no such repository, or the App is not installed on it
        (GitHub does not say which)."""
        async with self.as_app() as gh:
            try:
                answer = (await gh.arequest("GET", f"/repos/{full_name}/installation")).json()
            except RequestFailed as exc:
                if exc.response.status_code == 404:
                    return None
                raise
        found = answer.get("id") if isinstance(answer, dict) else None
        return found if isinstance(found, int) and not isinstance(found, bool) else None


class Repo:
    """One repository, as one installation sees it: the REST calls Honk makes, answering raw JSON."""

    def __init__(self, gh: GitHub[Any], full_name: str, token: str) -> None:
        self.gh = gh
        self.full_name = full_name
        self.token = token  # for git; never written anywhere
        self._base = f"/repos/{full_name}"

    async def __aenter__(self) -> Repo:
        await self.gh.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.gh.__aexit__(*exc)  # type: ignore[arg-type]

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.gh.arequest(method, self._base + path, **kwargs)
        return response.json() if response.content else None

    async def info(self) -> dict[str, Any]:
        return await self._call("GET", "")

    async def permission(self, login: str) -> str:
        try:
            data = await self._call("GET", f"/collaborators/{login}/permission")
        except RequestFailed as exc:
            if exc.response.status_code == 404:
                return "none"  # not a collaborator at all
            raise
        role = data.get("role_name") if isinstance(data, dict) else None
        legacy = data.get("permission") if isinstance(data, dict) else None
        # A custom role reports its base level in the legacy field ("maintain" shows there as "write").
        return role if role in WRITE_ROLES else (legacy or role or "none")

    async def tree_paths(self, ref: str) -> tuple[list[str], bool]:
        """The paths of every file on `ref` (a branch, commit or tree), from one `GET /git/trees/{ref}?recursive=1`;
        True when GitHub cut the listing short (over 100,000 entries)."""
        data = await self._call("GET", f"/git/trees/{ref}", params={"recursive": "1"})
        entries = data.get("tree") or [] if isinstance(data, dict) else []
        paths = [e["path"] for e in entries if isinstance(e, dict) and e.get("type") == "blob"
                 and isinstance(e.get("path"), str)]
        return paths, bool(isinstance(data, dict) and data.get("truncated"))

    async def issue(self, number: int) -> dict[str, Any]:
        return await self._call("GET", f"/issues/{number}")

    async def issue_comments(self, number: int) -> list[dict[str, Any]]:
        comments: list[dict[str, Any]] = []
        page = 1
        while True:
            batch = await self._call("GET", f"/issues/{number}/comments", params={"per_page": 100, "page": page})
            comments += batch
            if len(batch) < 100:
                return comments
            page += 1

    async def react(self, target: str, target_id: int, content: str = "eyes") -> None:
        """React to an issue (`issue`), an issue or PR comment (`comment`), or a review comment
        (`review_comment`)."""
        path = {"issue": f"/issues/{target_id}/reactions", "comment": f"/issues/comments/{target_id}/reactions",
                "review_comment": f"/pulls/comments/{target_id}/reactions"}[target]
        await self._call("POST", path, json={"content": content})

    async def comment(self, number: int, body: str) -> dict[str, Any]:
        return await self._call("POST", f"/issues/{number}/comments", json={"body": body})

    async def edit_comment(self, comment_id: int, body: str) -> dict[str, Any]:
        return await self._call("PATCH", f"/issues/comments/{comment_id}", json={"body": body})

    async def find_pull(self, owner: str, branch: str) -> dict[str, Any] | None:
        """The newest pull request from `branch` in any state, so a retried job finds what it opened."""
        pulls = await self._call("GET", "/pulls", params={"head": f"{owner}:{branch}", "state": "all"})
        pulls = [p for p in pulls if (p.get("head") or {}).get("ref") == branch]
        open_first = sorted(pulls, key=lambda p: (p.get("state") != "open", -int(p.get("number", 0))))
        return open_first[0] if open_first else None

    async def open_pull(self, *, title: str, body: str, head: str, base: str, draft: bool) -> dict[str, Any]:
        return await self._call("POST", "/pulls", json={"title": title, "body": body, "head": head, "base": base,
                                                        "draft": draft})

    async def edit_pull(self, number: int, **fields: Any) -> dict[str, Any]:
        return await self._call("PATCH", f"/pulls/{number}", json=fields)

    async def pull(self, number: int) -> dict[str, Any]:
        return await self._call("GET", f"/pulls/{number}")

    async def review_comments(self, number: int, review_id: int | None = None) -> list[dict[str, Any]]:
        """Every review comment on the pull request, or only those of one review, oldest first."""
        path = f"/pulls/{number}/reviews/{review_id}/comments" if review_id else f"/pulls/{number}/comments"
        comments: list[dict[str, Any]] = []
        page = 1
        while True:
            batch = await self._call("GET", path, params={"per_page": 100, "page": page})
            comments += batch
            if len(batch) < 100:
                return comments
            page += 1

    async def reply(self, number: int, comment_id: int, body: str) -> dict[str, Any]:
        """Answer in a review comment's thread."""
        return await self._call("POST", f"/pulls/{number}/comments/{comment_id}/replies", json={"body": body})

    async def review_threads(self, number: int) -> list[dict[str, Any]]:
        """The pull request's review threads (GraphQL): id, isResolved, and their comments' database ids."""
        owner, name = self.full_name.split("/", 1)
        data = await self._graphql(_THREADS_QUERY, {"owner": owner, "name": name, "number": number})
        threads = data["repository"]["pullRequest"]["reviewThreads"]["nodes"]
        return [{"id": t["id"], "resolved": t["isResolved"],
                 "comment_ids": [c["databaseId"] for c in t["comments"]["nodes"]]} for t in threads]

    async def resolve_thread(self, thread_id: str) -> None:
        await self._graphql(_RESOLVE_MUTATION, {"id": thread_id})

    async def _graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """A GraphQL call. GraphQL reports its rate limit as a 200 with a RATE_LIMITED error, which githubkit
        raises after its retries are done; the pacer has learnt the limit, so asking again waits it out (and the
        pacer ends that with `RateLimitWaitTooLong` when it grows too long)."""
        for _ in range(_GRAPHQL_RATE_LIMIT_TRIES - 1):
            try:
                return await self.gh.async_graphql(query, variables)
            except RateLimitWaitTooLong:
                raise
            except RateLimitExceeded:
                continue
        return await self.gh.async_graphql(query, variables)

    async def create_issue(self, title: str, body: str, labels: list[str] | None = None) -> dict[str, Any]:
        """Open an issue as the App (labels included: GitHub keeps them only from a writer, which the App is)."""
        return await self._call("POST", "/issues", json={"title": title, "body": body, "labels": labels or []})

    async def merge(self, number: int, method: str = "merge", *, sha: str | None = None) -> dict[str, Any]:
        """Merge a pull request through GitHub's merge API (`PUT /pulls/{number}/merge`), so that branch
        protection decides; GitHub's answer (`sha`, `merged`, `message`). `sha`: merge only if the head is still
        that commit. A refusal is `MergeRefused` with GitHub's reason."""
        body = {"merge_method": method} | ({"sha": sha} if sha else {})
        try:
            return await self._call("PUT", f"/pulls/{number}/merge", json=body)
        except RequestFailed as exc:
            if exc.response.status_code in _MERGE_REFUSALS:
                raise MergeRefused(exc.response.status_code, _message(exc.response.raw_response)) from None
            raise

    async def request_review(self, number: int, login: str) -> bool:
        try:
            await self._call("POST", f"/pulls/{number}/requested_reviewers", json={"reviewers": [login]})
            return True
        except RequestFailed as exc:
            if exc.response.status_code == 422:
                return False  # e.g. the requester is not a collaborator; the PR stands without it
            raise

    # ------------------------------------------------------------------------------- checks and Actions

    async def create_check_run(self, *, name: str, head_sha: str, status: str | None = None,
                               conclusion: str | None = None, output: dict[str, Any] | None = None,
                               details_url: str | None = None, external_id: str | None = None) -> dict[str, Any]:
        """A check run of the App's on a commit (`output` is `{title, summary, text}`; a `conclusion`
        completes it)."""
        fields = {"status": status, "conclusion": conclusion, "output": output, "details_url": details_url,
                  "external_id": external_id}
        body = {"name": name, "head_sha": head_sha} | {k: v for k, v in fields.items() if v is not None}
        return await self._call("POST", "/check-runs", json=body)

    async def update_check_run(self, check_run_id: int, **fields: Any) -> dict[str, Any]:
        """Change one of the App's check runs (`status`, `conclusion`, `output`, `name`, `details_url`, ...)."""
        return await self._call("PATCH", f"/check-runs/{check_run_id}", json=fields)

    async def check_runs_for_ref(self, ref: str, **params: Any) -> list[dict[str, Any]]:
        """The latest check run of each name on a commit, branch or tag (`check_name`, `status`, `filter`
        narrow it), every page."""
        return await self._listed(f"/commits/{ref}/check-runs", "check_runs", params)

    async def check_runs_in_suite(self, suite_id: int, **params: Any) -> list[dict[str, Any]]:
        return await self._listed(f"/check-suites/{suite_id}/check-runs", "check_runs", params)

    async def workflow_run_jobs(self, run_id: int) -> list[dict[str, Any]]:
        """A GitHub Actions run's jobs, with their steps."""
        return await self._listed(f"/actions/runs/{run_id}/jobs", "jobs", {})

    async def job_log(self, job_id: int, limit: int = JOB_LOG_LIMIT) -> str:
        """A job's log as text: its last `limit` bytes. GitHub answers with a redirect to a signed URL on
        another host; it is fetched without the installation token, which must never leave GitHub's API."""
        no_follow = GitHub(self.gh.auth, config=replace(self.gh.config, follow_redirects=False))
        response = await no_follow.arequest("GET", f"{self._base}/actions/jobs/{job_id}/logs")
        if not response.is_redirect:
            return _tail(response.content, limit)
        location = response.raw_response.url.join(response.headers["location"])
        async with (httpx.AsyncClient(timeout=60, follow_redirects=True) as plain,  # no token, no GitHub headers
                    plain.stream("GET", location) as log):
            log.raise_for_status()
            kept, dropped = bytearray(), 0
            async for chunk in log.aiter_bytes():
                kept += chunk
                if len(kept) > limit:
                    dropped += len(kept) - limit
                    del kept[:len(kept) - limit]
            return _tail(bytes(kept), limit, dropped)

    async def _listed(self, path: str, key: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Every page of a listing GitHub wraps as `{"total_count", key: [...]}`."""
        items: list[dict[str, Any]] = []
        for page in range(1, 101):
            data = await self._call("GET", path, params=params | {"per_page": 100, "page": page})
            batch = data.get(key) or []
            items += batch
            if len(batch) < 100 or len(items) >= data.get("total_count", 0):
                break
        return items


def _tail(data: bytes, limit: int, dropped: int = 0) -> str:
    """The last `limit` bytes as text, saying how much was cut before them."""
    if len(data) > limit:
        dropped, data = dropped + len(data) - limit, data[-limit:]
    text = data.decode("utf-8", errors="replace")
    return f"[... {dropped} bytes of log cut ...]\n{text}" if dropped else text


_GRAPHQL_RATE_LIMIT_TRIES = 20


_MERGE_REFUSALS = frozenset({405, 409, 422})


def _message(response: httpx.Response) -> str:
    """GitHub's `message` in an error answer (its reason, in its words), else the HTTP status."""
    try:
        data = response.json()
    except ValueError:
        data = None
    message = data.get("message") if isinstance(data, dict) else None
    return message if isinstance(message, str) and message else f"HTTP {response.status_code}"


def can_write(role: str) -> bool:
    return role in WRITE_ROLES


_THREADS_QUERY = """
query($owner: String!, $name: String!, $number: Int!) {
  repository(owner: $owner, name: $name) {
    pullRequest(number: $number) {
      reviewThreads(first: 100) { nodes { id isResolved comments(first: 100) { nodes { databaseId } } } }
    }
  }
}
"""

_RESOLVE_MUTATION = """
mutation($id: ID!) { resolveReviewThread(input: {threadId: $id}) { thread { id isResolved } } }
"""
