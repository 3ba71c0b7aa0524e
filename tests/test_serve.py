"""The real `honk` processes: serve answers, jobs are authorised against (a local) GitHub, and an
accepted request survives a worker killed in the middle of it."""

from __future__ import annotations

import asyncio
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.cli import _reason
from app.process import HonkState
from app.settings import Settings
from app.web.app import create_app
from tests.fakes.github import FakeGitHub
from tests.support import (
    HonkProcess,
    free_port,
    honk_env,
    labeled_payload,
    live_server,
    post_delivery,
    wait_for,
)


@pytest.fixture
def github(app_key: str) -> Iterator[tuple[FakeGitHub, str]]:
    fake = FakeGitHub(app_id=4242, private_key_pem=app_key, permissions={"alice": "write", "mo": "maintain",
                                                                         "bob": "read"})
    with live_server(fake.app) as url:
        yield fake, url


def github_env(tmp_path: Path, github_url: str, app_key: str, database_url: str, **extra: str) -> dict[str, str]:
    return honk_env(tmp_path, GITHUB_APP_ID="4242", GITHUB_PRIVATE_KEY=app_key.replace("\n", "\\n"),
                    GITHUB_API_URL=github_url, HONK_DATABASE_URL=database_url, HONK_POLL_SECONDS="0.1", **extra)


def finished_job(client: httpx.Client, job_id: int) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job = client.get(f"/api/jobs/{job_id}").json()
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None
    return wait_for(done, timeout=30, what=f"job {job_id} to finish")


def test_serve_answers_healthz_and_says_what_is_missing(tmp_path: Path) -> None:
    port = free_port()
    honk = HonkProcess(["serve", "--port", str(port)], honk_env(tmp_path, GITHUB_WEBHOOK_SECRET=""), tmp_path,
                       tmp_path / "serve.log")
    try:
        honk.wait_http(f"http://127.0.0.1:{port}/healthz")
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "ok"}
        home = httpx.get(f"http://127.0.0.1:{port}/").text
        assert "GITHUB_APP_ID" in home and "GITHUB_WEBHOOK_SECRET" in home
    finally:
        assert honk.stop(signal.SIGTERM) == 0
    log = honk.output()
    assert "GitHub is not configured: set GITHUB_APP_ID" in log
    assert (tmp_path / "data" / "honk.db").exists()  # SQLite in HONK_DATA_DIR by default


class HangingGitHub:
    """A GitHub that takes `GET /app` and answers only once the test releases it."""

    def __init__(self) -> None:
        self.asked = threading.Event()
        self.released = threading.Event()
        self.app = Starlette(routes=[Route("/app", self._app)])

    async def _app(self, request: Request) -> JSONResponse:
        self.asked.set()
        while not self.released.is_set():
            await asyncio.sleep(0.02)
        return JSONResponse({"id": 4242, "slug": "honk-hangs", "name": "Honk (hangs)"})


def test_serve_listens_while_github_hangs_and_learns_the_slug_later(tmp_path: Path, app_key: str) -> None:
    hanging = HangingGitHub()
    port = free_port()
    healthz = f"http://127.0.0.1:{port}/healthz"
    with live_server(hanging.app) as github_url:
        honk = HonkProcess(["serve", "--port", str(port)],
                           honk_env(tmp_path, GITHUB_APP_ID="4242", GITHUB_PRIVATE_KEY=app_key.replace("\n", "\\n"),
                                    GITHUB_API_URL=github_url), tmp_path, tmp_path / "serve.log")
        try:
            honk.wait_http(healthz)
            wait_for(hanging.asked.is_set, what="Honk to ask GitHub for its App")
            assert httpx.get(healthz).json() == {"status": "ok"}  # while GitHub has not answered
            assert "mentions of @honk-hangs" not in honk.output()
            hanging.released.set()
            wait_for(lambda: "mentions of @honk-hangs ask Honk to work" in honk.output(),
                     what="the slug, once GitHub answers")
        finally:
            hanging.released.set()
            code = honk.stop(signal.SIGTERM)
    assert code == 0, honk.output()


@pytest.mark.slow  # GitHubApp retries a dropped connection four times (about 18 s) before Honk gives a reason
def test_serve_says_why_it_cannot_learn_the_slug(tmp_path: Path, app_key: str) -> None:
    port = free_port()
    nowhere = f"http://127.0.0.1:{free_port()}"
    honk = HonkProcess(["serve", "--port", str(port)],
                       honk_env(tmp_path, GITHUB_APP_ID="4242", GITHUB_PRIVATE_KEY=app_key.replace("\n", "\\n"),
                                GITHUB_API_URL=nowhere), tmp_path, tmp_path / "serve.log")
    try:
        honk.wait_http(f"http://127.0.0.1:{port}/healthz")  # before GitHub has even been given up on
        line = wait_for(lambda: next((text for text in honk.output().splitlines()
                                      if "cannot learn the App's slug" in text), None),
                        timeout=90, what="the reason GitHub cannot be asked")
    finally:
        assert honk.stop(signal.SIGTERM) == 0
    assert "(RequestError: All connection attempts failed (ConnectError))" in line, line
    assert "only @honk will be recognised until it answers" in line


def test_a_reason_is_never_empty() -> None:
    assert _reason(TimeoutError()) == "TimeoutError"
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as exc:
            raise RuntimeError("cannot connect") from exc
    except RuntimeError as exc:
        assert _reason(exc) == "RuntimeError: cannot connect (ConnectionRefusedError: [Errno 111] Connection refused)"


@pytest.fixture
def path_without_bwrap(tmp_path: Path) -> str:
    """A PATH with git and python but no bubblewrap."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for program in ("git", "python3"):
        found = shutil.which(program)
        if found:
            (bin_dir / program).symlink_to(found)
    return str(bin_dir)


NO_BWRAP = "bubblewrap (bwrap) is not on PATH, so every job will fail"


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_what_runs_jobs_says_at_start_that_bwrap_is_missing(tmp_path: Path, path_without_bwrap: str,
                                                            command: str) -> None:
    port = free_port()
    args = [command, "--port", str(port)] if command == "serve" else [command]
    honk = HonkProcess(args, honk_env(tmp_path, PATH=path_without_bwrap), tmp_path, tmp_path / f"{command}.log")
    try:
        wait_for(lambda: NO_BWRAP in honk.output(), what="the warning")
    finally:
        assert honk.stop(signal.SIGTERM) == 0, honk.output()
    [line] = [text for text in honk.output().splitlines() if NO_BWRAP in text]  # one line, once
    assert "apt-get install bubblewrap" in line


@pytest.mark.parametrize(("command", "extra"), [("serve", {"HONK_SANDBOX": "none"}), ("web", {})])
def test_no_bwrap_warning_without_the_sandbox_or_without_jobs(tmp_path: Path, path_without_bwrap: str,
                                                               command: str, extra: dict[str, str]) -> None:
    port = free_port()
    honk = HonkProcess([command, "--port", str(port)], honk_env(tmp_path, PATH=path_without_bwrap, **extra),
                       tmp_path, tmp_path / f"{command}.log")
    try:
        honk.wait_http(f"http://127.0.0.1:{port}/healthz")
    finally:
        assert honk.stop(signal.SIGTERM) == 0, honk.output()
    assert NO_BWRAP not in honk.output()


def test_writer_is_authorised_and_reader_is_refused(tmp_path: Path, github: tuple[FakeGitHub, str],
                                                     app_key: str, database_url: str) -> None:
    """Permission is checked in the job, against GitHub, on SQLite and PostgreSQL alike. (What a writer's
    job goes on to do is tests/jobs/test_resolve_issue.py's subject.)"""
    fake, github_url = github
    port = free_port()
    honk = HonkProcess(["serve", "--port", str(port)], github_env(tmp_path, github_url, app_key, database_url),
                       tmp_path, tmp_path / "serve.log")
    try:
        honk.wait_http(f"http://127.0.0.1:{port}/healthz")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            writer = post_delivery(client, "issues", labeled_payload(sender="mo", number=1))
            reader = post_delivery(client, "issues", labeled_payload(sender="bob", number=2))
            assert writer.status_code == reader.status_code == 202

            refused = finished_job(client, reader.json()["job"])
            assert refused["outcome"] == "not_authorised" and refused["requester"] == "bob"
            assert refused["result"]["role"] == "read"

            def authorisation() -> list[dict[str, Any]]:
                events = client.get(f"/api/jobs/{writer.json()['job']}").json()["events"]
                return [e["data"] for e in events if e["kind"] == "authorisation"]
            assert wait_for(authorisation, what="the writer's authorisation") == [
                {"requester": "mo", "role": "maintain", "allowed": True}]
    finally:
        honk.stop()
    # The reader's job asked GitHub one question and did nothing else on the issue.
    bob = [r for r in fake.requests if r.path.endswith("/2") or "/bob/" in r.path]
    assert [r.route for r in bob] == ["permission"]


def test_healthz_is_503_when_the_database_does_not_answer(make_settings: Callable[..., Settings]) -> None:
    dead = f"postgresql+psycopg://honk@127.0.0.1:{free_port()}/honk"
    state = HonkState.create(make_settings(honk_database_url=dead))
    with live_server(create_app(state)) as url:
        answer = httpx.get(f"{url}/healthz", timeout=20)
    assert answer.status_code == 503 and answer.json()["status"] == "unavailable"


@pytest.fixture
def one_job(make_settings: Callable[..., Settings], tmp_path: Path) -> Callable[..., tuple[HonkState, int]]:
    def make(**overrides: Any) -> tuple[HonkState, int]:
        state = HonkState.create(make_settings(honk_database_url=f"sqlite:///{tmp_path / 'jobs.db'}", **overrides))
        state.db.migrate()
        from app.intake.triggers import TriggerRules, decide
        request = decide("issues", labeled_payload(), TriggerRules.for_settings(state.settings, state.app_slug), "d-1")
        return state, state.queue.enqueue(request)  # type: ignore[arg-type]
    return make


def test_job_json_is_served_on_loopback(one_job: Callable[..., tuple[HonkState, int]]) -> None:
    state, job_id = one_job()
    with live_server(create_app(state)) as url:
        job = httpx.get(f"{url}/api/jobs/{job_id}").json()
        missing = httpx.get(f"{url}/api/jobs/999999")
    assert (job["id"], job["status"], job["requester"], job["subject"]) == (job_id, "queued", "alice",
                                                                            "acme/widgets#7")
    assert [e["kind"] for e in job["events"]] == ["job.queued"]
    assert job["trigger"]["issue"]["title"] == "Widgets spin backwards"
    assert missing.status_code == 404


def test_job_json_needs_the_dashboard_token_when_set(one_job: Callable[..., tuple[HonkState, int]]) -> None:
    token = "open sesame, says the scripted client"
    state, job_id = one_job(honk_dashboard_token=token)
    with live_server(create_app(state)) as url:
        assert httpx.get(f"{url}/api/jobs/{job_id}").status_code == 401
        assert httpx.get(f"{url}/api/jobs/{job_id}", headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok = httpx.get(f"{url}/api/jobs/{job_id}", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200 and ok.json()["id"] == job_id


def test_job_json_is_off_beyond_loopback_without_a_token(one_job: Callable[..., tuple[HonkState, int]]) -> None:
    state, job_id = one_job()
    state.listen_host = "0.0.0.0"
    with live_server(create_app(state)) as url:
        answer = httpx.get(f"{url}/api/jobs/{job_id}")
    assert answer.status_code == 403 and "HONK_DASHBOARD_TOKEN" in answer.json()["detail"]

