"""Reading what people write to Honk in Slack: mentions and `/honk`, with Slack's markup, into typed commands."""

from __future__ import annotations

import pytest

from app.slack.commands import (
    NEEDS_BIND_REPO,
    NEEDS_CAMPAIGN,
    NEEDS_REPO,
    TASK_LIMIT,
    Ask,
    BindChannel,
    Campaign,
    Command,
    Help,
    Merge,
    Problem,
    Status,
    Stop,
    files_markdown,
    parse_mention,
    parse_repo,
    parse_slash,
    plain,
    title_of,
    with_repo,
)
from tests.fakes.slack import FakeSlack

BOT = "U0HONKBOT"


@pytest.mark.parametrize(("text", "command"), [
    # Asking
    ("acme/widgets fix the spinner", Ask("acme/widgets", "fix the spinner")),
    ("  acme/widgets   fix the spinner  ", Ask("acme/widgets", "fix the spinner")),
    ("acme/widgets\nfix the spinner\n\nIt spins backwards.",
     Ask("acme/widgets", "fix the spinner\n\nIt spins backwards.")),
    ("acme/widgets.git fix it", Ask("acme/widgets", "fix it")),
    ("Octo-Cat/my.repo_1 fix it", Ask("Octo-Cat/my.repo_1", "fix it")),
    ("<https://github.com/acme/widgets|acme/widgets> fix it", Ask("acme/widgets", "fix it")),
    ("<https://github.com/acme/widgets> fix it", Ask("acme/widgets", "fix it")),
    ("<http://github.com/acme/widgets|github.com/acme/widgets> fix it", Ask("acme/widgets", "fix it")),
    ("https://github.com/acme/widgets/issues/4 fix it", Ask("acme/widgets", "fix it")),
    ("fix the spinner", Ask(None, "fix the spinner")),
    ("acme/widgets/extra is broken", Ask(None, "acme/widgets/extra is broken")),
    ("<https://gitlab.com/acme/widgets> is down", Ask(None, "https://gitlab.com/acme/widgets is down")),
    ("-acme/widgets fix", Ask(None, "-acme/widgets fix")),
    ("acme/.. fix", Ask(None, "acme/.. fix")),
    ("acme/widgets ask <@U0BOB|bob> about <#C0GENERAL|general> &amp; &lt;b&gt;",
     Ask("acme/widgets", "ask @bob about #general & <b>")),
    ("acme/widgets", Problem("Say what to do after the repository: `/honk acme/widgets <task>`, for example "
                             "`/honk acme/widgets fix the typo`.")),
    # Keywords alone, or with words that fit them
    ("", Help()),
    ("   ", Help()),
    ("help", Help()),
    ("HELP", Help()),
    ("help me fix the login page", Ask(None, "help me fix the login page")),
    ("status", Status()),
    ("Status ", Status()),
    ("stop", Stop()),
    ("cancel", Stop()),
    ("stop the spinner from flickering", Ask(None, "stop the spinner from flickering")),
    ("merge", Merge()),
    ("merge 12", Merge(None, 12)),
    ("merge #12", Merge(None, 12)),
    ("merge acme/widgets#12", Merge("acme/widgets", 12)),
    ("merge acme/widgets 12", Merge("acme/widgets", 12)),
    ("merge acme/widgets #12", Merge("acme/widgets", 12)),
    ("merge <https://github.com/acme/widgets/pull/12>", Merge("acme/widgets", 12)),
    ("merge the two config loaders", Ask(None, "merge the two config loaders")),
    ("merge #0", Problem("Name the pull request to merge: `/honk merge 12` or `/honk merge owner/name#12`.")),
    ("merge #twelve", Problem("`#twelve` is not a pull request: write `/honk merge 12` or "
                              "`/honk merge owner/name#12`.")),
    ("merge acme/widgets", Problem("`acme/widgets` is not a pull request: write `/honk merge 12` or "
                                   "`/honk merge owner/name#12`.")),
    ("channel acme/widgets", BindChannel("acme/widgets")),
    ("channel <https://github.com/acme/widgets|acme/widgets>", BindChannel("acme/widgets")),
    ("channel", Problem(NEEDS_BIND_REPO)),
    ("channel acme/", Problem("`acme/` is not a repository: write `/honk channel owner/name`.")),
    ("channel messages are dropped on reconnect", Ask(None, "channel messages are dropped on reconnect")),
    ("campaign bump lodash to 4.17.21 everywhere", Campaign(None, "bump lodash to 4.17.21 everywhere")),
    ("campaign status", Campaign(None, "status")),
    ("campaign acme/fleet bump lodash\n```yaml honk-campaign\nrepos: all\n```",
     Campaign("acme/fleet", "bump lodash\n```yaml honk-campaign\nrepos: all\n```")),
    ("campaign acme/fleet", Problem(NEEDS_CAMPAIGN)),
    ("campaign", Problem(NEEDS_CAMPAIGN)),
])
def test_slash_command_text(text: str, command: Command) -> None:
    assert parse_slash(text) == command


@pytest.mark.parametrize(("text", "command"), [
    (f"<@{BOT}> acme/widgets fix the spinner", Ask("acme/widgets", "fix the spinner")),
    (f"<@{BOT}|honk> status", Status()),
    (f"<@{BOT}>", Help()),
    (f"hey <@{BOT}> acme/widgets fix it", Ask(None, "hey acme/widgets fix it")),  # the repository comes first
    (f"<@{BOT}> ask <@U0BOB> to review", Ask(None, "ask @U0BOB to review")),
])
def test_mention_text(text: str, command: Command) -> None:
    assert parse_mention(text, BOT) == command


def test_a_mention_without_the_bots_id_drops_the_leading_one() -> None:
    assert parse_mention("<@U0HONKBOT> acme/widgets fix it") == Ask("acme/widgets", "fix it")
    assert parse_mention("acme/widgets fix <@U0BOB>") == Ask("acme/widgets", "fix @U0BOB")


def test_a_mention_as_slack_delivers_it() -> None:
    with FakeSlack() as fake:
        fake.add_user("U0ALICE01", "alice")
        fake.add_channel("C0GENERAL", "general")
        # Slack escapes what people type: the fake stores text as given, so give it as Slack sends it.
        event = fake.user_posts("C0GENERAL", "U0ALICE01", "acme/widgets the spinner &amp; the &lt;b&gt; tag",
                                mention=True)
    assert event["type"] == "app_mention"
    assert parse_mention(event["text"], fake.bot_user_id) == Ask("acme/widgets", "the spinner & the <b> tag")


def test_a_bound_channel_supplies_the_repository() -> None:
    ask = parse_slash("fix the spinner")
    assert isinstance(ask, Ask)
    assert with_repo(ask, "acme/widgets") == Ask("acme/widgets", "fix the spinner")
    assert with_repo(ask, None) == Problem(NEEDS_REPO)
    assert with_repo(Ask("acme/other", "x"), "acme/widgets") == Ask("acme/other", "x")
    assert NEEDS_REPO == ("Name the repository: `/honk owner/name <task>` (or bind this channel with "
                          "`/honk channel owner/name`).")


@pytest.mark.parametrize(("word", "repo"), [
    ("acme/widgets", "acme/widgets"),
    ("acme/widgets/", "acme/widgets"),
    ("acme/widgets.git", "acme/widgets"),
    ("github.com/acme/widgets", "acme/widgets"),
    ("https://www.github.com/acme/widgets/pull/3", "acme/widgets"),
    ("a/b", "a/b"),
    ("a" * 39 + "/" + "b" * 100, "a" * 39 + "/" + "b" * 100),
    ("a" * 40 + "/b", None),
    ("acme/" + "b" * 101, None),
    ("acme", None),
    ("acme/", None),
    ("/widgets", None),
    ("acme/wid gets", None),
    ("acme/wid@gets", None),
    ("acme/.", None),
    ("https://github.com/acme", None),
    ("https://example.com/acme/widgets", None),
    ("ftp://github.com/acme/widgets", None),
])
def test_repository_names(word: str, repo: str | None) -> None:
    assert parse_repo(word) == repo


@pytest.mark.parametrize(("task", "title"), [
    ("fix the spinner", "fix the spinner"),
    ("\n\n  fix   the\tspinner  \nmore words", "fix the spinner"),
    ("## Fix the spinner", "Fix the spinner"),
    ("x" * 80, "x" * 80),
    ("word " * 30, "word " * 15 + "word…"),
    ("abc " * 30, "abc " * 19 + "abc…"),
    ("wordy " * 30, "wordy " * 12 + "wordy…"),
    ("y" * 200, "y" * 79 + "…"),
    ("", ""),
])
def test_titles(task: str, title: str) -> None:
    assert title_of(task) == title
    assert len(title_of(task)) <= 80
    assert Ask("acme/widgets", task).title == title


def test_a_huge_task_is_cut() -> None:
    ask = parse_slash("acme/widgets " + "z" * (TASK_LIMIT + 500))
    assert isinstance(ask, Ask) and len(ask.task) == TASK_LIMIT


@pytest.mark.parametrize(("text", "shown"), [
    ("<@U0BOB>", "@U0BOB"),
    ("<@U0BOB|bob>", "@bob"),
    ("<#C0GEN|general>", "#general"),
    ("<#C0GEN>", "#C0GEN"),
    ("<!here> <!channel> <!everyone>", "@here @channel @everyone"),
    ("<!subteam^S0TEAM|@devs>", "@devs"),
    ("<!date^1392734382^{date_short}|Feb 18, 2014>", "Feb 18, 2014"),
    ("<https://example.com>", "https://example.com"),
    ("<https://example.com|https://example.com>", "https://example.com"),
    ("<http://example.com|example.com>", "example.com"),
    ("<https://example.com/docs|the docs>", "the docs (https://example.com/docs)"),
    ("<https://github.com/acme/widgets/issues/5|#5>", "#5 (https://github.com/acme/widgets/issues/5)"),
    ("<mailto:a@b.example|a@b.example>", "a@b.example"),
    ("a &lt;b&gt; &amp;lt; c", "a <b> &lt; c"),
    ("no markup at all", "no markup at all"),
])
def test_slack_markup_becomes_plain_text(text: str, shown: str) -> None:
    assert plain(text) == shown


def test_user_names_can_be_filled_in() -> None:
    assert plain("ask <@U0BOB> and <@U0EVE>", {"U0BOB": "bob"}) == "ask @bob and @U0EVE"


def test_files_become_markdown_links() -> None:
    files = [
        {"id": "F01", "name": "screenshot.png", "title": "Spinner [backwards]", "mimetype": "image/png",
         "pretty_type": "PNG", "size": 123_456, "permalink": "https://acme.slack.com/files/U0ALICE/F01/screenshot.png",
         "url_private": "https://files.slack.com/files-pri/T0-F01/screenshot.png"},
        {"id": "F02", "name": "trace.txt", "size": 300, "url_private": "https://files.slack.com/files-pri/T0-F02/t"},
        {"id": "F03", "name": "no link"},
        {"id": "F04", "name": "bad", "permalink": "javascript:alert(1)"},
        "not a file",
        {"id": "F05", "permalink": "https://acme.slack.com/files/U0ALICE/F05/a (1).txt"},
    ]
    assert files_markdown(files) == (
        "- [Spinner \\[backwards\\]](https://acme.slack.com/files/U0ALICE/F01/screenshot.png) (PNG, 120.6 KB)\n"
        "- [trace.txt](https://files.slack.com/files-pri/T0-F02/t) (300 B)\n"
        "- [F05](https://acme.slack.com/files/U0ALICE/F05/a%20(1%29.txt)")
    assert files_markdown([]) == ""
