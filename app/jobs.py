"""Typed job requests: what a webhook event becomes once the trigger rules accept it."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class JobKind(enum.StrEnum):
    RESOLVE_ISSUE = "resolve_issue"  # an issue, labelled or mentioned: answer with a pull request
    FOLLOW_UP = "follow_up"  # a review or comment on a pull request: answer with commits and replies


@dataclass(frozen=True)
class JobRequest:
    kind: JobKind
    repo: str  # "owner/name"
    number: int  # the issue or pull request
    requester: str  # the login whose request this is; authorised in the job, before any work
    installation_id: int
    trigger: dict[str, Any] = field(default_factory=dict)  # the facts the handler needs, see triggers.py

    @property
    def subject(self) -> str:
        """Jobs on one subject run one at a time, oldest first."""
        return f"{self.repo}#{self.number}"
