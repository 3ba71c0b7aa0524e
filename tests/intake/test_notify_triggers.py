"""News for Slack threads (CONTRACT.md section 8, issue #15): which deliveries `notify_of` turns into a NOTIFY
request, as a pure function beside `decide`.

The payloads follow GitHub's documented shapes (a deployment's is octokit's `deployment_status` example, with an
`environment_url`); the real deliveries in shared/fixtures are checked at the end.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from app.intake.triggers import MAX_REVIEW_BODY, TriggerRules, decide, notify_of
from app.queue.requests import JobKind, JobRequest
from app.settings import Settings
from tests.intake.test_ci_triggers import HONK_APP, HONK_APP_JSON, OLD_SHA, SHA, minimal_pull, suite_payload
from tests.support import FIXTURES, labeled_payload

RULES = TriggerRules(label="honk", mentions=("@honk",), branch_prefix="honk/", app_id=HONK_APP, notify=True)
OFF = TriggerRules(label="honk", mentions=("@honk",), branch_prefix="honk/", app_id=HONK_APP)
PREVIEW = "https://widgets-git-honk-issue-7-fix-acme.vercel.app"


def _envelope(sender: str = "alice", sender_type: str = "User") -> dict[str, Any]:
    envelope = labeled_payload(sender=sender, sender_type=sender_type)
    return {key: envelope[key] for key in ("repository", "sender", "installation")}


def pull_object(number: int = 12, ref: str = "honk/issue-7-fix", *, state: str = "open",
                merged: bool = False, merged_by: str | None = None) -> dict[str, Any]:
    """A pull request as `pull_request` and `pull_request_review` deliveries carry it (trimmed to what matters)."""
    closed_at = "2026-03-02T10:00:00Z" if state == "closed" else None
    return {"url": f"https://api.github.com/repos/acme/widgets/pulls/{number}", "id": 5000 + number,
            "number": number, "state": state, "title": "Make widgets spin forwards", "body": "Fixes #7",
            "html_url": f"https://github.com/acme/widgets/pull/{number}", "user": {"login": "honk-test[bot]",
                                                                                 "type": "Bot"},
            "head": {"ref": ref, "sha": SHA, "repo": {"id": 99, "full_name": "acme/widgets"}},
            "base": {"ref": "main", "sha": OLD_SHA, "repo": {"id": 99, "full_name": "acme/widgets"}},
            "closed_at": closed_at, "merged_at": closed_at if merged else None, "merged": merged,
            "merged_by": {"login": merged_by, "id": 8, "type": "User"} if merged_by else None}


def closed_payload(*, merged: bool = True, ref: str = "honk/issue-7-fix", sender: str = "carol",
                   sender_type: str = "User") -> dict[str, Any]:
    return {"action": "closed", "number": 12,
            "pull_request": pull_object(ref=ref, state="closed", merged=merged, merged_by=sender if merged else None),
            **_envelope(sender, sender_type)}


def review_payload(state: str = "changes_requested", body: str = "Please keep the old name.",
                   *, ref: str = "honk/issue-7-fix", reviewer: str = "bob", action: str = "submitted"
                   ) -> dict[str, Any]:
    return {"action": action, "review": {
        "id": 80, "node_id": "MDE3OlB1bGxSZXF1ZXN0UmV2aWV3ODA=", "user": {"login": reviewer, "id": 4, "type": "User"},
        "body": body, "commit_id": SHA, "submitted_at": "2026-03-02T09:00:00Z", "state": state,
        "html_url": "https://github.com/acme/widgets/pull/12#pullrequestreview-80"},
        "pull_request": pull_object(ref=ref), **_envelope(reviewer)}


def deployment_payload(*, state: str = "success", url: Any = PREVIEW, sha: Any = SHA, ref: Any = "honk/issue-7-fix",
                       action: str = "created", creator: str = "vercel[bot]") -> dict[str, Any]:
    """`deployment_status.created`, as a preview host (a GitHub App, so a bot) reports a deployment of a branch."""
    bot = {"login": creator, "id": 35613825, "type": "Bot"}
    api = "https://api.github.com/repos/acme/widgets/deployments/145988746"
    status = {"url": f"{api}/statuses/209916254", "id": 209916254,
              "node_id": "MDE2OkRlcGxveW1lbnRTdGF0dXMyMDk5MTYyNTQ=", "state": state, "creator": bot,
              "description": "Deployment has completed", "environment": "Preview",
              "target_url": PREVIEW, "created_at": "2026-03-02T09:30:00Z", "updated_at": "2026-03-02T09:30:00Z",
              "deployment_url": api, "repository_url": "https://api.github.com/repos/acme/widgets",
              "log_url": PREVIEW, "performed_via_github_app": None}
    if url is not None:
        status["environment_url"] = url
    return {"action": action, "deployment_status": status, "deployment": {
        "url": api, "id": 145988746, "node_id": "MDEwOkRlcGxveW1lbnQxNDU5ODg3NDY=", "sha": sha, "ref": ref,
        "task": "deploy", "payload": {}, "original_environment": "Preview", "environment": "Preview",
        "description": None, "creator": bot, "created_at": "2026-03-02T09:28:00Z", "updated_at": "2026-03-02T09:30:00Z",
        "statuses_url": f"{api}/statuses", "repository_url": "https://api.github.com/repos/acme/widgets",
        "transient_environment": True, "production_environment": False, "performed_via_github_app": None},
        **_envelope(creator, "Bot")}


def _notice(event: str, payload: Any, rules: TriggerRules = RULES) -> JobRequest:
    notice = notify_of(event, payload, rules, "d-1#notify")
    assert isinstance(notice, JobRequest), f"expected a NOTIFY request for {event}"
    assert notice.kind is JobKind.NOTIFY and notice.trigger["type"] == "notify"
    assert notice.trigger["delivery_id"] == "d-1#notify" and notice.delay_seconds == 0
    return notice


# Check suites


@pytest.mark.parametrize("conclusion", ["success", "failure", "timed_out", "action_required", "cancelled"])
def test_a_finished_suite_on_honks_head_is_news_for_the_thread(conclusion: str) -> None:
    notice = _notice("check_suite", suite_payload(conclusion))
    assert (notice.repo, notice.number, notice.installation_id) == ("acme/widgets", 12, 42)
    assert notice.requester == "honk-test[bot]"  # a bot sent it, and that is fine: nobody is obeyed
    assert notice.subject == "notify:acme/widgets#12"  # never behind a run on the pull request
    trigger = notice.trigger
    assert (trigger["news"], trigger["head_sha"], trigger["conclusion"]) == ("checks", SHA, conclusion)
    assert trigger["pull_request"] == {"number": 12, "head": {"ref": "honk/issue-7-fix", "sha": SHA}}
    assert trigger["check_suite"] == {"id": 118578147} and trigger["app"]["slug"] == "github-actions"


@pytest.mark.parametrize("conclusion", ["neutral", "skipped", "stale", None, ""])
def test_a_suite_that_says_nothing_is_no_news(conclusion: str | None) -> None:
    assert notify_of("check_suite", suite_payload(conclusion), RULES) is None


def test_honks_own_suite_a_suite_without_runs_and_other_actions_are_no_news() -> None:
    assert notify_of("check_suite", suite_payload("success", app=dict(HONK_APP_JSON)), RULES) is None
    empty = suite_payload("cancelled")
    empty["check_suite"]["latest_check_runs_count"] = 0
    assert notify_of("check_suite", empty, RULES) is None
    assert notify_of("check_suite", suite_payload("success", action="requested"), RULES) is None
    assert notify_of("check_suite", suite_payload("success", action="rerequested"), RULES) is None


def test_a_suite_off_the_head_of_a_honk_pull_request_is_no_news() -> None:
    assert notify_of("check_suite", suite_payload("success", pulls=[]), RULES) is None
    human = minimal_pull(ref="feature/spin")
    assert notify_of("check_suite", suite_payload("success", pulls=[human]), RULES) is None
    older = minimal_pull(sha=OLD_SHA)  # pushed to since: this suite is about a commit that is no longer the head
    assert notify_of("check_suite", suite_payload("success", pulls=[older]), RULES) is None
    upstream = minimal_pull(repo_id=12345)  # a fork's suite lists its upstream's pull requests
    assert notify_of("check_suite", suite_payload("success", pulls=[upstream]), RULES) is None
    both = suite_payload("success", pulls=[minimal_pull(number=3, ref="feature/x"), minimal_pull(number=12)])
    assert _notice("check_suite", both).number == 12


def test_the_main_decision_is_untouched_by_the_news() -> None:
    """A red suite on Honk's head is a CI fix and also news: two requests, on two subjects."""
    payload = suite_payload("failure")
    fix = decide("check_suite", payload, RULES, "d-1")
    notice = _notice("check_suite", payload)
    assert isinstance(fix, JobRequest) and fix.kind is JobKind.FIX_CI and fix.subject == "acme/widgets#12"
    assert notice.subject == "notify:acme/widgets#12" and fix.subject != notice.subject
    assert decide("check_suite", payload, OFF, "d-1") == fix  # Slack on or off, the decision is the same


# Deployments


def test_a_successful_deployment_with_a_url_is_a_preview() -> None:
    notice = _notice("deployment_status", deployment_payload())
    assert notice.number == 0  # a deployment names a commit: the job finds its pull request
    assert notice.subject == "notify:acme/widgets#0" and notice.requester == "vercel[bot]"
    trigger = notice.trigger
    assert (trigger["news"], trigger["head_sha"]) == ("preview", SHA)
    assert trigger["deployment"] == {"id": 145988746, "sha": SHA, "ref": "honk/issue-7-fix", "environment": "Preview"}
    assert trigger["deployment_status"] == {"id": 209916254, "state": "success", "environment": "Preview",
                                            "environment_url": PREVIEW}


def test_a_deployment_of_a_pull_request_ref_names_it() -> None:
    assert _notice("deployment_status", deployment_payload(ref="refs/pull/12/merge")).number == 12
    assert _notice("deployment_status", deployment_payload(ref="refs/pull/12/head")).number == 12
    assert _notice("deployment_status", deployment_payload(ref="refs/pull/0/head")).number == 0
    assert _notice("deployment_status", deployment_payload(ref="refs/pull/99999999999/head")).number == 0
    assert _notice("deployment_status", deployment_payload(ref=SHA)).number == 0


@pytest.mark.parametrize("state", ["pending", "in_progress", "queued", "failure", "error", "inactive"])
def test_a_deployment_not_done_is_no_news(state: str) -> None:
    assert notify_of("deployment_status", deployment_payload(state=state), RULES) is None


@pytest.mark.parametrize("url", [None, "", "ftp://example.com/x", "https://example.com/a b", "javascript:alert(1)",
                                 "https://example.com/\n", "https://example.com/" + "x" * 2000, 42, ["https://x"]])
def test_a_deployment_without_a_usable_url_is_no_news(url: Any) -> None:
    assert notify_of("deployment_status", deployment_payload(url=url), RULES) is None


@pytest.mark.parametrize("sha", [None, "", "main", "abc123", SHA.upper(), 12, SHA + "0"])
def test_a_deployment_without_a_commit_is_no_news(sha: Any) -> None:
    assert notify_of("deployment_status", deployment_payload(sha=sha), RULES) is None


def test_a_deployment_is_never_work_for_honk() -> None:
    payload = deployment_payload()
    ignored = decide("deployment_status", payload, RULES, "d-1")
    assert not isinstance(ignored, JobRequest)
    assert notify_of("deployment_status", deployment_payload(action="deleted"), RULES) is None


# Pull requests closed, reviews


@pytest.mark.parametrize("merged", [True, False])
def test_a_honk_pull_request_merged_or_closed_is_news(merged: bool) -> None:
    notice = _notice("pull_request", closed_payload(merged=merged))
    assert (notice.number, notice.requester, notice.subject) == (12, "carol", "notify:acme/widgets#12")
    pull = notice.trigger["pull_request"]
    assert notice.trigger["news"] == ("merged" if merged else "closed")
    assert pull["merged"] is merged and pull["closed_at"] == "2026-03-02T10:00:00Z"
    assert pull["title"] == "Make widgets spin forwards" and pull["html_url"].endswith("/pull/12")
    assert pull["merged_by"] == ({"login": "carol", "id": 8, "type": "User"} if merged else {})


def test_closed_by_a_bot_is_news_too_and_a_human_branch_or_other_actions_are_not() -> None:
    assert _notice("pull_request", closed_payload(sender="honk-test[bot]", sender_type="Bot")).requester == (
        "honk-test[bot]")
    assert notify_of("pull_request", closed_payload(ref="feature/spin"), RULES) is None
    for action in ("opened", "reopened", "synchronize", "edited", "labeled"):
        assert notify_of("pull_request", {**closed_payload(), "action": action}, RULES) is None


def test_changes_requested_is_news_with_the_review() -> None:
    notice = _notice("pull_request_review", review_payload())
    assert (notice.number, notice.requester, notice.trigger["news"]) == (12, "bob", "changes_requested")
    review = notice.trigger["review"]
    assert review["body"] == "Please keep the old name." and review["user"]["login"] == "bob"
    assert review["id"] == 80 and review["html_url"].endswith("#pullrequestreview-80")
    assert notice.trigger["pull_request"]["head"] == {"ref": "honk/issue-7-fix", "sha": SHA}
    assert len(_notice("pull_request_review", review_payload(body="x" * 70000)).trigger["review"]["body"]) == (
        MAX_REVIEW_BODY)
    assert _notice("pull_request_review", review_payload("CHANGES_REQUESTED")).number == 12


@pytest.mark.parametrize("state", ["approved", "commented", "dismissed", "", None])
def test_other_reviews_are_no_news(state: str | None) -> None:
    assert notify_of("pull_request_review", review_payload(state), RULES) is None  # type: ignore[arg-type]


def test_reviews_elsewhere_are_no_news() -> None:
    assert notify_of("pull_request_review", review_payload(ref="feature/spin"), RULES) is None
    assert notify_of("pull_request_review", review_payload(action="edited"), RULES) is None
    assert notify_of("pull_request_review", review_payload(action="dismissed"), RULES) is None


# Off, malformed, everything else


def test_with_slack_off_nothing_is_news() -> None:
    for event, payload in [("check_suite", suite_payload("failure")), ("deployment_status", deployment_payload()),
                           ("pull_request", closed_payload()), ("pull_request_review", review_payload())]:
        assert notify_of(event, payload, OFF) is None
        assert notify_of(event, payload, RULES) is not None


def test_the_rules_follow_slack_settings(make_settings: Callable[..., Settings]) -> None:
    assert TriggerRules.for_settings(make_settings()).notify is False
    on = make_settings(slack_bot_token="xoxb-1", slack_signing_secret="s")
    assert TriggerRules.for_settings(on).notify is True
    assert TriggerRules.for_settings(on, "honk-test").with_mentions(["@widgets"]).notify is True
    assert TriggerRules.for_settings(make_settings(slack_bot_token="xoxb-1")).notify is False  # half configured


def test_events_honk_does_not_tell_are_no_news() -> None:
    for event in ("issues", "issue_comment", "push", "ping", "workflow_run", "check_run", "deployment"):
        assert notify_of(event, labeled_payload(), RULES) is None
    assert notify_of("check_suite", "not an object", RULES) is None
    assert notify_of("check_suite", [suite_payload()], RULES) is None
    assert notify_of("check_suite", None, RULES) is None


def _broken(payload: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    broken = copy.deepcopy(payload)
    *parents, last = path.split(".")
    where: Any = broken
    for key in parents:
        where = where[int(key)] if isinstance(where, list) else where[key]
    where[last] = value
    return broken


@pytest.mark.parametrize(("event", "payload", "path", "value"), [
    ("pull_request", closed_payload(), "pull_request.number", "12"),
    ("pull_request", closed_payload(), "pull_request.number", 0),
    ("pull_request", closed_payload(), "pull_request.number", True),
    ("pull_request", closed_payload(), "pull_request.number", 2**31),
    ("pull_request", closed_payload(), "pull_request.head", "honk/issue-7-fix"),
    ("pull_request", closed_payload(), "installation.id", "42"),
    ("pull_request", closed_payload(), "installation", None),
    ("pull_request", closed_payload(), "sender.login", "carol smith"),
    ("pull_request", closed_payload(), "sender.login", "x" * 101),
    ("pull_request", closed_payload(), "sender", None),
    ("pull_request", closed_payload(), "repository.full_name", "acme/../widgets"),
    ("pull_request", closed_payload(), "repository.full_name", "widgets"),
    ("pull_request", closed_payload(), "repository.full_name", 7),
    ("pull_request", closed_payload(), "pull_request.merged_by.id", 1.5),
    ("pull_request_review", review_payload(), "review.id", -80),
    ("pull_request_review", review_payload(), "review.user.id", "4"),
    ("check_suite", suite_payload("success"), "check_suite.app.id", "77"),
    ("check_suite", suite_payload("success"), "check_suite.pull_requests.0.number", "12"),
    ("check_suite", suite_payload("success"), "check_suite.id", 2**64),
    ("deployment_status", deployment_payload(), "deployment.id", "145988746"),
    ("deployment_status", deployment_payload(), "deployment_status.id", 0),
])
def test_malformed_deliveries_are_no_news(event: str, payload: dict[str, Any], path: str, value: Any) -> None:
    assert notify_of(event, payload, RULES) is not None  # the payload as built is news
    assert notify_of(event, _broken(payload, path, value), RULES) is None


def test_text_is_kept_storable() -> None:
    payload = review_payload(body="keep \x00 this \ud800 safe")
    notice = _notice("pull_request_review", payload)
    assert "\x00" not in notice.trigger["review"]["body"] and "\ud800" not in notice.trigger["review"]["body"]
    json.dumps(notice.trigger).encode()  # JSON, UTF-8: what the jobs table stores


# The real deliveries


def _fixture(name: str) -> dict[str, Any]:
    path = FIXTURES / name
    if not path.is_file():
        pytest.skip(f"no webhook fixture {path}")
    payload: dict[str, Any] = json.loads(path.read_bytes())
    return payload


ANY_BRANCH = TriggerRules(branch_prefix="", notify=True)


def test_every_real_delivery_gets_an_answer() -> None:
    files = sorted(FIXTURES.glob("*.json")) if FIXTURES.is_dir() else []
    if not files:
        pytest.skip(f"no webhook fixtures at {FIXTURES}")
    news = {}
    for path in files:
        event = path.name.split(".")[0]
        for rules in (RULES, ANY_BRANCH):
            notice = notify_of(event, json.loads(path.read_bytes()), rules, "d")
            assert notice is None or notice.kind is JobKind.NOTIFY
            if notice is not None and rules is ANY_BRANCH:
                news[path.name] = (notice.trigger["news"], notice.repo, notice.number)
    # Only real deliveries of the four kinds are news (and none is on a branch of Honk's).
    assert all(notify_of(p.name.split(".")[0], json.loads(p.read_bytes()), RULES) is None for p in files)
    assert news["pull_request.closed.4.json"] == ("merged", "C-Saunders/flynn_env_test", 2)
    assert news["pull_request.closed.1.json"] == ("closed", "Codertocat/Hello-World", 2)
    assert news["pull_request_review.submitted.3.json"] == ("changes_requested", "ocombe/test", 35)
    assert {name.split(".")[0] for name in news} <= {"pull_request", "pull_request_review", "check_suite"}
    assert "pull_request.closed.6.json" not in news  # a repository webhook's: no installation


def test_the_real_merged_pull_request() -> None:
    payload = _fixture("pull_request.closed.4.json")
    notice = _notice("pull_request", payload, ANY_BRANCH)
    pull = notice.trigger["pull_request"]
    assert pull["merged"] is True and pull["merged_by"]["login"] == "C-Saunders"
    assert pull["merged_at"] == "2018-11-18T18:54:32Z" and pull["title"] == "Adds README."
    assert notify_of("pull_request", payload, TriggerRules(branch_prefix="honk/", notify=True)) is None


def test_the_real_changes_requested_review() -> None:
    payload = _fixture("pull_request_review.submitted.3.json")
    notice = _notice("pull_request_review", payload, ANY_BRANCH)
    assert notice.trigger["review"]["body"] == "test2" and notice.trigger["review"]["user"]["login"] == "ocombe"
    for name in ("pull_request_review.submitted.1.json", "pull_request_review.submitted.4.json"):
        assert notify_of("pull_request_review", _fixture(name), ANY_BRANCH) is None  # commented, approved


def test_the_real_completed_suite() -> None:
    payload = _fixture("check_suite.completed.1.json")  # GitHub's example: success, a repository webhook's
    assert notify_of("check_suite", payload, ANY_BRANCH) is None  # no installation
    payload["installation"] = {"id": 1}
    notice = _notice("check_suite", payload, ANY_BRANCH)
    assert (notice.number, notice.trigger["news"], notice.trigger["conclusion"]) == (2, "checks", "success")
    assert notify_of("check_suite", payload, TriggerRules(branch_prefix="", app_id=29310, notify=True)) is None
