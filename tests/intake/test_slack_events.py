"""`POST /api/slack/events` over real HTTP (CONTRACT section 8): Slack's signed requests, as the fake builds them,
against Honk's web app on loopback, and once against a real `honk web`.

What is checked is what Slack and the SLACK job see: the status code and answer, the delivery row, and the job
with its payload (the contract in app/intake/slack.py's docstring).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from app.intake.slack import NOT_CONFIGURED, ON_IT
from app.process import HonkState
from app.queue.db import Database
from app.queue.models import Delivery, Job
from app.settings import Settings
from app.web.app import create_app
from tests.fakes import slack_events as ev
from tests.fakes.slack import FakeSlack
from tests.support import ROOT, HonkProcess, free_port, honk_env, live_server

EVENTS = "/api/slack/events"
ALICE = "U0ALICE"
GENERAL = "C0GENERAL"


@dataclass
class Honk:
    state: HonkState
    client: httpx.Client
    slack: FakeSlack

    def send(self, request: ev.SignedRequest) -> httpx.Response:
        body, headers = request
        return self.client.post(EVENTS, content=body, headers=headers)

    def jobs(self) -> list[Job]:
        return _jobs(self.state.db)

    def delivery(self, delivery_id: str) -> Delivery | None:
        with self.state.db.session() as session:
            return session.get(Delivery, delivery_id)

    def deliveries(self) -> list[Delivery]:
        with self.state.db.session() as session:
            return list(session.scalars(select(Delivery)))


def _jobs(db: Database) -> list[Job]:
    with db.session() as session:
        return list(session.scalars(select(Job).order_by(Job.id)))


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        fake.add_user(ALICE, "alice")
        fake.add_channel(GENERAL, "general")
        yield fake


@pytest.fixture
def honk(make_settings: Callable[..., Settings], database_url: str, slack: FakeSlack) -> Iterator[Honk]:
    settings = make_settings(honk_database_url=database_url, slack_bot_token=slack.token,
                             slack_signing_secret=slack.signing_secret, slack_api_url=slack.url)
    state = HonkState.create(settings)
    state.db.migrate()
    with live_server(create_app(state)) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield Honk(state, client, slack)
    state.db.dispose()


# ------------------------------------------------------------------------------------------------ the handshake


def test_url_verification_gets_its_challenge_back(honk: Honk) -> None:
    answer = honk.send(ev.url_verification("the-challenge-123"))
    assert answer.status_code == 200
    assert answer.json() == {"challenge": "the-challenge-123"}
    assert honk.deliveries() == []


@pytest.mark.parametrize("bad", ["forged", "stale"])
def test_a_forged_or_stale_request_is_refused_and_nothing_is_stored(honk: Honk, bad: str) -> None:
    event = ev.app_mention("acme/widgets fix the spinner", user=ALICE, channel=GENERAL)
    for request in (ev.event_callback(event, **{bad: True}), ev.url_verification(**{bad: True}),
                    ev.slash_command("acme/widgets fix it", ALICE, GENERAL, **{bad: True}),
                    ev.block_action("honk_merge", "acme/widgets#3", ALICE, GENERAL, ev.new_ts(), **{bad: True})):
        answer = honk.send(request)
        assert answer.status_code == 401, answer.text
    unsigned = ev.event_callback(event)
    assert honk.client.post(EVENTS, content=unsigned.body, headers={"Content-Type": "application/json"}
                            ).status_code == 401
    # A timestamp from the future is as bad as a stale one; garbage with no signature is refused before parsing.
    future = ev.event_callback(event, timestamp=int(time.time()) + 600)
    assert honk.send(future).status_code == 401
    assert honk.client.post(EVENTS, content=b"\xff\xfe{not json", headers={"Content-Type": "application/json"}
                            ).status_code == 401
    garbled = {**unsigned.headers, "X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=00"}
    assert honk.client.post(EVENTS, content=unsigned.body, headers=garbled).status_code == 401
    assert honk.jobs() == [] and honk.deliveries() == []


def test_a_signed_body_bolt_cannot_read_is_a_400_not_a_5xx(honk: Honk) -> None:
    for body in (b"{not json", b"[1, 2]", b"\xff\xfe", b'{"type": "event_callback", "event": "nope"}'):
        headers = ev.signed_headers(body)
        answer = honk.client.post(EVENTS, content=body, headers=headers)
        assert answer.status_code in (200, 400), (body, answer.status_code, answer.text)
    assert honk.jobs() == []


def test_a_body_over_a_mebibyte_is_refused(honk: Honk) -> None:
    body = json.dumps({"type": "event_callback", "pad": "x" * (1024 * 1024)}).encode()
    assert honk.client.post(EVENTS, content=body, headers=ev.signed_headers(body)).status_code == 413


def test_without_slack_settings_the_route_says_what_is_missing(make_settings: Callable[..., Settings],
                                                               tmp_path: Path) -> None:
    state = HonkState.create(make_settings(honk_database_url=f"sqlite:///{tmp_path / 'off.db'}"))
    state.db.migrate()
    with live_server(create_app(state)) as url:
        body, headers = ev.url_verification()
        answer = httpx.post(url + EVENTS, content=body, headers=headers, timeout=10)
    assert answer.status_code == 404
    assert answer.json() == {"error": NOT_CONFIGURED}
    assert NOT_CONFIGURED == "Slack is not configured: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET"


# ------------------------------------------------------------------------------------------------ events


def test_a_mention_is_stored_as_a_slack_job_before_the_fast_answer(honk: Honk) -> None:
    event = honk.slack.user_posts(GENERAL, ALICE, "acme/widgets fix the spinner", mention=True)
    event["files"] = [{"id": "F1", "name": "spinner.png", "title": "Spinner", "mimetype": "image/png",
                       "permalink": "https://acme.slack.com/files/U0ALICE/F1/spinner.png",
                       "url_private": "https://files.slack.com/secret"}]
    request = ev.event_callback(event, event_id="Ev0MENTION1")
    started = time.perf_counter()
    answer = honk.send(request)
    elapsed = time.perf_counter() - started
    assert answer.status_code == 200, answer.text
    assert elapsed < 1.0  # Slack allows three seconds; this is a local commit
    assert answer.json()["status"] == "queued"
    (job,) = honk.jobs()
    assert answer.json()["job"] == job.id
    assert (job.kind, job.repo, job.number, job.requester, job.installation_id) == (
        "slack", "acme/widgets", None, ALICE, None)
    assert job.subject == f"slack:{ev.TEAM_ID}:{GENERAL}:{event['ts']}"
    assert job.delivery_id == "slack:Ev0MENTION1"
    assert job.payload == {
        "channel": "slack", "type": "mention", "team_id": ev.TEAM_ID, "channel_id": GENERAL, "user_id": ALICE,
        "ts": event["ts"], "thread_ts": event["ts"], "text": f"<@{ev.BOT_USER_ID}> acme/widgets fix the spinner",
        "files": [{"name": "spinner.png", "permalink": "https://acme.slack.com/files/U0ALICE/F1/spinner.png",
                   "mimetype": "image/png"}],
        "bot_user_id": ev.BOT_USER_ID, "delivery_id": "slack:Ev0MENTION1", "event_id": "Ev0MENTION1"}
    delivery = honk.delivery("slack:Ev0MENTION1")
    assert delivery is not None and (delivery.outcome, delivery.job_id) == ("queued", job.id)


def test_a_retried_event_does_nothing_twice(honk: Honk) -> None:
    event = ev.app_mention("acme/widgets fix the spinner", user=ALICE, channel=GENERAL)
    first = ev.event_callback(event)
    assert honk.send(first).json()["status"] == "queued"
    for num in (1, 2, 3):
        again = honk.send(ev.retry(first, num=num))
        assert (again.status_code, again.json()) == (200, {"status": "duplicate"})
    assert len(honk.jobs()) == 1


def test_one_message_mentioning_honk_is_one_job_though_slack_sends_two_events(honk: Honk) -> None:
    """Slack sends both `app_mention` and `message` (two event_ids) for a mention in a channel Honk is in, and for
    one in a thread: the app_mention carries it."""
    root = ev.app_mention("acme/widgets fix the spinner", user=ALICE, channel=GENERAL)
    plain = ev.message(root["text"], ALICE, GENERAL, ts=root["ts"])
    assert honk.send(ev.event_callback(root)).json()["status"] == "queued"
    assert honk.send(ev.event_callback(plain)).json()["status"] == "ignored"
    reply_mention = ev.app_mention("also the other one", ALICE, GENERAL, thread_ts=root["ts"])
    reply_plain = ev.message(reply_mention["text"], ALICE, GENERAL, ts=reply_mention["ts"], thread_ts=root["ts"])
    assert honk.send(ev.event_callback(reply_plain)).json()["status"] == "ignored"
    assert honk.send(ev.event_callback(reply_mention)).json()["status"] == "queued"
    jobs = honk.jobs()
    assert [j.payload["type"] for j in jobs] == ["mention", "mention"]
    assert jobs[1].payload["thread_ts"] == root["ts"] and jobs[1].payload["ts"] == reply_mention["ts"]
    assert jobs[0].subject == jobs[1].subject  # one thread, one queue: the reply waits for the request


def test_a_reply_in_a_thread_and_a_direct_message_are_jobs(honk: Honk) -> None:
    root = honk.slack.user_posts(GENERAL, ALICE, "acme/widgets fix the spinner", mention=True)
    reply = honk.slack.user_posts(GENERAL, ALICE, "and make it blue", thread_ts=root["ts"])
    answer = honk.send(ev.event_callback(reply))
    assert answer.json()["status"] == "queued"
    dm = honk.slack.user_posts(honk.slack.im(ALICE), ALICE, "acme/gadgets what does the build do?")
    assert honk.send(ev.event_callback(dm)).json()["status"] == "queued"
    top = honk.slack.user_posts(GENERAL, ALICE, "lunch anyone?")
    assert honk.send(ev.event_callback(top)).json() == {
        "status": "ignored", "reason": "a channel message that does not mention Honk"}
    reply_job, dm_job = honk.jobs()
    assert (reply_job.payload["type"], reply_job.payload["thread_ts"], reply_job.repo) == ("reply", root["ts"], "")
    assert reply_job.subject == f"slack:{ev.TEAM_ID}:{GENERAL}:{root['ts']}"
    assert (dm_job.payload["type"], dm_job.repo, dm_job.payload["channel_id"]) == (
        "dm", "acme/gadgets", honk.slack.im(ALICE))
    assert dm_job.payload["thread_ts"] == dm_job.payload["ts"] == dm["ts"]


@pytest.mark.parametrize("legacy", [False, True])
def test_bots_messages_are_stored_as_ignored_and_make_no_job(honk: Honk, legacy: bool) -> None:
    root = ev.app_mention("acme/widgets fix the spinner", user=ALICE, channel=GENERAL)
    own = ev.bot_message("👀 Queued", GENERAL, thread_ts=root["ts"], legacy=legacy)  # Honk's own status post
    other = ev.bot_message("deploy finished", GENERAL, thread_ts=root["ts"], bot_id="B0OTHER", bot_user_id="U0OTHER",
                           legacy=legacy)
    for event in (own, other):
        request = ev.event_callback(event, event_id=ev.new_event_id())
        answer = honk.send(request)
        assert answer.status_code == 200 and answer.json()["status"] == "ignored", answer.text
        assert "bot" in answer.json()["reason"]
    assert honk.jobs() == []


def test_an_edit_or_a_deletion_is_ignored_with_the_reason(honk: Honk) -> None:
    root = honk.slack.user_posts(GENERAL, ALICE, "acme/widgets fix the spinner", mention=True)
    edited = ev.event_callback(honk.slack.user_edits(GENERAL, root["ts"], "acme/widgets fix the spinner now"),
                               event_id="Ev0EDITED01")
    answer = honk.send(edited)
    assert answer.json() == {"status": "ignored",
                             "reason": "an edited message: Honk does not re-read an edited request"}
    row = honk.delivery("slack:Ev0EDITED01")
    assert row is not None and (row.outcome, row.event, row.action, row.job_id) == (
        "ignored", "slack_message", "message.message_changed", None)
    assert row.reason == "an edited message: Honk does not re-read an edited request"
    deleted = honk.send(ev.event_callback(honk.slack.user_deletes(GENERAL, root["ts"])))
    assert deleted.json() == {"status": "ignored", "reason": "a deleted message"}
    # Slack sends an app_mention again for an edited message that mentions the bot: not re-read either.
    again = ev.app_mention("acme/widgets fix the spinner now", ALICE, GENERAL, ts=root["ts"])
    again["edited"] = {"user": ALICE, "ts": ev.new_ts()}
    assert honk.send(ev.event_callback(again)).json()["status"] == "ignored"
    assert honk.jobs() == []


def test_other_events_are_acknowledged_and_stored_as_ignored(honk: Honk) -> None:
    event = {"type": "reaction_added", "user": ALICE, "reaction": "eyes", "event_ts": ev.new_ts(),
             "item": {"type": "message", "channel": GENERAL, "ts": ev.new_ts()}}
    answer = honk.send(ev.event_callback(event, event_id="Ev0REACTION"))
    assert answer.json() == {"status": "ignored", "reason": "Honk does not act on reaction_added events"}
    joined = ev.message("", ALICE, GENERAL)
    joined["subtype"] = "channel_join"
    assert honk.send(ev.event_callback(joined)).json() == {"status": "ignored", "reason": "a channel_join message"}
    assert honk.jobs() == []


def test_a_database_that_does_not_answer_gets_a_503_so_slack_retries(honk: Honk,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    def down(batch: Any) -> Any:
        raise OperationalError("INSERT INTO deliveries", {}, Exception("the database is gone"))

    monkeypatch.setattr(honk.state.queue, "accept_deliveries", down)
    event = ev.event_callback(ev.app_mention("acme/widgets fix it", ALICE, GENERAL))
    answer = honk.send(event)
    assert answer.status_code == 503 and answer.json()["status"] == "error", answer.text
    command = honk.send(honk.slack.command("acme/widgets fix it", ALICE, GENERAL))
    assert command.status_code == 503
    monkeypatch.undo()
    assert honk.send(ev.retry(event)).json()["status"] == "queued"  # Slack's retry, once the database is back
    assert len(honk.jobs()) == 1


# ------------------------------------------------------------------------------------------------ commands


def test_a_slash_command_is_stored_and_acknowledged_with_an_ephemeral_line(honk: Honk) -> None:
    request = honk.slack.command("acme/widgets fix the spinner", ALICE, GENERAL)
    fields = request.payload
    answer = honk.send(request)
    assert answer.status_code == 200
    assert answer.json() == {"text": ON_IT, "response_type": "ephemeral"}
    (job,) = honk.jobs()
    assert (job.kind, job.repo, job.requester, job.delivery_id) == (
        "slack", "acme/widgets", ALICE, f"slack:cmd:{fields['trigger_id']}")
    assert job.payload == {
        "channel": "slack", "type": "command", "team_id": ev.TEAM_ID, "channel_id": GENERAL, "user_id": ALICE,
        "ts": "", "thread_ts": "", "text": "acme/widgets fix the spinner", "files": [], "bot_user_id": "",
        "delivery_id": f"slack:cmd:{fields['trigger_id']}", "trigger_id": fields["trigger_id"],
        "response_url": fields["response_url"], "command": "/honk"}
    assert job.subject == f"slack:{ev.TEAM_ID}:{GENERAL}:"
    # The same command sent again (a double submit) queues nothing more.
    assert honk.send(ev.slash_command("acme/widgets fix the spinner", ALICE, GENERAL,
                                      trigger_id=fields["trigger_id"])).status_code == 200
    assert len(honk.jobs()) == 1


def test_a_malformed_command_is_answered_at_once_and_stored_as_ignored(honk: Honk) -> None:
    request = honk.slack.command("acme/widgets", ALICE, GENERAL)
    answer = honk.send(request)
    assert answer.status_code == 200
    body = answer.json()
    assert body["response_type"] == "ephemeral" and "Say what to do after the repository" in body["text"]
    row = honk.delivery(f"slack:cmd:{request.payload['trigger_id']}")
    assert row is not None and row.outcome == "ignored" and "Say what to do" in (row.reason or "")
    helped = honk.send(honk.slack.command("help", ALICE, GENERAL))
    assert helped.json()["response_type"] == "ephemeral" and "/honk owner/name" in json.dumps(helped.json())
    assert honk.jobs() == []


def test_other_commands_are_jobs_for_the_worker(honk: Honk) -> None:
    for text in ("channel acme/widgets", "status", "merge 12", "campaign bump the linter"):
        assert honk.send(honk.slack.command(text, ALICE, GENERAL)).json()["text"] == ON_IT
    assert [job.repo for job in honk.jobs()] == ["acme/widgets", "", "", ""]


# ------------------------------------------------------------------------------------------------ buttons


def test_a_merge_click_is_stored_as_a_job(honk: Honk) -> None:
    root = honk.slack.user_posts(GENERAL, ALICE, "acme/widgets fix the spinner", mention=True)
    status_ts = ev.new_ts()
    request = ev.block_action("honk_merge", "acme/widgets#12", ALICE, GENERAL, status_ts, thread_ts=root["ts"])
    fields = request.payload
    answer = honk.send(request)
    assert (answer.status_code, answer.text) == (200, "")
    (job,) = honk.jobs()
    assert (job.repo, job.requester, job.delivery_id) == ("acme/widgets", ALICE, f"slack:act:{fields['trigger_id']}")
    assert job.payload == {
        "channel": "slack", "type": "action", "team_id": ev.TEAM_ID, "channel_id": GENERAL, "user_id": ALICE,
        "ts": status_ts, "thread_ts": root["ts"], "text": "", "files": [], "bot_user_id": "",
        "delivery_id": f"slack:act:{fields['trigger_id']}", "trigger_id": fields["trigger_id"],
        "response_url": fields["response_url"], "action": {"action_id": "honk_merge", "value": "acme/widgets#12"}}
    assert job.subject == f"slack:{ev.TEAM_ID}:{GENERAL}:{root['ts']}"
    assert honk.send(ev.block_action("honk_merge", "acme/widgets#12", ALICE, GENERAL, status_ts,
                                     trigger_id=fields["trigger_id"])).status_code == 200
    assert len(honk.jobs()) == 1


@pytest.mark.parametrize("action_id", ["honk_open", "honk_preview", "honk_link", "something_else"])
def test_link_buttons_are_only_acknowledged(honk: Honk, action_id: str) -> None:
    answer = honk.send(ev.block_action(action_id, "", ALICE, GENERAL, ev.new_ts()))
    assert (answer.status_code, answer.text) == (200, "")
    assert honk.jobs() == [] and honk.deliveries() == []


# ------------------------------------------------------------------------------------------------ a real process


def test_a_real_honk_web_takes_slack_requests(tmp_path: Path, slack: FakeSlack) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    database = f"sqlite:///{tmp_path / 'honk.db'}"
    env = honk_env(tmp_path, HONK_DATABASE_URL=database, **slack.env())
    honk = HonkProcess(["web", "--port", str(port)], env, tmp_path, tmp_path / "honk.log")
    try:
        honk.wait_http(f"{url}/healthz")
        with httpx.Client(base_url=url, timeout=10) as client:
            body, headers = ev.url_verification("abc")
            assert client.post(EVENTS, content=body, headers=headers).json() == {"challenge": "abc"}
            body, headers = ev.event_callback(ev.app_mention("acme/widgets fix it", ALICE, GENERAL))
            answer = client.post(EVENTS, content=body, headers=headers)
            assert answer.status_code == 200 and answer.json()["status"] == "queued", answer.text
            body, headers = ev.event_callback(ev.app_mention("acme/widgets fix it", ALICE, GENERAL), forged=True)
            assert client.post(EVENTS, content=body, headers=headers).status_code == 401
    finally:
        honk.stop()
    db = Database(database)
    try:
        (job,) = _jobs(db)
        assert (job.kind, job.repo, job.requester) == ("slack", "acme/widgets", ALICE)
    finally:
        db.dispose()
    log = honk.output()
    assert "event=slack_app_mention outcome=queued" in log  # Bolt left Honk's own logging as it was
    assert slack.token not in log and slack.signing_secret not in log
    assert slack.calls == []  # intake makes no Slack call: no auth.test, no posts


# ------------------------------------------------------------------------------------------------ the manifest


def test_the_slack_app_manifest_asks_for_what_the_listeners_need() -> None:
    manifest = yaml.safe_load((ROOT / "slack-app.yml").read_text())
    assert manifest["display_information"]["name"] == "Honk"
    assert manifest["features"]["bot_user"]["display_name"] == "Honk"
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    # app_mention and message.* events; /honk; posting and editing; the DM after linking; names on the link page.
    assert {"app_mentions:read", "channels:history", "groups:history", "im:history", "commands", "chat:write",
            "users:read"} <= scopes
    settings = manifest["settings"]
    events = settings["event_subscriptions"]
    assert set(events["bot_events"]) == {"app_mention", "message.channels", "message.groups", "message.im"}
    request_url = "https://honk.example.com/api/slack/events"
    assert events["request_url"] == request_url
    assert settings["interactivity"] == {"is_enabled": True, "request_url": request_url}
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == "/honk" and command["url"] == request_url and command["usage_hint"]
    assert settings["socket_mode_enabled"] is False
