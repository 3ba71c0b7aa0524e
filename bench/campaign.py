"""Fleet campaigns (CONTRACT.md section 7): one campaign over N generated repositories against the local fake GitHub
with an instant scripted model, beside a single-issue job measured first in the same run. Prints figures, ratios
and the issue's goals (met or not); asserts nothing.

    .venv/bin/python bench/campaign.py [--repos 200] [--workers 2] [--concurrency 5]

The world (everything on 127.0.0.1):
- the fake GitHub (tests/fakes/github, REST and git over HTTP served by `git http-backend`) with one installation:
  `acme/svc-000` ... (`create_fleet`, N repositories with a `settings.ini`; those numbered ...4 already say
  `legacy = false`, so "not needed"), `acme/campaigns` (the campaign issue) and `acme/solo-000` (a generated
  repository for the single-issue jobs, excluded from the campaign so that their requests stay apart);
- the scripted Messages API answering at once: `agent_default` reads the conversation (cat settings.ini, flip
  `legacy`, or say nothing needs changing) and `judge_default` approves;
- `honk serve` (web and worker in one process) on SQLite, HONK_WORKER_CONCURRENCY=--workers, every other setting
  at its default except GitHub's content pacing: HONK_GITHUB_CONTENT_INTERVAL=0, _BURST=100000,
  _PER_HOUR=1000000. Honk's real pacing (a burst of 20, then one content-creating request a second, 500 an hour)
  would make a 200-repository run take over an hour against any GitHub; the bench prints instead how many
  content-creating requests the campaign made and how long GitHub's limits would stretch them.

The runs, one after the other:
1. baseline: the label `honk` on an issue of `acme/solo-000`, nothing else running;
2. the campaign: the label `honk-campaign` on an issue whose block says `repos: all`, `canary: 0`,
   `concurrency: --concurrency`; polled (GET /api/campaigns/1, once a second) until its state is `done`;
3. while it runs, once a fifth of its targets are finished: the label `honk` on a second issue of
   `acme/solo-000`, to see how long a person waits behind the campaign.

How the figures are computed, per job, from GET /api/jobs/{id} (Honk's clock; bench and Honk share the machine):
- wall: its last `job.started` event to its `job.succeeded` (or failed/cancelled) event;
- git: `workspace` fetch_s + clone_s, plus every `git.pushed` seconds (network git: fetch, clone, push);
- model: every `model.request` to its `model.response` (by turn), and `judge.request` to `judge.verdict`;
- verifiers: `verify.tests` duration_s (the repository's own tests; none here, so 0);
- Honk's own = wall - git - model - verifiers: queue bookkeeping, GitHub API calls (answered by the local fake,
  which is in this process), the sandboxed tool calls, local git (commit, diff), the audit and the event writes;
- start delay: from the moment the bench delivered the webhook (just before the POST) to the `job.started` event;
  also from `job.queued` (the delivery stored) to `job.started`.
Also printed: Honk's own time split by the event that closes each gap between events (minus the git, model and
verifier time inside it); the span from the first target job's start to the last one's end, and how much of it had
no target job running (a freed slot not yet handed to the next repository);
the campaign's wall time per target beyond the targets' mean git and model time (the elapsed cost of a target once
the queue, the worker slot kept for people and the bookkeeping are counted); the bookkeeping jobs (`campaign_sync`)
that ran and those folded into another before running.
GitHub requests: every request the fake recorded (`requests`, by route name) from the campaign's label to the
campaign's end (plus a few seconds until the fake falls quiet, for the last table edit), leaving out those of the
single-issue job (any path naming `acme/solo-000`; its installation-wide calls, if any, stay in). "API" excludes
git's smart HTTP (info/refs, upload-pack, receive-pack), which GitHub does not count against the REST rate limit.
Content-creating requests come from the fake's `metered` (POST, PATCH, PUT, DELETE, GraphQL mutations) over the
same span.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from tests.fakes.github import FakeGitHub
from tests.fakes.messages_api import FakeMessagesAPI, bash, edit, end, last_tool_result, reply, verdict
from tests.support import SECRET, HonkProcess, app_private_key, free_port, honk_env

ROOT = Path(__file__).resolve().parent.parent
OWNER = "acme"
ISSUES_REPO = f"{OWNER}/campaigns"
SOLO_REPO = f"{OWNER}/solo-000"
FINISHED = ("succeeded", "failed", "cancelled")
TARGET_DONE = ("opened", "not_needed", "failed", "stopped", "skipped")
GIT_ROUTES = frozenset({"git_info_refs", "git_upload_pack", "git_receive_pack"})
PROBE_AT = 0.2  # the share of targets finished when the single issue is labelled during the campaign
HONK_LOG = Path(tempfile.gettempdir()) / "honk-bench-campaign.log"
POLL = 1.0  # seconds between looks at the campaign: light, as Honk serves them on its own event loop

GOAL_OWN_S = 1.0  # Honk's own time per target beyond git and model (workers = 2)
GOAL_REQUESTS = 25.0  # GitHub requests per target
GOAL_DELAY_S = 5.0  # a single issue's wait before its job starts, while a campaign runs

GITHUB_PER_MINUTE, GITHUB_PER_HOUR = 80, 500  # GitHub's content-creation limits per installation


# --- the fleet and the model ------------------------------------------------------------------------------


def settings_ini(name: str, done: bool) -> str:
    return f"[service]\nname = {name}\nlegacy = {'false' if done else 'true'}\n"


def fleet_files(index: int) -> dict[str, Any]:
    """Every repository has a settings.ini; one in ten (numbers ending in 4) needs nothing."""
    name = f"svc-{index:03d}"
    return {"files": {"README.md": f"# {name}\n", "settings.ini": settings_ini(name, index % 10 == 4)}}


def instant_model(body: dict[str, Any]) -> dict[str, Any]:
    """Any repository, any order: read settings.ini, flip `legacy`, then sum up (or say nothing needs changing)."""
    if len(body["messages"]) == 1:
        return reply(bash("cat settings.ini"))
    said = last_tool_result(body)
    if "legacy = true" in said:
        return reply(edit("str_replace", "settings.ini", old_str="legacy = true", new_str="legacy = false"))
    if "edited" in said.lower():
        return end("Turn off legacy mode\n\nsettings.ini now says legacy = false.")
    return end("Nothing to change: settings.ini already has legacy = false.")


def campaign_body(concurrency: int) -> str:
    return ("Turn off legacy mode in every service.\n\nSet `legacy = false` in settings.ini.\n\n"
            "```yaml honk-campaign\nrepos: all\n"
            f"exclude: [{ISSUES_REPO}, {SOLO_REPO}]\ncanary: 0\nconcurrency: {concurrency}\n```\n")


# --- the world --------------------------------------------------------------------------------------------


@dataclass
class World:
    github: FakeGitHub
    url: str
    honk: HonkProcess
    tmp: Path

    def get(self, path: str) -> dict[str, Any]:
        answer = httpx.get(f"{self.url}{path}", timeout=30)
        answer.raise_for_status()
        return answer.json()

    def job(self, job_id: int) -> dict[str, Any]:
        return self.get(f"/api/jobs/{job_id}")

    def campaign(self, campaign_id: int = 1) -> dict[str, Any]:
        return self.get(f"/api/campaigns/{campaign_id}")


@contextmanager
def world(repos: int, workers: int) -> Iterator[World]:
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="honk-bench-campaign-")))
        key = app_private_key()
        github = FakeGitHub(app_id=4242, private_key_pem=key, permissions={"alice": "write"}, root=tmp / "github")
        stack.callback(github.close)
        github.create_repo(ISSUES_REPO, {"README.md": "# Campaigns\n"})
        github.create_fleet(1, prefix="solo", every=lambda _: {"files": {"settings.ini": settings_ini("solo", False)}})
        github.create_fleet(repos, every=fleet_files)
        github_url = stack.enter_context(github.serve())
        model = stack.enter_context(FakeMessagesAPI(judge_default=verdict("approve"), agent_default=instant_model))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        github.webhook_target(f"{url}/api/github/webhooks", SECRET)
        env = honk_env(tmp, GITHUB_APP_ID="4242", GITHUB_PRIVATE_KEY=key.replace("\n", "\\n"),
                       GITHUB_API_URL=github_url, HONK_DATABASE_URL=f"sqlite:///{tmp / 'honk.db'}",
                       HONK_WORKER_CONCURRENCY=str(workers), HONK_GITHUB_CONTENT_INTERVAL="0",
                       HONK_GITHUB_CONTENT_BURST="100000", HONK_GITHUB_CONTENT_PER_HOUR="1000000", **model.env())
        honk = HonkProcess(["serve", "--port", str(port)], env, tmp, tmp / "honk.log")
        try:
            honk.wait_http(f"{url}/healthz", timeout=60)
            yield World(github, url, honk, tmp)
        finally:
            honk.stop()
            shutil.copyfile(tmp / "honk.log", HONK_LOG)  # outlives the temporary directory, for a look afterwards


def label_new_issue(w: World, repo: str, title: str, body: str, label: str) -> tuple[int, float]:
    """Open an issue and deliver its `issues.labeled` webhook; the job's id and when the delivery left (epoch s)."""
    number = w.github.create_issue(repo, title, body, user="alice")
    payload = w.github.issues_labeled(repo, number, label, "alice")
    sent = time.time()
    answer = w.github.deliver("issues", payload)
    if answer.status_code != 202:
        raise RuntimeError(f"the delivery was refused: {answer.status_code} {answer.text}")
    return int(answer.json()["job"]), sent


def wait_job(w: World, job_id: int, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = w.job(job_id)
        if job["status"] in FINISHED:
            return job
        time.sleep(0.2)
    raise RuntimeError(f"job {job_id} did not finish within {timeout:.0f}s: {w.job(job_id)['status']}")


def wait_quiet(github: FakeGitHub, quiet: float = 3.0, limit: float = 30.0) -> None:
    """Wait until the fake has had no request for `quiet` seconds (the campaign's last table edit comes late)."""
    deadline = time.monotonic() + limit
    seen, since = len(github.requests), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet:
        time.sleep(0.2)
        if len(github.requests) != seen:
            seen, since = len(github.requests), time.monotonic()


# --- timing one job from its events -----------------------------------------------------------------------


def moment(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@dataclass
class Timing:
    job_id: int
    status: str
    attempts: int
    queued: float  # epoch seconds of job.queued
    started: float  # the last job.started
    finished: float
    git_s: float
    model_s: float
    verify_s: float
    segments: dict[str, float] = field(default_factory=dict)  # Honk's own time, by the event that ended the gap

    @property
    def wall_s(self) -> float:
        return self.finished - self.started

    @property
    def own_s(self) -> float:
        return self.wall_s - self.git_s - self.model_s - self.verify_s

    @property
    def waited_s(self) -> float:
        return self.started - self.queued


def timing(job: dict[str, Any]) -> Timing:
    events = job["events"]
    at = [moment(e["at"]) for e in events]
    kinds = [e["kind"] for e in events]
    queued = next(t for t, k in zip(at, kinds, strict=True) if k == "job.queued")
    started = max(t for t, k in zip(at, kinds, strict=True) if k == "job.started")
    finished = max(t for t, k in zip(at, kinds, strict=True) if k in ("job.succeeded", "job.failed", "job.cancelled"))
    git = model = verify = 0.0
    asked: dict[Any, float] = {}
    for event, t in zip(events, at, strict=True):
        data, kind = event.get("data") or {}, event["kind"]
        if t < started:
            continue  # an earlier attempt
        if kind == "workspace":
            git += float(data.get("fetch_s") or 0) + float(data.get("clone_s") or 0)
        elif kind == "git.pushed":
            git += float(data.get("seconds") or 0)
        elif kind == "verify.tests":
            verify += float(data.get("duration_s") or 0)
        elif kind in ("model.request", "judge.request"):
            asked[(kind, data.get("turn"))] = t
        elif kind in ("model.response", "judge.verdict"):
            ask = "model.request" if kind == "model.response" else "judge.request"
            model += t - asked.pop((ask, data.get("turn")), t)
    return Timing(job["id"], job["status"], job["attempts"], queued, started, finished, git, model, verify,
                  own_segments(events, at, started))


def own_segments(events: list[dict[str, Any]], at: list[float], started: float) -> dict[str, float]:
    """Where Honk's own time goes: each gap between consecutive events, minus the git and model time inside it,
    charged to the event that closes the gap (e.g. `pull_request`: the check run and the pull request's calls)."""
    segments: Counter[str] = Counter()
    for index in range(1, len(events)):
        if at[index - 1] < started:
            continue
        event = events[index]
        data, kind = event.get("data") or {}, event["kind"]
        gap = at[index] - at[index - 1]
        if kind == "workspace":
            gap -= float(data.get("fetch_s") or 0) + float(data.get("clone_s") or 0)
        elif kind == "git.pushed":
            gap -= float(data.get("seconds") or 0)
        elif kind == "verify.tests":
            gap -= float(data.get("duration_s") or 0)
        elif kind in ("model.response", "judge.verdict"):
            continue  # the model's time: its request is the event just before
        segments[kind] += gap
    return dict(segments)


def pct(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))] if ordered else 0.0


# --- the runs ---------------------------------------------------------------------------------------------


@dataclass
class Single:
    """One single-issue job: its timing, when its webhook left and the GitHub requests it made."""

    timing: Timing
    sent: float
    requests: int
    outcome: str

    @property
    def delay_s(self) -> float:
        return self.timing.started - self.sent


def baseline(w: World) -> Single:
    before = len(w.github.requests)
    job_id, sent = label_new_issue(w, SOLO_REPO, "Turn off legacy mode", "Set legacy = false in settings.ini.",
                                   "honk")
    job = wait_job(w, job_id)
    wait_quiet(w.github, quiet=1.5)
    return Single(timing(job), sent, len(w.github.requests) - before, str(job.get("outcome")))


@dataclass
class CampaignRun:
    api: dict[str, Any]
    began: float  # the campaign label's delivery, epoch seconds
    ended: float  # when the bench saw `done`
    routes: Counter[str]
    content: int
    targets: list[Timing]  # the target jobs
    bookkeeping: list[Timing]  # the campaign's own jobs that ran: its start and `campaign_sync` runs
    folded: int  # `campaign_sync` jobs folded into another before running
    probe: Single | None
    probe_done_share: float


def run_campaign(w: World, concurrency: int) -> CampaignRun:
    first = len(w.github.requests)
    first_metered = len(w.github.metered)
    start_job, began = label_new_issue(w, ISSUES_REPO, "Turn off legacy mode", campaign_body(concurrency),
                                       "honk-campaign")
    started = wait_job(w, start_job)
    if started["status"] != "succeeded":
        raise RuntimeError(f"the campaign did not start: {json.dumps(started.get('result'))[:500]}")
    probe: tuple[int, float] | None = None
    probe_share = 0.0
    while True:
        api = w.campaign()
        targets = [t for t in api["targets"] if t["state"] != "skipped"]
        done = sum(t["state"] in TARGET_DONE for t in targets)
        if probe is None and targets and done >= PROBE_AT * len(targets):
            probe_share = done / len(targets)
            probe = label_new_issue(w, SOLO_REPO, "Turn off legacy mode (again)",
                                    "Set legacy = false in settings.ini.", "honk")
        if api["state"] == "done":
            break
        if api["state"] not in ("canary", "rollout"):
            raise RuntimeError(f"the campaign ended {api['state']}: {api.get('note')}")
        time.sleep(POLL)
    ended = time.time()
    single = None
    if probe is not None:
        job = wait_job(w, probe[0])
        single = Single(timing(job), probe[1], 0, str(job.get("outcome")))
    wait_quiet(w.github)
    recorded = w.github.requests[first:]
    routes = Counter(r.route for r in recorded if SOLO_REPO not in r.path)
    if single is not None:
        single.requests = sum(SOLO_REPO in r.path for r in recorded)
    content = sum(m.content and SOLO_REPO not in m.path for m in w.github.metered[first_metered:])
    jobs = jobs_from(w, start_job)
    ran = [j for j in jobs if any(e["kind"] == "job.started" for e in j["events"])]
    return CampaignRun(w.campaign(), began, ended, routes, content,
                       [timing(j) for j in ran if j["kind"] == "campaign_target"],
                       [timing(j) for j in ran if j["kind"] in ("campaign", "campaign_sync")],
                       sum(j["kind"] == "campaign_sync" and j not in ran for j in jobs), single, probe_share)


def jobs_from(w: World, first_id: int) -> list[dict[str, Any]]:
    """Every job from `first_id` on (ids are consecutive on SQLite), up to the first id Honk does not know."""
    jobs = []
    while (answer := httpx.get(f"{w.url}/api/jobs/{first_id + len(jobs)}", timeout=30)).status_code == 200:
        jobs.append(answer.json())
    return jobs


def overlap(jobs: list[Timing]) -> tuple[float, float, int]:
    """From the first job's start to the last one's end: the seconds some job ran, the seconds none did, and the
    most that ran at once."""
    edges = sorted([(j.started, 1) for j in jobs] + [(j.finished, -1) for j in jobs])
    busy = idle = 0.0
    running = most = 0
    for (t, step), (after, _) in zip(edges, [*edges[1:], edges[-1]], strict=True):
        running += step
        most = max(most, running)
        if running:
            busy += after - t
        else:
            idle += after - t
    return busy, idle, most


# --- the report -------------------------------------------------------------------------------------------


def github_minutes(requests: int, per_minute: float, per_hour: int, burst: int = 0) -> float:
    """Minutes `requests` content-creating requests take under a per-minute rate (after `burst` at once) and an
    hourly ceiling: each full hour's worth waits for the next hour."""
    hours, rest = divmod(max(requests - 1, 0), per_hour)
    rest += 1 if requests else 0
    return hours * 60 + max(rest - burst, 0) / per_minute


def report(args: argparse.Namespace, base: Single, run: CampaignRun) -> None:
    print(f"\nBaseline: one single-issue job, nothing else running (outcome {base.outcome})")
    show_single(base.timing, base.delay_s, base.requests)
    ok, n = show_campaign(args, run)
    if run.probe is not None:
        show_probe(run.probe, base, run.probe_done_share)
    show_goals(args, run, ok, n)


def show_campaign(args: argparse.Namespace, run: CampaignRun) -> tuple[list[Timing], int]:
    """The campaign's figures; returns its succeeded target jobs and its number of targets."""
    api = run.api
    targets = [t for t in api["targets"] if t["state"] != "skipped"]
    n = max(len(targets), 1)
    wall = run.ended - run.began
    ok = [j for j in run.targets if j.status == "succeeded"]
    print(f"\nCampaign: {len(targets)} targets, workers {args.workers}, concurrency {args.concurrency}; state "
          f"{api['state']}; targets by state {dict(Counter(t['state'] for t in api['targets']))}")
    print(f"  figures: {json.dumps({k: v for k, v in api['figures'].items() if v not in (None, 0, 0.0)})}")
    print(f"  wall {wall:.1f} s (label to `done`), {len(targets) / wall * 60:.1f} targets/min; target jobs "
          f"{len(run.targets)} ({len(ok)} succeeded, {sum(j.attempts > 1 for j in run.targets)} retried)")
    print("  per target job (s)        median     p90     max    mean")
    for name, values in (("wall", [j.wall_s for j in ok]), ("git", [j.git_s for j in ok]),
                         ("model", [j.model_s for j in ok]), ("Honk's own", [j.own_s for j in ok]),
                         ("queued before start", [j.waited_s for j in ok])):
        print(f"    {name:22} {statistics.median(values):7.3f} {pct(values, 0.9):7.3f} {max(values):7.3f} "
              f"{statistics.fmean(values):7.3f}")
    segments: Counter[str] = Counter()
    for job in ok:
        segments.update(job.segments)
    top = ", ".join(f"{kind} {seconds / len(ok):.3f}" for kind, seconds in segments.most_common(8))
    print(f"  Honk's own time, by the event closing each gap (mean s per target): {top}")
    busy, idle, most = overlap(run.targets)
    print(f"  target jobs from first start to last end: {busy + idle:.1f} s, {idle:.1f} s of it with none running; "
          f"at most {most} at once; worker time in target jobs {sum(j.wall_s for j in run.targets):.1f} s")
    spread = wall / n - statistics.fmean([j.git_s + j.model_s for j in ok] or [0.0])
    print(f"  campaign wall per target beyond its git and model time (mean): {spread:.3f} s: what a target costs "
          f"in elapsed time once the queue, the background slot and the bookkeeping are counted")
    syncs = [j for j in run.bookkeeping if j.job_id != run.bookkeeping[0].job_id]
    print(f"  bookkeeping: start job {run.bookkeeping[0].wall_s:.2f} s; {len(syncs)} campaign_sync runs "
          f"({sum(j.wall_s for j in syncs):.1f} s in all), {run.folded} more folded into them; sync queued -> "
          f"started median {statistics.median([j.waited_s for j in syncs] or [0]):.2f} s, "
          f"max {max([j.waited_s for j in syncs] or [0]):.2f} s")
    show_requests(run, n, wall)
    return ok, n


def show_requests(run: CampaignRun, n: int, wall: float) -> None:
    total = sum(run.routes.values())
    api = sum(count for route, count in run.routes.items() if route not in GIT_ROUTES)
    print(f"  GitHub requests per target: {total / n:.1f} ({total} in all), of which API {api / n:.1f} and git "
          f"{(total - api) / n:.1f}; top routes (count, per target):")
    for route, count in run.routes.most_common(10):
        print(f"    {route:28} {count:6d}  {count / n:6.2f}")
    ceiling = github_minutes(run.content, GITHUB_PER_MINUTE, GITHUB_PER_HOUR)
    paced = github_minutes(run.content, 60, GITHUB_PER_HOUR, burst=20)
    print(f"  content-creating requests: {run.content} ({run.content / n:.1f} per target). GitHub's limits "
          f"({GITHUB_PER_MINUTE}/min, {GITHUB_PER_HOUR}/h per installation) make them take at least "
          f"{ceiling:.0f} min; Honk's default pacing (20 at once, then 1/s, {GITHUB_PER_HOUR}/h) {paced:.0f} min; "
          f"{wall / 60:.1f} min here, unpaced")


def show_probe(probe: Single, base: Single, done_share: float) -> None:
    print(f"\nSingle issue labelled while the campaign ran ({done_share:.0%} of targets finished; outcome "
          f"{probe.outcome})")
    show_single(probe.timing, probe.delay_s, probe.requests)
    ratio = probe.delay_s / base.delay_s if base.delay_s > 0 else float("inf")
    print(f"  start delay vs the baseline's: {probe.delay_s:.2f} s vs {base.delay_s:.2f} s ({ratio:.1f}x); wall "
          f"{probe.timing.wall_s / base.timing.wall_s:.2f}x, Honk's own {probe.timing.own_s / base.timing.own_s:.2f}x")


def show_goals(args: argparse.Namespace, run: CampaignRun, ok: list[Timing], n: int) -> None:
    own = [j.own_s for j in ok] or [0.0]
    failed = sum(t["state"] == "failed" for t in run.api["targets"])
    total = sum(run.routes.values())
    api = sum(count for route, count in run.routes.items() if route not in GIT_ROUTES)
    two = args.workers == 2  # the goal on Honk's own time is stated for two workers
    print(f"\nGoals{'' if two else ' (the own-time goal is for --workers 2: not judged)'}")
    goal("failed targets", f"{failed}", "0", failed == 0)
    goal("Honk's own time per target, median (s)", f"{statistics.median(own):.3f}", f"< {GOAL_OWN_S:g}",
         statistics.median(own) < GOAL_OWN_S if two else None)
    goal("Honk's own time per target, p90 (s)", f"{pct(own, 0.9):.3f}", f"< {GOAL_OWN_S:g}",
         pct(own, 0.9) < GOAL_OWN_S if two else None)
    goal("GitHub requests per target, git included", f"{total / n:.1f}", f"<= {GOAL_REQUESTS:g}",
         total / n <= GOAL_REQUESTS)
    goal("GitHub API requests per target", f"{api / n:.1f}", f"<= {GOAL_REQUESTS:g}", api / n <= GOAL_REQUESTS)
    delay = f"{run.probe.delay_s:.2f}" if run.probe else "not measured"
    goal("single issue during the campaign: delivery -> started (s)", delay, f"< {GOAL_DELAY_S:g}",
         run.probe is not None and run.probe.delay_s < GOAL_DELAY_S)


def goal(name: str, value: str, target: str, met: bool | None) -> None:
    print(f"  {name:58} {value:>8}  {target:>6}  {'' if met is None else 'met' if met else 'MISSED'}")


def show_single(t: Timing, delay: float, requests: int) -> None:
    print(f"  delivery -> started {delay:.3f} s (job.queued -> job.started {t.waited_s:.3f} s); wall {t.wall_s:.3f} s "
          f"= git {t.git_s:.3f} + model {t.model_s:.3f} + verifiers {t.verify_s:.3f} + Honk's own {t.own_s:.3f}; "
          f"GitHub requests {requests}")


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repos", type=int, default=200, help="generated repositories in the campaign")
    parser.add_argument("--workers", type=int, default=2, help="HONK_WORKER_CONCURRENCY")
    parser.add_argument("--concurrency", type=int, default=5, help="the campaign's `concurrency`")
    args = parser.parse_args()
    if shutil.which("bwrap") is None:
        sys.exit("bubblewrap (bwrap) is not installed: Honk's sandbox needs it")
    head = git("rev-parse", "--short", "HEAD").strip() or "?"
    changed = len(git("status", "--porcelain", "app").splitlines())
    print(f"Fleet campaign, Honk at {head} (working tree as is: {changed} files changed under app/), "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}; {args.repos} repositories, workers "
          f"{args.workers}, campaign concurrency {args.concurrency}; SQLite; GitHub content pacing off")
    with world(args.repos, args.workers) as w:
        base = baseline(w)
        run = run_campaign(w, args.concurrency)
    report(args, base, run)


if __name__ == "__main__":
    main()
