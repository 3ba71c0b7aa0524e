"""`POST /api/github/webhooks`: verify, de-duplicate, store, answer (README, "How it works").

The route is thin on purpose: the signature is checked on the raw body before anything else, the trigger
rules (a pure function) decide, and the delivery is stored with its job before the answer, in one transaction
with the other deliveries arriving at the same time (group commit, app/intake/writer.py). Nothing here talks to
GitHub, so the answer stays fast whatever the queue holds.

With Slack on, a delivery that is news for a pull request's Slack thread (`notify_of`: checks done, a preview,
changes requested, merged or closed) also queues a NOTIFY job, stored as a delivery of its own
(`<delivery id>#notify`) beside the main one; the answer is the main decision's.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from typing import Protocol, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, SQLAlchemyError
from starlette.background import BackgroundTask
from starlette.responses import Response

from app import tracing
from app.intake.triggers import Ignore, TriggerRules, campaign_news, decide, notify_of
from app.intake.writer import DeliveryWriter
from app.process import HonkState
from app.queue.requests import JobRequest
from app.queue.store import Accepted, Incoming
from app.untyped import as_text

log = logging.getLogger("honk.webhooks")
router = APIRouter()

MAX_BODY = 25 * 1024 * 1024  # GitHub caps payloads at 25 MB


R = TypeVar("R", bound=Response)


class DeliveryCounter(Protocol):
    """What the web app counts webhook answers with (`Metrics` in app/web/metrics.py)."""

    def delivery(self, event: str | None, outcome: str, status: int, seconds: float) -> None: ...


@dataclass(frozen=True)
class _Answer:
    response: JSONResponse
    outcome: str  # queued | ignored | duplicate | rejected | error, for the metrics
    event: str | None = None  # None until the signature is verified: before that it is anyone's text
    job: int | None = None  # the job it queued, with its delivery and action, for the intake's span
    delivery: str = ""
    action: str | None = None


@router.post("/api/github/webhooks")
async def receive(request: Request) -> JSONResponse:
    started = time.perf_counter()
    answer = await _handle(request, request.app.state.honk, started)
    response = answered(request, started, answer.response, answer.outcome, answer.event)
    if answer.job is not None and tracing.ENABLED:
        _trace(response, answer, started)
    return response


def _trace(response: JSONResponse, answer: _Answer, started: float) -> None:
    """The intake's span, in the job's trace (app/tracing.py). It is made once the answer has gone out (a
    background task, in a thread), so that tracing adds nothing to the acknowledgement."""
    end = time.time_ns()
    start = end - int((time.perf_counter() - started) * 1e9)
    response.background = BackgroundTask(tracing.intake, job_id=answer.job, delivery_id=answer.delivery,
                                         event=answer.event or "", action=answer.action,
                                         status=response.status_code, start=start, end=end)


async def _handle(request: Request, honk: HonkState, started: float) -> _Answer:
    body = await _read_body(request)
    if body is None:
        return _reject(413, f"the body is over {MAX_BODY // (1024 * 1024)} MiB")
    secret = honk.settings.webhook_secret
    if secret is None:
        return _reject(401, "Honk has no GITHUB_WEBHOOK_SECRET, so it cannot verify any delivery")
    if not _signature_ok(secret, body, request.headers.get("x-hub-signature-256")):
        return _reject(401, "missing or wrong X-Hub-Signature-256")

    event = request.headers.get("x-github-event", "").strip()
    delivery = request.headers.get("x-github-delivery", "").strip()
    if not event or not delivery:
        return _reject(400, "the X-GitHub-Event and X-GitHub-Delivery headers are required", event)
    if len(event) > 100 or len(delivery) > 100:
        return _reject(400, "X-GitHub-Event or X-GitHub-Delivery is too long", event)
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        hint = (" (set the webhook's content type to application/json)"
                if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
                else "")
        return _reject(400, f"the body is not JSON{hint}", event)
    if not isinstance(payload, dict):
        return _reject(400, "the body is not a JSON object", event)

    action = as_text(payload.get("action"), 100) or None  # a column of 100: anything else is cut, never refused
    rules = TriggerRules.for_settings(honk.settings, honk.app_slug)
    decision = decide(event, payload, rules, delivery)
    request_ = None if isinstance(decision, Ignore) else decision
    reason = decision.reason if isinstance(decision, Ignore) else None
    extras = [(suffix, extra) for suffix, extra in (
        ("notify", notify_of(event, payload, rules, side_id(delivery, "notify"))),
        ("campaign", campaign_news(event, payload, rules, side_id(delivery, "campaign")))) if extra is not None]
    try:
        accepted = await _accept(request, honk, Incoming(delivery, event, action, request_, reason), extras)
    except (DataError, OverflowError, ValueError) as exc:
        log.warning("delivery=%s cannot be stored: %s", delivery, exc)
        return _reject(400, "the delivery holds a value Honk cannot store", event)
    except SQLAlchemyError as exc:
        # Not the sender's fault: GitHub may redeliver once the database is back.
        log.error("delivery=%s cannot be stored: %s", delivery, exc)
        return _Answer(_error(503, "the database is not answering; the delivery was not stored"), "error", event)

    elapsed = round((time.perf_counter() - started) * 1000, 2)
    if accepted.duplicate:
        log.debug("delivery=%s event=%s.%s outcome=duplicate ms=%s", delivery, event, action, elapsed)
        return _Answer(JSONResponse({"status": "duplicate"}, status_code=200), "duplicate", event)
    if accepted.job_id is not None:
        honk.job_queued()
        log.info("delivery=%s event=%s.%s outcome=queued job=%d ms=%s", delivery, event, action,
                 accepted.job_id, elapsed)
        return _Answer(JSONResponse({"status": "queued", "job": accepted.job_id}, status_code=202), "queued", event,
                       accepted.job_id, delivery, action)
    # Most of an organisation's deliveries are ignored (pushes, CI events): a line each would drown the log.
    log.debug("delivery=%s event=%s.%s outcome=ignored reason=%r ms=%s", delivery, event, action, reason,
              elapsed)
    return _Answer(JSONResponse({"status": "ignored", "reason": reason}, status_code=200), "ignored", event)


def side_id(delivery: str, suffix: str) -> str:
    """The delivery id of a delivery's side request (`notice`: Slack news, `notify_of`; `campaign`: news for a
    campaign's table, `campaign_news`): its own row, so that a redelivery is a duplicate of each. Within the
    column's 100 characters (GitHub's ids are UUIDs, 36)."""
    return f"{delivery[:99 - len(suffix)]}#{suffix}"


async def _accept(request: Request, honk: HonkState, main: Incoming, extras: list[tuple[str, JobRequest]]
                  ) -> Accepted:
    """Store the delivery as decided and its side requests (news for a Slack thread, for a campaign's table) as
    further deliveries, handed to the writer together (one group commit in the usual case). The answer is the
    main decision's alone: a side request is a side effect, never a reason to queue, refuse or fail a delivery;
    each has its own id, so each is stored once whatever happens to the others."""
    writer = _writer(request, honk)
    if not extras:
        return await writer.accept(main)
    sides = [Incoming(side_id(main.delivery_id, suffix), main.event, main.action, extra) for suffix, extra in extras]
    accepted, *others = await asyncio.gather(writer.accept(main), *(writer.accept(side) for side in sides),
                                             return_exceptions=True)
    for (suffix, _), other in zip(extras, others, strict=True):
        if isinstance(other, BaseException):
            log.warning("delivery=%s its %s request cannot be stored: %s", main.delivery_id, suffix, other)
        elif other.job_id is not None:
            honk.job_queued()
            log.info("delivery=%s event=%s.%s outcome=queued job=%d (%s)", main.delivery_id, main.event,
                     main.action, other.job_id, suffix)
    if isinstance(accepted, BaseException):
        raise accepted
    return accepted


def _writer(request: Request, honk: HonkState) -> DeliveryWriter:
    """The app's group-commit writer (app/web/app.py makes it; an app assembled otherwise gets one here)."""
    writer: DeliveryWriter | None = getattr(request.app.state, "deliveries", None)
    if writer is None or writer.queue is not honk.queue:
        writer = request.app.state.deliveries = DeliveryWriter(honk.queue)
    return writer


async def _read_body(request: Request) -> bytes | None:
    """The raw body, or None once it passes the size limit (without reading the rest into memory)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        return None
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > MAX_BODY:
            return None
    return bytes(chunks)


def _signature_ok(secret: bytes, body: bytes, header: str | None) -> bool:
    if not header or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().encode("utf-8", "replace"))


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"status": "error", "detail": detail}, status_code=status)


def _reject(status: int, detail: str, event: str | None = None) -> _Answer:
    return _Answer(_error(status, detail), "rejected", event)


def answered(request: Request, started: float, response: R, outcome: str, event: str | None = None) -> R:
    """Count one answer of the webhook route and pass it through. `event` is None until the signature is
    verified: an unverified header is anyone's text and must not become a label value."""
    metrics: DeliveryCounter | None = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.delivery(event, outcome, response.status_code, time.perf_counter() - started)
    return response
