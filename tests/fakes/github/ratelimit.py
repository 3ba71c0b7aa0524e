"""GitHub's rate-limit headers: `x-ratelimit-*` (and `x-github-*`) on every API answer, not on git's, counted
per credential against `rate_limit` in a window that resets hourly. The rate-limit failures tests inject are
in `errors.py`."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.fakes.github.fake import FakeGitHub


def rate_headers(gh: FakeGitHub, key: str, resource: str) -> dict[str, str]:
    """Count one request made with the credential `key` and return the headers for its answer."""
    with gh._lock:
        if time.time() >= gh._rate_reset:
            gh._rate_reset, gh._rate_used = int(time.time()) + 3600, {}
        used = gh._rate_used[key] = gh._rate_used.get(key, 0) + 1
    return {"x-ratelimit-limit": str(gh.rate_limit), "x-ratelimit-remaining": str(max(gh.rate_limit - used, 0)),
            "x-ratelimit-reset": str(gh._rate_reset), "x-ratelimit-used": str(used),
            "x-ratelimit-resource": resource, "x-github-media-type": "github.v3; format=json",
            "x-github-request-id": uuid.uuid4().hex[:20].upper()}


class RateLimitHeaders:
    """ASGI middleware adding GitHub's rate-limit headers to every API answer (not to git's); it also sets the
    fake's `base_url` from the first request when nothing set it."""

    def __init__(self, inner: Any, github: FakeGitHub) -> None:
        self.inner = inner
        self.github = github

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or ".git/" in scope["path"]:
            await self.inner(scope, receive, send)
            return
        gh = self.github
        headers = dict(scope["headers"])
        if not gh.base_url and b"host" in headers:
            gh.base_url = f"{scope.get('scheme', 'http')}://{headers[b'host'].decode()}"
        key = headers.get(b"authorization", b"").decode()
        resource = "graphql" if scope["path"] == "/graphql" else "core"

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                have = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k.encode(), v.encode()) for k, v in rate_headers(gh, key, resource).items()
                         if k.encode() not in have]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.inner(scope, receive, send_with_headers)
