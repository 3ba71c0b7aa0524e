"""`FakeGitHub`, the whole fake: the layers below put together, its FastAPI app, and the views tests read.

The class is built in layers, each a module: `state.State` (the data) <- `git.Git` (bare repositories,
smart HTTP) <- `records.Records` (issues, pull requests, comments, reviews; the scripting methods) <-
`shapes.Shapes` (GitHub's JSON) <- `checks.Checks` (check suites and runs, Actions' runs, jobs and logs) <-
`webhooks.Webhooks` (payloads and deliveries) <- `FakeGitHub`. Its `app` is made by `app.build_app`, from one
router per API area in `routes/`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tests.fakes.github.webhooks import Webhooks


@dataclass
class FakeGitHub(Webhooks):
    """A local GitHub with GitHub's shapes and auth; see the `tests.fakes.github` package for how to script it."""

    def __post_init__(self) -> None:
        super().__post_init__()
        from tests.fakes.github.app import build_app  # here, not above: the routes import this module

        self.app = build_app(self)

    # ----------------------------------------------------------------------------------------- lifecycle

    @contextmanager
    def serve(self) -> Iterator[str]:
        """Serve on loopback (see `tests.support.live_server`) and yield the base URL."""
        from tests.support import live_server

        with live_server(self.app) as url:
            self.base_url = url
            yield url

    def __enter__(self) -> FakeGitHub:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ----------------------------------------------------------------------------------------- inspection

    def issue(self, repo: str, number: int) -> dict[str, Any]:
        """The issue (or pull request) as `GET /repos/{repo}/issues/{number}` answers."""
        r = self._repo(repo)
        with self._lock:
            return self._issue_json(self.base_url, r, r.issues[number])

    def pulls(self, repo: str) -> list[dict[str, Any]]:
        """Every pull request, oldest first, as `GET /repos/{repo}/pulls/{number}` answers."""
        r = self._repo(repo)
        with self._lock:
            return [self._pull_json(self.base_url, r, pull) for _, pull in sorted(r.pulls.items())]

    def comments(self, repo: str, number: int) -> list[dict[str, Any]]:
        r = self._repo(repo)
        with self._lock:
            return [self._comment_json(self.base_url, r, c) for c in self._comments.values()
                    if c["repo"] == r.full_name and c["number"] == number]

    def reactions(self, repo: str, number: int | None = None, *, comment_id: int | None = None,
                  review_comment_id: int | None = None) -> list[dict[str, Any]]:
        """Reactions on an issue/pull request, an issue comment, or a review comment."""
        subject = self._subject(self._repo(repo), number, comment_id, review_comment_id)
        with self._lock:
            return [self._reaction_json(self.base_url, x) for x in self._reactions if x["subject"] == subject]

    def review_comments(self, repo: str, pr: int) -> list[dict[str, Any]]:
        r = self._repo(repo)
        with self._lock:
            return [self._review_comment_json(self.base_url, r, c) for c in self._review_comments.values()
                    if c["repo"] == r.full_name and c["pr"] == pr]

    def review_threads(self, repo: str, pr: int) -> list[dict[str, Any]]:
        """Threads as the GraphQL `reviewThreads` query answers them."""
        r = self._repo(repo)
        with self._lock:
            return [self._thread_json(self.base_url, t) for t in self._threads.values()
                    if t["repo"] == r.full_name and t["pr"] == pr]
