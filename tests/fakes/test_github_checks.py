"""The local GitHub's Checks API and Actions jobs and logs behave like the real ones over HTTP: GitHub's shapes
(checked with githubkit's models), status codes, the log redirect, and the webhook payloads."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from githubkit.webhooks import parse_obj
from githubkit_schemas.latest import models as m
from pydantic import TypeAdapter

from tests.fakes.github import FakeGitHub
from tests.support import app_private_key

REPO = "acme/widgets"


@pytest.fixture(scope="module")
def app_key() -> str:
    return app_private_key()


@pytest.fixture
def github(app_key: str, tmp_path: Path) -> Iterator[tuple[FakeGitHub, str]]:
    fake = FakeGitHub(app_id=4242, private_key_pem=app_key, root=tmp_path / "github", permissions={"alice": "write"})
    fake.create_repo(REPO, files={"README.md": "# Widgets\n"})
    with fake.serve() as url:
        yield fake, url
    fake.close()


def parse(model: Any, body: Any) -> Any:
    return TypeAdapter(model).validate_python(body)


def client(url: str, key: str, installation: int = 42) -> httpx.Client:
    now = int(time.time())
    app = jwt.encode({"iat": now - 60, "exp": now + 540, "iss": "4242"}, key, algorithm="RS256")
    answer = httpx.post(f"{url}/app/installations/{installation}/access_tokens",
                        headers={"Authorization": f"Bearer {app}"})
    assert answer.status_code == 201, answer.text
    return httpx.Client(base_url=f"{url}/repos/{REPO}", timeout=10,
                        headers={"Authorization": f"token {answer.json()['token']}",
                                 "Accept": "application/vnd.github+json"})


def head(fake: FakeGitHub, branch: str = "main") -> str:
    return fake._rev(fake._repo(REPO), branch) or ""


def test_a_check_run_is_created_updated_and_read_back(github: tuple[FakeGitHub, str], app_key: str) -> None:
    fake, url = github
    sha = head(fake)
    with client(url, app_key) as gh:
        created = gh.post("/check-runs", json={"name": "honk", "head_sha": sha, "status": "in_progress",
                                               "details_url": "https://honk.example/jobs/1", "external_id": "job-1",
                                               "output": {"title": "Working", "summary": "Reading the failure"}})
        assert created.status_code == 201, created.text
        run = parse(m.CheckRun, created.json())
        assert (run.status, run.conclusion, run.external_id, run.app.slug) == ("in_progress", None, "job-1",
                                                                              "honk-test")
        assert run.head_sha == sha and run.output.title == "Working" and run.completed_at is None
        done = gh.patch(f"/check-runs/{run.id}", json={"conclusion": "success", "output": {
            "title": "Fixed", "summary": "Pushed a fix", "text": "details"}})
        assert done.status_code == 200, done.text
        again = parse(m.CheckRun, gh.get(f"/check-runs/{run.id}").json())
    assert (again.status, again.conclusion, again.output.text) == ("completed", "success", "details")
    assert again.completed_at is not None and again.check_suite and again.check_suite.id
    assert [c["id"] for c in fake.check_runs(REPO, sha)] == [run.id]
    assert fake.calls("create_check_run")[0].json["name"] == "honk"


@pytest.mark.parametrize("body", [
    {"head_sha": "x"},  # no name
    {"name": "honk"},  # no head_sha
    {"name": "honk", "head_sha": "HEAD", "status": "done"},
    {"name": "honk", "head_sha": "HEAD", "conclusion": "great"},
    {"name": "honk", "head_sha": "HEAD", "status": "completed"},  # completed needs a conclusion
    {"name": "honk", "head_sha": "HEAD", "output": {"title": "no summary"}},
    {"name": "honk", "head_sha": "HEAD", "output": {"title": "t", "summary": "s" * 65536}},
    {"name": "honk", "head_sha": "0" * 40},  # no such commit
    {"name": "honk", "head_sha": "main"},  # a branch is not a SHA
])
def test_invalid_check_runs_are_refused_with_422(github: tuple[FakeGitHub, str], app_key: str,
                                                 body: dict[str, Any]) -> None:
    fake, url = github
    if body.get("head_sha") == "HEAD":
        body = body | {"head_sha": head(fake)}
    with client(url, app_key) as gh:
        answer = gh.post("/check-runs", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["message"]


def test_unknown_runs_are_404_and_other_apps_runs_are_not_ours_to_edit(github: tuple[FakeGitHub, str],
                                                                       app_key: str) -> None:
    fake, url = github
    suite = fake.add_check_suite(REPO, head(fake), "failure", runs=["lint"])
    theirs = fake.check_runs(REPO, head(fake))[0]["id"]
    with client(url, app_key) as gh:
        assert gh.get("/check-runs/999999").status_code == 404
        assert gh.patch("/check-runs/999999", json={"status": "in_progress"}).status_code == 404
        assert gh.get(f"/check-suites/{suite + 10_000}/check-runs").status_code == 404
        assert gh.get("/actions/runs/999999/jobs").status_code == 404
        assert gh.get("/actions/jobs/999999/logs").status_code == 404
        assert gh.patch(f"/check-runs/{theirs}", json={"conclusion": "success"}).status_code == 403
    with httpx.Client(base_url=f"{url}/repos/{REPO}") as anonymous:
        assert anonymous.get(f"/check-runs/{theirs}").status_code == 401


def test_check_runs_are_listed_by_ref_and_by_suite(github: tuple[FakeGitHub, str], app_key: str) -> None:
    fake, url = github
    sha = fake.commit_files(REPO, "fix", {"a.txt": "a"}, "a")
    suite = fake.add_check_suite(REPO, sha, "success", runs=["lint", {"name": "test", "conclusion": "failure",
                                                                        "output": {"title": "1 failed",
                                                                                   "summary": "test_spin"}}])
    fake.add_check_suite(REPO, sha, None, runs=["lint"])  # a newer lint run, still going
    with client(url, app_key) as gh:
        by_sha = gh.get(f"/commits/{sha}/check-runs").json()
        by_branch = gh.get("/commits/fix/check-runs").json()
        everything = gh.get(f"/commits/{sha}/check-runs", params={"filter": "all"}).json()
        failed = gh.get(f"/commits/{sha}/check-runs", params={"check_name": "test"}).json()
        in_suite = gh.get(f"/check-suites/{suite}/check-runs").json()
        paged = gh.get(f"/commits/{sha}/check-runs", params={"filter": "all", "per_page": 2, "page": 2}).json()
        nowhere = gh.get("/commits/no-such-branch/check-runs")
    assert by_sha == by_branch
    assert by_sha["total_count"] == 2 and {(c["name"], c["status"]) for c in by_sha["check_runs"]} == {
        ("lint", "in_progress"), ("test", "completed")}
    assert everything["total_count"] == 3 and len(paged["check_runs"]) == 1
    assert [c["output"]["title"] for c in failed["check_runs"]] == ["1 failed"]
    assert in_suite["total_count"] == 2 and {c["check_suite"]["id"] for c in in_suite["check_runs"]} == {suite}
    for run in by_sha["check_runs"]:
        parse(m.CheckRun, run)
    assert nowhere.status_code == 422


def test_workflow_run_jobs_and_a_log_behind_a_redirect(github: tuple[FakeGitHub, str], app_key: str) -> None:
    fake, url = github
    sha = head(fake)
    run_id = fake.add_workflow_run(REPO, sha, "failure", jobs={"lint": ("success", "all clean\n"),
                                                               "test": "FAILED tests/test_spin.py::test_spin\n"})
    with client(url, app_key) as gh:
        listing = gh.get(f"/actions/runs/{run_id}/jobs").json()
        jobs = {j["name"]: parse(m.Job, j) for j in listing["jobs"]}
        redirect = gh.get(f"/actions/jobs/{jobs['test'].id}/logs")
    assert listing["total_count"] == 2
    assert (jobs["test"].conclusion, jobs["lint"].conclusion) == ("failure", "success")
    assert [s.name for s in jobs["test"].steps or []] == ["Set up job", "Run test", "Complete job"]
    assert jobs["test"].run_id == run_id and jobs["test"].head_sha == sha
    assert redirect.status_code == 302
    location = redirect.headers["location"]
    log = httpx.get(location)  # no auth: the URL is signed
    assert log.status_code == 200 and log.text == "FAILED tests/test_spin.py::test_spin\n"
    assert log.headers["content-type"].startswith("text/plain")
    assert httpx.get(location.split("?")[0] + "?sig=forged").status_code == 403
    assert fake.calls("job_log_blob")[0].auth == ""
    # each job is a check run of GitHub Actions' suite, which failed
    runs = {c["name"]: c for c in fake.check_runs(REPO, sha)}
    assert runs["test"]["id"] == jobs["test"].id and runs["test"]["app"]["slug"] == "github-actions"
    assert fake._check_suites[runs["test"]["check_suite"]["id"]]["conclusion"] == "failure"


def test_webhook_payloads_parse_as_githubs(github: tuple[FakeGitHub, str]) -> None:
    fake, _ = github
    sha = fake.commit_files(REPO, "fix", {"a.txt": "a"}, "a")
    pr = fake.open_pull(REPO, "fix", "main", "Fix")
    run_id = fake.add_workflow_run(REPO, sha, "failure", jobs={"test": "boom"})
    suite_id = fake._workflow_runs[run_id]["suite_id"]
    check_id = fake.check_runs(REPO, sha)[0]["id"]

    suite = fake.check_suite_completed(REPO, suite_id)
    parsed_suite = parse_obj("check_suite", suite)
    assert parsed_suite.action == "completed" and parsed_suite.check_suite.conclusion == "failure"
    assert suite["check_suite"]["head_sha"] == sha and suite["check_suite"]["head_branch"] == "fix"
    assert [p["number"] for p in suite["check_suite"]["pull_requests"]] == [pr]
    assert suite["installation"]["id"] == 42

    rerun = fake.check_run_rerequested(REPO, check_id)
    parsed_rerun = parse_obj("check_run", rerun)
    assert parsed_rerun.action == "rerequested" and parsed_rerun.check_run.id == check_id
    assert rerun["check_run"]["check_suite"]["id"] == suite_id

    workflow = fake.workflow_run_completed(REPO, run_id)
    parsed_workflow = parse_obj("workflow_run", workflow)
    assert parsed_workflow.action == "completed" and parsed_workflow.workflow_run.conclusion == "failure"
    assert workflow["workflow_run"]["check_suite_id"] == suite_id
    assert workflow["workflow_run"]["jobs_url"].endswith(f"/actions/runs/{run_id}/jobs")
