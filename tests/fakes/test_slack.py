"""The local Slack, driven by the real `slack_sdk` client, and the signed requests checked by its verifier."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import parse_qs

import httpx
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack import BOT_TOKEN, FakeSlack, block_errors, rendered
from tests.fakes.slack_events import (
    BOT_ID,
    BOT_USER_ID,
    SIGNING_SECRET,
    app_mention,
    block_action,
    bot_message,
    event_callback,
    message,
    message_changed,
    message_deleted,
    retry,
    signature,
    signed_headers,
    slash_command,
    url_verification,
)

T = TypeVar("T")
ALICE, BOB = "U0ALICE01", "U0BOB0001"
GENERAL = "C0GENERAL"
MERGE = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "Opened <https://github.com/acme/widgets/pull/7|#7>"}},
    {"type": "actions", "elements": [{"type": "button", "action_id": "merge", "value": "acme/widgets#7",
                                      "style": "primary", "text": {"type": "plain_text", "text": "Merge"}}]},
]


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        fake.add_user(ALICE, "alice", real_name="Alice Liddell", tz="America/New_York", tz_offset=-14400,
                      email="alice@example.com")
        fake.add_user(BOB, "bob")
        fake.add_channel(GENERAL, "general")
        yield fake


def run(make: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(make())  # type: ignore[arg-type]


def client(fake: FakeSlack, token: str = BOT_TOKEN, **kwargs: Any) -> AsyncWebClient:
    return AsyncWebClient(token=token, base_url=fake.url, **kwargs)


# ------------------------------------------------------------------------------------------------ Web API


def test_post_update_and_reply_read_as_a_thread(slack: FakeSlack) -> None:
    async def go() -> tuple[Any, Any, Any]:
        web = client(slack)
        posted = await web.chat_postMessage(channel=GENERAL, text="Queued: acme/widgets#7")
        updated = await web.chat_update(channel=posted["channel"], ts=posted["ts"], text="Done: #7", blocks=MERGE)
        reply = await web.chat_postMessage(channel=GENERAL, thread_ts=posted["ts"], text="Checks passed")
        return posted, updated, reply

    posted, updated, reply = run(go)
    assert posted["ok"] and posted["channel"] == GENERAL
    assert posted["message"]["bot_id"] == BOT_ID and posted["message"]["user"] == BOT_USER_ID
    assert updated["ts"] == posted["ts"] and updated["message"]["edited"]["user"] == BOT_USER_ID
    assert reply["message"]["thread_ts"] == posted["ts"]

    thread = slack.thread(GENERAL, posted["ts"])
    assert [m["text"] for m in thread] == ["Done: #7", "Checks passed"]
    assert thread[0]["reply_count"] == 1 and thread[0]["blocks"][1]["elements"][0]["action_id"] == "merge"
    assert all(b.get("block_id") for b in thread[0]["blocks"])  # Slack fills them in
    assert "Opened <https://github.com/acme/widgets/pull/7|#7>" in rendered(thread[0])
    assert [m["ts"] for m in slack.messages(GENERAL)] == [posted["ts"]]  # the reply stays in the thread

    calls = slack.calls_to("chat.postMessage")
    assert len(calls) == 2 and calls[0].token == BOT_TOKEN and calls[0].args["text"] == "Queued: acme/widgets#7"
    assert calls[0].content_type.startswith("application/json")  # the SDK sends chat.* as JSON


def test_chat_update_keeps_what_it_is_not_given(slack: FakeSlack) -> None:
    async def go() -> None:
        web = client(slack)
        posted = await web.chat_postMessage(channel=GENERAL, text="Working", blocks=MERGE)
        await web.chat_update(channel=GENERAL, ts=posted["ts"], text="Still working")
        assert slack.message(GENERAL, posted["ts"])["blocks"][0]["type"] == "section"  # blocks kept
        await web.chat_update(channel=GENERAL, ts=posted["ts"], text="Done", blocks=[])
        assert "blocks" not in slack.message(GENERAL, posted["ts"])

    run(go)


def test_form_encoded_bodies_and_token_field_work_too(slack: FakeSlack) -> None:
    blocks = json.dumps([{"type": "section", "text": {"type": "plain_text", "text": "hi"}}])
    answer = httpx.post(slack.url + "chat.postMessage",
                        data={"token": BOT_TOKEN, "channel": "#general", "text": "hi", "blocks": blocks}).json()
    assert answer["ok"] and answer["channel"] == GENERAL
    assert answer["message"]["blocks"][0]["text"]["text"] == "hi"
    # A JSON body's token is not read (it must be a Bearer header), and plain JSON gets Slack's charset warning.
    answer = httpx.post(slack.url + "chat.postMessage", json={"token": BOT_TOKEN, "channel": GENERAL, "text": "x"})
    assert answer.json()["error"] == "not_authed"
    answer = httpx.post(slack.url + "auth.test", json={}, headers={"Authorization": f"Bearer {BOT_TOKEN}"}).json()
    assert answer["ok"] and answer["response_metadata"]["warnings"] == ["missing_charset"]


def test_ephemeral_auth_test_and_users_info(slack: FakeSlack) -> None:
    async def go() -> tuple[Any, Any, Any]:
        web = client(slack)
        ephemeral = await web.chat_postEphemeral(channel=GENERAL, user=ALICE, text="Link your GitHub account")
        return ephemeral, await web.auth_test(), await web.users_info(user=ALICE)

    ephemeral, auth, info = run(go)
    assert ephemeral["message_ts"]
    assert [e["text"] for e in slack.ephemeral(ALICE)] == ["Link your GitHub account"] and not slack.ephemeral(BOB)
    assert slack.messages(GENERAL) == []  # nobody else sees it
    assert (auth["user_id"], auth["bot_id"], auth["team_id"]) == (BOT_USER_ID, BOT_ID, slack.team_id)
    assert auth.headers["X-OAuth-Scopes"].startswith("app_mentions:read")
    user = info["user"]
    assert (user["name"], user["real_name"], user["tz"], user["profile"]["email"]) == (
        "alice", "Alice Liddell", "America/New_York", "alice@example.com")
    assert slack.calls_to("users.info")[0].http_method == "GET"


def test_direct_message_by_user_id_and_permalinks(slack: FakeSlack) -> None:
    async def go() -> tuple[Any, Any, Any]:
        web = client(slack)
        dm = await web.chat_postMessage(channel=ALICE, text="Hello")
        reply = await web.chat_postMessage(channel=dm["channel"], thread_ts=dm["ts"], text="Again")
        parent_link = await web.chat_getPermalink(channel=dm["channel"], message_ts=dm["ts"])
        reply_link = await web.chat_getPermalink(channel=dm["channel"], message_ts=reply["ts"])
        return dm, parent_link, reply_link

    dm, parent_link, reply_link = run(go)
    assert dm["channel"].startswith("D") and dm["channel"] == slack.im(ALICE)
    assert parent_link["permalink"] == f"https://acme.slack.com/archives/{dm['channel']}/p{dm['ts'].replace('.', '')}"
    assert f"thread_ts={dm['ts']}" in reply_link["permalink"]


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
def test_errors_come_back_as_slack_sends_them(slack: FakeSlack) -> None:
    async def error(call: Callable[[], Awaitable[Any]]) -> tuple[int, str]:
        with pytest.raises(SlackApiError) as caught:
            await call()
        return caught.value.response.status_code, caught.value.response["error"]

    async def go() -> None:
        web = client(slack)
        assert await error(lambda: client(slack, "xoxb-0-0-nope").auth_test()) == (200, "invalid_auth")
        assert await error(lambda: web.chat_postMessage(channel="C0NOWHERE", text="hi")) == (200, "channel_not_found")
        assert await error(lambda: web.chat_postMessage(channel=GENERAL)) == (200, "no_text")
        assert await error(lambda: web.chat_update(channel=GENERAL, ts="1.000001", text="x")) == (
            200, "message_not_found")
        assert await error(lambda: web.users_info(user="U0NOBODY")) == (200, "user_not_found")
        slack.add_channel("C0QUIET", "quiet", bot_member=False)
        assert await error(lambda: web.chat_postMessage(channel="C0QUIET", text="hi")) == (200, "not_in_channel")
        slack.add_channel("C0SMALL", "small", members=[BOB])
        assert await error(lambda: web.chat_postEphemeral(channel="C0SMALL", user=ALICE, text="x")) == (
            200, "user_not_in_channel")
        # A person's message cannot be edited by the bot.
        ts = slack.user_posts(GENERAL, ALICE, "hello")["ts"]
        assert await error(lambda: web.chat_update(channel=GENERAL, ts=ts, text="x")) == (200, "cant_update_message")
        slack.fail("chat.update", status=200, error="edit_window_closed")
        posted = await web.chat_postMessage(channel=GENERAL, text="x")
        assert await error(lambda: web.chat_update(channel=GENERAL, ts=posted["ts"], text="y")) == (
            200, "edit_window_closed")
        slack.revoke()
        assert await error(lambda: web.auth_test()) == (200, "token_revoked")

    run(go)


def test_invalid_blocks_are_refused_with_slacks_pointers(slack: FakeSlack) -> None:
    bad_cases = {
        "too many": [{"type": "divider"}] * 51,
        "no type": [{"text": {"type": "mrkdwn", "text": "x"}}],
        "typo": [{"type": "sectoin", "text": {"type": "mrkdwn", "text": "x"}}],
        "bare string text": [{"type": "section", "text": "x"}],
        "markdown type": [{"type": "section", "text": {"type": "markdown", "text": "x"}}],
        "too long": [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}],
        "empty": [{"type": "section", "text": {"type": "mrkdwn", "text": ""}}],
        "mrkdwn header": [{"type": "header", "text": {"type": "mrkdwn", "text": "*x*"}}],
        "long button": [{"type": "actions", "elements": [
            {"type": "button", "action_id": "a", "text": {"type": "plain_text", "text": "x" * 76}}]}],
        "same action twice": [{"type": "actions", "elements": [
            {"type": "button", "action_id": "a", "text": {"type": "plain_text", "text": "x"}},
            {"type": "button", "action_id": "a", "text": {"type": "plain_text", "text": "y"}}]}],
        "same block_id twice": [{"type": "divider", "block_id": "d"}, {"type": "divider", "block_id": "d"}],
        "stray field": [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}, "url": "https://x"}],
    }
    for name, blocks in bad_cases.items():
        assert block_errors(blocks), name

    async def go() -> None:
        web = client(slack)
        with pytest.raises(SlackApiError) as caught:
            await web.chat_postMessage(channel=GENERAL, text="x", blocks=bad_cases["too long"])
        response = caught.value.response
        assert response["error"] == "invalid_blocks"
        assert response["errors"] == ["must be less than 3001 characters [json-pointer:/blocks/0/text/text]"]
        assert response["response_metadata"]["messages"][0].startswith("[ERROR] must be less than 3001")
        ok = await web.chat_postMessage(channel=GENERAL, text="x", blocks=[{"type": "divider"}] * 50)
        assert ok["ok"]

    run(go)
    assert len(slack.messages(GENERAL)) == 1


def test_silent_mistakes_are_noted(slack: FakeSlack) -> None:
    async def go() -> None:
        web = client(slack)
        posted = await web.chat_postMessage(channel=GENERAL, text="parent")
        await web.chat_postMessage(channel=GENERAL, thread_ts="1602251441.0017", text="lost")  # a float's str()
        await web.chat_postMessage(channel=GENERAL, blocks=MERGE)  # no fallback text for notifications
        assert [m["text"] for m in slack.thread(GENERAL, posted["ts"])] == ["parent"]

    with pytest.warns(UserWarning):  # the SDK warns about the missing text itself
        run(go)
    assert any("1602251441.0017" in p and "names no message" in p for p in slack.problems)
    assert any("no text" in p for p in slack.problems)


def test_rate_limit_answers_429_and_the_sdk_retries(slack: FakeSlack) -> None:
    slack.rate_limit("chat.postMessage", times=1, retry_after=0)

    async def go() -> Any:
        web = client(slack, retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)])
        return await web.chat_postMessage(channel=GENERAL, text="after a pause")

    posted = run(go)
    assert posted["ok"]
    assert [c.status for c in slack.calls_to("chat.postMessage")] == [429, 200]
    assert slack.calls_to("chat.postMessage")[0].error == "ratelimited"
    assert [m["text"] for m in slack.messages(GENERAL)] == ["after a pause"]


def test_rate_limit_without_a_retry_handler_raises_with_retry_after(slack: FakeSlack) -> None:
    slack.rate_limit("*", times=2, retry_after=30)

    async def go() -> None:
        with pytest.raises(SlackApiError) as caught:
            await client(slack).auth_test()
        assert caught.value.response.status_code == 429
        assert caught.value.response.headers["Retry-After"] == "30"
        assert caught.value.response["error"] == "ratelimited"

    run(go)
    run(go)
    assert run(lambda: client(slack).auth_test())["ok"]  # the mode is used up


def test_server_errors_then_recovery(slack: FakeSlack) -> None:
    slack.fail("chat.postMessage", times=1, status=500)

    async def go() -> None:
        web = client(slack)
        with pytest.raises(SlackApiError) as caught:
            await web.chat_postMessage(channel=GENERAL, text="x")
        assert caught.value.response.status_code == 500
        assert (await web.chat_postMessage(channel=GENERAL, text="x"))["ok"]

    run(go)
    assert [c.status for c in slack.calls_to("chat.postMessage")] == [500, 200]
    assert len(slack.messages(GENERAL)) == 1  # the failed call stored nothing


def test_views_open_takes_a_fresh_trigger_once(slack: FakeSlack) -> None:
    view = {"type": "modal", "title": {"type": "plain_text", "text": "Ask Honk"},
            "blocks": [{"type": "section", "text": {"type": "plain_text", "text": "Which repository?"}}]}

    async def go() -> None:
        web = client(slack)
        trigger = slack.trigger_id()
        opened = await web.views_open(trigger_id=trigger, view=view)
        assert opened["view"]["id"].startswith("V") and opened["view"]["state"] == {"values": {}}
        for trigger_id, error in ((trigger, "exchanged_trigger_id"), ("nonsense", "invalid_trigger_id"),
                                  (f"{int(time.time()) - 60}.1.abc", "expired_trigger_id")):
            with pytest.raises(SlackApiError) as caught:
                await web.views_open(trigger_id=trigger_id, view=view)
            assert caught.value.response["error"] == error

    run(go)
    assert len(slack.views) == 1


# ------------------------------------------------------------------------------------ people, commands, clicks


def test_people_posting_editing_and_deleting(slack: FakeSlack) -> None:
    mention = slack.user_posts(GENERAL, ALICE, "acme/widgets fix the spinner", mention=True)
    assert mention["type"] == "app_mention" and mention["text"] == f"<@{BOT_USER_ID}> acme/widgets fix the spinner"
    assert slack.message(GENERAL, mention["ts"])["text"] == mention["text"]
    reply = slack.user_posts(GENERAL, BOB, "also the wobble", thread_ts=mention["ts"])
    assert reply["type"] == "message" and reply["thread_ts"] == mention["ts"] and reply["parent_user_id"] == ALICE
    changed = slack.user_edits(GENERAL, reply["ts"], "also the wobble, please")
    assert changed["subtype"] == "message_changed" and changed["message"]["ts"] == reply["ts"]
    assert changed["previous_message"]["text"] == "also the wobble"
    assert [m["text"] for m in slack.thread(GENERAL, mention["ts"])][1] == "also the wobble, please"
    dm = slack.user_posts(slack.im(ALICE), ALICE, "acme/widgets fix it", mention=True)
    assert (dm["type"], dm["channel_type"], dm["text"]) == ("message", "im", "acme/widgets fix it")
    deleted = slack.user_deletes(GENERAL, reply["ts"])
    assert deleted["deleted_ts"] == reply["ts"]
    assert len(slack.thread(GENERAL, mention["ts"])) == 1


def test_command_response_url_replies_ephemerally_or_in_channel(slack: FakeSlack) -> None:
    request = slack.command("acme/widgets fix the spinner", ALICE, GENERAL)
    form = request.payload
    assert (form["command"], form["text"], form["user_id"], form["channel_id"]) == (
        "/honk", "acme/widgets fix the spinner", ALICE, GENERAL)
    assert b"command=%2Fhonk" in request.body and b"text=acme%2Fwidgets+fix+the+spinner" in request.body
    assert httpx.post(form["response_url"], json={"text": "Only you can see this"}).text == "ok"
    assert [e["text"] for e in slack.ephemeral(ALICE)] == ["Only you can see this"]
    assert httpx.post(form["response_url"], json={"text": "Everyone sees", "response_type": "in_channel"}).text == "ok"
    assert [m["text"] for m in slack.messages(GENERAL)] == ["Everyone sees"]
    for _ in range(3):
        httpx.post(form["response_url"], json={"text": "again"})
    used = httpx.post(form["response_url"], json={"text": "a sixth time"})
    assert used.status_code == 404 and [r["status"] for r in slack.responses][-1] == 404


def test_click_builds_the_action_from_the_message_and_replaces_it(slack: FakeSlack) -> None:
    posted = run(lambda: client(slack).chat_postMessage(channel=GENERAL, text="Opened #7", blocks=MERGE))
    request = slack.click(GENERAL, posted["ts"], "merge", ALICE)
    payload = request.payload
    assert payload["type"] == "block_actions" and payload["user"]["id"] == ALICE
    assert payload["actions"][0]["value"] == "acme/widgets#7"
    assert payload["container"] == {"type": "message", "message_ts": posted["ts"], "channel_id": GENERAL,
                                    "is_ephemeral": False}
    assert payload["message"]["blocks"] == slack.message(GENERAL, posted["ts"])["blocks"]
    assert httpx.post(payload["response_url"], json={"replace_original": True, "text": "Merged"}).text == "ok"
    assert slack.message(GENERAL, posted["ts"])["text"] == "Merged"
    with pytest.raises(AssertionError, match="no button 'close'"):
        slack.click(GENERAL, posted["ts"], "close", ALICE)


# ------------------------------------------------------------------------------------------------ signatures


def verifier() -> SignatureVerifier:
    return SignatureVerifier(SIGNING_SECRET)


def test_signature_matches_slacks_documented_example() -> None:
    # "Verifying requests from Slack": this body, timestamp and secret give this signature.
    body = (b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
            b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
            b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
            b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
    expected = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    assert signature(body, SIGNING_SECRET, 1531420618) == expected
    assert verifier().generate_signature(timestamp="1531420618", body=body) == expected


@pytest.mark.parametrize("build", [
    lambda **kw: event_callback(app_mention("acme/widgets fix it", ALICE, GENERAL), **kw),
    lambda **kw: event_callback(message("more detail", BOB, GENERAL, thread_ts="1700000000.000100"), **kw),
    lambda **kw: event_callback(message_changed(GENERAL, "1700000000.000100", "new", ALICE), **kw),
    lambda **kw: event_callback(message_deleted(GENERAL, "1700000000.000100", ALICE), **kw),
    lambda **kw: event_callback(bot_message("Queued", GENERAL), **kw),
    lambda **kw: url_verification("challenge-123", **kw),
    lambda **kw: slash_command("acme/widgets fix it", ALICE, GENERAL, **kw),
    lambda **kw: block_action("merge", "acme/widgets#7", ALICE, GENERAL, "1700000000.000100", **kw),
], ids=["app_mention", "thread_reply", "edited", "deleted", "bot", "url_verification", "slash", "block_action"])
def test_builders_sign_so_slack_sdk_verifies(build: Callable[..., Any]) -> None:
    body, headers = build()
    assert verifier().is_valid_request(body, headers)
    assert set(headers) == {"Content-Type", "X-Slack-Request-Timestamp", "X-Slack-Signature"}
    assert not verifier().is_valid_request(*build(stale=True))
    assert not verifier().is_valid_request(*build(forged=True))
    assert not SignatureVerifier("another-secret").is_valid_request(body, headers)
    assert not verifier().is_valid_request(body + b" ", headers)  # a byte changed after signing


def test_stale_is_six_minutes_old_but_correctly_signed() -> None:
    body = b'{"type":"event_callback"}'
    headers = signed_headers(body, stale=True)
    age = time.time() - int(headers["X-Slack-Request-Timestamp"])
    assert 359 <= age <= 362
    assert verifier().generate_signature(timestamp=headers["X-Slack-Request-Timestamp"],
                                         body=body) == headers["X-Slack-Signature"]


def test_event_envelopes_follow_slacks_examples() -> None:
    request = event_callback(app_mention("fix it", ALICE, GENERAL, thread_ts="1700000000.000100"))
    payload = request.payload
    assert payload["type"] == "event_callback" and payload["event_id"].startswith("Ev")
    assert payload["authorizations"][0]["user_id"] == BOT_USER_ID
    event = payload["event"]
    assert (event["type"], event["user"], event["channel"], event["thread_ts"]) == (
        "app_mention", ALICE, GENERAL, "1700000000.000100")
    assert event["text"] == f"<@{BOT_USER_ID}> fix it"
    assert event["blocks"][0]["elements"][0]["elements"][0] == {"type": "user", "user_id": BOT_USER_ID}
    dm = message("hi", ALICE, "D0ALICE01")
    assert dm["channel_type"] == "im"
    mine = bot_message("Queued", GENERAL)
    assert mine["bot_id"] == BOT_ID and mine["user"] == BOT_USER_ID and "subtype" not in mine
    assert bot_message("x", GENERAL, legacy=True)["subtype"] == "bot_message"
    assert url_verification("abc").payload == {"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "challenge": "abc",
                                               "type": "url_verification"}


def test_retry_resends_the_same_event_with_retry_headers() -> None:
    first = event_callback(app_mention("fix it", ALICE, GENERAL))
    again = retry(first, num=2, reason="http_timeout")
    assert again.body == first.body and again.payload["event_id"] == first.payload["event_id"]
    assert again.headers["X-Slack-Retry-Num"] == "2" and again.headers["X-Slack-Retry-Reason"] == "http_timeout"
    assert verifier().is_valid_request(*again)


def test_block_action_form_holds_the_json_payload() -> None:
    body, headers = block_action("merge", "acme/widgets#7", ALICE, GENERAL, "1700000000.000100",
                                 thread_ts="1699999999.000100")
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = parse_qs(body.decode())
    assert list(form) == ["payload"]
    payload = json.loads(form["payload"][0])
    assert payload["actions"][0]["action_id"] == "merge" and payload["container"]["thread_ts"] == "1699999999.000100"
    ephemeral = block_action("merge", "v", ALICE, GENERAL, "1700000000.000100", is_ephemeral=True).payload
    assert "message" not in ephemeral and ephemeral["container"]["is_ephemeral"] is True


def test_slack_bolt_accepts_the_signed_requests_and_answers_through_the_fake(slack: FakeSlack) -> None:
    from slack_bolt.async_app import AsyncApp
    from slack_bolt.request.async_request import AsyncBoltRequest

    seen: list[str] = []
    app = AsyncApp(client=client(slack), signing_secret=SIGNING_SECRET, process_before_response=True)

    @app.event("app_mention")
    async def mentioned(event: dict[str, Any], say: Any) -> None:
        seen.append(event["text"])
        await say(text="Queued", thread_ts=event["ts"])

    @app.command("/honk")
    async def command(ack: Any, command: dict[str, Any], respond: Any) -> None:
        await ack()
        seen.append(command["text"])

    @app.action("merge")
    async def merge(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        seen.append(body["actions"][0]["value"])

    async def dispatch(request: tuple[bytes, dict[str, str]]) -> int:
        body, headers = request
        return (await app.async_dispatch(AsyncBoltRequest(body=body.decode(), headers=headers))).status

    posted = run(lambda: client(slack).chat_postMessage(channel=GENERAL, text="Opened #7", blocks=MERGE))

    async def go() -> list[int]:
        mention = slack.user_posts(GENERAL, ALICE, "acme/widgets fix it", mention=True)
        return [await dispatch(event_callback(mention)),
                await dispatch(slack.command("acme/widgets fix it", ALICE, GENERAL)),
                await dispatch(slack.click(GENERAL, posted["ts"], "merge", ALICE)),
                await dispatch(event_callback(app_mention("x", ALICE, GENERAL), stale=True)),
                await dispatch(slash_command("x", ALICE, GENERAL, forged=True))]

    assert run(go) == [200, 200, 200, 401, 401]
    assert seen == [f"<@{BOT_USER_ID}> acme/widgets fix it", "acme/widgets fix it", "acme/widgets#7"]
    mention_ts = slack.messages(GENERAL)[-1]["ts"]
    assert [m["text"] for m in slack.thread(GENERAL, mention_ts)][-1] == "Queued"
    assert slack.calls_to("auth.test")  # bolt checks the token first, against the fake
