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
    SLACK = "slack"  # a request from Slack: a mention, a /honk command, a reply in a thread, a button
    NOTIFY = "notify"  # GitHub news about a Slack-requested pull request, for its thread (checks, preview, merge)
    CAMPAIGN = "campaign"  # a fleet campaign's issue: labelled to start, or `@honk rollout|stop|update|retry`
    CAMPAIGN_SYNC = "campaign_sync"  # bring a campaign up to date: news of its pull requests, slots to fill, table
    CAMPAIGN_TARGET = "campaign_target"  # one repository of a campaign: its pull request


class Priority(enum.IntEnum):
    """Who waits on a job. The queue serves a lower number first, and a worker keeps a slot free of BACKGROUND work
    (app/queue/worker.py): a person waiting on one issue is never queued behind a 500-repository campaign."""

    PERSON = 0
    BACKGROUND = 1


@dataclass(frozen=True)
class JobRequest:
    kind: JobKind
    repo: str  # "owner/name" ("" for a Slack request that names none)
    number: int | None  # the issue or pull request (None for a Slack request: its job opens the issue)
    requester: str  # the login whose request this is (a Slack user id for SLACK); authorised in the job
    installation_id: int | None
    trigger: dict[str, Any] = field(default_factory=dict)  # the facts the handler needs, see triggers.py
    delay_seconds: float = 0.0  # follow-ups wait a moment, so that a burst of review comments is one run

    @property
    def priority(self) -> Priority:
        """A campaign's repositories are background work; everything else is somebody's request."""
        return Priority.BACKGROUND if self.kind is JobKind.CAMPAIGN_TARGET else Priority.PERSON

    @property
    def subject(self) -> str:
        """Jobs on one subject run one at a time, oldest first. A control request must act while a job on
        its issue runs, so it has a subject of its own; so has news for a Slack thread, which must never wait
        behind a run (and its replies about one pull request still go out one at a time, in order)."""
        if self.kind is JobKind.SLACK:  # one Slack thread's requests in order (app/intake/slack.py)
            trigger = self.trigger
            return (f"slack:{trigger.get('team_id', '')}:{trigger.get('channel_id', '')}:"
                    f"{trigger.get('thread_ts') or trigger.get('ts') or ''}")
        if self.kind is JobKind.CAMPAIGN_SYNC:  # one campaign's bookkeeping at a time: its table is one comment
            return f"campaign-sync:{self.trigger.get('campaign_id')}"
        if self.kind is JobKind.CAMPAIGN_TARGET:  # one repository of a campaign
            return f"campaign-target:{self.trigger.get('campaign_id')}:{self.repo}"
        prefix = {JobKind.CONTROL: "control:", JobKind.NOTIFY: "notify:", JobKind.CAMPAIGN: "campaign:"
                  }.get(self.kind, "")
        return f"{prefix}{self.repo}#{self.number}"
