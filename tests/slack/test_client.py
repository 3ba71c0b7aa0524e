"""The Slack client against the local Slack over real HTTP: its calls, its retries, its errors, and the token kept
out of everything it says."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from app.settings import Settings
from app.slack.client import SlackClient, SlackError
from tests.fakes.slack import FakeSlack

ALICE = "U0ALICE01"
GENERAL = "C0GENERAL"
TEXT_BLOCKS = [{"type": "section", "text": {"type": "mrkdwn", "text": "hello *there*"}}]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as slack:
        slack.add_user(ALICE, "alice")
        slack.add_channel(GENERAL, "general")
        yield slack


@pytest.fixture
def client(fake: FakeSlack) -> SlackClient:
    return SlackClient(fake.token, fake.url, jitter=0, backoff=0.01)


def test_posts_replies_edits_and_reads(fake: FakeSlack, client: SlackClient) -> None:
    async def scenario() -> tuple[str, str, str]:
        ts = await client.post(GENERAL, TEXT_BLOCKS, "hello")
        reply = await client.post(GENERAL, TEXT_BLOCKS, "a reply", thread_ts=ts)
        await client.update(GENERAL, ts, [{"type": "section", "text": {"type": "mrkdwn", "text": "edited"}}],
                            "edited")
        eph = await client.ephemeral(GENERAL, ALICE, TEXT_BLOCKS, "only you")
        return ts, eph, await client.permalink(GENERAL, reply)

    ts, eph, link = run(scenario())
    thread = fake.thread(GENERAL, ts)
    assert [m["text"] for m in thread] == ["edited", "a reply"]
    assert fake.rendered(thread[0]) == "edited"
    assert eph and fake.ephemeral(ALICE)[0]["text"] == "only you"
    assert link.startswith("https://acme.slack.com/archives/C0GENERAL/p") and f"thread_ts={ts}" in link
    post = fake.calls_to("chat.postMessage")[0]
    assert post.token == fake.token and post.args["unfurl_links"] is False  # no PR card on a phone
    assert fake.problems == []


def test_user_and_auth(fake: FakeSlack, client: SlackClient) -> None:
    user = run(client.user(ALICE))
    assert user["id"] == ALICE and user["name"] == "alice"
    me = run(client.auth())
    assert me["user_id"] == fake.bot_user_id and me["team_id"] == fake.team_id and "ok" not in me


def test_a_rate_limit_is_waited_out_then_the_call_succeeds(fake: FakeSlack, client: SlackClient) -> None:
    fake.rate_limit("chat.postMessage", times=2, retry_after=0)
    ts = run(client.post(GENERAL, TEXT_BLOCKS, "hello"))
    assert ts
    assert [c.status for c in fake.calls_to("chat.postMessage")] == [429, 429, 200]
    assert len(fake.messages(GENERAL)) == 1


def test_retry_after_is_honoured(fake: FakeSlack) -> None:
    client = SlackClient(fake.token, fake.url, jitter=0)
    fake.rate_limit("auth.test", times=1, retry_after=1)
    started = time.monotonic()
    run(client.auth())
    assert time.monotonic() - started >= 0.95


def test_a_long_rate_limit_is_handed_back_not_slept_through(fake: FakeSlack) -> None:
    client = SlackClient(fake.token, fake.url, jitter=0, max_wait=5)
    fake.rate_limit("chat.update", times=1, retry_after=120)
    started = time.monotonic()
    with pytest.raises(SlackError) as caught:
        run(client.update(GENERAL, "1.2", TEXT_BLOCKS, "x"))
    assert time.monotonic() - started < 5
    err = caught.value
    assert (err.error, err.status, err.retry_after, err.retryable) == ("ratelimited", 429, 120.0, True)
    assert "120" in str(err)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_server_error_is_retried_with_backoff_then_succeeds(fake: FakeSlack, client: SlackClient,
                                                              status: int) -> None:
    fake.fail("chat.postMessage", times=1, status=status)
    assert run(client.post(GENERAL, TEXT_BLOCKS, "hello"))
    assert [c.status for c in fake.calls_to("chat.postMessage")] == [status, 200]


def test_retries_are_bounded(fake: FakeSlack) -> None:
    client = SlackClient(fake.token, fake.url, retries=2, backoff=0.01, jitter=0)
    fake.fail("chat.postMessage", times=10, status=500)
    with pytest.raises(SlackError) as caught:
        run(client.post(GENERAL, TEXT_BLOCKS, "hello"))
    assert len(fake.calls_to("chat.postMessage")) == 3  # the call and two retries
    assert caught.value.status == 500 and caught.value.retryable
    assert fake.messages(GENERAL) == []


@pytest.mark.parametrize(("error", "words"), [
    ("invalid_auth", "did not accept the bot token"),
    ("token_revoked", "uninstalled"),
])
def test_a_bad_token_is_one_slack_error_without_the_token(fake: FakeSlack, error: str, words: str) -> None:
    token = "xoxb-0000000000-1111111111-notTheRightTokenAtAll"
    if error == "token_revoked":
        token = fake.token
        fake.revoke()
    client = SlackClient(token, fake.url, jitter=0, backoff=0.01)
    with pytest.raises(SlackError) as caught:
        run(client.post(GENERAL, TEXT_BLOCKS, "hello"))
    err = caught.value
    assert err.error == error and words in str(err) and not err.retryable
    assert err.method == "chat.postMessage" and err.__cause__ is None
    assert token not in str(err) and token not in repr(err) and token not in repr(client)
    assert len(fake.calls_to("chat.postMessage")) == 1  # not retried


def test_slack_errors_name_the_code(fake: FakeSlack, client: SlackClient) -> None:
    with pytest.raises(SlackError) as caught:
        run(client.post("C0NOWHERE", TEXT_BLOCKS, "hello"))
    assert caught.value.error == "channel_not_found"
    with pytest.raises(SlackError) as caught:
        run(client.update(GENERAL, "1.000001", TEXT_BLOCKS, "x"))
    assert caught.value.error == "message_not_found"
    fake.fail("chat.update", status=200, error="edit_window_closed")
    with pytest.raises(SlackError) as caught:
        run(client.update(GENERAL, "1.000001", TEXT_BLOCKS, "x"))
    assert caught.value.error == "edit_window_closed" and "no longer" in str(caught.value)


def test_invalid_blocks_carry_slacks_reasons(client: SlackClient) -> None:
    too_long = [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]
    with pytest.raises(SlackError) as caught:
        run(client.post(GENERAL, too_long, "x"))
    assert caught.value.error == "invalid_blocks"
    assert any("3001" in d for d in caught.value.details)


def test_an_unreachable_slack_is_a_retryable_slack_error() -> None:
    from tests.support import free_port

    client = SlackClient("xoxb-test-token-0000", f"http://127.0.0.1:{free_port()}/api/", retries=1, backoff=0.01)
    with pytest.raises(SlackError) as caught:
        run(client.auth())
    assert caught.value.error == "connection_failed" and caught.value.retryable


def test_the_token_is_in_no_log_line(fake: FakeSlack, client: SlackClient, caplog: pytest.LogCaptureFixture) -> None:
    for name in ("honk", "slack_sdk"):
        caplog.set_level(logging.DEBUG, logger=name)  # the SDK's debug log shows requests, headers and answers
    fake.rate_limit("chat.postMessage", times=1, retry_after=0)
    fake.fail("chat.update", times=1, status=502)
    ts = run(client.post(GENERAL, TEXT_BLOCKS, "hello"))
    run(client.update(GENERAL, ts, TEXT_BLOCKS, "hello again"))
    with pytest.raises(SlackError):
        run(SlackClient(fake.token, fake.url).post("C0NOWHERE", TEXT_BLOCKS, "x"))
    assert caplog.records, "the SDK's debug log was captured"
    assert all(fake.token not in record.getMessage() for record in caplog.records)
    assert any("rate limited" in record.getMessage() for record in caplog.records)


def test_for_settings_adds_back_the_slash_settings_strip(fake: FakeSlack,
                                                        make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(slack_bot_token=fake.token, slack_signing_secret=fake.signing_secret,
                             slack_api_url=fake.url)
    assert not settings.slack_api_url.endswith("/")
    client = SlackClient.for_settings(settings)
    assert client.base_url == fake.url
    assert run(client.auth())["team_id"] == fake.team_id


def test_for_settings_without_a_token(make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    with pytest.raises(SlackError) as caught:
        SlackClient.for_settings(make_settings())
    assert caught.value.error == "not_configured" and "SLACK_BOT_TOKEN" in str(caught.value)
