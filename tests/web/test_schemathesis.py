"""Schemathesis against Honk's own OpenAPI schema: every route, and no answer a 5xx (CONTRACT.md section 2).

The app serves no schema (openapi_url=None), but FastAPI builds it all the same (`app.openapi()`). Two routes read
their bodies raw, which FastAPI cannot see: the webhook receiver (JSON, signed) and the login form (form-encoded).
`honest_schema` adds what they take, so that schemathesis sends them bodies worth sending: for the webhook, the
fields the trigger rules read, typed as GitHub types them, with Honk's label and mention among the strings. Every
webhook case is signed with the test secret, so that the body gets past the signature check to the trigger
rules and the database.

Each operation runs a bounded number of examples against a real Honk on loopback: with the job pages open
(loopback, no token) on SQLite and on PostgreSQL, and behind HONK_DASHBOARD_TOKEN on SQLite; with schemathesis's
positive and negative generation (values outside the schema too), checking only `not_a_server_error`.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core import NotSet
from schemathesis.generation.modes import GenerationMode

from app.process import HonkState
from app.settings import Settings
from app.web.app import create_app
from tests.fakes.slack_events import SIGNING_SECRET as SLACK_SECRET
from tests.fakes.slack_events import app_mention, event_callback
from tests.fakes.slack_events import signed_headers as slack_headers
from tests.support import labeled_payload, live_server, sign

EXAMPLES = 40  # per operation and configuration (three times as many for the webhook)
TOKEN = "a dashboard token long enough to pass"
WEBHOOK = "/api/github/webhooks"
SLACK = "/api/slack/events"


def _text(*likely: str) -> dict[str, Any]:
    """Any string, often one of the values Honk acts on. (The branches must not overlap: schemathesis merges
    `anyOf: [{enum}, {type: string}]` into the plain string and then never draws from the enum.)"""
    return _either({"enum": list(likely)}) if likely else {"type": "string"}


def _either(special: dict[str, Any]) -> dict[str, Any]:
    """Any string: often a `special` one."""
    return {"anyOf": [special, {"type": "string", "not": special}]}


def _object(*required: str, **properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required or properties)}


ID = {"type": "integer", "format": "int64", "minimum": 1}  # GitHub's ids, and Honk's job ids
NUMBER = {"type": "integer", "format": "int32", "minimum": 1}  # issue and pull request numbers (GraphQL's Int)
# Read as ASCII digits: a small number, or one past 64 bits (left to itself, the generator rarely writes those).
DIGITS = _either({"type": "string", "pattern": "^(?:[0-9]{1,3}|[0-9]{19,25})$"})
LOGIN = {"type": "string", "pattern": "^[A-Za-z0-9](?:[A-Za-z0-9-]{0,37}[A-Za-z0-9])?$"}  # GitHub's rule
REPO = {"type": "string", "pattern": "^[A-Za-z0-9-]{1,39}/[A-Za-z0-9._-]{1,100}$"}
USER = _object(login=LOGIN, id=ID, type={"enum": ["User", "Bot", "Organization"]})
DELIVERY = _object(
    action=_text("labeled", "created", "submitted"),
    installation=_object(id=ID),
    sender=USER,
    repository=_object(id=ID, full_name=REPO, private={"type": "boolean"}, default_branch=_text("main")),
    label=_object(name=_text("honk", "HONK")),
    issue=_object("number", "state", "title", number=NUMBER, id=ID, state={"enum": ["open", "closed"]},
                  title=_text(), body=_text("@honk fix"), user=USER,
                  labels={"type": "array", "items": _object(name=_text("honk"))}, pull_request=_object(url=_text())),
    comment=_object("id", "body", "user", id=ID, body=_text("@honk fix it", "@honk stop", "@honk retry"), user=USER,
                    line=NUMBER, in_reply_to_id=ID, pull_request_review_id=ID, path=_text("widgets.py"),
                    performed_via_github_app=_object(id=ID)),
    review=_object("id", "state", "body", id=ID, body=_text("@honk fix"),
                   state={"enum": ["approved", "changes_requested", "commented", "dismissed"]}, user=USER),
    pull_request=_object("number", "state", "head", number=NUMBER, state={"enum": ["open", "closed"]},
                         title=_text(), draft={"type": "boolean"},
                         head=_object(ref=_text("honk/issue-7"), sha=_text(),
                                      repo=_object(full_name=REPO, fork={"type": "boolean"})),
                         user=USER),
)
SLACK_ID = {"type": "string", "pattern": "^[A-Z0-9]{1,12}$"}
TS = _either({"type": "string", "pattern": "^[0-9]{10}\\.[0-9]{6}$"})
SLACK_EVENT = _object(
    "type", "event_id", "team_id", "event",
    type=_text("event_callback", "url_verification"), event_id=_text(), team_id=SLACK_ID, challenge=_text(),
    authorizations={"type": "array", "items": _object(user_id=SLACK_ID, is_bot={"type": "boolean"})},
    event=_object("type", "user", "channel", "ts", "text",
                  type=_text("app_mention", "message"), user=SLACK_ID, channel=SLACK_ID, ts=TS, thread_ts=TS,
                  text=_text("<@U0HONKBOT> acme/widgets fix the spinner"), channel_type=_text("im", "channel"),
                  subtype=_text("message_changed", "bot_message"), bot_id=_text(),
                  files={"type": "array", "items": _object(name=_text(), permalink=_text())}),
)
EVENTS = ["issues", "issue_comment", "pull_request_review", "pull_request_review_comment", "ping", "push"]
ACTIONS = {"labeled": ["issues"], "created": ["issue_comment", "pull_request_review_comment"],
           "submitted": ["pull_request_review"]}


def honest_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The app's OpenAPI, plus what the routes that read raw bodies take and answer."""
    schema = copy.deepcopy(schema)
    paths = schema["paths"]
    hook = paths[WEBHOOK]["post"]
    hook["parameters"] = [
        {"name": "X-GitHub-Event", "in": "header", "required": True,
         "schema": _either({"enum": EVENTS})},
        {"name": "X-GitHub-Delivery", "in": "header", "required": True, "schema": {"type": "string", "maxLength": 100}},
    ]
    hook["parameters"][0]["example"] = "issues"
    # A delivery that asks for work, as GitHub sends it: schemathesis sends it as well as what it generates, so
    # that a job is queued (and the job pages below have one to show).
    hook["requestBody"] = {"required": True, "content": {"application/json": {
        "schema": DELIVERY, "examples": {"labeled": {"value": labeled_payload()}}}}}
    hook["responses"] = {str(code): {"description": what} for code, what in (
        (200, "ignored, with the reason, or a duplicate"), (202, "queued"), (400, "not JSON, or headers missing"),
        (401, "missing or wrong signature"), (413, "over 25 MiB"))}
    # Slack's events, signed in `_call` with the fake's secret, so that they get past Bolt to Honk's listeners.
    slack = paths[SLACK]["post"]
    mention = event_callback(app_mention("acme/widgets fix the spinner", "U0ALICE", "C0GENERAL")).payload
    slack["requestBody"] = {"required": True, "content": {"application/json": {
        "schema": SLACK_EVENT, "examples": {"mention": {"value": mention}}}}}
    slack["responses"] = {str(code): {"description": what} for code, what in (
        (200, "stored (queued, ignored or duplicate), or the challenge"), (400, "signed, but not readable"),
        (401, "missing, wrong or stale signature"), (404, "Slack is not configured"), (413, "over 1 MiB"))}
    paths["/login"]["post"]["requestBody"] = {"content": {"application/x-www-form-urlencoded": {
        "schema": _object(token={"type": "string"}, next=_text("/jobs", "//elsewhere", "https://elsewhere"))}}}
    # The job pages: a job id is a 64-bit id (any other whole number is a 404); page and per are read as digits
    # (anything else is the default).
    for path in ("/jobs/{job_id}", "/api/jobs/{job_id}"):
        for parameter in paths[path]["get"]["parameters"]:
            if parameter["name"] == "job_id":
                parameter["schema"], parameter["example"] = ID, 1
    for parameter in paths["/jobs"]["get"]["parameters"]:
        if parameter["name"] in ("page", "per"):
            parameter["schema"] = DIGITS
        elif parameter["name"] == "status":
            parameter["schema"] = _text("queued", "running", "succeeded", "failed", "cancelled")
        elif parameter["name"] == "repo":
            parameter["schema"] = _text("acme/widgets")
    return schema


# Every route the app has; a new one must be added here (and so be fuzzed) for this test to pass.
OPERATIONS = {"POST /api/github/webhooks", "GET /setup", "GET /setup/callback", "GET /login", "POST /login",
              "POST /logout", "GET /jobs", "GET /jobs/{job_id}", "GET /api/jobs/{job_id}", "GET /metrics",
              "GET /healthz", "GET /", "GET /spend", "GET /api/spend", "POST /api/slack/events", "GET /slack/link",
              "GET /auth/github/callback", "GET /campaigns", "GET /campaigns/{campaign_id}", "GET /api/campaigns",
              "GET /api/campaigns/{campaign_id}"}


@pytest.fixture(params=[("open", "sqlite"), ("open", "postgres"), ("token", "sqlite")],
                ids=["open-sqlite", "open-postgres", "token-sqlite"])
def honk_api(request: pytest.FixtureRequest, make_settings: Callable[..., Settings],
             tmp_path: Path) -> Iterator[Any]:
    """Honk on loopback (job pages open, or behind a token), and its schema pointed at it. The token only
    changes who may see what, so it runs on SQLite alone."""
    access, database = request.param
    url = f"sqlite:///{tmp_path / 'honk.db'}" if database == "sqlite" else request.getfixturevalue("postgres_url")
    token = {"honk_dashboard_token": TOKEN} if access == "token" else {}
    # Slack on (its Web API on a closed port: intake never calls it), so that its routes are fuzzed past the 404.
    slack = {"slack_bot_token": "xoxb-fuzz", "slack_signing_secret": SLACK_SECRET,
             "slack_api_url": "http://127.0.0.1:9/api/"}
    state = HonkState.create(make_settings(honk_database_url=url, **token, **slack))
    state.db.migrate()
    app = create_app(state)
    try:
        with live_server(app) as base_url:
            schema = schemathesis.openapi.from_dict(honest_schema(app.openapi()))
            schema.config.update(base_url=base_url)
            yield schema
    finally:
        state.db.dispose()


def _call(case: Any) -> None:
    extra: dict[str, Any] = {}
    if case.path == WEBHOOK:
        # Signed over exactly the bytes sent, so that the body reaches the trigger rules and the database.
        body = b"" if isinstance(case.body, NotSet) else case.body if isinstance(case.body, bytes) else \
            json.dumps(case.body).encode()
        headers = {"X-Hub-Signature-256": sign(body), "Content-Type": "application/json"}
        generated = case.headers if isinstance(case.headers, dict) else {}
        if "X-GitHub-Delivery" not in generated:
            headers["X-GitHub-Delivery"] = str(uuid.uuid4())
        # A GitHub event goes with its action, as GitHub sends them, so that cases reach the trigger rules' end
        # (schemathesis cannot tie a header to a body field); other events and any other header stay as generated.
        action = case.body.get("action") if isinstance(case.body, dict) else None
        if generated.get("X-GitHub-Event") in EVENTS and action in ACTIONS:
            headers["X-GitHub-Event"] = ACTIONS[action][len(body) % len(ACTIONS[action])]
        extra = {"data": body, "headers": headers}
    elif case.path == SLACK:
        body = b"" if isinstance(case.body, NotSet) else case.body if isinstance(case.body, bytes) else \
            json.dumps(case.body).encode()
        extra = {"data": body, "headers": slack_headers(body)}
    elif case.path.startswith(("/jobs", "/api/jobs", "/metrics")) and len(case.formatted_path + str(case.query)) % 3:
        # Two in three with the token (ignored by a Honk without one), so that behind it the pages are shown too.
        extra = {"headers": {"Authorization": f"Bearer {TOKEN}"}}
    case.call_and_validate(checks=[not_a_server_error], **extra)


def test_no_route_answers_a_5xx(honk_api: Any) -> None:
    """Through schemathesis's Python API (its pytest fixture loader, `schemathesis.pytest.from_fixture`, sets
    `request.node._nodeid`, which pytest 9.2 no longer has): each operation in turn, positive and negative cases
    and the schema's examples, and every failing operation reported together."""
    operations = [result.ok() for result in honk_api.get_all_operations()]
    assert {operation.label for operation in operations} == OPERATIONS
    failures: list[str] = []
    for operation in operations:
        cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                          operation.as_strategy(GenerationMode.NEGATIVE),
                          *honk_api.get_strategies_from_examples(operation))

        @settings(max_examples=EXAMPLES * (3 if operation.path == WEBHOOK else 1), deadline=None, database=None,
                  print_blob=True, suppress_health_check=list(HealthCheck))
        @given(case=cases)
        def no_5xx(case: Any) -> None:
            _call(case)

        try:
            no_5xx()
        except (Exception, BaseExceptionGroup) as exc:  # one operation's failure must not hide another's
            failures.append(f"{operation.label}: {type(exc).__name__}: {exc}")
    assert not failures, "\n\n".join(failures)
