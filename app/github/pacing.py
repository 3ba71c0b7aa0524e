"""Pacing GitHub requests per installation, so that rate limits slow Honk down instead of failing its work.

GitHub's documented rules ("Best practices for using the REST API", "Rate limits for the REST API"):

- Content-creating requests (REST POST, PATCH, PUT, DELETE; GraphQL mutations): no more than 80 a minute and 500
  an hour, and "wait at least one second between each" when making many of them.
- A secondary limit answers 403 or 429. With `retry-after`, wait that many seconds; with `x-ratelimit-remaining: 0`,
  wait until `x-ratelimit-reset` (epoch seconds); with neither, wait at least a minute, exponentially longer when
  hits repeat.
- The primary limit counts requests per installation (or App JWT) and resource (core, graphql, search) per hour:
  `x-ratelimit-remaining` says what is left, `x-ratelimit-reset` when the window starts again.

A `Pacer` applies them to one App's requests, keyed by installation (the App's own JWT requests are one more key),
across every job the process runs:

1. Content-creating requests of one key go one at a time and draw on a token bucket: `burst` (20) go out
   back to back, then one per `min_interval` (1 s), counted from the previous one's answer (so the gap holds at
   GitHub however late a request leaves). Over any minute that is at most `burst + 60 / min_interval` (80 with the
   defaults: GitHub's ceiling); `per_hour` (500) caps the hour. A secondary-limit hit empties the bucket: after
   one, content is spaced strictly until the installation has been quiet a while.
2. After every answer, `x-ratelimit-remaining` at or below `reserve_share` of the limit (50 of 5000) holds further
   requests of that key and resource until `x-ratelimit-reset`.
3. A secondary-limit answer pauses every request of the key for `retry-after` (or until the reset, or `backoff`
   seconds doubling on consecutive hits up to `max_backoff`); the request is retried after the pause
   (`GitHubRetry`).

Waiting is `asyncio.sleep` (a worker's heartbeat keeps the job's lease meanwhile). A request whose waits would
add up to more than `max_wait` (15 minutes) is not sent: `RateLimitWaitTooLong` names the limit and when it
resets, and the job is retried from the queue. Each pause is logged and counted (`honk_github_rate_limit_*`).

githubkit gives two hooks for this: its `throttler` wraps every send (the wait goes there; an exception raised
there reaches the caller as it is) and httpx's response event hook sees every answer's headers.
"""

from __future__ import annotations

import asyncio
import contextvars
import email.utils
import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Generator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
from githubkit.exception import RateLimitExceeded
from githubkit.response import Response
from githubkit.throttling import BaseThrottler

from app.telemetry import PROCESS as PROCESS_METRICS

log = logging.getLogger("honk.github")

CONTENT_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
#: Whose requests share limits: an installation id, or None for the App itself (its JWT).
Key = int | None
Kind = Literal["secondary", "primary"]

# The wait one request has sat through since its last answer that was not a rate limit: githubkit retries a
# request in the task that made it, so this adds up the waits of one request and its retries.
_WAITED: contextvars.ContextVar[float] = contextvars.ContextVar("honk_github_waited", default=0.0)
_POLL = 0.02  # seconds between looks while another content-creating request of the key is out
_SPACING = "Honk's spacing of content-creating requests"


class RateLimitWaitTooLong(RateLimitExceeded):
    """GitHub holds an installation's requests for longer than Honk waits within one attempt of a job. The
    request was not sent; the job fails and is retried from the queue."""

    def __init__(self, response: Response[Any], retry_after: timedelta, message: str) -> None:
        super().__init__(response, retry_after)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"RateLimitWaitTooLong({self.message!r})"


@dataclass(frozen=True)
class Limit:
    """A rate-limit answer: which limit, and how long GitHub said to wait (None: it did not say)."""

    kind: Kind
    resource: str
    wait: float | None
    said: str  # what told the wait: "retry-after", "reset" (x-ratelimit-reset) or "nothing"
    message: str


def who(key: Key) -> str:
    return "the App" if key is None else f"installation {key}"


def resource_of(request: httpx.Request) -> str:
    """The primary-limit bucket a request draws on, as GitHub names it in `x-ratelimit-resource`."""
    path = request.url.path
    if path.endswith("/graphql"):
        return "graphql"
    if "/search/" in path:
        return "search"
    return "core"


def creates_content(request: httpx.Request) -> bool:
    """POST, PATCH, PUT and DELETE on REST; on GraphQL (always POST), a mutation."""
    if request.method.upper() not in CONTENT_METHODS:
        return False
    if not request.url.path.endswith("/graphql"):
        return True
    try:
        query = json.loads(request.content or b"{}").get("query", "")
    except (ValueError, AttributeError, httpx.RequestNotRead):
        return True  # unreadable: count it, the safer guess
    return _operation(str(query)) == "mutation"


def _operation(query: str) -> str:
    for line in query.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            return "mutation" if line.startswith("mutation") else "query"
    return "query"


def limit_of(response: httpx.Response) -> Limit | None:
    """The rate limit an answer reports, or None. Needs the body read for 403, 429 and GraphQL answers (the
    message tells a secondary limit from a refusal, and GraphQL reports its limit as a 200 with errors)."""
    headers = response.headers
    resource = headers.get("x-ratelimit-resource") or resource_of(response.request)
    remaining = _int(headers.get("x-ratelimit-remaining"))
    reset = _int(headers.get("x-ratelimit-reset"))
    until_reset = max(reset - time.time(), 0.0) if reset is not None else None
    status = response.status_code
    body = _json(response) if status in (403, 429) or resource == "graphql" else None
    message = str(body.get("message") or "") if isinstance(body, dict) else ""
    said = "reset" if until_reset is not None else "nothing"
    if status in (403, 429):
        retry_after = _retry_after(headers.get("retry-after"))
        if retry_after is not None:
            return Limit("secondary", resource, retry_after, "retry-after", message or "retry-after")
        if "secondary rate limit" in message.lower() or "abuse" in message.lower():
            if remaining == 0 and until_reset is not None:
                return Limit("secondary", resource, until_reset, "reset", message)
            return Limit("secondary", resource, None, "nothing", message)
        if remaining == 0:
            return Limit("primary", resource, until_reset, said, message or "x-ratelimit-remaining: 0")
        if status == 429:  # too many requests, whatever it says
            return Limit("secondary", resource, None, "nothing", message or "429 Too Many Requests")
        return None  # a refusal: no permission, a blocked resource
    if status == 200 and isinstance(body, dict):
        limited = [e for e in body.get("errors") or []
                   if isinstance(e, dict) and e.get("type") in ("RATE_LIMIT", "RATE_LIMITED")]
        if limited:
            return Limit("primary", "graphql", until_reset, said, str(limited[0].get("message") or "RATE_LIMITED"))
    return None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _retry_after(value: str | None) -> float | None:
    """`retry-after` in seconds (GitHub sends seconds; an HTTP date is allowed too)."""
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max((moment - datetime.now(UTC)).total_seconds(), 0.0)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (ValueError, httpx.ResponseNotRead, UnicodeDecodeError):
        return None


@dataclass
class _Hold:
    """Requests wait until `until` (monotonic); `ends` is the same moment as epoch seconds, for messages."""

    until: float
    ends: float
    what: str  # the limit, in words, and whose it is ("GitHub's secondary rate limit")
    reason: str  # for metrics: secondary, primary, content
    response: httpx.Response | None = None


@dataclass
class _State:
    tokens: float
    refilled: float
    pause: _Hold | None = None  # a secondary limit: every request of the key waits
    holds: dict[str, _Hold] = field(default_factory=dict)  # by resource: the primary limit is (nearly) spent
    strikes: int = 0  # consecutive secondary-limit hits without an answer in between
    hour: deque[float] = field(default_factory=deque)  # when content-creating requests went out, last hour
    sending: bool = False  # a content-creating request is out: the next waits for its answer
    drained: bool = False  # it took the last of the burst: the next one's interval starts at its answer


class Pacer:
    """Paces one App's requests per installation (see the module's docstring). Share one per App and process:
    `GitHubApp.for_settings` does, so every job of a worker goes through the same one."""

    def __init__(self, *, min_interval: float = 1.0, burst: int = 20, per_hour: int = 500,
                 reserve_share: float = 0.01, max_wait: float = 900.0, backoff: float = 60.0,
                 max_backoff: float = 600.0, reset_margin: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.min_interval = min_interval
        self.burst = max(burst, 1)
        self.per_hour = per_hour
        self.reserve_share = reserve_share
        self.max_wait = max_wait
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.reset_margin = reset_margin  # GitHub's reset is whole seconds: arrive just after it
        self.clock = clock
        self._states: dict[Key, _State] = {}
        self._lock = threading.Lock()  # no awaits inside: state changes are instant

    # ------------------------------------------------------------------------------------ the githubkit hooks

    def throttler(self, key: Key) -> BaseThrottler:
        """githubkit's `throttler` for a client acting as `key`: every request waits its turn first."""
        return _Throttler(self, key)

    def observer(self, key: Key) -> Callable[[httpx.Response], Any]:
        """An httpx response hook for a client acting as `key`: learns the limits from every answer."""

        async def observe(response: httpx.Response) -> None:
            if response.status_code in (403, 429) or response.request.url.path.endswith("/graphql"):
                await response.aread()  # small bodies; httpx keeps them for the caller
            self.after(key, response)

        return observe

    # ------------------------------------------------------------------------------------------- the rules

    async def before(self, key: Key, request: httpx.Request) -> bool:
        """Wait until `request` may go out as `key`, or raise `RateLimitWaitTooLong`. True when it is a
        content-creating request: then `done` must follow its answer."""
        resource, content = resource_of(request), creates_content(request)
        while True:
            with self._lock:
                state = self._state(key)
                now = self.clock()
                hold = self._hold(state, resource, now)
                if hold is None and content:
                    hold = self._take_content_slot(state, now)
                waited = _WAITED.get()
                if hold is None:
                    return content
                wait = hold.until - now
                if waited + wait > self.max_wait:
                    _WAITED.set(0.0)
                    raise self._too_long(key, hold, request, wait, waited)
            if hold.reason != "content":
                log.info("%s: %s waits %.1f s", hold.what, who(key), wait)
            await asyncio.sleep(wait)
            _WAITED.set(waited + wait)
            PROCESS_METRICS.github_rate_limit_waited(hold.reason, wait)

    def done(self, key: Key) -> None:
        """A content-creating request of `key` has its answer (or failed): the next may go. With no burst left,
        not before `min_interval` from now: spacing counted from the answer holds however late a request left."""
        with self._lock:
            state, now = self._state(key), self.clock()
            state.sending = False
            if state.drained:
                # No burst was left when it went out: the time it spent in flight earns nothing (a slow answer
                # must not let the next request follow it at once).
                state.drained = False
                state.tokens, state.refilled = 0.0, max(state.refilled, now)
                return
            self._refill(state, now)
            if state.tokens < 1:
                state.tokens, state.refilled = 0.0, max(state.refilled, now)

    def after(self, key: Key, response: httpx.Response) -> None:
        """Learn from an answer to a request made as `key`: the primary limit's headers, secondary limits."""
        limit = limit_of(response)
        remaining, ceiling = (_int(response.headers.get(h)) for h in ("x-ratelimit-remaining", "x-ratelimit-limit"))
        reset = _int(response.headers.get("x-ratelimit-reset"))
        resource = response.headers.get("x-ratelimit-resource") or resource_of(response.request)
        with self._lock:
            state, now, wall = self._state(key), self.clock(), time.time()
            if limit is None:
                state.strikes = 0
                _WAITED.set(0.0)
            elif limit.kind == "secondary":
                self._pause(state, key, limit, response, now, wall)
            if limit is not None and limit.kind == "primary":  # (GraphQL's may say remaining > 0: it is not)
                self._hold_primary(state, key, limit.resource, remaining or 0, ceiling or 0, reset, response, now,
                                   wall)
            elif remaining is not None and ceiling and reset is not None:
                reserve = max(math.ceil(ceiling * self.reserve_share), 1) if self.reserve_share > 0 else 0
                if remaining <= reserve:
                    self._hold_primary(state, key, resource, remaining, ceiling, reset, response, now, wall)
                else:
                    state.holds.pop(resource, None)  # a new window

    # ----------------------------------------------------------------------------------------------- inside

    def _state(self, key: Key) -> _State:
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = _State(tokens=float(self.burst), refilled=self.clock())
        return state

    @staticmethod
    def _hold(state: _State, resource: str, now: float) -> _Hold | None:
        holds = [h for h in (state.pause, state.holds.get(resource)) if h is not None and h.until > now]
        return max(holds, key=lambda h: h.until) if holds else None

    def _refill(self, state: _State, now: float) -> None:
        state.tokens = min(self.burst, state.tokens + max(now - state.refilled, 0.0) / self.min_interval) \
            if self.min_interval > 0 else float(self.burst)
        state.refilled = max(now, state.refilled)

    def _take_content_slot(self, state: _State, now: float) -> _Hold | None:
        """Take a content-creating request's turn now (None), or say how long until there is one. One at a time
        per key, as GitHub advises: the next waits for the answer."""
        if state.sending:
            return _Hold(now + _POLL, time.time() + _POLL, _SPACING, "content")
        self._refill(state, now)
        while state.hour and state.hour[0] <= now - 3600:
            state.hour.popleft()
        if self.per_hour and len(state.hour) >= self.per_hour:
            until = state.hour[0] + 3600
            return _Hold(until, time.time() + until - now,
                         f"GitHub's content-creation limit ({self.per_hour} an hour)", "content")
        if state.tokens < 1:
            until = now + (1 - state.tokens) * self.min_interval
            return _Hold(until, time.time() + until - now, _SPACING, "content")
        state.tokens -= 1
        state.drained = state.tokens < 1
        state.hour.append(now)
        state.sending = True
        return None

    def _pause(self, state: _State, key: Key, limit: Limit, response: httpx.Response, now: float,
               wall: float) -> None:
        current = state.pause
        if current is None or current.until <= now:
            state.strikes += 1  # a new hit, not another answer to requests sent before the pause began
        if limit.wait is None:  # GitHub did not say: a minute, doubling while hits repeat
            wait = min(self.backoff * 2 ** (state.strikes - 1), self.max_backoff)
        else:
            wait = limit.wait + (self.reset_margin if limit.said == "reset" else 0.0)
        wait = max(wait, 1.0)
        # After a hit no burst is left: content-creating requests resume strictly spaced, one at the pause's end.
        refill = wait / self.min_interval if self.min_interval > 0 else 1.0
        state.tokens, state.refilled = min(state.tokens + refill, 1.0), max(state.refilled, now + wait)
        state.drained = False  # the pause's own rule decides when the next one goes
        if current is not None and current.until >= now + wait:
            return
        said = {"retry-after": "as retry-after says", "reset": "until x-ratelimit-reset"}.get(limit.said,
                                                                                         "no wait given")
        state.pause = _Hold(now + wait, wall + wait, "GitHub's secondary rate limit", "secondary", response)
        log.warning("GitHub secondary rate limit on %s %s: %s pauses for %.0f s (%s, hit %d in a row): %s",
                    response.request.method, response.request.url.path, who(key), wait, said, state.strikes,
                    limit.message[:200])
        PROCESS_METRICS.github_rate_limit_paused("secondary")

    def _hold_primary(self, state: _State, key: Key, resource: str, remaining: int, ceiling: int,
                      reset: int | None, response: httpx.Response, now: float, wall: float) -> None:
        if reset is not None and reset > wall - 5:
            wait = max(reset - wall, 0.0) + self.reset_margin
        else:  # no reset given (or a stale one): a minute, doubling while hits repeat
            state.strikes += 1
            wait = min(self.backoff * 2 ** (state.strikes - 1), self.max_backoff)
        current = state.holds.get(resource)
        if current is not None and current.until >= now + wait - 0.5:
            return
        what = f"GitHub's primary rate limit ({resource}: {remaining} of {ceiling} left)" if ceiling else \
            f"GitHub's primary rate limit ({resource})"
        state.holds[resource] = _Hold(now + wait, wall + wait, what, "primary", response)
        log.warning("%s: %s holds its %s requests for %.0f s, until the reset", what, who(key), resource, wait)
        PROCESS_METRICS.github_rate_limit_paused("primary")

    def _too_long(self, key: Key, hold: _Hold, request: httpx.Request, wait: float,
                  waited: float) -> RateLimitWaitTooLong:
        ends = datetime.fromtimestamp(hold.ends, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        message = (f"{hold.what} holds {who(key)} until {ends}: {wait:.0f} s more"
                   + (f" after {waited:.0f} s waited" if waited >= 1 else "")
                   + f", beyond the {self.max_wait:.0f} s Honk waits within one attempt; it will try again later")
        log.warning("%s (%s %s not sent)", message, request.method, request.url.path)
        response = hold.response or httpx.Response(
            429, request=request, headers={"retry-after": str(math.ceil(wait))},
            json={"message": hold.what})
        return RateLimitWaitTooLong(Response(response, Any), timedelta(seconds=wait), message)


class _Throttler(BaseThrottler):
    """githubkit's throttler: wraps every send of a client. The sync side is not paced (Honk is async)."""

    def __init__(self, pacer: Pacer, key: Key) -> None:
        self.pacer = pacer
        self.key = key

    @contextmanager
    def acquire(self, request: httpx.Request) -> Generator[None, Any, Any]:
        yield

    @asynccontextmanager
    async def async_acquire(self, request: httpx.Request) -> AsyncGenerator[None, Any]:
        content = await self.pacer.before(self.key, request)
        try:
            yield
        finally:
            if content:
                self.pacer.done(self.key)
