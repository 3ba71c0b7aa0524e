"""Malformed deliveries (CONTRACT.md section 2: bad input never gets a 5xx).

Each of these once got a 500 or a 503, or was stored and then broke the job pages:

- a 20-digit `issue.number` or `installation.id` (OverflowError: Python int too large for SQLite INTEGER;
  PostgreSQL: out of range, a 503 "the database is not answering"), and on PostgreSQL any issue number past
  2**31 - 1 (jobs.number is INTEGER there) and `installation.id: true` (a bool is not a BIGINT);
- a lone surrogate (`"\\ud800"`, valid JSON) in the sender's login or the repository's name (UnicodeEncodeError
  on SQLite and PostgreSQL alike), a NUL or 101 characters in them (PostgreSQL refuses them);
- a lone surrogate, NaN or an object in a field the job keeps (the issue's title): stored, and then every job page
  listing it answered 500;
- a comment of blank lines: the mention rules took time quadratic in its lines, on the event loop.

The trigger rules now ignore such a delivery with a reason that names the field, and keep only storable facts.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from app.intake.triggers import MAX_NUMBER, Ignore, TriggerRules, decide
from app.process import HonkState
from app.queue.requests import JobRequest
from app.untyped import MAX_ID, as_id, as_text
from app.web.app import create_app
from tests.intake.test_triggers import comment_payload, review_comment_payload, review_payload
from tests.support import delivery_headers, labeled_payload, live_server, post_delivery

RULES = TriggerRules(label="honk", mentions=("@honk",), branch_prefix="honk/", app_id=77)
TWENTY_DIGITS = 99999999999999999999


# The helpers


@pytest.mark.parametrize(("value", "expected"), [
    (1, 1), (MAX_ID, MAX_ID), (MAX_ID + 1, None), (TWENTY_DIGITS, None), (0, None), (-1, None), (True, None),
    (False, None), (7.0, None), ("7", None), (None, None), ([7], None), (math.nan, None),
])
def test_as_id_takes_only_whole_numbers_a_64_bit_column_holds(value: Any, expected: int | None) -> None:
    assert as_id(value) == expected


def test_as_id_takes_a_lower_maximum() -> None:
    assert as_id(MAX_NUMBER, MAX_NUMBER) == MAX_NUMBER and as_id(MAX_NUMBER + 1, MAX_NUMBER) is None


@pytest.mark.parametrize(("value", "expected"), [
    ("plain", "plain"), ("héllo 𝄞", "héllo 𝄞"), ("a\x00b", "a\ufffdb"), ("a\ud800b\udfff", "a\ufffdb\ufffd"),
    (5, ""), (None, ""),
])
def test_as_text_is_storable_text(value: Any, expected: str) -> None:
    assert as_text(value) == expected
    as_text(value).encode()  # UTF-8 can hold it


def test_as_text_cuts_to_a_limit() -> None:
    assert as_text("x" * 500, 100) == "x" * 100


# The trigger rules


def _ignored(event: str, payload: dict[str, Any]) -> str:
    decision = decide(event, payload, RULES, "d-1")
    assert isinstance(decision, Ignore), decision
    assert decision.reason.encode()  # storable and sendable
    return decision.reason


@pytest.mark.parametrize("value", [TWENTY_DIGITS, MAX_ID + 1, MAX_NUMBER + 1, 0, -7, True, 7.0, "7", [7], {"n": 7}])
def test_an_issue_number_github_never_sends_is_a_malformed_delivery(value: Any) -> None:
    payload = labeled_payload()
    payload["issue"]["number"] = value
    reason = _ignored("issues", payload)
    assert reason.startswith("malformed delivery: issue.number is ") and str(MAX_NUMBER) in reason


@pytest.mark.parametrize("value", [TWENTY_DIGITS, MAX_ID + 1, 0, -1, True, False, 42.0, "42"])
def test_an_installation_id_github_never_sends_is_a_malformed_delivery(value: Any) -> None:
    payload = labeled_payload()
    payload["installation"]["id"] = value
    assert _ignored("issues", payload).startswith("malformed delivery: installation.id is ")


def test_the_largest_ids_github_could_send_are_taken() -> None:
    payload = labeled_payload(number=MAX_NUMBER, installation=MAX_ID)
    payload["sender"]["id"] = payload["issue"]["id"] = MAX_ID
    decision = decide("issues", payload, RULES)
    assert isinstance(decision, JobRequest)
    assert (decision.number, decision.installation_id) == (MAX_NUMBER, MAX_ID)
    assert decision.trigger["sender"]["id"] == MAX_ID


PAYLOADS: dict[str, Callable[[], dict[str, Any]]] = {
    "issues": labeled_payload,
    "issue_comment": lambda: comment_payload("@honk fix"),
    "pull_request_review": lambda: review_payload("changes_requested"),
    "pull_request_review_comment": lambda: review_comment_payload("@honk fix"),
}
STORED_NUMBERS = [(event, tuple(field.split("."))) for event, fields in {
    "issues": ["sender.id", "repository.id", "issue.id", "issue.user.id"],
    "issue_comment": ["comment.id", "issue.number", "comment.user.id"],
    "pull_request_review": ["review.id", "pull_request.number", "review.user.id"],
    "pull_request_review_comment": ["comment.in_reply_to_id", "comment.pull_request_review_id", "comment.line",
                                    "pull_request.user.id"],
}.items() for field in fields]


@pytest.mark.parametrize(("event", "field"), STORED_NUMBERS, ids=[f"{e}:{'.'.join(f)}" for e, f in STORED_NUMBERS])
@pytest.mark.parametrize("value", [TWENTY_DIGITS, -1, True, "12"], ids=["20-digits", "negative", "true", "string"])
def test_every_number_that_would_be_stored_is_bounded(event: str, field: tuple[str, ...], value: Any) -> None:
    payload = PAYLOADS[event]()
    assert isinstance(decide(event, payload, RULES), JobRequest)  # as it is, it asks for work
    node = payload
    for key in field[:-1]:
        node = node.setdefault(key, {})
    node[field[-1]] = value
    reason = _ignored(event, payload)
    assert reason.startswith(f"malformed delivery: {'.'.join(field)} is "), reason


def test_a_null_or_missing_id_is_thin_not_malformed() -> None:
    payload = review_comment_payload("@honk use a constant")
    payload["comment"]["in_reply_to_id"] = None
    payload["comment"]["line"] = None  # an outdated review comment
    del payload["sender"]["id"]
    decision = decide("pull_request_review_comment", payload, RULES)
    assert isinstance(decision, JobRequest)
    assert decision.trigger["comment"]["line"] is None and "id" not in decision.trigger["sender"]


def test_the_app_id_check_does_not_take_true_for_1() -> None:
    payload = comment_payload("@honk again")
    payload["comment"]["performed_via_github_app"] = {"id": True}
    assert isinstance(decide("issue_comment", payload, TriggerRules(app_id=1)), JobRequest)


@pytest.mark.parametrize(("field", "value"), [
    (("sender", "login"), "a\ud800"), (("sender", "login"), "a\x00"), (("sender", "login"), "x" * 101),
    (("sender", "login"), "two words"), (("sender", "login"), 7),
    (("repository", "full_name"), "acme/\ud800"), (("repository", "full_name"), "acme/" + "w" * 250),
    (("repository", "full_name"), "acme/wid\ngets"), (("repository", "full_name"), ["acme/widgets"]),
])
def test_names_that_no_column_can_hold_are_a_malformed_delivery(field: tuple[str, str], value: Any) -> None:
    payload = labeled_payload()
    payload[field[0]][field[1]] = value
    assert _ignored("issues", payload).startswith(f"malformed delivery: {'.'.join(field)} is ")


@pytest.mark.parametrize("full_name", ["acme", "acme/", "/widgets", "acme/widgets/extra", "acme/..", "./x"])
def test_a_repository_that_is_not_owner_slash_name_is_named_as_none(full_name: str) -> None:
    payload = labeled_payload()
    payload["repository"]["full_name"] = full_name
    assert _ignored("issues", payload) == "the delivery names no repository"


@pytest.mark.parametrize("action", ["x\ud800", "x\x00y", "z" * 10_000])
def test_reasons_quoting_the_action_are_storable_and_short(action: str) -> None:
    for event, body in (("issues", labeled_payload()), ("issue_comment", comment_payload("@honk"))):
        body["action"] = action
        reason = _ignored(event, body)
        assert "\x00" not in reason and len(reason) <= 500


def test_reasons_quoting_a_label_or_a_login_are_storable_and_short() -> None:
    label = _ignored("issues", labeled_payload(label="x\ud800\x00" * 1000))
    assert label.startswith("the label 'x\\ud800\\x00") and len(label) < 100
    assert "is a bot" in _ignored("issues", labeled_payload(sender="b\ud800ot", sender_type="Bot"))


def test_facts_keep_githubs_types_and_storable_text() -> None:
    payload = labeled_payload()
    issue = payload["issue"]
    issue.update(title={"nested": ["object"]}, body="fix \ud800 this\x00", html_url=math.nan, labels=5,
                 node_id=math.inf)
    payload["repository"].update(private="yes", fork=None, default_branch=["main"])
    decision = decide("issues", payload, RULES)
    assert isinstance(decision, JobRequest)
    kept = decision.trigger["issue"]
    assert "title" not in kept and "html_url" not in kept and "node_id" not in kept
    assert kept["body"] == "fix \ufffd this\ufffd" and kept["labels"] == []
    assert "private" not in decision.trigger["repository"] and decision.trigger["repository"]["fork"] is None
    assert "default_branch" not in decision.trigger["repository"]
    # What is kept is plain JSON that any database and any answer can hold.
    json.dumps(decision.trigger, allow_nan=False).encode()


def test_a_comment_of_blank_lines_is_read_in_linear_time() -> None:
    """GitHub takes comments of up to 65,536 characters; with `^\\s*` in the code and quote patterns these took
    about 45 seconds together, on the event loop (no timing assertion here: a regression shows as a slow suite)."""
    for filler, times, asked in (("\n", 65_000, True), ("\n ", 32_500, True), (" \t\n", 21_000, True),
                                 ("```\n", 16_000, True), ("```\n", 16_001, False), ("> \n", 21_000, True)):
        assert RULES.mentions_in(filler * times + "@honk fix") is asked, (filler, times)
    assert RULES.mentions_in("```\ncode\n```\n   > quoted @honk\n\n  @honk fix it")
    assert not RULES.mentions_in("  ```\n@honk inside an indented fence\n  ```")


# Over real HTTP, on SQLite and PostgreSQL


@pytest.fixture
def served(state: HonkState) -> Iterator[httpx.Client]:
    with live_server(create_app(state)) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield client


def _storable_answer(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code < 500, answer.text
    return answer.json()


@pytest.mark.parametrize("where", ["issue.number", "installation.id"])
def test_a_signed_delivery_with_a_20_digit_number_is_ignored_not_a_500(served: httpx.Client, state: HonkState,
                                                                      where: str) -> None:
    """The finding as reported: `issues.labeled` with a 20-digit issue.number or installation.id got 500."""
    payload = labeled_payload()
    outer, inner = where.split(".")
    payload[outer][inner] = TWENTY_DIGITS
    answer = post_delivery(served, "issues", payload)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "ignored" and body["reason"].startswith(f"malformed delivery: {where} is ")
    assert sum(state.queue.depth().values()) == 0


HOSTILE = {  # what once got a 5xx, and where
    "number 2**31 (INTEGER on PostgreSQL)": lambda p: p["issue"].update(number=MAX_NUMBER + 1),
    "number true": lambda p: p["issue"].update(number=True),
    "installation true (BIGINT on PostgreSQL)": lambda p: p["installation"].update(id=True),
    "installation 2**63": lambda p: p["installation"].update(id=MAX_ID + 1),
    "login with a surrogate (UTF-8, both)": lambda p: p["sender"].update(login="a\ud800"),
    "login with NUL (PostgreSQL)": lambda p: p["sender"].update(login="a\x00"),
    "login of 101 (VARCHAR(100) on PostgreSQL)": lambda p: p["sender"].update(login="a" * 101),
    "repository of 305 (VARCHAR(250) on PostgreSQL)": lambda p: p["repository"].update(full_name="acme/" + "w" * 300),
    "repository with a surrogate and NUL": lambda p: p["repository"].update(full_name="acme/\ud800\x00"),
    "closed, number a surrogate (quoted in the reason)": lambda p: p["issue"].update(state="closed", number="\ud800"),
    "label with NUL and a surrogate (quoted in the reason)": lambda p: p.update(label={"name": "bug\x00\ud800"}),
    "bot whose login is a surrogate (quoted in the reason)": lambda p: p["sender"].update(type="Bot", login="\ud800"),
    "repository id NaN (JSON column on PostgreSQL)": lambda p: p["repository"].update(id=math.nan),
}


def test_hostile_values_in_a_signed_delivery_are_ignored_with_a_reason(served: httpx.Client) -> None:
    for what, mutate in HOSTILE.items():
        payload = copy.deepcopy(labeled_payload())
        mutate(payload)
        body = json.dumps(payload).encode()  # json.dumps writes NaN, and Python's json (GitHub's too) reads it
        answer = served.post("/api/github/webhooks", content=body, headers=delivery_headers("issues", body))
        assert answer.status_code == 200, (what, answer.text)
        assert _storable_answer(answer)["status"] == "ignored", what


def test_a_queued_job_from_a_hostile_delivery_still_shows(served: httpx.Client) -> None:
    """The job is queued (its facts are storable), and its page, its JSON and the list all answer 200."""
    for title in ("\ud800", math.nan, math.inf, {"a": [1]}, [[[[]]]] * 3, "a\x00b"):
        payload = labeled_payload()
        payload["issue"]["title"] = title
        payload["issue"]["body"] = "body \ud800\x00"
        body = json.dumps(payload).encode()
        answer = served.post("/api/github/webhooks", content=body, headers=delivery_headers("issues", body))
        assert answer.status_code == 202, (title, answer.text)
        job = answer.json()["job"]
        for path in (f"/api/jobs/{job}", f"/jobs/{job}", "/jobs"):
            shown = served.get(path)
            assert shown.status_code == 200, (title, path, shown.text[:500])
        assert served.get(f"/api/jobs/{job}").json()["trigger"]["issue"]["body"] == "body \ufffd\ufffd"


def test_the_action_is_stored_without_a_5xx(served: httpx.Client) -> None:
    """The delivery's `action` is stored by the webhook route itself (deliveries.action, VARCHAR(100)), not by
    the trigger rules: a lone surrogate, a NUL or 101 characters must not get a 5xx there either."""
    for action in ("labeled\ud800", "labeled\x00", "l" * 101):
        payload = labeled_payload()
        payload["action"] = action
        answer = post_delivery(served, "issues", payload)
        assert answer.status_code < 500, (action[:20], answer.status_code, answer.text)
