"""Asking from Slack, end to end: a real `honk serve`, the local GitHub, the local Slack (FakeSlack) and the scripted
model. Each test stores a Slack request as the route does (a SLACK job with the trigger of app/intake/slack.py),
links Slack users straight into the database (the OAuth flow has tests of its own), and checks what people see in
Slack and on GitHub."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from app.queue.db import Database
from app.queue.requests import JobKind, JobRequest
from app.queue.slack import SlackStore, Thread
from app.queue.store import JobQueue
from tests.e2e import FIX, REPO, World, said, serve
from tests.fakes.messages_api import edit, end, reply
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_events import BOT_USER_ID, TEAM_ID, new_event_id, new_trigger_id
from tests.support import wait_for

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")

CHANNEL = "C0GENERAL"
ALICE, BOB, CAROL = "U0ALICE", "U0BOB", "U0CAROL"  # alice writes, bob reads, carol is not linked
BRANCH = "honk/issue-1-widgets-spin-backwards"
TASK = "Widgets spin backwards\nThey should spin forwards."
_ids = itertools.count(1)


@dataclass
class Slack:
    """The world with Slack: the fake workspace, the database `honk serve` uses, and requests stored as jobs."""

    world: World
    fake: FakeSlack
    db: Database

    @property
    def store(self) -> SlackStore:
        return SlackStore(self.db)

    def link(self, user: str, login: str) -> None:
        self.store.link(TEAM_ID, user, login, self.world.github.register_user(login))

    def enqueue(self, payload: dict[str, Any]) -> int:
        return JobQueue(self.db).enqueue(JobRequest(kind=JobKind.SLACK, repo="", number=None,
                                                    requester=payload["user_id"], installation_id=None,
                                                    trigger=payload))

    def run(self, payload: dict[str, Any]) -> dict[str, Any]:
        job = self.world.finished(self.enqueue(payload))
        assert job["status"] == "succeeded", (job, self.world.logs())
        return job

    # Requests, as app/intake/slack.py stores them.

    def mention(self, user: str, text: str, *, thread_ts: str | None = None, files: list[Any] | None = None
                ) -> dict[str, Any]:
        event = self.fake.user_posts(CHANNEL, user, text, thread_ts=thread_ts, mention=True)
        return _event("mention", event, files)

    def reply(self, user: str, text: str, thread_ts: str) -> dict[str, Any]:
        return _event("reply", self.fake.user_posts(CHANNEL, user, text, thread_ts=thread_ts), None)

    def command(self, user: str, text: str) -> dict[str, Any]:
        return {"channel": "slack", "type": "command", "team_id": TEAM_ID, "channel_id": CHANNEL, "user_id": user,
                "ts": "", "thread_ts": "", "text": text, "files": [], "trigger_id": new_trigger_id(),
                "response_url": self.fake.response_url(CHANNEL, user), "command": "/honk", "bot_user_id": "",
                "delivery_id": f"slack:cmd:{next(_ids)}"}

    def click_merge(self, user: str, thread: Thread) -> dict[str, Any]:
        """`user` clicks the Merge button of the thread's status message (which must have one)."""
        assert thread.status_ts
        message = self.fake.message(CHANNEL, thread.status_ts)
        [value] = [element["value"] for block in message["blocks"] if block["type"] == "actions"
                   for element in block["elements"] if element["action_id"] == "honk_merge"]
        return {"channel": "slack", "type": "action", "team_id": TEAM_ID, "channel_id": CHANNEL, "user_id": user,
                "ts": thread.status_ts, "thread_ts": thread.thread_ts, "text": "", "files": [],
                "trigger_id": new_trigger_id(), "bot_user_id": "", "delivery_id": f"slack:act:{next(_ids)}",
                "response_url": self.fake.response_url(CHANNEL, user, thread.status_ts, kind="actions"),
                "action": {"action_id": "honk_merge", "value": value}}

    # What people see.

    def thread(self, root: str) -> Thread:
        found = self.store.thread_at(TEAM_ID, CHANNEL, root)
        assert found is not None, f"no Honk thread at {root}"
        return found

    def shown(self, ts: str) -> str:
        return self.fake.rendered(self.fake.message(CHANNEL, ts))

    def replies(self, root: str) -> list[str]:
        """The bot's messages in the thread, as a phone shows them."""
        return [self.fake.rendered(m) for m in self.fake.thread(CHANNEL, root)[1:] if m.get("user") == BOT_USER_ID]

    def ephemerals(self, user: str) -> list[str]:
        return [self.fake.rendered(e) for e in self.fake.ephemeral(user)]

    def ask(self, text: str = f"{REPO} {TASK}", user: str = ALICE, **kwargs: Any) -> tuple[dict[str, Any], Thread]:
        """A writer's request, through to Honk's pull request: the SLACK job, then its RESOLVE_ISSUE job."""
        self.world.model.script(*FIX)
        payload = self.mention(user, text, **kwargs)
        asked = self.run(payload)
        assert asked["result"]["outcome"] == "issue_opened", asked["result"]
        resolved = self.world.finished(asked["result"]["job"])
        assert resolved["status"] == "succeeded" and resolved["result"]["outcome"] == "pull_request", \
            (resolved, self.world.logs())
        return resolved, self.thread(payload["thread_ts"])


def _event(kind: str, event: dict[str, Any], files: list[Any] | None) -> dict[str, Any]:
    return {"channel": "slack", "type": kind, "team_id": TEAM_ID, "channel_id": event["channel"],
            "user_id": event["user"], "ts": event["ts"], "thread_ts": event.get("thread_ts") or event["ts"],
            "text": event["text"], "files": files or [], "event_id": new_event_id(), "bot_user_id": BOT_USER_ID,
            "delivery_id": f"slack:{new_event_id()}"}


@pytest.fixture
def slack(world: World) -> Iterator[Slack]:
    with FakeSlack() as fake:
        for user, name in ((ALICE, "alice"), (BOB, "bob"), (CAROL, "carol")):
            fake.add_user(user, name)
        fake.add_channel(CHANNEL, "general")
        serve(world, **fake.env(), HONK_PUBLIC_URL=world.url)
        db = Database(world.env["HONK_DATABASE_URL"])
        try:
            here = Slack(world, fake, db)
            here.link(ALICE, "alice")
            here.link(BOB, "bob")
            yield here
        finally:
            db.dispose()


def test_a_writers_mention_opens_an_issue_and_the_thread_follows_it_to_the_pull_request(slack: Slack) -> None:
    world, github = slack.world, slack.world.github
    files = [{"name": "spin.gif", "permalink": "https://acme.slack.com/files/U0ALICE/F01/spin.gif",
              "mimetype": "image/gif"}]
    resolved, thread = slack.ask(files=files)

    # The issue: opened by the App, in alice's words, saying who asked and where, labelled; the file linked.
    issue = github.issue(REPO, 1)
    assert issue["user"]["login"] == github.bot_login and issue["title"] == "Widgets spin backwards"
    assert "They should spin forwards." in issue["body"] and "Requested by @alice via Slack" in issue["body"]
    assert f"https://acme.slack.com/archives/{CHANNEL}/p{thread.thread_ts.replace('.', '')}" in issue["body"]
    assert "[spin.gif](https://acme.slack.com/files/U0ALICE/F01/spin.gif)" in issue["body"]
    assert [label["name"] for label in issue["labels"]] == ["honk"]
    # The model was told the request as alice's instruction, not as a stranger's data.
    task = said(world.model.bodies[0], 0)
    assert "@alice (who has write access) asked for this" in task
    assert "The issue, written by @alice (write access)" in task and "They should spin forwards." in task

    # The pull request, asked by alice; the thread records it.
    [pull] = github.pulls(REPO)
    assert pull["number"] == resolved["result"]["pull_request"] and f"Closes #{issue['number']}" in pull["body"]
    assert [r["login"] for r in pull["requested_reviewers"]] == ["alice"]
    assert (thread.issue_number, thread.pull_number, thread.requester) == (1, pull["number"], "alice")

    # One status message in the thread, edited in place: queued, working, then the outcome.
    assert len(slack.replies(thread.thread_ts)) == 1
    edits = [call.args.get("text", "") for call in slack.fake.calls_to("chat.update")
             if call.ok and call.args.get("ts") == thread.status_ts]
    assert edits[0].startswith("Queued in acme/widgets") and any(e.startswith("Working in") for e in edits)
    assert edits[-1].startswith("Pull request ready in acme/widgets")
    final = slack.shown(thread.status_ts or "")
    assert f"#{pull['number']} Make widgets spin forwards" in final and pull["html_url"] in \
        str(slack.fake.message(CHANNEL, thread.status_ts or "")["blocks"])
    assert "Verifiers passed" in final and "$" in final and "Merge" in final
    assert f"job #{resolved['id']}" in final
    assert not slack.fake.problems

    # `@Honk status` in the thread says where the work is.
    answered = slack.run(slack.mention(ALICE, "status", thread_ts=thread.thread_ts))
    assert answered["result"]["outcome"] == "status"
    assert f"Job #{resolved['id']}" in slack.replies(thread.thread_ts)[-1]
    assert "finished: pull request" in slack.replies(thread.thread_ts)[-1]


def test_an_unlinked_user_gets_a_link_and_nothing_else(slack: Slack) -> None:
    job = slack.run(slack.mention(CAROL, f"{REPO} fix the spinner"))
    assert job["result"]["outcome"] == "not_linked"
    [prompt] = slack.ephemerals(CAROL)
    assert "Link your GitHub account" in prompt
    [message] = slack.fake.ephemeral(CAROL)
    [button] = [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert button["url"].startswith(f"{slack.world.url}/slack/link?state=")
    assert not slack.world.github.calls("create_issue") and slack.store.thread_at(TEAM_ID, CHANNEL, "x") is None
    assert not [m for m in slack.fake.messages(CHANNEL) if m.get("user") == BOT_USER_ID]


def test_a_reader_is_told_it_needs_write_access_and_no_issue_is_opened(slack: Slack) -> None:
    payload = slack.mention(BOB, f"{REPO} fix the spinner")
    assert slack.run(payload)["result"]["outcome"] == "not_writer"
    [answer] = slack.replies(payload["ts"])
    assert "*bob* can't ask Honk in `acme/widgets`" in answer and "write access" in answer
    assert not slack.world.github.calls("create_issue")


def test_an_unknown_repository_is_answered(slack: Slack) -> None:
    payload = slack.mention(ALICE, "acme/nope fix the spinner")
    assert slack.run(payload)["result"]["outcome"] == "not_installed"
    [answer] = slack.replies(payload["ts"])
    assert "can't find `acme/nope`" in answer
    assert not slack.world.github.calls("create_issue")


def test_a_bound_channel_needs_no_repository_and_commands_answer_privately(slack: Slack) -> None:
    assert slack.run(slack.command(BOB, f"channel {REPO}"))["result"]["outcome"] == "not_writer"
    assert "can't ask Honk" in slack.ephemerals(BOB)[-1]
    assert slack.run(slack.command(ALICE, f"channel {REPO}"))["result"]["outcome"] == "channel_bound"
    assert any("This channel now asks Honk about `acme/widgets`" in slack.fake.rendered(m)
               for m in slack.fake.messages(CHANNEL))
    assert slack.store.channel_repo(TEAM_ID, CHANNEL) == REPO

    # A campaign without its block is answered with what is missing; nothing is opened.
    assert slack.run(slack.command(ALICE, "campaign bump the linter everywhere"))["result"]["outcome"] == \
        "invalid_campaign"
    assert "yaml honk-campaign" in slack.ephemerals(ALICE)[-1]
    assert not slack.world.github.calls("create_issue")

    resolved, thread = slack.ask(TASK)
    assert resolved["repo"] == REPO and thread.repo == REPO and thread.pull_number


def test_a_command_opens_the_thread_with_its_status_message(slack: Slack) -> None:
    slack.world.model.script(*FIX)
    asked = slack.run(slack.command(ALICE, f"{REPO} {TASK}"))
    assert asked["result"]["outcome"] == "issue_opened", asked["result"]
    resolved = slack.world.finished(asked["result"]["job"])
    assert resolved["result"]["outcome"] == "pull_request", slack.world.logs()
    [root] = [m for m in slack.fake.messages(CHANNEL) if m.get("user") == BOT_USER_ID]
    thread = slack.thread(root["ts"])
    assert thread.status_ts == root["ts"] and thread.pull_number == resolved["result"]["pull_request"]
    assert "Pull request ready" in slack.shown(root["ts"])


def test_a_writers_reply_is_a_pull_request_comment_and_a_follow_up(slack: Slack) -> None:
    world, github = slack.world, slack.world.github
    resolved, thread = slack.ask()
    pr = resolved["result"]["pull_request"]
    before = len(github.log(REPO, BRANCH))

    # A reader's reply is not obeyed: a private word, nothing on GitHub.
    assert slack.run(slack.reply(BOB, "make it shout", thread.thread_ts))["result"]["outcome"] == "not_writer"
    assert not [c for c in github.comments(REPO, pr) if "make it shout" in c["body"]]

    world.model.script(reply(edit("str_replace", "widgets.py", old_str="'forwards'", new_str="'FORWARDS'")),
                       end("Return it in capitals"))
    answered = slack.run(slack.reply(ALICE, "return it in capitals", thread.thread_ts))
    assert answered["result"]["outcome"] == "follow_up", answered["result"]
    [quoted] = [c for c in github.comments(REPO, pr) if c["id"] == answered["result"]["comment"]]
    assert quoted["user"]["login"] == github.bot_login
    assert quoted["body"].startswith("> return it in capitals") and "— @alice via Slack" in quoted["body"]

    follow = world.finished(answered["result"]["job"])
    assert (follow["status"], follow["result"]["outcome"]) == ("succeeded", "pushed"), world.logs()
    assert len(github.log(REPO, BRANCH)) == before + 1
    assert "FORWARDS" in (github.file_at(REPO, BRANCH, "widgets.py") or "")
    assert "Comment by @alice: return it in capitals" in said(world.model.bodies[-1], 0)
    # The thread's status message follows the follow-up too.
    assert follow["result"]["commit"][:7] in slack.shown(slack.thread(thread.thread_ts).status_ts or "")


def test_a_reply_before_the_pull_request_is_open_is_answered(slack: Slack) -> None:
    root = slack.mention(ALICE, f"{REPO} fix the spinner")
    SlackStore(slack.db).open_thread(team_id=TEAM_ID, channel_id=CHANNEL, thread_ts=root["ts"], slack_user=ALICE,
                                     requester="alice", repo=REPO)
    assert slack.run(slack.reply(ALICE, "also the docs", root["ts"]))["result"]["outcome"] == "no_pull_request"
    assert "not open yet" in slack.replies(root["ts"])[-1]
    # A reply in a thread that is not Honk's is none of its business.
    other = slack.mention(ALICE, "hello")["ts"]
    assert slack.run(slack.reply(ALICE, "hi", other))["result"]["outcome"] == "ignored"


def test_merge_is_for_linked_writers_and_branch_protection_decides(slack: Slack) -> None:
    github = slack.world.github
    resolved, thread = slack.ask()
    pr = resolved["result"]["pull_request"]

    # A reader's click is refused, privately; an unlinked user gets the link.
    assert slack.run(slack.click_merge(BOB, thread))["result"]["outcome"] == "not_writer"
    assert "can't ask Honk" in slack.ephemerals(BOB)[-1]
    assert slack.run(slack.click_merge(CAROL, thread))["result"]["outcome"] == "not_linked"
    assert github.pulls(REPO)[0]["state"] == "open"

    # GitHub refuses (a required review is missing): its reason, in the thread.
    github.required_approvals = {REPO: 1}  # type: ignore[attr-defined]
    refused = slack.run(slack.click_merge(ALICE, thread))
    assert refused["result"]["outcome"] == "merge_refused"
    assert "At least 1 approving review is required" in slack.replies(thread.thread_ts)[-1]
    assert "Couldn't merge" in slack.replies(thread.thread_ts)[-1] and f"|#{pr}>" in slack.replies(thread.thread_ts)[-1]
    assert github.pulls(REPO)[0]["state"] == "open"

    github.required_approvals = {}  # type: ignore[attr-defined]
    merged = slack.run(slack.click_merge(ALICE, thread))
    assert merged["result"]["outcome"] == "merged", merged["result"]
    [pull] = github.pulls(REPO)
    assert pull["merged"] and pull["state"] == "closed"
    assert "forwards" in (github.file_at(REPO, "main", "widgets.py") or "")
    assert "Merged* by alice" in slack.replies(thread.thread_ts)[-1]
    assert any(c["body"] == "Merged as @alice asked in Slack." for c in github.comments(REPO, pr))


def test_a_slack_rate_limit_on_a_status_edit_is_waited_out(slack: Slack) -> None:
    slack.fake.rate_limit("chat.update", times=1, retry_after=1)
    _, thread = slack.ask()
    statuses = [call.status for call in slack.fake.calls_to("chat.update")]
    assert statuses[0] == 429 and statuses[1] == 200
    assert "Pull request ready" in slack.shown(thread.status_ts or "")


def test_slack_down_does_not_stop_the_github_job(slack: Slack) -> None:
    world = slack.world
    world.model.script(*FIX)
    asked = slack.run(slack.mention(ALICE, f"{REPO} {TASK}"))
    slack.fake.fail("*", times=10_000, status=500)
    resolved = world.finished(asked["result"]["job"])
    assert (resolved["status"], resolved["result"]["outcome"]) == ("succeeded", "pull_request"), world.logs()
    assert len(world.github.pulls(REPO)) == 1
    events = wait_for(lambda: [e for e in _events(slack, resolved["id"]) if e.kind == "slack.failed"] or None,
                      what="the Slack failure recorded")
    assert events and "SlackError" in events[0].data["error"]
    # The thread still knows its pull request, for what comes once Slack is back.
    found = slack.store.thread_of_issue(REPO, asked["result"]["issue"])
    assert found is not None and found.pull_number == resolved["result"]["pull_request"]


def _events(slack: Slack, job_id: int) -> list[Any]:
    return JobQueue(slack.db).events(job_id)


def test_stop_in_the_thread_cancels_the_work_for_a_writer(slack: Slack) -> None:
    github = slack.world.github
    issue = github.create_issue(REPO, "Widgets spin backwards", "They should spin forwards.", user="alice")
    root = slack.mention(ALICE, f"{REPO} Widgets spin backwards")["ts"]
    thread = slack.store.open_thread(team_id=TEAM_ID, channel_id=CHANNEL, thread_ts=root, slack_user=ALICE,
                                     requester="alice", repo=REPO)
    slack.store.update_thread(thread.id, issue_number=issue)
    waiting = JobQueue(slack.db).enqueue(JobRequest(  # a run that waits for a worker (a while, on purpose)
        kind=JobKind.RESOLVE_ISSUE, repo=REPO, number=issue, requester="alice", installation_id=42,
        trigger={"type": "label", "label": "honk", "issue": {"number": issue, "title": "Widgets spin backwards"},
                 "sender": {"login": "alice", "type": "User"}, "slack": {"thread_id": thread.id}},
        delay_seconds=600))

    assert slack.run(slack.mention(BOB, "stop", thread_ts=root))["result"]["outcome"] == "not_writer"
    assert slack.world.job(waiting)["status"] == "queued"

    stopped = slack.run(slack.mention(ALICE, "stop", thread_ts=root))
    assert stopped["result"] == {"outcome": "stopped", "cancelled": [waiting]}
    assert slack.world.job(waiting)["status"] == "cancelled"
    assert f"Stopping job #{waiting} as @alice asked in Slack" in slack.replies(root)[-1]
    assert any(f"Stopping job #{waiting} as @alice asked in Slack" in c["body"] for c in github.comments(REPO, issue))
    # `/honk stop` has no thread to act in: it says where to ask.
    assert slack.run(slack.command(ALICE, "stop"))["result"]["outcome"] == "no_thread"
    assert "in the thread of a request" in slack.ephemerals(ALICE)[-1]


def test_a_campaign_from_slack_opens_the_campaign_issue_and_starts_it(slack: Slack) -> None:
    world = slack.world
    body = ("Spin widgets forwards everywhere\n\n```yaml honk-campaign\nrepos: [acme/widgets]\ncanary: 0\n```")
    world.model.script(*FIX)
    said = slack.run(slack.command(ALICE, f"campaign {REPO} {body}"))["result"]
    assert said["outcome"] == "campaign_opened" and said["repo"] == REPO, said
    issue = world.github.issue(REPO, said["issue"])
    assert issue["title"] == "Spin widgets forwards everywhere"
    assert [label["name"] for label in issue["labels"]] == ["honk-campaign"]
    assert "Requested by @alice via Slack" in issue["body"]
    assert f"{REPO}#{said['issue']}" in slack.ephemerals(ALICE)[-1]
    started = world.finished(said["job"])
    assert started["requester"] == "alice" and started["result"]["outcome"] == "started", started
    assert any("honk:campaign-plan" in c["body"] for c in world.bot_comments(said["issue"]))
    # The pull request follows, on the campaign's branch.
    wait_for(lambda: [p for p in world.github.pulls(REPO) if p["head"]["ref"].startswith("honk/campaign-1-")],
             timeout=60, what="the campaign's pull request")
