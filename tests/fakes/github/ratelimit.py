"""GitHub's rate limits: `x-ratelimit-*` (and `x-github-*`) headers on every API answer, not on git's, counted per
credential against `rate_limit` in a window of `rate_window` seconds (an hour, as GitHub's), and, when a test
asks, the limits enforced as GitHub enforces them:

- `enforce_rate_limit`: a credential that spent `rate_limit` gets GitHub's primary-limit answer (403,
  `x-ratelimit-remaining: 0`) until the window resets (set `rate_window` to seconds in tests);
- `secondary_share`: that share of API requests (drawn from `seed`) gets the secondary-limit answer (403, or
  `secondary_status`, with `retry-after: secondary_retry_after` and GitHub's message);
- `content_interval`: a content-creating request (POST, PATCH, PUT, DELETE; a GraphQL mutation) of an
  installation arriving sooner than that after its last accepted one gets the secondary-limit answer.

A rate-limited request never reaches its route: nothing is created, and `requests` does not list it. Every API
request is listed in `metered` (arrival time, installation, content-creating or not, the limit it met, queued
rate-limit `failures` included), which `content_requests` and `rate_limited` read. The failures tests queue per
route are in `errors.py` (their secondary limits say `retry-after: secondary_retry_after` too)."""

from __future__ import annotations

import json
import math
import time
import uuid
from typing import TYPE_CHECKING, Any

from fastapi.responses import JSONResponse

from tests.fakes.github.auth import token_installation
from tests.fakes.github.errors import primary_limit, secondary_limit
from tests.fakes.github.state import Metered

if TYPE_CHECKING:
    from tests.fakes.github.fake import FakeGitHub

CONTENT_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})


def count(gh: FakeGitHub, key: str) -> tuple[int, bool]:
    """Count one request made with the credential `key`: how many it has used in this window, and whether it is
    over the limit (only when enforced; the refused request is not counted)."""
    with gh._lock:
        now = time.time()
        if now >= gh._rate_reset:
            gh._rate_reset, gh._rate_used = math.ceil(now + gh.rate_window), {}
        used = gh._rate_used.get(key, 0)
        if gh.enforce_rate_limit and used >= gh.rate_limit:
            return used, True
        used = gh._rate_used[key] = used + 1
        return used, False


def rate_headers(gh: FakeGitHub, used: int, resource: str) -> dict[str, str]:
    """The headers of an answer to a credential that has made `used` requests in this window."""
    return {"x-ratelimit-limit": str(gh.rate_limit), "x-ratelimit-remaining": str(max(gh.rate_limit - used, 0)),
            "x-ratelimit-reset": str(gh._rate_reset), "x-ratelimit-used": str(used),
            "x-ratelimit-resource": resource, "x-github-media-type": "github.v3; format=json",
            "x-github-request-id": uuid.uuid4().hex[:20].upper()}


def installation_of(gh: FakeGitHub, authorization: str) -> int | None:
    """The installation whose token the request carries; None for the App's JWT (or no credential)."""
    scheme, _, token = authorization.partition(" ")
    return token_installation(gh, token) if scheme.lower() in ("token", "bearer") else None


def creates_content(method: str, path: str, body: bytes) -> bool:
    if method.upper() not in CONTENT_METHODS:
        return False
    if path != "/graphql":
        return True
    try:
        query = str(json.loads(body or b"{}").get("query", ""))
    except (ValueError, AttributeError):
        return False
    return query.lstrip().startswith("mutation")


class RateLimitHeaders:
    """ASGI middleware: GitHub's rate-limit headers on every API answer (not on git's), and the limits enforced
    when a test turns them on; it also sets the fake's `base_url` from the first request when nothing set it."""

    def __init__(self, inner: Any, github: FakeGitHub) -> None:
        self.inner = inner
        self.github = github

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or ".git/" in scope["path"]:
            await self.inner(scope, receive, send)
            return
        gh = self.github
        arrived = time.monotonic()
        headers = dict(scope["headers"])
        if not gh.base_url and b"host" in headers:
            gh.base_url = f"{scope.get('scheme', 'http')}://{headers[b'host'].decode()}"
        key = headers.get(b"authorization", b"").decode()
        path, method = scope["path"], scope["method"]
        resource = "graphql" if path == "/graphql" else "core"
        body = b""
        if path == "/graphql":  # a mutation creates content, a query does not: read the body, then replay it
            receive, body = await _buffered(receive)
        metered = Metered(arrived, installation_of(gh, key), method, path, creates_content(method, path, body))
        used, over = count(gh, key)
        limited = self._limit(gh, metered, over)
        with gh._lock:
            gh.metered.append(metered)
        if limited is not None:
            status, answer, extra = limited
            response = JSONResponse(answer | {"status": str(status)}, status_code=status,
                                    headers=rate_headers(gh, used, resource) | extra)
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                have = {k.lower() for k, _ in message.get("headers", [])}
                if message.get("status") in (403, 429):  # a rate limit a test queued in `failures`
                    given = {k.lower(): v for k, v in message.get("headers", [])}
                    limited = "secondary" if b"retry-after" in given else \
                        "primary" if given.get(b"x-ratelimit-remaining") == b"0" else None
                    if limited:
                        with gh._lock:
                            metered.limited = limited
                extra = [(k.encode(), v.encode()) for k, v in rate_headers(gh, used, resource).items()
                         if k.encode() not in have]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.inner(scope, receive, send_with_headers)

    @staticmethod
    def _limit(gh: FakeGitHub, metered: Metered, over: bool) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        """The rate-limit answer this request gets, if any (and `metered.limited` says which)."""
        if over:
            metered.limited = "primary"
            who = "the App" if metered.installation is None else f"installation ID {metered.installation}"
            return primary_limit(who, gh.rate_limit, gh._rate_reset)
        with gh._lock:
            secondary = gh.secondary_share > 0 and gh._random.random() < gh.secondary_share
            if metered.content and gh.content_interval > 0:
                last = gh._last_content.get(metered.installation)
                secondary = secondary or (last is not None and metered.at - last < gh.content_interval)
            if metered.content and not secondary:
                gh._last_content[metered.installation] = metered.at
        if secondary:
            metered.limited = "secondary"
            return secondary_limit(gh.secondary_status, gh.secondary_retry_after)
        return None


async def _buffered(receive: Any) -> tuple[Any, bytes]:
    """Read a request's whole body; return a `receive` that replays it, and the body."""
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body, sent = b"".join(chunks), False

    async def replay() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay, body
