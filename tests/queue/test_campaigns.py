"""Fleet campaigns in the queue (app/queue/campaigns.py, the priorities of app/queue/store.py and the worker's
background slots), on SQLite and on the real PostgreSQL.

These protect what the campaign issue, its table and the people waiting on Honk see: a person's request is never
queued behind a campaign's repositories, a campaign starts once however often it is asked, its canaries go first,
it never runs more repositories at once than it says, each queued repository has exactly one job, it stops at its
budget or on `@honk stop` and resumes on `@honk retry`, and news of its pull requests lands on the right row.
The whole campaign, end to end, is tests/jobs/test_campaign.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from app.process import HonkState
from app.queue import campaigns as states
from app.queue.campaigns import Campaign, CampaignStore, Target
from app.queue.context import Handlers, JobContext, JobPostponed
from app.queue.db import Database
from app.queue.models import Job, JobStatus
from app.queue.requests import JobKind, JobRequest, Priority
from app.queue.store import JobQueue
from app.queue.worker import Worker
from app.settings import Settings

FLEET = [f"acme/svc-{i}" for i in range(6)]
SHA_A = "a" * 40
SHA_B = "b" * 40


@pytest.fixture
def queue(db: Database) -> JobQueue:
    return JobQueue(db, lease_seconds=30)


@pytest.fixture
def store(queue: JobQueue) -> CampaignStore:
    return CampaignStore(queue)


def person(number: int = 7) -> JobRequest:
    return JobRequest(kind=JobKind.RESOLVE_ISSUE, repo="acme/widgets", number=number, requester="alice",
                      installation_id=42)


def background(repo: str = "acme/svc-0", campaign_id: int = 1) -> JobRequest:
    return JobRequest(kind=JobKind.CAMPAIGN_TARGET, repo=repo, number=None, requester="alice", installation_id=42,
                      trigger={"type": "campaign_target", "campaign_id": campaign_id, "target": repo})


def target_job(made: Campaign, target: Target) -> JobRequest:
    """The job of one repository's run, as the jobs layer makes it (app/jobs/campaign.py `_target_job`)."""
    return JobRequest(kind=JobKind.CAMPAIGN_TARGET, repo=target.repo, number=None, requester=made.requester,
                      installation_id=made.installation_id,
                      trigger={"type": "campaign_target", "campaign_id": made.id, "target": target.repo,
                               "run": target.runs})


def start(store: CampaignStore, *, targets: list[str] | None = None, canaries: int = 2, number: int = 100,
          budget: float | None = None, skipped: list[tuple[str, str]] | None = None,
          **spec: Any) -> tuple[Campaign, bool]:
    return store.create(repo="acme/platform", number=number, installation_id=42, requester="alice",
                        title="Turn off legacy mode", task="Set legacy = false.",
                        spec={"concurrency": 5, **spec}, budget_usd=budget,
                        targets=FLEET if targets is None else targets, canaries=canaries, skipped=skipped or [])


def jobs_of(db: Database, kind: JobKind) -> list[Job]:
    with db.session() as session:
        return list(session.scalars(select(Job).where(Job.kind == kind.value).order_by(Job.id)))


def by_repo(store: CampaignStore, campaign_id: int) -> dict[str, Target]:
    return {t.repo: t for t in store.targets(campaign_id)}


def states_of(store: CampaignStore, campaign_id: int) -> list[str]:
    return [t.state for t in store.targets(campaign_id)]


def finish(store: CampaignStore, campaign_id: int, repo: str, state: str = states.OPENED, *, pull: int | None = None,
           head: str | None = None, checks: str | None = None, cost: float = 0.0) -> None:
    """The target's job came to `state` (as app/jobs/campaign_target.py records it)."""
    target = store.target(campaign_id, repo)
    assert target is not None and target.job_id is not None, f"{repo} has no job"
    assert store.target_started(campaign_id, repo, target.job_id) is not None
    facts = {"number": pull, "html_url": f"https://github.com/{repo}/pull/{pull}", "state": "open"} if pull else None
    assert store.target_finished(campaign_id, repo, target.job_id, state=state, pull=facts, head_sha=head,
                                 checks=checks, cost_usd=cost)


# Priorities: a person before the campaign


def test_a_persons_request_is_claimed_before_background_work_queued_earlier(queue: JobQueue) -> None:
    first_background = queue.enqueue(background("acme/svc-0"))
    second_background = queue.enqueue(background("acme/svc-1"))
    persons = queue.enqueue(person())
    claimed = [queue.claim("w") for _ in range(3)]
    assert [job.id for job in claimed if job] == [persons, first_background, second_background]
    assert queue.claim("w") is None


def test_a_claim_without_background_never_takes_a_campaigns_repository(queue: JobQueue) -> None:
    waiting = queue.enqueue(background())
    assert queue.claim("w", background=False) is None
    assert queue.get(waiting).status == JobStatus.QUEUED  # type: ignore[union-attr]
    persons = queue.enqueue(person())
    taken = queue.claim("w", background=False)
    assert taken is not None and taken.id == persons
    assert queue.claim("w", background=False) is None
    taken = queue.claim("w")
    assert taken is not None and taken.id == waiting


@pytest.mark.parametrize(("kind", "priority"), [
    (JobKind.RESOLVE_ISSUE, Priority.PERSON), (JobKind.FOLLOW_UP, Priority.PERSON),
    (JobKind.CONTROL, Priority.PERSON), (JobKind.CAMPAIGN, Priority.PERSON),
    (JobKind.CAMPAIGN_SYNC, Priority.PERSON), (JobKind.CAMPAIGN_TARGET, Priority.BACKGROUND)])
def test_a_jobs_priority_comes_from_its_kind(queue: JobQueue, kind: JobKind, priority: Priority) -> None:
    request = JobRequest(kind=kind, repo="acme/widgets", number=7, requester="alice", installation_id=42,
                         trigger={"campaign_id": 3})
    assert request.priority is priority
    queued = queue.enqueue(request)
    with queue.db.session() as session:
        inside = queue.enqueue_in(session, request, queue.db.now(session))
    delivered = queue.accept_delivery(f"d-{kind.value}", "issues", "labeled", request).job_id
    assert delivered is not None
    assert [queue.get(job_id).priority for job_id in (queued, inside, delivered)] == [  # type: ignore[union-attr]
        int(priority)] * 3


# Postponing: GitHub holds the installation's requests


def test_postpone_puts_the_job_back_for_later_without_counting_the_attempt(queue: JobQueue) -> None:
    job_id = queue.enqueue(background())
    claimed = queue.claim("w1")
    assert claimed is not None and claimed.attempts == 1
    assert queue.postpone(job_id, "someone-else", 30, "not mine") is None  # only the lease's owner
    until = queue.postpone(job_id, "w1", 30, "GitHub holds this installation's requests")
    job = queue.get(job_id)
    assert job is not None and until is not None
    assert (job.status, job.attempts, job.lease_owner, job.lease_expires_at) == (JobStatus.QUEUED, 0, None, None)
    assert job.run_after == until
    assert until - job.updated_at == timedelta(seconds=30)
    event = queue.events(job_id)[-1]
    assert event.kind == "job.postponed"
    assert event.data["retry_at"] == until.isoformat() + "Z"
    assert event.data["reason"] == "GitHub holds this installation's requests"
    assert event.data["retry_in_seconds"] == 30
    assert queue.claim("w2") is None  # not before its time


def test_a_postponed_job_someone_asked_to_cancel_is_cancelled(queue: JobQueue) -> None:
    job_id = queue.enqueue(background())
    assert queue.claim("w1") is not None
    assert queue.cancel(job_id) == JobStatus.RUNNING
    assert queue.postpone(job_id, "w1", 30, "GitHub holds this installation's requests") is None
    job = queue.get(job_id)
    assert job is not None and job.status == JobStatus.CANCELLED and job.finished_at is not None
    assert [e.kind for e in queue.events(job_id)][-1] == "job.cancelled"
    assert "job.postponed" not in [e.kind for e in queue.events(job_id)]


# The worker keeps a slot for people


@pytest.fixture
def honk(make_settings: Callable[..., Settings], database_url: str) -> Iterator[HonkState]:
    made = HonkState.create(make_settings(honk_database_url=database_url, honk_worker_concurrency=2,
                                          honk_lease_seconds=5, honk_shutdown_grace_seconds=2))
    made.db.migrate()
    yield made
    made.db.dispose()


def drive(worker: Worker, scenario: Callable[[], Any]) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            await scenario()
        finally:
            stop.set()
            await asyncio.wait_for(task, 15)
        assert task.exception() is None

    asyncio.run(main())


async def until(predicate: Callable[[], Any], what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(predicate):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_worker_of_two_runs_one_campaign_repository_at_a_time_and_a_person_at_once(honk: HonkState) -> None:
    """With HONK_WORKER_CONCURRENCY=2, a campaign's repositories take one slot; the other is free the moment a
    person asks, however many repositories wait."""
    handlers = Handlers()
    running: set[str] = set()
    peak_background = 0
    person_started_beside: list[set[str]] = []

    @handlers.register(JobKind.CAMPAIGN_TARGET)
    async def target(ctx: JobContext) -> dict[str, Any]:
        nonlocal peak_background
        running.add(ctx.job.repo)
        peak_background = max(peak_background, len(running))
        try:
            await asyncio.sleep(0.4)
        finally:
            running.discard(ctx.job.repo)
        return {}

    @handlers.register(JobKind.RESOLVE_ISSUE)
    async def resolve(ctx: JobContext) -> dict[str, Any]:
        person_started_beside.append(set(running))
        return {}

    repos = [f"acme/svc-{i}" for i in range(4)]
    background_ids = [honk.queue.enqueue(background(repo)) for repo in repos]

    async def scenario() -> None:
        await until(lambda: running, "a campaign repository to start")
        await asyncio.sleep(0.15)  # the worker has had rounds to fill its second slot, and must not have
        assert len(running) == 1
        persons = await asyncio.to_thread(honk.queue.enqueue, person())
        await until(lambda: honk.queue.get(persons).status == JobStatus.SUCCEEDED,  # type: ignore[union-attr]
                    "the person's job")
        await until(lambda: honk.queue.depth() == {"succeeded": 5}, "every job")

    drive(Worker(honk.queue, handlers, honk.settings, worker_id="w"), scenario)
    assert peak_background == 1
    # The person did not wait for the campaign: a repository was still running when their job started.
    assert len(person_started_beside) == 1 and len(person_started_beside[0]) == 1
    assert all(honk.queue.get(i).attempts == 1 for i in background_ids)  # type: ignore[union-attr]


def test_a_postponed_job_goes_back_to_the_queue_with_its_retry_time(honk: HonkState) -> None:
    """A handler raising JobPostponed (GitHub holding the installation's requests, app/jobs/registry.py
    `patient`) is neither failed nor retried with backoff: it waits, the attempt not counted."""
    handlers = Handlers()

    @handlers.register(JobKind.CAMPAIGN_TARGET)
    async def target(ctx: JobContext) -> dict[str, Any]:
        raise JobPostponed("GitHub holds this installation's requests: secondary rate limit", 120)

    job_id = honk.queue.enqueue(background())

    async def scenario() -> None:
        await until(lambda: "job.postponed" in [e.kind for e in honk.queue.events(job_id)], "the postponement")

    drive(Worker(honk.queue, handlers, honk.settings, worker_id="w"), scenario)
    job = honk.queue.get(job_id)
    assert job is not None
    assert (job.status, job.attempts, job.error) == (JobStatus.QUEUED, 0, None)
    assert job.run_after - job.updated_at == timedelta(seconds=120)
    postponed = [e for e in honk.queue.events(job_id) if e.kind == "job.postponed"]
    assert len(postponed) == 1
    assert postponed[0].data["reason"] == "GitHub holds this installation's requests: secondary rate limit"
    assert postponed[0].data["retry_at"] == job.run_after.isoformat() + "Z"


# Starting a campaign


def test_create_makes_the_targets_canaries_first_and_one_bookkeeping_job(store: CampaignStore, db: Database) -> None:
    made, created = start(store, canaries=2, skipped=[("acme/archive", "archived"), ("acme/docs", "no access")])
    assert created and made.state == states.CANARY and made.rollout_at is None
    targets = store.targets(made.id)
    assert [t.repo for t in targets] == [*FLEET, "acme/archive", "acme/docs"]
    assert [t.canary for t in targets] == [True, True, False, False, False, False, False, False]
    assert [t.state for t in targets] == [states.WAITING] * 6 + [states.SKIPPED] * 2
    assert [t.reason for t in targets[6:]] == ["archived", "no access"]
    assert all(t.job_id is None and t.runs == 0 for t in targets)
    [sync] = jobs_of(db, JobKind.CAMPAIGN_SYNC)
    assert sync.subject == f"campaign-sync:{made.id}" and sync.payload["campaign_id"] == made.id
    assert sync.payload["table_now"] is True  # the first table is written at once
    assert jobs_of(db, JobKind.CAMPAIGN_TARGET) == []  # nothing runs before the bookkeeping


def test_create_without_canaries_starts_rolling_out(store: CampaignStore) -> None:
    made, _ = start(store, canaries=0)
    assert made.state == states.ROLLOUT and made.rollout_at is not None
    assert not any(t.canary for t in store.targets(made.id))


def test_create_twice_for_one_issue_is_the_same_campaign(store: CampaignStore, db: Database) -> None:
    """A redelivered label or a retried start never starts a campaign twice."""
    made, created = start(store)
    again, created_again = start(store, targets=["acme/other-1", "acme/other-2"], canaries=1)
    assert (created, created_again) == (True, False)
    assert again.id == made.id and again.state == made.state
    assert [t.repo for t in store.targets(made.id)] == FLEET
    assert len(store.all()) == 1
    assert len(jobs_of(db, JobKind.CAMPAIGN_SYNC)) == 1
    assert store.by_issue("ACME/Platform", 100) == again  # GitHub's names are not case-sensitive
    other, created_other = start(store, number=101)
    assert created_other and other.id != made.id


# Filling slots


def test_advance_queues_only_canaries_before_the_rollout_each_with_one_job(store: CampaignStore,
                                                                           db: Database) -> None:
    made, _ = start(store, canaries=2, concurrency=3)
    advanced = store.advance(made.id, target_job)
    assert [t.repo for t in advanced.queued] == FLEET[:2]
    assert not (advanced.rolled_out or advanced.finished or advanced.budget_reached or advanced.cancel)
    jobs = jobs_of(db, JobKind.CAMPAIGN_TARGET)
    assert len(jobs) == 2
    targets = by_repo(store, made.id)
    for job in jobs:
        target = targets[job.repo]
        assert (target.state, target.job_id, target.runs) == (states.QUEUED, job.id, 1)
        assert job.payload["campaign_id"] == made.id and job.priority == Priority.BACKGROUND
    assert states_of(store, made.id)[2:] == [states.WAITING] * 4
    # A third slot is free, but the rest wait for the rollout; asking again queues nothing twice.
    assert store.advance(made.id, target_job).queued == []
    assert len(jobs_of(db, JobKind.CAMPAIGN_TARGET)) == 2


def test_advance_never_runs_more_than_the_campaigns_concurrency(store: CampaignStore, db: Database) -> None:
    made, _ = start(store, canaries=0, concurrency=2)
    assert [t.repo for t in store.advance(made.id, target_job).queued] == FLEET[:2]
    assert store.advance(made.id, target_job).queued == []
    finish(store, made.id, FLEET[0], states.NOT_NEEDED)
    assert [t.repo for t in store.advance(made.id, target_job).queued] == [FLEET[2]]
    assert sum(1 for s in states_of(store, made.id) if s in states.ACTIVE) == 2
    assert len(jobs_of(db, JobKind.CAMPAIGN_TARGET)) == 3


def test_rollout_then_advance_queues_the_rest_in_order(store: CampaignStore, db: Database) -> None:
    made, _ = start(store, canaries=2, concurrency=10)
    store.advance(made.id, target_job)
    rolled = store.rollout(made.id)
    assert rolled is not None and rolled.state == states.ROLLOUT and rolled.rollout_at is not None
    assert store.rollout(made.id) is None  # not waiting on canaries any more
    assert [t.repo for t in store.advance(made.id, target_job).queued] == FLEET[2:]
    jobs = jobs_of(db, JobKind.CAMPAIGN_TARGET)
    assert [j.repo for j in jobs] == FLEET  # one each, in the plan's order
    assert {t.job_id for t in store.targets(made.id)} == {j.id for j in jobs}
    # The rollout asked for the table at once.
    assert any(j.payload.get("table_now") for j in jobs_of(db, JobKind.CAMPAIGN_SYNC)[1:])


def test_a_target_is_never_marked_queued_without_its_job(store: CampaignStore, db: Database) -> None:
    """Marking a target queued and making its job are one commit: when making a job fails half-way, no target
    is left queued without one (nor a job without its target)."""
    made, _ = start(store, canaries=0)
    made_jobs: list[str] = []

    def failing(campaign: Campaign, target: Target) -> JobRequest:
        if made_jobs:
            raise RuntimeError("the database went away")
        made_jobs.append(target.repo)
        return target_job(campaign, target)

    with pytest.raises(RuntimeError):
        store.advance(made.id, failing)
    assert made_jobs == [FLEET[0]]
    assert states_of(store, made.id) == [states.WAITING] * 6
    assert jobs_of(db, JobKind.CAMPAIGN_TARGET) == []
    assert [t.repo for t in store.advance(made.id, target_job).queued] == FLEET[:5]


# A target's run and the news of its pull request


def test_a_stale_job_cannot_record_a_targets_outcome(store: CampaignStore, db: Database) -> None:
    made, _ = start(store, canaries=0)
    store.advance(made.id, target_job)
    target = store.target(made.id, FLEET[0])
    assert target is not None and target.job_id is not None
    syncs = len(jobs_of(db, JobKind.CAMPAIGN_SYNC))
    stale = target.job_id + 1000
    assert store.target_started(made.id, FLEET[0], stale) is None
    assert not store.target_finished(made.id, FLEET[0], stale, state=states.FAILED, reason="old news",
                                     cost_usd=3.0)
    assert store.target(made.id, FLEET[0]) == target
    assert store.cost(made.id) == 0.0
    assert len(jobs_of(db, JobKind.CAMPAIGN_SYNC)) == syncs  # no bookkeeping for nothing
    assert not store.target_finished(made.id, "acme/not-a-target", target.job_id, state=states.FAILED)
    # The target's own job records; the bookkeeping run already waiting (the start's) will see it, so no second
    # one is queued for mere progress.
    finish(store, made.id, FLEET[0], pull=12, head=SHA_A, checks="pending", cost=0.25)
    recorded = store.target(made.id, FLEET[0])
    assert recorded is not None
    assert (recorded.state, recorded.pull_number, recorded.pull_state, recorded.head_sha, recorded.checks,
            recorded.cost_usd) == (states.OPENED, 12, "open", SHA_A, "pending", 0.25)
    assert recorded.opened_at is not None and recorded.finished_at is not None
    assert len(jobs_of(db, JobKind.CAMPAIGN_SYNC)) == syncs == 1
    # With none waiting, the target's commit queues one.
    with db.session() as session:
        session.execute(update(Job).where(Job.kind == JobKind.CAMPAIGN_SYNC).values(status="succeeded"))
    finish(store, made.id, FLEET[1], pull=13, head=SHA_A, checks="pending", cost=0.25)
    assert len([j for j in jobs_of(db, JobKind.CAMPAIGN_SYNC) if j.status == "queued"]) == 1


def opened(store: CampaignStore, **spec: Any) -> Campaign:
    """A campaign whose first repository has opened pull request #12 on head A, checks pending."""
    made, _ = start(store, canaries=0, **spec)
    store.advance(made.id, target_job)
    finish(store, made.id, FLEET[0], pull=12, head=SHA_A, checks="pending")
    return made


def test_news_of_another_pull_request_is_not_the_targets(store: CampaignStore) -> None:
    made = opened(store)
    before = store.target(made.id, FLEET[0])
    assert not store.track(made.id, FLEET[0], 13, head_sha=SHA_A, checks="red", review="approved",
                           pull_state="merged")
    assert not store.track(made.id, "acme/elsewhere", 12, review="approved")
    assert store.target(made.id, FLEET[0]) == before


def test_red_is_sticky_for_a_head(store: CampaignStore) -> None:
    made = opened(store)
    assert store.track(made.id, FLEET[0], 12, head_sha=SHA_A, checks="green")
    assert store.target(made.id, FLEET[0]).checks == "green"  # type: ignore[union-attr]
    assert store.track(made.id, FLEET[0], 12, head_sha=SHA_A, checks="red")
    assert store.track(made.id, FLEET[0], 12, head_sha=SHA_A, checks="green")  # another suite passed
    assert store.track(made.id, FLEET[0], 12, head_sha=SHA_A, checks="pending")
    assert store.target(made.id, FLEET[0]).checks == "red"  # type: ignore[union-attr]


def test_a_new_head_from_the_targets_run_starts_its_checks_and_approval_again(store: CampaignStore) -> None:
    """`@honk update` reruns the target on its branch: the new head's checks start again, and an approval was of
    the commits before."""
    made = opened(store)
    store.track(made.id, FLEET[0], 12, head_sha=SHA_A, checks="red", review="approved")
    assert store.update(made.id, "Set legacy = false, and say why.")
    store.advance(made.id, target_job)
    finish(store, made.id, FLEET[0], pull=12, head=SHA_B, checks="pending")
    target = store.target(made.id, FLEET[0])
    assert target is not None
    assert (target.head_sha, target.checks, target.review, target.runs) == (SHA_B, "pending", None, 2)
    assert store.track(made.id, FLEET[0], 12, head_sha=SHA_B, checks="green")
    assert store.target(made.id, FLEET[0]).checks == "green"  # type: ignore[union-attr]


def test_checks_on_a_new_head_of_the_pull_request_replace_the_old_heads(store: CampaignStore) -> None:
    """A commit pushed to a campaign's pull request by anyone but the target's own run (a reviewer, `@honk` on the
    pull request, Honk's CI fix on a red head) moves its head: GitHub's news of that head's checks is the pull
    request's state now, and the old head's red must not stay on the table for good."""
    made = opened(store)
    store.track(made.id, FLEET[0], 12, head_sha=SHA_A, checks="red", review="approved")
    assert store.track(made.id, FLEET[0], 12, head_sha=SHA_B, checks="green")
    target = store.target(made.id, FLEET[0])
    assert target is not None
    assert (target.head_sha, target.checks, target.review) == (SHA_B, "green", None)  # approved was the old head
    store.track(made.id, FLEET[0], 12, review="changes_requested")
    assert store.track(made.id, FLEET[0], 12, head_sha="c" * 40, checks="pending")
    assert store.target(made.id, FLEET[0]).review == "changes_requested"  # type: ignore[union-attr]


def test_reviews_and_merges_are_recorded(store: CampaignStore) -> None:
    made = opened(store)
    assert store.track(made.id, FLEET[0], 12, review="changes_requested")
    assert store.track(made.id, FLEET[0], 12, review="approved")
    assert store.track(made.id, FLEET[0], 12, pull_state="merged")
    target = store.target(made.id, FLEET[0])
    assert target is not None
    assert (target.review, target.pull_state, target.merged) == ("approved", "merged", True)
    assert target.merged_at is not None and target.opened_at is not None and target.merged_at >= target.opened_at


# Rolling out on green canaries


def canaries_finished(store: CampaignStore, first: tuple[str, str | None], second: tuple[str, str | None]
                      ) -> Campaign:
    """A campaign under `auto_rollout` whose two canaries finished as given: (state, checks)."""
    made, _ = start(store, canaries=2, auto_rollout=True, concurrency=10)
    assert [t.repo for t in store.advance(made.id, target_job).queued] == FLEET[:2]
    for number, (repo, (state, checks)) in enumerate(zip(FLEET[:2], (first, second), strict=True), start=12):
        if state == states.RUNNING:
            target = store.target(made.id, repo)
            assert target is not None and target.job_id is not None
            store.target_started(made.id, repo, target.job_id)
            continue
        pulled = state == states.OPENED
        finish(store, made.id, repo, state, pull=number if pulled else None, head=SHA_A if pulled else None,
               checks="pending" if pulled else None)
        if pulled and checks != "pending":
            assert store.track(made.id, repo, number, head_sha=SHA_A, checks=checks)
    return made


@pytest.mark.parametrize(("first", "second"), [
    ((states.OPENED, "green"), (states.OPENED, "green")),
    ((states.OPENED, "green"), (states.NOT_NEEDED, None)),
    ((states.NOT_NEEDED, None), (states.NOT_NEEDED, None))])
def test_auto_rollout_follows_green_canaries(store: CampaignStore, first: tuple[str, str | None],
                                             second: tuple[str, str | None]) -> None:
    made = canaries_finished(store, first, second)
    advanced = store.advance(made.id, target_job)
    assert advanced.rolled_out
    assert [t.repo for t in advanced.queued] == FLEET[2:]
    rolled = store.get(made.id)
    assert rolled is not None and rolled.state == states.ROLLOUT and rolled.rollout_at is not None


@pytest.mark.parametrize(("first", "second"), [
    ((states.OPENED, "green"), (states.OPENED, "pending")),
    ((states.OPENED, "green"), (states.OPENED, "red")),
    ((states.OPENED, "green"), (states.FAILED, None)),
    ((states.NOT_NEEDED, None), (states.RUNNING, None)),
    ((states.OPENED, "green"), (states.STOPPED_TARGET, None))])
def test_auto_rollout_waits_unless_every_canary_is_green(store: CampaignStore, first: tuple[str, str | None],
                                                         second: tuple[str, str | None]) -> None:
    made = canaries_finished(store, first, second)
    advanced = store.advance(made.id, target_job)
    assert not advanced.rolled_out and advanced.queued == []
    assert store.get(made.id).state == states.CANARY  # type: ignore[union-attr]
    assert states_of(store, made.id)[2:] == [states.WAITING] * 4


def test_green_canaries_without_auto_rollout_wait_for_a_writer(store: CampaignStore) -> None:
    made, _ = start(store, canaries=1)
    store.advance(made.id, target_job)
    finish(store, made.id, FLEET[0], pull=12, head=SHA_A, checks="pending")
    store.track(made.id, FLEET[0], 12, head_sha=SHA_A, checks="green")
    advanced = store.advance(made.id, target_job)
    assert not advanced.rolled_out and advanced.queued == []
    assert store.get(made.id).state == states.CANARY  # type: ignore[union-attr]


# The budget


def test_the_budget_stops_the_campaign_and_cancels_its_queued_jobs(store: CampaignStore) -> None:
    made, _ = start(store, canaries=0, concurrency=2, budget=1.0)
    store.advance(made.id, target_job)
    finish(store, made.id, FLEET[0], pull=12, head=SHA_A, checks="pending", cost=0.6)
    assert [t.repo for t in store.advance(made.id, target_job).queued] == [FLEET[2]]  # $0.60 of $1.00
    finish(store, made.id, FLEET[1], states.NOT_NEEDED, cost=0.5)  # $1.10
    queued = store.target(made.id, FLEET[2])
    assert queued is not None and queued.state == states.QUEUED
    advanced = store.advance(made.id, target_job)
    assert advanced.budget_reached and advanced.queued == [] and not advanced.finished
    assert advanced.cancel == [queued.job_id]
    stopped = store.get(made.id)
    assert stopped is not None
    assert (stopped.state, stopped.note) == (states.BUDGET, "its budget of $1.00 is spent")
    assert stopped.finished_at is not None and not stopped.running
    targets = by_repo(store, made.id)
    assert [targets[r].state for r in FLEET[2:]] == [states.STOPPED_TARGET] * 4  # the queued one too
    assert {targets[r].reason for r in FLEET[2:]} == {"the budget is spent"}
    assert (targets[FLEET[0]].state, targets[FLEET[1]].state) == (states.OPENED, states.NOT_NEEDED)
    assert store.cost(made.id) == pytest.approx(1.1)
    # Stopped is stopped: the bookkeeping queues nothing more.
    assert store.advance(made.id, target_job) == states.Advanced()


def test_the_policy_budget_applies_when_the_campaign_has_none(store: CampaignStore) -> None:
    made, _ = start(store, canaries=0, concurrency=1)
    store.advance(made.id, target_job)
    finish(store, made.id, FLEET[0], states.NOT_NEEDED, cost=2.0)
    under = store.advance(made.id, target_job, default_budget=5.0)
    assert [t.repo for t in under.queued] == [FLEET[1]] and not under.budget_reached
    spent = store.advance(made.id, target_job, default_budget=2.0)
    assert spent.budget_reached and spent.cancel == [store.target(made.id, FLEET[1]).job_id]  # type: ignore[union-attr]
    stopped = store.get(made.id)
    assert stopped is not None and stopped.state == states.BUDGET
    assert stopped.note == "its budget of $2.00 is spent"


def test_after_the_budget_retry_runs_every_repository_left(store: CampaignStore, queue: JobQueue) -> None:
    """Raise the budget and `@honk retry`: every repository the budget caught runs again, the one whose queued
    job the bookkeeping cancelled included, and the campaign can finish."""
    made, _ = start(store, targets=FLEET[:4], canaries=0, concurrency=2, budget=1.0)
    store.advance(made.id, target_job)
    finish(store, made.id, FLEET[0], states.NOT_NEEDED, cost=0.5)
    store.advance(made.id, target_job)  # FLEET[2] queued
    finish(store, made.id, FLEET[1], states.NOT_NEEDED, cost=0.5)
    advanced = store.advance(made.id, target_job)
    assert advanced.budget_reached and advanced.cancel == [store.target(made.id, FLEET[2]).job_id]  # type: ignore[union-attr]
    for job_id in advanced.cancel:  # what the bookkeeping does with them (app/jobs/campaign.py `campaign_sync`)
        assert queue.cancel(job_id) == JobStatus.CANCELLED
    with store.db.session() as session:  # the budget raised by hand: no command writes budget_usd after the start
        session.get(states.CampaignRow, made.id).budget_usd = 10.0  # type: ignore[union-attr]
    again = store.retry(made.id)
    assert sorted(t.repo for t in again) == FLEET[2:4]
    assert [t.repo for t in store.advance(made.id, target_job).queued] == FLEET[2:4]
    for repo in FLEET[2:4]:
        finish(store, made.id, repo, states.NOT_NEEDED)
    assert store.advance(made.id, target_job).finished


def test_a_targets_job_that_ended_without_saying_so_lets_the_campaign_finish(store: CampaignStore,
                                                                             queue: JobQueue) -> None:
    """A target's job cancelled from its page, or failed on every attempt without recording the target: the
    bookkeeping settles the target (stopped, failed) instead of keeping its slot, and the campaign can finish."""
    made, _ = start(store, targets=FLEET[:3], canaries=0, concurrency=2)
    store.advance(made.id, target_job)
    cancelled, failing = store.target(made.id, FLEET[0]), store.target(made.id, FLEET[1])
    assert cancelled is not None and failing is not None and failing.job_id is not None
    assert queue.cancel(cancelled.job_id) == JobStatus.CANCELLED  # type: ignore[arg-type]
    claimed = queue.claim("w")
    while claimed is not None and claimed.id != failing.job_id:  # the bookkeeping first: a person's priority
        queue.complete(claimed.id, "w")
        claimed = queue.claim("w")
    assert claimed is not None
    queue.fail(failing.job_id, "w", "RuntimeError: the sandbox died", retry=False)
    assert [t.repo for t in store.advance(made.id, target_job).queued] == [FLEET[2]]
    targets = by_repo(store, made.id)
    assert (targets[FLEET[0]].state, targets[FLEET[0]].reason) == (states.STOPPED_TARGET, "its job was cancelled")
    assert (targets[FLEET[1]].state, targets[FLEET[1]].reason) == (states.FAILED, "RuntimeError: the sandbox died")
    finish(store, made.id, FLEET[2], states.NOT_NEEDED)
    assert store.advance(made.id, target_job).finished
    assert sorted(t.repo for t in store.retry(made.id)) == FLEET[:2]  # and `@honk retry` brings them back


# Stop, retry, update, done


def test_stop_stops_waiting_targets_and_returns_the_jobs_to_cancel(store: CampaignStore, db: Database) -> None:
    made, _ = start(store, canaries=0, concurrency=2)
    store.advance(made.id, target_job)
    running = store.target(made.id, FLEET[0])
    queued = store.target(made.id, FLEET[1])
    assert running is not None and queued is not None and running.job_id is not None
    store.target_started(made.id, FLEET[0], running.job_id)
    stopped = store.stop(made.id, "bob")
    assert not stopped.already and sorted(stopped.cancel) == sorted([running.job_id, queued.job_id])
    assert stopped.campaign is not None and stopped.campaign.state == states.STOPPED
    assert stopped.campaign.note == "@bob stopped it" and stopped.campaign.finished_at is not None
    assert states_of(store, made.id) == [states.STOPPED_TARGET] * 6
    assert {t.reason for t in store.targets(made.id)} == {"@bob stopped the campaign"}
    assert jobs_of(db, JobKind.CAMPAIGN_SYNC)[-1].payload.get("table_now") is True
    # A job that starts after the stop does nothing.
    assert store.target_started(made.id, FLEET[1], queued.job_id) is None  # type: ignore[arg-type]
    assert store.advance(made.id, target_job).queued == []
    again = store.stop(made.id, "carol")
    assert again.already and again.cancel == [] and again.campaign is not None
    assert again.campaign.note == "@bob stopped it"
    assert store.stop(9999, "bob") == states.Stopped(None, [])


def test_retry_revives_failed_and_stopped_targets(store: CampaignStore) -> None:
    made, _ = start(store, canaries=0, concurrency=2)
    store.advance(made.id, target_job)
    finish(store, made.id, FLEET[0], states.FAILED)
    finish(store, made.id, FLEET[1], pull=12, head=SHA_A, checks="pending")
    store.stop(made.id, "bob")
    again = store.retry(made.id)
    assert sorted(t.repo for t in again) == [FLEET[0], *FLEET[2:]]
    revived = store.get(made.id)
    assert revived is not None
    assert (revived.state, revived.note, revived.finished_at) == (states.ROLLOUT, None, None)
    assert by_repo(store, made.id)[FLEET[1]].state == states.OPENED  # its pull request is not touched
    assert [t.repo for t in store.advance(made.id, target_job).queued] == [FLEET[0], FLEET[2]]
    assert store.target(made.id, FLEET[0]).runs == 2  # type: ignore[union-attr]


def test_retry_before_the_rollout_goes_back_to_the_canaries(store: CampaignStore) -> None:
    made, _ = start(store, canaries=2)
    store.advance(made.id, target_job)
    store.stop(made.id, "bob")
    assert len(store.retry(made.id)) == 6
    assert store.get(made.id).state == states.CANARY  # type: ignore[union-attr]
    assert [t.repo for t in store.advance(made.id, target_job).queued] == FLEET[:2]


def test_retry_with_nothing_failed_leaves_a_done_campaign_done(store: CampaignStore) -> None:
    made, _ = start(store, targets=FLEET[:2], canaries=0)
    store.advance(made.id, target_job)
    finish(store, made.id, FLEET[0], states.NOT_NEEDED)
    finish(store, made.id, FLEET[1], states.NOT_NEEDED)
    assert store.advance(made.id, target_job).finished
    assert store.retry(made.id) == []
    assert store.get(made.id).state == states.DONE  # type: ignore[union-attr]


def test_retry_revives_a_done_campaign_with_failures(store: CampaignStore) -> None:
    made, _ = start(store, targets=FLEET[:2], canaries=0)
    store.advance(made.id, target_job)
    finish(store, made.id, FLEET[0], states.FAILED)
    finish(store, made.id, FLEET[1], states.NOT_NEEDED)
    assert store.advance(made.id, target_job).finished
    assert [t.repo for t in store.retry(made.id)] == [FLEET[0]]
    revived = store.get(made.id)
    assert revived is not None and (revived.state, revived.finished_at) == (states.ROLLOUT, None)
    assert [t.repo for t in store.advance(made.id, target_job).queued] == [FLEET[0]]


def test_update_reruns_only_targets_with_an_open_pull_request(store: CampaignStore) -> None:
    made, _ = start(store, targets=FLEET[:5], canaries=0)
    store.advance(made.id, target_job)
    for number, repo in enumerate(FLEET[:3], start=12):
        finish(store, made.id, repo, pull=number, head=SHA_A, checks="pending")
    finish(store, made.id, FLEET[3], states.FAILED)
    store.track(made.id, FLEET[1], 13, pull_state="merged")
    store.track(made.id, FLEET[2], 14, pull_state="closed")
    again = store.update(made.id, "Set legacy = false and owner = platform.")
    assert [t.repo for t in again] == [FLEET[0]]
    updated = store.get(made.id)
    assert updated is not None
    # The title stays: the campaign's branch is named after it.
    assert (updated.task, updated.title) == ("Set legacy = false and owner = platform.", "Turn off legacy mode")
    targets = by_repo(store, made.id)
    assert [targets[r].state for r in FLEET[:5]] == [states.WAITING, states.OPENED, states.OPENED, states.FAILED,
                                                     states.QUEUED]
    assert targets[FLEET[0]].pull_number == 12  # it reruns on its pull request's branch
    requeued = store.advance(made.id, target_job).queued
    assert [(t.repo, t.runs) for t in requeued] == [(FLEET[0], 2)]


def test_the_campaign_is_done_once_every_target_is_finished_or_skipped(store: CampaignStore) -> None:
    made, _ = start(store, targets=FLEET[:3], canaries=0, skipped=[("acme/archive", "archived")])
    store.advance(made.id, target_job)
    finish(store, made.id, FLEET[0], pull=12, head=SHA_A, checks="pending")
    finish(store, made.id, FLEET[1], states.NOT_NEEDED)
    assert not store.advance(made.id, target_job).finished  # one still queued
    assert store.get(made.id).state == states.ROLLOUT  # type: ignore[union-attr]
    finish(store, made.id, FLEET[2], states.FAILED)
    advanced = store.advance(made.id, target_job)
    assert advanced.finished and advanced.queued == []
    done = store.get(made.id)
    assert done is not None and done.state == states.DONE and done.finished_at is not None
    assert store.counts([made.id]) == {made.id: {states.OPENED: 1, states.NOT_NEEDED: 1, states.FAILED: 1,
                                                 states.SKIPPED: 1}}


def test_a_finishing_repository_hands_its_slot_to_the_next_in_the_same_commit(store: CampaignStore,
                                                                              db: Database) -> None:
    made, _ = start(store, canaries=0, concurrency=2)
    store.advance(made.id, target_job)
    first = store.target(made.id, FLEET[0])
    assert first is not None and first.job_id is not None
    assert store.target_started(made.id, FLEET[0], first.job_id) is not None
    # No bookkeeping run needed: the next repository is queued with its job as the first one's outcome commits.
    assert store.target_finished(made.id, FLEET[0], first.job_id, state=states.NOT_NEEDED, make_job=target_job)
    assert [t.state for t in store.targets(made.id)][:3] == [states.NOT_NEEDED, states.QUEUED, states.QUEUED]
    assert len(jobs_of(db, JobKind.CAMPAIGN_TARGET)) == 3
    # The last one finishing finishes the campaign, and says so through the bookkeeping it queues at once.
    for repo in FLEET[1:]:
        target = store.target(made.id, repo)
        if target is not None and target.state == states.WAITING:
            store.advance(made.id, target_job)
            target = store.target(made.id, repo)
        assert target is not None and target.job_id is not None
        assert store.target_started(made.id, repo, target.job_id) is not None
        assert store.target_finished(made.id, repo, target.job_id, state=states.NOT_NEEDED, make_job=target_job)
    done = store.get(made.id)
    assert done is not None and done.state == states.DONE
    told = [j.payload for j in jobs_of(db, JobKind.CAMPAIGN_SYNC) if j.payload.get("announce")]
    assert [p["announce"] for p in told] == [["finished"]] and told[0]["table_now"] is True


def test_retry_with_a_raised_budget_goes_on_past_the_old_one(store: CampaignStore) -> None:
    made, _ = start(store, canaries=0, concurrency=1, budget=1.0)
    store.advance(made.id, target_job)
    finish(store, made.id, FLEET[0], cost=1.5)
    assert store.advance(made.id, target_job).budget_reached
    again = store.retry(made.id, budget_usd=10.0)
    assert sorted(t.repo for t in again) == sorted(FLEET[1:])
    revived = store.get(made.id)
    assert revived is not None and (revived.state, revived.budget_usd) == (states.ROLLOUT, 10.0)
    assert [t.repo for t in store.advance(made.id, target_job).queued] == [FLEET[1]]
