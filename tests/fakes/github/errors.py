"""GitHub's error answers: JSON with `message`, `documentation_url` and `status` (plus `errors` for validation
failures), and the failures tests queue in `failures[route]`: `PRIMARY_RATE_LIMIT`, the secondary rate limit
(403 or 429 with `retry-after`) or a plain status. The rate-limit answers are GitHub's own (`primary_limit`,
`secondary_limit`); `ratelimit.py` also gives them when the fake enforces its limits."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

if TYPE_CHECKING:
    from tests.fakes.github.fake import FakeGitHub

DOCS = "https://docs.github.com/rest"
_RATE_LIMIT_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
_MESSAGES = {401: "Bad credentials", 404: "Not Found", 409: "Conflict", 422: "Validation Failed",
             503: "Service Unavailable"}
#: Put this in `failures[route]` for GitHub's primary rate-limit answer (403, `x-ratelimit-remaining: 0`).
PRIMARY_RATE_LIMIT = "primary_rate_limit"


def error(status: int, message: str, **extra: Any) -> HTTPException:
    return HTTPException(status, {"message": message, **extra})


def not_found() -> HTTPException:
    return error(404, "Not Found")


def invalid(resource: str, field_name: str | None = None, code: str = "invalid",
            message: str | None = None) -> HTTPException:
    entry: dict[str, Any] = {"resource": resource, "code": code}
    if field_name:
        entry["field"] = field_name
    if message:
        entry["message"] = message
    return error(422, "Validation Failed", errors=[entry])


#: GitHub's words for a secondary rate limit (tests match on "secondary rate limit").
SECONDARY_MESSAGE = ("You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If "
                     "you reach out to GitHub Support for help, please include the request ID.")


def primary_limit(who: str, limit: int, reset: int) -> tuple[int, dict[str, Any], dict[str, str]]:
    """GitHub's answer once a credential's primary limit is spent: 403, `x-ratelimit-remaining: 0` and the reset."""
    return 403, {"message": f"API rate limit exceeded for {who}.", "documentation_url": _RATE_LIMIT_DOCS}, {
        "x-ratelimit-remaining": "0", "x-ratelimit-used": str(limit), "x-ratelimit-limit": str(limit),
        "x-ratelimit-reset": str(reset)}


def secondary_limit(status: int = 403, retry_after: int | None = 1) -> tuple[int, dict[str, Any], dict[str, str]]:
    """GitHub's secondary-limit answer: 403 (or 429), its message, and `retry-after` unless None."""
    headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
    return status, {"message": SECONDARY_MESSAGE, "documentation_url": _RATE_LIMIT_DOCS}, headers


def injected_failure(gh: FakeGitHub, status: int | str) -> HTTPException:
    """The answer for one status a test queued in `failures[route]`."""
    if status == PRIMARY_RATE_LIMIT:
        code, body, headers = primary_limit(f"installation ID {gh.installation_id}", gh.rate_limit,
                                            int(time.time()) + 1)
        return HTTPException(code, body, headers=headers)
    assert isinstance(status, int)
    if status in (403, 429):
        return HTTPException(*secondary_limit(status, gh.secondary_retry_after))
    return HTTPException(status, {"message": _MESSAGES.get(status, "Server Error")})


async def github_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    body = dict(exc.detail) if isinstance(exc.detail, dict) else {"message": str(exc.detail)}
    body.setdefault("documentation_url", DOCS)
    body.setdefault("status", str(exc.status_code))
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse({"message": "Invalid request.", "documentation_url": DOCS, "status": "422"},
                        status_code=422)
