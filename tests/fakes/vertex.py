"""A scripted stand-in for Claude on Google Vertex AI, and for Google's OAuth token service: a real HTTP server on
127.0.0.1.

It speaks Vertex's wire format and keeps the Anthropic fake's scripting and checks (tests/fakes/messages_api.py)
for what is inside:
- `POST /v1/projects/{project}/locations/{region}/publishers/anthropic/models/{model}:rawPredict` answers JSON;
  `...:streamRawPredict` answers server-sent events. The project and region must be the fake's.
- The body has no `model` (it is in the path), carries `anthropic_version: "vertex-2023-10-16"`, and `stream`
  agrees with the method.
- `Authorization: Bearer <token>` must hold a token the fake issued (or was given); else 401 in Google's format.
- `POST /token` is Google's OAuth 2.0 token endpoint for service accounts: it takes the JWT-bearer grant, checks
  the assertion's RS256 signature with the service account's public key, its issuer, audience, scope and expiry,
  and issues an access token. `fake.service_account()` is a key file whose `token_uri` points here, so
  `GOOGLE_APPLICATION_CREDENTIALS` takes the same path an operator's does.
- Errors: the model's own errors come back as the Messages API's (Vertex passes them on); a scripted 429 is
  Google's quota error (`{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED"}}`).

`fake.bodies` are the requests as Messages API bodies (the model from the path put back); `fake.calls` are the
requests as Vertex saw them.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.fakes.messages_api import FakeMessagesAPI, _Handler, _partial_input

VERSION = "vertex-2023-10-16"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"  # what a service account's assertion is addressed to
_ROUTE = re.compile(r"/v1/projects/(?P<project>[^/]+)/locations/(?P<region>[^/]+)/publishers/anthropic/models/"
                    r"(?P<model>[^/:]+(?:%3[Bb][^/:]*)?):(?P<method>rawPredict|streamRawPredict)")


class FakeVertex(FakeMessagesAPI):
    def __init__(self, *replies: Any, project: str = "honk-test-project", region: str = "us-east5",
                 tokens: tuple[str, ...] = (), **options: Any) -> None:
        super().__init__(*replies, **options)
        self.project, self.region = project, region
        self.tokens: set[str] = set(tokens)  # access tokens it accepts: given, or issued by /token
        self.token_requests: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []  # every prediction request as Vertex saw it
        self.client_email = f"honk@{project}.iam.gserviceaccount.com"
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._issued = itertools.count(1)

    def start(self) -> FakeVertex:
        fake = self

        class Handler(_VertexHandler):
            api = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="fake-vertex", daemon=True)
        self._thread.start()
        return self

    def __enter__(self) -> FakeVertex:
        return self.start()

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def service_account(self) -> dict[str, Any]:
        """A service account key file, as Google issues them, whose token service is this fake."""
        pem = self._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode()
        return {"type": "service_account", "project_id": self.project, "private_key_id": "fakekeyid0001",
                "private_key": pem, "client_email": self.client_email, "client_id": "1234567890",
                "auth_uri": f"{self.url}/auth", "token_uri": f"{self.url}/token",
                "universe_domain": "googleapis.com"}

    def env(self, key_file: Path | None = None) -> dict[str, str]:
        """What an operator sets for Honk to reach this fake as Vertex AI (with `key_file` written from
        `service_account()` when given)."""
        out = {"CLOUD_ML_REGION": self.region, "ANTHROPIC_VERTEX_PROJECT_ID": self.project,
               "ANTHROPIC_VERTEX_BASE_URL": self.base_url}
        if key_file is not None:
            key_file.write_text(json.dumps(self.service_account()))
            out["GOOGLE_APPLICATION_CREDENTIALS"] = str(key_file)
        return out

    @property
    def accepted(self) -> list[dict[str, Any]]:
        return [call for call in self.calls if call["auth"] is None]

    # The token service

    def grant(self, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        record: dict[str, Any] = {"form": {k: v[0] for k, v in form.items()}, "error": None}
        self.token_requests.append(record)
        problem = self._check_grant(record["form"])
        if problem is not None:
            record["error"] = problem
            return 400, {"error": "invalid_grant", "error_description": problem}
        token = f"ya29.fake-access-token-{next(self._issued):04d}"
        with self._lock:
            self.tokens.add(token)
        return 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}

    def _check_grant(self, form: dict[str, str]) -> str | None:
        if form.get("grant_type") != JWT_BEARER:
            return f"unsupported grant_type {form.get('grant_type')!r}"
        try:
            head, payload, signature = form.get("assertion", "").split(".")
            self._key.public_key().verify(_unb64(signature), f"{head}.{payload}".encode(), padding.PKCS1v15(),
                                          hashes.SHA256())
            header, claims = json.loads(_unb64(head)), json.loads(_unb64(payload))
        except (ValueError, InvalidSignature):
            return "Invalid JWT Signature."
        if header.get("alg") != "RS256":
            return f"Invalid JWT: alg {header.get('alg')!r}"
        if claims.get("iss") != self.client_email:
            return "Invalid JWT: unknown issuer"
        if claims.get("aud") != GOOGLE_TOKEN_AUDIENCE:
            return f"Invalid JWT: aud must be {GOOGLE_TOKEN_AUDIENCE}"
        if SCOPE not in str(claims.get("scope", "")).split():
            return f"Invalid JWT: scope must include {SCOPE}"
        if not claims.get("iat", 0) - 300 <= time.time() < claims.get("exp", 0):
            return "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe."
        return None

    # Checks

    def check_auth(self, headers: dict[str, str]) -> str | None:
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return "Request is missing required authentication credential. Expected OAuth 2 access token."
        with self._lock:
            known = auth[7:] in self.tokens
        return None if known else "Request had invalid authentication credentials. Expected OAuth 2 access token."

    def check_body(self, body: Any, stream: bool) -> str | None:
        if not isinstance(body, dict):
            return "the body must be a JSON object"
        if body.get("anthropic_version") != VERSION:
            return f"anthropic_version: must be {VERSION}, not {body.get('anthropic_version')!r}"
        if "model" in body:
            return "model: Extra inputs are not permitted (the model is in the URL)"
        if bool(body.get("stream")) is not stream:
            return "stream must be true for streamRawPredict, and false or absent for rawPredict"
        return None


class _VertexHandler(_Handler):
    api: FakeVertex

    def do_GET(self) -> None:
        self._send_json(404, _google(404, f"no route {self.path}", "NOT_FOUND"))

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        fake = self.api
        path = urlsplit(self.path).path
        if path == "/token":
            status, answer = fake.grant(parse_qs(raw.decode()))
            self._send_json(status, answer)
            return
        route = _ROUTE.fullmatch(path)
        if route is None:
            self._send_json(404, _google(404, f"no route {self.path}", "NOT_FOUND"))
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        stream = route["method"] == "streamRawPredict"
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        call = {"method": "POST", "path": self.path, "project": route["project"], "region": route["region"],
                "model": unquote(route["model"]), "stream": stream, "headers": headers, "body": body,
                "auth": fake.check_auth(headers)}
        with fake._lock:
            fake.calls.append(call)
        if call["auth"] is not None:
            self._send_json(401, _google(401, call["auth"], "UNAUTHENTICATED"))
            return
        if route["project"] != fake.project:
            self._send_json(403, _google(403, f"Permission denied on resource project {route['project']}.",
                                         "PERMISSION_DENIED"))
            return
        if route["region"] != fake.region:
            self._send_json(404, _google(404, f"Publisher model not found in location {route['region']}.",
                                         "NOT_FOUND"))
            return
        if (problem := fake.check_body(body, stream)) is not None:
            self._send_json(400, {"type": "error", "error": {"type": "invalid_request_error", "message": problem}})
            return
        assert isinstance(body, dict)
        messages_body = {"model": call["model"], **{k: v for k, v in body.items() if k != "anthropic_version"}}
        status, extra, payload = fake.handle_messages({**headers, "anthropic-version": VERSION}, messages_body)
        if isinstance(payload, tuple):
            self._stream(*payload)
        elif status == 429:
            self._send_json(429, _google(429, "Quota exceeded for aiplatform.googleapis.com/"
                                              "online_prediction_requests_per_base_model.", "RESOURCE_EXHAUSTED"))
        else:
            if isinstance(payload, dict) and "_partial" in payload:
                partial = payload.pop("_partial")
                payload = json.loads(json.dumps(payload))
                for index, text in partial.items():
                    payload["content"][index]["input"] = _partial_input(text)
            self._send_json(status, payload, extra)


def _google(code: int, message: str, status: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
