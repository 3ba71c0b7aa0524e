"""GitHub's Checks API (check runs: create, update, get, list by commit or by suite) and the Actions endpoints
for a workflow run's jobs and a job's log, which redirects (302) to an unauthenticated, signed log URL."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, RedirectResponse

from tests.fakes.github.api import GitHub, gate, json_body, repository
from tests.fakes.github.checks import CONCLUSIONS, STATUSES
from tests.fakes.github.errors import error, invalid, not_found
from tests.fakes.github.fake import FakeGitHub
from tests.fakes.github.state import _Repo

_MAX_OUTPUT = 65535  # characters GitHub keeps in a check run's output summary and text

router = APIRouter()


def _validate(data: dict[str, Any], *, creating: bool) -> None:
    for key in ("name", "head_sha") if creating else ():
        if not isinstance(data.get(key), str) or not data[key]:
            raise invalid("CheckRun", key, "missing_field")
    if "name" in data and (not isinstance(data["name"], str) or not data["name"]):
        raise invalid("CheckRun", "name")
    if data.get("status") is not None and data["status"] not in STATUSES:
        raise invalid("CheckRun", "status")
    if data.get("conclusion") is not None and data["conclusion"] not in CONCLUSIONS:
        raise invalid("CheckRun", "conclusion")
    if data.get("status") == "completed" and not data.get("conclusion") and creating:
        raise invalid("CheckRun", "conclusion", "missing_field")
    output = data.get("output")
    if output is not None:
        if not isinstance(output, dict) or not output.get("title") or not output.get("summary"):
            raise invalid("CheckRun", "output", "missing_field")
        for key in ("summary", "text"):
            if isinstance(output.get(key), str) and len(output[key]) > _MAX_OUTPUT:
                raise error(422, "Invalid request.\n\nOnly 65535 characters are allowed; "
                                 f"{len(output[key])} were supplied.")
    for key in ("details_url", "external_id"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise invalid("CheckRun", key)


def _page(request: Request, items: list[Any]) -> list[Any]:
    try:
        per_page = min(max(int(request.query_params.get("per_page", 30)), 1), 100)
        page = max(int(request.query_params.get("page", 1)), 1)
    except ValueError:
        raise error(422, "Invalid request.") from None
    return items[(page - 1) * per_page:page * per_page]


def _listing(gh: FakeGitHub, request: Request, b: str, repo: _Repo, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """`{"total_count", "check_runs"}`, filtered by `check_name` and `status`, and by default (`filter=latest`)
    only the newest run of each name, newest first."""
    query = request.query_params
    if query.get("check_name"):
        runs = [c for c in runs if c["name"] == query["check_name"]]
    if query.get("status"):
        runs = [c for c in runs if c["status"] == query["status"]]
    runs = sorted(runs, key=lambda c: c["id"], reverse=True)
    if query.get("filter", "latest") == "latest":
        seen: set[str] = set()
        runs = [c for c in runs if not (c["name"] in seen or seen.add(c["name"]))]  # type: ignore[func-returns-value]
    return {"total_count": len(runs), "check_runs": [gh._check_run_json(b, repo, c) for c in _page(request, runs)]}


def _own_run(gh: FakeGitHub, repo: _Repo, check_run_id: int) -> dict[str, Any]:
    run = gh._check_runs.get(check_run_id)
    if run is None or run["repo"] != repo.full_name:
        raise not_found()
    return run


@router.post("/repos/{owner}/{name}/check-runs", status_code=201)
async def create_check_run(owner: str, name: str, request: Request, gh: GitHub) -> dict[str, Any]:
    repo, b = await repository(gh, request, "create_check_run", owner, name)
    data = await json_body(request)
    _validate(data, creating=True)
    with gh._lock:
        sha = gh._resolve_sha(repo, data["head_sha"])
        if sha is None or sha != data["head_sha"]:
            raise error(422, f"No commit found for SHA: {data['head_sha']}")
        run = gh._new_check_run(repo, gh._app_suite(repo, sha), data)
        return gh._check_run_json(b, repo, run)


@router.patch("/repos/{owner}/{name}/check-runs/{check_run_id}")
async def update_check_run(owner: str, name: str, check_run_id: int, request: Request,
                           gh: GitHub) -> dict[str, Any]:
    repo, b = await repository(gh, request, "update_check_run", owner, name)
    data = await json_body(request)
    _validate(data, creating=False)
    with gh._lock:
        run = _own_run(gh, repo, check_run_id)
        if gh._check_suites[run["suite_id"]]["app"] != gh.slug:
            raise error(403, f"Invalid app_id `{gh.app_id}` - check run can only be modified by the GitHub App "
                             "that created it.")
        if data.get("status") == "completed" and not data.get("conclusion") and not run["conclusion"]:
            raise invalid("CheckRun", "conclusion", "missing_field")
        gh._apply_check_fields(run, data)
        return gh._check_run_json(b, repo, run)


@router.get("/repos/{owner}/{name}/check-runs/{check_run_id}")
async def get_check_run(owner: str, name: str, check_run_id: int, request: Request, gh: GitHub) -> dict[str, Any]:
    repo, b = await repository(gh, request, "get_check_run", owner, name)
    with gh._lock:
        return gh._check_run_json(b, repo, _own_run(gh, repo, check_run_id))


@router.get("/repos/{owner}/{name}/commits/{ref:path}/check-runs")
async def list_check_runs_for_ref(owner: str, name: str, ref: str, request: Request, gh: GitHub) -> dict[str, Any]:
    repo, b = await repository(gh, request, "list_check_runs_for_ref", owner, name)
    with gh._lock:
        sha = gh._resolve_sha(repo, ref)
        if sha is None:
            raise error(422, f"No commit found for SHA: {ref}")
        runs = [c for c in gh._check_runs.values() if c["repo"] == repo.full_name and c["head_sha"] == sha]
        return _listing(gh, request, b, repo, runs)


@router.get("/repos/{owner}/{name}/check-suites/{check_suite_id}/check-runs")
async def list_check_runs_in_suite(owner: str, name: str, check_suite_id: int, request: Request,
                                   gh: GitHub) -> dict[str, Any]:
    repo, b = await repository(gh, request, "list_check_runs_in_suite", owner, name)
    with gh._lock:
        suite = gh._check_suites.get(check_suite_id)
        if suite is None or suite["repo"] != repo.full_name:
            raise not_found()
        runs = [c for c in gh._check_runs.values() if c["suite_id"] == check_suite_id]
        return _listing(gh, request, b, repo, runs)


@router.get("/repos/{owner}/{name}/actions/runs/{run_id}/jobs")
async def list_jobs_for_workflow_run(owner: str, name: str, run_id: int, request: Request,
                                     gh: GitHub) -> dict[str, Any]:
    repo, b = await repository(gh, request, "list_jobs_for_workflow_run", owner, name)
    with gh._lock:
        run = gh._workflow_runs.get(run_id)
        if run is None or run["repo"] != repo.full_name:
            raise not_found()
        jobs = [j for j in gh._jobs.values() if j["run_id"] == run_id]
        return {"total_count": len(jobs), "jobs": [gh._job_json(b, repo, j) for j in _page(request, jobs)]}


@router.get("/repos/{owner}/{name}/actions/jobs/{job_id}/logs")
async def download_job_logs(owner: str, name: str, job_id: int, request: Request, gh: GitHub) -> RedirectResponse:
    repo, b = await repository(gh, request, "download_job_logs", owner, name)
    with gh._lock:
        job = gh._jobs.get(job_id)
        if job is None or job["repo"] != repo.full_name:
            raise not_found()
        return RedirectResponse(gh.log_url(b, job), status_code=302)


@router.get("/_blobs/job-logs/{job_id}")
async def job_log_blob(job_id: int, request: Request, gh: GitHub) -> PlainTextResponse:
    """The log itself: no auth, only the URL's signature (GitHub's blob store rejects an Authorization header
    it did not expect, so this does too)."""
    await gate(gh, request, "job_log_blob")
    with gh._lock:
        job = gh._jobs.get(job_id)
        sig = request.query_params.get("sig", "")
        if job is None or not secrets.compare_digest(sig, job["log_sig"]):
            return PlainTextResponse("AuthenticationFailed: Server failed to authenticate the request.",
                                     status_code=403)
        if request.headers.get("authorization"):
            return PlainTextResponse("InvalidAuthenticationInfo: Authentication information is not given in the "
                                     "correct format.", status_code=400)
        return PlainTextResponse(job["log"])
