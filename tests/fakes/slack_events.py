"""Signed requests as Slack sends them to an app: Events API callbacks, slash commands, interactivity.

Shapes follow the examples in Slack's reference (docs.slack.dev: the `app_mention` and `message` events and
their `message_changed` / `message_deleted` subtypes, the `url_verification` handshake, slash command and
`block_actions` payloads), with the fields real deliveries carry besides (`event_context`, `authorizations`,
`channel_type`, `client_msg_id`, the `rich_text` block Slack adds to what a person typed).

Every envelope builder returns a `SignedRequest`, a `(body, headers)` pair ready for `httpx.post(url,
content=body, headers=headers)`, signed the way Slack signs (see `signed_headers`):

    body, headers = event_callback(app_mention("acme/widgets fix the spinner", user="U0ALICE", channel="C0GENERAL"))
    httpx.post(f"{honk}/api/slack/events", content=body, headers=headers)

Event builders (`app_mention`, `message`, `bot_message`, `message_changed`, `message_deleted`) return the inner
`event` dict, so a test can adjust it before wrapping it. `retry(request)` re-sends the same body the way Slack
retries an event it thinks was not acknowledged (same `event_id`, new signature, `X-Slack-Retry-Num`).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import secrets
import string
import threading
import time
import uuid
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlencode

# The signing secret from Slack's own example in "Verifying requests from Slack".
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TEAM_ID = "T0ACME001"
TEAM_DOMAIN = "acme"
APP_ID = "A0HONK001"
BOT_USER_ID = "U0HONKBOT"
BOT_ID = "B0HONKBOT"
BOT_NAME = "honk"
RETRY_REASONS = ("http_timeout", "too_many_redirects", "http_error", "ssl_error", "connection_failed",
                 "unknown_error")

_ts_lock = threading.Lock()
_last_ts = [0]
_ids = itertools.count(1)


# ------------------------------------------------------------------------------------------------ ids


def new_ts() -> str:
    """A message timestamp like Slack's ("1503435956.000247"): unique, increasing, and near the wall clock."""
    with _ts_lock:
        micros = max(int(time.time() * 1_000_000), _last_ts[0] + 1)
        _last_ts[0] = micros
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def new_event_id() -> str:
    return "Ev" + "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(10))


def new_trigger_id(issued: float | None = None) -> str:
    """A trigger id like Slack's ("13345224609.738474920.8088930838d88f008e0"). Slack honours one for three
    seconds; the fake reads the issue time back from the first part."""
    issued_at = int(issued if issued is not None else time.time())
    return f"{issued_at}.{next(_ids):09d}.{secrets.token_hex(16)}"


def trigger_issued(trigger_id: str) -> int | None:
    head = trigger_id.split(".", 1)[0]
    return int(head) if head.isdigit() else None


def channel_type(channel: str) -> str:
    """What Slack says in `channel_type` for a conversation id: C public, G private, D direct message."""
    return {"D": "im", "G": "group"}.get(channel[:1], "channel")


# ------------------------------------------------------------------------------------------------ signing


def signature(body: bytes, secret: str = SIGNING_SECRET, timestamp: int | str | None = None) -> str:
    """`v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{raw body}` under the signing secret."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + ts.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(body: bytes, secret: str = SIGNING_SECRET, timestamp: int | None = None, *,
                   content_type: str = "application/json", stale: bool = False, forged: bool = False,
                   retry_num: int | None = None, retry_reason: str = "http_timeout") -> dict[str, str]:
    """The headers Slack sends with `body`: `Content-Type`, `X-Slack-Request-Timestamp`, `X-Slack-Signature`.

    `stale=True` dates the request six minutes back (correctly signed for that time, so only the age is wrong);
    `forged=True` signs with another secret. `retry_num` adds `X-Slack-Retry-Num` / `X-Slack-Retry-Reason`.
    """
    ts = int(time.time()) if timestamp is None else timestamp
    if stale:
        ts -= 6 * 60
    key = "not-" + secret if forged else secret
    headers = {"Content-Type": content_type, "X-Slack-Request-Timestamp": str(ts),
               "X-Slack-Signature": signature(body, key, ts)}
    if retry_num:
        headers["X-Slack-Retry-Num"] = str(retry_num)
        headers["X-Slack-Retry-Reason"] = retry_reason
    return headers


class SignedRequest(NamedTuple):
    """`(body, headers)`; unpack it, or read `payload` for what the body says."""

    body: bytes
    headers: dict[str, str]

    @property
    def payload(self) -> dict[str, Any]:
        """The JSON body; the form fields of a slash command (one value each); an interaction's `payload`."""
        if self.headers.get("Content-Type", "").startswith("application/json"):
            return json.loads(self.body)
        form = {k: v[0] for k, v in parse_qs(self.body.decode(), keep_blank_values=True).items()}
        return json.loads(form["payload"]) if set(form) == {"payload"} else form


def _nowhere(kind: str, team_id: str) -> str:
    """A response URL shaped like Slack's (`https://hooks.slack.com/commands/T…/…/…`) but on a closed local port,
    so that Honk under test never reaches the real Slack; use `FakeSlack.response_url` to see the replies."""
    return f"http://127.0.0.1:9/{kind}/{team_id}/{next(_ids)}/{secrets.token_urlsafe(18)}"


def _sign(body: bytes, content_type: str, secret: str, timestamp: int | None, stale: bool, forged: bool,
          retry_num: int | None = None, retry_reason: str = "http_timeout") -> SignedRequest:
    return SignedRequest(body, signed_headers(body, secret, timestamp, content_type=content_type, stale=stale,
                                              forged=forged, retry_num=retry_num, retry_reason=retry_reason))


def retry(request: SignedRequest, num: int = 1, reason: str = "http_timeout", secret: str = SIGNING_SECRET,
          timestamp: int | None = None) -> SignedRequest:
    """Slack's retry of an event delivery: the same body (same `event_id`), signed anew, with the retry headers.
    Slack retries up to three times (num 1..3), after no 2xx within three seconds or an error."""
    return _sign(request.body, request.headers.get("Content-Type", "application/json"), secret, timestamp,
                 False, False, num, reason)


# ------------------------------------------------------------------------------------------------ events


def rich_text(text: str) -> list[dict[str, Any]]:
    """The `rich_text` block Slack's clients attach to what a person typed (plain text only, mentions kept)."""
    elements: list[dict[str, Any]] = []
    rest = text
    while "<@" in rest:
        before, _, after = rest.partition("<@")
        mention, closed, tail = after.partition(">")
        if not closed:
            break
        if before:
            elements.append({"type": "text", "text": before})
        elements.append({"type": "user", "user_id": mention.split("|", 1)[0]})
        rest = tail
    if rest:
        elements.append({"type": "text", "text": rest})
    block_id = secrets.token_urlsafe(3)
    return [{"type": "rich_text", "block_id": block_id,
             "elements": [{"type": "rich_text_section", "elements": elements}]}]


def message(text: str, user: str, channel: str, *, ts: str | None = None, thread_ts: str | None = None,
            parent_user_id: str | None = None, team: str = TEAM_ID) -> dict[str, Any]:
    """A `message` event: a person posted in a channel (`C…`/`G…`) or a direct message with the app (`D…`).
    With `thread_ts` it is a reply in that thread (Slack adds `parent_user_id`)."""
    ts = ts or new_ts()
    event: dict[str, Any] = {"client_msg_id": str(uuid.uuid4()), "type": "message", "text": text, "user": user,
                             "ts": ts, "blocks": rich_text(text), "team": team, "channel": channel,
                             "event_ts": ts, "channel_type": channel_type(channel)}
    if thread_ts:
        event["thread_ts"] = thread_ts
        event["parent_user_id"] = parent_user_id or user
    return event


def app_mention(text: str, user: str, channel: str, *, ts: str | None = None, thread_ts: str | None = None,
                bot_user_id: str = BOT_USER_ID, team: str = TEAM_ID) -> dict[str, Any]:
    """An `app_mention` event. `text` gets the mention `<@BOT> ` in front unless it already names the bot.
    Slack sends it for channels the app is in; in a direct message it sends a `message` (channel_type im)."""
    if f"<@{bot_user_id}>" not in text:
        text = f"<@{bot_user_id}> {text}"
    ts = ts or new_ts()
    event: dict[str, Any] = {"client_msg_id": str(uuid.uuid4()), "type": "app_mention", "text": text,
                             "user": user, "ts": ts, "blocks": rich_text(text), "team": team, "channel": channel,
                             "event_ts": ts}
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def bot_message(text: str, channel: str, *, ts: str | None = None, thread_ts: str | None = None,
                bot_id: str = BOT_ID, bot_user_id: str = BOT_USER_ID, app_id: str = APP_ID,
                legacy: bool = False, team: str = TEAM_ID) -> dict[str, Any]:
    """A `message` event for a message a bot posted: Honk's own (the default ids) or another app's.
    An app's bot token posts with `user` = its bot user and a `bot_id`/`bot_profile`, no subtype; `legacy=True`
    gives the old `subtype: bot_message` shape (no `user`), as integrations and webhooks still send."""
    ts = ts or new_ts()
    event: dict[str, Any] = {"type": "message", "text": text, "ts": ts, "bot_id": bot_id, "channel": channel,
                             "event_ts": ts, "channel_type": channel_type(channel)}
    if legacy:
        event.update(subtype="bot_message", username=BOT_NAME)
    else:
        event.update(user=bot_user_id, app_id=app_id, team=team,
                     bot_profile={"id": bot_id, "app_id": app_id, "name": BOT_NAME, "deleted": False,
                                  "team_id": team})
    if thread_ts:
        event["thread_ts"] = thread_ts
        event["parent_user_id"] = bot_user_id
    return event


def message_changed(channel: str, ts: str, text: str, user: str, *, previous_text: str = "",
                    thread_ts: str | None = None, team: str = TEAM_ID) -> dict[str, Any]:
    """A `message_changed` event: `user` edited message `ts` to say `text`. The event has its own `ts`;
    the edited message is under `message` (with `edited`), the old one under `previous_message`."""
    now = new_ts()
    current: dict[str, Any] = {"type": "message", "user": user, "text": text, "ts": ts, "team": team,
                               "blocks": rich_text(text), "edited": {"user": user, "ts": now}}
    previous: dict[str, Any] = {"type": "message", "user": user, "text": previous_text, "ts": ts, "team": team,
                                "blocks": rich_text(previous_text)}
    if thread_ts:
        current["thread_ts"] = previous["thread_ts"] = thread_ts
    return {"type": "message", "subtype": "message_changed", "hidden": True, "channel": channel, "ts": now,
            "event_ts": now, "channel_type": channel_type(channel), "message": current,
            "previous_message": previous}


def message_deleted(channel: str, ts: str, user: str, *, previous_text: str = "", thread_ts: str | None = None,
                    team: str = TEAM_ID) -> dict[str, Any]:
    """A `message_deleted` event: message `ts` is gone (`deleted_ts`); no `user` at the top level."""
    now = new_ts()
    previous: dict[str, Any] = {"type": "message", "user": user, "text": previous_text, "ts": ts, "team": team}
    if thread_ts:
        previous["thread_ts"] = thread_ts
    return {"type": "message", "subtype": "message_deleted", "hidden": True, "channel": channel, "ts": now,
            "deleted_ts": ts, "event_ts": now, "channel_type": channel_type(channel),
            "previous_message": previous}


# ------------------------------------------------------------------------------------------------ envelopes


def event_callback(event: dict[str, Any], *, secret: str = SIGNING_SECRET, event_id: str | None = None,
                   event_time: int | None = None, team_id: str = TEAM_ID, api_app_id: str = APP_ID,
                   bot_user_id: str = BOT_USER_ID, timestamp: int | None = None, stale: bool = False,
                   forged: bool = False, retry_num: int | None = None,
                   retry_reason: str = "http_timeout") -> SignedRequest:
    """The Events API envelope (`type: event_callback`) around `event`, signed."""
    payload = {
        "token": "Jhj5dZrVaK7ZwHHjRyZWjbDl",  # the deprecated verification token; apps must not rely on it
        "team_id": team_id,
        "context_team_id": team_id,
        "context_enterprise_id": None,
        "api_app_id": api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or new_event_id(),
        "event_time": event_time if event_time is not None else int(float(event.get("event_ts") or time.time())),
        "authorizations": [{"enterprise_id": None, "team_id": team_id, "user_id": bot_user_id, "is_bot": True,
                            "is_enterprise_install": False}],
        "is_ext_shared_channel": False,
        "event_context": "4-" + secrets.token_urlsafe(48),
    }
    body = json.dumps(payload).encode()
    return _sign(body, "application/json", secret, timestamp, stale, forged, retry_num, retry_reason)


def url_verification(challenge: str = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", *,
                     secret: str = SIGNING_SECRET, timestamp: int | None = None, stale: bool = False,
                     forged: bool = False) -> SignedRequest:
    """The handshake Slack sends when the Request URL is saved; the app answers with `challenge`. Signed too."""
    body = json.dumps({"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "challenge": challenge,
                       "type": "url_verification"}).encode()
    return _sign(body, "application/json", secret, timestamp, stale, forged)


def slash_command(text: str, user_id: str, channel_id: str, *, command: str = "/honk", user_name: str = "",
                  channel_name: str = "", team_id: str = TEAM_ID, team_domain: str = TEAM_DOMAIN,
                  api_app_id: str = APP_ID, response_url: str | None = None, trigger_id: str | None = None,
                  secret: str = SIGNING_SECRET, timestamp: int | None = None, stale: bool = False,
                  forged: bool = False) -> SignedRequest:
    """A slash command: a form-encoded body (spaces as `+`, `/` as `%2F`), signed over those exact bytes.
    `channel_name` is "directmessage" for a DM; `response_url` takes up to five replies for 30 minutes (by
    default one on a closed local port: pass `FakeSlack.response_url(...)`, or use `FakeSlack.command`)."""
    form = {
        "token": "gIkuvaNzQIHg97ATvDxqgjtO",
        "team_id": team_id,
        "team_domain": team_domain,
        "channel_id": channel_id,
        "channel_name": channel_name or ("directmessage" if channel_id.startswith("D") else "general"),
        "user_id": user_id,
        "user_name": user_name or user_id.lower(),
        "command": command,
        "text": text,
        "api_app_id": api_app_id,
        "is_enterprise_install": "false",
        "response_url": response_url or _nowhere("commands", team_id),
        "trigger_id": trigger_id or new_trigger_id(),
    }
    body = urlencode(form).encode()
    return _sign(body, "application/x-www-form-urlencoded", secret, timestamp, stale, forged)


def block_action(action_id: str, value: str, user_id: str, channel: str, message_ts: str, *,
                 block_id: str = "honk", message: dict[str, Any] | None = None, thread_ts: str | None = None,
                 is_ephemeral: bool = False, button_text: str = "Merge", user_name: str = "",
                 team_id: str = TEAM_ID, team_domain: str = TEAM_DOMAIN, api_app_id: str = APP_ID,
                 response_url: str | None = None, trigger_id: str | None = None, secret: str = SIGNING_SECRET,
                 timestamp: int | None = None, stale: bool = False, forged: bool = False) -> SignedRequest:
    """A `block_actions` interaction: a button with `action_id`/`value` clicked in the message `message_ts`.

    The body is a form with one field, `payload`, holding the JSON. `message` (the message as it stands, e.g.
    `FakeSlack.message(...)`) is included as Slack does; for an ephemeral message Slack sends no `message`.
    """
    name = user_name or user_id.lower()
    container: dict[str, Any] = {"type": "message", "message_ts": message_ts, "channel_id": channel,
                                 "is_ephemeral": is_ephemeral}
    if thread_ts:
        container["thread_ts"] = thread_ts
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user_id, "username": name, "name": name, "team_id": team_id},
        "api_app_id": api_app_id,
        "token": "9s8d9as89d8as9d8as989",
        "container": container,
        "trigger_id": trigger_id or new_trigger_id(),
        "team": {"id": team_id, "domain": team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": "directmessage" if channel.startswith("D") else "general"},
        "state": {"values": {}},
        "response_url": response_url or _nowhere("actions", team_id),
        "actions": [{"action_id": action_id, "block_id": block_id,
                     "text": {"type": "plain_text", "text": button_text, "emoji": True}, "value": value,
                     "type": "button", "action_ts": new_ts()}],
    }
    if not is_ephemeral:
        payload["message"] = message or {"type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID,
                                         "ts": message_ts, "text": "", "team": team_id,
                                         **({"thread_ts": thread_ts} if thread_ts else {})}
    body = urlencode({"payload": json.dumps(payload)}).encode()
    return _sign(body, "application/x-www-form-urlencoded", secret, timestamp, stale, forged)
