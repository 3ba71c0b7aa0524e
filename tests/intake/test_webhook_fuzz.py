"""Fuzzing the webhook route with GitHub's own deliveries (CONTRACT.md section 2: bad input never gets a 5xx).

Each example takes one of the real deliveries in ../shared/fixtures/webhooks (see its SOURCES.md), often makes it
ask Honk for work first (label `honk`, mention `@honk`, changes requested on a `honk/` branch) so that it goes all
the way to a stored job, then mutates it: values replaced by huge, negative, fractional, boolean and non-finite
numbers, lone surrogates, NUL, long and odd text, nested or missing objects, raw JSON tokens that Python's json
reads (`NaN`, `1e400`, 5,000 digits, nesting 5,000 deep). It is signed with the test secret and posted to a real
Honk on loopback (SQLite and PostgreSQL). No answer may be a 5xx; a queued job's page, JSON and the job list must
still show.

Random by default, so that every CI run tries new inputs. A failure prints the falsifying example and a
`@reproduce_failure` blob; `--hypothesis-seed=N` replays a whole run.

Without the fixtures this skips, saying so; with HONK_REQUIRE_FIXTURES=1 (set by .ci/run) it fails instead, so CI
cannot pass by skipping it.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from app.process import HonkState
from app.queue.models import Delivery, Job, JobEvent
from app.web.app import create_app
from tests.support import FIXTURES, delivery_headers, live_server

# Read at import time: the make_settings fixture clears HONK_* variables from the environment.
REQUIRE_FIXTURES = os.environ.get("HONK_REQUIRE_FIXTURES") == "1"
EXAMPLES = 200
HONK_EVENTS = ("issues", "issue_comment", "pull_request_review", "pull_request_review_comment")


def _fixtures() -> list[tuple[str, str, dict[str, Any]]]:
    """(file name, event, payload) for every real delivery."""
    files = sorted(FIXTURES.glob("*.json")) if FIXTURES.is_dir() else []
    if not files:
        problem = f"no webhook fixtures at {FIXTURES} (the shared fixtures are not checked out next to the repo)"
        if REQUIRE_FIXTURES:
            pytest.fail(f"HONK_REQUIRE_FIXTURES=1 but {problem}")
        pytest.skip(problem)
    return [(path.name, path.name.split(".")[0], json.loads(path.read_bytes())) for path in files]


@pytest.fixture(scope="module")
def fixtures() -> list[tuple[str, str, dict[str, Any]]]:
    found = _fixtures()
    assert len(found) >= 100 and all(isinstance(payload, dict) for _, _, payload in found)
    return found


@pytest.fixture
def served(state: HonkState) -> Iterator[tuple[HonkState, httpx.Client]]:
    # A connection per request: after a 500 the server may close the connection, and the next example must not
    # fail on that instead of on its own answer.
    with live_server(create_app(state)) as url, httpx.Client(
            base_url=url, timeout=30, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        yield state, client


def _forget_everything(state: HonkState) -> None:
    """Each example starts from an empty queue: a job one example stored must not fail another's job list (and
    hypothesis, replaying examples to shrink a failure, must see the same answers each time)."""
    with state.db.session() as session:
        for table in (JobEvent, Delivery, Job):
            session.execute(delete(table))


# What a mutation puts in

# Raw JSON that `json.dumps` cannot write but `json.loads` reads (or refuses: then the answer is 400).
RAW_TOKENS = ("NaN", "Infinity", "-Infinity", "1e400", "-1e400", "-0", "1E2", "7.0", "9" * 30, "9" * 4300,
              "9" * 5000, '"\\ud800"', '"\\udfff\\ud800"', '"\\u0000"', '"a\\u0000b\\ud83d"',
              "[" * 900 + "]" * 900, "[" * 5000 + "]" * 5000, '{"a":' * 500 + "1" + "}" * 500)
_RAW = "@@honk-raw-{}@@"  # a string placed in the payload and swapped for its token after serialising

EDGE_INTS = (2**63, 2**63 - 1, 2**64, 10**19, 10**20 - 1, -(2**63) - 1, 2**31, 2**31 - 1, -1, 0, 1, 10**100)
EDGE_TEXT = ("", " ", "\x00", "\ud800", "a\udfffb", "\u202e\ufeff", "𝄞" * 40, "x" * 300, "x" * 70_000,
             "\n" * 65_536, "> @honk\n", "```\n@honk\n", "@honk", "@honk fix it", "@honk stop", "@honk retry",
             "honk", "HONK", "Bot", "User", "open", "closed", "labeled", "created", "submitted", "changes_requested",
             "honk/issue-7", "acme/widgets", "a/b/c", "../..", "acme/..", "<script>alert(1)</script>",
             "javascript:alert(1)", "%00", "1", "7", "true", "null")



def _one_of(choices: tuple[Any, ...]) -> st.SearchStrategy[Any]:
    """`sampled_from`, drawn by index: hypothesis's statistics then show a range, not 70,000 x's."""
    return st.integers(0, len(choices) - 1).map(choices.__getitem__)


numbers = st.one_of(_one_of(EDGE_INTS), st.integers(), st.booleans(), st.floats(allow_nan=True, allow_infinity=True))
texts = st.one_of(
    _one_of(EDGE_TEXT),
    st.text(max_size=30),
    # Surrogates and control characters: hypothesis's default alphabet leaves them out.
    st.lists(st.one_of(st.characters(), st.characters(categories=["Cs", "Cc", "Cf", "Zl", "Zp"])),
             max_size=20).map("".join),
)
# For the fields Honk reads: what GitHub never sends there.
hostile_numbers = st.one_of(_one_of(EDGE_INTS), st.integers(min_value=2**31 - 1), st.integers(max_value=0),
                            st.booleans(), st.floats(allow_nan=True, allow_infinity=True),
                            _one_of(RAW_TOKENS[:10]).map(lambda token: ("raw", token)))
hostile_texts = st.one_of(_one_of(EDGE_TEXT[:10]), _one_of(EDGE_TEXT),
                          st.lists(st.characters(categories=["Cs", "Cc"]), min_size=1, max_size=5).map("".join),
                          st.text(min_size=101, max_size=300), _one_of(RAW_TOKENS[10:]).map(lambda t: ("raw", t)))
scalars = st.one_of(st.none(), numbers, texts, _one_of(RAW_TOKENS).map(lambda token: ("raw", token)))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.one_of(st.sampled_from(["id", "number", "login", "name", "body", "type",
                                                                     "state", "ref", "full_name"]), texts),
                                        inner, max_size=3),
                      max_leaves=6)

# Where Honk looks, by event, what goes into a column first: every example mutates one of these (and then up to
# three paths anywhere).
_COMMON = ("installation.id", "sender.login", "repository.full_name", "action", "sender.id", "repository.id",
           "sender.type", "installation", "sender", "repository", "repository.private", "repository.default_branch",
           "repository.clone_url")
_PULL = ("pull_request.number", "pull_request.title", "pull_request.user.id", "pull_request.head.ref",
         "pull_request.state", "pull_request.draft", "pull_request", "pull_request.head", "pull_request.head.sha",
         "pull_request.head.repo", "pull_request.head.repo.fork", "pull_request.base.ref", "pull_request.user")
_HOT = {
    "issues": ("issue.number", "issue.title", "label.name", "issue.id", "issue.body", "issue.user.id",
               "issue.labels", "issue.state", "issue.pull_request", "issue", "issue.user", "label"),
    "issue_comment": ("issue.number", "comment.body", "comment.id", "issue.title", "comment.user.id", "issue.id",
                      "issue.user.id", "comment.performed_via_github_app.id", "comment.html_url",
                      "comment.created_at", "issue.state", "issue.pull_request", "issue", "comment"),
    "pull_request_review": (*_PULL, "review.id", "review.body", "review.user.id", "review.state",
                            "review.performed_via_github_app.id", "review.submitted_at", "review"),
    "pull_request_review_comment": (*_PULL, "comment.id", "comment.body", "comment.line", "comment.in_reply_to_id",
                                    "comment.pull_request_review_id", "comment.original_line", "comment.path",
                                    "comment.diff_hunk", "comment.user.id"),
}
HOT_PATHS = {kind: tuple(tuple(path.split(".")) for path in (*_HOT.get(kind, ()), *_COMMON))
             for kind in (*_HOT, "other")}


def _paths(node: Any, prefix: tuple[str, ...] = (), limit: int = 400) -> list[tuple[str, ...]]:
    """Paths to the values in a payload (dict keys only; lists are leaves), breadth first, at most `limit`."""
    found: list[tuple[str, ...]] = []
    queue: list[tuple[tuple[str, ...], Any]] = [(prefix, node)]
    while queue and len(found) < limit:
        path, value = queue.pop(0)
        if isinstance(value, dict):
            for key, child in value.items():
                found.append((*path, key))
                queue.append(((*path, key), child))
    return found


def _put(payload: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = payload
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[path[-1]] = value


def _get(payload: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = payload
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _drop(payload: dict[str, Any], path: tuple[str, ...]) -> None:
    parent = _get(payload, path[:-1]) if len(path) > 1 else payload
    if isinstance(parent, dict):
        parent.pop(path[-1], None)


def _ask_for_work(event: str, payload: dict[str, Any]) -> None:
    """Make the delivery one that Honk would queue under the default settings."""
    if not isinstance(_get(payload, ("installation", "id")), int):
        _put(payload, ("installation", "id"), 42)
    if not isinstance(_get(payload, ("repository", "full_name")), str):
        _put(payload, ("repository", "full_name"), "acme/widgets")
    _put(payload, ("sender", "type"), "User")
    if not isinstance(_get(payload, ("sender", "login")), str):
        _put(payload, ("sender", "login"), "alice")
    if event == "issues":
        payload["action"] = "labeled"
        _put(payload, ("label", "name"), "honk")
        _drop(payload, ("issue", "pull_request"))
    elif event == "issue_comment":
        payload["action"] = "created"
        _put(payload, ("comment", "body"), "@honk please fix this")
    else:
        payload["action"] = "submitted" if event == "pull_request_review" else "created"
        _put(payload, ("review", "state"), "changes_requested")
        _put(payload, ("review" if event == "pull_request_review" else "comment", "body"), "@honk fix")
        _put(payload, ("pull_request", "head", "ref"), "honk/issue-7")
        _put(payload, ("pull_request", "state"), "open")
    subject = "pull_request" if event.startswith("pull_request") else "issue"
    _put(payload, (subject, "state"), "open")
    if not isinstance(_get(payload, (subject, "number")), int):
        _put(payload, (subject, "number"), 7)


def _mutate(data: st.DataObject, kind: str, payload: dict[str, Any]) -> None:
    hot = HOT_PATHS.get(kind, HOT_PATHS["other"])
    if data.draw(st.integers(0, 5), label="leave Honk's fields alone") > 0:
        path = data.draw(_one_of(hot), label="path Honk reads")
        how = data.draw(_one_of(("hostile number", "hostile text", "hostile number", "hostile text", "replace",
                                 "drop", "wrap")), label="how")
        _change(data, payload, path, how)
    for _ in range(data.draw(st.integers(0, 3), label="more mutations")):
        existing = tuple(_paths(payload))
        anywhere = st.one_of(_one_of(hot), _one_of(existing)) if existing else _one_of(hot)
        path = data.draw(anywhere, label="path")
        how = data.draw(_one_of(("replace", "replace", "number", "text", "drop", "wrap", "stringify")), label="how")
        _change(data, payload, path, how)


def _change(data: st.DataObject, payload: dict[str, Any], path: tuple[str, ...], how: str) -> None:
    if how == "drop":
        _drop(payload, path)
    elif how == "wrap":
        _put(payload, path, data.draw(st.sampled_from([[_get(payload, path)], {"value": _get(payload, path)}])))
    elif how == "stringify":
        _put(payload, path, str(_get(payload, path)))
    else:
        strategy = {"replace": values, "number": numbers, "text": texts, "hostile number": hostile_numbers,
                    "hostile text": hostile_texts}[how]
        _put(payload, path, data.draw(strategy, label="value"))


def _serialise(payload: dict[str, Any]) -> bytes:
    """JSON as GitHub would send it (json.dumps also writes NaN), with the raw tokens swapped in."""
    tokens: list[str] = []

    def swap(value: Any) -> Any:
        if isinstance(value, tuple) and len(value) == 2 and value[0] == "raw":
            tokens.append(value[1])
            return _RAW.format(len(tokens) - 1)
        if isinstance(value, dict):
            return {key: swap(child) for key, child in value.items()}
        if isinstance(value, list):
            return [swap(child) for child in value]
        return value

    text = json.dumps(swap(payload))
    for place, token in enumerate(tokens):
        text = text.replace(json.dumps(_RAW.format(place)), token, 1)
    return text.encode()


@settings(max_examples=EXAMPLES, deadline=None, print_blob=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_mutated_real_deliveries_never_get_a_5xx(served: tuple[HonkState, httpx.Client],
                                                 fixtures: list[tuple[str, str, dict[str, Any]]],
                                                 data: st.DataObject) -> None:
    state, client = served
    name, kind, original = data.draw(st.sampled_from(fixtures), label="fixture")
    payload = json.loads(json.dumps(original))
    kind = data.draw(st.sampled_from([kind, kind, *HONK_EVENTS]), label="event")
    if kind in HONK_EVENTS and data.draw(st.integers(0, 3), label="asks for work") > 0:
        _ask_for_work(kind, payload)
    _mutate(data, kind, payload)
    body = _serialise(payload)

    try:
        answer = client.post("/api/github/webhooks", content=body,
                             headers=delivery_headers(kind, body, delivery=str(uuid.uuid4())))
        said = f"{name} as {kind}: {answer.status_code} {answer.text[:300]}"
        event(f"answered {answer.status_code}")  # --hypothesis-show-statistics shows how deep the examples went
        assert answer.status_code < 500, said
        assert answer.status_code in (200, 202, 400), said
        verdict = answer.json()
        if answer.status_code == 200:
            assert verdict["status"] == "ignored" and isinstance(verdict["reason"], str) and verdict["reason"], said
        elif answer.status_code == 202:
            job = verdict["job"]
            for path in (f"/api/jobs/{job}", f"/jobs/{job}", "/jobs"):
                shown = client.get(path)
                assert shown.status_code == 200, f"{said}; then {path}: {shown.status_code} {shown.text[:300]}"
    finally:
        _forget_everything(state)


def test_the_fuzzer_reaches_queued_jobs(served: tuple[HonkState, httpx.Client],
                                        fixtures: list[tuple[str, str, dict[str, Any]]]) -> None:
    """`_ask_for_work` makes each Honk event's fixtures queue a job, so the fuzzing goes past the trigger rules."""
    _, client = served
    queued = 0
    for name, kind, original in fixtures:
        if kind not in HONK_EVENTS:
            continue
        payload = json.loads(json.dumps(original))
        _ask_for_work(kind, payload)
        body = _serialise(payload)
        answer = client.post("/api/github/webhooks", content=body, headers=delivery_headers(kind, body))
        assert answer.status_code in (200, 202), f"{name}: {answer.text}"
        queued += answer.status_code == 202
    assert queued >= 20
