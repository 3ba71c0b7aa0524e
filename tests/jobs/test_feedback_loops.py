"""The feedback loops, end to end (issue #12): the `verify` tool while the model works, the judge, the `Honk` check
run, and red CI coming back as a fix. A real `honk serve`, the local GitHub with its Checks API and Actions logs,
the scripted model, real git and bubblewrap."""

from __future__ import annotations

import shutil
from typing import Any

import pytest
import yaml

from tests.e2e import FIX, REPO, World, said, serve
from tests.fakes.messages_api import edit, end, last_tool_result, reply, text, verdict, verify
from tests.support import wait_for

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")

BRANCH = "honk/issue-1-widgets-spin-backwards"
# A lint as real tools print it: file:line: message, and a failing exit.
LINT = r"! grep -Hn 'print(' *.py | sed -E 's/^([^:]+:[0-9]+):.*/\1: error: no print calls (T201)/' | grep ."
TESTS = "grep -q forwards widgets.py"
LOUD_FIX = (reply(edit("str_replace", "widgets.py", old_str="    return 'backwards'",
                       new_str="    print('spinning')\n    return 'forwards'")),
            reply(verify()),
            reply(edit("str_replace", "widgets.py", old_str="    print('spinning')\n", new_str="")),
            reply(verify(["lint"])),
            end("Make widgets spin forwards\n\nspin() now returns 'forwards'; lint and tests pass."))


def _configure(world: World, honk_yml: dict[str, Any]) -> None:
    world.github.commit_files(REPO, "main", {".github/honk.yml": yaml.safe_dump(honk_yml)}, "Configure Honk")


def _open_pull(world: World) -> tuple[dict[str, Any], dict[str, Any]]:
    """Label an issue and wait for Honk's pull request; the job and the pull request."""
    issue = world.github.create_issue(REPO, "Widgets spin backwards", "They should spin forwards.", user="alice")
    world.model.script(*FIX)
    job = world.finished(world.label(issue).json()["job"])
    assert job["status"] == "succeeded" and job["result"]["outcome"] == "pull_request", world.logs()
    [pull] = world.github.pulls(REPO)
    return job, pull


def _honk_check(world: World, sha: str) -> list[dict[str, Any]]:
    return [c for c in world.github.check_runs(REPO, sha) if c["name"] == "Honk"]


def _red_ci(world: World, sha: str, log: str) -> tuple[int, int]:
    """GitHub Actions fails on `sha`: the workflow run's and its check suite's ids."""
    run_id = world.github.add_workflow_run(REPO, sha, "failure", jobs={"lint": log, "build": ("success", "ok")})
    [suite] = {c["check_suite"]["id"] for c in world.github.check_runs(REPO, sha) if c["name"] == "lint"}
    return run_id, suite


def _jobs(world: World, answers: list[Any]) -> list[dict[str, Any]]:
    return [world.finished(a.json()["job"]) for a in answers if a.json().get("job")]


def test_a_lint_failure_is_found_by_verify_and_fixed_before_the_pull_request(world: World) -> None:
    _configure(world, {"verify": {"lint": LINT, "test": TESTS}})
    serve(world)
    issue = world.github.create_issue(REPO, "Widgets spin backwards", "", user="alice")
    world.model.script(*LOUD_FIX)
    job = world.finished(world.label(issue).json()["job"])
    assert job["status"] == "succeeded", world.logs()

    agent = [b for b in world.model.bodies if b not in world.model.judge_bodies]
    assert [t["name"] for t in agent[0]["tools"]] == ["str_replace_based_edit_tool", "bash", "verify"]
    assert "call verify before you say you are done" in str(agent[0]["system"])
    # The first verify located the lint failure, in a few lines; the second, after the fix, is one line.
    first, second = last_tool_result(agent[2]), last_tool_result(agent[4])
    assert "✗ lint" in first and "widgets.py:2" in first and "T201" in first and "✓ test" in first
    assert len(first) <= 4000
    assert second.startswith("1 verifier passed: lint")

    [pull] = world.github.pulls(REPO)
    assert pull["draft"] is False and "✅ Verifiers passed: `lint`" in pull["body"] and "`test`" in pull["body"]
    assert "print(" not in world.github.file_at(REPO, BRANCH, "widgets.py")
    [check] = _honk_check(world, world.github.log(REPO, BRANCH)[0]["sha"])
    assert check["conclusion"] == "success" and "- ✓ `lint`" in check["output"]["summary"]


def test_failing_verifiers_after_the_run_go_back_then_draft_with_the_failures(world: World) -> None:
    _configure(world, {"verify": {"lint": LINT, "test": TESTS}})
    serve(world, HONK_VERIFY_ROUNDS="1")
    issue = world.github.create_issue(REPO, "Widgets spin backwards", "", user="alice")
    world.model.script(reply(edit("str_replace", "widgets.py", old_str="    return 'backwards'",
                                  new_str="    print('x')\n    return 'forwards'")),
                       end("Done."), end("I like the print."))
    job = world.finished(world.label(issue).json()["job"])
    assert job["status"] == "succeeded", world.logs()
    handed_back = [b for b in world.model.bodies if "Honk ran the repository's verifiers" in said(b)]
    assert len(handed_back) == 1 and "widgets.py:2: no print calls (T201)" in said(handed_back[0])  # one round
    [pull] = world.github.pulls(REPO)
    assert pull["draft"] is True and "❌ Verifiers failed: `lint` (exited 1). Passed: `test`." in pull["body"]
    assert "T201" in pull["body"]
    [check] = _honk_check(world, world.github.log(REPO, BRANCH)[0]["sha"])
    assert check["conclusion"] == "failure" and "widgets.py:2" in check["output"]["text"]


def test_a_veto_goes_back_once_and_a_second_veto_drafts_the_pull_request(world: World) -> None:
    serve(world)
    issue = world.github.create_issue(REPO, "Widgets spin backwards", "", user="alice")
    world.model.script(*FIX, reply(edit("create", "NOTES.md", file_text="kept\n")), end("Kept my notes."))
    world.model.script_judge(verdict("veto", "It also rewrites README.md, which the issue did not ask for."),
                             verdict("veto", "NOTES.md is unrelated to spinning widgets."))
    job = world.finished(world.label(issue).json()["job"])
    assert job["status"] == "succeeded", world.logs()

    judged = world.model.judge_bodies
    assert len(judged) == 2
    assert all(not any(b.get("type") == "tool_use" for m in j["messages"] for b in m["content"]
                       if isinstance(b, dict)) for j in judged)  # never the agent's transcript
    back = [b for b in world.model.bodies if "vetoed it" in said(b)]
    assert len(back) == 1 and "which the issue did not ask for" in said(back[0])
    [pull] = world.github.pulls(REPO)
    assert pull["draft"] is True
    assert "⚖️ The judge vetoed the change." in pull["body"] and "> NOTES.md is unrelated" in pull["body"]
    [check] = _honk_check(world, world.github.log(REPO, BRANCH)[0]["sha"])
    assert check["conclusion"] == "failure"
    verdicts = [e for e in world.job(job["id"])["events"] if e["kind"] == "judge.verdict"]
    assert [v["data"]["decision"] for v in verdicts] == ["veto", "veto"] and verdicts[0]["data"]["cost_usd"] > 0


def test_a_judge_that_cannot_decide_is_said_and_does_not_block(world: World) -> None:
    serve(world)
    issue = world.github.create_issue(REPO, "Widgets spin backwards", "", user="alice")
    world.model.script(*FIX)
    world.model.script_judge(reply(text("Looks fine to me.")), reply(text("Really, it is fine.")))
    job = world.finished(world.label(issue).json()["job"])
    assert job["status"] == "succeeded", world.logs()
    [pull] = world.github.pulls(REPO)
    assert pull["draft"] is False and "The judge could not decide" in pull["body"]
    [check] = _honk_check(world, world.github.log(REPO, BRANCH)[0]["sha"])
    assert check["conclusion"] == "neutral"


def test_the_judge_off_is_not_asked(world: World) -> None:
    serve(world, HONK_JUDGE="off")
    _open_pull(world)
    assert world.model.judge_bodies == []
    [pull] = world.github.pulls(REPO)
    assert "The judge" not in pull["body"]


def test_red_ci_on_honks_head_gets_exactly_one_fix_commit(world: World) -> None:
    serve(world)
    _, pull = _open_pull(world)
    head = world.github.log(REPO, BRANCH)[0]["sha"]
    log = ("2026-12-02T10:00:00.0Z ##[group]Run ruff check .\n2026-12-02T10:00:01.0Z widgets.py:2:5: F821 "
           "Undefined name `spinner`\n2026-12-02T10:00:01.0Z Found 1 error.\n"
           "2026-12-02T10:00:01.0Z ##[error]Process completed with exit code 1.\n")
    run_id, suite = _red_ci(world, head, log)
    world.model.script(reply(edit("str_replace", "widgets.py", old_str="'forwards'", new_str="'forwards'  # fixed")),
                       end("Fix the lint failure\n\nThe check `lint` failed on an undefined name; fixed."))
    github = world.github
    answers = [github.deliver("workflow_run", github.workflow_run_completed(REPO, run_id)),
               github.deliver("check_suite", github.check_suite_completed(REPO, suite))]
    answers.append(github.redeliver(github.deliveries[-1].id))
    assert [a.status_code for a in answers] == [202, 202, 200] and answers[2].json() == {"status": "duplicate"}
    jobs = _jobs(world, answers)
    assert sorted(j["result"]["outcome"] for j in jobs) == ["pushed", "skipped"], world.logs()

    commits = github.log(REPO, BRANCH)
    assert commits[1]["sha"] == head and "Honk-Fix: ci" in commits[0]["message"]
    fixing = next(b for b in world.model.bodies if "CI checks of pull request" in said(b, 0))
    task = said(fixing, 0)
    assert "widgets.py:2:5: F821" in task and "untrusted-data" in task  # the log, cut, as data
    assert "build" not in task.split("untrusted-data")[1] or "check `build`" not in task  # only failing checks
    assert [r for r in github.requests if r.path.endswith(f"/actions/runs/{run_id}/jobs")]
    fixed = [c for c in world.bot_comments(pull["number"]) if "to fix CI (lint)" in c["body"]]
    assert len(fixed) == 1
    [check] = _honk_check(world, commits[0]["sha"])
    assert check["conclusion"] == "success"


def test_red_ci_on_a_human_head_gets_nothing(world: World) -> None:
    serve(world)
    _, pull = _open_pull(world)
    comments = len(world.github.comments(REPO, pull["number"]))
    human = world.github.commit_files(REPO, BRANCH, {"widgets.py": "def spin():\n    return 'up'\n"}, "Mine")
    run_id, _ = _red_ci(world, human, "widgets.py:2: error: nope\n")
    job = world.finished(world.github.deliver("workflow_run", world.github.workflow_run_completed(REPO, run_id))
                         .json()["job"])
    assert job["result"]["outcome"] == "skipped" and "pushed by a person" in job["result"]["reason"]
    assert world.github.log(REPO, BRANCH)[0]["sha"] == human
    assert len(world.github.comments(REPO, pull["number"])) == comments  # not a word


def test_honks_own_failing_check_suite_starts_nothing(world: World) -> None:
    serve(world)
    _open_pull(world)
    head = world.github.log(REPO, BRANCH)[0]["sha"]
    [check] = _honk_check(world, head)
    payload = world.github.check_suite_completed(REPO, check["check_suite"]["id"])
    payload["check_suite"]["conclusion"] = "failure"
    answer = world.github.deliver("check_suite", payload)
    assert answer.status_code == 200 and "Honk's own" in answer.json()["reason"]


def test_rerequesting_the_check_verifies_the_head_again(world: World) -> None:
    serve(world)
    _open_pull(world)
    head = world.github.log(REPO, BRANCH)[0]["sha"]
    [first] = _honk_check(world, head)
    answer = world.github.deliver("check_run", world.github.check_run_rerequested(REPO, first["id"]))
    assert answer.status_code == 202, answer.text
    job = world.finished(answer.json()["job"])
    assert job["result"]["outcome"] == "verified", world.logs()
    checks = _honk_check(world, head)
    assert len(checks) == 2 and checks[1]["conclusion"] == "success"
    assert "Verified again on" in checks[1]["output"]["summary"] and "`grep -q forwards widgets.py`" in \
        checks[1]["output"]["summary"]


def test_ci_fixes_stop_at_the_bound_and_fix_ci_asks_for_one_more(world: World) -> None:
    serve(world, HONK_CI_FIX_ROUNDS="1")
    _, pull = _open_pull(world)
    github, number = world.github, pull["number"]
    world.model.script(reply(edit("create", "one.txt", file_text="1\n")), end("First fix"))
    run_id, _ = _red_ci(world, github.log(REPO, BRANCH)[0]["sha"], "error: one\n")
    first = world.finished(github.deliver("workflow_run", github.workflow_run_completed(REPO, run_id)).json()["job"])
    assert first["result"]["outcome"] == "pushed", world.logs()

    fixed_head = github.log(REPO, BRANCH)[0]["sha"]
    run_id, _ = _red_ci(world, fixed_head, "error: two\n")
    second = world.finished(github.deliver("workflow_run", github.workflow_run_completed(REPO, run_id)).json()["job"])
    assert second["result"]["outcome"] == "ci_fix_limit"
    assert github.log(REPO, BRANCH)[0]["sha"] == fixed_head
    [stopped] = [c for c in world.bot_comments(number) if "I stopped fixing it" in c["body"]]
    assert "`@honk fix ci`" in stopped["body"]

    world.model.script(reply(edit("create", "two.txt", file_text="2\n")), end("Second fix"))
    asked = github.deliver("issue_comment", github.issue_comment_created(REPO, number, "@honk fix ci", "alice"))
    third = world.finished(asked.json()["job"])
    assert third["result"]["outcome"] == "pushed", world.logs()
    assert github.file_at(REPO, BRANCH, "two.txt") == "2\n"
    wait_for(lambda: [r for r in github.reactions(REPO, comment_id=third["trigger"]["comment"]["id"])
                      if r["content"] == "eyes"], timeout=5, what="👀 on the fix ci command")
