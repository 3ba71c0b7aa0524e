"""Issue to pull request, end to end: a real `honk serve`, the local GitHub (REST and git over HTTP) and the
scripted model. Each test labels or mentions on an issue and checks what a user would see on GitHub."""

from __future__ import annotations

import secrets
import shutil
import signal
import string

import pytest
import yaml

from tests.e2e import FIX, REPO, World, said, serve
from tests.fakes.messages_api import bash, edit, end, reply
from tests.support import wait_for

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")

def test_a_labelled_issue_becomes_one_tested_pull_request(world: World) -> None:
    serve(world)
    issue = world.github.create_issue(REPO, "Widgets spin backwards", "They should spin forwards.", user="alice")
    world.model.script(*FIX)

    answer = world.label(issue)
    assert answer.status_code == 202, answer.text
    job = world.finished(answer.json()["job"])
    assert job["status"] == "succeeded", world.logs()
    result = job["result"]
    assert result["outcome"] == "pull_request" and result["verification"]["status"] == "passed"

    github, bot = world.github, world.github.bot_login
    assert [r["content"] for r in github.reactions(REPO, issue) if r["user"]["login"] == bot] == ["eyes"]
    [status] = world.bot_comments(issue)
    [pull] = github.pulls(REPO)
    assert f"Opened #{pull['number']}" in status["body"]
    assert "Verifiers passed: `test` (`grep -q forwards widgets.py`)" in status["body"]
    assert "⚖️ The judge approved the change." in status["body"]
    assert f"/jobs/{job['id']}" in status["body"] and "turns" in status["body"] and "$" in status["body"]

    branch = "honk/issue-1-widgets-spin-backwards"
    assert (pull["head"]["ref"], pull["base"]["ref"], pull["draft"]) == (branch, "main", False)
    assert f"Closes #{issue}" in pull["body"] and "✅ Verifiers passed" in pull["body"]
    # The judge saw the request and the diff in a request of its own, with its one tool.
    [judged] = world.model.judge_bodies
    assert [t["name"] for t in judged["tools"]] == ["verdict"] and "+    return 'forwards'" in said(judged, 0)
    # The `Honk` check run on the pushed commit, completed with what was verified.
    [check] = github.check_runs(REPO, github.log(REPO, "honk/issue-1-widgets-spin-backwards")[0]["sha"])
    assert (check["name"], check["status"], check["conclusion"]) == ("Honk", "completed", "success")
    assert "grep -q forwards widgets.py" in check["output"]["summary"] and f"/jobs/{job['id']}" in check["details_url"]
    assert pull["title"] == "Make widgets spin forwards"
    assert [r["login"] for r in pull["requested_reviewers"]] == ["alice"]
    assert github.file_at(REPO, branch, "widgets.py") == "def spin():\n    return 'forwards'\n"
    [commit, *_] = github.log(REPO, branch)
    assert (commit["author_name"], commit["author_email"]) == (bot, github.bot_email)
    assert f"Honk-Job: {job['id']}" in commit["message"]
    assert "Co-authored-by: alice <" in commit["message"]
    assert not [push for push in github.pushes if push.forced]

    # The token reached git only through the environment: nothing Honk keeps on disk holds one.
    tokens = list(github.tokens)
    for path in (world.tmp / "data").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not [t for t in tokens if t.encode() in data], f"token written to {path}"
    assert not (world.tmp / "data" / "workspaces" / f"job-{job['id']}").exists()  # cleaned up

    # GitHub redelivers: nothing happens twice.
    again = github.redeliver(github.deliveries[-1].id)
    assert again.json() == {"status": "duplicate"}
    assert len(github.pulls(REPO)) == 1 and len(world.bot_comments(issue)) == 1


def test_asking_again_updates_the_same_pull_request(world: World) -> None:
    serve(world)
    issue = world.github.create_issue(REPO, "Widgets spin backwards", "", user="alice")
    world.model.script(*FIX)
    first = world.finished(world.label(issue).json()["job"])
    assert first["status"] == "succeeded", world.logs()
    assert first["result"]["outcome"] == "pull_request", (first["result"], len(world.model.requests))
    world.model.script(reply(edit("create", "CHANGELOG.md", file_text="- widgets spin forwards\n")),
                       end("Note the fix in the changelog"))
    comment = world.github.issue_comment_created(REPO, issue, "@honk please add a changelog entry", "alice")
    second = world.finished(world.github.deliver("issue_comment", comment).json()["job"])
    assert second["status"] == "succeeded", world.logs()
    assert second["result"].get("opened") is False
    [pull] = world.github.pulls(REPO)
    assert world.github.file_at(REPO, pull["head"]["ref"], "CHANGELOG.md") == "- widgets spin forwards\n"
    assert len(world.github.log(REPO, pull["head"]["ref"])) == 3  # initial, first fix, changelog on top
    assert world.github.reactions(REPO, comment_id=comment["comment"]["id"])[0]["content"] == "eyes"


def test_a_readers_label_and_a_bots_comment_change_nothing(world: World) -> None:
    serve(world)
    issue = world.github.create_issue(REPO, "Widgets spin backwards", "", user="bob")
    refused = world.finished(world.label(issue, sender="bob").json()["job"])
    assert (refused["status"], refused["outcome"]) == ("succeeded", "not_authorised")

    world.github.register_user("dependabot[bot]", "Bot")
    bot = world.github.deliver("issue_comment", world.github.issue_comment_created(
        REPO, issue, "@honk bump everything", "dependabot[bot]"))
    assert bot.status_code == 200 and bot.json()["status"] == "ignored"

    assert world.bot_comments(issue) == [] and world.github.reactions(REPO, issue) == []
    assert world.github.pulls(REPO) == [] and list(world.github.branches(REPO)) == ["main"]
    assert world.model.bodies == []


def test_a_question_gets_an_answer_and_no_pull_request(world: World) -> None:
    serve(world)
    issue = world.github.create_issue(REPO, "Which way do widgets spin?", "Just curious.", user="alice")
    world.model.script(reply(bash("cat widgets.py")),
                       end("They spin backwards: `spin()` returns 'backwards'. Nothing to change."))
    job = world.finished(world.label(issue).json()["job"])
    assert (job["status"], job["result"]["outcome"]) == ("succeeded", "no_change")
    [status] = world.bot_comments(issue)
    assert "I made no change" in status["body"] and "They spin backwards" in status["body"]
    assert world.github.pulls(REPO) == [] and list(world.github.branches(REPO)) == ["main"]


def test_failing_tests_go_back_to_the_model_then_open_a_draft(world: World) -> None:
    serve(world)
    issue = world.github.create_issue(REPO, "Widgets spin backwards", "", user="alice")
    world.model.script(reply(edit("str_replace", "widgets.py", old_str="backwards", new_str="sideways")),
                       end("Sideways is close enough."),
                       end("Still sideways."),  # after the first failed verification
                       end("I cannot make it pass."))  # after the second
    job = world.finished(world.label(issue).json()["job"])
    assert job["status"] == "succeeded", world.logs()
    feedback = [b for b in world.model.bodies if "Honk ran the repository's verifiers" in said(b)]
    assert len(feedback) == 2  # exactly HONK_VERIFY_ROUNDS (2) more rounds
    [pull] = world.github.pulls(REPO)
    assert pull["draft"] is True and "❌ Verifiers failed: `test` (exited 1)" in pull["body"]
    [status] = world.bot_comments(issue)
    assert "(draft)" in status["body"] and "Verifiers failed" in status["body"]


def test_a_change_that_adds_a_secret_is_not_pushed(world: World) -> None:
    serve(world)
    issue = world.github.create_issue(REPO, "Add the deploy token", "", user="alice")
    token = "ghp_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(36))
    world.model.script(reply(edit("create", "deploy.cfg", file_text=f"token = {token}\n")), end("Added the token."))
    job = world.finished(world.label(issue).json()["job"])
    assert job["status"] == "failed" and "will not push" in job["error"]
    [status] = world.bot_comments(issue)
    assert "will not push" in status["body"] and "deploy.cfg" in status["body"] and token not in status["body"]
    assert list(world.github.branches(REPO)) == ["main"] and world.github.pulls(REPO) == []
    assert token not in str(world.job(job["id"])["events"])  # redacted from the audit trail too


def test_github_errors_and_rate_limits_are_retried(world: World) -> None:
    serve(world)
    issue = world.github.create_issue(REPO, "Widgets spin backwards", "", user="alice")
    world.github.failures.update({"create_pull": [502], "create_comment": [403], "get_repo": [502]})
    world.model.script(*FIX)
    job = world.finished(world.label(issue).json()["job"])
    assert job["status"] == "succeeded" and job["attempts"] == 1, world.logs()
    assert len(world.github.calls("create_pull")) == 2 and len(world.github.pulls(REPO)) == 1
    assert len(world.bot_comments(issue)) == 1


def test_a_worker_killed_mid_job_still_yields_exactly_one_pull_request(world: World) -> None:
    web = world.start("web", "--port", world.url.rsplit(":", 1)[1])
    web.wait_http(f"{world.url}/healthz")
    fast = {"HONK_LEASE_SECONDS": "2"}
    first = world.start("worker", **fast)
    issue = world.github.create_issue(REPO, "Widgets spin backwards", "", user="alice")
    world.model.script(reply(bash("sleep 60")), *FIX)  # the first attempt is busy in the sandbox when killed
    job_id = world.label(issue).json()["job"]
    wait_for(lambda: len(world.model.bodies) >= 1, what="the first attempt to reach the model")
    wait_for(lambda: world.job(job_id)["events"][-1]["kind"] == "tool.call", what="the slow command")
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait()

    world.start("worker", **fast)
    job = world.finished(job_id)
    assert job["status"] == "succeeded" and job["attempts"] == 2, world.logs()
    assert "job.reclaimed" in [e["kind"] for e in job["events"]]
    assert len(world.github.pulls(REPO)) == 1 and len(world.bot_comments(issue)) == 1


def test_a_bad_repository_config_is_explained_in_the_status_comment(world: World) -> None:
    serve(world)
    world.github.create_repo("acme/gadgets", {"gadget.py": "x = 1\n", ".github/honk.yml": "budget:\n  max_turns: -3\n"})
    issue = world.github.create_issue("acme/gadgets", "Gadgets", "", user="alice")
    answer = world.github.deliver("issues", world.github.issues_labeled("acme/gadgets", issue, "honk", "alice"))
    job = world.finished(answer.json()["job"])
    assert job["status"] == "failed" and job["attempts"] == 1  # a bad file is not retried
    [status] = [c for c in world.github.comments("acme/gadgets", issue) if c["user"]["login"] == world.github.bot_login]
    assert "`budget.max_turns` must be a positive integer (got -3)" in status["body"]
    assert "could not finish" in status["body"] and "Traceback" not in status["body"]
    assert world.model.bodies == []  # the model was never asked


def test_mentioning_the_apps_own_slug_asks_honk_too(world: World) -> None:
    serve(world)
    issue = world.github.create_issue(REPO, "Widgets spin backwards", "", user="alice")
    world.model.script(*FIX)
    answer = world.github.deliver("issue_comment", world.github.issue_comment_created(
        REPO, issue, f"@{world.github.slug} fix this please", "alice"))
    assert answer.status_code == 202, answer.text
    assert world.finished(answer.json()["job"])["result"]["outcome"] == "pull_request"


@pytest.mark.skipif(shutil.which("curl") is None or shutil.which("socat") is None,
                    reason="curl and socat are needed for the setup-network test (.ci/run installs them)")
def test_setup_reaches_nothing_but_the_allowlist_and_the_status_comment_says_what_was_blocked(world: World) -> None:
    """A writer's honk.yml setup tries Honk's own port (directly and through the proxy), a metadata address
    and an off-list host: none answers, the job goes on, and the status comment names what was blocked."""
    port = world.url.rsplit(":", 1)[1]
    setup = [f"curl -s -m 5 --noproxy '*' http://127.0.0.1:{port}/metrics > direct.txt; echo direct=$? >> setup.log",
             f"curl -s -m 5 -o proxied.txt -w '%{{http_code}}\\n' http://127.0.0.1:{port}/metrics >> setup.log",
             "curl -s -m 5 -o /dev/null -w '%{http_code}\\n' http://169.254.169.254/latest/meta-data/ >> setup.log",
             "curl -s -m 5 -o /dev/null -w '%{http_code}\\n' https://exfiltrate.example.com/ >> setup.log; true"]
    world.github.create_repo("acme/gadgets", {"gadget.py": "x = 1\n", ".github/honk.yml": yaml.safe_dump(
        {"setup": setup, "test": "cat setup.log; ! test -s direct.txt && ! grep -q honk_ proxied.txt"})})
    serve(world)
    world.model.script(reply(edit("create", "NOTE.md", file_text="noted\n")), end("Add a note"))
    issue = world.github.create_issue("acme/gadgets", "Note", "", user="alice")
    answer = world.github.deliver("issues", world.github.issues_labeled("acme/gadgets", issue, "honk", "alice"))
    job = world.finished(answer.json()["job"])
    assert job["status"] == "succeeded", world.logs()
    verification = job["result"]["verification"]
    assert verification["status"] == "passed", verification["output"]
    assert "direct=7" in verification["output"]  # connection refused: the sandbox's loopback is its own
    [setup_event] = [e["data"] for e in job["events"] if e["kind"] == "verify.setup"]
    assert {b.split(":")[0].strip("`") for b in setup_event["blocked"]} == {
        "127.0.0.1", "169.254.169.254", "exfiltrate.example.com"}
    [status] = [c for c in world.github.comments("acme/gadgets", issue) if c["user"]["login"] == world.github.bot_login]
    assert "Setup's network filter blocked" in status["body"] and "exfiltrate.example.com" in status["body"]
    assert "HONK_SETUP_ALLOWED_HOSTS" in status["body"]
