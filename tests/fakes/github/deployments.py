"""What the Slack-thread news needs of the fake GitHub beyond its core (issue #15): the pull requests of a commit,
deployment statuses, closing and merging as a person, and finishing a check run of another App.

Kept apart from `FakeGitHub`'s layers: `install(fake)` adds the route to a fake's app, and the builders take the
fake as their first argument (`deployment_status_created(fake, ...)`), returning the payload GitHub would send.

- `GET /repos/{owner}/{name}/commits/{sha}/pulls`: the pull requests whose head is that commit (GitHub also lists
  those it was merged into; a fake head is enough here), as `simple` pull requests, newest first.
- `deployment_status_created`: a deployment of a commit (by branch or by SHA) reports a state and an
  `environment_url`, created by a preview host's bot (octokit's documented `deployment_status` shape).
- `pull_request_closed`: merge (`merged=True`, no merge commit is made) or close a pull request as `sender`.
- `finish_check_run`: a check run of another App (GitHub Actions, a preview host) completes.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from tests.fakes.github.api import GitHub, paginate, repository
from tests.fakes.github.errors import error
from tests.fakes.github.fake import FakeGitHub
from tests.fakes.github.state import iso, node_id

router = APIRouter()


@router.get("/repos/{owner}/{name}/commits/{sha}/pulls")
async def list_pulls_for_commit(owner: str, name: str, sha: str, request: Request, gh: GitHub) -> JSONResponse:
    repo, b = await repository(gh, request, "list_pulls_for_commit", owner, name)
    with gh._lock:
        if gh._resolve_sha(repo, sha) is None:
            raise error(422, f"No commit found for SHA: {sha}")
        for pull in repo.pulls.values():
            gh._refresh_head(repo, pull)
        items = [gh._pull_json(b, repo, pull, simple=True) for number, pull in sorted(repo.pulls.items(), reverse=True)
                 if pull["head_sha"] == sha]
    return paginate(request, items)


def install(fake: FakeGitHub) -> FakeGitHub:
    """Serve the routes above too (once)."""
    if not any(getattr(route, "name", "") == "list_pulls_for_commit" for route in fake.app.routes):
        fake.app.include_router(router)
    return fake


def deployment_status_created(fake: FakeGitHub, repo: str, sha: str, *, ref: str, environment_url: str | None,
                              state: str = "success", environment: str = "Preview",
                              creator: str = "vercel[bot]") -> dict[str, Any]:
    """The `deployment_status.created` payload: a deployment of `sha` (as `ref`) to `environment` reports `state`
    with `environment_url`, made and sent by `creator`'s bot."""
    r = fake._repo(repo)
    with fake._lock:
        b = fake.base_url
        deployment_id, status_id, now = fake._new_id(), fake._new_id(), iso()
        api = f"{b}/repos/{r.full_name}/deployments/{deployment_id}"
        bot = fake._user(b, creator)
        status: dict[str, Any] = {
            "url": f"{api}/statuses/{status_id}", "id": status_id, "node_id": node_id("DeploymentStatus", status_id),
            "state": state, "creator": bot, "description": "", "environment": environment,
            "target_url": environment_url or "", "created_at": now, "updated_at": now, "deployment_url": api,
            "repository_url": f"{b}/repos/{r.full_name}", "log_url": environment_url or "",
            "performed_via_github_app": None}
        if environment_url is not None:
            status["environment_url"] = environment_url
        deployment = {
            "url": api, "id": deployment_id, "node_id": node_id("Deployment", deployment_id), "sha": sha, "ref": ref,
            "task": "deploy", "payload": {}, "original_environment": environment, "environment": environment,
            "description": None, "creator": bot, "created_at": now, "updated_at": now,
            "statuses_url": f"{api}/statuses", "repository_url": f"{b}/repos/{r.full_name}",
            "transient_environment": True, "production_environment": False, "performed_via_github_app": None}
        return {"action": "created", "deployment_status": status, "deployment": deployment,
                **fake._envelope(b, r, creator)}


def pull_request_closed(fake: FakeGitHub, repo: str, number: int, sender: str, *, merged: bool) -> dict[str, Any]:
    """Merge or close pull request `number` as `sender`; the `pull_request.closed` payload."""
    fake.set_pull_state(repo, number, "merged" if merged else "closed", user=sender if merged else None)
    r = fake._repo(repo)
    with fake._lock:
        b = fake.base_url
        pull = fake._pull_json(b, r, r.pulls[number])
        if merged:
            pull["merged_by"] = fake._user(b, sender)
        return {"action": "closed", "number": number, "pull_request": pull, **fake._envelope(b, r, sender)}


def finish_check_run(fake: FakeGitHub, repo: str, sha: str, name: str, conclusion: str) -> int:
    """Complete the check run `name` on `sha` (its suite settles with it); returns the suite's id."""
    r = fake._repo(repo)
    with fake._lock:
        run = next(c for c in reversed(fake._check_runs.values())
                   if c["repo"] == r.full_name and c["head_sha"] == sha and c["name"] == name)
        fake._apply_check_fields(run, {"conclusion": conclusion})
        return int(run["suite_id"])
