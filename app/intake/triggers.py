"""Trigger rules (README, "How it works"): which deliveries ask Honk to work, as a pure function.

Routing reads the raw JSON fields it needs and never a strict schema: about a third of real deliveries
are older or thinner than the current webhook schema, and each must still get a sensible answer. The
sender's write permission needs a GitHub call, so the job checks it before any work, not the route.

Thin is not malformed, though. A number GitHub never sends (a string, a bool, a float, zero, a negative, or
one too big for the database's columns) in a field Honk reads means the delivery is malformed: it is ignored,
saying which field, and never passed on. Text is passed on storable (`as_text`), and only the fields GitHub's
schema gives as scalars are kept, with the types it gives them.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from app.queue.requests import JobKind, JobRequest
from app.settings import Settings
from app.untyped import MAX_ID, as_dict, as_id, as_str, as_text

# Indentation is `[ \t]*`, not `\s*`: `^\s*` spans lines, and on a comment of blank lines (GitHub allows 65,536
# characters) each of thousands of line starts then scanned to the end, for seconds, on the event loop.
_CODE_FENCE = re.compile(r"(?ms)^[ \t]*(```|~~~).*?(^[ \t]*\1|\Z)")
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_QUOTE_LINE = re.compile(r"(?m)^[ \t]*>.*$")
FOLLOW_UP_DEBOUNCE = 3.0  # seconds: a review's comments arrive as separate deliveries within this
# Issue and pull request numbers: GitHub's GraphQL gives them as `Int` (32-bit), and so does Honk's jobs.number.
MAX_NUMBER = 2**31 - 1
MAX_REPO = 250  # jobs.repo; GitHub's own limit is 39 + 1 + 100
MAX_LOGIN = 100  # jobs.requester; GitHub's own limit is 39 (and a suffix for managed users)
MAX_REASON = 500


@dataclass(frozen=True)
class Ignore:
    reason: str


Decision = JobRequest | Ignore


@dataclass(frozen=True)
class TriggerRules:
    label: str = "honk"
    mentions: tuple[str, ...] = ("@honk",)
    branch_prefix: str = "honk/"
    app_id: int | None = None  # deliveries caused by this App itself are never obeyed
    notify: bool = False  # Slack is on: news about pull requests goes to their threads (`notify_of`)
    campaign_label: str = "honk-campaign"  # starts a fleet campaign; its issue takes the campaign's commands

    def __post_init__(self) -> None:
        handles = "|".join(re.escape(m) for m in self.mentions)
        # A mention stands alone: "@honk" and "@honk," match; "@honkers", "x@honk" and "@honk-bot" do not.
        object.__setattr__(self, "_mention", re.compile(rf"(?<![\w@/.-])(?:{handles})(?![\w-])", re.I))

    @classmethod
    def for_settings(cls, settings: Settings, app_slug: str | None = None) -> TriggerRules:
        """The rules under these settings; a mention of the App's own `@<slug>` counts too. Cached, since the
        webhook route asks on every delivery and the rules compile a pattern."""
        mentions = (settings.honk_trigger, *([f"@{app_slug}"] if app_slug else []))
        return _rules(settings.honk_label, mentions, settings.honk_branch_prefix, settings.github_app_id,
                      settings.slack_enabled, settings.honk_campaign_label)

    def with_mentions(self, extra: Iterable[str]) -> TriggerRules:
        return TriggerRules(self.label, tuple(dict.fromkeys([*self.mentions, *extra])), self.branch_prefix,
                            self.app_id, self.notify, self.campaign_label)

    def mentions_in(self, text: object) -> bool:
        """True when the text mentions Honk outside quoted replies and code."""
        return bool(self._mention.search(_prose(text)))  # type: ignore[attr-defined]

    def command_in(self, text: object) -> str | None:
        """`stop`, `retry`, `fix_ci`, `rollout` or `update` when the comment is just that command to Honk (`@honk
        stop`, `@honk retry.`, `@honk fix CI`); a sentence around the words is a request, not a command."""
        prose = _prose(text).strip()
        match = self._mention.match(prose)  # type: ignore[attr-defined]
        if match is None:
            return None
        words = " ".join(prose[match.end():].strip().rstrip(".!").split()).casefold()
        return {"stop": "stop", "cancel": "stop", "retry": "retry", "fix ci": "fix_ci", "rollout": "rollout",
                "roll out": "rollout", "update": "update"}.get(words)


def _prose(text: object) -> str:
    if not isinstance(text, str):
        return ""
    return _QUOTE_LINE.sub("", _INLINE_CODE.sub("", _CODE_FENCE.sub("", text)))


class _Malformed(Exception):
    """A field holds what GitHub never sends there; the message names it."""


def decide(event: str, payload: Any, rules: TriggerRules, delivery_id: str = "") -> Decision:
    """Turn one delivery into a job request, or a reason to ignore it. Never raises; every reason is storable."""
    try:
        decision = _decide(event, payload, rules, delivery_id)
    except _Malformed as exc:
        decision = Ignore(f"malformed delivery: {exc}")
    if isinstance(decision, Ignore):
        return Ignore(as_text(decision.reason, MAX_REASON))
    return decision


def _decide(event: str, payload: Any, rules: TriggerRules, delivery_id: str) -> Decision:
    if not isinstance(payload, dict):
        return Ignore("the payload is not a JSON object")
    action = as_str(payload.get("action"))
    if event == "ping":
        return Ignore("ping received: GitHub can reach Honk")
    route = _ROUTES.get(event)
    if route is None:
        return Ignore(f"Honk does not act on {event} events")
    sender = as_dict(payload.get("sender"))
    if as_str(sender.get("type")).casefold() == "bot" and (event, action) not in _BOTS_MAY_SEND:
        return Ignore(f"the sender {as_text(sender.get('login'), MAX_LOGIN) or '?'} is a bot; Honk does not take "
                      "requests from bots")
    via_app = as_dict(payload.get(_subject_key(event))).get("performed_via_github_app")
    if rules.app_id is not None and as_id(as_dict(via_app).get("id")) == rules.app_id:
        return Ignore("the delivery was caused by Honk itself")
    repository = as_dict(payload.get("repository"))
    decision = route(action, payload, rules)
    if isinstance(decision, Ignore):
        return decision
    kind, number, facts = decision
    repo = _name(repository, "full_name", "repository", MAX_REPO)
    if not repo or not _REPO.fullmatch(repo) or {".", ".."} & set(repo.split("/")):
        return Ignore("the delivery names no repository")
    installation = _id(as_dict(payload.get("installation")), "id", "installation")
    if installation is None:
        return Ignore("the delivery names no installation: Honk acts only where its GitHub App is installed")
    requester = _name(sender, "login", "sender", MAX_LOGIN)
    if not requester and (event, action) in _BOTS_MAY_SEND:
        # Nobody asked for a CI fix in person; the job decides whom to credit (and that Honk pushed the head).
        requester = _name(as_dict(as_dict(facts.get("pull_request")).get("user")), "login", "pull_request.user",
                          MAX_LOGIN)
    if not requester:
        return Ignore("the delivery names no sender")
    trigger = {
        "delivery_id": as_text(delivery_id),
        "event": as_text(event),
        "action": as_text(action),
        "sender": _pick(sender, "sender", "login", "id", "type"),
        "repository": _pick(repository, "repository", "id", "full_name", "clone_url", "html_url",
                            "default_branch", "private", "fork"),
        **facts,
    }
    # A CI fix waits too: GitHub sends check_suite.completed and workflow_run.completed for one failure within
    # moments; both are queued on the pull request's subject, and the job absorbs or dedupes them by head sha.
    debounce = kind in (JobKind.FOLLOW_UP, JobKind.FIX_CI)
    return JobRequest(kind=kind, repo=repo, number=number, requester=requester, installation_id=installation,
                      trigger=trigger, delay_seconds=FOLLOW_UP_DEBOUNCE if debounce else 0.0)


_Route = tuple[JobKind, int, dict[str, Any]] | Ignore
# A suite or run on Honk's own push is sent by a bot (Honk's own, or github-actions): these are reports, not
# requests, so the bot rule does not apply to them. The job checks that Honk pushed the head before any work.
_BOTS_MAY_SEND = {("check_suite", "completed"), ("workflow_run", "completed")}
# Conclusions that mean the code (or its workflow) is broken; cancelled, stale, neutral and the rest do not.
_CI_FAILED = {"failure", "timed_out", "startup_failure"}
HONK_CHECK = "Honk"  # the name of Honk's check run (CONTRACT.md section 6)


def _issues(action: str, payload: dict[str, Any], rules: TriggerRules) -> _Route:
    if action != "labeled":
        return Ignore(f"issues.{_word(action)} does not ask Honk to work (only labelling with {rules.label!r})")
    label = as_str(as_dict(payload.get("label")).get("name"))
    campaign = label.casefold() == rules.campaign_label.casefold()
    if label.casefold() != rules.label.casefold() and not campaign:
        return Ignore(f"the label {_shown(label, 40)} is not {rules.label!r} or {rules.campaign_label!r}")
    issue = as_dict(payload.get("issue"))
    if "pull_request" in issue:
        return Ignore("labels on pull requests do not ask Honk to work")
    number = _id(issue, "number", "issue", MAX_NUMBER)
    if number is None:
        return Ignore("the delivery names no issue number")
    if as_str(issue.get("state")) == "closed":
        return Ignore(f"issue #{number} is closed")
    if campaign:
        return JobKind.CAMPAIGN, number, {"type": "campaign_label", "label": as_text(label), "issue": _issue(issue)}
    return JobKind.RESOLVE_ISSUE, number, {"type": "label", "label": as_text(label), "issue": _issue(issue)}


def _issue_comment(action: str, payload: dict[str, Any], rules: TriggerRules) -> _Route:
    if action != "created":
        return Ignore(f"issue_comment.{_word(action)}: only new comments are requests (an edit is not)")
    comment = as_dict(payload.get("comment"))
    if not rules.mentions_in(comment.get("body")):
        return Ignore(f"the comment does not mention {rules.mentions[0]}")
    issue = as_dict(payload.get("issue"))
    number = _id(issue, "number", "issue", MAX_NUMBER)
    if number is None:
        return Ignore("the delivery names no issue number")
    facts = {"comment": _comment(comment), "issue": _issue(issue)}
    command = rules.command_in(comment.get("body"))
    if not issue.get("pull_request") and rules.campaign_label.casefold() in [
            name.casefold() for name in facts["issue"]["labels"]]:
        # A campaign's issue: the comments there steer the campaign, never a pull request of the issue's own.
        if command in ("rollout", "stop", "update", "retry"):
            return JobKind.CAMPAIGN, number, {"type": "campaign_command", "command": command, **facts}
        return Ignore(f"issue #{number} is a campaign's: comment `{rules.mentions[0]} rollout`, `stop`, `update` "
                      "or `retry` there")
    if command in ("rollout", "update"):
        return Ignore(f"`{rules.mentions[0]} {command}` works on a campaign's issue "
                      f"(labelled {rules.campaign_label!r})")
    if command == "fix_ci":
        if not issue.get("pull_request"):
            return Ignore("`fix ci` works on pull requests")
        # One more CI fix past HONK_CI_FIX_ROUNDS: whether the pull request is Honk's is for the job to check.
        return JobKind.FIX_CI, number, {"type": "fix_ci_command", **facts}
    if command:
        return JobKind.CONTROL, number, {"type": "command", "command": command, **facts}
    if issue.get("pull_request"):
        # Whether this is Honk's pull request needs the API (the comment's payload has no branch).
        return JobKind.FOLLOW_UP, number, {"type": "pr_comment", **facts}
    if as_str(issue.get("state")) == "closed":
        return Ignore(f"issue #{number} is closed")
    return JobKind.RESOLVE_ISSUE, number, {"type": "issue_comment", **facts}


def _pull_request_review(action: str, payload: dict[str, Any], rules: TriggerRules) -> _Route:
    if action != "submitted":
        return Ignore(f"pull_request_review.{_word(action)} does not ask Honk to work")
    review = as_dict(payload.get("review"))
    changes = as_str(review.get("state")).casefold() == "changes_requested"
    if not changes and not rules.mentions_in(review.get("body")):
        return Ignore(f"the review neither requests changes nor mentions {rules.mentions[0]}")
    # Changes requested without a mention is how reviewers talk to Honk's own pull requests; on anyone
    # else's pull request only a mention asks Honk to step in.
    return _on_pull(payload, rules, "review", {"review": _pick(
        review, "review", "id", "node_id", "body", "state", "html_url", "commit_id", "submitted_at") | {
        "user": _pick(as_dict(review.get("user")), "review.user", "login", "id", "type")}},
        honk_only=not rules.mentions_in(review.get("body")))


def _pull_request_review_comment(action: str, payload: dict[str, Any], rules: TriggerRules) -> _Route:
    if action != "created":
        return Ignore(f"pull_request_review_comment.{_word(action)}: only new comments are requests")
    comment = as_dict(payload.get("comment"))
    if not rules.mentions_in(comment.get("body")):
        return Ignore(f"the review comment does not mention {rules.mentions[0]}")
    return _on_pull(payload, rules, "review_comment", {"comment": _comment(comment) | _pick(
        comment, "comment", "path", "line", "original_line", "side", "diff_hunk", "in_reply_to_id",
        "pull_request_review_id", "commit_id")}, honk_only=False)


def _on_pull(payload: dict[str, Any], rules: TriggerRules, kind: str, facts: dict[str, Any], *,
             honk_only: bool) -> _Route:
    pull = as_dict(payload.get("pull_request"))
    number = _id(pull, "number", "pull_request", MAX_NUMBER)
    if number is None:
        return Ignore("the delivery names no pull request number")
    head = as_dict(pull.get("head"))
    if honk_only and not as_str(head.get("ref")).startswith(rules.branch_prefix):
        return Ignore(f"pull request #{number} is not Honk's (its branch does not start with "
                      f"{rules.branch_prefix!r})")
    if as_str(pull.get("state")) == "closed":
        return Ignore(f"pull request #{number} is closed")
    summary = _pick(pull, "pull_request", "number", "title", "body", "html_url", "state", "draft") | {
        "head": _pick(head, "pull_request.head", "ref", "sha") | {
            "repo": _pick(as_dict(head.get("repo")), "pull_request.head.repo", "full_name", "fork")},
        "base": _pick(as_dict(pull.get("base")), "pull_request.base", "ref", "sha"),
        "user": _pick(as_dict(pull.get("user")), "pull_request.user", "login", "id", "type")}
    return JobKind.FOLLOW_UP, number, {"type": kind, "pull_request": summary, **facts}


def _check_suite(action: str, payload: dict[str, Any], rules: TriggerRules) -> _Route:
    if action != "completed":
        return Ignore(f"Honk does not act on check_suite.{_word(action)} (only on a failed completion)")
    suite = as_dict(payload.get("check_suite"))
    app = as_dict(suite.get("app"))
    # Read strictly: a malformed id here must not pass for "not Honk's".
    if rules.app_id is not None and _id(app, "id", "check_suite.app") == rules.app_id:
        # Honk's own check run failing says its verifiers failed; fixing that is the run's job, never a CI fix.
        return Ignore("the check suite is Honk's own")
    decision = _ci_failure(payload, rules, "check_suite", "the check suite")
    if isinstance(decision, Ignore):
        return decision
    number, facts = decision
    return JobKind.FIX_CI, number, facts | {
        "check_suite": _pick(suite, "check_suite", "id", "url"),
        "app": _pick(app, "check_suite.app", "id", "slug", "name")}


def _workflow_run(action: str, payload: dict[str, Any], rules: TriggerRules) -> _Route:
    if action != "completed":
        return Ignore(f"Honk does not act on workflow_run.{_word(action)} (only on a failed completion)")
    decision = _ci_failure(payload, rules, "workflow_run", "the workflow run")
    if isinstance(decision, Ignore):
        return decision
    number, facts = decision
    return JobKind.FIX_CI, number, facts | {"workflow_run": _pick(
        as_dict(payload.get("workflow_run")), "workflow_run", "id", "name", "html_url", "run_attempt",
        "check_suite_id")}


def _ci_failure(payload: dict[str, Any], rules: TriggerRules, key: str,
                what: str) -> tuple[int, dict[str, Any]] | Ignore:
    """A failed suite or run (`payload[key]`) on the head of a Honk pull request: its number and the facts both
    kinds share. Whether Honk pushed that head needs the API: the job checks it."""
    ci = as_dict(payload.get(key))
    conclusion = as_str(ci.get("conclusion"))
    if not conclusion:
        return Ignore(f"{what} completed without a conclusion")
    if conclusion not in _CI_FAILED:
        return Ignore(f"{what} concluded {_word(conclusion)}")
    head_sha = as_str(ci.get("head_sha"))
    found = _honk_pull(payload, ci, rules, key, head_sha)
    if found is None:
        return Ignore(f"{what} on {_shown(ci.get('head_branch'))} is not on the head of a Honk pull request")
    number, pull = found
    shared = _pick(ci, key, "head_sha", "head_branch", "conclusion")
    return number, {"type": "ci", "source": key,
                    **{field: shared.get(field) for field in ("head_sha", "head_branch", "conclusion")},
                    "pull_request": pull}


def _check_run(action: str, payload: dict[str, Any], rules: TriggerRules) -> _Route:
    if action != "rerequested":
        return Ignore(f"check_run.{_word(action)} does not ask Honk to work (only Re-run on Honk's check run)")
    run = as_dict(payload.get("check_run"))
    name = as_str(run.get("name"))
    if rules.app_id is not None:
        app_id = _id(as_dict(run.get("app")), "id", "check_run.app")
        if app_id != rules.app_id:
            return Ignore(f"the check run {_shown(name)} is another app's, not Honk's")
    # Without its App id Honk knows its check run by name alone (GitHub sends `rerequested` only to the App that
    # made the run, so this is a weak check only where the id is unknown).
    if name != HONK_CHECK:
        return Ignore(f"the check run {_shown(name)} is not Honk's check run ({HONK_CHECK!r})")
    # A Re-run on an older commit still verifies the current head (CONTRACT.md section 6): no sha is required.
    found = _honk_pull(payload, run, rules, "check_run", "")
    if found is None:
        return Ignore("Honk's check run is not on a Honk pull request")
    number, pull = found
    return JobKind.RECHECK, number, {
        "type": "recheck", "head_sha": _pick(run, "check_run", "head_sha").get("head_sha"),
        "check_run": _pick(run, "check_run", "id", "name", "html_url"), "pull_request": pull}


def _honk_pull(payload: dict[str, Any], ci: dict[str, Any], rules: TriggerRules, key: str,
               head_sha: str) -> tuple[int, dict[str, Any]] | None:
    """The first of `ci`'s `pull_requests` that is Honk's (its head branch starts with the branch prefix), into this
    repository, with `head_sha` at its head when one is given; None when there is none."""
    pulls = ci.get("pull_requests")
    repository = as_id(as_dict(payload.get("repository")).get("id"))
    for place, pull in enumerate(pulls if isinstance(pulls, list) else []):
        pull = as_dict(pull)
        head = as_dict(pull.get("head"))
        if not as_str(head.get("ref")).startswith(rules.branch_prefix):
            continue
        if head_sha and as_str(head.get("sha")) != head_sha:
            continue  # a later push: this suite or run is on a commit that is no longer the head
        base = as_id(as_dict(as_dict(pull.get("base")).get("repo")).get("id"))
        if repository is not None and base is not None and base != repository:
            continue  # a pull request in another repository (a fork's suite lists its upstream's pull requests)
        where = f"{key}.pull_requests[{place}]"
        number = _id(pull, "number", where, MAX_NUMBER)
        if number is None:
            continue
        summary = _pick(pull, where, "number") | {"head": _pick(head, f"{where}.head", "ref", "sha")}
        if isinstance(pull.get("user"), dict):  # GitHub's minimal pull requests have none; kept when given
            summary["user"] = _pick(pull["user"], f"{where}.user", "login", "id", "type")
        return number, summary
    return None


_ROUTES = {
    "issues": _issues,
    "issue_comment": _issue_comment,
    "pull_request_review": _pull_request_review,
    "pull_request_review_comment": _pull_request_review_comment,
    "check_suite": _check_suite,
    "workflow_run": _workflow_run,
    "check_run": _check_run,
}


# ------------------------------------------------------------------------------------------------ Slack threads


# Check suites that say nothing about the code: no reply for them (a suite with no runs is skipped too).
_CHECKS_SILENT = {"neutral", "skipped", "stale"}
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_PULL_REF = re.compile(r"refs/pull/([1-9][0-9]{0,9})/(?:head|merge)")
MAX_URL = 2000  # an environment URL longer than this is no button (app/slack/blocks.py: URL_LIMIT)
MAX_REVIEW_BODY = 2000  # of a review's body kept for its summary (the reply shows at most 300 characters)


def notify_of(event: str, payload: Any, rules: TriggerRules, delivery_id: str = "") -> JobRequest | None:
    """News about a pull request for its Slack thread (CONTRACT.md section 8), or None: a NOTIFY request when Slack
    is on (`rules.notify`) and the delivery is one of

    - `check_suite.completed` on the head of a Honk pull request (not Honk's own suite; not a neutral, skipped or
      stale one, nor one without runs): the job replies once the head's checks are all done;
    - `deployment_status.created`, `success` with an `environment_url`: the preview. A deployment names a commit,
      not a pull request: the number is 0 unless its ref is `refs/pull/N/...`, and the job finds the pull request;
    - `pull_request.closed`, merged or not, of a Honk pull request;
    - `pull_request_review.submitted` requesting changes on a Honk pull request.

    A second, independent answer to a delivery: `decide` still says whether Honk works on it. Bots may send all of
    these (GitHub Actions' suites and deployments are a bot's), nobody is authorised (the job only writes into a
    thread that already follows this pull request, and acts on nothing), and most requests end quietly in the job
    with no thread to write to. Never raises; a malformed field means None."""
    if not rules.notify or not isinstance(payload, dict):
        return None
    route = _NOTIFY_ROUTES.get((event, as_str(payload.get("action"))))
    if route is None:
        return None
    try:
        found = route(payload, rules)
        if found is None:
            return None
        number, facts = found
        repository = as_dict(payload.get("repository"))
        repo = _name(repository, "full_name", "repository", MAX_REPO)
        installation = _id(as_dict(payload.get("installation")), "id", "installation")
        sender = as_dict(payload.get("sender"))
        requester = _name(sender, "login", "sender", MAX_LOGIN)
        trigger = {"delivery_id": as_text(delivery_id), "event": as_text(event),
                   "action": as_text(payload.get("action")), "type": "notify",
                   "sender": _pick(sender, "sender", "login", "id", "type"),
                   "repository": _pick(repository, "repository", "id", "full_name", "html_url"), **facts}
    except _Malformed:
        return None
    if not repo or not _REPO.fullmatch(repo) or {".", ".."} & set(repo.split("/")):
        return None
    if installation is None or not requester:
        return None
    return JobRequest(kind=JobKind.NOTIFY, repo=repo, number=number, requester=requester,
                      installation_id=installation, trigger=trigger)


_Notice = tuple[int, dict[str, Any]] | None


def _notify_checks(payload: dict[str, Any], rules: TriggerRules) -> _Notice:
    suite = as_dict(payload.get("check_suite"))
    app = as_dict(suite.get("app"))
    if rules.app_id is not None and _id(app, "id", "check_suite.app") == rules.app_id:
        return None  # Honk's own suite: its verdict is in the status message already
    conclusion = as_str(suite.get("conclusion"))
    if not conclusion or conclusion in _CHECKS_SILENT or suite.get("latest_check_runs_count") == 0:
        return None
    head_sha = as_str(suite.get("head_sha"))
    if not _SHA.fullmatch(head_sha):
        return None
    found = _honk_pull(payload, suite, rules, "check_suite", head_sha)
    if found is None:
        return None
    number, pull = found
    return number, {"news": "checks", "head_sha": head_sha, "conclusion": as_text(conclusion, 40),
                    "check_suite": _pick(suite, "check_suite", "id"),
                    "app": _pick(app, "check_suite.app", "id", "slug", "name"), "pull_request": pull}


def _notify_preview(payload: dict[str, Any], rules: TriggerRules) -> _Notice:
    status = as_dict(payload.get("deployment_status"))
    if as_str(status.get("state")) != "success":
        return None
    url = as_str(status.get("environment_url"))
    if not url.startswith(("https://", "http://")) or len(url) > MAX_URL or not url.isprintable() or " " in url:
        return None
    deployment = as_dict(payload.get("deployment"))
    sha = as_str(deployment.get("sha"))
    if not _SHA.fullmatch(sha):
        return None
    ref = as_str(deployment.get("ref"))
    named = _PULL_REF.fullmatch(ref)
    number = int(named.group(1)) if named and int(named.group(1)) <= MAX_NUMBER else 0
    return number, {"news": "preview", "head_sha": sha,
                    "deployment": _pick(deployment, "deployment", "id", "sha", "ref", "environment"),
                    "deployment_status": _pick(status, "deployment_status", "id", "state", "environment",
                                               "environment_url")}


def _notify_closed(payload: dict[str, Any], rules: TriggerRules) -> _Notice:
    found = _notify_pull(payload, rules)
    if found is None:
        return None
    number, pull, summary = found
    merged = pull.get("merged") is True or bool(as_str(pull.get("merged_at")))
    merged_by = _pick(as_dict(pull.get("merged_by")), "pull_request.merged_by", "login", "id", "type")
    return number, {"news": "merged" if merged else "closed",
                    "pull_request": summary | _pick(pull, "pull_request", "merged_at", "closed_at")
                    | {"merged": merged, "merged_by": merged_by}}


def _notify_review(payload: dict[str, Any], rules: TriggerRules) -> _Notice:
    review = as_dict(payload.get("review"))
    if as_str(review.get("state")).casefold() != "changes_requested":
        return None
    found = _notify_pull(payload, rules)
    if found is None:
        return None
    number, _, summary = found
    kept = _pick(review, "review", "id", "html_url", "state", "commit_id") | {
        "body": as_text(review.get("body"), MAX_REVIEW_BODY),
        "user": _pick(as_dict(review.get("user")), "review.user", "login", "id", "type")}
    return number, {"news": "changes_requested", "review": kept, "pull_request": summary}


def _notify_pull(payload: dict[str, Any], rules: TriggerRules
                 ) -> tuple[int, dict[str, Any], dict[str, Any]] | None:
    """The Honk pull request a `pull_request` or `pull_request_review` delivery is about: its number, the raw
    object and what the job keeps of it."""
    pull = as_dict(payload.get("pull_request"))
    number = _id(pull, "number", "pull_request", MAX_NUMBER)
    head = as_dict(pull.get("head"))
    if number is None or not as_str(head.get("ref")).startswith(rules.branch_prefix):
        return None
    return number, pull, _pick(pull, "pull_request", "number", "title", "html_url", "state") | {
        "head": _pick(head, "pull_request.head", "ref", "sha")}


_NOTIFY_ROUTES = {
    ("check_suite", "completed"): _notify_checks,
    ("deployment_status", "created"): _notify_preview,
    ("pull_request", "closed"): _notify_closed,
    ("pull_request_review", "submitted"): _notify_review,
}


# ------------------------------------------------------------------------------------------------ campaigns

_CAMPAIGN_BRANCH = re.compile(r"campaign-([1-9][0-9]{0,17})(?:-|$)")
_REVIEWS = {"approved": "approved", "changes_requested": "changes_requested", "commented": "commented"}


def campaign_news(event: str, payload: Any, rules: TriggerRules, delivery_id: str = "") -> JobRequest | None:
    """News of a campaign's pull request for the campaign's table (CONTRACT.md section 7), or None: a CAMPAIGN_SYNC
    request when the delivery is `pull_request.closed` (merged or not), `pull_request_review.submitted` or
    `check_suite.completed` (any app's suite, Honk's own included: a head is green when all its checks are) on a
    pull request whose head branch is a campaign's, `<prefix>campaign-<id>-...`.

    A further, independent answer to a delivery, like `notify_of`: `decide` still says whether Honk works on it
    (a review asking for changes is also a follow-up). Bots may send these and nobody is authorised: the job only
    records what it reads back from GitHub about the campaign's own pull request. Never raises."""
    if not isinstance(payload, dict):
        return None
    action = as_str(payload.get("action"))
    try:
        found = _campaign_pull(event, action, payload, rules)
        if found is None:
            return None
        campaign_id, number, facts = found
        repo = _name(as_dict(payload.get("repository")), "full_name", "repository", MAX_REPO)
        installation = _id(as_dict(payload.get("installation")), "id", "installation")
        sender = as_dict(payload.get("sender"))
        requester = _name(sender, "login", "sender", MAX_LOGIN) or "github"
    except _Malformed:
        return None
    if not repo or not _REPO.fullmatch(repo) or {".", ".."} & set(repo.split("/")) or installation is None:
        return None
    trigger = {"delivery_id": as_text(delivery_id), "event": as_text(event), "action": as_text(action),
               "type": "campaign_sync", "campaign_id": campaign_id, "target_repo": repo, "pull_number": number,
               **facts}
    return JobRequest(kind=JobKind.CAMPAIGN_SYNC, repo=repo, number=number, requester=requester,
                      installation_id=installation, trigger=trigger, delay_seconds=1.0)


def _campaign_pull(event: str, action: str, payload: dict[str, Any], rules: TriggerRules
                   ) -> tuple[int, int, dict[str, Any]] | None:
    if event == "check_suite" and action == "completed":
        suite = as_dict(payload.get("check_suite"))
        head_sha = as_str(suite.get("head_sha"))
        if not _SHA.fullmatch(head_sha):
            return None
        found = _honk_pull(payload, suite, rules, "check_suite", head_sha)
        if found is None:
            return None
        number, pull = found
        news = {"news": "checks", "head_sha": head_sha}
        head_ref = as_str(as_dict(pull.get("head")).get("ref"))
    elif (event, action) in (("pull_request", "closed"), ("pull_request_review", "submitted")):
        pull = as_dict(payload.get("pull_request"))
        number = _id(pull, "number", "pull_request", MAX_NUMBER)
        head = as_dict(pull.get("head"))
        head_ref, head_sha = as_str(head.get("ref")), as_str(head.get("sha"))
        if number is None:
            return None
        if event == "pull_request":
            merged = pull.get("merged") is True or bool(as_str(pull.get("merged_at")))
            news = {"news": "merged" if merged else "closed"}
        else:
            state = _REVIEWS.get(as_str(as_dict(payload.get("review")).get("state")).casefold())
            if state is None:
                return None
            news = {"news": "review", "review": state}
        if _SHA.fullmatch(head_sha):
            news["head_sha"] = head_sha
    else:
        return None
    if not head_ref.startswith(rules.branch_prefix):
        return None
    match = _CAMPAIGN_BRANCH.match(head_ref[len(rules.branch_prefix):])
    if match is None:
        return None
    return int(match.group(1)), number, news


def _subject_key(event: str) -> str:
    return {"issues": "issue", "pull_request_review": "review"}.get(event, "comment")


def _issue(issue: dict[str, Any]) -> dict[str, Any]:
    labels = issue.get("labels")
    return _pick(issue, "issue", "id", "node_id", "number", "title", "body", "html_url", "state") | {
        "user": _pick(as_dict(issue.get("user")), "issue.user", "login", "id", "type"),
        "labels": [as_text(label.get("name")) for label in labels if isinstance(label, dict)]
        if isinstance(labels, list) else [],
        "is_pull_request": bool(issue.get("pull_request")),
    }


def _comment(comment: dict[str, Any]) -> dict[str, Any]:
    return _pick(comment, "comment", "id", "node_id", "body", "html_url", "created_at") | {
        "user": _pick(as_dict(comment.get("user")), "comment.user", "login", "id", "type")}


# The fields Honk keeps, by the type GitHub's schema gives them; every other field kept is a string.
_IDS = {"id": MAX_ID, "in_reply_to_id": MAX_ID, "pull_request_review_id": MAX_ID, "number": MAX_NUMBER,
        "line": MAX_NUMBER, "original_line": MAX_NUMBER, "check_suite_id": MAX_ID, "run_attempt": MAX_NUMBER}
_FLAGS = {"private", "fork", "draft"}
_REPO = re.compile(r"[^/\s]+/[^/\s]+")


def _pick(source: dict[str, Any], where: str, *keys: str) -> dict[str, Any]:
    """The keys that `source` (the payload's `where`) has, each as GitHub types it or null. A number that is
    not one is a malformed delivery; text is made storable; anything else (an object for a title) is left out."""
    picked: dict[str, Any] = {}
    for key in keys:
        if key not in source:
            continue
        value = source[key]
        if value is None:
            picked[key] = None
        elif key in _IDS:
            picked[key] = _id(source, key, where, _IDS[key])
        elif key in _FLAGS:
            if isinstance(value, bool):
                picked[key] = value
        elif isinstance(value, str):
            picked[key] = as_text(value)
    return picked


def _id(source: dict[str, Any], key: str, where: str, maximum: int = MAX_ID) -> int | None:
    """`source[key]` as a whole number from 1 to `maximum`; None when absent or null. Anything else there is a
    malformed delivery (raised, so that `decide` ignores it, naming the field)."""
    value = source.get(key)
    if value is None:
        return None
    number = as_id(value, maximum)
    if number is None:
        raise _Malformed(f"{where}.{key} is {_shown(value)}, not a whole number from 1 to {maximum}")
    return number


def _name(source: dict[str, Any], key: str, where: str, limit: int) -> str:
    """A name (a login, a repository's full name): "" when absent. Text with white space or control characters,
    or longer than `limit`, is a malformed delivery."""
    value = source.get(key)
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or len(value) > limit or not value.isprintable() or " " in value:
        raise _Malformed(f"{where}.{key} is {_shown(value)}, not a GitHub name")
    return value


def _shown(value: Any, limit: int = 60) -> str:
    """A short, storable rendering of a payload value for a reason: strings quoted, containers by their type."""
    if isinstance(value, str):
        shown = repr(value[:limit])
        return shown if len(value) <= limit and len(shown) <= limit + 2 else shown[:limit + 1] + "…"
    if isinstance(value, bool | float) or value is None:
        return repr(value)
    if isinstance(value, int):
        digits = str(value) if value.bit_length() < 200 else f"a {value.bit_length()}-bit number"
        return digits[:limit]
    return "an object" if isinstance(value, dict) else "a list" if isinstance(value, list) else type(value).__name__


def _word(action: str) -> str:
    return as_text(action, 60) or "?"


@functools.lru_cache(maxsize=16)
def _rules(label: str, mentions: tuple[str, ...], branch_prefix: str, app_id: int | None,
           notify: bool = False, campaign_label: str = "honk-campaign") -> TriggerRules:
    return TriggerRules(label, mentions, branch_prefix, app_id, notify, campaign_label)
