"""The client's Checks and Actions calls against the local GitHub over HTTP: check runs made and read, workflow
jobs, and job logs fetched behind GitHub's redirect without the installation token."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.github.client import GitHubApp, GitHubRetry
from app.settings import Settings
from tests.fakes.github import FakeGitHub
from tests.support import app_private_key

REPO = "acme/widgets"


@pytest.fixture(scope="module")
def key() -> str:
    return app_private_key()


@pytest.fixture
def fake(key: str, tmp_path: Path) -> Iterator[FakeGitHub]:
    github = FakeGitHub(app_id=4242, private_key_pem=key, root=tmp_path / "github")
    github.create_repo(REPO, files={"README.md": "# Widgets\n"})
    with github.serve():
        yield github
    github.close()


@pytest.fixture
def app(fake: FakeGitHub, make_settings: Callable[..., Settings], key: str) -> GitHubApp:
    """An App object of this test's own (its own token cache), pointed at the fake."""
    settings = make_settings(github_app_id=4242, github_private_key=key, github_api_url=fake.base_url)
    return GitHubApp(settings, retry=GitHubRetry(retries=0))


def run(app: GitHubApp, scenario: Callable[[Any], Any]) -> Any:
    async def main() -> Any:
        async with await app.repo(42, REPO) as repo:
            return await scenario(repo)

    return asyncio.run(main())


def head(fake: FakeGitHub) -> str:
    return fake._rev(fake._repo(REPO), "main") or ""


def test_a_check_run_is_created_then_completed(fake: FakeGitHub, app: GitHubApp) -> None:
    sha = head(fake)

    async def scenario(repo: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        made = await repo.create_check_run(name="honk", head_sha=sha, status="in_progress", external_id="job-7",
                                           details_url="https://honk.example/jobs/7",
                                           output={"title": "Working", "summary": "Reading CI"})
        done = await repo.update_check_run(made["id"], conclusion="success",
                                           output={"title": "Fixed", "summary": "Pushed", "text": "details"})
        return made, done

    made, done = run(app, scenario)
    assert (made["status"], made["external_id"], made["details_url"]) == ("in_progress", "job-7",
                                                                          "https://honk.example/jobs/7")
    assert (done["status"], done["conclusion"], done["output"]["text"]) == ("completed", "success", "details")
    assert [c["conclusion"] for c in fake.check_runs(REPO, sha)] == ["success"]
    assert fake.calls("create_check_run")[0].json == {
        "name": "honk", "head_sha": sha, "status": "in_progress", "external_id": "job-7",
        "details_url": "https://honk.example/jobs/7", "output": {"title": "Working", "summary": "Reading CI"}}


def test_check_runs_by_ref_and_suite_every_page(fake: FakeGitHub, app: GitHubApp) -> None:
    sha = head(fake)
    big = fake.add_check_suite(REPO, sha, "success", runs=[f"shard-{i}" for i in range(150)])
    small = fake.add_check_suite(REPO, sha, "failure", runs=["lint"])

    async def scenario(repo: Any) -> tuple[list[Any], list[Any], list[Any], list[Any]]:
        return (await repo.check_runs_for_ref(sha), await repo.check_runs_for_ref("main", check_name="lint"),
                await repo.check_runs_in_suite(big), await repo.check_runs_in_suite(small))

    by_ref, lint, in_big, in_small = run(app, scenario)
    assert len(by_ref) == 151 and len({c["id"] for c in by_ref}) == 151
    assert [(c["name"], c["conclusion"]) for c in lint] == [("lint", "failure")]
    assert len(in_big) == 150 and [c["name"] for c in in_small] == ["lint"]
    pages = [c.path for c in fake.calls("list_check_runs_in_suite")]
    assert pages.count(f"/repos/{REPO}/check-suites/{big}/check-runs") == 2


def test_workflow_jobs_and_their_logs_without_the_token(fake: FakeGitHub, app: GitHubApp) -> None:
    run_id = fake.add_workflow_run(REPO, head(fake), "failure",
                                   jobs={"lint": ("success", "ok\n"), "test": "FAILED test_spin - AssertionError\n"})

    async def scenario(repo: Any) -> tuple[list[dict[str, Any]], str, str]:
        jobs = await repo.workflow_run_jobs(run_id)
        failed = next(j for j in jobs if j["conclusion"] == "failure")
        return jobs, failed["name"], await repo.job_log(failed["id"])

    jobs, failed, log = run(app, scenario)
    assert {j["name"] for j in jobs} == {"lint", "test"} and failed == "test"
    assert log == "FAILED test_spin - AssertionError\n"
    redirect, blob = fake.calls("download_job_logs")[0], fake.calls("job_log_blob")[0]
    assert redirect.auth.startswith("token ")  # the API call is authenticated ...
    assert blob.auth == ""  # ... and the installation token never goes to where the log is


def test_a_long_log_keeps_its_end(fake: FakeGitHub, app: GitHubApp) -> None:
    text = "".join(f"line {i}\n" for i in range(20000)) + "Error: the end\n"
    run_id = fake.add_workflow_run(REPO, head(fake), "failure", jobs={"test": text})
    job_id = next(iter(fake._jobs))

    async def scenario(repo: Any) -> tuple[str, str]:
        assert (await repo.workflow_run_jobs(run_id))[0]["id"] == job_id
        return await repo.job_log(job_id, limit=1000), await repo.job_log(job_id)

    short, whole = run(app, scenario)
    assert whole == text
    assert short.startswith(f"[... {len(text) - 1000} bytes of log cut ...]\n")
    assert short.endswith("Error: the end\n") and len(short.split("\n", 1)[1]) == 1000
