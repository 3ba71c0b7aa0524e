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


@router.post("/repos/{owner}/{name}/issues", status_code=201)
async def create_issue(owner: str, name: str, request: Request, gh: GitHub) -> dict[str, Any]:
    """An issue opened with the installation's token: written by the App's bot, with its labels (a label that
    does not exist yet is made, as GitHub does for a writer)."""
    repo, b = await repository(gh, request, "create_issue", owner, name)
    data = await json_body(request)
    title, body, labels = data.get("title"), data.get("body"), data.get("labels") or []
    if isinstance(title, int) and not isinstance(title, bool):
        title = str(title)
    if not isinstance(title, str) or not title.strip():
        raise invalid("Issue", "title", "missing_field")
    if len(title) > 256:
        raise invalid("Issue", "title", "custom", "title is too long (maximum is 256 characters)")
    if body is not None and not isinstance(body, str):
        raise invalid("Issue", "body", "invalid")
    if len(body or "") > 65536:
        raise invalid("Issue", "body", "custom", "body is too long (maximum is 65536 characters)")
    names = [label.get("name") if isinstance(label, dict) else label for label in labels] \
        if isinstance(labels, list) else None
    if names is None or not all(isinstance(n, str) and n for n in names):
        raise invalid("Issue", "labels", "invalid")
    with gh._lock:
        issue = gh._new_issue(repo, title, body, gh.bot_login, pull=False, via_app=True)
        for label in names:
            gh._add_label(repo, issue["number"], label)
        return gh._issue_json(b, repo, issue)


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
