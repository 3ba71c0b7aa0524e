"""GitHub's error answers: JSON with `message`, `documentation_url` and `status` (plus `errors` for validation
failures), and the failures tests queue in `failures[route]`: `PRIMARY_RATE_LIMIT`, the secondary rate limit
(403 or 429 with `retry-after`) or a plain status."""

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


def injected_failure(gh: FakeGitHub, status: int | str) -> HTTPException:
    """The answer for one status a test queued in `failures[route]`."""
    if status == PRIMARY_RATE_LIMIT:
        return HTTPException(403, {"message": f"API rate limit exceeded for installation ID {gh.installation_id}.",
                                   "documentation_url": _RATE_LIMIT_DOCS},
                             headers={"x-ratelimit-remaining": "0", "x-ratelimit-used": str(gh.rate_limit),
                                      "x-ratelimit-limit": str(gh.rate_limit),
                                      "x-ratelimit-reset": str(int(time.time()) + 1)})
    assert isinstance(status, int)
    if status in (403, 429):
        return HTTPException(status, {"message": "You have exceeded a secondary rate limit. Please wait a few "
                                                 "minutes before you try again.",
                                      "documentation_url": _RATE_LIMIT_DOCS},
                             headers={"retry-after": "1"})
    return HTTPException(status, {"message": _MESSAGES.get(status, "Server Error")})


async def github_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    body = dict(exc.detail) if isinstance(exc.detail, dict) else {"message": str(exc.detail)}
    body.setdefault("documentation_url", DOCS)
    body.setdefault("status", str(exc.status_code))
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse({"message": "Invalid request.", "documentation_url": DOCS, "status": "422"},
                        status_code=422)
