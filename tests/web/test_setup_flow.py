"""First run, the Probot way: `honk serve` without an App offers to register one from app.yml through GitHub's
manifest flow, keeps the credentials in a private .env, and acts as that App at once."""

from __future__ import annotations

import html
import json
import re
import signal
import stat
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from app.process import HonkState
from app.settings import Settings, load_settings
from app.web.app import create_app
from app.web.setup_flow import PendingStates, build_manifest, manifest_path, update_env_file, web_root
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


def registration_form(page: str) -> tuple[str, dict[str, Any]]:
    """The form that posts to GitHub, as a browser would submit it: its target and its manifest."""
    action = re.search(r'<form id="register" method="post" action="([^"]+)"', page)
    manifest = re.search(r'<input type="hidden" name="manifest" value="([^"]+)"', page)
    assert action and manifest, page
    return html.unescape(action.group(1)), json.loads(html.unescape(manifest.group(1)))


# ------------------------------------------------------------------------------------------ pieces


@pytest.mark.parametrize(("api_url", "web"), [
    ("https://api.github.com", "https://github.com"),
    ("https://api.github.com/", "https://github.com"),
    ("https://ghe.example.com/api/v3", "https://ghe.example.com"),
    ("https://ghe.example.com/api/v3/", "https://ghe.example.com"),
    ("https://api.octo.ghe.com", "https://octo.ghe.com"),
    ("http://127.0.0.1:8765", "http://127.0.0.1:8765"),  # a local GitHub serves its pages and API together
])
def test_web_root_follows_the_api_url(api_url: str, web: str) -> None:
    assert web_root(api_url) == web


def test_manifest_is_app_yml_pointed_at_this_honk() -> None:
    app_yml = yaml.safe_load(manifest_path().read_text())
    manifest = build_manifest("https://honk.example.org/")
    assert manifest["hook_attributes"] == {**app_yml["hook_attributes"],
                                           "url": "https://honk.example.org/api/github/webhooks"}
    assert manifest["redirect_url"] == "https://honk.example.org/setup/callback"
    # Both returns from GitHub: the setup's, and the OAuth one that links Slack users (app/web/slack_link.py).
    assert manifest["callback_urls"] == ["https://honk.example.org/setup/callback",
                                         "https://honk.example.org/auth/github/callback"]
    assert [urlsplit(url).path for url in app_yml["callback_urls"]] == ["/setup/callback", "/auth/github/callback"]
    assert manifest["url"] == app_yml["url"] and manifest["name"] == app_yml["name"]
    assert manifest["default_permissions"] == app_yml["default_permissions"]
    assert manifest["default_events"] == app_yml["default_events"]


def test_states_work_once_and_expire() -> None:
    now = [1000.0]
    states = PendingStates(ttl=60, limit=3, clock=lambda: now[0])
    first, second = states.issue(), states.issue()
    assert first != second
    assert states.take(first) and not states.take(first)  # once only
    assert not states.take("made-up")
    now[0] += 61
    assert not states.take(second)  # expired
    oldest, *_ = [states.issue() for _ in range(4)]  # beyond the limit the oldest gives way
    assert not states.take(oldest)


def test_env_file_is_merged_atomically_and_private(tmp_path: Path, app_key: str,
                                                   make_settings: Callable[..., Settings]) -> None:
    # make_settings has cleared the environment and moved into tmp_path; the settings are read afresh below.
    env = tmp_path / ".env"
    env.write_text("# my settings\nHONK_LABEL=robot\nexport GITHUB_APP_ID=1\ngithub_app_id=2\nHONK_TRIGGER=@robot\n")
    env.chmod(0o644)
    key = app_key.strip().replace("\n", "\\n")
    update_env_file(env, {"GITHUB_APP_ID": "77", "GITHUB_PRIVATE_KEY": key, "GITHUB_WEBHOOK_SECRET": "s3cr3t x"})

    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [".env"]  # no temporary file left behind
    lines = env.read_text().splitlines()
    assert lines[:3] == ["# my settings", "HONK_LABEL=robot", "GITHUB_APP_ID=77"]  # replaced in place
    assert lines[3] == "HONK_TRIGGER=@robot" and len(lines) == 6  # the duplicate is gone, new keys appended
    assert all("\n" not in line for line in lines)
    settings = load_settings(honk_data_dir=tmp_path)
    assert settings.github_app_id == 77 and settings.honk_label == "robot"
    assert settings.github_private_key is not None
    assert settings.github_private_key.get_secret_value() == app_key.strip()
    assert settings.webhook_secret == b"s3cr3t x"


# ------------------------------------------------------------------------------------------ pages


@pytest.fixture
def honk_app(make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[Callable[..., tuple[HonkState, str]]]:
    """A Honk web app served in this process; settings as given (so, by default, no App configured)."""
    with ExitStack() as stack:
        def serve(public_url: str | None = None, **overrides: Any) -> tuple[HonkState, str]:
            settings = make_settings(honk_database_url=f"sqlite:///{tmp_path / 'web.db'}", **overrides)
            state = HonkState.create(settings)
            stack.callback(state.db.dispose)
            state.db.migrate()
            state.public_url = public_url
            return state, stack.enter_context(live_server(create_app(state)))

        yield serve


def test_setup_page_posts_the_manifest_to_github(honk_app: Callable[..., tuple[HonkState, str]]) -> None:
    state, url = honk_app(public_url="https://honk.example.org")
    page = httpx.get(f"{url}/")
    assert page.status_code == 200 and "GITHUB_APP_ID" in page.text
    action, manifest = registration_form(page.text)
    assert re.fullmatch(r"https://github\.com/settings/apps/new\?state=[\w-]{20,}", action)
    assert manifest["hook_attributes"]["url"] == "https://honk.example.org/api/github/webhooks"
    assert manifest["redirect_url"] == "https://honk.example.org/setup/callback"
    assert page.headers["cache-control"] == "no-store"
    # Each page view has its own state.
    assert registration_form(httpx.get(f"{url}/setup").text)[0] != action
    # GitHub will send the browser back to that other address, where it holds no setup cookie: the page says
    # so before the round trip, with a link that opens the page there.
    assert "GitHub will send you back to <code>https://honk.example.org/setup/callback</code>" in page.text
    assert f'href="https://honk.example.org/setup?setup_code={state.setup_code}"' in page.text


def test_setup_page_on_ghes_with_an_address_and_organization_from_the_fields(
        honk_app: Callable[..., tuple[HonkState, str]]) -> None:
    _, url = honk_app(github_api_url="https://ghe.example.com/api/v3")
    page = httpx.get(f"{url}/setup", params={"public_url": "https://honk.corp.example:8443/",
                                             "organization": "acme"})
    assert page.status_code == 200
    action, manifest = registration_form(page.text)
    assert action.startswith("https://ghe.example.com/organizations/acme/settings/apps/new?state=")
    assert manifest["hook_attributes"]["url"] == "https://honk.corp.example:8443/api/github/webhooks"

    bad = httpx.get(f"{url}/setup", params={"public_url": "javascript:alert(1)", "organization": "no/pe"})
    assert bad.status_code == 400
    assert "is not an http:// or https:// address" in bad.text and "is not a GitHub organization" in bad.text
    action, manifest = registration_form(bad.text)  # still a usable form, with the defaults
    assert action.startswith("https://ghe.example.com/settings/apps/new?state=")
    assert manifest["hook_attributes"]["url"] == f"{url}/api/github/webhooks"  # no --public-url: this address


def test_callback_rejects_a_state_it_did_not_issue(honk_app: Callable[..., tuple[HonkState, str]],
                                                   tmp_path: Path) -> None:
    _, url = honk_app()
    httpx.get(f"{url}/")  # a state exists, just not this one
    for query in ({"code": "abc", "state": "forged"}, {"code": "abc"}):
        answer = httpx.get(f"{url}/setup/callback", params=query)
        assert answer.status_code == 400 and "unknown or has expired" in answer.text
    assert not (tmp_path / ".env").exists()


def test_no_setup_once_an_app_is_configured(honk_app: Callable[..., tuple[HonkState, str]], app_key: str) -> None:
    _, url = honk_app(github_app_id=1, github_private_key=app_key)
    home = httpx.get(f"{url}/")
    assert home.status_code == 200 and "The GitHub App is configured" in home.text
    assert "settings/apps/new" not in home.text
    assert httpx.get(f"{url}/setup").status_code == 404
    assert httpx.get(f"{url}/setup/callback", params={"code": "abc", "state": "x"}).status_code == 404


def test_github_refusing_the_code_is_a_clear_error(honk_app: Callable[..., tuple[HonkState, str]],
                                                   app_key: str, tmp_path: Path) -> None:
    fake = FakeGitHub(app_id=4242, private_key_pem=app_key)
    with fake.serve() as github_url:
        state, url = honk_app(github_api_url=github_url)
        action, _ = registration_form(httpx.get(f"{url}/").text)
        issued = action.split("state=", 1)[1]
        answer = httpx.get(f"{url}/setup/callback", params={"code": "0123456789abcdef", "state": issued})
    assert answer.status_code == 502 and "GitHub did not accept the code (HTTP 404" in answer.text
    assert [r.path for r in fake.calls("manifest_conversion")] == ["/app-manifests/0123456789abcdef/conversions"]
    assert not (tmp_path / ".env").exists() and state.settings.missing_github()


# ------------------------------------------------------------------------------------------ who may register


FAR = {"Host": "honk.example.org"}  # a request that did not address this machine: from elsewhere, or rebound


def test_a_visitor_from_elsewhere_needs_the_setup_code(honk_app: Callable[..., tuple[HonkState, str]]) -> None:
    state, url = honk_app(public_url="https://honk.example.org")
    with httpx.Client(base_url=url, timeout=10, headers=FAR) as client:
        for path in ("/", "/setup"):
            refused = client.get(path)
            assert refused.status_code == 403, path
            assert "settings/apps/new" not in refused.text and state.setup_code not in refused.text
            assert "setup code" in refused.text and "honk serve" in refused.text
            assert "First-run setup: open …/setup?setup_code=…" in refused.text
        wrong = client.get("/setup", params={"setup_code": state.setup_code[:-1]})
        assert wrong.status_code == 403 and "not this Honk" in wrong.text
        assert client.get("/setup", params={"code": state.setup_code}).status_code == 403  # GitHub's name, not ours
        assert client.get("/setup/callback", params={"code": "abc", "state": "x"}).status_code == 403
        assert not client.cookies

        page = client.get("/setup", params={"setup_code": state.setup_code})
        assert page.status_code == 200 and "Register a GitHub App" in page.text
        registration_form(page.text)
        cookie = page.headers["set-cookie"].lower()
        assert cookie.startswith("honk_setup=") and "httponly" in cookie and "samesite=lax" in cookie
        assert state.setup_code.lower() not in cookie  # the cookie is not the code
        assert page.headers["referrer-policy"] == "strict-origin"  # GitHub does not see the code in a Referer

        # The cookie lets this browser back in, GitHub's redirect to the callback included.
        assert client.get("/").status_code == 200
        assert client.get("/setup", params={"organization": "acme"}).status_code == 200
        past_the_guard = client.get("/setup/callback", params={"code": "abc", "state": "forged"})
        assert past_the_guard.status_code == 400 and "unknown or has expired" in past_the_guard.text
    with httpx.Client(base_url=url, timeout=10, headers=FAR, cookies={"honk_setup": "forged"}) as other:
        assert other.get("/setup").status_code == 403


@pytest.mark.parametrize("relayed", [{"X-Forwarded-For": "203.0.113.9"}, {"Forwarded": "for=203.0.113.9"},
                                     {"X-Real-IP": "203.0.113.9"}, {"Host": "localhost.attacker.example"}])
def test_only_a_browser_on_this_machine_goes_without_the_code(honk_app: Callable[..., tuple[HonkState, str]],
                                                              relayed: dict[str, str]) -> None:
    _, url = honk_app()
    assert httpx.get(f"{url}/setup").status_code == 200  # from this machine, addressed to it
    assert httpx.get(f"{url}/setup", headers={"Host": "localhost"}).status_code == 200
    assert httpx.get(f"{url}/setup", headers=relayed).status_code == 403


def test_a_refused_callback_does_not_use_up_the_state(honk_app: Callable[..., tuple[HonkState, str]],
                                                      app_key: str) -> None:
    fake = FakeGitHub(app_id=4242, private_key_pem=app_key)
    with fake.serve() as github_url:
        _, url = honk_app(github_api_url=github_url)
        action, _ = registration_form(httpx.get(f"{url}/").text)
        issued = action.split("state=", 1)[1]
        query = {"code": "0123456789abcdef", "state": issued}
        assert httpx.get(f"{url}/setup/callback", params=query, headers=FAR).status_code == 403
        answer = httpx.get(f"{url}/setup/callback", params=query)  # the state is still good: GitHub is asked
    assert answer.status_code == 502 and "GitHub did not accept the code" in answer.text
    assert len(fake.calls("manifest_conversion")) == 1


def test_first_run_from_another_machine_with_the_code_from_the_log(tmp_path: Path, app_key: str) -> None:
    """The operator reads the code in the log and opens Honk by its public name; GitHub's redirect comes back
    to that name, carrying no code, and is accepted by the cookie. (Requests go to 127.0.0.1 with the public
    name in `Host`, as they would arrive through a DNS name pointing here.)"""
    fake = FakeGitHub(app_id=4242, private_key_pem=app_key)
    port = free_port()
    public = f"http://honk.test:{port}"
    far = {"Host": f"honk.test:{port}"}

    def here(address: str) -> str:  # the same address, reached on 127.0.0.1
        return address.replace(public, f"http://127.0.0.1:{port}", 1)

    with fake.serve() as github_url:
        env = honk_env(tmp_path, GITHUB_API_URL=github_url)
        del env["GITHUB_WEBHOOK_SECRET"]
        honk = HonkProcess(["web", "--port", str(port), "--public-url", public], env, tmp_path, tmp_path / "web.log")
        try:
            honk.wait_http(f"http://127.0.0.1:{port}/healthz")
            printed = re.search(r"First-run setup: open (\S+)", honk.output())
            assert printed, honk.output()
            assert printed.group(1).startswith(f"{public}/setup?setup_code=")
            with httpx.Client(timeout=10, headers=far) as browser:
                assert browser.get(here(f"{public}/")).status_code == 403
                assert browser.get(here(f"{public}/setup?setup_code=guess")).status_code == 403

                page = browser.get(here(printed.group(1)))
                assert page.status_code == 200, page.text
                action, manifest = registration_form(page.text)
                assert manifest["redirect_url"] == f"{public}/setup/callback"
                to_github = httpx.post(action, data={"manifest": json.dumps(manifest)}, follow_redirects=False)
                callback = to_github.headers["location"]
                assert callback.startswith(f"{public}/setup/callback?code=") and "setup_code" not in callback

                assert httpx.get(here(callback), headers=far).status_code == 403  # another browser: no cookie
                done = browser.get(here(callback))
                assert done.status_code == 200, done.text
                assert "Install it" in done.text
                assert browser.get(here(f"{public}/setup")).status_code == 404  # configured: gone for everyone
            assert len(fake.registered_apps) == 1
        finally:
            assert honk.stop(signal.SIGTERM) == 0


# ------------------------------------------------------------------------------------------ the real thing


def test_first_run_registers_the_app_and_serves_it_without_a_restart(tmp_path: Path, app_key: str) -> None:
    fake = FakeGitHub(app_id=4242, private_key_pem=app_key, permissions={"bob": "read"})
    fake.create_repo("acme/widgets")
    issue = fake.create_issue("acme/widgets", "Widgets spin backwards")
    (tmp_path / ".env").write_text("# the operator's own settings\nHONK_POLL_SECONDS=0.1\n")
    port = free_port()
    honk_url = f"http://127.0.0.1:{port}"
    with fake.serve() as github_url:
        env = honk_env(tmp_path, GITHUB_API_URL=github_url)
        del env["GITHUB_WEBHOOK_SECRET"]  # nothing about the App is known
        honk = HonkProcess(["serve", "--port", str(port), "--public-url", honk_url], env, tmp_path,
                           tmp_path / "serve.log")
        try:
            honk.wait_http(f"{honk_url}/healthz")
            with httpx.Client(base_url=honk_url, timeout=10) as client:
                assert post_delivery(client, "issues", labeled_payload()).status_code == 401
                forged = client.get("/setup/callback", params={"code": "abc", "state": "forged"})
                assert forged.status_code == 400

                action, manifest = registration_form(client.get("/").text)
                assert action.startswith(f"{github_url}/settings/apps/new?state=")
                assert manifest["hook_attributes"]["url"] == f"{honk_url}/api/github/webhooks"

                # The browser posts the manifest to GitHub, which sends it back to the callback with a code.
                to_github = httpx.post(action, data={"manifest": json.dumps(manifest)}, follow_redirects=False)
                assert to_github.status_code == 302
                callback = to_github.headers["location"]
                assert callback.startswith(f"{honk_url}/setup/callback?code=")
                done = client.get(callback)
                assert done.status_code == 200, done.text
                assert f'href="{github_url}/apps/{fake.slug}/installations/new"' in done.text
                assert "Install it" in done.text
                assert client.get(callback).status_code == 404  # configured now: no second go
                [app] = fake.registered_apps
                assert len(fake.calls("manifest_conversion")) == 1

                # .env: private from the start, the operator's lines kept, the key on one line.
                env_file = tmp_path / ".env"
                assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
                lines = env_file.read_text().splitlines()
                assert lines[:2] == ["# the operator's own settings", "HONK_POLL_SECONDS=0.1"]
                values = dict(line.split("=", 1) for line in lines[2:])
                assert values["GITHUB_APP_ID"] == "4242"
                assert values["GITHUB_WEBHOOK_SECRET"] == app["webhook_secret"]
                assert values["GITHUB_CLIENT_ID"] == app["client_id"]
                assert values["GITHUB_CLIENT_SECRET"] == app["client_secret"]
                assert values["GITHUB_PRIVATE_KEY"].strip("'").replace("\\n", "\n") == app_key.strip()

                # The new secret is in use at once, by the web side and by the in-process worker, which now
                # asks (the local) GitHub as the new App whether the sender may ask.
                assert post_delivery(client, "issues", labeled_payload()).status_code == 401  # old secret
                queued = fake.deliver("issues", fake.issues_labeled("acme/widgets", issue, "honk", "bob"))
                assert queued.status_code == 202, queued.text
                job_id = queued.json()["job"]

                def finished() -> dict[str, Any] | None:
                    job = client.get(f"/api/jobs/{job_id}").json()
                    return job if job["status"] in ("succeeded", "failed", "cancelled") else None
                job = wait_for(finished, timeout=30, what="the job to finish")
                assert (job["outcome"], job["result"]["role"]) == ("not_authorised", "read"), job
                # The App's own @<slug> asks Honk to work too, learnt from the registration.
                mention = fake.deliver("issue_comment", fake.issue_comment_created(
                    "acme/widgets", issue, f"@{fake.slug} please look", "bob"))
                assert mention.status_code == 202, mention.text

                assert client.get("/setup").status_code == 404
                home = client.get("/")
                assert "The GitHub App is configured" in home.text and "settings/apps/new" not in home.text
        finally:
            assert honk.stop(signal.SIGTERM) == 0
    log = honk.output()
    assert "registered GitHub App" in log
    for secret in (app["webhook_secret"], app["client_secret"], app_key.splitlines()[1]):
        assert secret not in log


def test_with_a_relay_the_apps_webhooks_go_to_the_channel() -> None:
    """On a laptop (HONK_WEBHOOK_PROXY_URL), GitHub must send deliveries to the channel Honk reads, as Probot
    does; the callback still comes back to Honk."""
    channel = "https://smee.io/AbCdEfGh12345678"
    manifest = build_manifest("http://127.0.0.1:3000", relay_url=channel)
    assert manifest["hook_attributes"]["url"] == channel
    assert manifest["redirect_url"] == "http://127.0.0.1:3000/setup/callback"
