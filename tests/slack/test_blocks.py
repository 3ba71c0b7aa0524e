"""Honk's Slack messages: every one accepted by the local Slack's Block Kit checks (also with outsized input),
phone-sized, with people's and the model's text escaped, and a Merge button that names a pull request and no
more."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest

from app.slack import blocks as b
from app.slack.blocks import Message, Pull, Result, Subject
from app.slack.client import SlackClient
from tests.fakes.slack import FakeSlack

ALICE = "U0ALICE01"
GENERAL = "C0GENERAL"
REPO = "acme/widgets"
PULL = Pull(REPO, 34, "https://github.com/acme/widgets/pull/34", "Stop the spinner spinning backwards")
SUBJECT = Subject(REPO, "The spinner spins backwards", 12, "https://github.com/acme/widgets/issues/12", 5,
                  "https://honk.example.com/jobs/5")
HUGE = "word " * 20_000
NASTY = "<!channel> <@U0BOB> & <https://evil.example|github.com> `x` *y* >quote"
BIG_SUBJECT = Subject(REPO, NASTY + HUGE, 99999, "https://github.com/acme/widgets/issues/99999", 123456, None)
PASSED = "✅ Verifiers passed: `tests` (`pytest -q`), `lint` (`ruff check .`)."
JUDGED = "⚖️ The judge approved the change.\n\n> It does what the issue asks and **nothing more**."


def everything() -> list[tuple[str, Message]]:
    """Every message builder, with ordinary input and with outsized or hostile input."""
    result = Result(PULL, verification=PASSED, judge=JUDGED, cost_usd=1.2345, seconds=245)
    return [
        ("queued", b.queued(SUBJECT, ALICE)),
        ("queued, no job yet", b.queued(Subject(REPO, "Fix it"))),
        ("queued, huge", b.queued(BIG_SUBJECT, "not a user id")),
        ("working", b.working(SUBJECT, "running the tests")),
        ("working, huge", b.working(BIG_SUBJECT, HUGE)),
        ("outcome", b.outcome(SUBJECT, result)),
        ("outcome, draft", b.outcome(SUBJECT, Result(PULL, draft=True, verification="❌ Verifiers failed: `tests`.",
                                                     stopped="the run stopped at its turns budget"))),
        ("outcome, no pull request", b.outcome(SUBJECT, Result(None, verification=PASSED))),
        ("outcome, huge", b.outcome(BIG_SUBJECT, Result(Pull(REPO, 7, "https://github.com/acme/widgets/pull/7",
                                                             NASTY + HUGE), verification=HUGE, judge=HUGE,
                                                        stopped=HUGE, cost_usd=12345.678, seconds=100_000))),
        ("outcome, bare", b.outcome(Subject(REPO, "x"), Result(Pull(REPO, 1, "not a url")))),
        ("failed", b.failed(SUBJECT, "the checkout failed: git clone answered 502")),
        ("failed, huge", b.failed(BIG_SUBJECT, NASTY + HUGE)),
        ("no change", b.no_change(SUBJECT, "The spinner already turns forwards on `main`; see **spin.py**.")),
        ("no change, huge", b.no_change(BIG_SUBJECT, NASTY + HUGE)),
        ("no change, empty", b.no_change(SUBJECT, "")),
        ("checks passed", b.checks_finished(PULL, ["build", "test"], [])),
        ("checks passed, none named", b.checks_finished(PULL, [], [])),
        ("checks failed", b.checks_finished(PULL, ["build"], ["lint", "test (3.12)"])),
        ("checks failed, many", b.checks_finished(PULL, [f"ok {i}" for i in range(100)],
                                                  [NASTY + str(i) for i in range(100)])),
        ("preview", b.preview_ready("https://pr-34.preview.example.com/", "preview", PULL)),
        ("preview, odd url", b.preview_ready("javascript:alert(1)", NASTY)),
        ("preview, huge url", b.preview_ready("https://example.com/" + "a" * 5000, HUGE)),
        ("changes requested", b.changes_requested("rita", "Please keep the old behaviour behind a flag.", PULL,
                                                  "https://github.com/acme/widgets/pull/34#pullrequestreview-1")),
        ("changes requested, huge", b.changes_requested(NASTY, NASTY + HUGE)),
        ("merged", b.merged(PULL, "alice")),
        ("merged, nobody named", b.merged(Pull(REPO, 3, "https://github.com/acme/widgets/pull/3"))),
        ("closed", b.closed(PULL, "bob")),
        ("link account", b.link_account("https://honk.example.com/slack/link?state=abc.def")),
        ("link account, no http", b.link_account("honk.example.com/slack/link")),
        ("linked", b.linked("alice")),
        ("channel bound", b.channel_bound(REPO)),
        ("unknown repository", b.unknown_repository("acme/nope")),
        ("not installed", b.not_installed("acme/other", "https://github.com/apps/honk/installations/new")),
        ("not installed, no link", b.not_installed("acme/other")),
        ("no task", b.no_task(REPO)),
        ("no task, no repo", b.no_task()),
        ("not a writer", b.not_writer("bob", REPO)),
        ("merge refused", b.merge_refused(PULL, "At least 1 approving review is required by reviewers with write "
                                                "access.")),
        ("merge refused, huge", b.merge_refused(PULL, NASTY + HUGE)),
        ("problem", b.problem("Name the repository: `/honk owner/name <task>` (or bind this channel).")),
        ("help", b.help_message()),
    ]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as slack:
        slack.add_user(ALICE, "alice")
        slack.add_channel(GENERAL, "general")
        yield slack


def post(fake: FakeSlack, message: Message, thread_ts: str | None = None) -> str:
    client = SlackClient(fake.token, fake.url, jitter=0, backoff=0.01)
    return asyncio.run(client.post(GENERAL, message.blocks, message.text, thread_ts=thread_ts))


@pytest.mark.parametrize(("name", "message"), everything(), ids=[name for name, _ in everything()])
def test_slack_takes_every_message_as_is(fake: FakeSlack, name: str, message: Message) -> None:
    before = len(fake.problems)
    ts = post(fake, message)
    assert fake.calls[-1].ok, fake.calls[-1].response
    assert fake.problems[before:] == []
    stored = fake.message(GENERAL, ts)
    shown = fake.rendered(stored)
    # Phone-sized: a few blocks, no tables, a screen or two of text.
    assert 1 <= len(message.blocks) <= 5
    assert all(block["type"] in ("section", "context", "actions") for block in message.blocks)
    assert len(shown) <= 5000
    assert message.text and len(message.text) <= 300 and "\n" not in message.text
    # What people or the model wrote never becomes Slack markup: no mention, no broadcast, no foreign link.
    raw = json.dumps(message.blocks) + message.text
    assert "<!channel>" not in raw and "<@U0BOB>" not in raw and "<https://evil.example" not in raw
    # Every `<...>` left is markup Honk meant: a link to an http(s) address or the asker's mention.
    for text in [*_texts(message.blocks), message.text]:
        for markup in re.findall(r"<[^>]*>", text):
            assert re.fullmatch(r"<https?://[^|<>\s]+\|[^<>]+>|<@U[A-Z0-9]+>", markup), (name, markup)


def test_updating_through_every_state_keeps_one_message(fake: FakeSlack) -> None:
    client = SlackClient(fake.token, fake.url)

    async def scenario() -> str:
        ts = await client.post(GENERAL, *b.queued(SUBJECT, ALICE))
        for message in (b.working(SUBJECT, "reading the code"), b.working(SUBJECT, "running the tests"),
                        b.outcome(SUBJECT, Result(PULL, verification=PASSED, cost_usd=0.5, seconds=30))):
            await client.update(GENERAL, ts, *message)
        return ts

    ts = asyncio.run(scenario())
    shown = fake.rendered(fake.message(GENERAL, ts))
    assert "Pull request ready" in shown and "#34 Stop the spinner" in shown and "Working" not in shown
    assert "$0.50 · 30 s" in shown and "job #5" in shown


def test_escape_and_links() -> None:
    assert b.escape("a < b && c > d") == "a &lt; b &amp;&amp; c &gt; d"
    assert b.link("https://x.example/?a=1&b=2", "a <b>") == "<https://x.example/?a=1&amp;b=2|a &lt;b&gt;>"
    assert b.link("https://x.example/a|b", "x|y") == "<https://x.example/a%7Cb|x¦y>"
    assert b.link("javascript:alert(1)", "click") == "click"
    assert b.link(None, "plain") == "plain"


def test_github_markdown_becomes_mrkdwn_after_escaping() -> None:
    text = "**Done** & [the job](https://honk.example.com/jobs/5)\n### Verification\n<!-- honk:job=5 --><b>x</b>"
    assert b.mrkdwn(text) == ("*Done* &amp; <https://honk.example.com/jobs/5|the job>\n*Verification*\n"
                              "&lt;b&gt;x&lt;/b&gt;")
    assert b.mrkdwn("[x](javascript:alert(1))") == "[x](javascript:alert(1))"  # only http(s) becomes a link
    # A quote (the judge's reason) stays a quote; a ">" elsewhere, and markup inside the quote, stay escaped.
    assert b.mrkdwn("> Only <b>widgets.py</b>\nso a > b") == "> Only &lt;b&gt;widgets.py&lt;/b&gt;\nso a &gt; b"


def test_a_task_naming_people_or_channels_pings_nobody(fake: FakeSlack) -> None:
    message = b.queued(Subject(REPO, "<!here> ask <@U0ALICE01> in <#C0GENERAL|general>"), ALICE)
    section = message.blocks[0]["text"]["text"]
    assert "&lt;!here&gt; ask &lt;@U0ALICE01&gt; in &lt;#C0GENERAL|general&gt;" in section
    assert message.blocks[1]["elements"][0]["text"].startswith(f"Asked by <@{ALICE}>")  # the asker: a real mention


def test_the_outcome_offers_merge_for_a_ready_pull_request_only() -> None:
    ready = b.outcome(SUBJECT, Result(PULL, verification=PASSED))
    actions = [block for block in ready.blocks if block["type"] == "actions"]
    assert len(actions) == 1
    merge, open_pr = actions[0]["elements"]
    assert (merge["action_id"], merge["value"], merge["style"]) == (b.MERGE_ACTION, "acme/widgets#34", "primary")
    assert merge["confirm"]["confirm"]["text"] == "Merge"
    assert (open_pr["action_id"], open_pr["url"]) == (b.OPEN_ACTION, PULL.url)

    draft = b.outcome(SUBJECT, Result(PULL, draft=True, verification=PASSED))
    assert [e["action_id"] for block in draft.blocks if block["type"] == "actions" for e in block["elements"]] == [
        b.OPEN_ACTION]
    nothing = b.outcome(SUBJECT, Result(None, verification=PASSED))
    assert not [block for block in nothing.blocks if block["type"] == "actions"]


def test_the_merge_click_names_the_pull_request_and_nothing_else(fake: FakeSlack) -> None:
    ts = post(fake, b.outcome(SUBJECT, Result(PULL, verification=PASSED)))
    body, _ = fake.click(GENERAL, ts, b.MERGE_ACTION, ALICE)
    payload = json.loads(parse_qs(body.decode())["payload"][0])
    action = payload["actions"][0]
    assert action["action_id"] == b.MERGE_ACTION
    assert b.read_merge_value(action["value"]) == (REPO, 34)


@pytest.mark.parametrize("value", ["", "acme/widgets", "acme/widgets#", "acme/widgets#0", "acme/widgets#-1",
                                   "acme/widgets#1e3", "#12", "../x#1", "acme/widgets/x#1", "a b/c#1",
                                   "acme/widgets#12345678901"])
def test_a_merge_value_that_names_no_pull_request_is_refused(value: str) -> None:
    assert b.read_merge_value(value) is None


def test_merge_values_round_trip() -> None:
    assert b.read_merge_value(b.merge_value("Octo-Cat/my.repo_1", 7)) == ("Octo-Cat/my.repo_1", 7)


def test_replies_say_what_happened() -> None:
    failed = b.checks_finished(PULL, ["build"], ["lint", "test"])
    text = failed.blocks[0]["text"]["text"]
    assert text.startswith("❌ Checks failed on <https://github.com/acme/widgets/pull/34|#34>: `lint`, `test`")
    assert "1 passed" in text and failed.text == "Checks failed on #34: lint, test"
    many = b.checks_finished(PULL, [], [f"job {i}" for i in range(10)]).blocks[0]["text"]["text"]
    assert many.endswith("and 4 more")
    assert b.checks_finished(PULL, ["build"], []).text == "Checks passed on #34"

    preview = b.preview_ready("https://pr-34.preview.example.com/", "preview", PULL)
    assert preview.blocks[0]["accessory"]["url"] == "https://pr-34.preview.example.com/"
    assert "accessory" not in b.preview_ready("javascript:alert(1)").blocks[0]

    review = b.changes_requested("rita", "x " * 1000, PULL)
    said = review.blocks[0]["text"]["text"].split("\n>", 1)[1]
    assert len(said) <= b.SUMMARY_LIMIT and said.endswith("…")
    assert b.merged(PULL, "alice").text == "Merged by alice: #34 Stop the spinner spinning backwards"
    assert "Closed without merging" in b.closed(PULL).blocks[0]["text"]["text"]


def test_the_link_prompt_is_one_button(fake: FakeSlack) -> None:
    url = "https://honk.example.com/slack/link?state=abc.def"
    message = b.link_account(url)
    button = message.blocks[-1]["elements"][0]
    assert (button["action_id"], button["url"]) == (b.LINK_ACTION, url)
    client = SlackClient(fake.token, fake.url)
    asyncio.run(client.ephemeral(GENERAL, ALICE, *message))
    assert "Link GitHub account" in fake.rendered(fake.ephemeral(ALICE)[-1])


def test_short_answers_fall_back_to_plain_words() -> None:
    refused = b.merge_refused(PULL, "Required status check \"test\" is failing.")
    assert refused.text == "Couldn't merge #34: GitHub says “Required status check \"test\" is failing.”"
    assert b.not_installed("acme/x", "https://github.com/apps/honk/installations/new").text == (
        "Honk's GitHub App is not installed on `acme/x`. Install it (an admin of the repository can).")


@pytest.mark.parametrize(("seconds", "shown"), [(0, "0 s"), (42.4, "42 s"), (60, "1 min"), (245, "4 min"),
                                                (3540, "59 min"), (3599, "1 h 00 min"), (3600, "1 h 00 min"),
                                                (5430, "1 h 30 min")])
def test_duration(seconds: float, shown: str) -> None:
    assert b.duration(seconds) == shown


def test_clip_cuts_at_a_word() -> None:
    assert b.clip("short", 10) == "short"
    cut = b.clip("one two three four five six", 20)
    assert cut == "one two three four…" and len(cut) <= 20
    assert len(b.clip("x" * 100, 10)) == 10


def _texts(blocks: list[dict[str, Any]]) -> list[str]:
    """Every text a block shows: sections' and contexts' texts, and button labels."""
    found: list[str] = []
    for block in blocks:
        if "text" in block:
            found.append(block["text"]["text"])
        for element in block.get("elements", []) + ([block["accessory"]] if "accessory" in block else []):
            found.append(element["text"]["text"] if element.get("type") == "button" else element.get("text", ""))
    return found
