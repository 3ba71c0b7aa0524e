"""GitHub's Pulls API, with an installation token: opening, listing, reading and updating pull requests, and
requesting reviewers. GitHub's rules hold: no duplicate open pull request for a head, no pull request without
commits, no reopening once the head branch is gone or merged, reviewers only among collaborators. Merging goes
through GitHub's checks: 405 for a closed pull request, a draft, a conflict or missing required approvals
(`required_approvals`, repository -> count of approving reviews by writers, set on the fake by a test), 409 when
the head is not the `sha` given; a merge makes a real merge (or squash) commit on the base branch (a rebase is
made as one commit too)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from tests.fakes.github.api import GitHub, json_body, paginate, pull_of, repository
from tests.fakes.github.errors import error, invalid
from tests.fakes.github.state import iso

router = APIRouter()


@router.post("/repos/{owner}/{name}/pulls", status_code=201)
async def create_pull(owner: str, name: str, request: Request, gh: GitHub) -> dict[str, Any]:
    repo, b = await repository(gh, request, "create_pull", owner, name)
    data = await json_body(request)
    for required in ("head", "base"):
        if not isinstance(data.get(required), str) or not data[required]:
            raise invalid("PullRequest", required, "missing_field")
    if not data.get("title") and not data.get("issue"):
        raise invalid("PullRequest", "title", "missing_field")
    head_owner, _, head = data["head"].rpartition(":")
    if head_owner and head_owner.lower() != repo.owner.lower():
        raise invalid("PullRequest", "head", "invalid")
    with gh._lock:
        head_sha, base_sha = gh._branch_sha(repo, head), gh._branch_sha(repo, data["base"])
        if base_sha is None:
            raise invalid("PullRequest", "base", "invalid")
        if head_sha is None:
            raise invalid("PullRequest", "head", "invalid")
        for pull in repo.pulls.values():
            if pull["head"] == head and pull["base"] == data["base"] and pull["state"] == "open":
                raise invalid("PullRequest", code="custom",
                              message=f"A pull request already exists for {repo.owner}:{head}.")
        if gh._out(repo, "rev-list", "--count", f"{base_sha}..{head_sha}") == "0":
            raise invalid("PullRequest", code="custom", message=f"No commits between {data['base']} and {head}")
        issue = gh._new_issue(repo, data.get("title") or head, data.get("body"), gh.bot_login, pull=True,
                              via_app=True)
        pull = gh._new_pull(repo, issue["number"], head, data["base"], head_sha, base_sha,
                            draft=bool(data.get("draft")))
        return gh._pull_json(b, repo, pull)


@router.get("/repos/{owner}/{name}/pulls")
async def list_pulls(owner: str, name: str, request: Request, gh: GitHub) -> JSONResponse:
    repo, b = await repository(gh, request, "list_pulls", owner, name)
    query = request.query_params
    state, head, base_ref = query.get("state", "open"), query.get("head"), query.get("base")
    if state not in ("open", "closed", "all"):
        raise invalid("PullRequest", "state", "invalid")
    with gh._lock:
        items = []
        for number in sorted(repo.pulls, reverse=query.get("direction", "desc") == "desc"):
            pull, issue = repo.pulls[number], repo.issues[number]
            if state != "all" and issue["state"] != state:
                continue
            # Like GitHub, a `head` filter without `owner:` matches nothing useful: it is ignored.
            if head and ":" in head and head.lower() != f"{repo.owner}:{pull['head']}".lower():
                continue
            if base_ref and pull["base"] != base_ref:
                continue
            items.append(gh._pull_json(b, repo, pull, simple=True))
    return paginate(request, items)


@router.get("/repos/{owner}/{name}/pulls/{number}")
async def get_pull(owner: str, name: str, number: int, request: Request, gh: GitHub) -> dict[str, Any]:
    repo, b = await repository(gh, request, "get_pull", owner, name)
    with gh._lock:
        return gh._pull_json(b, repo, pull_of(repo, number))


@router.patch("/repos/{owner}/{name}/pulls/{number}")
async def update_pull(owner: str, name: str, number: int, request: Request, gh: GitHub) -> dict[str, Any]:
    repo, b = await repository(gh, request, "update_pull", owner, name)
    data = await json_body(request)
    with gh._lock:
        pull = pull_of(repo, number)
        issue = repo.issues[number]
        if "state" in data:
            if data["state"] not in ("open", "closed"):
                raise invalid("PullRequest", "state", "invalid")
            if data["state"] == "open" and issue["state"] == "closed":
                if pull["merged_at"] or gh._branch_sha(repo, pull["head"]) is None:
                    raise invalid("PullRequest", "state", "invalid",
                                  "state cannot be changed. The head branch was deleted or merged.")
                if any(p["head"] == pull["head"] and p["state"] == "open" for p in repo.pulls.values()):
                    raise invalid("PullRequest", code="custom",
                                  message=f"A pull request already exists for {repo.owner}:{pull['head']}.")
            pull["state"] = issue["state"] = data["state"]
            issue["closed_at"] = iso() if data["state"] == "closed" else None
        if "base" in data:
            if gh._branch_sha(repo, str(data["base"])) is None:
                raise invalid("PullRequest", "base", "invalid")
            pull["base"] = data["base"]
        if "title" in data:
            issue["title"] = data["title"]
        if "body" in data:
            issue["body"] = data["body"]
        # `draft` is not patchable over REST (GitHub ignores it; GraphQL converts drafts).
        issue["updated_at"] = iso()
        return gh._pull_json(b, repo, pull)


@router.put("/repos/{owner}/{name}/pulls/{number}/merge")
async def merge_pull(owner: str, name: str, number: int, request: Request, gh: GitHub) -> dict[str, Any]:
    repo, _ = await repository(gh, request, "merge_pull", owner, name)
    data = await json_body(request)
    method = data.get("merge_method") or "merge"
    if method not in ("merge", "squash", "rebase"):
        raise invalid("PullRequest", "merge_method", "invalid")
    with gh._lock:
        pull = pull_of(repo, number)
        issue = repo.issues[number]
        gh._refresh_head(repo, pull)
        if issue["state"] != "open":
            raise error(405, "Pull Request is not mergeable")
        if pull["draft"]:
            raise error(405, "Pull Request is still a draft")
        if data.get("sha") and data["sha"] != pull["head_sha"]:
            raise error(409, "Head branch was modified. Review and try the merge again.")
        required = int(getattr(gh, "required_approvals", {}).get(repo.full_name, 0))
        approved = {r["user"] for r in gh._reviews.values()
                    if (r["repo"], r["pr"], r["state"]) == (repo.full_name, number, "APPROVED")
                    and gh.role_of(repo.full_name, r["user"]) in ("write", "maintain", "admin")}
        if len(approved) < required:
            raise error(405, f"At least {required} approving review{'s are' if required > 1 else ' is'} required "
                             "by reviewers with write access.")
        sha = gh._merge(repo, pull, by=gh.bot_login, method=method, title=data.get("commit_title"),
                        message=data.get("commit_message"))
        if sha is None:
            raise error(405, "Pull Request is not mergeable")
        return {"sha": sha, "merged": True, "message": "Pull Request successfully merged"}


@router.post("/repos/{owner}/{name}/pulls/{number}/requested_reviewers", status_code=201)
async def request_reviewers(owner: str, name: str, number: int, request: Request, gh: GitHub) -> dict[str, Any]:
    repo, b = await repository(gh, request, "request_reviewers", owner, name)
    data = await json_body(request)
    reviewers = data.get("reviewers") or []
    with gh._lock:
        pull = pull_of(repo, number)
        if repo.issues[number]["user"] in reviewers:
            raise error(422, "Review cannot be requested from pull request author.")
        outsiders = [login for login in reviewers if gh.role_of(repo.full_name, login) in (None, "none")]
        if outsiders or data.get("team_reviewers"):
            raise error(422, "Reviews may only be requested from collaborators. One or more of the users or "
                             f"teams you specified is not a collaborator of the {repo.full_name} repository.")
        pull["reviewers"] += [login for login in reviewers if login not in pull["reviewers"]]
        return gh._pull_json(b, repo, pull, simple=True)
