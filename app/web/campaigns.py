"""The campaign pages (README, "Routes"; CONTRACT section 7): `/campaigns`, every fleet campaign newest first with
its figures, and `/campaigns/{id}`, one campaign's figures, state and a row per repository; with their JSON,
`/api/campaigns` and `/api/campaigns/{id}`. Protected like the job pages (app/web/auth.py).

The figures are `app.jobs.campaign_report.figures`, the same the status table on the campaign issue shows. The pages
extend the job pages' base.html, escape everything (repository names and reasons come from GitHub and its users)
and run no script, under the job pages' Content-Security-Policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from app.jobs.campaign_report import Figures, figures
from app.process import HonkState
from app.queue import campaigns as states
from app.queue.campaigns import Campaign, CampaignStore, Target
from app.settings import github_web_root
from app.untyped import MAX_ID
from app.web import pages
from app.web.auth import dashboard_access

router = APIRouter()

LIST_LIMIT = 200  # campaigns on the list page and in /api/campaigns, newest first

# (words, badge class of base.html) for each state
CAMPAIGN_STATES = {
    states.CANARY: ("canaries", "status-running"), states.ROLLOUT: ("rolling out", "status-running"),
    states.STOPPED: ("stopped", "status-cancelled"), states.BUDGET: ("stopped at its budget", "status-failed"),
    states.DONE: ("done", "status-succeeded"),
}
TARGET_STATES = {
    states.WAITING: ("waiting", "status-queued"), states.QUEUED: ("queued", "status-queued"),
    states.RUNNING: ("working", "status-running"), states.OPENED: ("opened", "status-succeeded"),
    states.NOT_NEEDED: ("not needed", "status-cancelled"), states.FAILED: ("failed", "status-failed"),
    states.STOPPED_TARGET: ("stopped", "status-cancelled"), states.SKIPPED: ("skipped", "status-cancelled"),
}
CHECKS = {"green": ("green", "passed"), "red": ("red", "failed"), "pending": ("pending", "muted")}
REVIEWS = {"approved": ("approved", "passed"), "changes_requested": ("changes requested", "failed"),
           "commented": ("commented", "muted")}


# What the pages read

@dataclass(frozen=True)
class Shown:
    campaign: Campaign
    targets: list[Target]
    figures: Figures
    issue_url: str


def _now(state: HonkState) -> datetime:
    with state.db.session() as session:
        return state.db.now(session)


def _shown(state: HonkState, campaign: Campaign, targets: list[Target], now: datetime) -> Shown:
    return Shown(campaign, targets, figures(campaign, targets, now), issue_url(state, campaign))


def load_all(state: HonkState, limit: int = LIST_LIMIT) -> list[Shown]:
    """The newest campaigns, each with its figures."""
    store = CampaignStore(state.queue)
    now = _now(state)
    return [_shown(state, c, store.targets(c.id), now) for c in store.all(limit)]


def load_one(state: HonkState, campaign_id: int) -> Shown | None:
    if not 1 <= campaign_id <= MAX_ID:  # no campaign has it, and a database driver cannot even send it
        return None
    store = CampaignStore(state.queue)
    campaign = store.get(campaign_id)
    if campaign is None:
        return None
    return _shown(state, campaign, store.targets(campaign_id), _now(state))


def web_root(state: HonkState) -> str:
    return github_web_root(state.settings.github_api_url)


def issue_url(state: HonkState, campaign: Campaign) -> str:
    return f"{web_root(state)}/{quote(campaign.repo, safe='/')}/issues/{campaign.number}"


# The JSON

def serialise(shown: Shown, *, with_targets: bool = True) -> dict[str, Any]:
    campaign = shown.campaign
    body: dict[str, Any] = {
        "id": campaign.id, "repo": campaign.repo, "number": campaign.number, "title": campaign.title,
        "state": campaign.state, "note": campaign.note, "requester": campaign.requester,
        "created_at": _iso(campaign.created_at), "finished_at": _iso(campaign.finished_at),
        "budget_usd": campaign.budget_usd, "spec": campaign.spec, "figures": shown.figures.to_dict(),
    }
    if with_targets:
        body["targets"] = [serialise_target(t) for t in shown.targets]
    return body


def serialise_target(target: Target) -> dict[str, Any]:
    return {"repo": target.repo, "canary": target.canary, "state": target.state, "reason": target.reason,
            "job_id": target.job_id, "pull_number": target.pull_number, "pull_url": target.pull_url,
            "pull_state": target.pull_state, "checks": target.checks, "review": target.review,
            "merged": target.merged, "cost_usd": target.cost_usd}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() + "Z" if value else None


# The pages (templates kept here, extending the job pages' base.html: one look for every page)

LIST_PAGE = """{% extends "base.html" %}
{% block title %}Campaigns{% endblock %}
{% block main %}
<h1>Campaigns</h1>
{% if rows %}
<table class="campaigns" id="campaigns">
  <thead><tr>
    <th>Campaign</th><th>Issue</th><th>Title</th><th>State</th><th class="num">Targets</th><th class="num">Opened</th>
    <th class="num">Green</th><th class="num">Approved</th><th class="num">Merged</th><th class="num">Failed</th>
    <th class="num">Not needed</th><th class="num">Cost</th><th>Started</th><th class="num">Wall time</th>
  </tr></thead>
  <tbody>
  {% for row in rows %}{% set c = row.campaign %}{% set f = row.figures %}{% set s = campaign_state(c.state) %}
  <tr data-campaign="{{ c.id }}">
    <td><a href="/campaigns/{{ c.id }}">#{{ c.id }}</a></td>
    <td class="nowrap"><a href="{{ row.issue_url | safe_url }}">{{ c.subject }}</a></td>
    <td>{{ c.title | truncate(70) }}</td>
    <td><span class="badge {{ s[1] }}">{{ s[0] }}</span></td>
    <td class="num" data-figure="targets">{{ f.targets }}</td>
    <td class="num" data-figure="opened">{{ f.opened }}</td>
    <td class="num" data-figure="green">{{ f.green }}</td>
    <td class="num" data-figure="approved">{{ f.approved }}</td>
    <td class="num" data-figure="merged">{{ f.merged }}</td>
    <td class="num" data-figure="failed">{{ f.failed }}</td>
    <td class="num" data-figure="not_needed">{{ f.not_needed }}</td>
    <td class="num" data-figure="cost">{{ f.cost_usd | money }}</td>
    <td class="nowrap small">{{ c.created_at | when }}</td>
    <td class="num" data-figure="wall">{{ f.wall_seconds | seconds }}</td>
  </tr>
  {% endfor %}
  </tbody>
</table>
{% if rows | length >= limit %}<p class="muted small">The newest {{ limit }} campaigns.</p>{% endif %}
{% else %}
<p class="muted" id="empty">No campaigns yet. Start one by adding the label <code>{{ label }}</code> to an issue whose
body is the task, with a <code>```yaml honk-campaign</code> block naming the repositories; or from the command line,
with <code>honk campaign start --repo-of-issue OWNER/NAME --file SPEC.md</code>.</p>
{% endif %}
{% endblock %}
"""

DETAIL_PAGE = """{% extends "base.html" %}
{% block title %}Campaign #{{ c.id }}{% endblock %}
{% block style %}
  dl.figures { display: flex; flex-wrap: wrap; gap: .6rem; margin: 1rem 0; }
  dl.figures > div { border: 1px solid var(--line); border-radius: 6px; padding: .4rem .8rem; min-width: 7rem;
                     background: var(--soft); }
  dl.figures dt { color: var(--muted); font-size: .85rem; }
  dl.figures dd { margin: 0; font-size: 1.2rem; font-weight: 600; font-variant-numeric: tabular-nums; }
{% endblock %}
{% block main %}
{% set s = campaign_state(c.state) %}
<h1>Campaign #{{ c.id }}: {{ c.title }} <span class="badge {{ s[1] }}" id="state">{{ s[0] }}</span></h1>
<p class="muted">Asked for in <a class="issue" href="{{ shown.issue_url | safe_url }}">{{ c.subject }}</a> by
{{ c.requester }} · started {{ c.created_at | when }}
{%- if c.finished_at %} · ended {{ c.finished_at | when }}{% endif %}
· <a href="/campaigns">all campaigns</a></p>
{% if c.note %}<p id="note">{{ c.note[:1] | upper }}{{ c.note[1:] }}.</p>{% endif %}

<dl class="figures" id="figures">
  <div data-figure="targets"><dt>Targets</dt><dd>{{ f.targets }}</dd></div>
  <div data-figure="opened"><dt>Opened</dt><dd>{{ f.opened }}</dd></div>
  <div data-figure="green"><dt>Green</dt><dd>{{ f.green }}</dd></div>
  <div data-figure="approved"><dt>Approved</dt><dd>{{ f.approved }}</dd></div>
  <div data-figure="merged"><dt>Merged</dt><dd>{{ f.merged }}</dd></div>
  <div data-figure="failed"><dt>Failed</dt><dd>{{ f.failed }}</dd></div>
  <div data-figure="not_needed"><dt>Not needed</dt><dd>{{ f.not_needed }}</dd></div>
  <div data-figure="skipped"><dt>Skipped</dt><dd>{{ f.skipped }}</dd></div>
  {% if f.waiting %}<div data-figure="waiting"><dt>Waiting</dt><dd>{{ f.waiting }}</dd></div>{% endif %}
  {% if f.active %}<div data-figure="active"><dt>Working</dt><dd>{{ f.active }}</dd></div>{% endif %}
  {% if f.stopped %}<div data-figure="stopped"><dt>Stopped</dt><dd>{{ f.stopped }}</dd></div>{% endif %}
  <div data-figure="cost"><dt>Cost</dt><dd>{{ f.cost_usd | money }}
    {%- if c.budget_usd is not none %} <span class="muted small">of {{ c.budget_usd | money }}</span>
    {%- else %} <span class="muted small">no budget</span>{% endif %}</dd></div>
  <div data-figure="wall"><dt>Wall time</dt><dd>{{ f.wall_seconds | seconds }}</dd></div>
  <div data-figure="median_merge"><dt>Median time to merge</dt><dd>{{ f.median_merge_seconds | seconds }}</dd></div>
</dl>

<h2>Repositories</h2>
{% if targets %}
<table class="targets" id="targets">
  <thead><tr>
    <th>Repository</th><th>Canary</th><th>State</th><th>Pull request</th><th>Checks</th><th>Review</th><th>Merged</th>
    <th class="num">Cost</th><th>Job</th>
  </tr></thead>
  <tbody>
  {% for t in targets %}{% set ts = target_state(t) %}
  <tr data-repo="{{ t.repo }}">
    <td><a href="{{ (root ~ '/' ~ (t.repo | urlencode)) | safe_url }}">{{ t.repo }}</a></td>
    <td>{% if t.canary %}canary{% endif %}</td>
    <td class="state"><span class="badge {{ ts[1] }}">{{ ts[0] }}</span>
      {%- if t.reason %} <span class="small reason">{{ t.reason }}</span>{% endif %}</td>
    <td class="nowrap">{% if t.pull_number %}
      {%- if t.pull_url | safe_url %}<a class="pull" href="{{ t.pull_url | safe_url }}">#{{ t.pull_number }}</a>
      {%- else %}#{{ t.pull_number }}{% endif %}
      {%- if t.pull_state == "closed" %} <span class="muted small">(closed)</span>{% endif %}
    {%- endif %}</td>
    <td>{% if t.pull_number and t.checks in checks -%}
      <span class="{{ checks[t.checks][1] }}">{{ checks[t.checks][0] }}</span>{% endif %}</td>
    <td>{% if t.pull_number and t.review in reviews -%}
      <span class="{{ reviews[t.review][1] }}">{{ reviews[t.review][0] }}</span>{% endif %}</td>
    <td class="nowrap">{% if t.merged %}<span class="passed">merged</span>
      {%- if t.merged_at %} <span class="muted small">{{ t.merged_at | when }}</span>{% endif %}{% endif %}</td>
    <td class="num">{{ t.cost_usd | money }}</td>
    <td>{% if t.job_id %}<a class="job" href="/jobs/{{ t.job_id }}">#{{ t.job_id }}</a>
      {%- if t.runs > 1 %} <span class="muted small">({{ t.runs }} runs)</span>{% endif %}{% endif %}</td>
  </tr>
  {% endfor %}
  </tbody>
</table>
{% else %}
<p class="muted">No repositories matched this campaign.</p>
{% endif %}
{% endblock %}
"""

_list_page = pages.templates.from_string(LIST_PAGE)
_detail_page = pages.templates.from_string(DETAIL_PAGE)


def _campaign_state(state: str) -> tuple[str, str]:
    return CAMPAIGN_STATES.get(state, (state, "status-queued"))


def _target_state(target: Target) -> tuple[str, str]:
    if target.state == states.WAITING and target.pull_number is not None:
        return "update waiting", "status-queued"
    return TARGET_STATES.get(target.state, (target.state, "status-queued"))


def _render(request: Request, template: Any, **context: Any) -> HTMLResponse:
    html = template.render(signed_in=pages._signed_in(request), campaign_state=_campaign_state,
                           target_state=_target_state, **context)
    return HTMLResponse(html, headers=pages.HEADERS)


def _state(request: Request) -> HonkState:
    return request.app.state.honk


# Routes

@router.get("/campaigns", response_class=HTMLResponse)
async def campaigns_page(request: Request) -> Response:
    if (refusal := pages._refusal(request)) is not None:
        return refusal
    state = _state(request)
    rows = await run_in_threadpool(load_all, state)
    return _render(request, _list_page, rows=rows, limit=LIST_LIMIT, label=state.settings.honk_campaign_label)


@router.get("/campaigns/{campaign_id}", response_class=HTMLResponse)
async def campaign_page(request: Request, campaign_id: int) -> Response:
    if (refusal := pages._refusal(request)) is not None:
        return refusal
    shown = await run_in_threadpool(load_one, _state(request), campaign_id)
    if shown is None:
        return pages.render(request, "message.html", 404, title="No such campaign",
                            message=f"There is no campaign {campaign_id}.")
    return _render(request, _detail_page, shown=shown, c=shown.campaign, f=shown.figures, targets=shown.targets,
                   root=web_root(_state(request)), checks=CHECKS, reviews=REVIEWS)


@router.get("/api/campaigns", dependencies=[Depends(dashboard_access)])
async def campaigns_json(request: Request) -> JSONResponse:
    rows = await run_in_threadpool(load_all, _state(request))
    return JSONResponse({"campaigns": [serialise(row, with_targets=False) for row in rows]},
                        headers={"Cache-Control": "no-store"})


@router.get("/api/campaigns/{campaign_id}", dependencies=[Depends(dashboard_access)])
async def campaign_json(request: Request, campaign_id: int) -> JSONResponse:
    shown = await run_in_threadpool(load_one, _state(request), campaign_id)
    if shown is None:
        raise HTTPException(404, f"there is no campaign {campaign_id}")
    return JSONResponse(serialise(shown), headers={"Cache-Control": "no-store"})
