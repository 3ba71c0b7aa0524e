"""GitHub's Issues API (which pull requests share), with an installation token: issues, their comments, and
reactions to issues, issue comments and pull-request review comments. Only the App's own comments can be
edited; reactions are the App's, once per content."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from tests.fakes.github.api import GitHub, issue_of, json_body, paginate, repository
from tests.fakes.github.errors import error, invalid, not_found
from tests.fakes.github.fake import FakeGitHub
from tests.fakes.github.shapes import REACTIONS
from tests.fakes.github.state import iso

router = APIRouter()


@router.get("/repos/{owner}/{name}/issues/comments/{comment_id}")
async def get_comment(owner: str, name: str, comment_id: int, request: Request, gh: GitHub) -> dict[str, Any]:
    repo, b = await repository(gh, request, "get_comment", owner, name)
    with gh._lock:
        comment = gh._comments.get(comment_id)
        if comment is None or comment["repo"] != repo.full_name:
            raise not_found()
        return gh._comment_json(b, repo, comment)


@router.patch("/repos/{owner}/{name}/issues/comments/{comment_id}")
async def update_comment(owner: str, name: str, comment_id: int, request: Request, gh: GitHub) -> dict[str, Any]:
    repo, b = await repository(gh, request, "update_comment", owner, name)
    data = await json_body(request)
    if not isinstance(data.get("body"), str):
        raise invalid("IssueComment", "body", "missing_field")
    with gh._lock:
        comment = gh._comments.get(comment_id)
        if comment is None or comment["repo"] != repo.full_name:
            raise not_found()
        if comment["user"] != gh.bot_login:
            raise error(403, "Resource not accessible by integration")
        comment.update(body=data["body"], updated_at=iso())
        return gh._comment_json(b, repo, comment)


@router.post("/repos/{owner}/{name}/issues/comments/{comment_id}/reactions")
async def comment_reaction(owner: str, name: str, comment_id: int, request: Request, gh: GitHub) -> JSONResponse:
    return await _comment_reaction(gh, request, owner, name, "comment", gh._comments, comment_id)


@router.post("/repos/{owner}/{name}/pulls/comments/{comment_id}/reactions")
async def review_comment_reaction(owner: str, name: str, comment_id: int, request: Request,
                                  gh: GitHub) -> JSONResponse:
    return await _comment_reaction(gh, request, owner, name, "review_comment", gh._review_comments, comment_id)


@router.post("/repos/{owner}/{name}/issues/{number}/reactions")
async def issue_reaction(owner: str, name: str, number: int, request: Request, gh: GitHub) -> JSONResponse:
    repo, b = await repository(gh, request, "reaction", owner, name)
    issue_of(repo, number)
    return await _react(gh, request, b, ("issue", repo.full_name, number))


async def _comment_reaction(gh: FakeGitHub, request: Request, owner: str, name: str, kind: str,
                            comments: dict[int, dict[str, Any]], comment_id: int) -> JSONResponse:
    repo, b = await repository(gh, request, "reaction", owner, name)
    if comments.get(comment_id, {}).get("repo") != repo.full_name:
        raise not_found()
    return await _react(gh, request, b, (kind, repo.full_name, comment_id))


async def _react(gh: FakeGitHub, request: Request, b: str, subject: tuple[str, str, int]) -> JSONResponse:
    """The App's reaction to `subject`: 201 when new, 200 with the earlier one when it reacted so already."""
    content = (await json_body(request)).get("content")
    if content not in REACTIONS:
        raise invalid("Reaction", "content", "invalid")
    with gh._lock:
        for reaction in gh._reactions:
            if (reaction["subject"], reaction["user"], reaction["content"]) == (subject, gh.bot_login, content):
                return JSONResponse(gh._reaction_json(b, reaction), status_code=200)
        reaction = {"id": gh._new_id(), "subject": subject, "user": gh.bot_login, "content": content,
                    "created_at": iso()}
        gh._reactions.append(reaction)
        return JSONResponse(gh._reaction_json(b, reaction), status_code=201)


@router.get("/repos/{owner}/{name}/issues/{number}")
async def get_issue(owner: str, name: str, number: int, request: Request, gh: GitHub) -> dict[str, Any]:
    repo, b = await repository(gh, request, "get_issue", owner, name)
    with gh._lock:
        return gh._issue_json(b, repo, issue_of(repo, number))


@router.get("/repos/{owner}/{name}/issues/{number}/comments")
async def list_comments(owner: str, name: str, number: int, request: Request, gh: GitHub) -> JSONResponse:
    repo, b = await repository(gh, request, "list_comments", owner, name)
    with gh._lock:
        issue_of(repo, number)
        items = [gh._comment_json(b, repo, c) for c in gh._comments.values()
                 if c["repo"] == repo.full_name and c["number"] == number]
    return paginate(request, items)


@router.post("/repos/{owner}/{name}/issues/{number}/comments", status_code=201)
async def create_comment(owner: str, name: str, number: int, request: Request, gh: GitHub) -> dict[str, Any]:
    repo, b = await repository(gh, request, "create_comment", owner, name)
    data = await json_body(request)
    if not isinstance(data.get("body"), str) or not data["body"]:
        raise invalid("IssueComment", "body", "missing_field")
    if len(data["body"]) > 65536:
        raise invalid("IssueComment", "body", "custom", "body is too long (maximum is 65536 characters)")
    with gh._lock:
        issue_of(repo, number)
        return gh._comment_json(b, repo, gh._new_comment(repo, number, data["body"], gh.bot_login, via_app=True))
