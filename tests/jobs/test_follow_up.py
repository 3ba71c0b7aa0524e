"""Review follow-ups end to end: reviews and mentions on a pull request come back as commits on its branch and
a reply in each thread, through the real `honk serve`, the local GitHub and the scripted model."""

from __future__ import annotations

import secrets
import shutil
import string
from typing import Any

import pytest

from tests.e2e import FIX, REPO, World, serve
from tests.fakes.messages_api import bash, edit, end, reply
from tests.support import wait_for

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")
BRANCH = "honk/issue-1-widgets-spin-backwards"


def honk_pull_request(world: World) -> int:
    """Label an issue and let Honk open its pull request; returns the pull request's number."""
    serve(world)
    issue = world.github.create_issue(REPO, "Widgets spin backwards", "They should spin forwards.", user="alice")
    world.model.script(*FIX)
    job = world.finished(world.label(issue).json()["job"])
    assert job["result"]["outcome"] == "pull_request", world.logs()
    return job["result"]["pull_request"]


def replies(world: World, pr: int) -> list[dict[str, Any]]:
    return [c for c in world.github.review_comments(REPO, pr) if c.get("in_reply_to_id")]


def test_a_change_request_with_two_comments_is_one_run_one_commit_and_two_replies(world: World) -> None:
    pr = honk_pull_request(world)
    before = len(world.github.log(REPO, BRANCH))
    review = world.github.add_review(REPO, pr, "alice", state="CHANGES_REQUESTED", body="Two things.", comments=[
        {"path": "widgets.py", "line": 2, "body": "Use a constant for the direction."},
        {"path": "README.md", "line": 1, "body": "Say which way they spin."}])
    first, second = (c["id"] for c in world.github.review_comments(REPO, pr))
    world.model.script(
        reply(edit("create", "widgets.py",
                   file_text="DIRECTION = 'forwards'\n\n\ndef spin():\n    return DIRECTION\n")),
        reply(edit("create", "README.md", file_text="# Widgets\n\nThey spin forwards.\n")),
        end(f"Use a constant and document the direction\n\n[thread {first}] Added DIRECTION.\n"
            f"[thread {second}] The README says they spin forwards."))

    answer = world.github.deliver("pull_request_review", world.github.pull_request_review_submitted(REPO, pr, review))
    assert answer.status_code == 202, answer.text
    job = world.finished(answer.json()["job"])
    assert (job["status"], job["result"]["outcome"]) == ("succeeded", "pushed"), world.logs()

    log = world.github.log(REPO, BRANCH)
    assert len(log) == before + 1  # one new commit, on the same branch
    sha = log[0]["sha"]
    assert job["result"]["commit"] == sha
    threaded = {c["in_reply_to_id"]: c["body"] for c in replies(world, pr)}
    assert set(threaded) == {first, second}
    assert threaded[first] == f"Addressed in {sha[:7]}: Added DIRECTION."
    assert threaded[second] == f"Addressed in {sha[:7]}: The README says they spin forwards."
    assert all(t["isResolved"] for t in world.github.review_threads(REPO, pr))
    [pull] = world.github.pulls(REPO)
    assert [r["login"] for r in pull["requested_reviewers"]] == ["alice"]
    assert "### Follow-ups" in pull["body"] and f"Closes #{1}" in pull["body"]
    assert not [push for push in world.github.pushes if push.forced]


def test_a_mention_on_one_line_gets_a_commit_and_a_reply(world: World) -> None:
    pr = honk_pull_request(world)
    world.github.add_review(REPO, pr, "alice", comments=[
        {"path": "widgets.py", "line": 2, "body": "@honk return it in capitals"}])
    [comment] = world.github.review_comments(REPO, pr)
    world.model.script(reply(edit("str_replace", "widgets.py", old_str="'forwards'", new_str="'FORWARDS'")),
                       end(f"Capitals\n\n[thread {comment['id']}] It now returns 'FORWARDS'."))
    answer = world.github.deliver("pull_request_review_comment",
                                  world.github.pull_request_review_comment_created(REPO, pr, comment["id"]))
    job = world.finished(answer.json()["job"])
    assert job["result"]["outcome"] == "pushed", world.logs()
    assert "FORWARDS" in (world.github.file_at(REPO, BRANCH, "widgets.py") or "")
    [answered] = replies(world, pr)
    assert answered["in_reply_to_id"] == comment["id"] and job["result"]["commit"][:7] in answered["body"]
    assert world.github.reactions(REPO, review_comment_id=comment["id"])[0]["content"] == "eyes"


def test_a_human_push_meanwhile_is_kept_and_honk_commits_on_top(world: World) -> None:
    pr = honk_pull_request(world)
    comment = world.github.issue_comment_created(REPO, pr, "@honk add a changelog entry", "alice")

    def human_pushes_then_edit(_: dict[str, Any]) -> dict[str, Any]:
        world.github.commit_files(REPO, BRANCH, {"NOTES.md": "human notes\n"}, "Add notes",
                                  author="Maria Maintainer <maria@example.com>")
        return reply(edit("create", "CHANGELOG.md", file_text="- spin forwards\n"))

    world.model.script(human_pushes_then_edit, end("Changelog entry added"))
    job = world.finished(world.github.deliver("issue_comment", comment).json()["job"])
    assert job["result"]["outcome"] == "pushed", world.logs()
    honk, human, *_ = world.github.log(REPO, BRANCH)
    assert (human["message"].strip(), human["author_name"]) == ("Add notes", "Maria Maintainer")
    assert honk["sha"] == job["result"]["commit"]
    assert world.github.file_at(REPO, BRANCH, "NOTES.md") == "human notes\n"
    assert world.github.file_at(REPO, BRANCH, "CHANGELOG.md") == "- spin forwards\n"
    assert not [push for push in world.github.pushes if push.forced]
    conversation = [c["body"] for c in world.bot_comments(pr)]
    assert any(body.startswith(f"Pushed {honk['sha'][:7]}.") for body in conversation)
    assert any("on top of them" in body for body in conversation)


def test_a_readers_review_changes_nothing(world: World) -> None:
    pr = honk_pull_request(world)
    before = world.github.log(REPO, BRANCH)
    review = world.github.add_review(REPO, pr, "bob", state="CHANGES_REQUESTED", body="Rewrite it all.",
                                     comments=[{"path": "widgets.py", "line": 1, "body": "Delete this."}])
    job = world.finished(world.github.deliver(
        "pull_request_review", world.github.pull_request_review_submitted(REPO, pr, review)).json()["job"])
    assert job["outcome"] == "not_authorised"
    assert world.github.log(REPO, BRANCH) == before and replies(world, pr) == []


def test_requests_in_a_burst_are_one_run_and_later_ones_the_next_run(world: World) -> None:
    pr = honk_pull_request(world)
    github = world.github
    world.model.script(reply(bash("sleep 2")), reply(edit("create", "A.md", file_text="a\n")),
                       end("Did A and B"))
    first = github.deliver("issue_comment", github.issue_comment_created(REPO, pr, "@honk add A.md", "alice"))
    burst = github.deliver("issue_comment", github.issue_comment_created(REPO, pr, "@honk and B too", "alice"))
    wait_for(lambda: world.job(first.json()["job"])["status"] == "running", what="the first follow-up to start")
    wait_for(lambda: world.job(first.json()["job"])["events"][-1]["kind"] == "tool.call", what="its slow command")
    world.model.script(reply(edit("create", "C.md", file_text="c\n")), end("Did C"))
    later = github.deliver("issue_comment", github.issue_comment_created(REPO, pr, "@honk now C.md", "alice"))

    one, merged, two = (world.finished(r.json()["job"]) for r in (first, burst, later))
    assert merged["result"] == {"outcome": "merged", "merged_into": one["id"]}
    assert one["result"]["outcome"] == two["result"]["outcome"] == "pushed", world.logs()
    assert one["finished_at"] <= two["started_at"]  # the later request waited for the run in progress
    task = next(b for b in world.model.bodies if "add A.md" in str(b["messages"][0]))
    assert "and B too" in str(task["messages"][0])  # the burst reached the model as one task
    assert github.file_at(REPO, BRANCH, "C.md") == "c\n"


def test_stop_keeps_the_work_and_retry_runs_the_failed_job_again(world: World) -> None:
    serve(world)
    issue = world.github.create_issue(REPO, "Widgets spin backwards", "", user="alice")
    world.model.script(reply(edit("create", "notes.txt", file_text="half done\n")), reply(bash("sleep 60")))
    job_id = world.label(issue).json()["job"]
    wait_for(lambda: world.job(job_id)["events"][-1]["kind"] == "tool.call"
             and world.job(job_id)["events"][-1]["data"]["name"] == "bash", what="the slow command")
    stop = world.github.deliver("issue_comment", world.github.issue_comment_created(REPO, issue, "@honk stop",
                                                                                    "alice"))
    assert stop.status_code == 202
    stopped = world.finished(job_id, timeout=30)
    assert stopped["status"] == "cancelled"
    kept = next(e["data"] for e in stopped["events"] if e["kind"] == "job.stopped")
    assert "notes.txt" in kept["changes"]
    assert (world.tmp / "data" / "workspaces" / f"job-{job_id}" / "notes.txt").read_text() == "half done\n"
    assert list(world.github.branches(REPO)) == ["main"]  # nothing half-done was pushed
    assert any("Stopped as asked" in c["body"] for c in world.bot_comments(issue))

    # A failed job (a refused secret), then "@honk retry" runs it again.
    token = "ghp_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(36))
    world.model.script(reply(edit("create", "deploy.cfg", file_text=f"token = {token}\n")), end("Added"))
    failed = world.finished(world.label(issue).json()["job"])
    assert failed["status"] == "failed"
    world.model.script(*FIX)
    retry = world.github.deliver("issue_comment", world.github.issue_comment_created(REPO, issue, "@honk retry",
                                                                                     "alice"))
    control = world.finished(retry.json()["job"])
    assert control["result"]["retry_of"] == failed["id"]
    rerun = world.finished(control["result"]["job"])
    assert rerun["result"]["outcome"] == "pull_request", world.logs()


def test_a_mention_on_a_pull_request_honk_did_not_open_works_on_its_branch(world: World) -> None:
    serve(world)
    github = world.github
    github.commit_files(REPO, "feature/faster", {"widgets.py": "def spin():\n    return 'backwards, fast'\n"},
                        "Spin faster", author="Maria Maintainer <maria@example.com>")
    pr = github.open_pull(REPO, "feature/faster", "main", "Spin faster", user="alice")
    world.model.script(reply(edit("str_replace", "widgets.py", old_str="backwards, fast", new_str="forwards, fast")),
                       end("Spin forwards, fast"))
    answer = github.deliver("issue_comment", github.issue_comment_created(REPO, pr, "@honk make them spin forwards",
                                                                          "alice"))
    assert answer.status_code == 202
    job = world.finished(answer.json()["job"])
    assert job["result"]["outcome"] == "pushed", world.logs()
    honk, maria, *_ = github.log(REPO, "feature/faster")
    assert maria["author_name"] == "Maria Maintainer" and honk["author_name"] == github.bot_login
    assert github.file_at(REPO, "feature/faster", "widgets.py") == "def spin():\n    return 'forwards, fast'\n"
    assert set(github.branches(REPO)) == {"main", "feature/faster"}  # no branch of Honk's own
    assert len(github.pulls(REPO)) == 1
