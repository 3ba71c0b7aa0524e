"""Who may see the job pages, their JSON and the login form (README, "Security"), over real HTTP.

- Without HONK_DASHBOARD_TOKEN the pages are served only while every socket Honk bound is loopback, judged
  from the sockets themselves (`--host ""` binds every interface), and only to requests whose `Host` names
  loopback (DNS rebinding).
- The login form is throttled per client and refuses posts from other sites.

Real `honk serve`/`honk web` processes bind where the test says (sometimes every interface), but every request
goes to 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.process import HonkState
from app.settings import Settings
from app.web.app import create_app
from app.web.auth import SESSION_COOKIE, host_names_loopback, is_loopback_name, origin_of, sockets_are_loopback
from app.web.pages import LoginThrottle
from tests.support import HonkProcess, free_port, honk_env, labeled_payload, live_server, post_delivery

TOKEN = "a dashboard token long enough to pass"


@contextmanager
def honk(tmp_path: Path, *args: str, **env: str) -> Iterator[tuple[HonkProcess, str, int]]:
    """A real `honk` listening as `args` say; yields it, the loopback URL to talk to and the port."""
    port = free_port()
    process = HonkProcess([*args, "--port", str(port)], honk_env(tmp_path, **env), tmp_path, tmp_path / "honk.log")
    url = f"http://127.0.0.1:{port}"
    try:
        process.wait_http(f"{url}/healthz")
        yield process, url, port
    finally:
        process.stop()


def queued_job(client: httpx.Client) -> int:
    """A job, queued the way GitHub queues one."""
    answer = post_delivery(client, "issues", labeled_payload())
    assert answer.status_code == 202, answer.text
    return answer.json()["job"]


# ------------------------------------------------------------------------------------------ where Honk listens


@pytest.mark.parametrize(("command", "host"), [("serve", ""), ("serve", "0.0.0.0"), ("web", "")])
def test_listening_on_every_interface_without_a_token_keeps_the_job_pages_off(tmp_path: Path, command: str,
                                                                              host: str) -> None:
    """`--host ""` is every interface to uvicorn: the pages must not take it for loopback (they once did)."""
    with honk(tmp_path, command, "--host", host) as (process, url, _), httpx.Client(base_url=url, timeout=10) as client:
        job = queued_job(client)
        for path in (f"/api/jobs/{job}", "/jobs", f"/jobs/{job}", "/api/jobs/999999"):
            answer = client.get(path)
            assert answer.status_code == 403, (path, answer.text)
            assert "HONK_DASHBOARD_TOKEN" in answer.text and "alice" not in answer.text
        assert client.get("/healthz").json() == {"status": "ok"}
    assert "listens beyond loopback" in process.output() and "HONK_DASHBOARD_TOKEN is not set" in process.output()


def test_every_interface_with_a_token_serves_the_pages_to_its_holder(tmp_path: Path) -> None:
    with honk(tmp_path, "web", "--host", "0.0.0.0", HONK_DASHBOARD_TOKEN=TOKEN) as (process, url, _), \
            httpx.Client(base_url=url, timeout=10) as client:
        job = queued_job(client)
        assert client.get(f"/api/jobs/{job}").status_code == 401
        answer = client.get(f"/api/jobs/{job}", headers={"Authorization": f"Bearer {TOKEN}",
                                                         "Host": "honk.example.org"})  # no Host rule with a token
        assert answer.status_code == 200 and answer.json()["requester"] == "alice"
    assert "listens beyond loopback" not in process.output()


def test_a_name_that_binds_only_loopback_serves_the_pages(tmp_path: Path) -> None:
    """`--host localhost` is no IP literal, but what it binds is loopback: decided by the sockets."""
    with honk(tmp_path, "web", "--host", "localhost") as (process, url, _), \
            httpx.Client(base_url=url, timeout=10) as client:
        job = queued_job(client)
        answer = client.get(f"/api/jobs/{job}")
        assert answer.status_code == 200 and answer.json()["id"] == job
        assert client.get("/jobs").status_code == 200
    assert "listens beyond loopback" not in process.output()


# ------------------------------------------------------------------------------------------ the Host header


def test_a_loopback_honk_answers_only_requests_addressed_to_loopback(tmp_path: Path) -> None:
    """DNS rebinding: attacker.example re-pointed at 127.0.0.1 reaches the port, but says `Host: attacker.example`."""
    with honk(tmp_path, "web") as (_, url, port), httpx.Client(base_url=url, timeout=10) as client:
        # Webhooks are no dashboard route: GitHub (or a proxy in front) sends its own Host.
        with httpx.Client(base_url=url, timeout=10, headers={"Host": "honk.example.org"}) as github:
            job = post_delivery(github, "issues", labeled_payload())
        assert job.status_code == 202, job.text
        job_id = job.json()["job"]

        for host in ("attacker.example", f"attacker.example:{port}", f"127.0.0.1.attacker.example:{port}",
                     "localhost.attacker.example", f"127.0.0.1:{port}@attacker.example", "0.0.0.0", ""):
            for path in (f"/api/jobs/{job_id}", f"/jobs/{job_id}", "/jobs"):
                answer = client.get(path, headers={"Host": host})
                assert answer.status_code == 403, (host, path)
                assert "alice" not in answer.text and "acme/widgets" not in answer.text
        refused = client.get(f"/api/jobs/{job_id}", headers={"Host": "attacker.example"}).json()["detail"]
        assert "HONK_DASHBOARD_TOKEN" in refused and f"http://127.0.0.1:{port}/api/jobs/{job_id}" in refused

        for host in (f"127.0.0.1:{port}", "127.0.0.1", f"localhost:{port}", "LocalHost", f"127.1.2.3:{port}",
                     f"[::1]:{port}"):
            answer = client.get(f"/api/jobs/{job_id}", headers={"Host": host})
            assert answer.status_code == 200 and answer.json()["id"] == job_id, host


@pytest.mark.parametrize(("host", "loopback"), [
    ("localhost", True), ("LOCALHOST:3000", True), ("127.0.0.1", True), ("127.0.0.1:3000", True),
    ("127.255.0.9:80", True), ("[::1]", True), ("[::1]:3000", True),
    (None, False), ("", False), ("127.0.0.256", False), ("127.0.0", False), ("::1", False), ("[::2]:3000", False),
    ("localhost.", False), ("localhost.example", False), ("evil.localhost", False), ("127.0.0.1.nip.io", False),
    ("10.0.0.1", False), ("0.0.0.0", False), ("localhost:port", False), ("127.0.0.1:3000/x", False),
])
def test_which_host_headers_name_loopback(host: str | None, loopback: bool) -> None:
    assert host_names_loopback(host) is loopback


def test_what_counts_as_listening_on_loopback() -> None:
    for name in ("127.0.0.1", "127.0.1.1", "::1", "[::1]", "localhost", "LOCALHOST"):
        assert is_loopback_name(name), name
    for name in ("", "0.0.0.0", "::", "honk.example.org", "192.168.1.2"):
        assert not is_loopback_name(name), name
    assert sockets_are_loopback([("127.0.0.1", 3000), ("::1", 3000, 0, 0)])
    assert not sockets_are_loopback([("127.0.0.1", 3000), ("0.0.0.0", 3000)])
    assert not sockets_are_loopback([("::", 3000, 0, 0)])
    assert not sockets_are_loopback([])  # nothing known is not loopback
    assert not sockets_are_loopback(["/run/honk.sock"])


# ------------------------------------------------------------------------------------------ the login form


@pytest.fixture
def guarded(make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[Callable[..., str]]:
    """A Honk web app with the dashboard token, served in this process on loopback; returns its URL."""
    with ExitStack() as stack:
        def serve(**overrides: Any) -> str:
            state = HonkState.create(make_settings(honk_database_url=f"sqlite:///{tmp_path / 'web.db'}",
                                                   honk_dashboard_token=TOKEN, **overrides))
            stack.callback(state.db.dispose)
            state.db.migrate()
            return stack.enter_context(live_server(create_app(state)))
        yield serve


def test_the_eleventh_failed_sign_in_gets_429_with_retry_after(guarded: Callable[..., str]) -> None:
    url = guarded()
    # uvicorn takes the client from X-Forwarded-For when the peer is a local proxy: two "clients" from one test.
    one, other = {"X-Forwarded-For": "198.51.100.7"}, {"X-Forwarded-For": "198.51.100.8"}
    with httpx.Client(base_url=url, timeout=10) as client:
        for attempt in range(10):
            wrong = client.post("/login", data={"token": f"guess {attempt}", "next": "/jobs"}, headers=one)
            assert wrong.status_code == 401, attempt
            assert "not the dashboard token" in wrong.text
        for token in ("guess 11", TOKEN):  # refused unchecked, even the right token
            throttled = client.post("/login", data={"token": token, "next": "/jobs"}, headers=one)
            assert throttled.status_code == 429
            assert 0 < int(throttled.headers["retry-after"]) <= 300
            assert "Too many wrong tokens from your address" in throttled.text
            assert "10 failed sign-ins per 5 minutes" in throttled.text
            assert SESSION_COOKIE not in throttled.cookies
        # Another address is not held back, and successful sign-ins count for nothing.
        for _ in range(12):
            assert client.post("/login", data={"token": TOKEN}, headers=other).status_code == 303
        assert client.post("/login", data={"token": "nope"}, headers=other).status_code == 401
        # Scripts with the bearer token are not the form's business.
        assert client.get("/jobs", headers={"Authorization": f"Bearer {TOKEN}", **one}).status_code == 200


def test_the_throttle_forgives_after_its_window_and_forgets_old_clients() -> None:
    now = [1000.0]
    throttle = LoginThrottle(limit=3, window=300, max_clients=2, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.retry_after("a") is None
        throttle.failed("a")
        now[0] += 10
    assert throttle.retry_after("a") == 270  # until the first of the three (at 1000) is five minutes old
    now[0] += 270
    assert throttle.retry_after("a") is None  # one failure left the window: one more try
    throttle.failed("a")
    assert throttle.retry_after("a") == 10
    throttle.failed("b")
    throttle.failed("c")  # beyond max_clients: "a", seen longest ago, is forgotten
    assert throttle.retry_after("a") is None and len(throttle._failures) == 2


def test_sign_in_and_out_from_another_site_are_refused(guarded: Callable[..., str]) -> None:
    url = guarded(honk_public_url="https://honk.example.org")
    port = url.rsplit(":", 1)[1]
    with httpx.Client(base_url=url, timeout=10) as client:
        def sign_in(**headers: str) -> httpx.Response:
            return client.post("/login", data={"token": TOKEN, "next": "/jobs"}, headers=headers)

        for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"},
                        {"Origin": f"http://127.0.0.1:{port}.evil.example"},
                        {"Origin": f"http://localhost:{port}"},  # another origin, though the same machine
                        {"Referer": "https://evil.example/honk"},
                        {"Origin": "https://evil.example", "Referer": f"{url}/login"}):  # Origin decides
            answer = sign_in(**headers)
            assert answer.status_code == 403, headers
            assert "another site" in answer.text and SESSION_COOKIE not in answer.cookies
        for headers in ({"Origin": url}, {"Origin": url.upper()}, {"Referer": f"{url}/login?next=/jobs"},
                        {"Origin": "https://honk.example.org"}, {"Origin": "https://HONK.example.org:443"},
                        {"Origin": "http://localhost", "Host": "localhost"},
                        {}):  # neither header: curl, scripts
            answer = sign_in(**headers)
            assert answer.status_code == 303 and answer.cookies.get(SESSION_COOKIE), headers

        client.cookies.set(SESSION_COOKIE, answer.cookies[SESSION_COOKIE])
        assert client.post("/logout", headers={"Origin": "https://evil.example"}).status_code == 403
        assert client.get("/jobs").status_code == 200  # still signed in
        out = client.post("/logout", headers={"Origin": url})
        assert out.status_code == 303 and out.headers["location"] == "/login"


@pytest.mark.parametrize(("url", "origin"), [
    ("http://127.0.0.1:3000/login?x", "http://127.0.0.1:3000"), ("HTTPS://Honk.Example.org:443/", "https://honk.example.org"),
    ("http://honk.example.org:80", "http://honk.example.org"), ("http://[::1]:3000/", "http://[::1]:3000"),
    ("null", None), ("", None), (None, None), ("file:///etc/passwd", None), ("http://x:99999/", None),
])
def test_origins_are_compared_as_browsers_send_them(url: str | None, origin: str | None) -> None:
    assert origin_of(url) == origin
