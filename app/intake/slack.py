"""`POST /api/slack/events`: Slack's Events API callbacks, its interactivity payloads and the `/honk` slash command,
verified by slack-bolt and stored durably before the answer (CONTRACT section 8).

The route is the Slack twin of app/intake/webhooks.py: nothing here talks to Slack or GitHub. Bolt checks the
`X-Slack-Signature` and the five-minute `X-Slack-Request-Timestamp` first (401, nothing stored), answers
`url_verification` with its challenge, and hands each request to one listener here, which decides, stores the
delivery (and its job) through the group-commit writer (app/intake/writer.py, the same `deliveries` table as
GitHub's) and only then acknowledges. The work itself (who is linked, which repository, the issue, the thread's
messages) is the SLACK job's, on a worker: the answer stays within Slack's three seconds whatever the queue holds.

Delivery ids (the `deliveries` primary key; a second request with the same id stores nothing and queues nothing):

    slack:<event_id>            an Events API callback; Slack's retries (`X-Slack-Retry-Num`) carry the same event_id
    slack:cmd:<trigger_id>      a slash command
    slack:act:<trigger_id>      a block action that asks for work (the Merge button)

What is stored:

- `app_mention`: a job (type "mention"), in a channel or a thread. An edited message's event is ignored.
- `message` in a direct message with Honk (channel_type "im"): a job, type "dm" (type "reply" in a thread there).
- `message` in a channel that is a reply in a thread (`thread_ts` != `ts`) and does not mention Honk: a job, type
  "reply"; whether the thread is Honk's is the job's to decide. A channel message that mentions Honk is not
  stored as a job: its `app_mention` (another event_id) carries it, so one message is one job.
- Bots' messages (`bot_id`, subtype `bot_message`, or Honk's own user: its posts come back as events),
  `message_changed` and `message_deleted` (an edited request is not re-read), joins and other subtypes, top-level
  channel messages without a mention, other event types: an ignored delivery, with the reason.
- `/honk ...`: a job (type "command"), acknowledged with a short ephemeral "On it…". A command that
  `app.slack.commands.parse_slash` finds malformed (`Problem`) or a request for help is answered at once, in the
  acknowledgement, and stored as an ignored delivery with the reason: there is nothing for a worker to do.
- Block actions: `honk_merge` a job (type "action"); the link buttons `honk_open`, `honk_preview` and `honk_link`
  (and any other) are acknowledged only, nothing stored.

Events are answered `200 {"status": "queued", "job": ID}`, `{"status": "ignored", "reason": ...}` or
`{"status": "duplicate"}` (Slack reads only the status code); a command with its ephemeral text; an action with an
empty 200. A database that does not answer gets `503` (Slack retries events); a body over 1 MiB `413`; a request
Bolt cannot read but which is signed, `400`.

The job (`JobRequest`): kind SLACK, `repo` "owner/name" when the text names one (its first word after the mention,
or the Merge button's pull request) else "", `number` None, `requester` the Slack user id (the job maps it to the
linked GitHub login), `installation_id` None, and subject `slack:<team_id>:<channel_id>:<thread_ts or ts>`, so
that one thread's requests run one at a time, in order (a channel's commands, having no thread, share
`slack:<team_id>:<channel_id>:`). Its payload, the contract with app/jobs/slack.py:

    {
      "channel": "slack",
      "type": "mention" | "dm" | "reply" | "command" | "action",
      "team_id": "T…",              the workspace that delivered it (the envelope's team_id; for commands and
                                    actions the payload's team)
      "channel_id": "C…" | "G…" | "D…",
      "user_id": "U…",              who wrote, typed or clicked
      "ts": "1712345678.000100",    the message; for an action the message holding the button; "" for a command
      "thread_ts": "…",             the thread's root: = ts for a new top-level request; "" for a command
      "text": "<@U0HONK> acme/widgets fix the spinner",
                                    raw, with Slack's markup (commands.plain / parse_mention read it); the
                                    command's text after `/honk`; "" for an action
      "files": [{"name", "permalink", "mimetype"}],   attached files (messages only; else [])
      "event_id": "Ev…",            events only
      "trigger_id": "…",            commands and actions only
      "response_url": "https://hooks.slack.com/…",    commands and actions only
      "command": "/honk",           commands only
      "action": {"action_id": "honk_merge", "value": "acme/widgets#12"},   actions only
      "bot_user_id": "U0HONK…",     Honk's bot user, from the event's `authorizations` ("" when Slack sent none:
                                    commands and actions)
      "delivery_id": "slack:…"
    }

Bolt is built without Slack calls: an `authorize` function stands in for the `auth.test` that a `token=` app would
make on its first request (AsyncApp has no `token_verification_enabled`), so intake needs no Slack and never holds
the bot token; Honk's own messages are recognised by their `bot_id` and the `authorizations` bot user, not by
Bolt's self-event filter (which needs that auth.test).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncBoltRequest
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.exc import DataError, SQLAlchemyError
from starlette.responses import Response

from app.intake.webhooks import answered
from app.intake.writer import DeliveryWriter
from app.process import HonkState
from app.queue.requests import JobKind, JobRequest
from app.queue.store import Accepted, Incoming
from app.settings import Settings
from app.slack import blocks, commands
from app.untyped import as_dict, as_str, as_text

log = logging.getLogger("honk.slack.intake")
router = APIRouter()

EVENTS_PATH = "/api/slack/events"
MAX_AGE = 5 * 60  # seconds a signed request stays good (Slack's rule; Bolt applies it)
MAX_BODY = 1024 * 1024  # Slack's payloads are a few KB; a message's text is at most 40,000 characters
NOT_CONFIGURED = "Slack is not configured: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET"
ON_IT = "On it…"
ALREADY = "Already on it."
MERGE_ACTION = blocks.MERGE_ACTION
TEXT_LIMIT = 40_000  # Slack cuts a message's text there too
ID_LIMIT = 100  # the deliveries.id column
_SLACK_ID = re.compile(r"[A-Z0-9][A-Za-z0-9._-]{0,39}")  # team, channel and user ids (T…, C…, U…, W…)
_TS = re.compile(r"[0-9]{1,12}\.[0-9]{1,8}")
# Message subtypes that are a person writing: a plain message has none.
_PERSON_SUBTYPES = frozenset({"file_share", "thread_broadcast", "me_message"})


# ------------------------------------------------------------------------------------------------ the route


@dataclass
class _Outcome:
    """What a listener did with one request, for the route's answer, its log line and the metrics."""

    event: str = "slack"  # the metrics' event label: slack_app_mention, slack_message, slack_command, ...
    outcome: str = "acked"  # queued | ignored | duplicate | acked | rejected | error
    job: int | None = None
    delivery: str = ""
    reason: str | None = None
    failure: tuple[int, str] | None = None  # (status, detail): the delivery could not be stored


@dataclass
class _Intake:
    """What the listeners need from the web app: the process's state and its group-commit writer."""

    honk: HonkState
    writer: DeliveryWriter
    outcome: _Outcome = field(default_factory=_Outcome)


@router.post(EVENTS_PATH)
async def receive(request: Request) -> Response:
    started = time.perf_counter()
    honk: HonkState = request.app.state.honk
    settings = honk.settings
    if not settings.slack_enabled:
        return answered(request, started, JSONResponse({"error": NOT_CONFIGURED}, status_code=404), "rejected")
    body = await _read_body(request)
    if body is None:
        return answered(request, started, _error(413, f"the body is over {MAX_BODY // 1024} KiB"), "rejected")
    bolt = _bolt(request, settings)
    intake = _Intake(honk, _writer(request, honk))
    # Bolt's own switches for its lazy listeners ride on request headers; Honk has none, so none get through.
    headers = {k: v for k, v in request.headers.items() if not k.lower().startswith("x-slack-bolt-")}
    try:
        bolt_request = AsyncBoltRequest(body=body.decode("utf-8"), query=str(request.url.query), headers=headers,
                                        context={"honk": intake})
    except Exception:  # Bolt parses the body before it verifies it: a garbled one raises here
        if not _signature_ok(settings, body, headers):
            return answered(request, started, JSONResponse({"error": "invalid request"}, status_code=401),
                            "rejected")
        return answered(request, started, _error(400, "the body is not a Slack request"), "rejected")

    reply = await bolt.async_dispatch(bolt_request)
    outcome = intake.outcome
    if outcome.failure is not None:
        status, detail = outcome.failure
        return answered(request, started, _error(status, detail), "error" if status >= 500 else "rejected",
                        outcome.event)
    if reply.status >= 500:
        # Bolt or a listener failed on this request. Unsigned (Bolt's verifier raises on some garbage): 401.
        # Signed: Slack's or Honk's mistake, which a retry would only repeat.
        if not _signature_ok(settings, body, headers):
            return answered(request, started, JSONResponse({"error": "invalid request"}, status_code=401),
                            "rejected")
        log.warning("a signed Slack request could not be handled (Bolt answered %s)", reply.status)
        return answered(request, started, _error(400, "Honk could not read this Slack request"), "rejected",
                        outcome.event)
    if reply.status == 401:
        return answered(request, started, _bolt_response(reply), "rejected")
    if reply.status == 404:  # nothing listens for it (a shortcut, a view): acknowledged, nothing stored
        reply = BoltResponse(status=200, body="")
    elapsed = round((time.perf_counter() - started) * 1000, 2)
    if outcome.outcome == "queued":
        honk.job_queued()
        log.info("delivery=%s event=%s outcome=queued job=%s ms=%s", outcome.delivery, outcome.event, outcome.job,
                 elapsed)
    else:
        log.debug("delivery=%s event=%s outcome=%s reason=%r ms=%s", outcome.delivery or "-", outcome.event,
                  outcome.outcome, outcome.reason, elapsed)
    return answered(request, started, _bolt_response(reply), outcome.outcome, outcome.event)


async def _read_body(request: Request) -> bytes | None:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        return None
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > MAX_BODY:
            return None
    return bytes(chunks)


def _signature_ok(settings: Settings, body: bytes, headers: dict[str, str]) -> bool:
    """Slack's v0 signature over the raw bytes, within five minutes: Bolt's rule, for the requests Bolt itself
    cannot read (its verifier decodes the body as UTF-8 and reads the timestamp with `int`, and raises)."""
    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
    lowered = {k.lower(): v for k, v in headers.items()}
    timestamp, signature = lowered.get("x-slack-request-timestamp", ""), lowered.get("x-slack-signature", "")
    if not secret or not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return False
    if abs(time.time() - int(timestamp)) > MAX_AGE:
        return False
    expected = "v0=" + hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"status": "error", "detail": detail}, status_code=status)


def _bolt_response(reply: BoltResponse) -> Response:
    return Response(reply.body, status_code=reply.status, headers=reply.first_headers_without_set_cookie())


def _writer(request: Request, honk: HonkState) -> DeliveryWriter:
    """The app's group-commit writer, shared with the GitHub route (app/web/app.py makes it)."""
    writer: DeliveryWriter | None = getattr(request.app.state, "deliveries", None)
    if writer is None or writer.queue is not honk.queue:
        writer = request.app.state.deliveries = DeliveryWriter(honk.queue)
    return writer


def _bolt(request: Request, settings: Settings) -> AsyncApp:
    """The web app's Bolt app, made on first use and again when the Slack settings change (a reload)."""
    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
    key = (secret, settings.slack_api_url)
    cached: tuple[tuple[str, str], AsyncApp] | None = getattr(request.app.state, "slack_bolt", None)
    if cached is None or cached[0] != key:
        cached = (key, build_bolt(settings))
        request.app.state.slack_bolt = cached
    return cached[1]


# ------------------------------------------------------------------------------------------------ Bolt


async def _authorize(enterprise_id: str | None, team_id: str | None, user_id: str | None) -> AuthorizeResult:
    """Every verified request is Honk's one workspace's: no `auth.test`, no token in Bolt (the jobs post)."""
    return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, user_id=user_id)


class _QuietTokenWarning(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN from the environment by itself, then warns that the `client` given wins over
    it. That is the intent (Bolt gets no token), so the warning would only alarm the operator at every start."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("As you gave `client` as well")


def build_bolt(settings: Settings) -> AsyncApp:
    """Bolt for `settings` (Slack must be configured), with Honk's listeners."""
    if settings.slack_signing_secret is None:
        raise ValueError(NOT_CONFIGURED)
    bolt_log = logging.getLogger("honk.slack.bolt")
    if bolt_log.level == logging.NOTSET:
        # Bolt's loggers take this one's level. At INFO it logs the whole body of every request whose signature
        # fails: anyone's text, and the text of a genuine request that arrived late.
        bolt_log.setLevel(logging.WARNING)
    if not any(isinstance(f, _QuietTokenWarning) for f in bolt_log.filters):
        bolt_log.addFilter(_QuietTokenWarning())
    bolt = AsyncApp(
        # Bolt configures the logger of this name from `logger` on every request: "honk" would silence Honk's.
        name=bolt_log.name,
        logger=bolt_log,
        signing_secret=settings.slack_signing_secret.get_secret_value(),
        # Listeners make no Web API calls; the client only tells Bolt where Slack is.
        client=AsyncWebClient(base_url=settings.slack_api_url.rstrip("/") + "/"),
        authorize=_authorize,
        process_before_response=True,  # store, then ack: the answer means "stored"
        ignoring_self_events_enabled=False,  # needs auth.test's bot_id; the listeners know Honk's posts
        ignoring_self_assistant_message_events_enabled=False,
    )
    bolt.event("app_mention")(on_mention)
    bolt.event("message")(on_message)
    bolt.event(re.compile(".*"))(on_other_event)
    bolt.command(re.compile(".*"))(on_command)
    bolt.action(MERGE_ACTION)(on_merge)
    bolt.action(re.compile(".*"))(on_button)
    return bolt


# ------------------------------------------------------------------------------------------------ listeners


async def on_mention(body: dict[str, Any], ack: AsyncAck, context: AsyncBoltContext) -> BoltResponse | None:
    event = as_dict(body.get("event"))
    intake = _intake(context, "slack_app_mention")
    skip = _not_a_person(event, _bot_user(body))
    if skip is None and "edited" in event:
        skip = "an edited message: Honk does not re-read an edited request"
    return await _event(intake, ack, body, "app_mention", skip, "mention")


async def on_message(body: dict[str, Any], ack: AsyncAck, context: AsyncBoltContext) -> BoltResponse | None:
    event = as_dict(body.get("event"))
    intake = _intake(context, "slack_message")
    bot_user = _bot_user(body)
    subtype = as_str(event.get("subtype"))
    kind: str | None = None
    skip = _not_a_person(event, bot_user)
    if skip is None:
        ts, thread_ts = as_str(event.get("ts")), as_str(event.get("thread_ts"))
        in_thread = bool(thread_ts) and thread_ts != ts
        if as_str(event.get("channel_type")) == "im":
            kind = "reply" if in_thread else "dm"
        elif _mentions(as_str(event.get("text")), bot_user):
            skip = "a message that mentions Honk: its app_mention event carries it"
        elif in_thread:
            kind = "reply"
        else:
            skip = "a channel message that does not mention Honk"
    return await _event(intake, ack, body, f"message.{subtype}" if subtype else "message", skip, kind)


async def on_other_event(body: dict[str, Any], ack: AsyncAck, context: AsyncBoltContext) -> BoltResponse | None:
    kind = as_text(as_dict(body.get("event")).get("type"), 50) or "unknown"
    intake = _intake(context, "slack_event")
    return await _event(intake, ack, body, kind, f"Honk does not act on {kind} events", None)


async def on_command(body: dict[str, Any], ack: AsyncAck, context: AsyncBoltContext) -> BoltResponse | None:
    intake = _intake(context, "slack_command")
    trigger_id = as_str(body.get("trigger_id"))
    command_name = as_text(body.get("command"), 50) or "/honk"
    text = as_text(body.get("text"), TEXT_LIMIT)
    if not trigger_id:
        intake.outcome.failure = (400, "the command has no trigger_id")
        return BoltResponse(status=400, body="")
    delivery = f"slack:cmd:{trigger_id}"
    parsed = commands.parse_slash(text)
    team, channel, user = (as_str(body.get("team_id")), as_str(body.get("channel_id")),
                           as_str(body.get("user_id")))
    answer: blocks.Message | None = None
    request: JobRequest | None = None
    reason: str | None = None
    if isinstance(parsed, commands.Problem):
        answer, reason = blocks.problem(parsed.message), f"the command cannot be done: {parsed.message}"
    elif isinstance(parsed, commands.Help):
        answer, reason = blocks.help_message(), "a request for help, answered at once"
    elif not (_SLACK_ID.fullmatch(team) and _SLACK_ID.fullmatch(channel) and _SLACK_ID.fullmatch(user)):
        reason = "the command does not name its workspace, channel and user"
    else:
        trigger = _trigger("command", team_id=team, channel_id=channel, user_id=user, ts="", thread_ts="",
                           text=text, files=[], bot_user_id="", delivery_id=delivery,
                           trigger_id=trigger_id, response_url=as_str(body.get("response_url")),
                           command=command_name)
        request = _job(_repo_of(parsed), user, trigger)
    accepted = await _store(intake, Incoming(delivery, "slack_command", command_name, request, reason))
    if accepted is None:
        return BoltResponse(status=intake.outcome.failure[0] if intake.outcome.failure else 503, body="")
    if answer is not None:
        await ack(text=answer.text, blocks=answer.blocks, response_type="ephemeral")
    elif request is None:
        await ack(text=f"Honk cannot act on this: {reason}.", response_type="ephemeral")
    else:
        await ack(text=ALREADY if accepted.duplicate else ON_IT, response_type="ephemeral")
    return None


async def on_merge(body: dict[str, Any], ack: AsyncAck, context: AsyncBoltContext) -> BoltResponse | None:
    intake = _intake(context, "slack_block_actions")
    trigger_id = as_str(body.get("trigger_id"))
    action = as_dict((body.get("actions") or [{}])[0]) if isinstance(body.get("actions"), list) else {}
    action_id, value = as_text(action.get("action_id"), 255), as_text(action.get("value"), 2000)
    if not trigger_id:
        intake.outcome.failure = (400, "the action has no trigger_id")
        return BoltResponse(status=400, body="")
    delivery = f"slack:act:{trigger_id}"
    container, message = as_dict(body.get("container")), as_dict(body.get("message"))
    team = as_str(as_dict(body.get("team")).get("id")) or as_str(as_dict(body.get("user")).get("team_id"))
    channel = as_str(as_dict(body.get("channel")).get("id")) or as_str(container.get("channel_id"))
    user = as_str(as_dict(body.get("user")).get("id"))
    ts = as_str(container.get("message_ts")) or as_str(message.get("ts"))
    thread_ts = as_str(container.get("thread_ts")) or as_str(message.get("thread_ts")) or ts
    request: JobRequest | None = None
    reason: str | None = None
    if not (_SLACK_ID.fullmatch(team) and _SLACK_ID.fullmatch(channel) and _SLACK_ID.fullmatch(user)):
        reason = "the action does not name its workspace, channel and user"
    else:
        trigger = _trigger("action", team_id=team, channel_id=channel, user_id=user, ts=ts, thread_ts=thread_ts,
                           text="", files=[], bot_user_id="", delivery_id=delivery, trigger_id=trigger_id,
                           response_url=as_str(body.get("response_url")),
                           action={"action_id": action_id, "value": value})
        named = blocks.read_merge_value(value)
        request = _job(named[0] if named else "", user, trigger)
    accepted = await _store(intake, Incoming(delivery, "slack_block_actions", action_id[:100] or None, request,
                                             reason))
    if accepted is None:
        return BoltResponse(status=intake.outcome.failure[0] if intake.outcome.failure else 503, body="")
    await ack()
    return None


async def on_button(ack: AsyncAck, context: AsyncBoltContext) -> None:
    """A link button (`honk_open`, `honk_preview`, `honk_link`): Slack opens the address itself and tells the app
    about the click, which needs an acknowledgement and nothing else."""
    _intake(context, "slack_block_actions")
    await ack()


# ------------------------------------------------------------------------------------------------ pieces


def _intake(context: AsyncBoltContext, event: str) -> _Intake:
    intake: _Intake = context["honk"]
    intake.outcome.event = event
    return intake


async def _event(intake: _Intake, ack: AsyncAck, body: dict[str, Any], action: str, skip: str | None,
                 kind: str | None) -> BoltResponse | None:
    """Store one Events API callback: a job of type `kind`, or an ignored delivery (`skip` says why)."""
    event_id = as_str(body.get("event_id"))
    if not event_id or len(event_id) > ID_LIMIT - len("slack:"):
        intake.outcome.failure = (400, "the event has no usable event_id")
        return BoltResponse(status=400, body="")
    delivery = f"slack:{event_id}"
    request: JobRequest | None = None
    if skip is None and kind is not None:
        request, skip = _event_job(body, kind, delivery)
    accepted = await _store(intake, Incoming(delivery, intake.outcome.event, action[:100], request,
                                             skip if request is None else None))
    if accepted is None:
        return BoltResponse(status=intake.outcome.failure[0] if intake.outcome.failure else 503, body="")
    if accepted.duplicate:
        await ack({"status": "duplicate"})
    elif accepted.job_id is not None:
        await ack({"status": "queued", "job": accepted.job_id})
    else:
        await ack({"status": "ignored", "reason": skip})
    return None


def _event_job(body: dict[str, Any], kind: str, delivery: str) -> tuple[JobRequest | None, str | None]:
    event = as_dict(body.get("event"))
    team = as_str(body.get("team_id")) or as_str(event.get("team"))
    channel, user, ts = as_str(event.get("channel")), as_str(event.get("user")), as_str(event.get("ts"))
    if not (_SLACK_ID.fullmatch(team) and _SLACK_ID.fullmatch(channel) and _SLACK_ID.fullmatch(user)):
        return None, "the event does not name its workspace, channel and user"
    if not _TS.fullmatch(ts):
        return None, "the event's message has no timestamp"
    thread_ts = as_str(event.get("thread_ts"))
    thread_ts = thread_ts if _TS.fullmatch(thread_ts) else ts
    bot_user = _bot_user(body)
    text = as_text(event.get("text"), TEXT_LIMIT)
    trigger = _trigger(kind, team_id=team, channel_id=channel, user_id=user, ts=ts, thread_ts=thread_ts, text=text,
                       files=_files(event.get("files")), bot_user_id=bot_user, delivery_id=delivery,
                       event_id=as_str(body.get("event_id")))
    return _job(_repo_of(commands.parse_mention(text, bot_user or None)), user, trigger), None


def _trigger(kind: str, **fields: Any) -> dict[str, Any]:
    return {"channel": "slack", "type": kind, **fields}


def _job(repo: str, user: str, trigger: dict[str, Any]) -> JobRequest:
    return JobRequest(kind=JobKind.SLACK, repo=repo, number=None, requester=user, installation_id=None,
                      trigger=trigger)


def _repo_of(command: commands.Command) -> str:
    repo = getattr(command, "repo", None)
    return repo if isinstance(repo, str) else ""


def _not_a_person(event: dict[str, Any], bot_user: str) -> str | None:
    """Why a message event is not a person writing to Honk, or None when it is."""
    subtype = as_str(event.get("subtype"))
    if subtype == "message_changed":
        return "an edited message: Honk does not re-read an edited request"
    if subtype == "message_deleted":
        return "a deleted message"
    if event.get("bot_id") or subtype == "bot_message" or event.get("bot_profile"):
        return "a bot's message (Honk's own posts come back as events)"
    user = as_str(event.get("user"))
    if bot_user and user == bot_user:
        return "Honk's own message"
    if subtype and subtype not in _PERSON_SUBTYPES:
        return f"a {as_text(subtype, 50)} message"
    if not user:
        return "a message with no author"
    return None


def _bot_user(body: dict[str, Any]) -> str:
    """Honk's bot user id, as the event's `authorizations` name it."""
    for entry in body.get("authorizations") or []:
        grant = as_dict(entry)
        if grant.get("is_bot") and _SLACK_ID.fullmatch(as_str(grant.get("user_id"))):
            return as_str(grant.get("user_id"))
    return ""


def _mentions(text: str, bot_user: str) -> bool:
    return bool(bot_user) and (f"<@{bot_user}>" in text or f"<@{bot_user}|" in text)


def _files(value: Any) -> list[dict[str, str]]:
    files = []
    for item in value if isinstance(value, list) else []:
        file = as_dict(item)
        permalink = as_text(file.get("permalink"), 2000)
        if not permalink:
            continue
        files.append({"name": as_text(file.get("name") or file.get("title"), 255),
                      "permalink": permalink, "mimetype": as_text(file.get("mimetype"), 255)})
    return files[:20]


async def _store(intake: _Intake, item: Incoming) -> Accepted | None:
    """Store the delivery (and its job) with the others arriving now; None when it could not be, with the
    failure noted for the route's answer."""
    outcome = intake.outcome
    outcome.delivery = item.delivery_id
    try:
        accepted = await intake.writer.accept(item)
    except (DataError, OverflowError, ValueError) as exc:
        log.warning("delivery=%s cannot be stored: %s", item.delivery_id, exc)
        outcome.outcome, outcome.failure = "rejected", (400, "the request holds a value Honk cannot store")
        return None
    except SQLAlchemyError as exc:
        # Not Slack's fault: Slack retries an event it got no 2xx for, and the person can ask again.
        log.error("delivery=%s cannot be stored: %s", item.delivery_id, exc)
        outcome.outcome, outcome.failure = "error", (503, "the database is not answering; nothing was stored")
        return None
    if accepted.duplicate:
        outcome.outcome = "duplicate"
    elif accepted.job_id is not None:
        outcome.outcome, outcome.job = "queued", accepted.job_id
    else:
        outcome.outcome, outcome.reason = "ignored", item.reason
    return accepted
