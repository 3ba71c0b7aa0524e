"""Pacing against GitHub's rate limits (app/github/pacing.py), with the real client against the local GitHub over
HTTP, the fake enforcing the limits: a storm of secondary limits slows Honk down and fails nothing, content-creating
requests are spaced, a spent primary limit is waited out until its reset, installations do not slow each other,
and a wait too long ends in a clear error."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from githubkit.exception import GraphQLFailed
from prometheus_client import Counter

from app.github.client import GitHubApp, GitHubRetry
from app.github.pacing import Pacer, RateLimitWaitTooLong, creates_content, limit_of
from app.settings import Settings
from app.telemetry import PROCESS
from tests.fakes.github import FakeGitHub, Metered
from tests.support import app_private_key

REPO, OTHER = "acme/widgets", "globex/gadgets"  # installations 42 and 43
SLACK = 0.02  # clock and scheduling noise


@pytest.fixture(scope="module")
def key() -> str:
    return app_private_key()


@pytest.fixture
def fake(key: str, tmp_path: Path) -> Iterator[FakeGitHub]:
    github = FakeGitHub(app_id=4242, private_key_pem=key, root=tmp_path / "github")
    github.create_repo(REPO, files={"README.md": "# Widgets\n"})
    github.create_repo(OTHER, files={"README.md": "# Gadgets\n"}, installation_id=43)
    with github.serve():
        yield github
    github.close()


@pytest.fixture
def make_app(fake: FakeGitHub, make_settings: Callable[..., Settings], key: str) -> Callable[..., GitHubApp]:
    """An App object of the test's own (its own tokens and pacer) pointed at the fake, paced as the test says."""

    def make(**pacing: Any) -> GitHubApp:
        settings = make_settings(github_app_id=4242, github_private_key=key, github_api_url=fake.base_url)
        return GitHubApp(settings, retry=GitHubRetry(base_seconds=0.01), pacer=Pacer(**pacing))

    return make


def gaps(requests: list[Metered]) -> list[float]:
    return [b.at - a.at for a, b in itertools.pairwise(requests)]


def counted(counter: Counter, label: str) -> float:
    return sum(s.value for metric in counter.collect() for s in metric.samples
               if s.name.endswith("_total") and label in s.labels.values())


async def comment(app: GitHubApp, repo: str, installation: int, number: int, body: str) -> dict[str, Any]:
    """One job's comment: its own client, as each job opens its own."""
    async with await app.repo(installation, repo) as r:
        return await r.comment(number, body)


def test_a_secondary_limit_storm_slows_honk_down_and_fails_nothing(fake: FakeGitHub,
                                                                    make_app: Callable[..., GitHubApp]) -> None:
    app = make_app(min_interval=0.25, burst=1)
    number = fake.create_issue(REPO, "Widgets")
    fake.secondary_share = 0.3  # nearly a third of every request: 403, retry-after: 1, GitHub's message
    fake.content_interval = 0.2  # and content created sooner than this after the last: the same
    paused = counted(PROCESS.github_pauses, "secondary")

    async def storm() -> list[dict[str, Any]]:
        return await asyncio.gather(*(comment(app, REPO, 42, number, f"note {i}") for i in range(8)))

    made = asyncio.run(storm())

    assert sorted(c["body"] for c in made) == [f"note {i}" for i in range(8)]  # every one, none failed
    assert sorted(c["body"] for c in fake.comments(REPO, number)) == [f"note {i}" for i in range(8)]  # once each
    limited = [m for m in fake.rate_limited("secondary") if m.installation == 42]
    assert limited, "the storm never hit: the test proves nothing"
    tried = fake.content_requests(42)
    assert len(tried) == 8 + len([m for m in limited if m.content])
    assert min(gaps(tried)) >= 0.25 - SLACK  # spaced, across the eight concurrent "jobs"
    mine = [m for m in fake.metered if m.installation == 42]
    for hit in limited:  # after each 403 with retry-after: 1, nothing of the installation's for a second
        later = [m for m in mine if m.at > hit.at]
        assert not later or later[0].at - hit.at >= 1.0, hit
    assert counted(PROCESS.github_pauses, "secondary") - paused >= len({round(h.at) for h in limited}) > 0


def test_content_is_spaced_a_second_apart_so_github_never_objects(fake: FakeGitHub,
                                                                  make_app: Callable[..., GitHubApp]) -> None:
    app = make_app(burst=1)  # GitHub's advice as it stands: a second between content-creating requests
    number = fake.create_issue(REPO, "Widgets")
    fake.content_interval = 1.0 - SLACK  # what GitHub's content-creation limit would object to

    async def jobs() -> None:
        async def one(i: int) -> None:
            async with await app.repo(42, REPO) as repo:
                await repo.react("issue", number)
                await repo.comment(number, f"note {i}")

        await asyncio.gather(*(one(i) for i in range(2)))

    started = time.monotonic()
    asyncio.run(jobs())
    assert fake.rate_limited() == []
    content = fake.content_requests(42)
    assert len(content) == 4 and min(gaps(content)) >= 1.0 - SLACK
    assert time.monotonic() - started >= 3.0 - SLACK


def test_a_burst_goes_out_at_once_then_the_rest_is_spaced(fake: FakeGitHub,
                                                          make_app: Callable[..., GitHubApp]) -> None:
    app = make_app(min_interval=0.3, burst=3)
    number = fake.create_issue(REPO, "Widgets")

    async def six() -> None:
        async with await app.repo(42, REPO) as repo:
            for i in range(6):
                await repo.comment(number, f"note {i}")

    asyncio.run(six())
    spacing = gaps(fake.content_requests(42))
    assert max(spacing[:2]) < 0.3 - SLACK  # the burst: three at once
    assert min(spacing[2:]) >= 0.3 - SLACK  # then one per interval


def test_a_spent_primary_limit_is_waited_out_until_the_reset(fake: FakeGitHub,
                                                             make_app: Callable[..., GitHubApp]) -> None:
    app = make_app(reserve_share=0, reset_margin=0.2)
    fake.enforce_rate_limit, fake.rate_limit, fake.rate_window = True, 4, 2.0

    async def reads() -> tuple[list[dict[str, Any]], str]:
        async with await app.repo(42, REPO) as repo:
            return [await repo.info() for _ in range(7)], repo.token

    answers, token = asyncio.run(reads())
    assert [a["full_name"] for a in answers] == [REPO] * 7
    assert fake.rate_limited() == []  # `x-ratelimit-remaining: 0` held the rest back before GitHub had to refuse
    mine = [m for m in fake.metered if m.installation == 42]
    assert mine[4].at - mine[3].at >= 0.9  # the fifth waited for the window to reset

    # Someone else spent the installation's limit (another process, say): GitHub's 403 is waited out too.
    with httpx.Client(base_url=fake.base_url, headers={"authorization": f"token {token}"}) as other:
        while other.get(f"/repos/{REPO}").status_code == 200:
            pass
    spent = time.monotonic()

    async def read() -> dict[str, Any]:
        async with await app.repo(42, REPO) as repo:
            return await repo.info()

    assert asyncio.run(read())["full_name"] == REPO
    refused = [m for m in fake.rate_limited("primary") if m.at >= spent and m.installation == 42]
    assert len(refused) == 1  # asked once, told to wait, waited until the reset
    assert fake.metered[-1].limited is None and fake.metered[-1].at - refused[0].at >= 0.2


def test_two_installations_do_not_slow_each_other(fake: FakeGitHub, make_app: Callable[..., GitHubApp]) -> None:
    app = make_app(min_interval=1.0, burst=1)
    fake.secondary_retry_after = 3
    fake.failures["get_repo"] = [403]  # installation 42's next read: a secondary limit, retry after 3 s
    widgets, gadgets = fake.create_issue(REPO, "Widgets"), fake.create_issue(OTHER, "Gadgets")

    async def both() -> tuple[float, float]:
        async def stalled() -> float:
            async with await app.repo(42, REPO) as repo:
                await repo.info()
                return time.monotonic() - started

        async def other() -> float:
            while not fake.rate_limited():
                await asyncio.sleep(0.01)
            async with await app.repo(43, OTHER) as repo:
                await repo.info()
                await repo.comment(gadgets, "one")  # content, spaced within installation 43 only
                await repo.comment(gadgets, "two")
                return time.monotonic() - started

        started = time.monotonic()
        return tuple(await asyncio.gather(stalled(), other()))  # type: ignore[return-value]

    slow, fast = asyncio.run(both())
    assert slow >= 3.0  # 42 waited out its pause...
    assert fast < 2.5  # ...while 43 went on: a read, and two comments a second apart
    assert fake.comments(REPO, widgets) == [] and len(fake.comments(OTHER, gadgets)) == 2


def test_a_wait_too_long_ends_in_a_clear_error(fake: FakeGitHub, make_app: Callable[..., GitHubApp]) -> None:
    app = make_app(max_wait=2.0)
    fake.secondary_retry_after = 30
    fake.failures["get_repo"] = [403]

    async def read() -> Any:
        async with await app.repo(42, REPO) as repo:
            return await repo.info()

    started = time.monotonic()
    with pytest.raises(RateLimitWaitTooLong) as failed:
        asyncio.run(read())
    assert time.monotonic() - started < 2.0  # it did not sit through a wait it would give up on
    message = str(failed.value)
    assert "secondary rate limit" in message and "installation 42" in message and " UTC" in message
    assert failed.value.retry_after.total_seconds() > 25
    assert len(fake.calls("get_repo")) == 1  # the retry was never sent

    # A primary limit that resets in an hour: the error names it and when it resets, at once.
    other = make_app(max_wait=2.0)
    asyncio.run(other.token(43))
    fake.failures.clear()
    fake.enforce_rate_limit, fake.rate_limit = True, 1

    async def twice() -> None:
        async with await other.repo(43, OTHER) as repo:
            await repo.info()  # the last request of the window: remaining 0
            await repo.info()

    started = time.monotonic()
    with pytest.raises(RateLimitWaitTooLong) as spent:
        asyncio.run(twice())
    assert time.monotonic() - started < 2.0
    assert "primary rate limit (core: 0 of 1 left)" in str(spent.value) and "installation 43" in str(spent.value)
    assert fake.rate_limited("primary") == []  # Honk held back: GitHub never had to refuse


def test_a_secondary_limit_that_only_says_so_is_waited_out(fake: FakeGitHub,
                                                           make_app: Callable[..., GitHubApp]) -> None:
    """No retry-after, remaining not 0: githubkit sees a plain 403; the message says secondary rate limit, so
    Honk waits (a minute on GitHub; `backoff` here) and asks again."""
    app = make_app(backoff=0.5)
    fake.secondary_retry_after = None
    fake.failures["get_repo"] = [403]

    async def read() -> dict[str, Any]:
        async with await app.repo(42, REPO) as repo:
            return await repo.info()

    started = time.monotonic()
    assert asyncio.run(read())["full_name"] == REPO
    assert time.monotonic() - started >= 0.5 and len(fake.calls("get_repo")) == 2


def test_a_graphql_mutation_is_content_and_a_query_is_not(fake: FakeGitHub,
                                                          make_app: Callable[..., GitHubApp]) -> None:
    app = make_app(min_interval=0.3, burst=1)
    number = fake.create_issue(REPO, "Widgets")

    async def main() -> None:
        async with await app.repo(42, REPO) as repo:
            await repo.comment(number, "one")
            with contextlib.suppress(GraphQLFailed):  # no such pull request: it went out all the same
                await repo.review_threads(number)
            with contextlib.suppress(GraphQLFailed):  # no such thread: it went out, as content
                await repo.resolve_thread("nope")

    asyncio.run(main())
    content = fake.content_requests(42)
    assert [m.path for m in content] == [f"/repos/{REPO}/issues/{number}/comments", "/graphql"]
    assert [m.content for m in fake.metered if m.path == "/graphql"] == [False, True]
    assert gaps(content)[0] >= 0.3 - SLACK


def graphql(query: str) -> httpx.Request:
    return httpx.Request("POST", "https://api.github.com/graphql", content=json.dumps({"query": query}).encode())


def test_what_counts_as_content_and_as_a_limit() -> None:
    assert creates_content(httpx.Request("POST", "https://api.github.com/repos/a/b/issues/1/comments"))
    assert creates_content(httpx.Request("DELETE", "https://api.github.com/repos/a/b/issues/comments/1"))
    assert not creates_content(httpx.Request("GET", "https://api.github.com/repos/a/b"))
    assert creates_content(graphql("# resolve\nmutation($id: ID!) { resolveReviewThread(input: {}) { x } }"))
    assert not creates_content(graphql("query { viewer { login } }"))
    assert not creates_content(graphql("{ viewer { login } }"))

    def answer(status: int, body: Any, **headers: str) -> httpx.Response:
        return httpx.Response(status, json=body, headers=headers,
                              request=httpx.Request("GET", "https://api.github.com/repos/a/b"))

    secondary = {"message": "You have exceeded a secondary rate limit."}
    assert limit_of(answer(403, {"message": "Resource not accessible by integration"})) is None
    assert limit_of(answer(404, {"message": "Not Found"}, **{"x-ratelimit-remaining": "0"})) is None
    said = limit_of(answer(403, secondary, **{"retry-after": "7"}))
    assert said is not None and (said.kind, said.wait, said.said) == ("secondary", 7.0, "retry-after")
    quiet = limit_of(answer(403, secondary, **{"x-ratelimit-remaining": "12"}))
    assert quiet is not None and (quiet.kind, quiet.wait) == ("secondary", None)
    reset = str(int(time.time()) + 30)
    spent = limit_of(answer(403, {"message": "API rate limit exceeded"},
                            **{"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset}))
    assert spent is not None and spent.kind == "primary" and 25 < (spent.wait or 0) <= 30
    too_many = limit_of(answer(429, {"message": "Too Many Requests"}))
    assert too_many is not None and too_many.kind == "secondary"
    limited = httpx.Response(200, json={"data": None, "errors": [{"type": "RATE_LIMITED", "message": "slow down"}]},
                             request=graphql("{ viewer { login } }"))
    assert limit_of(limited) is not None and limit_of(limited).kind == "primary"  # type: ignore[union-attr]
