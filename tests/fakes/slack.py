"""A local Slack: the Web API methods Honk calls, on a real HTTP server on 127.0.0.1, with Slack's state.

Point `slack_sdk`'s client at it (`AsyncWebClient(token=fake.token, base_url=fake.url)`, or `SLACK_API_URL`
for a subprocess; `fake.url` ends in `/api/` like `https://slack.com/api/`). It answers as Slack does:
HTTP 200 with `{"ok": true, ...}` or `{"ok": false, "error": "..."}`, HTTP 429 with `Retry-After` when rate
limited. It takes form-encoded or JSON bodies (and query strings), the token as `Authorization: Bearer` or as a
`token` form field (never from JSON or the query string), and keeps state:

- `chat.postMessage` (channel id, `#name`, or a user id for the DM; `thread_ts`; `reply_broadcast`),
  `chat.update` (channel id + ts; absent `text`/`blocks` are kept, `blocks: []` clears them),
  `chat.postEphemeral` (answers `message_ts`), `chat.delete`, `chat.getPermalink`, `conversations.replies`,
  `conversations.open`, `auth.test`, `users.info`, `views.open` (trigger ids expire after 3 s, used once).
- Errors: `not_authed`, `invalid_auth`, `token_revoked`, `channel_not_found`, `not_in_channel`, `is_archived`,
  `no_text`, `message_not_found`, `cant_update_message`, `cant_delete_message`, `user_not_found`,
  `user_not_in_channel`, `invalid_blocks` (with Slack's `errors` and `response_metadata.messages`),
  `invalid_blocks_format`, `invalid_trigger_id`, `expired_trigger_id`, `exchanged_trigger_id`, `unknown_method`.
- Block Kit is checked the way Slack rejects it: at most 50 blocks (100 in a view), known block types, text
  objects `plain_text`/`mrkdwn` with 1..3000 characters in a section (150 in a header, 75 on a button),
  unique `block_id`s and `action_id`s, no unknown fields on the common blocks.
- Slack accepts a `thread_ts` that names no thread and the reply is never seen; so does the fake, and it notes
  it in `problems` (with other silent mistakes: blocks without fallback `text`).
- Response URLs (`fake.response_url(...)`, used by `command` and `click`) take five posts and apply
  `replace_original` / `delete_original` / `response_type: in_channel` (default: ephemeral to the user).

Modes: `rate_limit(method, times, retry_after)`, `fail(method, times, status=500)` (or `status=200, error=...`
for any Slack error), `revoke()`. Inspection: `calls` / `calls_to(method)` (every request, with its args,
token and status), `thread(channel, ts)`, `messages(channel)`, `message(channel, ts)`, `ephemeral(user)`,
`views`, `responses`, `rendered(message)` (the text a phone shows). For driving Honk: `user_posts`,
`user_edits`, `user_deletes` (store the message and return the event to wrap in `event_callback`),
`command(...)` and `click(...)` (signed requests whose response URLs and trigger ids the fake honours).
"""

from __future__ import annotations

import copy
import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.fakes import slack_events as ev
from tests.fakes.slack_events import (
    APP_ID,
    BOT_ID,
    BOT_NAME,
    BOT_USER_ID,
    SIGNING_SECRET,
    TEAM_DOMAIN,
    TEAM_ID,
    SignedRequest,
    new_trigger_id,
    new_ts,
)

# A bot token in the shape of Slack's documentation examples.
BOT_TOKEN = "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy"
SCOPES = "app_mentions:read,channels:history,chat:write,commands,groups:history,im:history,im:write,users:read"
MAX_TEXT = 40_000  # Slack truncates message text beyond this
RESPONSE_URL_USES = 5


class SlackError(Exception):
    def __init__(self, error: str, status: int = 200, **extra: Any) -> None:
        super().__init__(error)
        self.error, self.status, self.extra = error, status, extra


@dataclass
class Call:
    """One request to the Web API, as received, and what the fake answered."""

    method: str
    args: dict[str, Any]
    token: str | None
    http_method: str
    content_type: str
    status: int = 0
    response: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == 200 and bool(self.response.get("ok"))

    @property
    def error(self) -> str | None:
        return self.response.get("error")


@dataclass
class Channel:
    id: str
    name: str
    is_private: bool = False
    is_im: bool = False
    im_user: str | None = None
    members: set[str] | None = None  # None: everyone
    bot_member: bool = True
    archived: bool = False
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)  # ts -> message, replies included
    orphans: list[dict[str, Any]] = field(default_factory=list)  # replies to a thread_ts that named nothing

    def has_member(self, user: str) -> bool:
        return self.members is None or user in self.members


@dataclass
class _Mode:
    kind: str  # "rate_limit" | "fail"
    remaining: int
    retry_after: int = 1
    status: int = 500
    error: str = "internal_error"


@dataclass
class _Hook:
    channel: str
    user: str
    message_ts: str | None
    uses: int = 0


# ------------------------------------------------------------------------------------------------ Block Kit

TEXT_TYPES = ("plain_text", "mrkdwn")
BLOCK_TYPES = {"actions", "context", "context_actions", "divider", "file", "header", "image", "input", "markdown",
               "rich_text", "section", "table", "video"}
ELEMENT_TYPES = {"button", "checkboxes", "channels_select", "conversations_select", "datepicker", "datetimepicker",
                 "email_text_input", "external_select", "feedback_buttons", "file_input", "icon_button", "image",
                 "multi_channels_select", "multi_conversations_select", "multi_external_select",
                 "multi_static_select", "multi_users_select", "number_input", "overflow", "plain_text_input",
                 "radio_buttons", "rich_text_input", "static_select", "timepicker", "url_text_input",
                 "users_select", "workflow_button"}
BLOCK_FIELDS = {
    "section": {"type", "block_id", "text", "fields", "accessory", "expand"},
    "header": {"type", "block_id", "text", "level"},
    "divider": {"type", "block_id"},
    "context": {"type", "block_id", "elements"},
    "actions": {"type", "block_id", "elements"},
    "image": {"type", "block_id", "image_url", "slack_file", "alt_text", "title"},
    "markdown": {"type", "block_id", "text"},
}
BUTTON_FIELDS = {"type", "text", "action_id", "url", "value", "style", "confirm", "accessibility_label"}
TEXT_FIELDS = {"type", "text", "emoji", "verbatim"}


class _BlockCheck:
    """Collects Slack-style complaints: `must be less than 3001 characters [json-pointer:/blocks/0/text/text]`."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def err(self, message: str, pointer: str) -> None:
        self.errors.append(f"{message} [json-pointer:{pointer}]")

    def text(self, obj: Any, ptr: str, *, plain_only: bool = False, max_len: int = 3000) -> None:
        if not isinstance(obj, dict):
            self.err("must provide an object", ptr)
            return
        kind = obj.get("type")
        allowed = ("plain_text",) if plain_only else TEXT_TYPES
        if kind not in allowed:
            self.err(f"must be one of {list(allowed)}", f"{ptr}/type")
        for key in set(obj) - TEXT_FIELDS:
            self.err(f"invalid additional property: {key}", ptr)
        if "emoji" in obj and kind != "plain_text":
            self.err("emoji is only allowed on plain_text", f"{ptr}/emoji")
        if "verbatim" in obj and kind != "mrkdwn":
            self.err("verbatim is only allowed on mrkdwn", f"{ptr}/verbatim")
        value = obj.get("text")
        if not isinstance(value, str):
            self.err("must provide a string", f"{ptr}/text")
        elif not value:
            self.err("must be more than 0 characters", f"{ptr}/text")
        elif len(value) > max_len:
            self.err(f"must be less than {max_len + 1} characters", f"{ptr}/text")

    def blocks(self, blocks: Any, ptr: str, limit: int) -> None:
        if not isinstance(blocks, list):
            self.err("must provide an array", ptr)
            return
        if len(blocks) > limit:
            self.err(f"no more than {limit} items allowed", ptr)
        block_ids: set[str] = set()
        for i, block in enumerate(blocks):
            self.block(block, f"{ptr}/{i}", block_ids)

    def block(self, block: Any, ptr: str, block_ids: set[str]) -> None:
        if not isinstance(block, dict):
            self.err("must provide an object", ptr)
            return
        kind = block.get("type")
        if not isinstance(kind, str):
            self.err("must provide a string", f"{ptr}/type")
            return
        if kind not in BLOCK_TYPES:
            self.err(f"unsupported type: {kind}", f"{ptr}/type")
            return
        for key in set(block) - BLOCK_FIELDS.get(kind, set(block)):
            self.err(f"invalid additional property: {key}", ptr)
        block_id = block.get("block_id")
        if block_id is not None:
            if not isinstance(block_id, str) or not block_id or len(block_id) > 255:
                self.err("must be a string of 1..255 characters", f"{ptr}/block_id")
            elif block_id in block_ids:
                self.err(f"duplicate block_id: {block_id}", f"{ptr}/block_id")
            else:
                block_ids.add(block_id)
        if kind == "section":
            if "text" not in block and "fields" not in block:
                self.err("must provide either text or fields", ptr)
            if "text" in block:
                self.text(block["text"], f"{ptr}/text")
            if "fields" in block:
                fields = block["fields"]
                if not isinstance(fields, list) or not 1 <= len(fields) <= 10:
                    self.err("must provide an array of 1..10 text objects", f"{ptr}/fields")
                else:
                    for j, item in enumerate(fields):
                        self.text(item, f"{ptr}/fields/{j}", max_len=2000)
            if "accessory" in block:
                self.element(block["accessory"], f"{ptr}/accessory", set())
        elif kind == "header":
            self.text(block.get("text"), f"{ptr}/text", plain_only=True, max_len=150)
        elif kind == "markdown":
            text = block.get("text")
            if not isinstance(text, str) or not text or len(text) > 12_000:
                self.err("must provide a string of 1..12000 characters", f"{ptr}/text")
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
                self.err("must provide an array of 1..10 elements", f"{ptr}/elements")
                return
            for j, item in enumerate(elements):
                if isinstance(item, dict) and item.get("type") == "image":
                    if not item.get("alt_text"):
                        self.err("must provide alt_text", f"{ptr}/elements/{j}")
                else:
                    self.text(item, f"{ptr}/elements/{j}")
        elif kind == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 25:
                self.err("must provide an array of 1..25 elements", f"{ptr}/elements")
                return
            action_ids: set[str] = set()
            for j, item in enumerate(elements):
                self.element(item, f"{ptr}/elements/{j}", action_ids)
        elif kind == "image":
            if not block.get("image_url") and not block.get("slack_file"):
                self.err("must provide image_url or slack_file", ptr)
            if not isinstance(block.get("alt_text"), str) or not block["alt_text"]:
                self.err("must provide a string", f"{ptr}/alt_text")
        elif kind == "rich_text" and not isinstance(block.get("elements"), list):
            self.err("must provide an array", f"{ptr}/elements")

    def element(self, element: Any, ptr: str, action_ids: set[str]) -> None:
        if not isinstance(element, dict):
            self.err("must provide an object", ptr)
            return
        kind = element.get("type")
        if kind not in ELEMENT_TYPES:
            self.err(f"unsupported type: {kind}", f"{ptr}/type")
            return
        action_id = element.get("action_id")
        if action_id is not None:
            if not isinstance(action_id, str) or not action_id or len(action_id) > 255:
                self.err("must be a string of 1..255 characters", f"{ptr}/action_id")
            elif action_id in action_ids:
                self.err(f"duplicate action_id: {action_id}", f"{ptr}/action_id")
            else:
                action_ids.add(action_id)
        if kind == "button":
            for key in set(element) - BUTTON_FIELDS:
                self.err(f"invalid additional property: {key}", ptr)
            self.text(element.get("text"), f"{ptr}/text", plain_only=True, max_len=75)
            value = element.get("value")
            if value is not None and (not isinstance(value, str) or len(value) > 2000):
                self.err("must be a string of at most 2000 characters", f"{ptr}/value")
            url = element.get("url")
            if url is not None and (not isinstance(url, str) or len(url) > 3000):
                self.err("must be a string of at most 3000 characters", f"{ptr}/url")
            if element.get("style") not in (None, "primary", "danger"):
                self.err("must be one of [primary, danger]", f"{ptr}/style")


def block_errors(blocks: Any, limit: int = 50, pointer: str = "/blocks") -> list[str]:
    check = _BlockCheck()
    check.blocks(blocks, pointer, limit)
    return check.errors


def view_errors(view: Any) -> list[str]:
    check = _BlockCheck()
    if not isinstance(view, dict):
        check.err("must provide an object", "/view")
        return check.errors
    if view.get("type") not in ("modal", "home"):
        check.err("must be one of [modal, home]", "/view/type")
    if view.get("type") == "modal":
        check.text(view.get("title"), "/view/title", plain_only=True, max_len=24)
        for key in ("submit", "close"):
            if key in view:
                check.text(view[key], f"/view/{key}", plain_only=True, max_len=24)
    for key, most in (("private_metadata", 3000), ("callback_id", 255), ("external_id", 255)):
        if key in view and (not isinstance(view[key], str) or len(view[key]) > most):
            check.err(f"must be a string of at most {most} characters", f"/view/{key}")
    check.blocks(view.get("blocks"), "/view/blocks", 100)
    return check.errors


def rendered(message: dict[str, Any]) -> str:
    """What a phone shows for a message: the visible text of its blocks (sections, fields, headers, context,
    markdown, rich text, button labels), or its `text` when it has no blocks (`text` is then only the
    notification)."""
    parts: list[str] = []

    def text_of(obj: Any) -> None:
        if isinstance(obj, dict) and isinstance(obj.get("text"), str):
            parts.append(obj["text"])

    def rich(elements: Iterable[Any]) -> None:
        for item in elements:
            if not isinstance(item, dict):
                continue
            if item.get("type") == "text":
                parts.append(item.get("text", ""))
            elif item.get("type") == "user":
                parts.append(f"<@{item.get('user_id')}>")
            elif item.get("type") == "link":
                parts.append(item.get("text") or item.get("url", ""))
            rich(item.get("elements") or [])

    blocks = message.get("blocks") or []
    for block in blocks:
        kind = block.get("type")
        if kind in ("section", "header"):
            text_of(block.get("text"))
            for item in block.get("fields") or []:
                text_of(item)
            accessory = block.get("accessory") or {}
            text_of(accessory.get("text"))
        elif kind == "context":
            for item in block.get("elements") or []:
                text_of(item)
        elif kind == "markdown":
            parts.append(block.get("text", ""))
        elif kind == "actions":
            for item in block.get("elements") or []:
                text_of(item.get("text"))
        elif kind == "rich_text":
            rich(block.get("elements") or [])
    if not blocks:
        parts.append(message.get("text", ""))
    return "\n".join(p for p in parts if p)


# ------------------------------------------------------------------------------------------------ the fake


class FakeSlack:
    """A Slack workspace with one app installed (its bot `bot_user_id` / `bot_id`, token `token`)."""

    def __init__(self, *, token: str = BOT_TOKEN, team_id: str = TEAM_ID, team_name: str = "Acme",
                 team_domain: str = TEAM_DOMAIN, app_id: str = APP_ID, bot_user_id: str = BOT_USER_ID,
                 bot_id: str = BOT_ID, bot_name: str = BOT_NAME, signing_secret: str = SIGNING_SECRET,
                 trigger_ttl: float | None = 3.0) -> None:
        self.token, self.team_id, self.team_name, self.team_domain = token, team_id, team_name, team_domain
        self.app_id, self.bot_user_id, self.bot_id, self.bot_name = app_id, bot_user_id, bot_id, bot_name
        self.signing_secret = signing_secret
        self.trigger_ttl = trigger_ttl
        self.users: dict[str, dict[str, Any]] = {}
        self.channels: dict[str, Channel] = {}
        self.calls: list[Call] = []
        self.ephemerals: list[dict[str, Any]] = []
        self.views: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []  # posts to response URLs: {"url", "body", "status"}
        self.problems: list[str] = []
        self._revoked: set[str] = set()
        self._used_triggers: set[str] = set()
        self._modes: dict[str, deque[_Mode]] = {}
        self._hooks: dict[str, _Hook] = {}
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.add_user(bot_user_id, bot_name, real_name="Honk", is_bot=True)

    # ------------------------------------------------------------------------------------ lifecycle

    def start(self) -> FakeSlack:
        fake = self

        class Handler(_Handler):
            slack = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def root(self) -> str:
        assert self._server is not None, "start the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        """The Web API root, like `https://slack.com/api/`: `SLACK_API_URL`, or `base_url=` for the SDK."""
        return self.root + "/api/"

    def env(self) -> dict[str, str]:
        return {"SLACK_API_URL": self.url, "SLACK_BOT_TOKEN": self.token,
                "SLACK_SIGNING_SECRET": self.signing_secret}

    # ------------------------------------------------------------------------------------ the workspace

    def add_user(self, id: str, name: str, *, real_name: str | None = None, tz: str = "Europe/London",
                 tz_offset: int = 0, email: str | None = None, is_bot: bool = False, is_admin: bool = False,
                 deleted: bool = False, display_name: str = "") -> dict[str, Any]:
        """A member of the workspace, in the shape `users.info` answers."""
        real = real_name if real_name is not None else name.title()
        profile: dict[str, Any] = {"real_name": real, "display_name": display_name, "real_name_normalized": real,
                                   "display_name_normalized": display_name, "team": self.team_id,
                                   "image_72": f"https://avatars.slack-edge.com/{id}_72.png"}
        if email:
            profile["email"] = email
        if is_bot:
            profile.update(bot_id=self.bot_id if id == self.bot_user_id else "B" + id[1:], api_app_id=self.app_id)
        user = {"id": id, "team_id": self.team_id, "name": name, "deleted": deleted, "color": "9f69e7",
                "real_name": real, "tz": tz, "tz_label": tz, "tz_offset": tz_offset, "profile": profile,
                "is_admin": is_admin, "is_owner": False, "is_primary_owner": False, "is_restricted": False,
                "is_ultra_restricted": False, "is_bot": is_bot, "is_app_user": False,
                "updated": int(time.time()), "has_2fa": False}
        with self._lock:
            self.users[id] = user
        return copy.deepcopy(user)

    def add_channel(self, id: str, name: str, *, members: Iterable[str] | None = None, bot_member: bool = True,
                    private: bool = False, archived: bool = False) -> str:
        """A channel (`C…`, or `G…`/`private=True`). `members=None` means everyone; the bot is in it unless
        `bot_member=False` (then posting answers `not_in_channel`)."""
        with self._lock:
            self.channels[id] = Channel(id, name, is_private=private or id.startswith("G"),
                                        members=None if members is None else set(members), bot_member=bot_member,
                                        archived=archived)
        return id

    def im(self, user: str) -> str:
        """The direct-message channel (`D…`) between `user` and the bot, opened if need be."""
        with self._lock:
            for channel in self.channels.values():
                if channel.is_im and channel.im_user == user:
                    return channel.id
            if user not in self.users:
                raise SlackError("user_not_found")
            cid = "D" + user[1:]
            self.channels[cid] = Channel(cid, cid, is_im=True, im_user=user, members={user, self.bot_user_id})
            return cid

    # ------------------------------------------------------------------------------------ people acting

    def user_posts(self, channel: str, user: str, text: str, *, thread_ts: str | None = None,
                   mention: bool = False) -> dict[str, Any]:
        """`user` writes `text` (in the thread `thread_ts`): the message is stored, and the event Slack would
        send is returned: `app_mention` with `mention=True` (the mention is put in front), else `message`.
        In a direct message (`D…`) Slack sends no `app_mention`, only the `message` (channel_type im)."""
        ts = new_ts()
        with self._lock:
            ch = self._channel(channel)
            mention = mention and not ch.is_im
            if mention and f"<@{self.bot_user_id}>" not in text:
                text = f"<@{self.bot_user_id}> {text}"
            parent_user = ch.messages[thread_ts].get("user") if thread_ts and thread_ts in ch.messages else None
            event = ev.message(text, user, ch.id, ts=ts, thread_ts=thread_ts, parent_user_id=parent_user,
                               team=self.team_id)
            stored = {k: v for k, v in event.items() if k not in ("channel", "event_ts", "channel_type")}
            self._store(ch, stored)
        if mention:
            return ev.app_mention(text, user, ch.id, ts=ts, thread_ts=thread_ts, bot_user_id=self.bot_user_id,
                                  team=self.team_id)
        return event

    def user_edits(self, channel: str, ts: str, text: str) -> dict[str, Any]:
        """The author of message `ts` edits it; returns the `message_changed` event."""
        with self._lock:
            ch = self._channel(channel)
            msg = ch.messages[ts]
            previous = msg["text"]
            event = ev.message_changed(ch.id, ts, text, msg["user"], previous_text=previous,
                                       thread_ts=msg.get("thread_ts") if msg.get("thread_ts") != ts else None,
                                       team=self.team_id)
            msg.update(text=text, blocks=event["message"]["blocks"], edited=event["message"]["edited"])
        return event

    def user_deletes(self, channel: str, ts: str) -> dict[str, Any]:
        """The author of message `ts` deletes it; returns the `message_deleted` event."""
        with self._lock:
            ch = self._channel(channel)
            msg = ch.messages[ts]
            event = ev.message_deleted(ch.id, ts, msg["user"], previous_text=msg["text"],
                                       thread_ts=msg.get("thread_ts") if msg.get("thread_ts") != ts else None,
                                       team=self.team_id)
            self._delete(ch, ts)
        return event

    def response_url(self, channel: str, user: str, message_ts: str | None = None, kind: str = "commands") -> str:
        """A response URL served by the fake, for a command (`kind="commands"`) or an action on a message."""
        path = f"/hooks/{kind}/{self.team_id}/{secrets.randbelow(10**12)}/{secrets.token_urlsafe(18)}"
        with self._lock:
            self._hooks[path] = _Hook(channel, user, message_ts)
        return self.root + path

    def command(self, text: str, user: str, channel: str, *, command: str = "/honk", **kwargs: Any
                ) -> SignedRequest:
        """`user` types `/honk text` in `channel`: the signed request, with a response URL the fake serves."""
        ch = self._channel(channel)
        user_name = self.users.get(user, {}).get("name", "")
        return ev.slash_command(text, user, ch.id, command=command, user_name=user_name,
                                channel_name="directmessage" if ch.is_im else ch.name, team_id=self.team_id,
                                team_domain=self.team_domain, api_app_id=self.app_id,
                                response_url=self.response_url(ch.id, user), secret=self.signing_secret,
                                **kwargs)

    def click(self, channel: str, ts: str, action_id: str, user: str, **kwargs: Any) -> SignedRequest:
        """`user` clicks the button `action_id` in message `ts`: the signed `block_actions` request, built from
        the message as it stands. Fails the test if the message has no such button."""
        with self._lock:
            ch = self._channel(channel)
            msg = copy.deepcopy(ch.messages.get(ts))
        assert msg is not None, f"no message {ts} in {channel}"
        for block in msg.get("blocks") or []:
            elements = list(block.get("elements") or []) if block.get("type") == "actions" else []
            if block.get("accessory"):
                elements.append(block["accessory"])
            for element in elements:
                if element.get("action_id") == action_id:
                    thread_ts = msg.get("thread_ts")
                    user_name = self.users.get(user, {}).get("name", "")
                    return ev.block_action(action_id, element.get("value", ""), user, ch.id, ts,
                                           block_id=block.get("block_id", ""), message=msg,
                                           thread_ts=thread_ts, button_text=element["text"]["text"],
                                           user_name=user_name, team_id=self.team_id, team_domain=self.team_domain,
                                           api_app_id=self.app_id,
                                           response_url=self.response_url(ch.id, user, ts, kind="actions"),
                                           secret=self.signing_secret, **kwargs)
        raise AssertionError(f"message {ts} in {channel} has no button {action_id!r}: {rendered(msg)!r}")

    def trigger_id(self) -> str:
        return new_trigger_id()

    # ------------------------------------------------------------------------------------ modes

    def rate_limit(self, method: str = "*", times: int = 1, retry_after: int = 1) -> None:
        """The next `times` calls to `method` ("*": any) answer HTTP 429 with `Retry-After: retry_after` and
        `{"ok": false, "error": "ratelimited"}`."""
        with self._lock:
            self._modes.setdefault(method, deque()).append(_Mode("rate_limit", times, retry_after=retry_after))

    def fail(self, method: str = "*", times: int = 1, status: int = 500, error: str = "internal_error") -> None:
        """The next `times` calls to `method` answer `status` with `{"ok": false, "error": error}`; with
        `status=200` this scripts any Slack error (`fail("chat.update", status=200, error="edit_window_closed")`)."""
        with self._lock:
            self._modes.setdefault(method, deque()).append(_Mode("fail", times, status=status, error=error))

    def revoke(self, token: str | None = None) -> None:
        """The app was uninstalled: its token now answers `token_revoked`."""
        with self._lock:
            self._revoked.add(token or self.token)

    # ------------------------------------------------------------------------------------ inspection

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def message(self, channel: str, ts: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._channel(channel).messages[ts])

    def messages(self, channel: str) -> list[dict[str, Any]]:
        """The channel's history as a phone shows it, oldest first: top-level messages and broadcast replies."""
        with self._lock:
            ch = self._channel(channel)
            return [copy.deepcopy(m) for ts, m in sorted(ch.messages.items())
                    if m.get("thread_ts") in (None, ts) or m.get("subtype") == "thread_broadcast"]

    def thread(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """The thread under message `ts` as a phone shows it: the parent, then the replies, oldest first (edits
        applied, deleted ones gone). Each message has `text` and `blocks`; see `rendered`."""
        with self._lock:
            ch = self._channel(channel)
            if ts not in ch.messages:
                return []
            return [copy.deepcopy(m) for t, m in sorted(ch.messages.items())
                    if t == ts or m.get("thread_ts") == ts]

    def ephemeral(self, user: str | None = None, channel: str | None = None) -> list[dict[str, Any]]:
        """Ephemeral messages (`chat.postEphemeral` and ephemeral response-URL replies), oldest first."""
        with self._lock:
            return [copy.deepcopy(e) for e in self.ephemerals
                    if (user is None or e["user"] == user) and (channel is None or e["channel"] == channel)]

    rendered = staticmethod(rendered)

    # ------------------------------------------------------------------------------------ internals

    def _channel(self, ref: str, *, names: bool = False, users: bool = False) -> Channel:
        """A channel by id; with `names`, also `#name`/`name`; with `users`, a user id means the DM."""
        if ref in self.channels:
            return self.channels[ref]
        if names:
            for channel in self.channels.values():
                if not channel.is_im and channel.name == ref.lstrip("#"):
                    return channel
        if users and ref in self.users:
            return self.channels[self.im(ref)]
        raise SlackError("channel_not_found")

    def _store(self, ch: Channel, msg: dict[str, Any]) -> None:
        thread_ts = msg.get("thread_ts")
        if thread_ts:
            parent = ch.messages.get(thread_ts)
            if parent is None or parent.get("thread_ts") not in (None, thread_ts):
                why = "names no message" if parent is None else "names a reply; use the parent's ts"
                self.problems.append(f"{ch.id}: a reply with thread_ts {thread_ts!r} {why}, so it is not shown")
                ch.orphans.append(msg)
                return
            parent["thread_ts"] = thread_ts
            parent["reply_count"] = parent.get("reply_count", 0) + 1
            users = parent.setdefault("reply_users", [])
            if msg.get("user") and msg["user"] not in users:
                users.append(msg["user"])
            parent["reply_users_count"] = len(users)
            parent["latest_reply"] = msg["ts"]
        ch.messages[msg["ts"]] = msg

    def _delete(self, ch: Channel, ts: str) -> None:
        msg = ch.messages[ts]
        if msg.get("reply_count"):
            # A parent with replies stays as a tombstone, so the thread can still be read.
            ch.messages[ts] = {"type": "message", "subtype": "tombstone", "text": "This message was deleted.",
                               "ts": ts, "thread_ts": ts, "hidden": True, "user": "USLACKBOT",
                               **{k: msg[k] for k in ("reply_count", "reply_users", "latest_reply") if k in msg}}
            return
        del ch.messages[ts]
        parent = ch.messages.get(msg.get("thread_ts") or "")
        if parent is not None and parent is not msg:
            parent["reply_count"] = max(0, parent.get("reply_count", 1) - 1)

    def _bot_message(self, text: str, blocks: list[dict[str, Any]] | None, attachments: Any,
                     thread_ts: str | None) -> dict[str, Any]:
        msg: dict[str, Any] = {"user": self.bot_user_id, "type": "message", "ts": new_ts(), "bot_id": self.bot_id,
                               "app_id": self.app_id, "text": text, "team": self.team_id,
                               "bot_profile": {"id": self.bot_id, "app_id": self.app_id, "name": self.bot_name,
                                               "deleted": False, "team_id": self.team_id,
                                               "updated": int(time.time())}}
        if blocks:
            msg["blocks"] = _with_block_ids(blocks)
        if attachments:
            msg["attachments"] = attachments
        if thread_ts:
            msg["thread_ts"] = thread_ts
            msg["parent_user_id"] = self.bot_user_id
        return msg

    def _content(self, args: dict[str, Any], method: str, *, required: bool = True
                 ) -> tuple[str | None, list[dict[str, Any]] | None, Any]:
        """`text`, `blocks` (parsed and checked) and `attachments` from a chat.* call."""
        blocks = _json_arg(args, "blocks")
        attachments = _json_arg(args, "attachments")
        if blocks is not None:
            if not isinstance(blocks, list):
                raise SlackError("invalid_blocks_format")
            errors = block_errors(blocks)
            if errors:
                raise SlackError("invalid_blocks", errors=errors,
                                 response_metadata={"messages": [f"[ERROR] {e}" for e in errors]})
        text = args.get("text")
        if text is not None and not isinstance(text, str):
            text = str(text)
        if required and not text and not blocks and not attachments:
            raise SlackError("no_text")
        if blocks and not text:
            self.problems.append(f"{method} with blocks and no text: notifications will say "
                                 "\"This content can't be displayed\"")
        if text and len(text) > MAX_TEXT:
            self.problems.append(f"{method}: text of {len(text)} characters truncated to {MAX_TEXT}")
            text = text[:MAX_TEXT]
        return text, blocks, attachments

    # ------------------------------------------------------------------------------------ request handling

    def handle(self, method: str, http_method: str, args: dict[str, Any], token: str | None,
               content_type: str, warnings: list[str]) -> tuple[int, dict[str, str], dict[str, Any]]:
        call = Call(method, copy.deepcopy(args), token, http_method, content_type)
        headers = {"X-OAuth-Scopes": SCOPES}
        with self._lock:
            self.calls.append(call)
            mode = self._take_mode(method)
            try:
                if mode is not None and mode.kind == "rate_limit":
                    headers["Retry-After"] = str(mode.retry_after)
                    raise SlackError("ratelimited", status=429)
                if mode is not None:
                    raise SlackError(mode.error, status=mode.status)
                handler = getattr(self, "_m_" + method.replace(".", "_"), None)
                if handler is None:
                    raise SlackError("unknown_method", req_method=method)
                if token is None:
                    raise SlackError("not_authed")
                if token in self._revoked:
                    raise SlackError("token_revoked")
                if token != self.token:
                    raise SlackError("invalid_auth")
                body = {"ok": True, **handler(args)}
                status = 200
            except SlackError as e:
                status, body = e.status, {"ok": False, "error": e.error, **e.extra}
            if warnings:
                body["warning"] = ",".join(warnings)
                body.setdefault("response_metadata", {})["warnings"] = warnings
            call.status, call.response = status, copy.deepcopy(body)
        return status, headers, body

    def _take_mode(self, method: str) -> _Mode | None:
        for key in (method, "*"):
            queue = self._modes.get(key)
            if queue:
                mode = queue[0]
                mode.remaining -= 1
                if mode.remaining <= 0:
                    queue.popleft()
                return mode
        return None

    def handle_hook(self, path: str, body: bytes) -> tuple[int, str]:
        with self._lock:
            hook = self._hooks.get(path)
            try:
                payload = json.loads(body or b"{}")
            except ValueError:
                payload = None
            record = {"url": self.root + path, "body": payload, "status": 0}
            self.responses.append(record)
            status, answer = self._answer_hook(hook, payload)
            record["status"] = status
            return status, answer

    def _answer_hook(self, hook: _Hook | None, payload: Any) -> tuple[int, str]:
        if hook is None:
            return 404, "expired_url"
        if hook.uses >= RESPONSE_URL_USES:
            return 404, "used_url"
        if not isinstance(payload, dict):
            return 400, "invalid_payload"
        hook.uses += 1
        ch = self.channels.get(hook.channel)
        if ch is None:
            return 404, "channel_not_found"
        if payload.get("delete_original"):
            if hook.message_ts and hook.message_ts in ch.messages:
                self._delete(ch, hook.message_ts)
            return 200, "ok"
        try:
            text, blocks, attachments = self._content(payload, "response_url")
        except SlackError as e:
            return 400, e.error
        if payload.get("replace_original") and hook.message_ts in ch.messages:
            msg = ch.messages[str(hook.message_ts)]
            msg["text"] = text or ""
            if blocks is not None:
                msg["blocks"] = _with_block_ids(blocks)
            else:
                msg.pop("blocks", None)
            msg["edited"] = {"user": self.bot_user_id, "ts": new_ts()}
        elif payload.get("response_type") == "in_channel":
            self._store(ch, self._bot_message(text or "", blocks, attachments, payload.get("thread_ts")))
        else:
            self.ephemerals.append({"channel": ch.id, "user": hook.user, "message_ts": new_ts(), "text": text or "",
                                    "blocks": _with_block_ids(blocks or []), "thread_ts": payload.get("thread_ts")})
        return 200, "ok"

    # ------------------------------------------------------------------------------------ Web API methods

    def _m_auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"url": f"https://{self.team_domain}.slack.com/", "team": self.team_name, "user": self.bot_name,
                "team_id": self.team_id, "user_id": self.bot_user_id, "bot_id": self.bot_id,
                "is_enterprise_install": False}

    def _m_users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(str(args.get("user") or ""))
        if user is None:
            raise SlackError("user_not_found")
        user = copy.deepcopy(user)
        if _truthy(args.get("include_locale")):
            user["locale"] = "en-US"
        return {"user": user}

    def _m_conversations_open(self, args: dict[str, Any]) -> dict[str, Any]:
        users = [u for u in str(args.get("users") or "").split(",") if u]
        if len(users) != 1:
            raise SlackError("users_list_not_supplied" if not users else "not_supported")
        cid = self.im(users[0])
        return {"no_op": True, "already_open": True, "channel": {"id": cid}}

    def _m_chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        ch = self._channel(str(args.get("channel") or ""), names=True, users=True)
        if ch.archived:
            raise SlackError("is_archived")
        if not ch.bot_member:
            raise SlackError("not_in_channel")
        text, blocks, attachments = self._content(args, "chat.postMessage")
        thread_ts = args.get("thread_ts")
        msg = self._bot_message(text or "", blocks, attachments, str(thread_ts) if thread_ts else None)
        if thread_ts and _truthy(args.get("reply_broadcast")):
            msg["subtype"] = "thread_broadcast"
        self._store(ch, msg)
        return {"channel": ch.id, "ts": msg["ts"], "message": copy.deepcopy(msg)}

    def _m_chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        ch = self._channel(str(args.get("channel") or ""))
        msg = ch.messages.get(str(args.get("ts") or ""))
        if msg is None or msg.get("subtype") == "tombstone":
            raise SlackError("message_not_found")
        if msg.get("bot_id") != self.bot_id:
            raise SlackError("cant_update_message")
        text, blocks, attachments = self._content(args, "chat.update", required=False)
        if "text" not in args and "blocks" not in args and "attachments" not in args:
            raise SlackError("no_text")
        if "text" in args:
            msg["text"] = text or ""
        if blocks is not None:
            if blocks:
                msg["blocks"] = _with_block_ids(blocks)
            else:
                msg.pop("blocks", None)
        if attachments is not None:
            msg["attachments"] = attachments
        msg["edited"] = {"user": self.bot_user_id, "ts": new_ts()}
        return {"channel": ch.id, "ts": msg["ts"], "text": msg["text"], "message": copy.deepcopy(msg)}

    def _m_chat_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        ch = self._channel(str(args.get("channel") or ""))
        ts = str(args.get("ts") or "")
        msg = ch.messages.get(ts)
        if msg is None:
            raise SlackError("message_not_found")
        if msg.get("bot_id") != self.bot_id:
            raise SlackError("cant_delete_message")
        self._delete(ch, ts)
        return {"channel": ch.id, "ts": ts}

    def _m_chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        ch = self._channel(str(args.get("channel") or ""), names=True)
        user = str(args.get("user") or "")
        if ch.archived:
            raise SlackError("is_archived")
        if not ch.bot_member:
            raise SlackError("not_in_channel")
        if user not in self.users or not ch.has_member(user):
            raise SlackError("user_not_in_channel")
        text, blocks, _ = self._content(args, "chat.postEphemeral")
        ts = new_ts()
        self.ephemerals.append({"channel": ch.id, "user": user, "message_ts": ts, "text": text or "",
                                "blocks": _with_block_ids(blocks or []), "thread_ts": args.get("thread_ts")})
        return {"message_ts": ts}

    def _m_chat_getPermalink(self, args: dict[str, Any]) -> dict[str, Any]:
        ch = self._channel(str(args.get("channel") or ""))
        ts = str(args.get("message_ts") or "")
        msg = ch.messages.get(ts)
        if msg is None:
            raise SlackError("message_not_found")
        link = f"https://{self.team_domain}.slack.com/archives/{ch.id}/p{ts.replace('.', '')}"
        if msg.get("thread_ts") not in (None, ts):
            link += f"?thread_ts={msg['thread_ts']}&cid={ch.id}"
        return {"channel": ch.id, "permalink": link}

    def _m_conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        ch = self._channel(str(args.get("channel") or ""))
        if not ch.bot_member:
            raise SlackError("not_in_channel")
        ts = str(args.get("ts") or "")
        if ts not in ch.messages:
            raise SlackError("thread_not_found")
        parent = ch.messages[ts]
        root = parent.get("thread_ts") or ts
        return {"messages": self.thread(ch.id, root), "has_more": False,
                "response_metadata": {"next_cursor": ""}}

    def _m_views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        trigger = str(args.get("trigger_id") or args.get("interactivity_pointer") or "")
        if not trigger:
            raise SlackError("invalid_arguments", response_metadata={"messages": ["[ERROR] missing required "
                                                                                  "field: trigger_id"]})
        issued = ev.trigger_issued(trigger)
        if issued is None or trigger.count(".") != 2:
            raise SlackError("invalid_trigger_id")
        if trigger in self._used_triggers:
            raise SlackError("exchanged_trigger_id")
        if self.trigger_ttl is not None and time.time() - issued > self.trigger_ttl + 1:
            raise SlackError("expired_trigger_id")
        view = _json_arg(args, "view")
        errors = view_errors(view)
        if errors:
            raise SlackError("invalid_arguments", response_metadata={"messages": [f"[ERROR] {e}" for e in errors]})
        self._used_triggers.add(trigger)
        view_id = "V" + secrets.token_hex(5).upper()
        opened = {"id": view_id, "team_id": self.team_id, "type": view["type"], "title": view.get("title"),
                  "blocks": _with_block_ids(view.get("blocks") or []), "close": view.get("close"),
                  "submit": view.get("submit"), "private_metadata": view.get("private_metadata", ""),
                  "callback_id": view.get("callback_id", ""), "state": {"values": {}},
                  "hash": f"{int(time.time())}.{secrets.token_hex(4)}", "clear_on_close": False,
                  "notify_on_close": False, "root_view_id": view_id, "previous_view_id": None,
                  "app_id": self.app_id, "external_id": view.get("external_id", ""),
                  "app_installed_team_id": self.team_id, "bot_id": self.bot_id}
        self.views.append(opened)
        return {"view": copy.deepcopy(opened)}


def _with_block_ids(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Slack gives every block without a `block_id` a random one."""
    out = copy.deepcopy(blocks)
    for block in out:
        block.setdefault("block_id", secrets.token_urlsafe(3))
    return out


def _json_arg(args: dict[str, Any], name: str) -> Any:
    """A JSON-valued argument: as sent in a JSON body, or a JSON string in a form (`blocks=[...]`)."""
    value = args.get(name)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise SlackError(f"invalid_{name}_format" if name == "blocks" else "invalid_arguments") from None
    return value


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("1", "true")) or value == 1


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    slack: FakeSlack

    def log_message(self, *_: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, http_method: str) -> None:
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if url.path.startswith("/hooks/") and http_method == "POST":
            status, text = self.slack.handle_hook(url.path, raw)
            self._send(status, {"Content-Type": "text/html"}, text.encode())
            return
        if not url.path.startswith("/api/"):
            self._send(404, {"Content-Type": "text/plain"}, b"not found")
            return
        method = url.path[len("/api/"):].strip("/")
        content_type = self.headers.get("Content-Type", "")
        args: dict[str, Any] = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        args.pop("token", None)  # Slack no longer reads tokens from the query string
        token: str | None = None
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            token = auth[7:].strip() or None
        warnings: list[str] = []
        error: str | None = None
        if http_method == "POST" and raw:
            mime = content_type.split(";", 1)[0].strip().lower()
            if mime == "application/json":
                if "charset" not in content_type.lower():
                    warnings.append("missing_charset")
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                if isinstance(body, dict):
                    body.pop("token", None)  # a JSON body's token is not read: it must be in the header
                    args.update(body)
                else:
                    error = "invalid_json"
            elif mime in ("application/x-www-form-urlencoded", "text/plain", ""):
                if not mime:
                    error = "missing_post_type"
                form = {k: v[-1] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
                token = token or form.pop("token", None)
                form.pop("token", None)
                args.update(form)
            else:
                error = "invalid_post_type"
        if error is not None:
            body_out = {"ok": False, "error": error}
            with self.slack._lock:
                self.slack.calls.append(Call(method, args, token, http_method, content_type, 200, body_out))
            self._send(200, {"Content-Type": "application/json; charset=utf-8"}, json.dumps(body_out).encode())
            return
        status, headers, body_out = self.slack.handle(method, http_method, args, token, content_type, warnings)
        headers["Content-Type"] = "application/json; charset=utf-8"
        self._send(status, headers, json.dumps(body_out).encode())

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
