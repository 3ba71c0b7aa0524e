"""The webhook relay (app/intake/relay.py): a smee.io-style channel on loopback feeds a real `honk serve --proxy`
(and `honk web --proxy`), whose own webhook route accepts a signed delivery, refuses a tampered one without the
relay stopping, and hears the channel again after it drops. Below that, the event-stream format and how a
delivery's bytes are recovered from what the channel sends."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import logging
import queue
import signal
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from app.intake.relay import EventStreamParser, WebhookRelay, delivery_from_event, github_json, webhook_url
from tests.support import SECRET, HonkProcess, free_port, honk_env, labeled_payload, live_server, sign, wait_for

# ------------------------------------------------------------------------------------------ a local channel


def github_bytes(payload: dict[str, Any]) -> bytes:
    """A payload as GitHub sends it: compact JSON, UTF-8, control characters escaped in upper case."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return text.replace("\\u001b", "\\u001B").encode()


def smee_event(body: bytes, *, event: str = "issues", delivery: str | None = None, signature: str | None = None,
               raw: str | None = None) -> dict[str, Any]:
    """What smee.io makes of one POST: the request's headers (lower-cased, its proxies' among them), the parsed
    body, the query and a timestamp; `raw` adds the raw body under that key, as newer channel servers do."""
    message: dict[str, Any] = {
        "host": "smee.io", "x-forwarded-for": "140.82.115.1", "via": "1.1 vegur", "connection": "close",
        "user-agent": "GitHub-Hookshot/abc123", "accept": "*/*", "content-type": "application/json",
        "content-length": str(len(body)), "x-github-event": event,
        "x-github-delivery": delivery or str(uuid.uuid4()), "x-github-hook-id": "123",
        "x-hub-signature-256": signature or sign(body),
        "body": json.loads(body), "query": {}, "timestamp": 1_700_000_000_000}
    if raw == "bodyB":
        message["bodyB"] = base64.b64encode(body).decode()
    elif raw is not None:
        message[raw] = body.decode()
    return message


class FakeChannel:
    """A smee.io channel on loopback: `ready` on connecting, then whatever the test sends, as smee.io writes it
    (`id:` lines, unnamed events whose data is one line of JSON); `drop()` ends the current connection."""

    def __init__(self) -> None:
        self.connections: list[dict[str, str]] = []  # each connection's request headers
        self._outboxes: list[queue.Queue[str | None]] = []
        self._ids = itertools.count(1)
        self.app = Starlette(routes=[Route("/channel", self._channel)])

    async def _channel(self, request: Request) -> Response:
        if request.headers.get("accept") != "text/event-stream":  # smee.io's own rule
            return HTMLResponse("<h1>a channel page for browsers</h1>")
        outbox: queue.Queue[str | None] = queue.Queue()
        self._outboxes.append(outbox)
        self.connections.append(dict(request.headers))

        async def stream() -> AsyncIterator[str]:
            yield f"id: {next(self._ids)}\nevent: ready\ndata: {{}}\n\n"
            while True:
                try:
                    item = outbox.get_nowait()
                except queue.Empty:
                    await asyncio.sleep(0.02)
                    continue
                if item is None:
                    return  # the connection drops
                yield item

        return StreamingResponse(stream(), media_type="text/event-stream")

    def send(self, message: dict[str, Any]) -> str:
        event_id = str(next(self._ids))
        data = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
        self._outboxes[-1].put(f"id: {event_id}\ndata: {data}\n\n")
        return event_id

    def ping(self) -> None:
        self._outboxes[-1].put(f"id: {next(self._ids)}\nevent: ping\ndata: {{}}\n\n")

    def drop(self) -> None:
        self._outboxes[-1].put(None)


@pytest.fixture
def channel() -> Iterator[tuple[FakeChannel, str]]:
    fake = FakeChannel()
    with live_server(fake.app) as url:
        yield fake, f"{url}/channel"


def job(base: str, job_id: int) -> dict[str, Any] | None:
    answer = httpx.get(f"{base}/api/jobs/{job_id}", timeout=10)
    return answer.json() if answer.status_code == 200 else None


def issue(number: int, text: str = "They should spin forwards.") -> bytes:
    payload = labeled_payload(number=number)
    payload["issue"]["body"] = text
    return github_bytes(payload)


# ------------------------------------------------------------------------------------------ end to end


@pytest.mark.slow  # a real honk process
def test_serve_relays_a_channel_through_its_own_webhook_route(tmp_path: Path,
                                                               channel: tuple[FakeChannel, str]) -> None:
    fake, channel_url = channel
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    honk = HonkProcess(["serve", "--port", str(port), "--proxy", channel_url], honk_env(tmp_path), tmp_path,
                       tmp_path / "serve.log")
    try:
        honk.wait_http(f"{base}/healthz")
        wait_for(lambda: fake.connections, what="the relay to connect", timeout=60)
        assert fake.connections[0]["accept"] == "text/event-stream"
        fake.ping()

        # smee.io as it is: only the parsed body. Honk rebuilds GitHub's bytes, so the signature holds, even with
        # non-ASCII text, a line separator and a terminal escape in the issue.
        fake.send(smee_event(issue(1, "Spins backwards \u2028 ✓ café \x1b[31mred\x1b[0m")))
        first = wait_for(lambda: job(base, 1), what="the relayed delivery's job", timeout=60)
        assert first["subject"] == "acme/widgets#1" and first["requester"] == "alice"
        assert first["trigger"]["issue"]["body"] == "Spins backwards \u2028 ✓ café \x1b[31mred\x1b[0m"

        # A channel that passes the raw body: GitHub's bytes exactly, whatever their layout.
        pretty = json.dumps(labeled_payload(number=2), indent=2).encode()
        fake.send(smee_event(pretty, raw="rawBody"))
        wait_for(lambda: job(base, 2), what="the raw delivery's job")

        # Tampered on the way: the body no longer matches the signature. Refused, and the relay goes on.
        tampered = issue(3)
        fake.send(smee_event(tampered.replace(b"alice", b"mallory"), signature=sign(tampered), raw="rawBody"))
        wait_for(lambda: "refused (401" in honk.output(), what="the tampered delivery to be refused")

        # Only the parsed body, of bytes Honk cannot rebuild (GitHub never indents, but this sender did): the
        # log says the channel re-encoded it, rather than calling it forged.
        fake.send(smee_event(pretty.replace(b'"number": 2', b'"number": 4'),
                             signature=sign(pretty.replace(b'"number": 2', b'"number": 4'))))
        wait_for(lambda: "cannot be verified" in honk.output(), what="the re-encoded delivery's warning")

        fake.send(smee_event(issue(5), raw="bodyB"))  # gosmee's base64 field
        fifth = wait_for(lambda: job(base, 3), what="a delivery after the refused ones")
        assert fifth["subject"] == "acme/widgets#5"
        metrics = httpx.get(f"{base}/metrics").text
        assert 'honk_webhook_deliveries_total{event="issues",outcome="queued",status="202"} 3.0' in metrics
        assert 'outcome="rejected",status="401"} 2.0' in metrics
    finally:
        code = honk.stop(signal.SIGTERM)
    log = honk.output()
    assert code == 0, log
    assert "relay: forwarding deliveries from " + channel_url in log
    assert "re-encoded its body" in log and "X-Hub-Signature-256" in log
    assert "not signed with GITHUB_WEBHOOK_SECRET" in log
    assert "relay: stopped" in log
    assert len(fake.connections) == 1  # nothing dropped, so no reconnection


@pytest.mark.slow  # a real honk process
def test_web_relay_reconnects_after_a_drop_with_last_event_id(tmp_path: Path,
                                                              channel: tuple[FakeChannel, str]) -> None:
    fake, channel_url = channel
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    honk = HonkProcess(["web", "--port", str(port)], honk_env(tmp_path, HONK_WEBHOOK_PROXY_URL=channel_url),
                       tmp_path, tmp_path / "web.log")
    try:
        honk.wait_http(f"{base}/healthz")
        wait_for(lambda: fake.connections, what="the relay to connect", timeout=60)
        last = fake.send(smee_event(issue(1)))
        wait_for(lambda: job(base, 1), what="the first delivery's job")

        fake.drop()
        wait_for(lambda: len(fake.connections) == 2, what="the relay to reconnect", timeout=60)
        assert fake.connections[1]["last-event-id"] == last
        fake.send(smee_event(issue(2)))
        wait_for(lambda: job(base, 2), what="a delivery after the reconnection")
    finally:
        code = honk.stop(signal.SIGTERM)
    log = honk.output()
    assert code == 0, log
    assert "relay: the channel closed the connection; reconnecting" in log
    assert "relay: reconnected to " + channel_url in log


@pytest.mark.slow  # a real honk process
def test_an_unreachable_channel_does_not_stop_honk(tmp_path: Path) -> None:
    port = free_port()
    nowhere = f"http://127.0.0.1:{free_port()}/channel"
    honk = HonkProcess(["web", "--port", str(port), "--proxy", nowhere], honk_env(tmp_path), tmp_path,
                       tmp_path / "web.log")
    try:
        honk.wait_http(f"http://127.0.0.1:{port}/healthz")
        wait_for(lambda: "relay: ConnectError" in honk.output(), what="the relay to say why it cannot connect")
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    finally:
        code = honk.stop(signal.SIGTERM)
    assert code == 0, honk.output()


def test_stopping_lets_a_delivery_being_posted_finish(channel: tuple[FakeChannel, str],
                                                     caplog: pytest.LogCaptureFixture) -> None:
    fake, channel_url = channel
    arrived, answer = threading.Event(), threading.Event()

    async def slow_route(request: Request) -> Response:
        arrived.set()
        while not answer.is_set():
            await asyncio.sleep(0.02)
        return JSONResponse({"status": "queued", "job": 1}, status_code=202)

    async def until(condition: Callable[[], object]) -> None:
        while not condition():
            await asyncio.sleep(0.02)

    async def main(route: str) -> None:
        stop = asyncio.Event()
        target: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        target.set_result(route)
        relaying = asyncio.create_task(WebhookRelay(channel_url).serve(stop, target))
        await asyncio.wait_for(until(lambda: fake.connections), 20)
        fake.send(smee_event(issue(1), delivery="in-flight"))
        await asyncio.wait_for(until(arrived.is_set), 20)
        stop.set()  # while Honk's route has not answered yet
        await asyncio.sleep(0.2)
        assert not relaying.done()  # it cannot be: the route has not answered
        answer.set()
        await asyncio.wait_for(relaying, 20)

    route_app = Starlette(routes=[Route("/api/github/webhooks", slow_route, methods=["POST"])])
    with caplog.at_level(logging.INFO, logger="honk.relay"), live_server(route_app) as route_url:
        asyncio.run(main(f"{route_url}/api/github/webhooks"))
    said = caplog.text
    assert "delivery=in-flight event=issues -> 202 queued job=1" in said
    assert said.index("-> 202") < said.index("relay: stopped reading")


# ------------------------------------------------------------------------------------------ the parts


def test_the_event_stream_format() -> None:
    parser = EventStreamParser()
    events = [
        *parser.feed(b"\xef\xbb\xbfretry: 250\n: a comment\nid: 1\nevent: ready\ndata: {}\n\n"),
        *parser.feed(b"data: first\r\ndata: second\r"),  # CRLF and CR line ends; a CR may end a chunk ...
        *parser.feed(b"\n\r\nevent: ping\n\n"),  # ... before its LF; an event without data is not dispatched
        *parser.feed('id: 2\ndata: {"t":"a\u2028b"}\n\n'.encode()),  # U+2028 is no line end in this format
        *parser.feed(b"data:no space\n"),
        *parser.feed(b"\n"),
    ]
    assert [(e.event, e.data, e.id) for e in events] == [
        ("ready", "{}", "1"), ("message", "first\nsecond", "1"), ("message", '{"t":"a\u2028b"}', "2"),
        ("message", "no space", "2")]
    assert parser.retry_ms == 250 and parser.last_event_id == "2"
    parser.feed(b"data: half an ev")
    parser.reset()  # a new connection
    assert [e.data for e in parser.feed(b"ent\n\ndata: whole\n\n")] == ["whole"]


def test_a_smee_event_becomes_githubs_headers_and_bytes() -> None:
    # A terminal escape, a user's literal backslash-u, a line separator, and a number as JavaScript spells it.
    body = '{"action":"opened","text":"é ✓ \u2028 \\u001B[0m \\\\u001b \\"q\\"","n":1.5e-7}'.encode()
    message = smee_event(body, delivery="d-1")
    data = json.dumps(message, ensure_ascii=False, separators=(",", ":")).replace("1.5e-07", "1.5e-7")  # as JS
    delivery = delivery_from_event(data)
    assert delivery is not None and delivery.reencoded
    assert delivery.body == body
    assert hmac.compare_digest(delivery.headers["x-hub-signature-256"],
                               "sha256=" + hmac.new(SECRET.encode(), delivery.body, hashlib.sha256).hexdigest())
    # GitHub's headers only: the hop to the channel (host, proxies, its content-length) stays behind.
    assert delivery.headers == {"user-agent": "GitHub-Hookshot/abc123", "content-type": "application/json",
                                "x-github-event": "issues", "x-github-delivery": "d-1", "x-github-hook-id": "123",
                                "x-hub-signature-256": sign(body)}


@pytest.mark.parametrize("field", ["bodyB", "rawBody", "rawdata"])
def test_a_raw_body_is_forwarded_byte_for_byte(field: str) -> None:
    body = json.dumps({"action": "opened", "text": "é"}, indent=3).encode() + b"\n"
    delivery = delivery_from_event(json.dumps(smee_event(body, raw=field)))
    assert delivery is not None and not delivery.reencoded and delivery.body == body


def test_what_is_not_a_delivery_is_skipped() -> None:
    assert delivery_from_event("ready") is None  # gosmee's greeting
    assert delivery_from_event("{}") is None
    assert delivery_from_event('{"x-github-event": "ping"}') is None


def test_github_json_keeps_escaped_backslashes() -> None:
    assert github_json('{ "a" : "\\\\u00e9 \\u00e9 \\u001b" }') == b'{"a":"\\\\u00e9 \\u00E9 \\u001B"}'


def test_the_relay_posts_to_a_socket_honk_bound() -> None:
    assert webhook_url([("0.0.0.0", 3000)]) == "http://127.0.0.1:3000/api/github/webhooks"
    assert webhook_url([("::", 3000, 0, 0)]) == "http://[::1]:3000/api/github/webhooks"
    assert webhook_url([("192.0.2.5", 80), ("127.0.0.1", 80)]) == "http://127.0.0.1:80/api/github/webhooks"
    assert webhook_url([("192.0.2.5", 80)]) == "http://192.0.2.5:80/api/github/webhooks"
    assert webhook_url(["/run/honk.sock"]) is None
