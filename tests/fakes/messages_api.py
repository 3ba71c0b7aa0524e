"""A scripted stand-in for the Anthropic Messages API: a real HTTP server on 127.0.0.1.

Point the official SDK at it (`base_url=fake.url`, or `ANTHROPIC_BASE_URL` for a subprocess) and
script its replies in order. It answers JSON or server-sent events (when the request says
`"stream": true`) and checks requests the way the real API does, answering 400 for:
- `temperature`, `top_p` or `top_k`; a forced `tool_choice`; `thinking` other than adaptive;
- more than four cache breakpoints, or one on a thinking block; unknown fields in content blocks;
- a thinking block altered (its signature no longer matches) or dropped from a reply sent back;
- `tool_result` blocks that are not first in the user turn after a `tool_use`, or whose ids do not
  match that turn's `tool_use` ids; a conversation ending with an assistant turn that was no
  `pause_turn` (prefill); roles that do not alternate (stricter than the API, to catch bugs).
Usage is simulated, prompt caching included: a breakpoint's prefix is written to the cache and read
back when a later request has the same prefix at one of its breakpoints.

In-process: `with FakeMessagesAPI(end("done")) as fake: ...; fake.script(...); fake.bodies`.
From another process: `POST /_script` with a reply or a list of replies as JSON, `GET /_requests`,
`POST /_reset`. A reply may also be a callable taking the request body (in-process only), e.g.
`when_result_contains("FAILED", then=bash("pytest"), otherwise=end("fixed"))`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import math
import threading
from collections import deque
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]]

EDITOR = "str_replace_based_edit_tool"
SIGNING_KEY = b"fake-messages-api"
FORBIDDEN_PARAMS = ("temperature", "top_p", "top_k")
BLOCK_FIELDS = {
    "text": {"type", "text", "cache_control", "citations"},
    "thinking": {"type", "thinking", "signature"},
    "redacted_thinking": {"type", "data"},
    "tool_use": {"type", "id", "name", "input", "cache_control", "caller"},
    "tool_result": {"type", "tool_use_id", "content", "is_error", "cache_control"},
    "image": {"type", "source", "cache_control"},
    "document": {"type", "source", "title", "context", "citations", "cache_control"},
}
USER_BLOCKS = {"text", "tool_result", "image", "document"}
ASSISTANT_BLOCKS = {"text", "thinking", "redacted_thinking", "tool_use"}


# Reply builders. Tool-use ids are assigned when a reply is sent, unless given.

def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def thinking(value: str = "") -> dict[str, Any]:
    """A thinking block; the fake signs it when sending and checks the signature when it comes back."""
    return {"type": "thinking", "thinking": value}


def tool_use(name: str, tool_input: dict[str, Any], id: str | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_use", "name": name, "input": tool_input}
    if id:
        block["id"] = id
    return block


def bash(command: str, id: str | None = None) -> dict[str, Any]:
    return tool_use("bash", {"command": command}, id)


def edit(command: str, path: str, id: str | None = None, **args: Any) -> dict[str, Any]:
    return tool_use(EDITOR, {"command": command, "path": path, **args}, id)


def verify(checks: list[str] | None = None, id: str | None = None) -> dict[str, Any]:
    return tool_use("verify", {} if checks is None else {"checks": checks}, id)


def verdict(decision: str = "approve", reason: str = "The diff does what was asked and nothing else."
            ) -> dict[str, Any]:
    """The judge's answer."""
    return reply(tool_use("verdict", {"decision": decision, "reason": reason}))


def _is_judge(body: Any) -> bool:
    tools = body.get("tools") if isinstance(body, dict) else None
    return isinstance(tools, list) and [t.get("name") for t in tools if isinstance(t, dict)] == ["verdict"]


def partial_tool_use(name: str, partial_json: str, id: str | None = None) -> dict[str, Any]:
    """A tool call cut off mid-way (use inside `cut_off`): its input JSON is incomplete."""
    block = tool_use(name, {}, id)
    block["partial_json"] = partial_json
    return block


def reply(*blocks: dict[str, Any], stop_reason: str | None = None, stop_details: dict[str, Any] | None = None,
          usage: dict[str, int] | None = None) -> dict[str, Any]:
    """A model reply; stop_reason defaults to tool_use when it calls a tool, else end_turn.
    `usage` overrides the simulated token counts."""
    out: dict[str, Any] = {"content": list(blocks)}
    if stop_reason:
        out["stop_reason"] = stop_reason
    if stop_details:
        out["stop_details"] = stop_details
    if usage:
        out["usage"] = usage
    return out


def end(value: str, *blocks: dict[str, Any]) -> dict[str, Any]:
    return reply(*blocks, text(value))


def cut_off(*blocks: dict[str, Any]) -> dict[str, Any]:
    return reply(*blocks, stop_reason="max_tokens")


def pause(*blocks: dict[str, Any]) -> dict[str, Any]:
    return reply(*blocks, stop_reason="pause_turn")


def refusal(category: str | None = "cyber", value: str = "") -> dict[str, Any]:
    blocks = [text(value)] if value else []
    return reply(*blocks, stop_reason="refusal",
                 stop_details={"type": "refusal", "category": category, "explanation": None})


def error(status: int = 529, type: str = "overloaded_error", message: str = "Overloaded",
          retry_after: float | None = None, mid_stream: bool = False) -> dict[str, Any]:
    """An API error. `mid_stream`: for streaming requests, fail after the stream has started."""
    return {"error": {"type": type, "message": message}, "status": status, "retry_after": retry_after,
            "mid_stream": mid_stream}


def last_tool_result(body: dict[str, Any]) -> str:
    """The text of the tool results in the request's last user turn."""
    texts = []
    for block in body["messages"][-1]["content"] if body["messages"] else []:
        if isinstance(block, dict) and block.get("type") == "tool_result":
            content = block.get("content", "")
            texts.append(content if isinstance(content, str) else
                         "".join(b.get("text", "") for b in content if isinstance(b, dict)))
    return "\n".join(texts)


def when_result_contains(needle: str, then: Reply, otherwise: Reply) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A policy: reply `then` when the last tool result contains `needle`, else `otherwise`."""
    def choose(body: dict[str, Any]) -> dict[str, Any]:
        chosen = then if needle in last_tool_result(body) else otherwise
        return chosen(body) if callable(chosen) else chosen
    return choose


class FakeMessagesAPI:
    def __init__(self, *replies: Reply, model: str = "claude-opus-5-5", validate: bool = True,
                 chunk: int = 24, judge_default: Reply | None = None, agent_default: Reply | None = None) -> None:
        self.model = model
        self.validate = validate
        self.chunk = chunk  # characters per streamed delta
        self.requests: list[dict[str, Any]] = []
        self._queue: deque[Reply] = deque(replies)
        # With a default (or a judge script), the judge's requests are answered apart from the agent's queue.
        self.judge_default = judge_default
        # With a default, the agent's requests beyond the script are answered by it: a callable that reads the
        # conversation serves any number of runs at once (a campaign's repositories), in any order.
        self.agent_default = agent_default
        self._judge: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._sent_thinking: dict[str, list[dict[str, Any]]] = {}  # reply key -> its thinking blocks
        self._paused: set[str] = set()  # keys of pause_turn replies, which may end a conversation
        self._cache: set[str] = set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle

    def start(self) -> FakeMessagesAPI:
        fake = self

        class Handler(_Handler):
            api = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="fake-messages-api", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeMessagesAPI:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def env(self) -> dict[str, str]:
        """Environment for a subprocess that should talk to this fake through the SDK."""
        return {"ANTHROPIC_BASE_URL": self.url, "ANTHROPIC_API_KEY": "sk-ant-fake-key-for-tests"}

    # Scripting and inspection

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._queue.extend(replies)

    def script_judge(self, *replies: Reply) -> None:
        """Replies for the judge's requests (those whose only tool is `verdict`), apart from the agent's."""
        with self._lock:
            self._judge.extend(replies)

    @property
    def judge_bodies(self) -> list[dict[str, Any]]:
        return [b for b in self.bodies if _is_judge(b)]

    @property
    def pending(self) -> int:
        return len(self._queue)

    @property
    def bodies(self) -> list[dict[str, Any]]:
        """Bodies of the /v1/messages requests received, rejected ones included."""
        return [r["body"] for r in self.requests if r["path"] == "/v1/messages"]

    @property
    def rejected(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == "/v1/messages" and r["status"] == 400]

    # Request handling (called from server threads)

    def handle_messages(self, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        with self._lock:
            record = {"method": "POST", "path": "/v1/messages", "headers": headers, "body": body,
                      "status": 200, "error": None}
            self.requests.append(record)
            try:
                problem = self._check(headers, body) if self.validate else None
            except (AttributeError, KeyError, TypeError) as exc:  # a shape the checks did not expect
                problem = f"malformed request: {exc!r}"
            queue, default = self._queue, self.agent_default
            if _is_judge(body) and (self._judge or self.judge_default is not None):
                queue, default = self._judge, self.judge_default  # the judge's own script, see `script_judge`
            if problem is None and not queue and default is None:
                problem = "fake Messages API: no scripted reply left"
            if problem is not None:
                record.update(status=400, error=problem)
                return 400, {}, _error_body("invalid_request_error", problem)
            scripted = queue.popleft() if queue else default
            assert scripted is not None
            spec = scripted(body) if callable(scripted) else scripted
            if "error" in spec:
                record.update(status=spec["status"], error=spec["error"]["message"])
                extra = {"retry-after": str(spec["retry_after"])} if spec.get("retry_after") is not None else {}
                if spec.get("mid_stream") and body.get("stream"):
                    return 200, {}, ("stream-error", spec)
                return spec["status"], extra, _error_body(spec["error"]["type"], spec["error"]["message"])
            message = self._message(body, spec)
            record["response"] = message
            if body.get("stream"):
                return 200, {}, ("stream", message)
            return 200, {}, message

    def _message(self, body: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
        content, partial = [], {}
        for block in spec.get("content", []):
            block = json.loads(json.dumps(block))
            if block["type"] == "thinking":
                block["signature"] = _sign(block["thinking"])
            if block["type"] == "tool_use":
                block.setdefault("id", f"toolu_fake{next(self._ids):04d}")
                if "partial_json" in block:
                    partial[len(content)] = block.pop("partial_json")
            content.append(block)
        has_tool = any(b["type"] == "tool_use" for b in content)
        stop = spec.get("stop_reason") or ("tool_use" if has_tool else "end_turn")
        key = _key(content)
        self._sent_thinking[key] = [b for b in content if b["type"] in ("thinking", "redacted_thinking")]
        if stop == "pause_turn":
            self._paused.add(key)
        usage = self._usage(body)
        usage["output_tokens"] = (body["max_tokens"] if stop == "max_tokens"
                                  else max(1, math.ceil(len(json.dumps(content)) / 4)))
        usage.update(spec.get("usage", {}))
        return {"id": f"msg_fake{next(self._ids):04d}", "type": "message", "role": "assistant",
                "model": body.get("model", self.model), "content": content, "stop_reason": stop,
                "stop_sequence": None, "stop_details": spec.get("stop_details"), "usage": usage,
                "_partial": partial}

    def _usage(self, body: dict[str, Any]) -> dict[str, int]:
        """Simulated prompt caching over the prefix tools -> system -> messages."""
        digest, tokens, points = hashlib.sha256(), 0, []
        for item, marked in _prefix_items(body):
            digest.update(item.encode())
            tokens += max(1, math.ceil(len(item) / 4))
            if marked:
                points.append((digest.hexdigest(), tokens))
        read = max((t for h, t in points if h in self._cache), default=0)
        written = points[-1][1] - read if points and points[-1][0] not in self._cache else 0
        self._cache.update(h for h, _ in points)
        return {"input_tokens": tokens - read - written, "cache_creation_input_tokens": written,
                "cache_read_input_tokens": read}

    def _check(self, headers: dict[str, str], body: Any) -> str | None:
        if "anthropic-version" not in headers:
            return "anthropic-version: header is required"
        if not isinstance(body, dict):
            return "request body must be a JSON object"
        for name in ("model", "max_tokens", "messages"):
            if name not in body:
                return f"{name}: Field required"
        for name in FORBIDDEN_PARAMS:
            if name in body:
                return f"`{name}` is not supported for this model; remove it from the request"
        choice = body.get("tool_choice")
        if choice is not None and choice.get("type") not in ("auto", "none"):
            return f"tool_choice.type {choice.get('type')!r} is not supported for this model; use auto"
        if "thinking" in body and body["thinking"].get("type") != "adaptive":
            return f'"thinking.type.{body["thinking"].get("type")}" is not supported for this model.'
        marks = sum(marked for _, marked in _prefix_items(body))
        if marks > 4:
            return f"A maximum of 4 blocks with cache_control may be provided. Found {marks}."
        return self._check_tools(body.get("tools", [])) or self._check_messages(body["messages"])

    @staticmethod
    def _check_tools(tools: list[dict[str, Any]]) -> str | None:
        names = [t.get("name") for t in tools]
        if len(names) != len(set(names)):
            return "tools: tool names must be unique"
        for tool in tools:
            kind = tool.get("type", "custom")
            if kind == "text_editor_20250728" and tool.get("name") != EDITOR:
                return f"tools: text_editor_20250728 must be named {EDITOR}"
            if kind == "bash_20250124" and tool.get("name") != "bash":
                return "tools: bash_20250124 must be named bash"
            if kind == "custom" and "input_schema" not in tool:
                return f"tools.{tool.get('name')}.input_schema: Field required"
        return None

    def _check_messages(self, messages: list[dict[str, Any]]) -> str | None:
        if not messages or messages[0].get("role") != "user":
            return "messages: the first message must use the user role"
        expected: set[str] = set()  # tool_use ids that the next user turn must answer
        for i, message in enumerate(messages):
            role, content = message.get("role"), message.get("content")
            if i and role == messages[i - 1].get("role"):
                return f"messages.{i}: roles must alternate between user and assistant"
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
            if not isinstance(blocks, list) or not blocks:
                return f"messages.{i}: content must be a non-empty string or list"
            allowed = USER_BLOCKS if role == "user" else ASSISTANT_BLOCKS
            for j, block in enumerate(blocks):
                kind = block.get("type")
                if kind not in allowed:
                    return f"messages.{i}.content.{j}: {kind!r} blocks are not allowed in a {role} message"
                extra = set(block) - BLOCK_FIELDS[kind]
                if extra:
                    return f"messages.{i}.content.{j}.{sorted(extra)[0]}: Extra inputs are not permitted"
                if kind == "thinking" and block.get("signature") != _sign(block.get("thinking", "")):
                    return f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
            if role == "user":
                results = [b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"]
                leading = list(itertools.takewhile(lambda b: b.get("type") == "tool_result", blocks))
                if len(leading) != len(results):
                    return (f"messages.{i}: tool_result blocks must come first in the user message, before "
                            "any other content")
                if set(results) - expected:
                    return (f"messages.{i}.content: unexpected `tool_use_id` found in `tool_result` blocks: "
                            f"{sorted(set(results) - expected)[0]}. Each `tool_result` block must have a "
                            "corresponding `tool_use` block in the previous message.")
                if expected - set(results):
                    return (f"messages.{i - 1}: `tool_use` ids were found without `tool_result` blocks "
                            f"immediately after: {', '.join(sorted(expected - set(results)))}. Each `tool_use` "
                            "block must have a corresponding `tool_result` block in the next message.")
                expected = set()
            else:
                expected = {b.get("id") for b in blocks if b.get("type") == "tool_use"}
                key = _key(blocks)
                sent = self._sent_thinking.get(key)
                kept = [_strip(b) for b in blocks if b.get("type") in ("thinking", "redacted_thinking")]
                if sent is not None and kept != sent:
                    return (f"messages.{i}: thinking blocks in an assistant message must be passed back "
                            "unchanged; one was altered, reordered or dropped")
                if i == len(messages) - 1 and key not in self._paused:
                    return "This model does not support assistant message prefill. The conversation must end " \
                           "with a user message."
        if expected:
            return (f"messages.{len(messages) - 1}: `tool_use` ids were found without `tool_result` blocks "
                    f"immediately after: {', '.join(sorted(expected))}")
        return None


class _Handler(BaseHTTPRequestHandler):
    api: FakeMessagesAPI
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes; don't wait on ACKs

    def log_message(self, *_: Any) -> None:  # keep test output quiet
        pass

    def _read_json(self) -> Any:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return raw.decode(errors="replace")

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", "req_fake")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/_requests":
            with self.api._lock:
                self._send_json(200, self.api.requests)
        elif self.path == "/_health":
            self._send_json(200, {"status": "ok", "pending": self.api.pending})
        else:
            self._send_json(404, _error_body("not_found_error", f"no route {self.path}"))

    def do_POST(self) -> None:
        body = self._read_json()
        if self.path == "/_script":
            replies = body if isinstance(body, list) else [body]
            self.api.script(*replies)
            self._send_json(200, {"pending": self.api.pending})
        elif self.path == "/_reset":
            with self.api._lock:
                self.api._queue.clear()
                self.api.requests.clear()
            self._send_json(200, {"pending": 0})
        elif self.path.split("?")[0] == "/v1/messages":
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, payload = self.api.handle_messages(headers, body)
            if isinstance(payload, tuple):
                self._stream(*payload)
            else:
                if isinstance(payload, dict) and "_partial" in payload:
                    partial = payload["_partial"]
                    payload = json.loads(json.dumps({k: v for k, v in payload.items() if k != "_partial"}))
                    for index, raw in partial.items():
                        payload["content"][index]["input"] = _partial_input(raw)
                self._send_json(status, payload, extra)
        else:
            self._send_json(404, _error_body("not_found_error", f"no route {self.path}"))

    def _stream(self, kind: str, message: dict[str, Any]) -> None:
        self.close_connection = True
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        events = _error_events(message) if kind == "stream-error" else _events(message, self.api.chunk)
        for name, data in events:
            self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
        self.wfile.flush()


def _events(message: dict[str, Any], chunk: int) -> Iterator[tuple[str, dict[str, Any]]]:
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "stop_details": None,
             "usage": {**usage, "output_tokens": 1}}
    start.pop("_partial", None)
    yield "message_start", {"type": "message_start", "message": start}
    yield "ping", {"type": "ping"}
    partial = message.get("_partial", {})
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        if kind == "text":
            yield _start(index, {"type": "text", "text": ""})
            for piece in _pieces(block["text"], chunk):
                yield _delta(index, {"type": "text_delta", "text": piece})
        elif kind == "thinking":
            yield _start(index, {"type": "thinking", "thinking": "", "signature": ""})
            for piece in _pieces(block["thinking"], chunk):
                yield _delta(index, {"type": "thinking_delta", "thinking": piece})
            yield _delta(index, {"type": "signature_delta", "signature": block["signature"]})
        elif kind == "tool_use":
            yield _start(index, {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}})
            raw = partial.get(index, json.dumps(block["input"]))
            for piece in _pieces(raw, chunk):
                yield _delta(index, {"type": "input_json_delta", "partial_json": piece})
        else:
            yield _start(index, block)
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield "message_delta", {"type": "message_delta",
                            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None,
                                      "stop_details": message.get("stop_details")},
                            "usage": {"output_tokens": usage["output_tokens"]}}
    yield "message_stop", {"type": "message_stop"}


def _error_events(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield "message_start", {"type": "message_start", "message": {
        "id": "msg_fake_error", "type": "message", "role": "assistant", "model": "fake", "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 1, "output_tokens": 1}}}
    yield "error", _error_body(spec["error"]["type"], spec["error"]["message"])


def _start(index: int, block: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return "content_block_start", {"type": "content_block_start", "index": index, "content_block": block}


def _delta(index: int, delta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}


def _pieces(value: str, size: int) -> list[str]:
    return [value[i:i + size] for i in range(0, len(value), size)] or [""]


def _partial_input(partial: str) -> Any:
    from jiter import from_json

    try:
        return from_json(partial.encode(), partial_mode=True) if partial else {}
    except ValueError:
        return {}


def _error_body(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fake"}


def _sign(value: str) -> str:
    return base64.b64encode(hmac.new(SIGNING_KEY, value.encode(), hashlib.sha256).digest()).decode()


def _strip(block: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in block.items() if k != "cache_control"}


def _key(blocks: list[dict[str, Any]]) -> str:
    """Identifies a reply by its non-thinking blocks, as a client would send them back."""
    visible = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text":
            visible.append({"type": "text", "text": block.get("text")})
        elif kind == "tool_use":
            visible.append({"type": "tool_use", "id": block.get("id"), "name": block.get("name")})
        elif kind not in ("thinking", "redacted_thinking"):
            visible.append(_strip(block))
    return json.dumps(visible, sort_keys=True)


def _prefix_items(body: dict[str, Any]) -> Iterator[tuple[str, bool]]:
    """The request as a sequence of cacheable items, each with whether it carries a breakpoint."""
    def item(prefix: str, block: Any) -> tuple[str, bool]:
        if not isinstance(block, dict):
            return prefix + json.dumps(block), False
        return prefix + json.dumps(_strip(block), sort_keys=True), "cache_control" in block

    for tool in body.get("tools") or []:
        yield item("tool:", tool)
    system = body.get("system")
    for block in [{"type": "text", "text": system}] if isinstance(system, str) else system or []:
        yield item("system:", block)
    for message in body.get("messages") or []:
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        for block in blocks:
            yield item(f"{message.get('role')}:", block)
