"""GitHub's webhooks: signed deliveries to the App's webhook URL, and the payloads GitHub would send.

`Webhooks` adds `webhook_target`, `deliver` and `redeliver` (recorded in `deliveries`), and builders that
make a change as a user and return its event's payload (`issues_labeled`, `issue_comment_created`,
`pull_request_closed`) or the payload for a record made earlier (`pull_request_review_submitted`,
`pull_request_review_comment_created`, `check_suite_completed`, `check_run_rerequested`, `workflow_run_completed`).
The pull request in a review's payload, and those in a check suite's `pull_requests`, carry their head's ref and
SHA as GitHub's do.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from typing import Any

import httpx

from tests.fakes.github.checks import Checks
from tests.fakes.github.shapes import MERGE_SETTINGS
from tests.fakes.github.state import Delivery, _Repo, node_id


class Webhooks(Checks):
    def webhook_target(self, url: str, secret: str) -> None:
        """Where `deliver` posts (the App's webhook URL) and the secret it signs with."""
        self._hook = (url, secret)

    def deliver(self, event: str, payload: Mapping[str, Any], *, delivery: str | None = None,
                timeout: float = 10) -> httpx.Response:
        """POST a signed delivery like GitHub (which gives up after 10 s); `delivery` reuses an id, as GitHub's
        redelivery does."""
        if self._hook is None:
            raise RuntimeError("call webhook_target(url, secret) first")
        url, secret = self._hook
        body = json.dumps(payload).encode()
        record = Delivery(delivery or str(uuid.uuid4()), event, dict(payload))
        headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": record.id, "X-GitHub-Hook-ID": str(self._hook_id),
                   "X-GitHub-Hook-Installation-Target-ID": str(self.app_id),
                   "X-GitHub-Hook-Installation-Target-Type": "integration",
                   "X-Hub-Signature": "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest(),
                   "X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
                   "User-Agent": "GitHub-Hookshot/fake", "Content-Type": "application/json", "Accept": "*/*"}
        response = httpx.post(url, content=body, headers=headers, timeout=timeout)
        record.status = response.status_code
        self.deliveries.append(record)
        return response

    def redeliver(self, delivery_id: str) -> httpx.Response:
        """Send an earlier delivery again, same id and payload."""
        earlier = next(d for d in self.deliveries if d.id == delivery_id)
        return self.deliver(earlier.event, earlier.payload, delivery=earlier.id)

    def issues_labeled(self, repo: str, number: int, label: str, sender: str) -> dict[str, Any]:
        """Label the issue as `sender` and return the `issues.labeled` payload GitHub would send."""
        r = self._repo(repo)
        with self._lock:
            label_obj = self._add_label(r, number, label)
            b = self.base_url
            return {"action": "labeled", "issue": self._issue_json(b, r, r.issues[number]),
                    "label": label_obj, **self._envelope(b, r, sender)}

    def issue_comment_created(self, repo: str, number: int, body: str, sender: str) -> dict[str, Any]:
        """Comment as `sender` and return the `issue_comment.created` payload GitHub would send."""
        r = self._repo(repo)
        with self._lock:
            comment = self._new_comment(r, number, body, sender, via_app=sender == self.bot_login)
            b = self.base_url
            return {"action": "created", "issue": self._issue_json(b, r, r.issues[number]),
                    "comment": self._comment_json(b, r, comment), **self._envelope(b, r, sender)}

    def pull_request_closed(self, repo: str, number: int, *, merged: bool, sender: str = "alice") -> dict[str, Any]:
        """Close the pull request as `sender` (`merged`: merge it, with a real merge commit when it merges cleanly,
        else marked merged without one) and return the `pull_request.closed` payload. A pull request already
        closed (say by `merge_pull`) is left as it is: the payload then tells of that."""
        r = self._repo(repo)
        with self._lock:
            pull, issue = r.pulls[number], r.issues[number]
            if issue["state"] == "open":
                self._refresh_head(r, pull)
                if not merged:
                    self.set_pull_state(repo, number, "closed")
                elif self._merge(r, pull, by=sender) is None:
                    self.set_pull_state(repo, number, "merged", user=sender)
            elif merged and not pull["merged_at"]:
                raise ValueError(f"{repo}#{number} was closed without being merged")
            b = self.base_url
            shaped = self._pull_json(b, r, pull)
            for side in ("head", "base"):  # a pull_request event's repositories carry their merge settings
                shaped[side]["repo"] = {**shaped[side]["repo"], **MERGE_SETTINGS}
            return {"action": "closed", "number": number, "pull_request": shaped, **self._envelope(b, r, sender)}

    def pull_request_review_submitted(self, repo: str, pr: int, review_id: int) -> dict[str, Any]:
        """The `pull_request_review.submitted` payload for a review made with `add_review`."""
        r = self._repo(repo)
        with self._lock:
            b, review = self.base_url, self._reviews[review_id]
            shaped = self._review_json(b, r, review)
            shaped["state"] = shaped["state"].lower()  # webhooks spell review states in lower case
            return {"action": "submitted", "review": shaped,
                    "pull_request": self._pull_json(b, r, r.pulls[pr], simple=True),
                    **self._envelope(b, r, review["user"])}

    def pull_request_review_comment_created(self, repo: str, pr: int, comment_id: int) -> dict[str, Any]:
        """The `pull_request_review_comment.created` payload for a review comment."""
        r = self._repo(repo)
        with self._lock:
            b, comment = self.base_url, self._review_comments[comment_id]
            return {"action": "created", "comment": self._review_comment_json(b, r, comment),
                    "pull_request": self._pull_json(b, r, r.pulls[pr], simple=True),
                    **self._envelope(b, r, comment["user"])}

    def check_suite_completed(self, repo: str, suite_id: int, sender: str = "alice") -> dict[str, Any]:
        """The `check_suite.completed` payload for a suite made with `add_check_suite` or `add_workflow_run`."""
        r = self._repo(repo)
        with self._lock:
            b = self.base_url
            return {"action": "completed",
                    "check_suite": self._check_suite_json(b, r, self._check_suites[suite_id], webhook=True),
                    **self._envelope(b, r, sender)}

    def check_run_rerequested(self, repo: str, run_id: int, sender: str = "alice") -> dict[str, Any]:
        """The `check_run.rerequested` payload: `sender` pressed "Re-run" on a check run (GitHub sends it to
        the App that made the run)."""
        r = self._repo(repo)
        with self._lock:
            b, run = self.base_url, self._check_runs[run_id]
            shaped = self._check_run_json(b, r, run)
            shaped["check_suite"] = self._check_suite_json(b, r, self._check_suites[run["suite_id"]], webhook=True)
            for key in ("latest_check_runs_count", "check_runs_url", "head_commit", "rerequestable",
                        "runs_rerequestable"):
                shaped["check_suite"].pop(key, None)  # a check run's suite is the thinner copy
            return {"action": "rerequested", "check_run": shaped, **self._envelope(b, r, sender)}

    def workflow_run_completed(self, repo: str, run_id: int, sender: str = "alice") -> dict[str, Any]:
        """The `workflow_run.completed` payload for a run made with `add_workflow_run`."""
        r = self._repo(repo)
        with self._lock:
            b, run = self.base_url, self._workflow_runs[run_id]
            return {"action": "completed", "workflow_run": self._workflow_run_json(b, r, run),
                    "workflow": self._workflow_json(b, r, run), **self._envelope(b, r, sender)}

    def _envelope(self, b: str, repo: _Repo, sender: str) -> dict[str, Any]:
        if not b:
            raise RuntimeError("set fake.base_url (fake.serve() does) so payload URLs point at the fake")
        envelope: dict[str, Any] = {"repository": self._repo_json(b, repo, complete=False),
                                    "sender": self._user(b, sender),
                                    "installation": {"id": repo.installation_id,
                                                     "node_id": node_id("Integration::Installation",
                                                                         repo.installation_id)}}
        if self._users[repo.owner][1] == "Organization":
            envelope["organization"] = self._org_json(b, repo.owner)
        return envelope
