"""A scripted stand-in for Amazon Bedrock's runtime API serving Claude: a real HTTP server on 127.0.0.1.

It speaks Bedrock's wire format, not the Messages API's, and keeps the Anthropic fake's scripting and checks
(tests/fakes/messages_api.py) for what is inside:
- `POST /model/{modelId}/invoke` answers the message as JSON; `POST /model/{modelId}/invoke-with-response-stream`
  answers an AWS event stream (`application/vnd.amazon.eventstream`): binary frames with CRCs, each a `chunk` event
  whose JSON payload carries one Messages stream event, base64-encoded, in `bytes`.
- The body has no `model` (it is in the path) and no `stream` (the operation says it), and carries
  `anthropic_version: "bedrock-2023-05-31"`.
- Every request is signed with AWS Signature Version 4 for service `bedrock` in the fake's region; the fake
  recomputes the signature with the secret key it knows (from the signed headers, the path and a hash of the body)
  and answers 403 as Bedrock does when anything differs, or when the clock skew exceeds five minutes. A Bedrock API
  key (`Authorization: Bearer ...`, `api_key=`) is accepted instead when the fake was given one.
- Errors look like Bedrock's: `{"message": ...}` with an `x-amzn-ErrorType` header; a scripted 529 is Bedrock's
  503 ServiceUnavailableException. A scripted `mid_stream` error is an exception frame inside the event stream.

`fake.bodies` are the requests as Messages API bodies (the model from the path put back, `stream` from the
operation), so assertions read as for the Anthropic fake; `fake.calls` are the requests as Bedrock saw them.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import re
import struct
import zlib
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from tests.fakes.messages_api import FakeMessagesAPI, _error_events, _events, _Handler, _partial_input

VERSION = "bedrock-2023-05-31"
ACCESS_KEY = "AKIAFAKEBEDROCK00001"
SECRET_KEY = "fake/Bedrock+Secret/Key0123456789abcdefgh"
MAX_SKEW = datetime.timedelta(minutes=5)
_AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)"
                   r"/aws4_request, ?SignedHeaders=(?P<signed>[a-z0-9;-]+), ?Signature=(?P<signature>[0-9a-f]{64})")
_ROUTE = re.compile(r"/model/(?P<model>[^/]+)/(?P<op>invoke|invoke-with-response-stream)")
# Bedrock's names and statuses for what the scripted errors mean.
_ERRORS = {400: (400, "ValidationException"), 401: (403, "AccessDeniedException"),
           403: (403, "AccessDeniedException"), 404: (404, "ResourceNotFoundException"),
           408: (408, "ModelTimeoutException"), 429: (429, "ThrottlingException"),
           500: (500, "InternalServerException"), 503: (503, "ServiceUnavailableException"),
           529: (503, "ServiceUnavailableException")}
_STREAM_ERRORS = {"overloaded_error": "serviceUnavailableException", "rate_limit_error": "throttlingException",
                  "api_error": "internalServerException"}


class FakeBedrock(FakeMessagesAPI):
    def __init__(self, *replies: Any, region: str = "us-east-1", access_key: str = ACCESS_KEY,
                 secret_key: str = SECRET_KEY, session_token: str | None = None, api_key: str | None = None,
                 **options: Any) -> None:
        super().__init__(*replies, **options)
        self.region = region
        self.access_key, self.secret_key, self.session_token, self.api_key = (access_key, secret_key,
                                                                              session_token, api_key)
        self.calls: list[dict[str, Any]] = []  # every request as Bedrock saw it

    def start(self) -> FakeBedrock:
        fake = self

        class Handler(_BedrockHandler):
            api = fake

        self._serve(Handler, "fake-bedrock")
        return self

    def _serve(self, handler: type, name: str) -> None:
        import threading

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name=name, daemon=True)
        self._thread.start()

    def __enter__(self) -> FakeBedrock:
        return self.start()

    def env(self) -> dict[str, str]:
        """What an operator sets for Honk to reach this fake as Amazon Bedrock."""
        out = {"AWS_REGION": self.region, "AWS_ACCESS_KEY_ID": self.access_key,
               "AWS_SECRET_ACCESS_KEY": self.secret_key, "ANTHROPIC_BEDROCK_BASE_URL": self.url}
        if self.session_token:
            out["AWS_SESSION_TOKEN"] = self.session_token
        return out

    @property
    def accepted(self) -> list[dict[str, Any]]:
        return [call for call in self.calls if call["auth"] is None]

    # Checks

    def check_signature(self, method: str, target: str, headers: dict[str, str], body: bytes) -> str | None:
        """None when the request carries a valid SigV4 signature (or the fake's API key), else Bedrock's complaint."""
        auth = headers.get("authorization", "")
        if auth.startswith("Bearer "):
            if self.api_key is not None and hmac.compare_digest(auth[7:], self.api_key):
                return None
            return "Authentication failed: Please make sure your API Key is valid."
        match = _AUTH.fullmatch(auth)
        if match is None:
            return "Missing Authentication Token" if not auth else "Authorization header requires a valid signature"
        if match["key"] != self.access_key:
            return "The security token included in the request is invalid."
        if match["service"] != "bedrock":
            return f"Credential should be scoped to correct service: 'bedrock', not '{match['service']}'."
        if match["region"] != self.region:
            return f"Credential should be scoped to a valid region, not '{match['region']}'."
        amz_date = headers.get("x-amz-date", "")
        try:
            when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
        except ValueError:
            return "X-Amz-Date is missing or malformed"
        if not amz_date.startswith(match["date"]):
            return "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP"
        if abs(datetime.datetime.now(datetime.UTC) - when) > MAX_SKEW:
            return "Signature expired: the request's time is too far from the server's"
        signed = match["signed"].split(";")
        if "host" not in signed or "x-amz-date" not in signed or any(name not in headers for name in signed):
            return "SignedHeaders must name host and x-amz-date, and only headers the request carries"
        if self.session_token is not None and (headers.get("x-amz-security-token") != self.session_token
                                               or "x-amz-security-token" not in signed):
            return "The security token included in the request is invalid."
        path, _, query = target.partition("?")
        canonical = "\n".join([
            method, quote(path, safe="/~"), _canonical_query(query),
            "".join(f"{name}:{' '.join(headers[name].split())}\n" for name in signed),
            match["signed"], hashlib.sha256(body).hexdigest()])
        scope = f"{match['date']}/{match['region']}/{match['service']}/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        key = f"AWS4{self.secret_key}".encode()
        for part in (match["date"], match["region"], match["service"], "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, match["signature"]):
            return ("The request signature we calculated does not match the signature you provided. Check your "
                    "AWS Secret Access Key and signing method.")
        return None

    @staticmethod
    def check_body(body: Any) -> str | None:
        if not isinstance(body, dict):
            return "Malformed input request: the body must be a JSON object"
        if body.get("anthropic_version") != VERSION:
            version = body.get("anthropic_version")
            return f"Malformed input request: anthropic_version must be {VERSION}, not {version!r}"
        for name in ("model", "stream"):
            if name in body:
                return f"Malformed input request: #: extraneous key [{name}] is not permitted"
        return None


class _BedrockHandler(_Handler):
    api: FakeBedrock

    def do_GET(self) -> None:
        self._send_json(404, {"message": f"no route {self.path}"})

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        route = _ROUTE.fullmatch(urlsplit(self.path).path)
        if route is None:
            self._fail(404, "UnknownOperationException", f"no route {self.path}")
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        model, stream = unquote(route["model"]), route["op"] == "invoke-with-response-stream"
        fake = self.api
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        call = {"method": "POST", "path": self.path, "model": model, "stream": stream, "headers": headers,
                "body": body, "auth": fake.check_signature("POST", self.path, headers, raw)}
        with fake._lock:
            fake.calls.append(call)
        if call["auth"] is not None:
            kind = "UnrecognizedClientException" if "token" in call["auth"] else "InvalidSignatureException"
            self._fail(403, kind, call["auth"])
            return
        if (problem := fake.check_body(body)) is not None:
            self._fail(400, "ValidationException", problem)
            return
        assert isinstance(body, dict)
        messages_body = {k: v for k, v in body.items() if k != "anthropic_version"}
        messages_body = {"model": model, **messages_body, **({"stream": True} if stream else {})}
        status, _, payload = fake.handle_messages({**headers, "anthropic-version": VERSION}, messages_body)
        if isinstance(payload, tuple):
            self._event_stream(*payload)
        elif status != 200:
            self._fail(*_ERRORS.get(status, (status, "InternalServerException")), payload["error"]["message"])
        else:
            partial = payload.pop("_partial", {})
            for index, text in partial.items():
                payload["content"][index]["input"] = _partial_input(text)
            self._send_json(200, payload, {"x-amzn-requestid": "fake-request-id",
                                           "x-amzn-bedrock-input-token-count": str(payload["usage"]["input_tokens"]),
                                           "x-amzn-bedrock-output-token-count":
                                               str(payload["usage"]["output_tokens"])})

    def _fail(self, status: int, kind: str, message: str) -> None:
        self._send_json(status, {"message": message},
                        {"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/",
                         "x-amzn-requestid": "fake-request-id"})

    def _event_stream(self, kind: str, message: dict[str, Any]) -> None:
        self.close_connection = True
        self.send_response(200)
        self.send_header("content-type", "application/vnd.amazon.eventstream")
        self.send_header("x-amzn-bedrock-content-type", "application/json")
        self.send_header("x-amzn-requestid", "fake-request-id")
        self.send_header("connection", "close")
        self.end_headers()
        for frame in _frames(kind, message, self.api.chunk):
            # Frames are split across writes, as a network does; the client must reassemble them.
            self.wfile.write(frame[:7])
            self.wfile.flush()
            self.wfile.write(frame[7:])
        self.wfile.flush()


def _frames(kind: str, message: dict[str, Any], chunk: int) -> Iterator[bytes]:
    if kind == "stream-error":
        spec = message
        for name, data in _error_events(spec):
            if name != "error":
                yield _chunk(data)
        exception = _STREAM_ERRORS.get(spec["error"]["type"], "internalServerException")
        yield frame({":exception-type": exception, ":content-type": "application/json",
                     ":message-type": "exception"}, json.dumps({"message": spec["error"]["message"]}).encode())
        return
    for name, data in _events(message, chunk):
        if name == "ping":
            continue  # Bedrock's streams carry no pings
        if name == "message_stop":
            usage = message["usage"]
            data = {**data, "amazon-bedrock-invocationMetrics": {
                "inputTokenCount": usage["input_tokens"], "outputTokenCount": usage["output_tokens"],
                "invocationLatency": 42, "firstByteLatency": 7}}
        yield _chunk(data)


def _chunk(event: dict[str, Any]) -> bytes:
    payload = {"bytes": base64.b64encode(json.dumps(event).encode()).decode(), "p": "abcdefghijklmnopqrstuvwxyz"}
    return frame({":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"},
                 json.dumps(payload).encode())


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event stream message: prelude (lengths and their CRC32), string headers, payload, CRC32 of it all."""
    encoded = b"".join(struct.pack(">B", len(name)) + name.encode() + b"\x07" + struct.pack(">H", len(value.encode()))
                       + value.encode() for name, value in headers.items())
    prelude = struct.pack(">II", 12 + len(encoded) + len(payload) + 4, len(encoded))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def _canonical_query(query: str) -> str:
    pairs = sorted(pair.partition("=")[::2] for pair in query.split("&") if pair)
    return "&".join(f"{key}={value}" for key, value in pairs)
