"""What the routes share: the `GitHub` dependency (the `FakeGitHub` an app serves, from `app.state.github`),
`gate` (record the request, then apply the delay and failure a test scripted for its route), JSON bodies,
repository lookup behind installation-token auth (which also refuses writes to an archived repository, as GitHub
does), and GitHub's `Link`-header pagination."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse

from tests.fakes.github.auth import installation_token
from tests.fakes.github.errors import error, injected_failure, not_found
from tests.fakes.github.fake import FakeGitHub
from tests.fakes.github.state import Recorded, _Repo

WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
#: GitHub's words for a write to an archived repository (403).
ARCHIVED_MESSAGE = "Repository was archived so is read-only."


async def github(request: Request) -> FakeGitHub:
    """The fake this app serves (`build_app` puts it in `app.state`)."""
    return request.app.state.github


#: A route's parameter of this type receives the fake.
GitHub = Annotated[FakeGitHub, Depends(github)]


def base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


async def gate(gh: FakeGitHub, request: Request, route: str) -> None:
    """Record the request under `route`, then wait `delays[route]` and fail with `failures[route]`, if scripted."""
    body: Any = None
    if "json" in request.headers.get("content-type", ""):
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            body = None
    gh.requests.append(Recorded(request.method, request.url.path, route, request.headers.get("authorization", ""),
                                body))
    if gh.delays.get(route):
        await asyncio.sleep(gh.delays[route])
    queued = gh.failures.get(route)
    if queued:
        raise injected_failure(gh, queued.pop(0))


async def json_body(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(await request.body() or b"{}")
    except ValueError:
        raise error(400, "Problems parsing JSON") from None
    if not isinstance(data, dict):
        raise error(400, "Problems parsing JSON")
    return data


async def repository(gh: FakeGitHub, request: Request, route: str, owner: str, name: str) -> tuple[_Repo, str]:
    """`gate`, then the repository, when the request's installation token may see it, and the base URL. A write
    (POST, PATCH, PUT, DELETE) to an archived repository is GitHub's 403."""
    await gate(gh, request, route)
    installation = installation_token(gh, request)
    repo = gh._repos.get(f"{owner}/{name}".lower())
    if repo is None or repo.installation_id != installation:
        raise not_found()
    if repo.archived and request.method.upper() in WRITE_METHODS:
        raise error(403, ARCHIVED_MESSAGE)
    return repo, base(request)


def issue_of(repo: _Repo, number: int) -> dict[str, Any]:
    issue = repo.issues.get(number)
    if issue is None:
        raise not_found()
    return issue


def pull_of(repo: _Repo, number: int) -> dict[str, Any]:
    pull = repo.pulls.get(number)
    if pull is None:
        raise not_found()
    return pull


def page_of(request: Request, items: list[Any]) -> tuple[list[Any], dict[str, str]]:
    """One page of `items` (`per_page`, default 30, at most 100; `page`) and GitHub's `Link` header to the
    others (`prev`, `first`, `next`, `last`), if any."""
    try:
        per_page = min(max(int(request.query_params.get("per_page", 30)), 1), 100)
        page = max(int(request.query_params.get("page", 1)), 1)
    except ValueError:
        raise error(422, "Invalid request.") from None
    last = max((len(items) + per_page - 1) // per_page, 1)
    links = []

    def link(p: int, rel: str) -> str:
        query = dict(request.query_params) | {"per_page": str(per_page), "page": str(p)}
        return f'<{request.url.replace_query_params(**query)}>; rel="{rel}"'

    if page > 1:
        links += [link(page - 1, "prev"), link(1, "first")]
    if page < last:
        links += [link(page + 1, "next"), link(last, "last")]
    headers = {"link": ", ".join(links)} if links else {}
    return items[(page - 1) * per_page:page * per_page], headers


def paginate(request: Request, items: list[Any]) -> JSONResponse:
    """One page of `items` (`per_page`, `page`), with GitHub's `Link` header to the others."""
    page, headers = page_of(request, items)
    return JSONResponse(page, headers=headers)
