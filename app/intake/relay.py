"""A webhook relay for laptops, the Probot way: `HONK_WEBHOOK_PROXY_URL` (or `honk serve --proxy URL`).

GitHub cannot reach a laptop, but a laptop can listen to a channel that GitHub can reach: the App's webhook URL
is a smee.io channel (https://smee.io/new), which turns each delivery into a server-sent event, and this relay
reads that stream and posts each delivery to Honk's own webhook route on its own socket. So the route's checks
(signature, size, headers, JSON, de-duplication) all apply unchanged: the relay is just another sender.

What a channel sends (smee.io, `probot/smee.io` lib/server.js): an event `ready` on connecting, an event `ping`
every 30 s, and for each delivery an unnamed event whose data is one JSON object: the request's headers as
top-level keys (lower-cased: `x-github-event`, `x-github-delivery`, `x-hub-signature-256`, `content-type`, ...)
beside `body` (the *parsed* JSON), `query` and `timestamp`. Event ids count per connection and nothing is
replayed: a delivery sent while the relay is disconnected is lost (redeliver it from the App's settings page).

The signature is over the bytes GitHub sent, and smee.io keeps only the parsed body. Where a channel carries
the bytes themselves, they are forwarded exactly: `bodyB` (base64, gosmee), `rawBody` (smee.io's newer
server) or `rawdata` (an older one). Otherwise Honk rebuilds them as smee-client and Probot do: the body's
JSON text exactly as the channel wrote it, compact, with `\\u` escapes in upper case as GitHub writes them
(octokit/webhooks.js#71). That matches GitHub's bytes for ordinary deliveries; when it does not, the route
refuses the delivery (401) and the log says that the channel re-encoded it, rather than calling it forged.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import json
import logging
import random
import re
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass
from json.decoder import scanstring
from typing import Any

import httpx

log = logging.getLogger("honk.relay")

WEBHOOK_PATH = "/api/github/webhooks"  # the route in app/intake/webhooks.py
# smee.io pings every 30 s: this much silence means the connection is dead even if TCP has not noticed.
READ_TIMEOUT = 90.0
FORWARD_TIMEOUT = 30.0
FORWARD_ATTEMPTS = 3  # the route answers 503 while the database is down; GitHub would redeliver, so do we
MAX_EVENT_BYTES = 96 * 1024 * 1024  # a 25 MiB delivery twice (parsed and raw), base64's third, and headers
MAX_BACKOFF = 60.0
# smee.io serves the event stream only when Accept is exactly this; gosmee only when User-Agent names gosmee.
ACCEPT = "text/event-stream"
USER_AGENT = "honk-relay (smee-client, gosmee compatible)"
# GitHub's own headers, which are the ones that describe the delivery; the rest of what a channel reports
# (x-forwarded-*, via, cf-*, host, its own content-length) describes the hop to the channel, not GitHub.
_FORWARDED_PREFIXES = ("x-github-", "x-hub-signature")
_FORWARDED_NAMES = frozenset({"content-type", "user-agent"})
_RAW_BODY_KEYS = ("bodyB", "rawBody", "rawdata")
_NOT_HEADERS = frozenset({"body", "query", "timestamp", *_RAW_BODY_KEYS})


class RelayError(Exception):
    """The channel cannot be used as it is; worded for the operator."""


# ------------------------------------------------------------------------------------------ event streams


@dataclass(frozen=True)
class ServerSentEvent:
    event: str  # "message" unless the server named it
    data: str
    id: str  # the last event id once this event arrived (an event without `id:` keeps the previous one)


_EOL = re.compile(rb"\r\n|\r|\n")


class EventStreamParser:
    """The `text/event-stream` format (https://html.spec.whatwg.org/multipage/server-sent-events.html), fed
    bytes as they arrive. Lines end only at CR, LF or CRLF: not at U+2028 and the other breaks that
    `str.splitlines` (and so httpx's `aiter_lines`) also splits at, which JSON may carry unescaped."""

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self.last_event_id = ""  # kept across connections: it is what Last-Event-ID says on reconnecting
        self.retry_ms: int | None = None  # the server's `retry:`, its wish for the reconnection delay
        self._max = max_event_bytes
        self.reset()

    def reset(self) -> None:
        """Forget a half-received event: a new connection starts a new stream."""
        self._pending = bytearray()
        self._scanned = 0  # bytes of `_pending` known to hold no line end, so a long line is scanned once
        self._data: list[str] = []
        self._size = 0
        self._event = ""
        self._at_start = True

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        self._pending += chunk
        events: list[ServerSentEvent] = []
        start = 0
        while (match := _EOL.search(self._pending, max(start, self._scanned))) is not None:
            if match.group() == b"\r" and match.end() == len(self._pending):
                break  # maybe the first half of a CRLF split between chunks: wait for the next byte
            line = bytes(self._pending[start:match.start()])
            start = self._scanned = match.end()
            if self._at_start:
                line = line.removeprefix(b"\xef\xbb\xbf")  # a byte order mark may open the stream
                self._at_start = False
            event = self._line(line.decode("utf-8", "replace"))
            if event is not None:
                events.append(event)
        del self._pending[:start]
        self._scanned = max(0, self._scanned - start)
        if len(self._pending) + self._size > self._max:
            raise RelayError(f"the channel sent an event over {self._max // (1024 * 1024)} MiB")
        return events

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment: some servers keep the connection alive this way
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
            self._size += len(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self.last_event_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        data, event = "\n".join(self._data), self._event or "message"
        dispatch = bool(self._data)
        self._data, self._size, self._event = [], 0, ""
        return ServerSentEvent(event, data, self.last_event_id) if dispatch else None


# ------------------------------------------------------------------------------------------ deliveries


@dataclass(frozen=True)
class RelayedDelivery:
    headers: dict[str, str]
    body: bytes
    # True when the channel gave only the parsed body, so that `body` is Honk's rebuild of GitHub's bytes and
    # a signature that does not match may be the channel's doing rather than a forgery.
    reencoded: bool

    @property
    def delivery_id(self) -> str:
        return self.headers.get("x-github-delivery", "?")

    @property
    def event(self) -> str:
        return self.headers.get("x-github-event", "?")


def delivery_from_event(data: str) -> RelayedDelivery | None:
    """The delivery one channel event carries, or None for an event that is not one (gosmee's `ready`, a
    channel's own notices)."""
    try:
        message = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(message, dict) or not ({"body", *_RAW_BODY_KEYS} & message.keys()):
        return None
    headers = {name.lower(): _header_value(value) for name, value in message.items()
               if name not in _NOT_HEADERS and _forwarded(name.lower()) and _header_value(value) is not None}
    raw = _raw_body(message)
    if raw is not None:
        body, reencoded = raw, False
    elif isinstance(message.get("body"), str):
        body, reencoded = message["body"].encode(), True  # a body the channel could not parse as JSON
    else:
        body, reencoded = github_json(_top_level_text(data, "body")), True
    headers.setdefault("content-type", "application/json")
    return RelayedDelivery(headers, body, reencoded)  # type: ignore[arg-type]  # None values were filtered


def _forwarded(name: str) -> bool:
    return name.startswith(_FORWARDED_PREFIXES) or name in _FORWARDED_NAMES


def _header_value(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return ", ".join(value)  # Node gives a repeated header as a list
    return None


def _raw_body(message: Mapping[str, Any]) -> bytes | None:
    encoded = message.get("bodyB")
    if isinstance(encoded, str):
        try:
            return base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            return None
    for key in ("rawBody", "rawdata"):
        if isinstance(message.get(key), str) and message[key]:
            return message[key].encode()
    return None


_WHITESPACE = re.compile(r"[ \t\n\r]*")
_INSIGNIFICANT = re.compile(r'("(?:[^"\\]|\\.)*")|[ \t\n\r]+', re.DOTALL)
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.DOTALL)


def github_json(text: str) -> bytes:
    """JSON text as GitHub writes a delivery: compact, non-ASCII as UTF-8, and `\\u` escapes (control
    characters) in upper case, where JavaScript and Python write lower case. Strings and numbers are kept as
    written: re-serialising parsed values would also change how some numbers are spelt."""
    compact = _INSIGNIFICANT.sub(lambda m: m.group(1) or "", text)
    # Each backslash takes the character after it, so `\\u00e9` (an escaped backslash, then text) stays as is.
    upper = _ESCAPE.sub(lambda m: "\\" + ("u" + m.group(1)[1:].upper() if len(m.group(1)) == 5 else m.group(1)),
                        compact)
    return upper.encode()


def _top_level_text(text: str, key: str) -> str:
    """The JSON text of one member of the object `text`, exactly as the channel wrote it."""
    decoder = json.JSONDecoder()
    at = _skip(text, 0, "{")
    while text[at:at + 1] == '"':
        name, at = scanstring(text, at + 1)
        at = _skip(text, at, ":")
        _, end = decoder.raw_decode(text, at)
        if name == key:
            return text[at:end]
        at = _skip(text, end)
        if text[at:at + 1] == ",":
            at = _skip(text, at, ",")
    raise ValueError(f"the event has no {key!r}")


def _skip(text: str, at: int, expected: str | None = None) -> int:
    """Past whitespace, then past `expected` (and the whitespace after it)."""
    at = _WHITESPACE.match(text, at).end()  # type: ignore[union-attr]  # matches, if only the empty string
    if expected is None:
        return at
    if text[at:at + 1] != expected:
        raise ValueError(f"expected {expected!r} at character {at}")
    return _WHITESPACE.match(text, at + 1).end()  # type: ignore[union-attr]


# ------------------------------------------------------------------------------------------ the relay


def webhook_url(addresses: Iterable[Any]) -> str | None:
    """Honk's webhook route on the sockets it bound: a loopback one if any (0.0.0.0 and :: include loopback),
    else its own address. None when it bound no IP socket."""
    candidates = []
    for address in addresses:
        if not isinstance(address, tuple) or len(address) < 2:
            continue  # a Unix socket
        try:
            ip = ipaddress.ip_address(str(address[0]).split("%", 1)[0])
        except ValueError:
            continue
        if ip.is_unspecified:
            ip = ipaddress.ip_address("::1" if ip.version == 6 else "127.0.0.1")
        candidates.append((not ip.is_loopback, ip.version, int(address[1]), str(ip)))
    if not candidates:
        return None
    _, version, port, host = min(candidates)
    return f"http://{f'[{host}]' if version == 6 else host}:{port}{WEBHOOK_PATH}"


class WebhookRelay:
    """Reads a channel's event stream and posts each delivery to Honk's webhook route, reconnecting when the
    stream drops (at once after a healthy connection, then with backoff, sending Last-Event-ID)."""

    def __init__(self, channel: str, *, read_timeout: float = READ_TIMEOUT) -> None:
        self.channel = channel
        self.parser = EventStreamParser()
        self._read_timeout = read_timeout
        self._in_flight: asyncio.Task[None] | None = None
        self._said_reencoded = False
        self._heard = False  # whether the current connection has sent an event

    async def serve(self, stop: asyncio.Event, target: Awaitable[str]) -> None:
        """Relay until `stop` is set. A delivery being posted then is let finish, so it is not half-sent."""
        # Honk's own route is on this machine: never through a proxy. The client outlives `run`, so that a
        # delivery being posted when it is cancelled can finish.
        async with httpx.AsyncClient(timeout=FORWARD_TIMEOUT, trust_env=False) as honk:
            relaying = asyncio.create_task(self.run(target, honk))
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({relaying, stopping}, return_when=asyncio.FIRST_COMPLETED)
            relaying.cancel()
            stopping.cancel()
            results = await asyncio.gather(relaying, stopping, return_exceptions=True)
            if self._in_flight is not None:
                await asyncio.gather(self._in_flight, return_exceptions=True)
        crashed = [r for r in results if isinstance(r, Exception)]
        if crashed:
            log.error("relay: stopped by %s: %s", type(crashed[0]).__name__, crashed[0])
        log.info("relay: stopped reading %s", self.channel)

    async def run(self, target: Awaitable[str], honk: httpx.AsyncClient) -> None:
        """Relay forever (until cancelled), posting with `honk`."""
        url = await target
        log.info("relay: forwarding deliveries from %s to %s", self.channel, url)
        failures = 0
        timeout = httpx.Timeout(15.0, read=self._read_timeout)
        # The channel is on the internet: the environment's proxy settings apply, as in smee-client.
        async with httpx.AsyncClient(timeout=timeout, headers={"User-Agent": USER_AGENT}) as channel:
            while True:
                self._heard = False
                try:
                    await self._read(channel, honk, url, reconnecting=failures > 0)
                    reason = "the channel closed the connection"
                except httpx.ReadTimeout:
                    reason = f"nothing from the channel for {self._read_timeout:.0f} s"
                except (httpx.HTTPError, RelayError) as exc:
                    reason = _reason(exc)
                except Exception as exc:  # a bug here must not end relaying for the rest of the process's life
                    log.exception("relay: unexpected failure")
                    reason = _reason(exc)
                healthy = self._heard  # the connection worked (it sent an event) before it ended
                failures = 1 if healthy else failures + 1
                delay = self._delay(failures, healthy)
                (log.info if healthy else log.warning)("relay: %s; reconnecting in %.0f s", reason, delay)
                await asyncio.sleep(delay)

    def _delay(self, failures: int, healthy: bool) -> float:
        base = (self.parser.retry_ms / 1000) if self.parser.retry_ms is not None else 1.0
        if healthy:
            return min(base, MAX_BACKOFF)  # a connection that worked: at once, or as the server asks
        return min(max(base, 1.0) * 2 ** (failures - 1), MAX_BACKOFF) * (1 + random.random() / 4)

    async def _read(self, channel: httpx.AsyncClient, honk: httpx.AsyncClient, url: str, *,
                    reconnecting: bool) -> None:
        """One connection to the channel, until it ends."""
        headers = {"Accept": ACCEPT, "Cache-Control": "no-cache"}
        if self.parser.last_event_id:
            headers["Last-Event-ID"] = self.parser.last_event_id
        self.parser.reset()
        async with channel.stream("GET", self.channel, headers=headers) as response:
            if response.status_code != 200:
                raise RelayError(f"{self.channel} answered {response.status_code} {response.reason_phrase}")
            kind = response.headers.get("content-type", "")
            if not kind.startswith("text/event-stream"):
                raise RelayError(f"{self.channel} answered {kind or 'without a content type'}, not an event "
                                 "stream: is it a channel URL (https://smee.io/…)?")
            log.info("relay: %s %s", "reconnected to" if reconnecting else "connected to", self.channel)
            async for chunk in response.aiter_bytes():
                for event in self.parser.feed(chunk):
                    self._heard = True
                    await self._on_event(event, honk, url)

    async def _on_event(self, event: ServerSentEvent, honk: httpx.AsyncClient, url: str) -> None:
        if event.event == "ready":
            log.info("relay: the channel is ready")
            return
        if event.event != "message":
            return  # `ping`, and whatever else a channel adds
        try:
            delivery = delivery_from_event(event.data)
        except ValueError as exc:
            log.warning("relay: event %s is not a delivery Honk can read (%s); skipped", event.id or "-", exc)
            return
        if delivery is None:
            log.debug("relay: event %s carries no delivery; skipped", event.id or "-")
            return
        if delivery.reencoded and not self._said_reencoded:
            self._said_reencoded = True
            log.info("relay: this channel sends parsed bodies, not the bytes GitHub signed, so Honk rebuilds "
                     "them; a delivery whose rebuild differs cannot be verified, and the log will say so")
        # Shielded, so that stopping Honk lets a delivery being posted finish rather than leaving it half-sent.
        self._in_flight = asyncio.ensure_future(self._forward(delivery, honk, url))
        await asyncio.shield(self._in_flight)
        self._in_flight = None

    async def _forward(self, delivery: RelayedDelivery, honk: httpx.AsyncClient, url: str) -> None:
        name = f"delivery={delivery.delivery_id} event={delivery.event}"
        for attempt in range(1, FORWARD_ATTEMPTS + 1):
            try:
                response = await honk.post(url, content=delivery.body, headers=delivery.headers)
            except httpx.HTTPError as exc:
                problem = f"Honk's webhook route did not answer ({_reason(exc)})"
            else:
                if response.status_code < 500:
                    _log_answer(name, delivery, response)
                    return
                problem = f"Honk's webhook route answered {response.status_code} ({_detail(response)})"
            if attempt < FORWARD_ATTEMPTS:
                await asyncio.sleep(2.0 ** (attempt - 1))
        log.error("relay: %s was not delivered: %s; redeliver it from the App's settings page (Advanced, Recent "
                  "Deliveries)", name, problem)


def _log_answer(name: str, delivery: RelayedDelivery, response: httpx.Response) -> None:
    status, detail = response.status_code, _detail(response)
    # Only a wrong signature is explained; a 401 for want of GITHUB_WEBHOOK_SECRET says so itself.
    bad_signature = status == 401 and "signature" in detail.lower()
    if bad_signature and delivery.reencoded:
        log.warning("relay: %s cannot be verified, so Honk refused it (401): the channel re-encoded its body, "
                    "and Honk's rebuild of the bytes GitHub signed does not match X-Hub-Signature-256. Use a "
                    "channel that passes the raw body (gosmee; a smee.io server that sends rawBody), or let "
                    "GitHub reach Honk directly", name)
    elif bad_signature:
        log.warning("relay: %s refused (401: %s): the body is as the channel received it, so it was not "
                    "signed with GITHUB_WEBHOOK_SECRET (forged, or the App's webhook secret differs)", name, detail)
    elif status >= 400:
        log.warning("relay: %s refused (%d: %s)", name, status, detail)
    else:
        log.info("relay: %s -> %d %s", name, status, detail)


def _detail(response: httpx.Response) -> str:
    try:
        answer = response.json()
    except ValueError:
        return (response.text or "no body").strip()[:200]
    if not isinstance(answer, dict):
        return str(answer)[:200]
    if answer.get("detail"):
        return str(answer["detail"])[:200]
    parts = [str(answer.get(k)) for k in ("status", "reason") if answer.get(k)]
    if answer.get("job") is not None:
        parts.append(f"job={answer['job']}")
    return " ".join(parts) or str(answer)[:200]


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
