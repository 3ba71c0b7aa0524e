"""One Messages API call, streamed or not, with Honk's retry policy (the SDK's own is turned off).

Transient failures (429, 529 and other 5xx, overloaded or rate-limit errors inside a stream, Bedrock's
throttling and unavailability exceptions inside its event stream, connection errors) are retried with
exponential backoff and jitter, honouring `retry-after`. A server that asks for a longer wait than the cap,
or a wait that would outlast the run's wall-time budget, ends the call with `ModelCallError` so the run can
stop cleanly; its `transient` says the provider was failing rather than refusing the request, which is when
the agent may move to its fallback provider (loop.py).
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx2
from anthropic.types import Message

from app.agent.providers import Client, request_extras, trouble

RETRY_STATUSES = {408, 409, 429, 500, 502, 503, 504, 529}
RETRY_ERROR_TYPES = {"overloaded_error", "rate_limit_error", "api_error", "timeout_error",
                     # Bedrock's exceptions inside an event stream (their names, as the SDK passes them on)
                     "throttlingException", "serviceUnavailableException", "internalServerException",
                     "modelStreamErrorException", "modelTimeoutException"}


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_delay: float = 1.0
    max_delay: float = 60.0  # cap on one computed backoff
    max_retry_after: float = 300.0  # a server asking to wait longer than this ends the run


class ModelCallError(Exception):
    """The API call failed for good: a non-retryable error, or retries exhausted or capped."""

    def __init__(self, message: str, status: int | None = None, *, transient: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.transient = transient  # the provider kept failing (overloaded, 5xx, unreachable), not a refusal


class ContextTooLong(ModelCallError):
    """The request itself no longer fits the model's context window."""


OnRetry = Callable[[int, str, float], Awaitable[None]]


async def call_model(client: Client, params: dict[str, Any], *, stream: bool,
                     policy: RetryPolicy, deadline: float, on_retry: OnRetry) -> Message:
    params = {**params, **request_extras(client)}
    attempt = 0
    while True:
        attempt += 1
        try:
            if stream:
                async with client.messages.stream(**params) as events:
                    return await events.get_final_message()
            return await client.messages.create(**params, timeout=client.timeout)
        except anthropic.APIStatusError as exc:
            error, retryable, after = _describe(exc), _retryable(exc), _retry_after(exc.response.headers)
            if not retryable and _too_long(exc):
                raise ContextTooLong(error, exc.status_code) from None
            status: int | None = exc.status_code
        except (anthropic.APIConnectionError, httpx2.TransportError) as exc:
            error, retryable, after, status = f"connection error: {exc}", True, None, None
        except TypeError as exc:
            if "authentication" not in str(exc):
                raise
            # The SDK found no API key: ANTHROPIC_API_KEY unset.
            raise ModelCallError(f"no Anthropic credentials: {exc}") from None
        except anthropic.AnthropicError as exc:  # credentials files, response validation, ...
            raise ModelCallError(f"{type(exc).__name__}: {exc}") from None
        except Exception as exc:  # Bedrock's and Vertex's credentials, found and refreshed outside the SDK
            if (found := trouble(exc)) is None:
                raise
            (error, retryable), after, status = found, None, None
        if not retryable:
            raise ModelCallError(error, status)
        if attempt >= policy.max_attempts:
            raise ModelCallError(f"{error} (gave up after {attempt} attempts)", status, transient=True)
        if after is not None and after > policy.max_retry_after:
            raise ModelCallError(f"{error}; the API asked to wait {after:g} s, more than the "
                                 f"{policy.max_retry_after:g} s Honk waits", status, transient=True)
        wait = after if after is not None else _backoff(attempt, policy)
        if time.monotonic() + wait > deadline:
            raise ModelCallError(f"{error}; waiting {wait:.1f} s more would outlast the run's time budget",
                                 status, transient=True)
        await on_retry(attempt, error, wait)
        await asyncio.sleep(wait)


def _backoff(attempt: int, policy: RetryPolicy) -> float:
    delay = min(policy.max_delay, policy.base_delay * 2 ** (attempt - 1))
    return delay * random.uniform(0.5, 1.0)


def _retryable(exc: anthropic.APIStatusError) -> bool:
    # Errors inside a stream arrive with the stream's 200 status; their body names the error type.
    return exc.status_code in RETRY_STATUSES or exc.status_code >= 500 or exc.type in RETRY_ERROR_TYPES


def _too_long(exc: anthropic.APIStatusError) -> bool:
    message = (exc.api_message or str(exc)).lower()
    return exc.status_code in (400, 413) and ("too long" in message or "context window" in message
                                              or "context length" in message)


def _describe(exc: anthropic.APIStatusError) -> str:
    # The first-party API's error body, else Bedrock's (`{"message"}` and an x-amzn-ErrorType header) or Google's
    # (`{"error": {"message", "status"}}`, which gives api_message but no type).
    body = exc.body if isinstance(exc.body, dict) else {}
    google = body.get("error") if isinstance(body.get("error"), dict) else {}
    kind = (exc.type or exc.response.headers.get("x-amzn-errortype", "").split(":")[0] or google.get("status")
            or type(exc).__name__)
    message = exc.api_message or (body.get("message") if isinstance(body.get("message"), str) else None)
    return f"HTTP {exc.status_code} {kind}: {message or exc.message}"


def _retry_after(headers: httpx2.Headers) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (seconds or an HTTP date), if present."""
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(float(ms) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(email.utils.parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None
