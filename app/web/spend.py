"""`GET /spend` and `GET /api/spend` (README, "Routes"; CONTRACT section 9): what the model calls cost, by month,
installation, organization, repository, requester or model, with a bar per day of the month. Protected like the
job pages (app/web/auth.py). The chart is plain SVG drawn on the server: the pages run no script.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from app.policy import Policy, PolicyError, current_policy, parse_month, usd
from app.process import HonkState
from app.queue.spending import DIMENSION_NAMES, DIMENSIONS, Dimension, SpendLedger, SpendReport
from app.web import pages
from app.web.auth import dashboard_access

router = APIRouter()

DEFAULT_BY: Dimension = "repo"
CHART_HEIGHT = 160  # the bars' area, in SVG units
BAR_STEP = 22  # one day
BAR_WIDTH = 16
CHART_LEFT = 56  # room for the axis labels
CHART_TOP = 12
CHART_BOTTOM = 22


@dataclass(frozen=True)
class Query:
    month: str | None  # None: this month
    by: Dimension


def read_query(month: str | None, by: str | None) -> Query:
    """The page's parameters, checked; ValueError says what is wrong."""
    if by not in (None, "", *DIMENSIONS):
        raise ValueError(f"`by` must be one of {', '.join(DIMENSIONS)}")
    return Query(parse_month(month) if month else None, by or DEFAULT_BY)  # type: ignore[arg-type]


def policy_state(state: HonkState) -> tuple[Policy | None, str | None]:
    """The policy, and what to say about it when it cannot be read."""
    try:
        return current_policy(state.settings.honk_policy_file), None
    except PolicyError as exc:
        return None, str(exc)


def spend_report(state: HonkState, query: Query) -> tuple[SpendReport, Policy | None, str | None]:
    policy, problem = policy_state(state)
    return SpendLedger(state.db).report(query.month, query.by, policy), policy, problem


def chart(report: SpendReport) -> dict[str, Any]:
    """A bar per day of the month, scaled to the dearest day, with labels on the axes."""
    top = max((cost for _, cost in report.days), default=0.0)
    scale = CHART_HEIGHT / top if top > 0 else 0.0
    bars = []
    for number, (day, cost) in enumerate(report.days):
        height = cost * scale
        if 0 < height < 1:
            height = 1.0  # a day with spending never looks empty
        x = CHART_LEFT + number * BAR_STEP + (BAR_STEP - BAR_WIDTH) / 2
        bars.append({"x": round(x, 1), "y": round(CHART_TOP + CHART_HEIGHT - height, 1), "w": BAR_WIDTH,
                     "h": round(height, 1), "day": day.isoformat(), "cost": cost, "label": day.day,
                     "label_x": round(x + BAR_WIDTH / 2, 1), "show_label": day.day == 1 or day.day % 5 == 0})
    return {"bars": bars, "width": CHART_LEFT + len(report.days) * BAR_STEP + 8,
            "height": CHART_TOP + CHART_HEIGHT + CHART_BOTTOM, "top": CHART_TOP, "base": CHART_TOP + CHART_HEIGHT,
            "left": CHART_LEFT, "max": top, "max_label": f"${top:,.2f}"}


def _state(request: Request) -> HonkState:
    return request.app.state.honk


@router.get("/spend")
async def spend_page(request: Request, month: str | None = None, by: str | None = None) -> Response:
    if (refusal := pages._refusal(request)) is not None:
        return refusal
    try:
        query = read_query(month, by)
    except ValueError as exc:
        return pages.render(request, "message.html", 400, title="Not a report Honk makes", message=str(exc))
    report, policy, problem = await run_in_threadpool(spend_report, _state(request), query)
    months = [m for m, _, _ in report.months]
    if report.month not in months:
        months = sorted([*months, report.month], reverse=True)
    by = query.by

    def link(**changes: str) -> str:
        values = {"month": report.month, "by": by, **changes}
        return "/spend?" + urlencode(values)

    return pages.render(request, "spend.html", report=report, policy=policy, problem=problem,
                        configured=_state(request).settings.honk_policy_file is not None, chart=chart(report),
                        dimension=DIMENSION_NAMES[by], dimensions=[(d, DIMENSION_NAMES[d]) for d in DIMENSIONS],
                        months=months, by=by, link=link, usd=usd,
                        month_total=sum(cost for _, cost in report.days),
                        month_calls=next((count for m, _, count in report.months if m == report.month), 0))


@router.get("/api/spend", dependencies=[Depends(dashboard_access)])
async def spend_json(request: Request, month: str | None = None, by: str | None = None) -> JSONResponse:
    try:
        query = read_query(month, by)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    report, policy, problem = await run_in_threadpool(spend_report, _state(request), query)
    body = report.to_dict()
    body["policy"] = {"file": str(_state(request).settings.honk_policy_file or "") or None, "problem": problem,
                      **({"allowed_models": policy.allowed_models, "campaign_budget_usd": policy.campaign_budget_usd,
                          "caps": policy.caps.model_dump()} if policy else {})}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
