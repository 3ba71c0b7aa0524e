"""A Slack thread hears about its pull request (issue #15, CONTRACT.md section 8), end to end: a real `honk serve`
with the local Slack, the local GitHub (its Checks API, deployments and the pull requests of a commit) and the
scripted model. A thread row is made in the database as the Slack request would have made it, the status message
posted first, and then GitHub's deliveries come in: checks done, a preview, changes requested, merged or closed.
Each is said once in the thread, however often GitHub sends it, and the webhook's answer is the one it would be
without Slack.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from slack_sdk import WebClient

from app.queue.db import Database
from app.queue.models import Delivery
from app.queue.slack import SlackStore, Thread
from app.slack import blocks
from tests.e2e import FIX, REPO, World, serve
from tests.fakes.github import deployments
from tests.fakes.github.deployments import deployment_status_created, finish_check_run, pull_request_closed
from tests.fakes.messages_api import edit, end, reply
from tests.fakes.slack import FakeSlack
from tests.support import wait_for

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")
BRANCH = "honk/issue-1-widgets-spin-backwards"
CHANNEL = "C0WIDGETS"
ASKER = "U0ALICE"
PREVIEW = "https://widgets-git-honk-issue-1-acme.vercel.app"


@dataclass
class Slacked:
    world: World
    slack: FakeSlack
    db: Database
    store: SlackStore

    @property
    def github(self) -> Any:
        return self.world.github

    def thread_for(self, issue: int | None, pull: int) -> Thread:
        """A thread as a Slack request leaves it once its pull request is open: the asker's message, Honk's
        status message under it, and the row naming the issue and the pull request."""
        asked = self.slack.user_posts(CHANNEL, ASKER, f"acme/widgets fix #{pull}", mention=True)
        status = blocks.queued(blocks.Subject(REPO, "Widgets spin backwards", issue_number=issue))
        posted = WebClient(token=self.slack.token, base_url=self.slack.url).chat_postMessage(
            channel=CHANNEL, thread_ts=asked["ts"], blocks=status.blocks, text=status.text)
        thread = self.store.open_thread(team_id=self.slack.team_id, channel_id=CHANNEL, thread_ts=asked["ts"],
                                        slack_user=ASKER, requester="alice", repo=REPO)
        return self.store.update_thread(thread.id, status_ts=posted["ts"], issue_number=issue, pull_number=pull)

    def replies(self, thread: Thread) -> list[str]:
        """What the thread shows under the status message, oldest first."""
        return [FakeSlack.rendered(m) for m in self.slack.thread(CHANNEL, thread.thread_ts)
                if m["ts"] not in (thread.thread_ts, thread.status_ts)]

    def deliver(self, event: str, payload: dict[str, Any]) -> httpx.Response:
        answer = self.github.deliver(event, payload)
        assert answer.status_code in (200, 202), answer.text
        return answer

    def news_job(self, answer: httpx.Response | None = None) -> dict[str, Any] | None:
        """The NOTIFY job the last delivery queued, finished; None when it queued none."""
        delivery = self.github.deliveries[-1].id
        with self.db.session() as session:
            row = session.get(Delivery, f"{delivery}#notify")
            job_id = row.job_id if row is not None else None
        if job_id is None:
            return None
        job = self.world.finished(job_id)
        assert job["kind"] == "notify" and job["status"] == "succeeded", (job, self.world.logs())
        return job

    def outcome(self, answer: httpx.Response | None = None) -> str:
        job = self.news_job(answer)
        assert job is not None, "the delivery queued no news"
        if job["result"]["outcome"] == "forwarded":  # a deployment: the reply is queued on its pull request
            job = self.world.finished(job["result"]["job"])
            assert job["kind"] == "notify" and job["status"] == "succeeded", job
        return str(job["result"]["outcome"])

    def posts(self) -> int:
        return sum(1 for c in self.slack.calls_to("chat.postMessage") if c.ok)


@pytest.fixture
def slacked(world: World) -> Iterator[Slacked]:
    with FakeSlack() as slack:
        slack.add_user(ASKER, "alice")
        slack.add_channel(CHANNEL, "widgets")
        deployments.install(world.github)
        serve(world, **slack.env())
        db = Database(world.env["HONK_DATABASE_URL"])
        try:
            yield Slacked(world, slack, db, SlackStore(db))
        finally:
            db.dispose()


def _honk_pull(s: Slacked) -> tuple[int, int]:
    """Label an issue and wait for Honk's pull request: the issue's and the pull request's numbers."""
    issue = s.github.create_issue(REPO, "Widgets spin backwards", "They should spin forwards.", user="alice")
    s.world.model.script(*FIX)
    job = s.world.finished(s.world.label(issue).json()["job"])
    assert job["result"]["outcome"] == "pull_request", s.world.logs()
    return issue, int(job["result"]["pull_request"])


def _ignored(answer: httpx.Response, reason: str) -> None:
    assert answer.status_code == 200 and answer.json()["status"] == "ignored", answer.text
    assert reason in answer.json()["reason"]


@needs_bwrap
def test_the_thread_hears_checks_preview_changes_and_the_merge_once_each(slacked: Slacked) -> None:
    s, github = slacked, slacked.github
    issue, number = _honk_pull(s)
    thread = s.thread_for(issue, number)
    head = github.log(REPO, BRANCH)[0]["sha"]

    # Checks: GitHub Actions' suite finishes while the preview host's check still runs: not a word yet.
    actions = github.add_check_suite(REPO, head, "success", runs=["lint", "test"])
    github.add_check_suite(REPO, head, None, runs=["Vercel"], app="vercel")
    first = s.deliver("check_suite", github.check_suite_completed(REPO, actions, sender="github-actions[bot]"))
    _ignored(first, "concluded success")  # the main decision, as without Slack
    job = s.news_job()
    assert job is not None and job["result"]["outcome"] == "waiting" and job["result"]["running"] == ["Vercel"]
    assert job["subject"] == f"notify:{REPO}#{number}"
    assert s.replies(thread) == []
    # The last suite finishes: one reply, with every check's name.
    vercel = finish_check_run(github, REPO, head, "Vercel", "success")
    last = s.deliver("check_suite", github.check_suite_completed(REPO, vercel, sender="vercel[bot]"))
    _ignored(last, "concluded success")
    assert s.outcome() == "replied"
    assert s.replies(thread) == [f"✅ Checks passed on <{github.base_url}/{REPO}/pull/{number}|#{number}>: "
                                 "`Honk`, `Vercel`, `lint`, `test`"]
    # The same news again, redelivered or from another suite: nothing more.
    assert github.redeliver(github.deliveries[-1].id).json() == {"status": "duplicate"}
    s.deliver("check_suite", github.check_suite_completed(REPO, actions, sender="github-actions[bot]"))
    assert s.outcome() == "already_said"
    assert len(s.replies(thread)) == 1

    # The preview: a deployment of the head, by branch; the same URL again, deployed by SHA: said once.
    preview = s.deliver("deployment_status", deployment_status_created(github, REPO, head, ref=BRANCH,
                                                                       environment_url=PREVIEW))
    _ignored(preview, "Honk does not act on deployment_status events")
    assert s.outcome() == "replied"
    said = s.slack.thread(CHANNEL, thread.thread_ts)[-1]
    assert "Preview ready" in FakeSlack.rendered(said) and PREVIEW in FakeSlack.rendered(said)
    assert said["blocks"][0]["accessory"]["url"] == PREVIEW  # the button opens it
    s.deliver("deployment_status", deployment_status_created(github, REPO, head, ref=head, environment_url=PREVIEW))
    assert s.outcome() == "already_said"
    assert github.calls("list_pulls_for_commit")  # found by its commit alone
    s.deliver("deployment_status", deployment_status_created(github, REPO, head, ref=BRANCH, state="in_progress",
                                                             environment_url=PREVIEW))
    assert s.news_job() is None  # not done: no news at all
    assert len(s.replies(thread)) == 2

    # Red CI on Honk's head: the CI fix starts as it would without Slack, and the thread hears the failure once.
    run_id = github.add_workflow_run(REPO, head, "failure", jobs={"test": "widgets.py:2: AssertionError\n"})
    suite = max((c for c in github.check_runs(REPO, head) if c["name"] == "test"), key=lambda c: c["id"])
    world = s.world
    world.model.script(reply(edit("str_replace", "widgets.py", old_str="'forwards'", new_str="'forwards'  # fixed")),
                       end("Fix the failing test\n\nThe check `test` failed; fixed."))
    red = s.deliver("check_suite", github.check_suite_completed(REPO, suite["check_suite"]["id"],
                                                                sender="github-actions[bot]"))
    assert red.status_code == 202 and world.job(red.json()["job"])["kind"] == "fix_ci"
    assert s.outcome() == "replied"
    assert s.replies(thread)[-1] == (f"❌ Checks failed on <{github.base_url}/{REPO}/pull/{number}|#{number}>: "
                                     "`test`\n3 passed.")
    fixed = world.finished(red.json()["job"])
    assert fixed["result"]["outcome"] == "pushed", world.logs()
    assert run_id and github.log(REPO, BRANCH)[0]["sha"] != head
    # A late preview of the old head is old news.
    s.deliver("deployment_status", deployment_status_created(github, REPO, head, ref=BRANCH,
                                                             environment_url=PREVIEW + "/old"))
    assert s.outcome() in ("no_pull", "stale")
    assert len(s.replies(thread)) == 3

    # Changes requested by bob, who may only read: his follow-up is refused as ever, and the thread hears him.
    review = github.add_review(REPO, number, "bob", "CHANGES_REQUESTED",
                               "Please keep the old name:\n\n`spin()` is public API <!here>.")
    asked = s.deliver("pull_request_review", github.pull_request_review_submitted(REPO, number, review))
    assert asked.status_code == 202 and world.finished(asked.json()["job"])["result"]["outcome"] == "not_authorised"
    assert s.outcome() == "replied"
    assert s.replies(thread)[-1] == (
        f"✏️ *bob* requested changes on <{github.base_url}/{REPO}/pull/{number}|#{number}>\n"
        ">Please keep the old name: `spin()` is public API &lt;!here&gt;.\n"
        f"<{github.base_url}/{REPO}/pull/{number}#pullrequestreview-{review}|Read the review>")
    assert github.redeliver(github.deliveries[-1].id).json() == {"status": "duplicate"}

    # Merged by carol: once.
    merged = s.deliver("pull_request", pull_request_closed(github, REPO, number, "carol", merged=True))
    _ignored(merged, "Honk does not act on pull_request events")
    assert s.outcome() == "replied"
    assert s.replies(thread)[-1].startswith(f"🎉 *Merged* by carol: <{github.base_url}/{REPO}/pull/{number}|#{number}")
    assert github.redeliver(github.deliveries[-1].id).json() == {"status": "duplicate"}

    # After the merge, late checks are no news.
    late = github.add_check_suite(REPO, github.log(REPO, BRANCH)[0]["sha"], "failure", runs=["slow"], app="circleci")
    s.deliver("check_suite", github.check_suite_completed(REPO, late, sender="circleci[bot]"))
    assert s.news_job() is None  # a closed pull request's suite names no pull request
    replies = s.replies(thread)
    assert len(replies) == 5 and s.posts() == 1 + 5  # the status message, then exactly five replies
    assert all("Honk" not in r or "`Honk`" in r for r in replies)


def test_a_pull_request_without_a_thread_hears_nothing_and_slack_failures_end_or_retry(slacked: Slacked) -> None:
    s, github = slacked, slacked.github
    branch = "honk/by-hand"
    head = github.commit_files(REPO, branch, {"widgets.py": "def spin():\n    return 'forwards'\n"}, "By hand")
    number = github.open_pull(REPO, branch, "main", "Spin forwards by hand", user="alice")

    suite = github.add_check_suite(REPO, head, "success", runs=["test"])
    _ignored(s.deliver("check_suite", github.check_suite_completed(REPO, suite)), "concluded success")
    assert s.outcome() == "no_thread"
    review = github.add_review(REPO, number, "alice", "CHANGES_REQUESTED", "No.")
    s.deliver("pull_request_review", github.pull_request_review_submitted(REPO, number, review))
    assert s.outcome() == "no_thread"
    s.deliver("deployment_status", deployment_status_created(github, REPO, head, ref=branch, environment_url=PREVIEW))
    assert s.outcome() == "no_thread"
    assert s.posts() == 0
    # Without a thread GitHub is not even asked: not for the pull request, its checks, nor a commit's pulls.
    asked = {r.route for r in github.requests}
    assert not asked & {"get_pull", "list_check_runs_for_ref", "list_pulls", "list_pulls_for_commit"}

    thread = s.thread_for(None, number)
    # The bot was removed from the channel: said in the job's trail, and no retry.
    s.slack.fail("chat.postMessage", times=1, status=200, error="not_in_channel")
    review = github.add_review(REPO, number, "bob", "CHANGES_REQUESTED", "Rename it.")
    s.deliver("pull_request_review", github.pull_request_review_submitted(REPO, number, review))
    job = s.news_job()
    assert job is not None and job["result"]["outcome"] == "slack_failed" and job["attempts"] == 1
    assert job["result"]["error"] == "not_in_channel"
    assert any(e["kind"] == "slack.failed" for e in job["events"])
    # Slack down for a while: the job comes back later and says it once.
    s.slack.fail("chat.postMessage", times=4, status=503)
    again = github.add_check_suite(REPO, head, "success", runs=["lint"], app="circleci")
    s.deliver("check_suite", github.check_suite_completed(REPO, again, sender="circleci[bot]"))
    job = s.news_job()
    assert job is not None and job["result"]["outcome"] == "replied" and job["attempts"] >= 2, job
    closed = s.deliver("pull_request", pull_request_closed(github, REPO, number, "alice", merged=False))
    _ignored(closed, "Honk does not act on pull_request events")
    assert s.outcome() == "replied"
    wait_for(lambda: len(s.replies(thread)) == 2 or None, timeout=5, what="two replies")
    checks, closing = s.replies(thread)
    assert checks == (f"✅ Checks passed on <{github.base_url}/{REPO}/pull/{number}|#{number}>: `lint`, `test`")
    assert closing == (f"🚫 *Closed without merging* by alice: "
                       f"<{github.base_url}/{REPO}/pull/{number}|#{number} Spin forwards by hand>")
