"""Honk's bot in Slack: the few Web API methods it calls, on `slack_sdk`'s `AsyncWebClient`, against
`SLACK_API_URL`.

Slack answers a busy method with HTTP 429 and `Retry-After`, and sometimes a 5xx; both are retried here a bounded
number of times (the wait Slack asks for, or exponential backoff), so a status message survives a burst of
edits. A wait longer than `max_wait` is not slept through: the `SlackError` says `retry_after`, and the caller
(a queued job) retries later instead of holding a worker. Every other failure is one `SlackError` with Slack's
error code and a sentence for people.

The bot token lives in the SDK's client and in no message, exception, repr or log line of Honk's: the SDK sends
it as `Authorization: Bearer` and redacts that header in its own debug log.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from pydantic import SecretStr
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.http_retry.jitter import Jitter
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from app.settings import Settings

log = logging.getLogger("honk.slack")

DEFAULT_API_URL = "https://slack.com/api/"
RETRIED_STATUSES = frozenset({500, 502, 503, 504})  # the SDK's own handler only knows 500 and 503
# Slack's codes (and Honk's own, for failures before Slack answered) after which the same call may succeed later.
RETRYABLE = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout",
                       "connection_failed", "timeout"})

# Sentences for the codes Honk meets; others fall back to a generic one that still names the code.
_SENTENCES = {
    "not_authed": "no Slack bot token was sent (SLACK_BOT_TOKEN)",
    "invalid_auth": "Slack did not accept the bot token (SLACK_BOT_TOKEN); check it in the Slack app's settings",
    "token_revoked": "the Slack bot token was revoked: the app was uninstalled from the workspace",
    "token_expired": "the Slack bot token expired; reinstall the app or turn off token rotation",
    "account_inactive": "the Slack bot's account is deactivated",
    "missing_scope": "the Slack app lacks a permission scope this needs; add it and reinstall the app",
    "channel_not_found": "Slack does not know that channel, or the bot cannot see it",
    "not_in_channel": "the bot is not a member of that channel; invite it with /invite @Honk",
    "is_archived": "that channel is archived",
    "message_not_found": "that message no longer exists in Slack",
    "cant_update_message": "the bot cannot edit that message (it did not write it)",
    "edit_window_closed": "Slack no longer lets that message be edited",
    "msg_too_long": "the message is too long for Slack",
    "no_text": "the message had no text",
    "invalid_blocks": "Slack refused the message's blocks",
    "invalid_blocks_format": "the message's blocks are not a JSON array",
    "user_not_found": "Slack does not know that user",
    "user_not_in_channel": "that user is not in the channel",
    "ratelimited": "Slack is rate limiting this method",
    "internal_error": "Slack had an internal error",
    "fatal_error": "Slack had an internal error",
    "service_unavailable": "Slack is unavailable",
    "request_timeout": "Slack timed out",
    "connection_failed": "Slack could not be reached",
    "timeout": "Slack did not answer in time",
    "not_configured": "Slack is not configured: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET",
}


class SlackError(Exception):
    """A Slack Web API call that failed: Slack's `error` code (`invalid_auth`, `channel_not_found`, ...; `http_502`
    when Slack sent no code; `connection_failed` or `timeout` when it did not answer), a sentence, the HTTP status,
    the `Retry-After` seconds of a rate limit, and Slack's details (the block errors of `invalid_blocks`)."""

    def __init__(self, error: str, message: str | None = None, *, method: str = "", status: int | None = None,
                 retry_after: float | None = None, details: list[str] | None = None) -> None:
        self.error = error
        self.method = method
        self.status = status
        self.retry_after = retry_after
        self.details = details or []
        self.sentence = message or _SENTENCES.get(error) or f"Slack refused the call ({error})"
        where = f"Slack {method}: " if method else "Slack: "
        super().__init__(f"{where}{self.sentence} ({error})" + (f": {'; '.join(self.details[:5])}"
                                                                  if self.details else ""))

    @property
    def retryable(self) -> bool:
        """Whether the same call may succeed later (a rate limit, Slack's own failure, no answer)."""
        return self.error in RETRYABLE or (self.status is not None and self.status >= 500)


class _RateLimitRetry(AsyncRateLimitErrorRetryHandler):
    """Slack's 429: wait `Retry-After` (plus a little jitter, so edits of many threads do not return together),
    unless Slack asks for longer than `max_wait`: then the 429 becomes a `SlackError` the caller can reschedule."""

    def __init__(self, max_retry_count: int, max_wait: float, jitter: float) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait, self.jitter = max_wait, jitter

    async def _can_retry_async(self, *, state: RetryState, request: HttpRequest,
                               response: HttpResponse | None = None, error: Exception | None = None) -> bool:
        return response is not None and response.status_code == 429 and _retry_after(response) <= self.max_wait

    async def prepare_for_next_attempt_async(self, *, state: RetryState, request: HttpRequest,
                                             response: HttpResponse | None = None,
                                             error: Exception | None = None) -> None:
        wait = _retry_after(response) + random.uniform(0, self.jitter) if response is not None else 1.0
        log.info("Slack rate limited %s; retrying in %.1f s", _method_of(request.url), wait)
        state.next_attempt_requested = True
        await asyncio.sleep(wait)
        state.increment_current_attempt()


class _ServerErrorRetry(AsyncServerErrorRetryHandler):
    """Slack's 5xx (the SDK's handler retries only 500 and 503; a proxy's 502 and 504 are as passing)."""

    async def _can_retry_async(self, *, state: RetryState, request: HttpRequest,
                               response: HttpResponse | None = None, error: Exception | None = None) -> bool:
        if response is not None and response.status_code in RETRIED_STATUSES:
            log.info("Slack answered %s to %s; retrying", response.status_code, _method_of(request.url))
            return True
        return False


class _Jitter(Jitter):
    """Up to as much again as the backoff, at most `limit` seconds (the SDK's adds up to a whole second, which a
    test's 10 ms backoff would drown in)."""

    def __init__(self, limit: float) -> None:
        self.limit = limit

    def recalculate(self, duration: float) -> float:
        return duration + random.uniform(0, min(self.limit, duration))


def _retry_after(response: HttpResponse | None) -> float:
    if response is None:
        return 1.0
    for key, values in response.headers.items():
        if key.lower() == "retry-after":
            value = values[0] if isinstance(values, list) and values else values
            try:
                return max(float(str(value)), 0.0)
            except ValueError:
                break
    return 1.0  # Slack always sends it; a missing one still must not spin


def _method_of(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


class SlackClient:
    """The bot's Web API calls. `retries` bounds the retries of one call (429s, 5xx and dropped connections
    together); `backoff` is the first wait after a 5xx or a dropped connection, in seconds (doubling each time);
    `jitter` the most seconds of randomness added to a wait (a 429's `Retry-After` included)."""

    def __init__(self, token: str | SecretStr, base_url: str = DEFAULT_API_URL, *, retries: int = 3,
                 max_wait: float = 30.0, backoff: float = 0.5, jitter: float = 1.0, timeout: int = 30,
                 session: aiohttp.ClientSession | None = None) -> None:
        secret = token.get_secret_value() if isinstance(token, SecretStr) else token
        if not secret:
            raise SlackError("not_configured")
        # slack_sdk joins method names onto base_url, which needs its trailing slash (Settings strips it).
        self.base_url = base_url.rstrip("/") + "/"
        backoffs = BackoffRetryIntervalCalculator(backoff_factor=backoff, jitter=_Jitter(jitter))
        handlers: list[AsyncRetryHandler] = [
            _RateLimitRetry(retries, max_wait, jitter),
            _ServerErrorRetry(max_retry_count=retries, interval_calculator=backoffs),
            AsyncConnectionErrorRetryHandler(max_retry_count=retries, interval_calculator=backoffs),
        ]
        self._web = AsyncWebClient(token=secret, base_url=self.base_url, timeout=timeout, session=session,
                                   retry_handlers=handlers, logger=logging.getLogger("honk.slack.sdk"))

    @classmethod
    def for_settings(cls, settings: Settings, **options: Any) -> SlackClient:
        """The bot of `SLACK_BOT_TOKEN` at `SLACK_API_URL`; `SlackError("not_configured")` without a token."""
        if settings.slack_bot_token is None:
            raise SlackError("not_configured")
        return cls(settings.slack_bot_token, settings.slack_api_url, **options)

    def __repr__(self) -> str:
        return f"SlackClient({self.base_url!r})"  # never the token

    # ------------------------------------------------------------------------------------------- methods

    async def post(self, channel: str, blocks: list[dict[str, Any]], text: str, thread_ts: str | None = None) -> str:
        """Post a message (a reply in the thread `thread_ts`); its `ts`. Links are not unfurled: a pull request's
        preview card would make the message longer than a phone screen."""
        extra: dict[str, Any] = {"thread_ts": thread_ts} if thread_ts else {}
        data = await self._call("chat.postMessage", lambda: self._web.chat_postMessage(
            channel=channel, blocks=blocks, text=text, unfurl_links=False, unfurl_media=False, **extra))
        return str(data.get("ts") or "")

    async def update(self, channel: str, ts: str, blocks: list[dict[str, Any]], text: str) -> None:
        """Edit the bot's message `ts` in place (the status message)."""
        await self._call("chat.update", lambda: self._web.chat_update(channel=channel, ts=ts, blocks=blocks,
                                                                      text=text))

    async def ephemeral(self, channel: str, user: str, blocks: list[dict[str, Any]], text: str,
                        thread_ts: str | None = None) -> str:
        """A message only `user` sees in `channel` (the link prompt, refusals); its `message_ts`."""
        extra: dict[str, Any] = {"thread_ts": thread_ts} if thread_ts else {}
        data = await self._call("chat.postEphemeral", lambda: self._web.chat_postEphemeral(
            channel=channel, user=user, blocks=blocks, text=text, **extra))
        return str(data.get("message_ts") or "")

    async def permalink(self, channel: str, ts: str) -> str:
        """The web link to a message, for the GitHub issue to point back at the thread."""
        data = await self._call("chat.getPermalink",
                                lambda: self._web.chat_getPermalink(channel=channel, message_ts=ts))
        return str(data.get("permalink") or "")

    async def user(self, user_id: str) -> dict[str, Any]:
        """`users.info`'s user object (name, real_name, profile, tz, is_bot, ...)."""
        data = await self._call("users.info", lambda: self._web.users_info(user=user_id))
        user = data.get("user")
        return user if isinstance(user, dict) else {}

    async def auth(self) -> dict[str, Any]:
        """`auth.test`: who the token is (team_id, user_id, bot_id, url), for `honk doctor` and start-up."""
        data = await self._call("auth.test", lambda: self._web.auth_test())
        return {k: v for k, v in data.items() if k != "ok"}

    # ------------------------------------------------------------------------------------------- internals

    async def _call(self, method: str, send: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
        """Run one SDK call (its retries included) and turn every failure into a `SlackError`. The SDK's own
        exception is not chained: its text quotes Slack's answer, and aiohttp's keep the request's headers."""
        try:
            response = await send()
        except SlackApiError as exc:
            raise _api_error(method, exc) from None
        except TimeoutError:
            raise SlackError("timeout", method=method) from None
        except aiohttp.ClientError as exc:
            raise SlackError("connection_failed", f"Slack could not be reached ({type(exc).__name__})",
                             method=method) from None
        except SlackClientError as exc:
            raise SlackError("request_failed", f"the Slack client refused the call ({type(exc).__name__})",
                             method=method) from None
        data = response.data
        return data if isinstance(data, dict) else {}


def _api_error(method: str, exc: SlackApiError) -> SlackError:
    response = exc.response
    status = getattr(response, "status_code", None)
    data = getattr(response, "data", None)
    data = data if isinstance(data, dict) else {}
    code = data.get("error") if isinstance(data.get("error"), str) else None
    code = code or (f"http_{status}" if status and status != 200 else "unknown_error")
    retry_after: float | None = None
    headers = getattr(response, "headers", None) or {}
    for key, value in dict(headers).items():
        if key.lower() == "retry-after":
            try:
                retry_after = float(value[0] if isinstance(value, list) else value)
            except (TypeError, ValueError, IndexError):
                retry_after = None
    details = [str(e) for e in data.get("errors") or [] if isinstance(e, str)]
    if not details:
        messages = (data.get("response_metadata") or {}).get("messages") or []
        details = [str(m) for m in messages if isinstance(m, str)]
    message = None
    if code.startswith("http_"):
        message = f"Slack answered HTTP {status}"
    elif code == "ratelimited" and retry_after is not None:
        message = f"Slack is rate limiting this method; it asks to wait {retry_after:g} s"
    return SlackError(code, message, method=method, status=status, retry_after=retry_after, details=details)
