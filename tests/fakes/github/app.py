"""The fake's FastAPI app: the routers of `routes/` in the order their paths are matched, the rate-limit
headers middleware, and GitHub's error JSON for every failure."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from tests.fakes.github.errors import github_error, invalid_request
from tests.fakes.github.ratelimit import RateLimitHeaders
from tests.fakes.github.routes import apps, checks, git, graphql, issues, manifests, oauth, pulls, repos, reviews, users

if TYPE_CHECKING:
    from tests.fakes.github.fake import FakeGitHub

ROUTERS = (apps.router, users.router, repos.router, issues.router, pulls.router, reviews.router, checks.router,
           graphql.router, git.router, manifests.router, oauth.router)


def build_app(gh: FakeGitHub) -> FastAPI:
    """The app serving `gh`; routes reach it as `app.state.github` (see `api.GitHub`)."""
    app = FastAPI()
    app.state.github = gh
    app.add_middleware(RateLimitHeaders, github=gh)
    app.add_exception_handler(StarletteHTTPException, github_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    for router in ROUTERS:
        app.include_router(router)
    return app
