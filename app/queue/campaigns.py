"""What Honk keeps about fleet campaigns (CONTRACT.md section 7): each campaign, and each of its repositories
(targets) with where it stands.

The rows are the campaign's memory across restarts and killed workers, and every change that starts work happens
in one transaction with the jobs it makes: a target is marked queued in the same commit that queues its job, so
that no target is lost and none is done twice, whoever dies when. A campaign's bookkeeping (filling free slots,
rolling out, stopping at its budget) is `advance`, run by one job per campaign at a time (`campaign_sync`).

Target states, in order of life: `waiting` (selected, not started), `queued`, `running`, then one of `opened` (its
pull request is open or was), `not_needed` (nothing to change), `failed`, `stopped` (the campaign was stopped
first); `skipped` targets were never selected (a filter, or the requester cannot write there) and say why. A
target's pull request has its own facts, kept current from webhooks: `pull_state` (open, closed, merged),
`checks` (pending, green, red) on `head_sha`, and `review` (approved, changes_requested, commented).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.policy import usd
from app.queue.db import Database
from app.queue.models import Base, Id, Job, JobStatus
from app.queue.requests import JobKind, JobRequest
from app.queue.store import JobQueue

# Campaign states
CANARY, ROLLOUT, STOPPED, BUDGET, DONE = "canary", "rollout", "stopped", "budget", "done"
# Target states
WAITING, QUEUED, RUNNING = "waiting", "queued", "running"
OPENED, NOT_NEEDED, FAILED, STOPPED_TARGET, SKIPPED = "opened", "not_needed", "failed", "stopped", "skipped"
ACTIVE = (QUEUED, RUNNING)
FINISHED = (OPENED, NOT_NEEDED, FAILED, STOPPED_TARGET)
SYNC_DELAY = 1.0  # seconds: news of several pull requests within this is one bookkeeping run
_TABLE_NOW = {"table_now": True}  # a person's command: the table says what it did at once


class CampaignRow(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    repo: Mapped[str] = mapped_column(String(250))  # the campaign issue's repository
    number: Mapped[int] = mapped_column(Integer)  # the campaign issue
    installation_id: Mapped[int] = mapped_column(BigInteger)
    requester: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(Text)
    task: Mapped[str] = mapped_column(Text)  # the issue's body without the campaign block: what every target does
    spec: Mapped[dict[str, Any]]
    budget_usd: Mapped[float | None] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)  # why it stopped, for the table
    table_comment_id: Mapped[int | None] = mapped_column(BigInteger)
    table_edited_at: Mapped[datetime | None]  # the table's last edit, so that a busy campaign edits it seldom
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    rollout_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    __table_args__ = (Index("ux_campaigns_issue", "repo", "number", unique=True),)


class TargetRow(Base):
    __tablename__ = "campaign_targets"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(Id, ForeignKey("campaigns.id", ondelete="CASCADE"))
    repo: Mapped[str] = mapped_column(String(250))
    position: Mapped[int] = mapped_column(Integer)  # the order of the plan; canaries first
    canary: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)  # why skipped, failed or not needed
    job_id: Mapped[int | None] = mapped_column(Id)  # the target's newest job
    runs: Mapped[int] = mapped_column(Integer, default=0)  # jobs made for it (a retry or an update is another)
    pull_number: Mapped[int | None] = mapped_column(Integer)
    pull_url: Mapped[str | None] = mapped_column(Text)
    pull_state: Mapped[str | None] = mapped_column(String(20))  # open | closed | merged
    head_sha: Mapped[str | None] = mapped_column(String(64))
    checks: Mapped[str | None] = mapped_column(String(20))  # pending | green | red, on head_sha
    review: Mapped[str | None] = mapped_column(String(30))  # approved | changes_requested | commented
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    opened_at: Mapped[datetime | None]
    merged_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]

    __table_args__ = (Index("ux_campaign_targets_repo", "campaign_id", "repo", unique=True),
                      Index("ix_campaign_targets_state", "campaign_id", "state"))


@dataclass(frozen=True)
class Target:
    id: int
    campaign_id: int
    repo: str
    position: int
    canary: bool
    state: str
    reason: str | None
    job_id: int | None
    runs: int
    pull_number: int | None
    pull_url: str | None
    pull_state: str | None
    head_sha: str | None
    checks: str | None
    review: str | None
    cost_usd: float
    opened_at: datetime | None
    merged_at: datetime | None
    finished_at: datetime | None

    @property
    def merged(self) -> bool:
        return self.pull_state == "merged"


@dataclass(frozen=True)
class Campaign:
    id: int
    repo: str
    number: int
    installation_id: int
    requester: str
    title: str
    task: str
    spec: dict[str, Any]
    budget_usd: float | None
    state: str
    note: str | None
    table_comment_id: int | None
    table_edited_at: datetime | None
    created_at: datetime
    updated_at: datetime
    rollout_at: datetime | None
    finished_at: datetime | None

    @property
    def subject(self) -> str:
        return f"{self.repo}#{self.number}"

    @property
    def running(self) -> bool:
        return self.state in (CANARY, ROLLOUT)


@dataclass
class Advanced:
    """What one `advance` did, for the campaign issue."""

    queued: list[Target] = field(default_factory=list)
    rolled_out: bool = False  # the canaries were green and `auto_rollout` took the campaign on
    budget_reached: bool = False
    finished: bool = False
    cancel: list[int] = field(default_factory=list)  # queued or running jobs to cancel (the budget ran out)

    def announcements(self) -> list[str]:
        """What the campaign issue is told of this step: `rolled_out`, `budget`, `finished`."""
        return [word for word, said in (("rolled_out", self.rolled_out), ("budget", self.budget_reached),
                                        ("finished", self.finished)) if said]


@dataclass(frozen=True)
class Stopped:
    campaign: Campaign | None
    cancel: list[int]  # the jobs of queued and running targets
    already: bool = False


# The job a target's run is, made by the jobs layer (the queue never imports jobs): (campaign, target) -> request.
TargetJob = Callable[[Campaign, Target], JobRequest]


class CampaignStore:
    """The campaign tables, over the queue's database, with the queue for the jobs they start."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue
        self.db: Database = queue.db

    # Starting

    def create(self, *, repo: str, number: int, installation_id: int, requester: str, title: str, task: str,
               spec: dict[str, Any], budget_usd: float | None, targets: list[str], canaries: int,
               skipped: Iterable[tuple[str, str]]) -> tuple[Campaign, bool]:
        """The campaign of an issue, made with its targets (the first `canaries` of `targets` are the canaries),
        and its first bookkeeping job; or the one the issue already has (False): a redelivered label or a retried
        job never starts a campaign twice."""
        try:
            with self.db.session() as session:
                now = self.db.now(session)
                row = CampaignRow(repo=repo, number=number, installation_id=installation_id, requester=requester,
                                  title=title, task=task, spec=spec, budget_usd=budget_usd,
                                  state=CANARY if canaries > 0 and targets else ROLLOUT, created_at=now,
                                  updated_at=now, rollout_at=None if canaries > 0 and targets else now)
                session.add(row)
                session.flush()
                for position, target in enumerate(targets):
                    session.add(TargetRow(campaign_id=row.id, repo=target, position=position,
                                          canary=position < canaries, state=WAITING, runs=0, cost_usd=0.0,
                                          updated_at=now))
                for position, (target, reason) in enumerate(skipped, start=len(targets)):
                    session.add(TargetRow(campaign_id=row.id, repo=target, position=position, canary=False,
                                          state=SKIPPED, reason=reason, runs=0, cost_usd=0.0, updated_at=now))
                session.flush()
                self._sync_in(session, _campaign(row), now, delay=0.0, trigger=_TABLE_NOW)
                return _campaign(row), True
        except IntegrityError:
            existing = self.by_issue(repo, number)
            if existing is None:
                raise
            return existing, False

    # Reading

    def get(self, campaign_id: int) -> Campaign | None:
        with self.db.session() as session:
            row = session.get(CampaignRow, campaign_id)
            return _campaign(row) if row else None

    def by_issue(self, repo: str, number: int) -> Campaign | None:
        with self.db.session() as session:
            row = session.scalars(select(CampaignRow).where(func.lower(CampaignRow.repo) == repo.lower(),
                                                            CampaignRow.number == number)).first()
            return _campaign(row) if row else None

    def all(self, limit: int = 200) -> list[Campaign]:
        """The newest campaigns first."""
        with self.db.session() as session:
            rows = session.scalars(select(CampaignRow).order_by(CampaignRow.id.desc()).limit(limit))
            return [_campaign(row) for row in rows]

    def targets(self, campaign_id: int) -> list[Target]:
        """Every target of a campaign, in the plan's order (the skipped last)."""
        with self.db.session() as session:
            rows = session.scalars(select(TargetRow).where(TargetRow.campaign_id == campaign_id)
                                   .order_by(TargetRow.position))
            return [_target(row) for row in rows]

    def target(self, campaign_id: int, repo: str) -> Target | None:
        with self.db.session() as session:
            row = _target_row(session, campaign_id, repo)
            return _target(row) if row else None

    def counts(self, campaign_ids: Iterable[int]) -> dict[int, dict[str, int]]:
        """{campaign: {target state: count}} for the list page, in one query."""
        ids = list(campaign_ids)
        found: dict[int, dict[str, int]] = {i: {} for i in ids}
        if not ids:
            return found
        with self.db.session() as session:
            for campaign_id, state, count in session.execute(
                    select(TargetRow.campaign_id, TargetRow.state, func.count())
                    .where(TargetRow.campaign_id.in_(ids)).group_by(TargetRow.campaign_id, TargetRow.state)):
                found[campaign_id][state] = count
        return found

    # A target's run

    def target_started(self, campaign_id: int, repo: str, job_id: int) -> Target | None:
        """The target's job has begun: running, unless the campaign stopped meanwhile (None: do nothing)."""
        with self.db.session() as session:
            campaign = _locked(session, campaign_id)
            row = _target_row(session, campaign_id, repo)
            if row is None or campaign is None or row.job_id != job_id:
                return None  # not this job's target (any more)
            if row.state not in ACTIVE:
                return None
            if campaign.state not in (CANARY, ROLLOUT):
                row.state, row.reason = STOPPED_TARGET, f"the campaign is {campaign.state}"
                row.updated_at = self.db.now(session)
                return None
            row.state, row.updated_at = RUNNING, self.db.now(session)
            return _target(row)

    def target_finished(self, campaign_id: int, repo: str, job_id: int, *, state: str, reason: str | None = None,
                        pull: dict[str, Any] | None = None, head_sha: str | None = None, checks: str | None = None,
                        cost_usd: float = 0.0, make_job: TargetJob | None = None) -> bool:
        """Record what the target's job came to, and queue the campaign's bookkeeping, in one commit; with
        `make_job`, the slot it frees is filled in the same commit too (no waiting for the bookkeeping job). False
        when the job is no longer the target's (a newer one took over): nothing is recorded."""
        with self.db.session() as session:
            now = self.db.now(session)
            campaign = _locked(session, campaign_id)
            row = _target_row(session, campaign_id, repo)
            if row is None or campaign is None or row.job_id != job_id:
                return False
            row.state, row.reason, row.finished_at, row.updated_at = state, reason, now, now
            row.cost_usd = (row.cost_usd or 0.0) + cost_usd
            if pull is not None:
                if row.pull_number != pull.get("number"):
                    row.opened_at = now
                row.pull_number, row.pull_url = pull.get("number"), pull.get("html_url")
                row.pull_state = "open" if pull.get("state", "open") == "open" else row.pull_state
            if head_sha and head_sha != row.head_sha:
                # A new head: its checks start again, and an approval was of the commits before it.
                row.head_sha, row.checks = head_sha, checks
                row.review = None if row.review == "approved" else row.review
            elif checks:
                row.checks = checks
            advanced = self._advance_in(session, campaign, make_job, now) if make_job else Advanced()
            news = advanced.announcements()
            if news or not self._sync_waiting(session, campaign_id):
                # What changed the campaign's state is said at once; progress alone joins a run already waiting.
                self._sync_in(session, _campaign(campaign), now, delay=0.0 if news else SYNC_DELAY,
                              trigger={"announce": news, "cancel": advanced.cancel} | _TABLE_NOW if news else None)
            return True

    # News of a target's pull request (webhooks)

    def track(self, campaign_id: int, repo: str, pull_number: int, *, head_sha: str | None = None,
              checks: str | None = None, review: str | None = None, pull_state: str | None = None) -> bool:
        """A pull request of the campaign changed: its checks on a head, a review, closed or merged. News about
        an older head than the target's is ignored. False when the pull request is not the target's."""
        with self.db.session() as session:
            now = self.db.now(session)
            row = _target_row(session, campaign_id, repo)
            if row is None or row.pull_number != pull_number:
                return False
            if checks and head_sha:
                if head_sha != row.head_sha:
                    # A newer head (a follow-up pushed to the pull request): GitHub sends a suite's news with the
                    # pull requests whose head it still is, so news of an older head never gets here.
                    row.head_sha, row.checks = head_sha, checks
                    row.review = None if row.review == "approved" else row.review
                else:
                    # Red is sticky for a head: one failing suite makes the head red whatever else passes.
                    row.checks = "red" if "red" in (checks, row.checks) else checks
            if review:
                row.review = review
            if pull_state:
                row.pull_state = pull_state
                if pull_state == "merged":
                    row.merged_at = now
            row.updated_at = now
            return True

    # Bookkeeping

    def advance(self, campaign_id: int, make_job: TargetJob, *, default_budget: float | None = None) -> Advanced:
        """Fill the campaign's free slots with its next targets (at most `concurrency` queued or running; only
        canaries before the rollout), roll out on green canaries under `auto_rollout`, stop at the budget, and
        finish when every target has. One commit: targets queued here have their jobs."""
        with self.db.session() as session:
            row = _locked(session, campaign_id)
            if row is None:
                return Advanced()
            return self._advance_in(session, row, make_job, self.db.now(session), default_budget)

    def _advance_in(self, session: Session, row: CampaignRow, make_job: TargetJob, now: datetime,
                    default_budget: float | None = None) -> Advanced:
        advanced = Advanced()
        if row.state not in (CANARY, ROLLOUT):
            return advanced
        rows = list(session.scalars(select(TargetRow).where(TargetRow.campaign_id == row.id)
                                    .order_by(TargetRow.position)))
        _settle_orphans(session, rows, now)
        budget = row.budget_usd if row.budget_usd is not None else default_budget
        if budget is not None and sum(t.cost_usd or 0.0 for t in rows) >= budget:
            row.state, row.note = BUDGET, f"its budget of {usd(budget, cents=True)} is spent"
            row.finished_at = row.updated_at = now
            advanced.budget_reached = True
            for target in rows:
                if target.state in (WAITING, QUEUED):
                    if target.state == QUEUED and target.job_id:
                        advanced.cancel.append(target.job_id)
                    target.state, target.reason, target.updated_at = STOPPED_TARGET, "the budget is spent", now
            return advanced
        if row.state == CANARY and _canaries_green(rows) and (row.spec or {}).get("auto_rollout"):
            row.state, row.rollout_at, row.updated_at = ROLLOUT, now, now
            advanced.rolled_out = True
        concurrency = int((row.spec or {}).get("concurrency") or 5)
        free = concurrency - sum(1 for t in rows if t.state in ACTIVE)
        campaign = _campaign(row)
        for target in rows:
            if free <= 0:
                break
            if target.state != WAITING or (row.state == CANARY and not target.canary):
                continue
            target.runs = (target.runs or 0) + 1
            target.state, target.reason, target.updated_at = QUEUED, None, now
            request = make_job(campaign, _target(target))
            target.job_id = self.queue.enqueue_in(session, request, now)
            advanced.queued.append(_target(target))
            free -= 1
        if all(t.state in (*FINISHED, SKIPPED) for t in rows):
            row.state, row.finished_at, row.updated_at = DONE, now, now
            advanced.finished = True
        return advanced

    def table_edited(self, campaign_id: int, comment_id: int) -> None:
        """The status table was written (the comment, when made): now."""
        with self.db.session() as session:
            row = session.get(CampaignRow, campaign_id)
            if row is not None:
                row.table_comment_id, row.table_edited_at = comment_id, self.db.now(session)

    def now(self) -> datetime:
        """The database's clock (what `table_edited_at` and the other times are in)."""
        with self.db.session() as session:
            return self.db.now(session)

    def sync(self, campaign: Campaign, *, delay: float = SYNC_DELAY, trigger: dict[str, Any] | None = None) -> int:
        """Queue the campaign's bookkeeping (news, free slots, its table)."""
        with self.db.session() as session:
            return self._sync_in(session, campaign, self.db.now(session), delay=delay, trigger=trigger)

    def _sync_waiting(self, session: Session, campaign_id: int) -> bool:
        """A bookkeeping run of the campaign is queued and not started: it will see whatever is committed now."""
        return session.scalar(select(func.count()).select_from(Job).where(
            Job.kind == JobKind.CAMPAIGN_SYNC, Job.subject == f"campaign-sync:{campaign_id}",
            Job.status == JobStatus.QUEUED, Job.cancel_requested.is_(False))) > 0

    def _sync_in(self, session: Session, campaign: Campaign, now: datetime, *, delay: float = SYNC_DELAY,
                 trigger: dict[str, Any] | None = None) -> int:
        # Bookkeeping queued behind bookkeeping is folded into it (`JobQueue.absorb`), so a burst is one run.
        request = JobRequest(kind=JobKind.CAMPAIGN_SYNC, repo=campaign.repo, number=campaign.number,
                             requester=campaign.requester, installation_id=campaign.installation_id,
                             trigger={"type": "campaign_sync", "campaign_id": campaign.id, **(trigger or {})},
                             delay_seconds=delay)
        return self.queue.enqueue_in(session, request, now)

    # Commands on the campaign issue

    def rollout(self, campaign_id: int) -> Campaign | None:
        """Take the campaign past its canaries; None when it is not waiting on them."""
        with self.db.session() as session:
            now = self.db.now(session)
            row = _locked(session, campaign_id)
            if row is None or row.state != CANARY:
                return None
            row.state, row.rollout_at, row.updated_at = ROLLOUT, now, now
            self._sync_in(session, _campaign(row), now, delay=0.0, trigger=_TABLE_NOW)
            return _campaign(row)

    def stop(self, campaign_id: int, by: str) -> Stopped:
        """Halt the campaign: waiting targets are stopped, queued and running ones' jobs returned to cancel."""
        with self.db.session() as session:
            now = self.db.now(session)
            row = _locked(session, campaign_id)
            if row is None:
                return Stopped(None, [])
            if row.state not in (CANARY, ROLLOUT):
                return Stopped(_campaign(row), [], already=True)
            row.state, row.note, row.finished_at, row.updated_at = STOPPED, f"@{by} stopped it", now, now
            cancel = []
            for target in session.scalars(select(TargetRow).where(TargetRow.campaign_id == campaign_id,
                                                                  TargetRow.state.in_((WAITING, *ACTIVE)))):
                if target.state in ACTIVE and target.job_id:
                    cancel.append(target.job_id)
                target.state, target.reason, target.updated_at = STOPPED_TARGET, f"@{by} stopped the campaign", now
            self._sync_in(session, _campaign(row), now, delay=0.0, trigger=_TABLE_NOW)
            return Stopped(_campaign(row), cancel)

    def retry(self, campaign_id: int, *, budget_usd: float | None = None) -> list[Target]:
        """Failed targets (and those a stop or the budget caught) wait again; a finished campaign runs again. A
        `budget_usd` given replaces the campaign's (raised in the block, read again by the command)."""
        return self._again(campaign_id, (FAILED, STOPPED_TARGET), task=None, budget_usd=budget_usd)

    def update(self, campaign_id: int, task: str) -> list[Target]:
        """The task changed: every target with an open pull request runs again on its branch (a follow-up
        commit), and targets not yet run will use the new task. (The title stays: the branch is named after it.)"""
        return self._again(campaign_id, (OPENED,), task=task)

    def _again(self, campaign_id: int, states: tuple[str, ...], *, task: str | None,
               budget_usd: float | None = None) -> list[Target]:
        with self.db.session() as session:
            now = self.db.now(session)
            row = _locked(session, campaign_id)
            if row is None:
                return []
            if task is not None:
                row.task = task
            if budget_usd is not None:
                row.budget_usd = budget_usd
            again = []
            for target in session.scalars(select(TargetRow).where(TargetRow.campaign_id == campaign_id,
                                                                  TargetRow.state.in_(states))):
                if target.state == OPENED and target.pull_state != "open":
                    continue  # merged or closed: nothing to update
                target.state, target.reason, target.finished_at, target.updated_at = WAITING, None, None, now
                again.append(_target(target))
            if again and row.state not in (CANARY, ROLLOUT):
                row.state = ROLLOUT if row.rollout_at else CANARY
                row.note = row.finished_at = None
            row.updated_at = now
            self._sync_in(session, _campaign(row), now, delay=0.0, trigger=_TABLE_NOW)
            return again

    def cost(self, campaign_id: int) -> float:
        with self.db.session() as session:
            return float(session.scalar(select(func.coalesce(func.sum(TargetRow.cost_usd), 0.0))
                                        .where(TargetRow.campaign_id == campaign_id)) or 0.0)

    def active_jobs(self, campaign_id: int) -> list[int]:
        """The jobs of the campaign's targets still queued or running (by the jobs' own state)."""
        with self.db.session() as session:
            return list(session.scalars(
                select(Job.id).join(TargetRow, TargetRow.job_id == Job.id)
                .where(TargetRow.campaign_id == campaign_id,
                       Job.status.in_((JobStatus.QUEUED, JobStatus.RUNNING)))))


def _settle_orphans(session: Session, rows: list[TargetRow], now: datetime) -> None:
    """Targets still queued or running whose job has ended without saying so (its worker died on every attempt,
    or it was cancelled from outside the campaign): failed or stopped, so that the campaign can finish."""
    active = {t.job_id: t for t in rows if t.state in ACTIVE and t.job_id}
    if not active:
        return
    for job_id, status, error in session.execute(select(Job.id, Job.status, Job.error).where(
            Job.id.in_(list(active)), Job.status.in_((JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)))):
        target = active[job_id]
        if status == JobStatus.CANCELLED:
            target.state, target.reason = STOPPED_TARGET, "its job was cancelled"
        else:
            target.state, target.reason = FAILED, (error or "its job ended without a result")[:300]
        target.finished_at = target.updated_at = now


def _canaries_green(rows: list[TargetRow]) -> bool:
    """Every canary has finished without failing, and each one that opened a pull request has a green head."""
    canaries = [t for t in rows if t.canary]
    if not canaries:
        return True
    return all(t.state == NOT_NEEDED or (t.state == OPENED and t.checks == "green") for t in canaries)


def _locked(session: Session, campaign_id: int) -> CampaignRow | None:
    """The campaign's row, locked for the transaction (PostgreSQL; SQLite's write transaction is the lock)."""
    return session.scalars(select(CampaignRow).where(CampaignRow.id == campaign_id).with_for_update()).first()


def _target_row(session: Session, campaign_id: int, repo: str) -> TargetRow | None:
    return session.scalars(select(TargetRow).where(TargetRow.campaign_id == campaign_id,
                                                   func.lower(TargetRow.repo) == repo.lower())).first()


def _campaign(row: CampaignRow) -> Campaign:
    return Campaign(row.id, row.repo, row.number, row.installation_id, row.requester, row.title, row.task,
                    dict(row.spec or {}), row.budget_usd, row.state, row.note, row.table_comment_id,
                    row.table_edited_at, row.created_at, row.updated_at, row.rollout_at, row.finished_at)


def _target(row: TargetRow) -> Target:
    return Target(row.id, row.campaign_id, row.repo, row.position, bool(row.canary), row.state, row.reason,
                  row.job_id, row.runs or 0, row.pull_number, row.pull_url, row.pull_state, row.head_sha, row.checks,
                  row.review, float(row.cost_usd or 0.0), row.opened_at, row.merged_at, row.finished_at)

