"""The trigger rules (README, "How it works"), as a pure function of (event, payload)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from app.intake.triggers import Ignore, TriggerRules, decide
from app.queue.requests import JobKind, JobRequest
from tests.support import labeled_payload

RULES = TriggerRules(label="honk", mentions=("@honk",), branch_prefix="honk/", app_id=77)


def comment_payload(body: str, *, on_pr: bool = False, sender_type: str = "User") -> dict[str, Any]:
    payload = labeled_payload(sender_type=sender_type)
    payload["action"] = "created"
    del payload["label"]
    if on_pr:
        payload["issue"]["pull_request"] = {"url": "https://api.github.com/repos/acme/widgets/pulls/7"}
    payload["comment"] = {"id": 555, "body": body, "user": {"login": "alice", "id": 3, "type": "User"},
                          "html_url": "https://github.com/acme/widgets/issues/7#issuecomment-555"}
    return payload


def review_payload(state: str, body: str | None = "", head_ref: str = "honk/issue-7-fix") -> dict[str, Any]:
    payload = labeled_payload()
    payload["action"] = "submitted"
    del payload["label"], payload["issue"]
    payload["pull_request"] = {"number": 12, "state": "open", "title": "Fix widgets", "body": "Closes #7",
                               "head": {"ref": head_ref, "sha": "abc"}, "base": {"ref": "main", "sha": "def"},
                               "user": {"login": "honk-test[bot]", "id": 9, "type": "Bot"}}
    payload["review"] = {"id": 31, "state": state, "body": body, "user": {"login": "alice", "type": "User"}}
    return payload


def review_comment_payload(body: str, head_ref: str = "honk/issue-7") -> dict[str, Any]:
    payload = review_payload("commented", head_ref=head_ref)
    payload["action"] = "created"
    del payload["review"]
    payload["comment"] = {"id": 77, "body": body, "path": "widgets.py", "line": 3, "diff_hunk": "@@ -1 +1 @@",
                          "pull_request_review_id": 31, "user": {"login": "alice", "type": "User"}}
    return payload


def test_label_asks_for_an_issue_to_be_resolved() -> None:
    decision = decide("issues", labeled_payload(), RULES, "d-1")
    assert isinstance(decision, JobRequest)
    assert (decision.kind, decision.repo, decision.number, decision.requester, decision.installation_id) == (
        JobKind.RESOLVE_ISSUE, "acme/widgets", 7, "alice", 42)
    assert decision.subject == "acme/widgets#7"
    assert decision.trigger["delivery_id"] == "d-1"
    assert decision.trigger["issue"]["title"] == "Widgets spin backwards"


@pytest.mark.parametrize("label", ["honk", "HONK", "Honk"])
def test_label_matches_in_any_case(label: str) -> None:
    assert isinstance(decide("issues", labeled_payload(label=label), RULES), JobRequest)


@pytest.mark.parametrize(("label", "action"), [("bug", "labeled"), ("honk", "unlabeled"), ("honk", "opened")])
def test_other_labels_and_actions_are_ignored(label: str, action: str) -> None:
    payload = labeled_payload(label=label)
    payload["action"] = action
    decision = decide("issues", payload, RULES)
    assert isinstance(decision, Ignore) and decision.reason


def test_closed_issue_is_not_worked_on() -> None:
    payload = labeled_payload()
    payload["issue"]["state"] = "closed"
    assert decide("issues", payload, RULES) == Ignore("issue #7 is closed")


@pytest.mark.parametrize("body", ["@honk please fix", "Hey @honk, fix this.", "@HONK go", "(@honk)", "cc @honk\n"])
def test_comment_mention_on_issue_resolves_it(body: str) -> None:
    decision = decide("issue_comment", comment_payload(body), RULES)
    assert isinstance(decision, JobRequest) and decision.kind is JobKind.RESOLVE_ISSUE
    assert decision.trigger["comment"]["body"] == body


@pytest.mark.parametrize("body", [
    "@honkers assemble", "mail me at x@honk.dev", "ping @honk-bot", "no mention here",
    "> @honk do it\n\nquoted, not asked", "`@honk` is the trigger", "```\n@honk fix\n```", "@@honk",
])
def test_text_that_is_not_a_mention_is_ignored(body: str) -> None:
    assert isinstance(decide("issue_comment", comment_payload(body), RULES), Ignore)


def test_mentions_include_the_apps_own_slug() -> None:
    rules = RULES.with_mentions(["@honk-test"])
    assert isinstance(decide("issue_comment", comment_payload("@honk-test fix it"), rules), JobRequest)


def test_edited_and_deleted_comments_are_not_requests() -> None:
    for action in ("edited", "deleted"):
        payload = comment_payload("@honk fix")
        payload["action"] = action
        assert isinstance(decide("issue_comment", payload, RULES), Ignore)


def test_mention_on_a_pull_request_is_a_follow_up() -> None:
    decision = decide("issue_comment", comment_payload("@honk rename it", on_pr=True), RULES)
    assert isinstance(decision, JobRequest) and decision.kind is JobKind.FOLLOW_UP
    assert decision.trigger["type"] == "pr_comment"


@pytest.mark.parametrize("event,payload", [
    ("issues", labeled_payload(sender_type="Bot")),
    ("issue_comment", comment_payload("@honk fix", sender_type="Bot")),
])
def test_bots_are_never_obeyed(event: str, payload: dict[str, Any]) -> None:
    decision = decide(event, payload, RULES)
    assert isinstance(decision, Ignore) and "bot" in decision.reason


def test_deliveries_caused_by_honk_itself_are_ignored() -> None:
    payload = comment_payload("@honk again")
    payload["comment"]["performed_via_github_app"] = {"id": 77, "slug": "honk-test"}
    assert decide("issue_comment", payload, RULES) == Ignore("the delivery was caused by Honk itself")


def test_changes_requested_on_honks_pull_request_is_a_follow_up() -> None:
    decision = decide("pull_request_review", review_payload("changes_requested"), RULES)
    assert isinstance(decision, JobRequest)
    assert (decision.kind, decision.number, decision.trigger["type"]) == (JobKind.FOLLOW_UP, 12, "review")
    assert decision.trigger["pull_request"]["head"]["ref"] == "honk/issue-7-fix"


def test_review_rules() -> None:
    assert isinstance(decide("pull_request_review", review_payload("approved"), RULES), Ignore)
    assert isinstance(decide("pull_request_review", review_payload("commented", "@honk tidy up"), RULES), JobRequest)
    assert isinstance(decide("pull_request_review", review_payload("commented", None), RULES), Ignore)
    # Someone else's pull request: Honk does not take it over.
    other = review_payload("changes_requested", head_ref="feature/x")
    assert "not Honk's" in decide("pull_request_review", other, RULES).reason  # type: ignore[union-attr]


def test_review_comment_mention_is_a_thread_follow_up() -> None:
    decision = decide("pull_request_review_comment", review_comment_payload("@honk use a constant"), RULES)
    assert isinstance(decision, JobRequest) and decision.trigger["type"] == "review_comment"
    assert decision.trigger["comment"]["path"] == "widgets.py"
    assert isinstance(decide("pull_request_review_comment", review_comment_payload("looks odd"), RULES), Ignore)


@pytest.mark.parametrize("mutate,reason", [
    (lambda p: p.pop("installation"), "installation"),
    (lambda p: p.pop("repository"), "repository"),
    (lambda p: p["issue"].pop("number"), "issue number"),
    (lambda p: p.update(sender="nobody"), "sender"),
])
def test_thin_deliveries_are_ignored_with_a_reason(mutate: Any, reason: str) -> None:
    payload = copy.deepcopy(labeled_payload())
    mutate(payload)
    decision = decide("issues", payload, RULES)
    assert isinstance(decision, Ignore) and reason in decision.reason


@pytest.mark.parametrize("payload", [[], "x", 3, None, {"action": 5}, {"issue": "no", "label": []}])
def test_odd_json_never_raises(payload: Any) -> None:
    for event in ("issues", "issue_comment", "pull_request_review", "pull_request_review_comment", "push"):
        assert isinstance(decide(event, payload, RULES), Ignore)


def test_a_mention_on_someone_elses_pull_request_is_a_follow_up() -> None:
    """Honk works on a same-repository branch it did not open when asked by name (the job checks forks)."""
    decision = decide("pull_request_review_comment", review_comment_payload("@honk tidy this", head_ref="feat/x"),
                      RULES)
    assert isinstance(decision, JobRequest) and decision.kind is JobKind.FOLLOW_UP
    review = decide("pull_request_review", review_payload("commented", "@honk please fix", head_ref="feat/x"), RULES)
    assert isinstance(review, JobRequest)


def test_follow_ups_wait_a_moment_so_a_review_burst_is_one_run() -> None:
    decision = decide("pull_request_review", review_payload("changes_requested"), RULES)
    assert isinstance(decision, JobRequest) and decision.delay_seconds > 0
    issue = decide("issues", labeled_payload(), RULES)
    assert isinstance(issue, JobRequest) and issue.delay_seconds == 0


@pytest.mark.parametrize(("body", "command"), [
    ("@honk stop", "stop"), ("@honk stop.", "stop"), ("@Honk cancel", "stop"), ("@honk retry", "retry"),
    ("  @honk retry!  ", "retry"),
])
def test_stop_and_retry_are_control_requests_with_their_own_subject(body: str, command: str) -> None:
    for on_pr in (False, True):
        decision = decide("issue_comment", comment_payload(body, on_pr=on_pr), RULES)
        assert isinstance(decision, JobRequest) and decision.kind is JobKind.CONTROL
        assert decision.trigger["command"] == command
        assert decision.subject == "control:acme/widgets#7"  # runs while the issue's own job runs


@pytest.mark.parametrize("body", ["@honk stop doing X and do Y instead", "please @honk stop", "@honk retry with Z"])
def test_a_sentence_is_a_request_not_a_command(body: str) -> None:
    decision = decide("issue_comment", comment_payload(body), RULES)
    assert isinstance(decision, JobRequest) and decision.kind is JobKind.RESOLVE_ISSUE
