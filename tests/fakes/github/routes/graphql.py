"""GitHub's GraphQL API, with an installation token, as far as Honk uses it: a pull request's
`reviewThreads`, and `resolveReviewThread` / `unresolveReviewThread`. The query is read with regular
expressions, not parsed; anything else is answered with an error."""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from tests.fakes.github.api import ARCHIVED_MESSAGE, GitHub, base, gate, json_body
from tests.fakes.github.auth import installation_token
from tests.fakes.github.fake import FakeGitHub

router = APIRouter()


@router.post("/graphql")
async def graphql(request: Request, gh: GitHub) -> JSONResponse:
    await gate(gh, request, "graphql")
    installation = installation_token(gh, request, message="This endpoint requires you to be authenticated.")
    data = await json_body(request)
    query, variables = str(data.get("query", "")), data.get("variables") or {}
    b = base(request)
    with gh._lock:
        resolve = re.search(r"\b(un)?resolveReviewThread\b", query)
        if resolve:
            return _resolve_thread(gh, b, installation, resolve, _argument(query, variables, "threadId"))
        if "reviewThreads" in query and "repository" in query:
            owner, name, number = (_argument(query, variables, key) for key in ("owner", "name", "number"))
            return _review_threads(gh, b, installation, owner, name, number)
    return JSONResponse({"errors": [{"message": "this fake GitHub answers only resolveReviewThread and "
                                                "repository.pullRequest.reviewThreads"}]})


def _argument(query: str, variables: dict[str, Any], name: str) -> Any:
    """The value of the argument `name` in `query`: a literal, or the variable it names."""
    match = re.search(rf"\b{name}\s*:\s*(\$\w+|\"(?:[^\"\\]|\\.)*\"|-?\d+)", query)
    if not match:
        return None
    value = match.group(1)
    if value.startswith("$"):
        return variables.get(value[1:])
    return json.loads(value)


def _not_found(data: dict[str, Any], path: list[str], message: str) -> JSONResponse:
    return JSONResponse({"data": data, "errors": [{"type": "NOT_FOUND", "path": path, "locations": [],
                                                   "message": message}]})


def _resolve_thread(gh: FakeGitHub, b: str, installation: int, resolve: re.Match[str], thread_id: Any) -> JSONResponse:
    field_name = resolve.group(0)
    thread = gh._threads.get(str(thread_id))
    repo = gh._repos.get(thread["repo"].lower()) if thread else None
    if thread is None or repo is None or repo.installation_id != installation:
        return _not_found({field_name: None}, [field_name],
                          f"Could not resolve to a node with the global id of '{thread_id}'")
    if repo.archived:
        return JSONResponse({"data": {field_name: None}, "errors": [{"type": "FORBIDDEN", "path": [field_name],
                                                                      "locations": [], "message": ARCHIVED_MESSAGE}]})
    thread["resolved"] = resolve.group(1) is None
    return JSONResponse({"data": {field_name: {"thread": gh._thread_json(b, thread)}}})


def _review_threads(gh: FakeGitHub, b: str, installation: int, owner: Any, name: Any, number: Any) -> JSONResponse:
    repo = gh._repos.get(f"{owner}/{name}".lower())
    if repo is None or repo.installation_id != installation:
        return _not_found({"repository": None}, ["repository"],
                          f"Could not resolve to a Repository with the name '{owner}/{name}'.")
    if int(number or 0) not in repo.pulls:
        return _not_found({"repository": {"pullRequest": None}}, ["repository", "pullRequest"],
                          f"Could not resolve to a PullRequest with the number of {number}.")
    nodes = [gh._thread_json(b, t) for t in gh._threads.values()
             if t["repo"] == repo.full_name and t["pr"] == int(number)]
    return JSONResponse({"data": {"repository": {"pullRequest": {"reviewThreads": {
        "totalCount": len(nodes), "nodes": nodes, "pageInfo": {"hasNextPage": False, "endCursor": None}}}}}})
