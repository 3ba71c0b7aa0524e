"""Test support: real servers on loopback, signed deliveries, App keys, free ports."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT.parent / "shared" / "fixtures" / "webhooks"
SECRET = "it's a secret to everybody"


def free_port() -> int:
    """A free port for a server a test starts later, taken below the kernel's ephemeral range: a port the kernel
    hands out (`bind(0)`) may be given again to a fake started meanwhile, whose answer would then pass for Honk's."""
    low, _ = _ephemeral_range()
    for _ in range(200):
        port = random.randrange(max(1024, low - 12_000), low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:  # the range below is crowded: fall back to the kernel's choice
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


class _QuietServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # pragma: no cover - older uvicorn
        pass

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextmanager
def live_server(app: Any, port: int | None = None) -> Iterator[str]:
    """Serve an ASGI app on 127.0.0.1 from a background thread; yields its base URL."""
    port = port or free_port()
    server = _QuietServer(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False,
                                         lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        server.force_exit = True  # don't wait for requests a test left hanging on purpose
        thread.join(10)


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def delivery_headers(event: str, body: bytes, *, delivery: str | None = None, secret: str = SECRET,
                     **extra: str) -> dict[str, str]:
    return {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "X-Hub-Signature-256": sign(body, secret), "Content-Type": "application/json", **extra}


def post_delivery(client: httpx.Client, event: str, payload: Mapping[str, Any] | bytes, *,
                  delivery: str | None = None, secret: str = SECRET) -> httpx.Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return client.post("/api/github/webhooks", content=body,
                       headers=delivery_headers(event, body, delivery=delivery, secret=secret))


def app_private_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def labeled_payload(*, repo: str = "acme/widgets", number: int = 7, sender: str = "alice",
                    sender_type: str = "User", label: str = "honk", installation: int = 42) -> dict[str, Any]:
    """A realistic `issues.labeled` delivery, as GitHub sends it to an installed App."""
    owner = repo.split("/")[0]
    return {
        "action": "labeled",
        "issue": {"id": 1000 + number, "number": number, "title": "Widgets spin backwards",
                  "body": "They should spin forwards.", "state": "open", "labels": [{"name": label}],
                  "user": {"login": sender, "id": 1, "type": "User"},
                  "html_url": f"https://github.com/{repo}/issues/{number}"},
        "label": {"id": 5, "name": label, "color": "ededed"},
        "repository": {"id": 99, "full_name": repo, "name": repo.split("/")[1], "private": False,
                       "default_branch": "main", "clone_url": f"https://github.com/{repo}.git",
                       "owner": {"login": owner, "id": 2, "type": "Organization"}},
        "sender": {"login": sender, "id": 3, "type": sender_type},
        "installation": {"id": installation, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uNDI="},
    }


def honk_env(tmp: Path, **overrides: str) -> dict[str, str]:
    """An environment for a `honk` subprocess: isolated data dir, known secret, no stray settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "HONK_", "ANTHROPIC_"))}
    env.update({"HONK_DATA_DIR": str(tmp / "data"), "GITHUB_WEBHOOK_SECRET": SECRET, "PYTHONUNBUFFERED": "1"})
    env.update(overrides)
    return env


class HonkProcess:
    """A real `honk` command in a subprocess, with its log captured to a file."""

    def __init__(self, args: list[str], env: Mapping[str, str], cwd: Path, log: Path) -> None:
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "app", *args], env=dict(env), cwd=cwd,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def wait_http(self, url: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"honk exited with {self.proc.returncode}:\n{self.output()}")
            try:
                httpx.get(url, timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError(f"honk did not answer at {url}:\n{self.output()}")

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int | None = None, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            if sig is None:
                self.proc.terminate()
            else:
                self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def wait_for(predicate: Any, timeout: float = 20, interval: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def postgres_problem(url: str) -> str | None:
    """Why the PostgreSQL server at this SQLAlchemy URL cannot be used, or None when it answers."""
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    try:
        with psycopg.connect(host=parsed.host, port=parsed.port or 5432, user=parsed.username,
                             password=parsed.password, dbname=parsed.database, connect_timeout=3):
            return None
    except Exception as exc:
        return f"PostgreSQL at {parsed.render_as_string(hide_password=True)} is not answering: {exc}"
