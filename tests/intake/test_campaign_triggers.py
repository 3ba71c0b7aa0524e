"""The trigger rules for fleet campaigns (CONTRACT.md section 7), as pure functions: the campaign label starts one,
a writer's `@honk rollout|stop|update|retry` on its issue steers it, and `campaign_news` turns GitHub's news of a
campaign's pull requests (closed, merged, reviewed, checks done) into the campaign's bookkeeping.

The real deliveries in shared/fixtures are checked at the end.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from app.intake.triggers import Ignore, TriggerRules, campaign_news, decide
from app.jobs.campaign_report import campaign_branch
from app.queue.requests import JobKind, JobRequest
from tests.intake.test_ci_triggers import minimal_pull, suite_payload
from tests.intake.test_triggers import comment_payload
from tests.support import FIXTURES, labeled_payload

# Read at import time: the make_settings fixture clears HONK_* variables from the environment.
REQUIRE_FIXTURES = os.environ.get("HONK_REQUIRE_FIXTURES") == "1"
RULES = TriggerRules(label="honk", mentions=("@honk",), branch_prefix="honk/", app_id=77)
SHA = "9f2c0e1d3b4a59687766554433221100aabbccdd"
BRANCH = "honk/campaign-7-turn-off-legacy-mode"
COMMANDS = ("rollout", "stop", "update", "retry")


def _job(event: str, payload: dict[str, Any], rules: TriggerRules = RULES) -> JobRequest:
    decision = decide(event, payload, rules, "d-1")
    assert isinstance(decision, JobRequest), decision
    return decision


def _reason(event: str, payload: dict[str, Any], rules: TriggerRules = RULES) -> str:
    decision = decide(event, payload, rules, "d-1")
    assert isinstance(decision, Ignore), decision
    return decision.reason


def campaign_comment(body: str, *, labels: tuple[str, ...] = ("honk-campaign",)) -> dict[str, Any]:
    """A new comment on an issue carrying these labels."""
    payload = comment_payload(body)
    payload["issue"]["labels"] = [{"name": name} for name in labels]
    return payload


# Starting: the campaign label


def test_the_campaign_label_starts_a_campaign() -> None:
    job = _job("issues", labeled_payload(label="honk-campaign"))
    assert (job.kind, job.repo, job.number, job.requester, job.installation_id) == (
        JobKind.CAMPAIGN, "acme/widgets", 7, "alice", 42)
    assert (job.trigger["type"], job.trigger["label"]) == ("campaign_label", "honk-campaign")
    assert job.trigger["issue"]["title"] == "Widgets spin backwards"
    assert job.subject == "campaign:acme/widgets#7"  # not the issue's own subject: no resolve_issue waits on it
    assert job.delay_seconds == 0


@pytest.mark.parametrize("label", ["HONK-CAMPAIGN", "Honk-Campaign"])
def test_the_campaign_label_matches_in_any_case(label: str) -> None:
    assert _job("issues", labeled_payload(label=label)).kind is JobKind.CAMPAIGN


def test_the_honk_label_still_resolves_the_issue() -> None:
    job = _job("issues", labeled_payload(label="honk"))
    assert (job.kind, job.trigger["type"], job.subject) == (JobKind.RESOLVE_ISSUE, "label", "acme/widgets#7")


def test_a_custom_campaign_label() -> None:
    rules = TriggerRules(label="honk", mentions=("@honk",), campaign_label="fleet-change")
    assert _job("issues", labeled_payload(label="fleet-change"), rules).kind is JobKind.CAMPAIGN
    assert _job("issues", labeled_payload(label="honk"), rules).kind is JobKind.RESOLVE_ISSUE
    reason = _reason("issues", labeled_payload(label="honk-campaign"), rules)
    assert reason == "the label 'honk-campaign' is not 'honk' or 'fleet-change'"
    assert TriggerRules(campaign_label="fleet-change").with_mentions(["@goose"]).campaign_label == "fleet-change"


def test_the_campaign_label_on_a_closed_issue_or_a_pull_request_starts_nothing() -> None:
    closed = labeled_payload(label="honk-campaign")
    closed["issue"]["state"] = "closed"
    assert _reason("issues", closed) == "issue #7 is closed"
    pull = labeled_payload(label="honk-campaign")
    pull["issue"]["pull_request"] = {"url": "https://api.github.com/repos/acme/widgets/pulls/7"}
    assert _reason("issues", pull) == "labels on pull requests do not ask Honk to work"
    unlabelled = labeled_payload(label="honk-campaign")
    unlabelled["action"] = "unlabeled"
    assert "does not ask Honk to work" in _reason("issues", unlabelled)


# Steering: commands on the campaign's issue


@pytest.mark.parametrize(("body", "command"), [
    ("@honk rollout", "rollout"), ("@honk roll out", "rollout"), ("@HONK Rollout!", "rollout"),
    ("@honk stop", "stop"), ("@honk cancel.", "stop"), ("@honk update", "update"), ("  @honk   retry  ", "retry"),
    ("> earlier words\n\n@honk stop", "stop")])
def test_commands_on_a_campaign_issue_steer_the_campaign(body: str, command: str) -> None:
    job = _job("issue_comment", campaign_comment(body))
    assert (job.kind, job.trigger["type"], job.trigger["command"]) == (JobKind.CAMPAIGN, "campaign_command", command)
    assert job.subject == "campaign:acme/widgets#7"  # behind the start, in order
    assert job.trigger["comment"]["id"] == 555 and "honk-campaign" in job.trigger["issue"]["labels"]


@pytest.mark.parametrize("body", [
    "@honk please fix the widgets", "@honk fix ci", "@honk rollout now please", "@honk stop it, the CI is red",
    "@honk can you update the task?", "Hey @honk, retry", "@honk"])
def test_any_other_mention_on_a_campaign_issue_is_ignored_naming_the_commands(body: str) -> None:
    reason = _reason("issue_comment", campaign_comment(body))
    assert reason == "issue #7 is a campaign's: comment `@honk rollout`, `stop`, `update` or `retry` there"


def test_a_campaign_issue_under_custom_rules() -> None:
    rules = TriggerRules(mentions=("@goose",), campaign_label="fleet-change")
    job = _job("issue_comment", campaign_comment("@goose rollout", labels=("bug", "Fleet-Change")), rules)
    assert (job.kind, job.trigger["command"]) == (JobKind.CAMPAIGN, "rollout")
    assert _reason("issue_comment", campaign_comment("@goose do it", labels=("fleet-change",)), rules) == (
        "issue #7 is a campaign's: comment `@goose rollout`, `stop`, `update` or `retry` there")
    # The default label is no campaign under these rules: `stop` is an ordinary control command there.
    assert _job("issue_comment", campaign_comment("@goose stop"), rules).kind is JobKind.CONTROL


@pytest.mark.parametrize("command", ["rollout", "update"])
def test_a_campaign_command_on_an_ordinary_issue_is_ignored_saying_where_it_works(command: str) -> None:
    reason = _reason("issue_comment", campaign_comment(f"@honk {command}", labels=("bug",)))
    assert reason == f"`@honk {command}` works on a campaign's issue (labelled 'honk-campaign')"
    on_pull = campaign_comment(f"@honk {command}")
    on_pull["issue"]["pull_request"] = {"url": "https://api.github.com/repos/acme/widgets/pulls/7"}
    assert _reason("issue_comment", on_pull) == reason  # a pull request is never the campaign's issue


def test_stop_and_retry_on_an_ordinary_issue_are_control_commands_as_before() -> None:
    for command in ("stop", "retry"):
        job = _job("issue_comment", campaign_comment(f"@honk {command}", labels=()))
        assert (job.kind, job.trigger["command"]) == (JobKind.CONTROL, command)


def test_a_sentence_with_the_words_is_a_request_not_a_command() -> None:
    for body in ("@honk rollout the new logger everywhere", "@honk please update the docs"):
        job = _job("issue_comment", campaign_comment(body, labels=()))
        assert job.kind is JobKind.RESOLVE_ISSUE
    assert RULES.command_in("@honk rollout") == "rollout"
    assert RULES.command_in("please @honk rollout") is None
    assert RULES.command_in("```\n@honk rollout\n```") is None
    assert RULES.command_in("@honk rollout the fix") is None


def test_an_edited_command_or_one_by_a_bot_does_nothing() -> None:
    edited = campaign_comment("@honk stop")
    edited["action"] = "edited"
    assert _reason("issue_comment", edited).startswith("issue_comment.edited")
    bot = campaign_comment("@honk rollout")
    bot["sender"]["type"] = "Bot"
    assert "is a bot" in _reason("issue_comment", bot)


# News of a campaign's pull requests


def _envelope() -> dict[str, Any]:
    payload = labeled_payload()
    return {key: payload[key] for key in ("repository", "sender", "installation")}


def closed_payload(*, merged: bool, ref: str = BRANCH, number: int = 12) -> dict[str, Any]:
    return {"action": "closed", "number": number, "pull_request": {
        "number": number, "state": "closed", "merged": merged,
        "merged_at": "2026-01-02T03:04:05Z" if merged else None,
        "html_url": f"https://github.com/acme/widgets/pull/{number}",
        "head": {"ref": ref, "sha": SHA}, "base": {"ref": "main", "sha": "1" * 40}}, **_envelope()}


def review_payload(state: str, ref: str = BRANCH) -> dict[str, Any]:
    payload = closed_payload(merged=False, ref=ref)
    payload["action"] = "submitted"
    payload["pull_request"]["state"] = "open"
    payload["review"] = {"id": 31, "state": state, "body": "", "user": {"login": "bob", "type": "User"}}
    return payload


def checks_payload(ref: str = BRANCH, *, conclusion: str = "success", app: dict[str, Any] | None = None
                   ) -> dict[str, Any]:
    return suite_payload(conclusion, pulls=[minimal_pull(12, ref=ref)], app=app)


def _news(event: str, payload: Any, rules: TriggerRules = RULES) -> JobRequest:
    news = campaign_news(event, payload, rules, "d-9")
    assert news is not None
    assert (news.kind, news.subject, news.repo, news.number, news.installation_id) == (
        JobKind.CAMPAIGN_SYNC, "campaign-sync:7", "acme/widgets", 12, 42)
    assert news.trigger["type"] == "campaign_sync" and news.trigger["delivery_id"] == "d-9"
    assert (news.trigger["campaign_id"], news.trigger["pull_number"], news.trigger["target_repo"]) == (
        7, 12, "acme/widgets")
    assert news.delay_seconds > 0  # a burst of news is one bookkeeping run
    return news


@pytest.mark.parametrize(("merged", "said"), [(True, "merged"), (False, "closed")])
def test_a_closed_campaign_pull_request_is_news(merged: bool, said: str) -> None:
    news = _news("pull_request", closed_payload(merged=merged))
    assert (news.trigger["news"], news.trigger["head_sha"]) == (said, SHA)


def test_merged_is_read_from_merged_at_when_merged_is_missing() -> None:
    payload = closed_payload(merged=True)
    del payload["pull_request"]["merged"]
    assert _news("pull_request", payload).trigger["news"] == "merged"


@pytest.mark.parametrize("state", ["approved", "changes_requested", "commented", "APPROVED"])
def test_a_review_of_a_campaign_pull_request_is_news(state: str) -> None:
    news = _news("pull_request_review", review_payload(state))
    assert (news.trigger["news"], news.trigger["review"], news.trigger["head_sha"]) == (
        "review", state.lower(), SHA)


def test_a_dismissed_review_is_no_news() -> None:
    assert campaign_news("pull_request_review", review_payload("dismissed"), RULES) is None
    assert campaign_news("pull_request_review", review_payload("pending"), RULES) is None


@pytest.mark.parametrize("conclusion", ["success", "failure", "neutral"])
def test_a_completed_suite_on_a_campaign_pull_requests_head_is_news(conclusion: str) -> None:
    news = _news("check_suite", checks_payload(conclusion=conclusion))
    assert (news.trigger["news"], news.trigger["head_sha"]) == ("checks", SHA)
    assert news.requester == "honk-test[bot]"  # a bot sent it; the bookkeeping needs nobody's authority


def test_honks_own_suite_is_news_too() -> None:
    """A head is green when all its checks are, Honk's own included."""
    own = {"id": 77, "slug": "honk-test", "name": "Honk Test"}
    assert _news("check_suite", checks_payload(app=own)).trigger["news"] == "checks"


def test_a_branch_made_by_campaign_branch_is_found_again() -> None:
    for campaign_id, title in ((7, "Turn off legacy mode"), (7, "!!!"), (7, "x" * 200)):
        ref = campaign_branch("honk/", campaign_id, title)
        assert _news("pull_request", closed_payload(merged=True, ref=ref)).trigger["campaign_id"] == 7
    rules = TriggerRules(branch_prefix="bots/honk-")
    ref = campaign_branch("bots/honk-", 7, "Bump lodash")
    assert ref == "bots/honk-campaign-7-bump-lodash"
    assert _news("pull_request", closed_payload(merged=True, ref=ref), rules).trigger["campaign_id"] == 7
    assert campaign_news("pull_request", closed_payload(merged=True, ref=ref), RULES) is None


@pytest.mark.parametrize("ref", [
    "honk/issue-3-x", "honk/campaign", "honk/campaign-", "honk/campaign-x", "honk/campaign-0-x", "honk/campaign-07-x",
    "honk/campaign-7x", "honk/campaign--7", "honk/campaign-1234567890123456789-x", "honk/Campaign-7-x",
    "other/campaign-7-x", "campaign-7-x", "honk-campaign-7-x", "refs/heads/honk/campaign-7-x", ""])
def test_other_branches_are_no_campaigns_news(ref: str) -> None:
    assert campaign_news("pull_request", closed_payload(merged=True, ref=ref), RULES) is None
    assert campaign_news("pull_request_review", review_payload("approved", ref=ref), RULES) is None
    assert campaign_news("check_suite", checks_payload(ref), RULES) is None


def test_the_largest_campaign_id_is_read_whole() -> None:
    ref = "honk/campaign-123456789012345678-x"  # 18 digits: the longest the pattern takes
    assert campaign_news("pull_request", closed_payload(merged=True, ref=ref), RULES).trigger[  # type: ignore[union-attr]
        "campaign_id"] == 123456789012345678


def test_other_events_and_actions_are_no_news() -> None:
    opened = closed_payload(merged=False)
    opened["action"] = "opened"
    assert campaign_news("pull_request", opened, RULES) is None
    assert campaign_news("check_suite", checks_payload() | {"action": "requested"}, RULES) is None
    assert campaign_news("pull_request_review", review_payload("approved") | {"action": "edited"}, RULES) is None
    assert campaign_news("issues", labeled_payload(label="honk-campaign"), RULES) is None
    assert campaign_news("push", {"ref": f"refs/heads/{BRANCH}"}, RULES) is None


def test_a_suite_on_an_older_commit_is_no_news() -> None:
    """The suite's pull requests name the head they have now: a suite on another commit says nothing of it."""
    stale = suite_payload("success", pulls=[minimal_pull(12, ref=BRANCH, sha="2" * 40)])
    assert campaign_news("check_suite", stale, RULES) is None
    no_sha = checks_payload()
    no_sha["check_suite"]["head_sha"] = "not-a-sha"
    assert campaign_news("check_suite", no_sha, RULES) is None


def _set(payload: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    broken = json.loads(json.dumps(payload))
    *parents, last = path.split(".")
    node: Any = broken
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return broken


_DELETE = object()


@pytest.mark.parametrize(("event", "payload", "path", "value"), [
    ("pull_request", closed_payload(merged=True), "pull_request.number", "12"),
    ("pull_request", closed_payload(merged=True), "pull_request.number", 0),
    ("pull_request", closed_payload(merged=True), "pull_request.number", 2**40),
    ("pull_request", closed_payload(merged=True), "pull_request.number", _DELETE),
    ("pull_request", closed_payload(merged=True), "pull_request.head", "honk/campaign-7-x"),
    ("pull_request", closed_payload(merged=True), "pull_request", None),
    ("pull_request", closed_payload(merged=True), "installation", _DELETE),
    ("pull_request", closed_payload(merged=True), "installation.id", "42"),
    ("pull_request", closed_payload(merged=True), "repository", _DELETE),
    ("pull_request", closed_payload(merged=True), "repository.full_name", "acme/../widgets"),
    ("pull_request", closed_payload(merged=True), "repository.full_name", "widgets"),
    ("pull_request", closed_payload(merged=True), "sender.login", "a b"),
    ("pull_request_review", review_payload("approved"), "review", None),
    ("pull_request_review", review_payload("approved"), "review.state", 1),
    ("check_suite", checks_payload(), "check_suite.pull_requests", None),
    ("check_suite", checks_payload(), "check_suite.pull_requests.0.number", "12"),
    ("check_suite", checks_payload(), "check_suite.pull_requests.0.head", []),
    ("check_suite", checks_payload(), "check_suite", "x"),
])
def test_malformed_deliveries_are_no_news(event: str, payload: dict[str, Any], path: str, value: Any) -> None:
    assert campaign_news(event, payload, RULES) is not None  # the payload as built is news
    assert campaign_news(event, _set(payload, path, value), RULES) is None


def test_no_payload_or_no_sender_at_all() -> None:
    for payload in (None, [], "x", 3, {}):
        assert campaign_news("pull_request", payload, RULES) is None
    nobody = closed_payload(merged=True)
    del nobody["sender"]
    assert _news("pull_request", nobody).requester == "github"


def test_news_and_work_are_independent_answers() -> None:
    """A review asking for changes on a campaign's pull request is news for its table, and a follow-up too."""
    payload = review_payload("changes_requested")
    assert _news("pull_request_review", payload).trigger["review"] == "changes_requested"
    assert _job("pull_request_review", payload).kind is JobKind.FOLLOW_UP


# The real deliveries


def _fixtures() -> list[tuple[str, str, dict[str, Any]]]:
    files = sorted(FIXTURES.glob("*.json")) if FIXTURES.is_dir() else []
    if not files:
        problem = f"no webhook fixtures at {FIXTURES} (the shared fixtures are not checked out next to the repo)"
        if REQUIRE_FIXTURES:
            pytest.fail(f"HONK_REQUIRE_FIXTURES=1 but {problem}")
        pytest.skip(problem)
    return [(path.name, path.name.split(".")[0], json.loads(path.read_bytes())) for path in files]


def test_every_real_delivery_gets_an_answer_and_none_is_a_campaigns() -> None:
    found = _fixtures()
    assert len(found) >= 100
    for rules in (RULES, TriggerRules(branch_prefix="")):
        for name, event, payload in found:
            assert campaign_news(event, payload, rules, "d") is None, name  # none is on a campaign branch
            decision = decide(event, payload, rules, "d")
            assert not (isinstance(decision, JobRequest) and decision.kind is JobKind.CAMPAIGN), name


def test_real_deliveries_on_a_campaign_branch_are_news_when_they_can_be() -> None:
    """Each real delivery of the three kinds, its pull request's head moved onto a campaign branch: news exactly
    where GitHub's delivery carries what the bookkeeping needs (an installation, a pull request number)."""
    found = _fixtures()
    news: dict[str, tuple[str, str, int]] = {}
    for name, event, payload in found:
        moved = json.loads(json.dumps(payload))
        for pull in [moved.get("pull_request"),
                     *((moved.get("check_suite") or {}).get("pull_requests") or [])]:
            if isinstance(pull, dict) and isinstance(pull.get("head"), dict):
                pull["head"]["ref"] = "honk/campaign-7-from-a-fixture"
        made = campaign_news(event, moved, RULES, "d")
        if made is not None:
            assert (made.kind, made.trigger["campaign_id"], made.subject) == (
                JobKind.CAMPAIGN_SYNC, 7, "campaign-sync:7"), name
            news[name] = (made.trigger["news"], made.repo, made.number)  # type: ignore[assignment]
    assert news["pull_request.closed.4.json"] == ("merged", "C-Saunders/flynn_env_test", 2)
    assert "pull_request.closed.6.json" not in news  # a repository webhook's: no installation
    assert {name.split(".")[0] for name in news} <= {"pull_request", "pull_request_review", "check_suite"}
    assert {name.split(".")[1] for name in news} <= {"closed", "submitted", "completed"}
