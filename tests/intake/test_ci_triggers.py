"""The trigger rules for CI (CONTRACT.md sections 3 and 6): a failed check suite or workflow run on the head of a
Honk pull request, Re-run on Honk's check run, and `@honk fix ci`.

The payloads follow GitHub's documented shapes (the check suite's and check run's `pull_requests` are the minimal
pull request: number, head and base, no author); the real deliveries in shared/fixtures are checked at the end.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from app.intake.triggers import FOLLOW_UP_DEBOUNCE, MAX_NUMBER, Ignore, TriggerRules, decide
from app.queue.requests import JobKind, JobRequest
from app.untyped import MAX_ID
from tests.intake.test_triggers import comment_payload
from tests.support import FIXTURES, labeled_payload

HONK_APP = 77
RULES = TriggerRules(label="honk", mentions=("@honk",), branch_prefix="honk/", app_id=HONK_APP)
SHA = "9f2c0e1d3b4a59687766554433221100aabbccdd"
OLD_SHA = "1111111111111111111111111111111111111111"
ACTIONS_APP = {"id": 15368, "slug": "github-actions", "name": "GitHub Actions", "node_id": "MDM6QXBwMTUzNjg=",
               "owner": {"login": "github", "id": 9919, "type": "Organization"}}
HONK_APP_JSON = {"id": HONK_APP, "slug": "honk-test", "name": "Honk Test"}


def _envelope(sender: str, sender_type: str) -> dict[str, Any]:
    """repository, sender and installation, as on every App delivery."""
    envelope = labeled_payload(sender=sender, sender_type=sender_type)
    return {key: envelope[key] for key in ("repository", "sender", "installation")}


def minimal_pull(number: int = 12, ref: str = "honk/issue-7-fix", sha: str = SHA,
                 repo_id: int = 99) -> dict[str, Any]:
    """A pull request as check suites, check runs and workflow runs list it."""
    mini = {"id": repo_id, "url": "https://api.github.com/repos/acme/widgets", "name": "widgets"}
    return {"url": f"https://api.github.com/repos/acme/widgets/pulls/{number}", "id": 5000 + number,
            "number": number, "head": {"ref": ref, "sha": sha, "repo": mini},
            "base": {"ref": "main", "sha": OLD_SHA, "repo": mini}}


def suite_payload(conclusion: str | None = "failure", *, pulls: list[dict[str, Any]] | None = None,
                  app: dict[str, Any] | None = None, sender: str = "honk-test[bot]", sender_type: str = "Bot",
                  action: str = "completed") -> dict[str, Any]:
    """`check_suite.completed` for GitHub Actions' suite on Honk's push (sent by Honk's bot, which pushed)."""
    return {"action": action, "check_suite": {
        "id": 118578147, "node_id": "MDEwOkNoZWNrU3VpdGUxMTg1NzgxNDc=", "head_branch": "honk/issue-7-fix",
        "head_sha": SHA, "status": "completed", "conclusion": conclusion,
        "url": "https://api.github.com/repos/acme/widgets/check-suites/118578147", "before": OLD_SHA, "after": SHA,
        "pull_requests": [minimal_pull()] if pulls is None else pulls, "app": dict(ACTIONS_APP) if app is None else app,
        "latest_check_runs_count": 2, "rerequestable": True, "runs_rerequestable": True,
        "check_runs_url": "https://api.github.com/repos/acme/widgets/check-suites/118578147/check-runs",
        "head_commit": {"id": SHA, "message": "Fix widgets", "author": {"name": "Honk"}}},
        **_envelope(sender, sender_type)}


def workflow_payload(conclusion: str | None = "failure", *, pulls: list[dict[str, Any]] | None = None,
                     sender: str = "github-actions[bot]", sender_type: str = "Bot",
                     action: str = "completed") -> dict[str, Any]:
    """`workflow_run.completed`: GitHub Actions' run of the CI workflow on Honk's push."""
    runs = "https://api.github.com/repos/acme/widgets/actions/runs/30433642"
    return {"action": action, "workflow_run": {
        "id": 30433642, "name": "CI", "node_id": "MDEyOldvcmtmbG93IFJ1bjI2OTI4OQ==", "head_branch": "honk/issue-7-fix",
        "head_sha": SHA, "path": ".github/workflows/ci.yml", "display_title": "Fix widgets", "run_number": 562,
        "event": "pull_request", "status": "completed", "conclusion": conclusion, "workflow_id": 159038,
        "check_suite_id": 118578147, "check_suite_node_id": "MDEwOkNoZWNrU3VpdGUxMTg1NzgxNDc=", "url": runs,
        "html_url": "https://github.com/acme/widgets/actions/runs/30433642",
        "pull_requests": [minimal_pull()] if pulls is None else pulls, "run_attempt": 2,
        "actor": {"login": "honk-test[bot]", "type": "Bot"}, "jobs_url": f"{runs}/jobs", "logs_url": f"{runs}/logs",
        "previous_attempt_url": f"{runs}/attempts/1"},
        "workflow": {"id": 159038, "name": "CI", "path": ".github/workflows/ci.yml", "state": "active"},
        **_envelope(sender, sender_type)}


def rerun_payload(*, name: str = "Honk", app: dict[str, Any] | None = None, pulls: list[dict[str, Any]] | None = None,
                  sender: str = "alice", sender_type: str = "User", action: str = "rerequested") -> dict[str, Any]:
    """`check_run.rerequested`: alice pressed Re-run on Honk's check run."""
    return {"action": action, "check_run": {
        "id": 4242, "name": name, "head_sha": OLD_SHA, "status": "completed", "conclusion": "failure",
        "external_id": "", "url": "https://api.github.com/repos/acme/widgets/check-runs/4242",
        "html_url": "https://github.com/acme/widgets/runs/4242", "details_url": "https://honk.example/jobs/3",
        "output": {"title": "1 verifier failed", "summary": "test failed"},
        "check_suite": {"id": 7, "head_sha": OLD_SHA, "head_branch": "honk/issue-7-fix"},
        "app": dict(HONK_APP_JSON) if app is None else app,
        # GitHub matches a check run's pull requests by branch: an older run still names the pull request.
        "pull_requests": [minimal_pull(sha=SHA)] if pulls is None else pulls},
        **_envelope(sender, sender_type)}


def _job(event: str, payload: dict[str, Any], rules: TriggerRules = RULES) -> JobRequest:
    decision = decide(event, payload, rules, "d-ci")
    assert isinstance(decision, JobRequest), decision
    json.dumps(decision.trigger, allow_nan=False).encode()  # storable
    return decision


def _reason(event: str, payload: Any, rules: TriggerRules = RULES) -> str:
    decision = decide(event, payload, rules, "d-ci")
    assert isinstance(decision, Ignore), decision
    assert decision.reason and decision.reason.encode()
    return decision.reason


# check_suite.completed


def test_a_failed_suite_on_the_head_of_a_honk_pull_request_asks_for_a_ci_fix() -> None:
    job = _job("check_suite", suite_payload())
    assert (job.kind, job.repo, job.number, job.installation_id) == (JobKind.FIX_CI, "acme/widgets", 12, 42)
    assert job.subject == "acme/widgets#12"  # serialised with follow-ups on the pull request
    assert job.delay_seconds == FOLLOW_UP_DEBOUNCE  # check_suite and workflow_run for one failure: one run
    assert job.requester == "honk-test[bot]"  # the job decides whom to credit
    facts = job.trigger
    assert {key: facts[key] for key in ("delivery_id", "event", "action", "type", "source")} == {
        "delivery_id": "d-ci", "event": "check_suite", "action": "completed", "type": "ci", "source": "check_suite"}
    assert (facts["head_sha"], facts["head_branch"], facts["conclusion"]) == (SHA, "honk/issue-7-fix", "failure")
    assert facts["check_suite"] == {"id": 118578147,
                                    "url": "https://api.github.com/repos/acme/widgets/check-suites/118578147"}
    assert facts["app"] == {"id": 15368, "slug": "github-actions", "name": "GitHub Actions"}
    assert facts["pull_request"] == {"number": 12, "head": {"ref": "honk/issue-7-fix", "sha": SHA}}
    assert facts["sender"] == {"login": "honk-test[bot]", "id": 3, "type": "Bot"}


@pytest.mark.parametrize("conclusion", ["failure", "timed_out", "startup_failure"])
def test_failure_timeout_and_startup_failure_are_failures(conclusion: str) -> None:
    for event, payload in (("check_suite", suite_payload(conclusion)), ("workflow_run", workflow_payload(conclusion))):
        assert _job(event, payload).trigger["conclusion"] == conclusion


@pytest.mark.parametrize("conclusion", ["success", "neutral", "cancelled", "skipped", "stale", "action_required",
                                        "FAILURE"])
def test_other_conclusions_are_ignored(conclusion: str) -> None:
    assert _reason("check_suite", suite_payload(conclusion)) == f"the check suite concluded {conclusion}"
    assert _reason("workflow_run", workflow_payload(conclusion)) == f"the workflow run concluded {conclusion}"


@pytest.mark.parametrize("conclusion", [None, "", 7, ["failure"]])
def test_a_completion_without_a_conclusion_is_ignored(conclusion: Any) -> None:
    assert _reason("check_suite", suite_payload(conclusion)) == "the check suite completed without a conclusion"
    assert _reason("workflow_run", workflow_payload(conclusion)) == "the workflow run completed without a conclusion"


@pytest.mark.parametrize("action", ["requested", "rerequested", "in_progress", "created", ""])
def test_only_a_completion_asks_for_a_fix(action: str) -> None:
    """check_suite.rerequested included: Honk does not act on it (Re-run on its check run is check_run)."""
    for event, payload in (("check_suite", suite_payload(action=action, sender_type="User")),
                           ("workflow_run", workflow_payload(action=action, sender_type="User"))):
        reason = _reason(event, payload)
        assert reason.startswith(f"Honk does not act on {event}.") and "failed completion" in reason


@pytest.mark.parametrize("pulls", [
    [],  # a fork's branch, or no pull request open on it
    [minimal_pull(ref="feature/widgets")],  # someone else's pull request
    [minimal_pull(sha=OLD_SHA)],  # pushed again since: the suite ran on a commit that is no longer the head
    [minimal_pull(repo_id=12345)],  # a pull request into another repository
    [{"number": 12}, "x", None, 7],  # thin or odd entries
], ids=["none", "not-honks", "not-the-head", "other-repo", "odd"])
def test_a_suite_not_on_the_head_of_a_honk_pull_request_is_ignored(pulls: list[Any]) -> None:
    assert _reason("check_suite", suite_payload(pulls=pulls)) == (
        "the check suite on 'honk/issue-7-fix' is not on the head of a Honk pull request")
    assert _reason("workflow_run", workflow_payload(pulls=pulls)) == (
        "the workflow run on 'honk/issue-7-fix' is not on the head of a Honk pull request")


def test_pull_requests_that_are_not_a_list_are_none() -> None:
    for value in (None, {"0": minimal_pull()}, "honk/issue-7"):
        payload = suite_payload()
        payload["check_suite"]["pull_requests"] = value
        assert "is not on the head of a Honk pull request" in _reason("check_suite", payload)


def test_the_honk_pull_request_is_picked_among_others() -> None:
    pulls = [minimal_pull(3, ref="feature/x"), minimal_pull(9, sha=OLD_SHA), minimal_pull(12), minimal_pull(14)]
    assert _job("check_suite", suite_payload(pulls=pulls)).number == 12


def test_without_a_head_sha_any_honk_pull_request_on_the_branch_is_taken() -> None:
    payload = suite_payload(pulls=[minimal_pull(sha=OLD_SHA)])
    del payload["check_suite"]["head_sha"]
    job = _job("check_suite", payload)
    assert job.number == 12 and job.trigger["head_sha"] is None


def test_the_branch_prefix_is_the_rules_own() -> None:
    payload = suite_payload(pulls=[minimal_pull(ref="bots/honk-7")])
    assert isinstance(decide("check_suite", payload, RULES), Ignore)
    assert _job("check_suite", payload, TriggerRules(branch_prefix="bots/", app_id=HONK_APP)).number == 12


def test_honks_own_check_suite_never_asks_for_a_ci_fix() -> None:
    """Honk's check run failing (its verifiers did) makes Honk's own suite fail: that is not CI to fix."""
    payload = suite_payload(app=dict(HONK_APP_JSON))
    assert _reason("check_suite", payload) == "the check suite is Honk's own"
    # Without its App id the route cannot tell; the job checks the suite's app.
    assert _job("check_suite", payload, TriggerRules(app_id=None)).trigger["app"]["id"] == HONK_APP


# workflow_run.completed


def test_a_failed_workflow_run_on_the_head_of_a_honk_pull_request_asks_for_a_ci_fix() -> None:
    job = _job("workflow_run", workflow_payload())
    assert (job.kind, job.number, job.subject, job.delay_seconds) == (
        JobKind.FIX_CI, 12, "acme/widgets#12", FOLLOW_UP_DEBOUNCE)
    assert job.requester == "github-actions[bot]"
    facts = job.trigger
    assert (facts["type"], facts["source"], facts["event"]) == ("ci", "workflow_run", "workflow_run")
    assert (facts["head_sha"], facts["head_branch"], facts["conclusion"]) == (SHA, "honk/issue-7-fix", "failure")
    assert facts["workflow_run"] == {"id": 30433642, "name": "CI",
                                     "html_url": "https://github.com/acme/widgets/actions/runs/30433642",
                                     "run_attempt": 2, "check_suite_id": 118578147}
    assert facts["pull_request"] == {"number": 12, "head": {"ref": "honk/issue-7-fix", "sha": SHA}}
    assert "check_suite" not in facts and "app" not in facts


def test_a_check_suite_and_a_workflow_run_for_one_failure_share_a_subject() -> None:
    """So they serialise, and the queue folds the second into the first; the job dedupes by head sha."""
    suite, run = _job("check_suite", suite_payload()), _job("workflow_run", workflow_payload())
    assert (suite.kind, suite.subject) == (run.kind, run.subject)
    assert suite.trigger["head_sha"] == run.trigger["head_sha"]
    assert suite.trigger["check_suite"]["id"] == run.trigger["workflow_run"]["check_suite_id"]


# Senders


@pytest.mark.parametrize(("sender", "sender_type"), [("honk-test[bot]", "Bot"), ("github-actions[bot]", "Bot"),
                                                      ("alice", "User"), ("dependabot[bot]", "bot")])
def test_ci_completions_are_taken_from_any_sender(sender: str, sender_type: str) -> None:
    for event, payload in (("check_suite", suite_payload(sender=sender, sender_type=sender_type)),
                           ("workflow_run", workflow_payload(sender=sender, sender_type=sender_type))):
        job = _job(event, payload)
        assert job.requester == sender and job.trigger["sender"]["type"] == sender_type


def test_the_bot_exception_is_only_for_ci_completions() -> None:
    bot = "someone[bot]"
    for event, payload in (("check_suite", suite_payload(action="rerequested", sender=bot, sender_type="Bot")),
                           ("workflow_run", workflow_payload(action="requested", sender=bot, sender_type="Bot")),
                           ("check_run", rerun_payload(sender=bot, sender_type="Bot")),
                           ("issue_comment", comment_payload("@honk fix ci", on_pr=True, sender_type="Bot")),
                           ("issues", labeled_payload(sender_type="Bot"))):
        assert "is a bot" in _reason(event, payload), event


def test_a_ci_completion_without_a_sender_login_credits_the_pull_requests_author_when_given() -> None:
    payload = suite_payload(pulls=[minimal_pull() | {"user": {"login": "honk-test[bot]", "id": 9, "type": "Bot"}}])
    del payload["sender"]["login"]
    job = _job("check_suite", payload)
    assert job.requester == "honk-test[bot]"
    assert job.trigger["pull_request"]["user"] == {"login": "honk-test[bot]", "id": 9, "type": "Bot"}
    del payload["check_suite"]["pull_requests"][0]["user"]
    assert _reason("check_suite", payload) == "the delivery names no sender"


@pytest.mark.parametrize("event", ["check_suite", "workflow_run"])
def test_a_ci_completion_still_needs_a_repository_and_an_installation(event: str) -> None:
    make = suite_payload if event == "check_suite" else workflow_payload
    payload = make()
    del payload["installation"]
    assert "names no installation" in _reason(event, payload)
    payload = make()
    payload["repository"]["full_name"] = "acme"
    assert _reason(event, payload) == "the delivery names no repository"


# Malformed: a number GitHub never sends is named, never passed on


@pytest.mark.parametrize("value", [True, 0, -1, 7.0, "12", MAX_ID + 1, [1]])
@pytest.mark.parametrize(("event", "field"), [
    ("check_suite", "check_suite.id"), ("check_suite", "check_suite.app.id"),
    ("check_suite", "check_suite.pull_requests[0].number"), ("workflow_run", "workflow_run.id"),
    ("workflow_run", "workflow_run.run_attempt"), ("workflow_run", "workflow_run.check_suite_id"),
    ("workflow_run", "workflow_run.pull_requests[0].number"), ("check_run", "check_run.id"),
    ("check_run", "check_run.app.id"), ("check_run", "check_run.pull_requests[0].number"),
])
def test_a_malformed_id_is_ignored_naming_the_field(event: str, field: str, value: Any) -> None:
    builders: dict[str, Callable[[], dict[str, Any]]] = {
        "check_suite": suite_payload, "workflow_run": workflow_payload, "check_run": rerun_payload}
    payload = builders[event]()
    node: Any = payload
    path = field.replace("[0]", ".0").split(".")
    for key in path[:-1]:
        node = node[int(key)] if key.isdigit() else node[key]
    node[path[-1]] = value
    assert _reason(event, payload).startswith(f"malformed delivery: {field} is "), field


def test_a_pull_request_number_past_the_column_is_malformed() -> None:
    payload = workflow_payload(pulls=[minimal_pull(MAX_NUMBER + 1)])
    assert str(MAX_NUMBER) in _reason("workflow_run", payload)
    assert _job("workflow_run", workflow_payload(pulls=[minimal_pull(MAX_NUMBER)])).number == MAX_NUMBER


def test_a_malformed_number_on_someone_elses_pull_request_is_not_read() -> None:
    other = minimal_pull(ref="feature/x") | {"number": "seven"}
    assert _job("check_suite", suite_payload(pulls=[other, minimal_pull()])).number == 12


def test_null_ids_are_thin_not_malformed() -> None:
    payload = workflow_payload()
    payload["workflow_run"].update(run_attempt=None, check_suite_id=None)
    del payload["workflow_run"]["html_url"]
    facts = _job("workflow_run", payload).trigger["workflow_run"]
    assert facts == {"id": 30433642, "name": "CI", "run_attempt": None, "check_suite_id": None}


def test_ci_text_is_kept_storable() -> None:
    payload = suite_payload()
    payload["check_suite"]["head_branch"] = "honk/\ud800\x00"
    payload["check_suite"]["app"]["name"] = {"an": "object"}
    payload["check_suite"]["pull_requests"][0]["head"]["ref"] = "honk/issue-7\x00"
    job = _job("check_suite", payload)
    assert job.trigger["head_branch"] == "honk/\ufffd\ufffd"
    assert "name" not in job.trigger["app"]
    assert job.trigger["pull_request"]["head"]["ref"] == "honk/issue-7\ufffd"


@pytest.mark.parametrize("payload", [{}, {"action": "completed"}, {"action": "completed", "check_suite": "x"},
                                     {"action": "completed", "check_suite": {"conclusion": "failure"}},
                                     {"action": "completed", "workflow_run": [], "check_run": 5},
                                     {"action": "rerequested", "check_run": {"name": "Honk", "app": "x"}}])
def test_odd_json_never_raises(payload: dict[str, Any]) -> None:
    for event in ("check_suite", "workflow_run", "check_run"):
        _reason(event, payload)
        _reason(event, payload, TriggerRules(app_id=None))


# check_run.rerequested


def test_rerun_on_honks_check_run_asks_for_a_recheck() -> None:
    job = _job("check_run", rerun_payload())
    assert (job.kind, job.number, job.requester, job.subject) == (JobKind.RECHECK, 12, "alice", "acme/widgets#12")
    assert job.delay_seconds == 0
    facts = job.trigger
    assert (facts["type"], facts["event"], facts["action"]) == ("recheck", "check_run", "rerequested")
    assert facts["head_sha"] == OLD_SHA  # the run's commit; the job verifies the current head
    assert facts["check_run"] == {"id": 4242, "name": "Honk", "html_url": "https://github.com/acme/widgets/runs/4242"}
    assert facts["pull_request"] == {"number": 12, "head": {"ref": "honk/issue-7-fix", "sha": SHA}}


def test_rerun_on_another_apps_check_run_is_ignored() -> None:
    for app in (dict(ACTIONS_APP, name="Honk"), {"slug": "honk-test"}, {}):
        assert _reason("check_run", rerun_payload(app=app)) == "the check run 'Honk' is another app's, not Honk's"


def test_rerun_on_honks_app_but_another_check_run_name_is_ignored() -> None:
    for name in ("honk", "Honk / verify", "", None):
        assert "is not Honk's check run ('Honk')" in _reason("check_run", rerun_payload(name=name))  # type: ignore[arg-type]


def test_without_an_app_id_honks_check_run_is_known_by_its_name() -> None:
    rules = TriggerRules(app_id=None)
    assert _job("check_run", rerun_payload(app=dict(ACTIONS_APP)), rules).kind is JobKind.RECHECK
    assert "is not Honk's check run" in _reason("check_run", rerun_payload(name="lint"), rules)


@pytest.mark.parametrize("pulls", [[], [minimal_pull(ref="feature/x")], [minimal_pull(repo_id=5)]])
def test_rerun_not_on_a_honk_pull_request_is_ignored(pulls: list[dict[str, Any]]) -> None:
    assert _reason("check_run", rerun_payload(pulls=pulls)) == "Honk's check run is not on a Honk pull request"


@pytest.mark.parametrize("action", ["created", "completed", "requested_action", ""])
def test_other_check_run_actions_are_ignored(action: str) -> None:
    reason = _reason("check_run", rerun_payload(action=action))
    assert reason.startswith(f"check_run.{action or '?'} does not ask Honk to work")


def test_rerun_is_a_persons_request_so_the_bot_rule_applies() -> None:
    assert "is a bot" in _reason("check_run", rerun_payload(sender="honk-test[bot]", sender_type="Bot"))


# @honk fix ci


@pytest.mark.parametrize("body", ["@honk fix ci", "@honk fix CI.", "@Honk Fix Ci!", "  @honk   fix\tci  ",
                                  "@honk fix ci\n\n> @honk fix the tests", "@honk fix ci\n```\nlog\n```"])
def test_fix_ci_on_a_pull_request_asks_for_a_ci_fix(body: str) -> None:
    job = _job("issue_comment", comment_payload(body, on_pr=True))
    assert (job.kind, job.number, job.subject, job.requester) == (JobKind.FIX_CI, 7, "acme/widgets#7", "alice")
    assert job.delay_seconds == FOLLOW_UP_DEBOUNCE
    facts = job.trigger
    assert facts["type"] == "fix_ci_command" and facts["comment"]["body"] == body and facts["comment"]["id"] == 555
    assert facts["issue"]["number"] == 7 and facts["issue"]["is_pull_request"] is True
    assert "command" not in facts


def test_fix_ci_on_an_issue_is_ignored() -> None:
    assert _reason("issue_comment", comment_payload("@honk fix ci")) == "`fix ci` works on pull requests"


@pytest.mark.parametrize(("body", "kind"), [
    ("@honk please fix ci and also X", JobKind.FOLLOW_UP),
    ("@honk fix ci and the docs", JobKind.FOLLOW_UP),
    ("can you fix ci, @honk?", JobKind.FOLLOW_UP),
    ("@honk fix", JobKind.FOLLOW_UP),
    ("@honk fixci", JobKind.FOLLOW_UP),
    ("@honk stop", JobKind.CONTROL),
    ("@honk retry.", JobKind.CONTROL),
])
def test_fix_ci_is_the_whole_comment_or_not_the_command(body: str, kind: JobKind) -> None:
    job = _job("issue_comment", comment_payload(body, on_pr=True))
    assert job.kind is kind, body
    assert job.trigger["type"] == {JobKind.FOLLOW_UP: "pr_comment", JobKind.CONTROL: "command"}[kind]


def test_fix_ci_in_quotes_or_code_is_not_a_command() -> None:
    for body in ("> @honk fix ci", "`@honk fix ci`", "```\n@honk fix ci\n```"):
        assert _reason("issue_comment", comment_payload(body, on_pr=True)).startswith("the comment does not mention")


def test_control_commands_are_unchanged() -> None:
    assert RULES.command_in("@honk stop") == "stop" and RULES.command_in("@honk cancel.") == "stop"
    assert RULES.command_in("@honk retry!") == "retry" and RULES.command_in("@honk fix CI.") == "fix_ci"
    assert RULES.command_in("@honk stop now") is None and RULES.command_in("@honk  stop ") == "stop"
    job = _job("issue_comment", comment_payload("@honk stop", on_pr=True))
    assert job.subject == "control:acme/widgets#7" and job.trigger["command"] == "stop"


def test_fix_ci_by_a_bot_or_honk_itself_is_ignored() -> None:
    payload = comment_payload("@honk fix ci", on_pr=True)
    payload["comment"]["performed_via_github_app"] = {"id": HONK_APP}
    assert _reason("issue_comment", payload) == "the delivery was caused by Honk itself"


# The real deliveries


def _fixture(name: str) -> dict[str, Any]:
    path = FIXTURES / name
    if not path.is_file():
        pytest.skip(f"no webhook fixture {path}")
    payload: dict[str, Any] = json.loads(path.read_bytes())
    return payload


def test_the_real_completed_suite_is_a_success_and_ignored() -> None:
    payload = _fixture("check_suite.completed.1.json")  # GitHub's example: success on branch `changes`
    assert _reason("check_suite", payload) == "the check suite concluded success"
    assert _reason("check_suite", payload, TriggerRules(app_id=29310)) == "the check suite is Honk's own"
    payload["check_suite"]["conclusion"] = "failure"
    assert _reason("check_suite", payload) == (
        "the check suite on 'changes' is not on the head of a Honk pull request")
    # On Honk's branch it would be a CI fix, but the example is a repository webhook's: it has no installation.
    payload["check_suite"]["pull_requests"][0]["head"]["ref"] = "honk/issue-2"
    assert "names no installation" in _reason("check_suite", payload)
    payload["installation"] = {"id": 1}
    job = _job("check_suite", payload, TriggerRules(branch_prefix="honk/"))
    assert (job.kind, job.number, job.repo, job.requester) == (JobKind.FIX_CI, 2, "Codertocat/Hello-World",
                                                               "Codertocat")
    assert job.trigger["app"] == {"id": 29310, "name": "octocoders-linter"}  # the example's app has no slug


def test_the_real_rerequested_suite_is_ignored() -> None:
    payload = _fixture("check_suite.rerequested.1.json")  # sent by the linter's own bot
    assert "is a bot" in _reason("check_suite", payload)
    payload["sender"]["type"] = "User"
    assert _reason("check_suite", payload).startswith("Honk does not act on check_suite.rerequested")


@pytest.mark.parametrize(("name", "app_id", "check"), [
    ("check_run.rerequested.1.json", 2, "randscape"), ("check_run.rerequested.2.json", 1, "DCO")])
def test_the_real_rerequested_check_runs(name: str, app_id: int, check: str) -> None:
    payload = _fixture(name)
    assert _reason("check_run", payload) == f"the check run {check!r} is another app's, not Honk's"
    assert _reason("check_run", payload, TriggerRules(app_id=None)) == (
        f"the check run {check!r} is not Honk's check run ('Honk')")
    # Had the App been Honk: its name is not Honk's check run's.
    assert "is not Honk's check run" in _reason("check_run", payload, TriggerRules(app_id=app_id))
    payload["check_run"]["name"] = "Honk"
    decision = decide("check_run", payload, TriggerRules(app_id=app_id))
    if name.endswith(".1.json"):  # GitHub's example lists no pull request
        assert decision == Ignore("Honk's check run is not on a Honk pull request")
    else:  # a captured DCO delivery on pull request #113, branch `dco-test`
        assert decision == Ignore("Honk's check run is not on a Honk pull request")
        job = _job("check_run", payload, TriggerRules(app_id=app_id, branch_prefix="dco-"))
        assert (job.kind, job.number, job.requester, job.installation_id) == (JobKind.RECHECK, 113, "bkeepers",
                                                                              13055)


@pytest.mark.parametrize("name", ["check_run.completed.1.json", "check_run.completed.2.json",
                                  "check_run.created.1.json", "check_run.requested_action.1.json",
                                  "check_suite.requested.1.json"])
def test_the_other_real_check_deliveries_are_ignored(name: str) -> None:
    event = name.split(".")[0]
    for rules in (RULES, TriggerRules(app_id=None)):
        assert "does not" in _reason(event, _fixture(name), rules)
