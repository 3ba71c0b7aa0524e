"""GitHub's pull-request reviews API, with an installation token: reviews, review comments (all of a pull
request's, or one review's in the older, thinner shape), and the App's replies to review comments."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from tests.fakes.github.api import GitHub, json_body, paginate, pull_of, repository
from tests.fakes.github.errors import invalid, not_found

# Fields the per-review listing of review comments leaves out.
_NOT_PER_REVIEW = ("line", "original_line", "side", "start_side", "start_line", "original_start_line", "subject_type")

router = APIRouter()


@router.get("/repos/{owner}/{name}/pulls/{number}/reviews")
async def list_reviews(owner: str, name: str, number: int, request: Request, gh: GitHub) -> JSONResponse:
    repo, b = await repository(gh, request, "list_reviews", owner, name)
    with gh._lock:
        pull_of(repo, number)
        items = [gh._review_json(b, repo, r) for r in gh._reviews.values()
                 if r["repo"] == repo.full_name and r["pr"] == number]
    return paginate(request, items)


@router.get("/repos/{owner}/{name}/pulls/{number}/reviews/{review_id}/comments")
async def list_review_comments_for_review(owner: str, name: str, number: int, review_id: int, request: Request,
                                          gh: GitHub) -> JSONResponse:
    repo, b = await repository(gh, request, "list_review_comments_for_review", owner, name)
    with gh._lock:
        review = gh._reviews.get(review_id)
        if review is None or review["repo"] != repo.full_name or review["pr"] != number:
            raise not_found()
        items = []
        for c in gh._review_comments.values():
            if c["review_id"] == review_id:
                data = gh._review_comment_json(b, repo, c)
                for key in _NOT_PER_REVIEW:
                    data.pop(key, None)  # the per-review listing is the older, thinner shape
                items.append(data)
    return paginate(request, items)


@router.get("/repos/{owner}/{name}/pulls/{number}/comments")
async def list_review_comments(owner: str, name: str, number: int, request: Request, gh: GitHub) -> JSONResponse:
    repo, b = await repository(gh, request, "list_review_comments", owner, name)
    with gh._lock:
        pull_of(repo, number)
        items = [gh._review_comment_json(b, repo, c) for c in gh._review_comments.values()
                 if c["repo"] == repo.full_name and c["pr"] == number]
    return paginate(request, items)


@router.post("/repos/{owner}/{name}/pulls/{number}/comments/{comment_id}/replies", status_code=201)
async def create_reply(owner: str, name: str, number: int, comment_id: int, request: Request,
                       gh: GitHub) -> dict[str, Any]:
    repo, b = await repository(gh, request, "create_reply", owner, name)
    data = await json_body(request)
    if not isinstance(data.get("body"), str) or not data["body"]:
        raise invalid("PullRequestReviewComment", "body", "missing_field")
    with gh._lock:
        pull = pull_of(repo, number)
        parent = gh._review_comments.get(comment_id)
        if parent is None or parent["repo"] != repo.full_name or parent["pr"] != number:
            raise not_found()
        gh._refresh_head(repo, pull)
        review = gh._new_review(repo, number, gh.bot_login, "COMMENTED", "", pull["head_sha"])
        reply = gh._new_review_comment(repo, number, review["id"], gh.bot_login, data["body"], in_reply_to=comment_id)
        return gh._review_comment_json(b, repo, reply)
