"""Linking a Slack user to a GitHub login through Honk's pages (CONTRACT section 8): `GET /slack/link`, the click
to GitHub, GitHub's OAuth (the local fake's), and `GET /auth/github/callback`, over real HTTP as a browser makes
them: httpx reads the confirmation page's form, submits it, and follows GitHub's redirect back to Honk.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from app.process import HonkState
from app.queue.db import Database
from app.queue.slack import SlackStore
from app.settings import Settings
from app.slack import linking
from app.web.app import create_app
from tests.fakes.github import FakeGitHub
from tests.fakes.github.routes.oauth import oauth
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_events import TEAM_ID
from tests.support import HonkProcess, app_private_key, free_port, honk_env, live_server, wait_for

ALICE = "U0ALICE"


class _Form(HTMLParser):
    """The confirmation page's one form: its action, method and fields."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.method = ""
        self.fields: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action, self.method = values.get("action"), values.get("method", "")
        elif tag == "input" and values.get("type") == "hidden":
            self.fields.append((values["name"], values.get("value", "")))


def read_form(page: str) -> _Form:
    form = _Form()
    form.feed(page)
    assert form.action and form.method.lower() == "get", page
    return form


def text(page: str) -> str:
    """The page as a person reads it: tags gone, spaces collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", page).split()).replace(" .", ".")


def click_through(client: httpx.Client, link: str) -> httpx.Response:
    """A browser on Honk's link: the confirmation page, the button (a GET form), GitHub's redirect to Honk."""
    page = client.get(link)
    assert page.status_code == 200, page.text
    form = read_form(page.text)
    return client.get(form.action or "", params=form.fields, follow_redirects=True)


@dataclass
class World:
    github: FakeGitHub
    slack: FakeSlack
    settings: Settings
    url: str
    db: Database

    def link(self, user: str = ALICE) -> str:
        """The address the SLACK job gives an unlinked user."""
        state = linking.make_state(TEAM_ID, user, linking.state_secret(self.settings), time.time())
        return linking.link_url(self.settings, state)

    def login_of(self, user: str = ALICE) -> str | None:
        return SlackStore(self.db).login_of(TEAM_ID, user)


@pytest.fixture(scope="module")
def app_key() -> str:
    return app_private_key()


@pytest.fixture
def fakes(app_key: str, tmp_path: Path) -> Iterator[tuple[FakeGitHub, str, FakeSlack]]:
    github = FakeGitHub(app_id=4242, private_key_pem=app_key, root=tmp_path / "github")
    with github.serve() as github_url, FakeSlack() as slack:
        slack.add_user(ALICE, "alice", real_name="Alice Liddell")
        yield github, github_url, slack
    github.close()


@pytest.fixture
def world(fakes: tuple[FakeGitHub, str, FakeSlack], make_settings: Callable[..., Settings],
          database_url: str) -> Iterator[World]:
    github, github_url, slack = fakes
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    flow = oauth(github)
    flow.approve_as = "alice"
    flow.callback_urls = [f"{url}/setup/callback", f"{url}/auth/github/callback"]  # as app.yml registers them
    settings = make_settings(honk_database_url=database_url, honk_public_url=url, github_api_url=github_url,
                             github_client_id=flow.client_id, github_client_secret=flow.client_secret,
                             slack_bot_token=slack.token, slack_signing_secret=slack.signing_secret,
                             slack_api_url=slack.url)
    state = HonkState.create(settings)
    state.db.migrate()
    with live_server(create_app(state), port):
        yield World(github, slack, settings, url, state.db)
    state.db.dispose()


# ------------------------------------------------------------------------------------------------ the whole link


def test_the_confirmation_page_names_the_slack_user_and_asks_for_a_click(world: World) -> None:
    page = httpx.get(world.link(), timeout=10)
    assert page.status_code == 200
    said = text(page.text)
    assert "Alice Liddell (U0ALICE)" in said and TEAM_ID in said and "Continue to GitHub" in said
    form = read_form(page.text)
    github = urlsplit(world.github.base_url or "")
    assert urlsplit(form.action or "")[:3] == (github.scheme, github.netloc, "/login/oauth/authorize")
    fields = dict(form.fields)
    assert fields["client_id"] == oauth(world.github).client_id
    assert fields["redirect_uri"] == f"{world.url}/auth/github/callback"
    assert fields["allow_signup"] == "false" and fields["state"]
    # The page itself goes nowhere: no redirect, no script, and no frame can click for the reader.
    assert oauth(world.github).authorizations == []
    assert "<script" not in page.text
    policy = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy
    assert f"form-action 'self' {world.github.base_url}" in policy
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"


def test_a_slack_user_is_linked_through_githubs_oauth(world: World) -> None:
    with httpx.Client(timeout=10) as browser:
        answer = click_through(browser, world.link())
    assert answer.status_code == 200, answer.text
    assert "Linked: Slack user U0ALICE is now @alice on GitHub. Go back to Slack." in text(answer.text)
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert world.login_of() == "alice"
    flow = oauth(world.github)
    assert flow.user_tokens == {}  # the user token was revoked once it had named its user
    routes = [r.route for r in world.github.requests]
    assert routes == ["oauth_authorize", "oauth_access_token", "get_authenticated_user", "revoke_user_token"]
    # The DM in Slack, best effort, after the page.
    posted = wait_for(lambda: world.slack.calls_to("chat.postMessage"), what="the DM")
    assert posted[0].args["channel"] == ALICE and "alice" in str(posted[0].args["text"])


def test_a_link_works_once(world: World) -> None:
    link = world.link()
    with httpx.Client(timeout=10) as browser:
        assert click_through(browser, link).status_code == 200
        again = click_through(browser, link)  # the same link: GitHub approves again, Honk refuses the state
    assert again.status_code == 400
    assert "This link was used already" in text(again.text)
    assert len(oauth(world.github).exchanges) == 1  # the second code was never even exchanged


def test_a_changed_or_made_up_state_is_refused(world: World) -> None:
    link = world.link()
    state = httpx.URL(link).params["state"]
    mac = state.partition(".")[2]
    other = linking.make_state(TEAM_ID, "U0MALLORY", linking.state_secret(world.settings), time.time())
    tampered = [f"{other.split('.')[0]}.{mac}", state[:-2] + ("AA" if not state.endswith("AA") else "BB"),
                "not-a-state", ""]
    for bad in tampered:
        page = httpx.get(f"{world.url}/slack/link", params={"state": bad}, timeout=10)
        assert page.status_code == 400, (bad, page.text)
        assert "This link is not valid" in text(page.text)
        back = httpx.get(f"{world.url}/auth/github/callback", params={"state": bad, "code": "abc"}, timeout=10)
        assert back.status_code == 400, back.text
    made_elsewhere = linking.make_state(TEAM_ID, ALICE, b"another honk's key", time.time())
    assert httpx.get(f"{world.url}/slack/link", params={"state": made_elsewhere}, timeout=10).status_code == 400
    assert world.login_of() is None and world.login_of("U0MALLORY") is None
    assert oauth(world.github).exchanges == []


def test_an_expired_link_says_so(world: World) -> None:
    old = linking.make_state(TEAM_ID, ALICE, linking.state_secret(world.settings), time.time() - 3600)
    page = httpx.get(f"{world.url}/slack/link", params={"state": old}, timeout=10)
    assert page.status_code == 400 and "This link has expired" in text(page.text)


def test_cancelling_on_github_is_explained_and_the_link_still_works(world: World) -> None:
    flow = oauth(world.github)
    flow.deny = True
    link = world.link()
    with httpx.Client(timeout=10) as browser:
        denied = click_through(browser, link)
        assert denied.status_code == 400
        assert "The authorization was cancelled on GitHub, so nothing was linked." in text(denied.text)
        assert world.login_of() is None
        flow.deny = False
        assert click_through(browser, link).status_code == 200  # the state was not used up by the refusal
    assert world.login_of() == "alice"


def test_a_code_github_refuses_is_explained(world: World) -> None:
    link = world.link()
    state = httpx.URL(link).params["state"]
    answer = httpx.get(f"{world.url}/auth/github/callback", params={"state": state, "code": "made-up"}, timeout=10)
    assert answer.status_code == 400
    assert "GitHub did not accept the sign-in code" in text(answer.text)
    missing = httpx.get(f"{world.url}/auth/github/callback", params={"state": state}, timeout=10)
    assert missing.status_code == 400 and "lacks its code or state" in text(missing.text)
    assert world.login_of() is None


def test_the_pages_answer_only_at_honks_own_address(world: World) -> None:
    link = world.link()
    for path in (link, f"{world.url}/auth/github/callback?state=x&code=y"):
        page = httpx.get(path, headers={"Host": "attacker.example"}, timeout=10)
        assert page.status_code == 400 and "This page answers only at" in text(page.text)
    assert httpx.get(link.replace("127.0.0.1", "localhost"), timeout=10).status_code == 200  # loopback names


def test_without_slack_the_pages_are_not_there(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    state = HonkState.create(make_settings(honk_database_url=f"sqlite:///{tmp_path / 'off.db'}"))
    state.db.migrate()
    with live_server(create_app(state)) as url:
        page = httpx.get(f"{url}/slack/link", params={"state": "x.y"}, timeout=10)
        back = httpx.get(f"{url}/auth/github/callback", params={"state": "x.y", "code": "c"}, timeout=10)
    assert page.status_code == back.status_code == 404
    assert "Slack is not configured" in text(page.text)
    state.db.dispose()


# ------------------------------------------------------------------------------------------------ the token


def test_a_real_honk_web_links_and_keeps_no_github_token(fakes: tuple[FakeGitHub, str, FakeSlack],
                                                        make_settings: Callable[..., Settings],
                                                        tmp_path: Path) -> None:
    """The user token GitHub hands out is used once and revoked: it is nowhere in Honk's data directory, its
    database or its log (at DEBUG), nor on any page."""
    github, github_url, slack = fakes
    flow = oauth(github)
    flow.approve_as = "alice"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data = tmp_path / "data"
    env = honk_env(tmp_path, HONK_DATABASE_URL=f"sqlite:///{data / 'honk.db'}", HONK_PUBLIC_URL=url,
                   GITHUB_API_URL=github_url, HONK_LOG_LEVEL="DEBUG", **flow.env(), **slack.env())
    honk = HonkProcess(["web", "--port", str(port)], env, tmp_path, tmp_path / "honk.log")
    try:
        honk.wait_http(f"{url}/healthz")
        settings = make_settings(slack_signing_secret=slack.signing_secret, honk_public_url=url)
        link = linking.link_url(settings, linking.make_state(TEAM_ID, ALICE, linking.state_secret(settings),
                                                             time.time()))
        with httpx.Client(timeout=10) as browser:
            answer = click_through(browser, link)
        assert answer.status_code == 200, answer.text + honk.output()
        wait_for(lambda: slack.calls_to("chat.postMessage"), what="the DM")
    finally:
        honk.stop()
    (read,) = [r for r in github.requests if r.route == "get_authenticated_user"]
    token = read.auth.split()[-1]
    assert token.startswith("ghu_") and flow.user_tokens == {}
    revoked = [r for r in github.requests if r.route == "revoke_user_token"]
    assert revoked and revoked[0].json == {"access_token": token}
    assert token not in answer.text
    found = [str(path) for path in data.rglob("*") if path.is_file() and token.encode() in path.read_bytes()]
    assert found == []
    log = honk.output()
    assert token not in log and flow.client_secret not in log and slack.token not in log
    assert "linked Slack user U0ALICE" in log
    db = Database(f"sqlite:///{data / 'honk.db'}")
    try:
        assert SlackStore(db).login_of(TEAM_ID, ALICE) == "alice"
    finally:
        db.dispose()
