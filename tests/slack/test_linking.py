"""Linking Slack users to GitHub logins: the signed state, GitHub's addresses, and the whole OAuth web flow against
the local GitHub over real HTTP (its authorize redirect followed by httpx, as a browser would)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from app.settings import Settings
from app.slack import linking
from app.slack.linking import LinkError, LinkState, make_state, read_state
from tests.fakes.github import FakeGitHub
from tests.fakes.github.routes.oauth import OAuthFlow, oauth
from tests.support import app_private_key

SECRET = b"k" * 32
NOW = 1_800_000_000.0
CALLBACK = "https://honk.example.com/auth/github/callback"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# ------------------------------------------------------------------------------------------------ the state


def test_a_state_reads_back_as_made() -> None:
    state = make_state("T0ACME001", "U0ALICE01", SECRET, NOW)
    read = read_state(state, SECRET, NOW + 599)
    assert (read.team_id, read.user_id, read.expires) == ("T0ACME001", "U0ALICE01", NOW + 600)
    assert len(read.nonce) >= 20
    assert read_state(make_state("T", "U", SECRET, NOW, ttl=30), SECRET, NOW).expires == NOW + 30
    assert len(state) < 200 and state.isascii() and "=" not in state and "/" not in state and "+" not in state


def test_every_state_has_its_own_nonce() -> None:
    nonces = {read_state(make_state("T", "U", SECRET, NOW), SECRET, NOW).nonce for _ in range(50)}
    assert len(nonces) == 50  # the caller records them to make each link work once


def test_an_expired_state_is_refused() -> None:
    state = make_state("T0ACME001", "U0ALICE01", SECRET, NOW, ttl=600)
    with pytest.raises(LinkError) as caught:
        read_state(state, SECRET, NOW + 600)
    assert caught.value.code == "expired" and "expired" in str(caught.value)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _forged(state: str, **changes: Any) -> str:
    body, _, mac = state.partition(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload.update(changes)
    return f"{_b64(json.dumps(payload).encode())}.{mac}"


@pytest.mark.parametrize("tamper", [
    lambda s: _forged(s, u="U0MALLORY"),  # another Slack user
    lambda s: _forged(s, t="T0OTHER"),  # another workspace
    lambda s: _forged(s, e=int(NOW) + 10**9),  # a longer life
    lambda s: s[:-2] + ("AA" if not s.endswith("AA") else "BB"),  # the MAC changed
    lambda s: s.split(".")[0],  # no MAC
    lambda s: "." + s.split(".")[1],  # no body
    lambda s: s + ".x",
    lambda s: "",
    lambda s: "not a state at all",
    lambda s: "é." + s.split(".")[1],
    lambda s: s.replace(".", ".!!"),
    lambda s: "x" * 5000,
])
def test_a_tampered_state_is_refused(tamper: Callable[[str], str]) -> None:
    state = make_state("T0ACME001", "U0ALICE01", SECRET, NOW)
    with pytest.raises(LinkError) as caught:
        read_state(tamper(state), SECRET, NOW)
    assert caught.value.code == "tampered" and "not valid" in str(caught.value)


def test_a_state_made_with_another_secret_is_refused() -> None:
    with pytest.raises(LinkError) as caught:
        read_state(make_state("T", "U", b"another secret!!", NOW), SECRET, NOW)
    assert caught.value.code == "tampered"


def test_a_well_signed_state_with_bad_contents_is_refused() -> None:
    import hashlib
    import hmac

    def signed(payload: Any) -> str:
        body = _b64(json.dumps(payload).encode())
        mac = hmac.new(SECRET, b"honk slack link state v1." + body.encode(), hashlib.sha256).digest()
        return f"{body}.{_b64(mac)}"

    assert read_state(signed({"t": "T", "u": "U", "n": "N", "e": int(NOW) + 5}), SECRET, NOW) == LinkState(
        "T", "U", "N", NOW + 5)
    for payload in ({"t": "T", "u": "U", "n": "N", "e": "soon"}, {"t": "T", "u": "", "n": "N", "e": 2 * 10**9},
                    {"t": "T", "u": "U", "e": 2 * 10**9}, ["T", "U"], {"t": "T", "u": "U", "n": "N", "e": True}):
        with pytest.raises(LinkError):
            read_state(signed(payload), SECRET, NOW)


def test_the_state_key_comes_from_the_signing_secret(make_settings: Callable[..., Settings]) -> None:
    one = linking.state_secret(make_settings(slack_signing_secret="s" * 32))
    assert one == linking.state_secret(make_settings(slack_signing_secret="s" * 32))
    assert one != linking.state_secret(make_settings(slack_signing_secret="t" * 32))
    assert b"s" * 32 not in one
    with pytest.raises(LinkError) as caught:
        linking.state_secret(make_settings(slack_signing_secret=None))
    assert caught.value.code == "not_configured"


def test_an_empty_secret_makes_no_state() -> None:
    with pytest.raises(ValueError, match="empty"):
        make_state("T", "U", b"", NOW)


# ------------------------------------------------------------------------------------------------ addresses


@pytest.mark.parametrize(("api", "web"), [
    ("https://api.github.com", "https://github.com"),
    ("https://api.github.com/", "https://github.com"),
    ("https://ghe.example.com/api/v3", "https://ghe.example.com"),
    ("https://ghe.example.com/api/v3/", "https://ghe.example.com"),
    ("https://api.acme.ghe.com", "https://acme.ghe.com"),
    ("http://127.0.0.1:8123", "http://127.0.0.1:8123"),
    ("http://localhost:9000/", "http://localhost:9000"),
])
def test_githubs_web_root(api: str, web: str) -> None:
    assert linking.web_root(api) == web


def test_addresses(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(github_api_url="https://ghe.example.com/api/v3", github_client_id="Iv1.abc",
                             honk_public_url="https://honk.example.com/")
    assert linking.redirect_uri(settings) == CALLBACK
    assert linking.link_url(settings, "a.b-c_d") == "https://honk.example.com/slack/link?state=a.b-c_d"
    url = urlsplit(linking.authorize_url(settings, "st.ate", CALLBACK))
    assert (url.scheme, url.netloc, url.path) == ("https", "ghe.example.com", "/login/oauth/authorize")
    assert parse_qs(url.query) == {"client_id": ["Iv1.abc"], "redirect_uri": [CALLBACK], "state": ["st.ate"],
                                   "allow_signup": ["false"]}


def test_addresses_need_their_settings(make_settings: Callable[..., Settings]) -> None:
    bare = make_settings()
    with pytest.raises(LinkError, match="HONK_PUBLIC_URL"):
        linking.redirect_uri(bare)
    with pytest.raises(LinkError, match="GITHUB_CLIENT_ID"):
        linking.authorize_url(bare, "s", CALLBACK)
    with pytest.raises(LinkError, match="GITHUB_CLIENT_SECRET"):
        run(linking.exchange_code(make_settings(github_client_id="Iv1.abc"), "code", CALLBACK))


# ------------------------------------------------------------------------------------------------ the OAuth flow


@pytest.fixture(scope="module")
def app_key() -> str:
    return app_private_key()


@pytest.fixture
def github(app_key: str, tmp_path: Path) -> Iterator[tuple[FakeGitHub, str]]:
    fake = FakeGitHub(app_id=4242, private_key_pem=app_key, root=tmp_path / "github")
    with fake.serve() as url:
        yield fake, url
    fake.close()


@pytest.fixture
def settings(github: tuple[FakeGitHub, str], make_settings: Callable[..., Settings]) -> Settings:
    fake, url = github
    flow = oauth(fake)
    return make_settings(github_api_url=url, github_client_id=flow.client_id,
                         github_client_secret=flow.client_secret, honk_public_url="https://honk.example.com",
                         slack_signing_secret="8f742231b10e8888abcd99yyyzzz85a5")


def approve(settings: Settings, state: str, *, login: str | None = None) -> dict[str, list[str]]:
    """The browser's trip: Honk's authorize URL on GitHub, whose 302 goes to the callback with code and state."""
    url = linking.authorize_url(settings, state, linking.redirect_uri(settings))
    if login:
        url += f"&login={login}"
    answer = httpx.get(url, follow_redirects=False)
    assert answer.status_code == 302, answer.text
    location = urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    return parse_qs(location.query)


def test_the_whole_link(github: tuple[FakeGitHub, str], settings: Settings) -> None:
    fake, _ = github
    flow = oauth(fake)
    flow.approve_as = "alice"
    secret = linking.state_secret(settings)
    state = make_state("T0ACME001", "U0ALICE01", secret, time.time())

    query = approve(settings, state)
    assert query["state"] == [state]
    assert read_state(query["state"][0], secret, time.time()).user_id == "U0ALICE01"
    identity = run(linking.identify(settings, query["code"][0], linking.redirect_uri(settings)))

    assert identity == linking.GitHubIdentity("alice", fake.register_user("alice"))
    assert flow.exchanges[-1]["login"] == "alice"
    assert flow.user_tokens == {}  # revoked once read: Honk holds no user token
    assert [r.route for r in fake.requests] == ["oauth_authorize", "oauth_access_token", "get_authenticated_user",
                                                "revoke_user_token"]
    assert flow.authorizations[0]["allow_signup"] == "false"


def test_the_login_can_be_chosen_per_request(github: tuple[FakeGitHub, str], settings: Settings) -> None:
    query = approve(settings, "s", login="rita")
    assert run(linking.identify(settings, query["code"][0], linking.redirect_uri(settings))).login == "rita"


def test_a_code_works_once(github: tuple[FakeGitHub, str], settings: Settings) -> None:
    code = approve(settings, "s", login="alice")["code"][0]
    redirect = linking.redirect_uri(settings)
    token = run(linking.exchange_code(settings, code, redirect))
    assert token.startswith("ghu_")
    assert run(linking.github_login(settings, token))[0] == "alice"
    with pytest.raises(LinkError) as caught:
        run(linking.exchange_code(settings, code, redirect))
    assert caught.value.code == "bad_verification_code" and "used already or has expired" in str(caught.value)
    assert token not in str(caught.value)


def test_an_expired_or_made_up_code_is_refused(github: tuple[FakeGitHub, str], settings: Settings) -> None:
    fake, _ = github
    code = approve(settings, "s", login="alice")["code"][0]
    oauth(fake).expire_codes()
    for attempt in (code, "0123456789abcdef0123"):
        with pytest.raises(LinkError) as caught:
            run(linking.exchange_code(settings, attempt, linking.redirect_uri(settings)))
        assert caught.value.code == "bad_verification_code"


def test_wrong_client_credentials_are_refused(github: tuple[FakeGitHub, str], settings: Settings,
                                              make_settings: Callable[..., Settings]) -> None:
    code = approve(settings, "s", login="alice")["code"][0]
    wrong = make_settings(github_api_url=settings.github_api_url, github_client_id=settings.github_client_id,
                          github_client_secret="0" * 40, honk_public_url=settings.honk_public_url)
    with pytest.raises(LinkError) as caught:
        run(linking.exchange_code(wrong, code, linking.redirect_uri(wrong)))
    assert caught.value.code == "incorrect_client_credentials" and "GITHUB_CLIENT_SECRET" in str(caught.value)
    assert "0" * 40 not in str(caught.value)


def test_a_changed_redirect_is_refused(github: tuple[FakeGitHub, str], settings: Settings) -> None:
    code = approve(settings, "s", login="alice")["code"][0]
    with pytest.raises(LinkError) as caught:
        run(linking.exchange_code(settings, code, "https://elsewhere.example.com/cb"))
    assert caught.value.code == "redirect_uri_mismatch" and "elsewhere.example.com" in str(caught.value)


def test_a_redirect_not_among_the_apps_callbacks_goes_back_with_an_error(github: tuple[FakeGitHub, str],
                                                                         settings: Settings) -> None:
    fake, _ = github
    oauth(fake).callback_urls = ["https://honk.example.com/setup/callback"]
    url = linking.authorize_url(settings, "st", linking.redirect_uri(settings)) + "&login=alice"
    answer = httpx.get(url, follow_redirects=False)
    location = urlsplit(answer.headers["location"])
    assert (answer.status_code, location.path) == (302, "/setup/callback")
    query = parse_qs(location.query)
    assert query["error"] == ["redirect_uri_mismatch"] and query["state"] == ["st"]
    assert linking.callback_error(query["error"][0], CALLBACK).code == "redirect_uri_mismatch"


def test_a_user_who_cancels(github: tuple[FakeGitHub, str], settings: Settings) -> None:
    fake, _ = github
    oauth(fake).deny = True
    url = linking.authorize_url(settings, "st", linking.redirect_uri(settings)) + "&login=alice"
    query = parse_qs(urlsplit(httpx.get(url, follow_redirects=False).headers["location"]).query)
    assert query["error"] == ["access_denied"] and query["state"] == ["st"] and "code" not in query
    error = linking.callback_error(query["error"][0])
    assert error.code == "access_denied" and "cancelled" in str(error)
    assert linking.callback_error("something_new").code == "something_new"


def test_nobody_signed_in_sees_githubs_page(github: tuple[FakeGitHub, str], settings: Settings) -> None:
    answer = httpx.get(linking.authorize_url(settings, "st", CALLBACK), follow_redirects=False)
    assert answer.status_code == 200 and "Sign in" in answer.text


def test_an_unknown_client_gets_a_404(github: tuple[FakeGitHub, str], settings: Settings,
                                      make_settings: Callable[..., Settings]) -> None:
    other = make_settings(github_api_url=settings.github_api_url, github_client_id="Iv1.nobody")
    assert httpx.get(linking.authorize_url(other, "st", CALLBACK) + "&login=alice").status_code == 404


def test_githubs_default_answer_is_a_form_unless_json_is_asked_for(github: tuple[FakeGitHub, str],
                                                                   settings: Settings) -> None:
    _, url = github
    code = approve(settings, "s", login="alice")["code"][0]
    secret = settings.github_client_secret.get_secret_value() if settings.github_client_secret else ""
    answer = httpx.post(f"{url}/login/oauth/access_token", data={
        "client_id": settings.github_client_id, "client_secret": secret, "code": code})
    assert answer.headers["content-type"].startswith("application/x-www-form-urlencoded")
    form = parse_qs(answer.text)
    assert form["token_type"] == ["bearer"] and form["access_token"][0].startswith("ghu_")
    assert form["expires_in"] == ["28800"] and form["refresh_token"][0].startswith("ghr_")


def test_get_user_answers_user_tokens_only(github: tuple[FakeGitHub, str], settings: Settings) -> None:
    fake, url = github
    token = run(linking.exchange_code(settings, approve(settings, "s", login="alice")["code"][0],
                                      linking.redirect_uri(settings)))
    user = httpx.get(f"{url}/user", headers={"Authorization": f"token {token}"}).json()
    assert (user["login"], user["type"], user["html_url"]) == ("alice", "User", f"{url}/alice")
    assert httpx.get(f"{url}/user", headers={"Authorization": "Bearer ghu_madeup"}).status_code == 401
    assert httpx.get(f"{url}/user").status_code == 401
    fake.tokens["ghs_installation_token_000000000000"] = fake.installation_id
    answer = httpx.get(f"{url}/user", headers={"Authorization": "token ghs_installation_token_000000000000"})
    assert answer.status_code == 403 and answer.json()["message"] == "Resource not accessible by integration"
    oauth(fake).expire_tokens()
    with pytest.raises(LinkError) as caught:
        run(linking.github_login(settings, token))
    assert caught.value.code == "bad_credentials"


def test_revoking_needs_the_client_credentials(github: tuple[FakeGitHub, str], settings: Settings) -> None:
    fake, url = github
    token = run(linking.exchange_code(settings, approve(settings, "s", login="alice")["code"][0],
                                      linking.redirect_uri(settings)))
    flow = oauth(fake)
    wrong = httpx.request("DELETE", f"{url}/applications/{flow.client_id}/token", json={"access_token": token},
                          auth=(flow.client_id, "0" * 40))
    assert wrong.status_code == 404 and flow.login_of(token) == "alice"
    assert run(linking.revoke_token(settings, token)) is True
    assert flow.login_of(token) is None
    assert run(linking.revoke_token(settings, token)) is False  # gone already; never raises


def test_a_secret_from_the_manifest_flow_works_too(github: tuple[FakeGitHub, str], settings: Settings,
                                                   make_settings: Callable[..., Settings]) -> None:
    fake, _ = github
    fake.registered_apps.append({"client_secret": "f" * 40})
    manifest = make_settings(github_api_url=settings.github_api_url, github_client_id=settings.github_client_id,
                             github_client_secret="f" * 40, honk_public_url=settings.honk_public_url)
    code = approve(manifest, "s", login="alice")["code"][0]
    assert run(linking.identify(manifest, code, linking.redirect_uri(manifest))).login == "alice"


def test_github_unreachable_is_a_link_error(settings: Settings, make_settings: Callable[..., Settings]) -> None:
    from tests.support import free_port

    gone = make_settings(github_api_url=f"http://127.0.0.1:{free_port()}", github_client_id="Iv1.abc",
                         github_client_secret="s" * 40)
    with pytest.raises(LinkError) as caught:
        run(linking.exchange_code(gone, "code", CALLBACK))
    assert caught.value.code == "github_unreachable" and caught.value.__cause__ is None
    assert "s" * 40 not in str(caught.value)


def test_github_failing_is_a_link_error(github: tuple[FakeGitHub, str], settings: Settings) -> None:
    fake, _ = github
    fake.failures["oauth_access_token"] = [502]
    with pytest.raises(LinkError) as caught:
        run(linking.exchange_code(settings, "code", CALLBACK))
    assert caught.value.code == "github_http" and "502" in str(caught.value)
    fake.failures["get_authenticated_user"] = [500]
    with pytest.raises(LinkError) as caught:
        run(linking.github_login(settings, "ghu_whatever"))
    assert caught.value.code == "github_http"


def test_the_fakes_client_matches_its_app(github: tuple[FakeGitHub, str]) -> None:
    fake, _ = github
    flow = oauth(fake)
    assert oauth(fake) is flow and isinstance(flow, OAuthFlow)
    assert flow.env() == {"GITHUB_CLIENT_ID": f"Iv1.{4242:016x}", "GITHUB_CLIENT_SECRET": flow.client_secret}
    assert len(flow.client_secret) == 40
