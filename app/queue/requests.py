"""Typed job requests: what a webhook event becomes once the trigger rules accept it."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class JobKind(enum.StrEnum):
    RESOLVE_ISSUE = "resolve_issue"  # an issue, labelled or mentioned: answer with a pull request
    FOLLOW_UP = "follow_up"  # a review or comment on a pull request: answer with commits and replies
    CONTROL = "control"  # "@honk stop" or "@honk retry" on an issue or pull request
    FIX_CI = "fix_ci"  # a red CI run on the head Honk pushed to its pull request, or "@honk fix ci"
    RECHECK = "recheck"  # "Re-run" on Honk's check run: verify the pull request's head again


@dataclass(frozen=True)
class JobRequest:
    kind: JobKind
    repo: str  # "owner/name"
    number: int  # the issue or pull request
    requester: str  # the login whose request this is; authorised in the job, before any work
    installation_id: int
    trigger: dict[str, Any] = field(default_factory=dict)  # the facts the handler needs, see triggers.py
    delay_seconds: float = 0.0  # follow-ups wait a moment, so that a burst of review comments is one run

    @property
    def subject(self) -> str:
        """Jobs on one subject run one at a time, oldest first. A control request must act while a job on
        its issue runs, so it has a subject of its own."""
        prefix = "control:" if self.kind is JobKind.CONTROL else ""
        return f"{prefix}{self.repo}#{self.number}"
