"""Webhook intake side by side: Honk (`serve` and `web`, SQLite and PostgreSQL) against Probot and a bare
FastAPI route, all measured on this machine in one run. Prints figures and ratios; asserts nothing.

    .venv/bin/python bench/intake.py [--seconds 10] [--runs 3] [--connections 10]
                                     [--only honk-web-sqlite,probot,...] [--memory] [--keep]

Servers (each a subprocess on 127.0.0.1, started fresh for every run, its database kept across runs):
- probot: Probot (the Node framework for GitHub Apps) running an app that does nothing on `issues.labeled`
  and stores nothing; it verifies the signature (@octokit/webhooks) and answers 200 "ok". Installed with npm
  into the temp dir on every run: probot@14 on Node >= 20.18.1, probot@13 on Node 18-20.17. Needs `node` and
  `npm`; without them it is skipped and Honk is compared with the bare route only.
- bare-fastapi: a FastAPI route on uvicorn that verifies nothing and stores nothing (always measured).
- honk-web-sqlite, honk-serve-sqlite, honk-web-postgres, honk-serve-postgres: `honk web` / `honk serve`
  with HONK_DATABASE_URL on SQLite in the temp dir, or on a fresh PostgreSQL database (created on the server
  at $HONK_TEST_POSTGRES_URL, default postgresql+psycopg://postgres@127.0.0.1:5432/postgres, dropped at the
  end; skipped with the reason when it does not answer). No GitHub App is configured: deliveries are still
  stored, and with `serve` the in-process worker picks the queued jobs up and fails them for lack of an App
  while the load runs - that is part of what `serve` costs.

Paths, the same signed bodies (X-Hub-Signature-256) to every server:
- queued: `issues.labeled` with the `honk` label and a new X-GitHub-Delivery on every request (the signature
  covers the body only, so one body serves every id); Honk answers 202 {"status":"queued",...}.
- ignored: `ping`, a new delivery id on every request; Honk stores it and answers 200 {"status":"ignored"}.
- duplicate: the `issues.labeled` body with one delivery id, sent once before the measurement; Honk answers
  200 {"status":"duplicate"}. Probot has no such notion: to it this is the queued path again.

Load: `wrk` (Debian: `sudo apt-get install wrk`), closed loop, --connections connections on one wrk thread,
--seconds per measurement, --runs runs (the table shows the median run; runs go round all servers so that
a busy moment on the machine does not land on one server only), with a Lua script written to the temp dir
that makes the delivery ids and checks every answer's status and body. Without wrk, a Python asyncio client
(raw HTTP/1.1 on keep-alive sockets) does the same; it spends more of the cores the servers share.
`server CPU ms/req` is the server process's user+system CPU time over the measurement divided by the
answers, which shifts less than req/s does when other work runs on the machine (the PostgreSQL server's own
CPU is not in it). The output names the Honk commit measured, and says so when app/ changed during the run.

--memory: the RSS of a fresh `honk web` on SQLite at 0, 25%, 50%, 75% and 100% of --memory-deliveries
(default 100,000) queued deliveries (goal: flat after warm-up), sent by the Python client, which can stop at
a count (wrk runs for a time only). At ~500-1,000 deliveries/s on 2 cores that takes 2-4 minutes, hence off
by default.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.support import (
    SECRET,
    app_private_key,
    delivery_headers,
    free_port,
    honk_env,
    labeled_payload,
    postgres_problem,
)

ROOT = Path(__file__).resolve().parent.parent
HOOK_PATH = "/api/github/webhooks"
PATHS = ("queued", "ignored", "duplicate")
HONK_SERVERS = ("honk-web-sqlite", "honk-serve-sqlite", "honk-web-postgres", "honk-serve-postgres")
SERVERS = ("probot", "bare-fastapi", *HONK_SERVERS)
PG_ADMIN_URL = os.environ.get("HONK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
START_TIMEOUT = 60.0  # seconds for a server to answer after it is started
STOP_TIMEOUT = 20.0  # seconds between SIGTERM and SIGKILL
NPM_TIMEOUT = 300.0
MEMORY_CHUNK_TIMEOUT = 900.0  # seconds at most per quarter of the memory run
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

BARE_APP = """
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
app = FastAPI()
@app.post("/api/github/webhooks")
async def hook(request: Request):
    await request.body()
    return JSONResponse({"status": "queued", "job": 0}, status_code=202)
"""

PROBOT_APP = """// A Probot app that does nothing: the peer of Honk's intake, minus the storing.
module.exports = (app) => {
  app.on("issues.labeled", async () => {});
};
"""

# One wrk script for every measurement; what differs comes in as arguments (after `--` on wrk's command line).
WRK_SCRIPT = r"""-- written by bench/intake.py
-- args: body_file event mode(unique|fixed) delivery token signature expect_status expect_text
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(args[1], "rb"))
  local body = f:read("*a")
  f:close()
  mode = args[3]
  token = args[5]
  expect_status = tonumber(args[7])
  expect_text = args[8]
  ok, bad, first_bad = 0, 0, ""
  wrk.method = "POST"
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["User-Agent"] = "GitHub-Hookshot/bench"
  wrk.headers["X-GitHub-Event"] = args[2]
  wrk.headers["X-Hub-Signature-256"] = args[6]
  wrk.headers["X-GitHub-Delivery"] = args[4]
  fixed_request = wrk.format()
end

function request()
  if mode == "fixed" then
    return fixed_request
  end
  counter = counter + 1
  wrk.headers["X-GitHub-Delivery"] = string.format("%s-%04x-4000-8000-%012x", token, tid, counter)
  return wrk.format()
end

function response(status, headers, body)
  if status == expect_status and (expect_text == "" or string.find(body or "", expect_text, 1, true)) then
    ok = ok + 1
  else
    bad = bad + 1
    if first_bad == "" then
      first_bad = status .. " " .. string.gsub(string.sub(body or "", 1, 200), "%s+", " ")
    end
  end
end

function done(summary, latency, requests)
  local ok_all, bad_all, first = 0, 0, ""
  for _, t in ipairs(threads) do
    ok_all = ok_all + t:get("ok")
    bad_all = bad_all + t:get("bad")
    if first == "" then first = t:get("first_bad") end
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH duration_us=%.0f requests=%.0f ok=%.0f bad=%.0f socket_errors=%.0f p50_us=%.0f p99_us=%.0f\n",
    summary.duration, summary.requests, ok_all, bad_all, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
  io.write("BENCH first_bad=" .. first .. "\n")
end
"""


# --- payloads ---------------------------------------------------------------------------------------------

def bodies() -> dict[str, tuple[str, bytes]]:
    """Event and body per path: the same bytes go to every server."""
    labeled = json.dumps(labeled_payload()).encode()
    ping = json.dumps({
        "zen": "Keep it logically awesome.", "hook_id": 123,
        "hook": {"type": "App", "id": 123, "name": "web", "active": True, "events": ["issues", "issue_comment"],
                 "config": {"content_type": "json", "insecure_ssl": "0", "url": "https://example.test/hook"},
                 "app_id": 1},
        "sender": {"login": "alice", "id": 3, "type": "User"},
    }).encode()
    return {"queued": ("issues", labeled), "ignored": ("ping", ping), "duplicate": ("issues", labeled)}


# --- processes --------------------------------------------------------------------------------------------

@dataclass
class Server:
    name: str
    cmd: list[str]
    env: dict[str, str]
    cwd: Path
    ready_path: str  # GET it until it answers
    expect: dict[str, tuple[int, str]]  # path -> (status, text the body contains)
    database_url: str | None = None
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


RUNNING: list[subprocess.Popen[bytes]] = []  # everything this script started and has not stopped yet


def start(server: Server, logs: Path) -> None:
    server.port = free_port()
    server.starts += 1
    log = (logs / f"{server.name}.{server.starts}.log").open("wb")
    cmd = [part.replace("{port}", str(server.port)) for part in server.cmd]
    env = {**server.env, "PORT": str(server.port)}
    # A session of its own: Ctrl-C in the terminal reaches this script, which stops the server (and anything
    # the server started) by its process group.
    proc = subprocess.Popen(cmd, env=env, cwd=server.cwd, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    RUNNING.append(proc)
    server.proc = proc
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {proc.returncode}; see {logs}/{server.name}.*.log")
        try:
            if httpx.get(server.url + server.ready_path, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    stop(proc)
    raise RuntimeError(f"{server.name} did not answer within {START_TIMEOUT:.0f}s; see {logs}")


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None:
        return
    for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, 10.0)):
        if proc.poll() is not None:
            break
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(wait)
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers of the group, if the leader went first
    if proc in RUNNING:
        RUNNING.remove(proc)


def stop_all() -> None:
    for proc in list(RUNNING):
        stop(proc)


@contextmanager
def running(server: Server, logs: Path) -> Iterator[Server]:
    start(server, logs)
    try:
        yield server
    finally:
        stop(server.proc)
        server.proc = None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads)."""
    with suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return 0.0


def code_state() -> tuple[str, tuple[tuple[str, int, int], ...]]:
    """The Honk commit under measurement, and a fingerprint of app/ to see whether it changed meanwhile."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=30).stdout.strip() or "?"
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "app"], cwd=ROOT, capture_output=True,
                               text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        head, dirty = "?", ""
    files = []
    for path in sorted((ROOT / "app").rglob("*.py")):
        with suppress(OSError):
            info = path.stat()
            files.append((str(path), info.st_mtime_ns, info.st_size))
    return head + (" with uncommitted changes in app/" if dirty else ""), tuple(files)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# --- servers ----------------------------------------------------------------------------------------------

def honk_command() -> list[str]:
    for candidate in (Path(sys.executable).parent / "honk", ROOT / ".venv" / "bin" / "honk"):
        if candidate.exists():
            return [str(candidate)]
    return [sys.executable, "-m", "app"]


def honk_expect() -> dict[str, tuple[int, str]]:
    return {"queued": (202, '"queued"'), "ignored": (200, '"ignored"'), "duplicate": (200, '"duplicate"')}


def _pg_admin() -> dict[str, object]:
    admin = make_url(PG_ADMIN_URL)
    return {"host": admin.host, "port": admin.port or 5432, "user": admin.username, "password": admin.password,
            "dbname": admin.database, "autocommit": True, "connect_timeout": 5}


def create_pg_database() -> tuple[str, str]:
    """A fresh, empty database (like tests/conftest.py's `postgres_url`); its name and URL."""
    name = f"honk_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(**_pg_admin()) as conn:  # type: ignore[arg-type]
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(name: str) -> None:
    with psycopg.connect(**_pg_admin()) as conn:  # type: ignore[arg-type]
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def honk_server(name: str, tmp: Path, database_url: str) -> Server:
    command = "serve" if "-serve-" in name else "web"
    home = tmp / name
    home.mkdir()
    # WARNING, like Probot's LOG_LEVEL=warn: no line per delivery (each is logged at INFO).
    env = honk_env(home, HONK_DATABASE_URL=database_url, HONK_LOG_LEVEL="WARNING")
    return Server(name, [*honk_command(), command, "--host", "127.0.0.1", "--port", "{port}"], env, home,
                  "/healthz", honk_expect(), database_url=database_url)


def bare_server(tmp: Path) -> Server:
    home = tmp / "bare-fastapi"
    home.mkdir()
    (home / "bare_app.py").write_text(BARE_APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "HONK_"))}
    cmd = [sys.executable, "-m", "uvicorn", "bare_app:app", "--host", "127.0.0.1", "--port", "{port}",
           "--log-level", "warning", "--no-access-log"]
    return Server("bare-fastapi", cmd, env, home, "/", dict.fromkeys(PATHS, (202, "")))


def node_version() -> tuple[int, int, int] | None:
    if not (shutil.which("node") and shutil.which("npm")):
        return None
    out = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    match = re.match(r"v(\d+)\.(\d+)\.(\d+)", out)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def probot_server(tmp: Path) -> tuple[Server | None, str]:
    """Install Probot with npm into the temp dir and describe it; (None, why) when it cannot be had."""
    version = node_version()
    if version is None:
        return None, "node/npm not found: Probot skipped, Honk is compared with the bare FastAPI route"
    if version >= (20, 18, 1):
        spec = "probot@14"
    elif version >= (18, 0, 0):
        spec = "probot@13"
    else:
        return None, f"Node {'.'.join(map(str, version))} is older than Probot 13 supports: Probot skipped"
    home = tmp / "probot"
    home.mkdir()
    (home / "package.json").write_text(json.dumps({"name": "honk-bench-probot", "private": True}))
    (home / "app.cjs").write_text(PROBOT_APP)
    print(f"installing {spec} with npm into {home} ...", flush=True)
    try:
        done = subprocess.run(["npm", "install", "--no-audit", "--no-fund", spec], cwd=home, capture_output=True,
                              text=True, timeout=NPM_TIMEOUT)
    except subprocess.TimeoutExpired:
        return None, f"`npm install {spec}` took over {NPM_TIMEOUT:.0f}s: Probot skipped"
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        return None, f"`npm install {spec}` failed ({tail}): Probot skipped"
    engine = sorted(set(re.findall(r"package: '([^']+)'", done.stderr)))

    def installed(package: str) -> str:
        with suppress(OSError, ValueError):
            return json.loads((home / "node_modules" / package / "package.json").read_text())["version"]
        return "?"

    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "HONK_"))}
    env.update({"APP_ID": "1", "PRIVATE_KEY": app_private_key(), "WEBHOOK_SECRET": SECRET, "HOST": "127.0.0.1",
                "LOG_LEVEL": "warn", "LOG_FORMAT": "json", "NODE_ENV": "production"})
    cmd = ["node", str(home / "node_modules" / "probot" / "lib" / "bin" / "probot.js"), "run", "./app.cjs"]
    about = (f"Probot {installed('probot')} (`npm install {spec}`; @octokit/webhooks {installed('@octokit/webhooks')})"
             f" on Node {'.'.join(map(str, version))}")
    if engine:
        about += f"; npm warned that {', '.join(engine)} declare(s) a newer Node (EBADENGINE)"
    return Server("probot", cmd, env, home, "/ping", dict.fromkeys(PATHS, (200, "ok"))), about


# --- load -------------------------------------------------------------------------------------------------

@dataclass
class Load:
    seconds: float
    ok: int  # answers with the expected status and body
    bad: int  # answers, but not the expected ones
    socket_errors: int
    p50_ms: float
    p99_ms: float
    first_bad: str = ""
    cpu_s: float = 0.0

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return self.bad + self.socket_errors

    @property
    def cpu_ms_per_req(self) -> float:
        answers = self.ok + self.bad
        return self.cpu_s * 1000 / answers if answers else 0.0


@dataclass
class Shot:
    """One measurement's request: what to send and what to expect back."""
    event: str
    body: bytes
    body_file: Path
    fixed_delivery: str | None  # None: a new delivery id per request
    expect: tuple[int, str]

    @property
    def signature(self) -> str:
        return delivery_headers(self.event, self.body)["X-Hub-Signature-256"]


def run_wrk(wrk: str, script: Path, url: str, shot: Shot, seconds: float, connections: int, log: Path) -> Load:
    token = uuid.uuid4().hex[:8]
    cmd = [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s", "--latency",
           "-s", str(script), url + HOOK_PATH, "--", str(shot.body_file), shot.event,
           "fixed" if shot.fixed_delivery else "unique", shot.fixed_delivery or "-", token, shot.signature,
           str(shot.expect[0]), shot.expect[1]]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd[:9])} ...\n{done.stdout}{done.stderr}\n")
    figures = dict(re.findall(r"(\w+)=(\d+)", "".join(re.findall(r"^BENCH (duration.*)$", done.stdout, re.M))))
    if done.returncode != 0 or "ok" not in figures:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    first_bad = (re.findall(r"^BENCH first_bad=(.*)$", done.stdout, re.M) or [""])[0]
    return Load(int(figures["duration_us"]) / 1e6, int(figures["ok"]), int(figures["bad"]),
                int(figures["socket_errors"]), int(figures["p50_us"]) / 1000, int(figures["p99_us"]) / 1000,
                first_bad)


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    if "content-length" in headers:
        return status, await reader.readexactly(int(headers["content-length"]))
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = bytearray()
        for _ in range(100_000):  # bounded: a webhook answer is a few chunks
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
        return status, bytes(body)
    raise ValueError("an answer without Content-Length or chunked encoding")


async def _python_load(port: int, shot: Shot, seconds: float, connections: int, limit: int) -> Load:
    """A closed-loop client on raw keep-alive sockets, for when wrk is missing."""
    token = uuid.uuid4().hex[:8]
    static = (f"POST {HOOK_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
              f"User-Agent: GitHub-Hookshot/bench\r\nX-GitHub-Event: {shot.event}\r\n"
              f"X-Hub-Signature-256: {shot.signature}\r\nContent-Length: {len(shot.body)}\r\n").encode()
    samples: list[float] = []
    counts = {"ok": 0, "bad": 0, "socket": 0, "sent": 0}
    first_bad: list[str] = []
    deadline = time.perf_counter() + seconds

    async def connection(number: int) -> None:
        sent = 0
        for _ in range(1000):  # reconnects, bounded
            if time.perf_counter() >= deadline or (limit and counts["sent"] >= limit):
                return
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                counts["socket"] += 1
                await asyncio.sleep(0.05)
                continue
            try:
                while time.perf_counter() < deadline and not (limit and counts["sent"] >= limit):
                    counts["sent"] += 1  # taken before sending, so that a limit is met exactly
                    sent += 1
                    delivery = shot.fixed_delivery or f"{token}-{number:04x}-4000-8000-{sent:012x}"
                    began = time.perf_counter()
                    writer.write(static + f"X-GitHub-Delivery: {delivery}\r\n\r\n".encode() + shot.body)
                    status, body = await asyncio.wait_for(_read_response(reader), 10)
                    samples.append((time.perf_counter() - began) * 1000)
                    if status == shot.expect[0] and shot.expect[1].encode() in body:
                        counts["ok"] += 1
                    else:
                        counts["bad"] += 1
                        if not first_bad:
                            first_bad.append(f"{status} {body[:200].decode(errors='replace')}")
            except (TimeoutError, OSError, ValueError, asyncio.IncompleteReadError):
                counts["socket"] += 1
            finally:
                writer.close()
                with suppress(OSError):
                    await writer.wait_closed()

    started = time.perf_counter()
    await asyncio.gather(*(connection(n) for n in range(connections)))
    elapsed = time.perf_counter() - started
    samples.sort()
    p50 = statistics.median(samples) if samples else 0.0
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))] if samples else 0.0
    return Load(elapsed, counts["ok"], counts["bad"], counts["socket"], p50, p99, "".join(first_bad))


@dataclass
class Loader:
    wrk: str | None
    script: Path
    connections: int
    logs: Path

    def __call__(self, server: Server, shot: Shot, seconds: float, limit: int = 0) -> Load:
        assert server.proc is not None
        before = cpu_seconds(server.proc.pid)
        if self.wrk and not limit:  # wrk runs for a time, never for a count (a stopped thread still waits)
            load = run_wrk(self.wrk, self.script, server.url, shot, seconds, self.connections,
                           self.logs / f"{server.name}.wrk.log")
        else:
            load = asyncio.run(_python_load(server.port, shot, seconds, self.connections, limit))
        load.cpu_s = cpu_seconds(server.proc.pid) - before
        return load


# --- the measurements -------------------------------------------------------------------------------------

@dataclass
class Results:
    loads: dict[tuple[str, str], list[Load]] = field(default_factory=dict)

    def add(self, server: str, path: str, load: Load) -> None:
        self.loads.setdefault((server, path), []).append(load)

    def median(self, server: str, path: str) -> Load | None:
        runs = sorted(self.loads.get((server, path), []), key=lambda load: load.rps)
        return runs[(len(runs) - 1) // 2] if runs else None


def shots_for(server: Server, tmp: Path, duplicate_id: str) -> dict[str, Shot]:
    shots = {}
    for path, (event, body) in bodies().items():
        body_file = tmp / f"body-{path}.json"
        body_file.write_bytes(body)
        shots[path] = Shot(event, body, body_file, duplicate_id if path == "duplicate" else None,
                           server.expect[path])
    return shots


def seed_duplicate(server: Server, shot: Shot) -> None:
    """Send the duplicate path's delivery once, so that every request of the measurement repeats it."""
    headers = delivery_headers(shot.event, shot.body, delivery=shot.fixed_delivery)
    answer = httpx.post(server.url + HOOK_PATH, content=shot.body, headers=headers, timeout=30)
    if answer.status_code >= 300:
        raise RuntimeError(f"{server.name}: seeding the duplicate answered {answer.status_code} {answer.text}")


def measure(servers: list[Server], loader: Loader, args: argparse.Namespace, tmp: Path,
            log: Callable[[str], None]) -> Results:
    results = Results()
    duplicate_id = str(uuid.uuid4())
    warmup = min(2.0, args.seconds / 2)
    for run in range(1, args.runs + 1):
        for server in servers:
            shots = shots_for(server, tmp, duplicate_id)
            with running(server, loader.logs):
                loader(server, shots["queued"], warmup)  # not reported: imports, JIT, pools, page cache
                for path in PATHS:
                    if path == "duplicate":
                        seed_duplicate(server, shots[path])
                    load = loader(server, shots[path], args.seconds)
                    results.add(server.name, path, load)
                    note = f"  {load.errors} unexpected: {load.first_bad[:120]}" if load.errors else ""
                    log(f"run {run}/{args.runs} {server.name:<20} {path:<10} {load.rps:8.0f} req/s  "
                        f"p50 {load.p50_ms:6.2f} ms  p99 {load.p99_ms:7.2f} ms{note}")
    return results


def stored(database_url: str) -> str:
    """What a Honk database holds afterwards: deliveries, and jobs by status (the worker's doing, with serve)."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            deliveries = conn.execute(text("SELECT count(*) FROM deliveries")).scalar_one()
            jobs = dict(conn.execute(text("SELECT status, count(*) FROM jobs GROUP BY status")).all())
    except Exception as exc:
        return f"(could not read: {exc})"
    finally:
        engine.dispose()
    by_status = ", ".join(f"{count} {status}" for status, count in sorted(jobs.items())) or "none"
    return f"{deliveries} deliveries; jobs: {by_status}"


def memory_run(server: Server, loader: Loader, tmp: Path, total: int, log: Callable[[str], None]) -> None:
    shots = shots_for(server, tmp, str(uuid.uuid4()))
    quarter = max(1, total // 4)
    db_file = Path(make_url(server.database_url or "").database or "/nonexistent")
    rows: list[tuple[int, float, float, float]] = []

    def db_mib() -> float:
        return sum(f.stat().st_size for f in (db_file, db_file.with_name(db_file.name + "-wal"))
                   if f.exists()) / 2**20

    with running(server, loader.logs):
        assert server.proc is not None
        sent = 0
        rows.append((0, rss_mib(server.proc.pid), db_mib(), 0.0))
        for _ in range(4):
            load = loader(server, shots["queued"], MEMORY_CHUNK_TIMEOUT, limit=quarter)
            sent += load.ok + load.bad
            rows.append((sent, rss_mib(server.proc.pid), db_mib(), load.rps))
            log(f"memory: {sent} deliveries, RSS {rows[-1][1]:.1f} MiB, {load.rps:.0f}/s"
                + (f", {load.errors} unexpected: {load.first_bad[:120]}" if load.errors else ""))
    print(f"\nRSS of `honk web` on SQLite over {total:,} queued deliveries ({loader.connections} connections, "
          "Python client):\n")
    print("| deliveries | RSS MiB | vs 0 | vs first quarter | SQLite + WAL MiB | deliveries/s in the quarter |")
    print("| --- | --- | --- | --- | --- | --- |")
    for sent, rss, size, rps in rows:
        first = rows[1][1] if len(rows) > 1 else rss
        print(f"| {sent:,} | {rss:.1f} | {rss - rows[0][1]:+.1f} | {rss - first:+.1f} | {size:.1f} | "
              + (f"{rps:.0f} |" if sent else "- |"))


def print_table(results: Results, servers: list[Server], has_probot: bool) -> None:
    header = "| server | path | req/s | p50 ms | p99 ms | server CPU ms/req | errors |"
    header += " vs Probot |" if has_probot else ""
    header += " vs bare |"
    print("\n" + header)
    print("|" + " --- |" * (header.count("|") - 1))
    for server in servers:
        for path in PATHS:
            load = results.median(server.name, path)
            if load is None:
                continue
            runs = results.loads[(server.name, path)]
            spread = (f" ({min(r.rps for r in runs):.0f}-{max(r.rps for r in runs):.0f})" if len(runs) > 1 else "")
            row = (f"| {server.name} | {path} | {load.rps:.0f}{spread} | {load.p50_ms:.2f} | {load.p99_ms:.2f} | "
                   f"{load.cpu_ms_per_req:.2f} | {sum(r.errors for r in runs)} |")
            for peer in (["probot"] if has_probot else []) + ["bare-fastapi"]:
                base = results.median(peer, path)
                row += f" {load.rps / base.rps:.2f} |" if base and base.rps else " - |"
            print(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10, help="length of each measurement (default 10)")
    parser.add_argument("--runs", type=int, default=3, help="runs of every measurement; the median is shown")
    parser.add_argument("--connections", type=int, default=10, help="concurrent connections (default 10)")
    parser.add_argument("--only", default="", help=f"comma-separated servers among {', '.join(SERVERS)} "
                        "(bare-fastapi is measured always)")
    parser.add_argument("--memory", action="store_true", help="also measure honk web's RSS over many deliveries")
    parser.add_argument("--memory-deliveries", type=int, default=100_000, help="for --memory (default 100000)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, databases, wrk output)")
    args = parser.parse_args()
    if not (0 < args.seconds <= 3600 and 0 < args.runs <= 100 and 0 < args.connections <= 1000
            and 0 < args.memory_deliveries <= 10_000_000):
        parser.error("--seconds, --runs, --connections or --memory-deliveries out of range")
    wanted = [name.strip() for name in args.only.split(",") if name.strip()] or list(SERVERS)
    unknown = sorted(set(wanted) - set(SERVERS))
    if unknown:
        parser.error(f"unknown server(s) {', '.join(unknown)}; choose among {', '.join(SERVERS)}")

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGINT too: a background job inherits it ignored
        signal.signal(signum, terminate)

    tmp = Path(tempfile.mkdtemp(prefix="honk-intake-bench-"))
    logs = tmp / "logs"
    logs.mkdir()
    pg_databases: list[str] = []
    started_at, load_before = time.monotonic(), os.getloadavg()
    commit, fingerprint = code_state()

    def log(line: str) -> None:
        print(line, flush=True)

    try:
        notes: list[str] = []
        wrk = shutil.which("wrk")
        if wrk is None:
            notes.append("wrk not found (Debian: `sudo apt-get install wrk`): using the Python asyncio client, "
                         "which takes more of the CPU the servers need; figures are not comparable with wrk's")
        else:
            notes.append(subprocess.run([wrk, "--version"], capture_output=True, text=True,
                                        timeout=30).stdout.splitlines()[0].split(" Copyright")[0])
        script = tmp / "delivery.lua"
        script.write_text(WRK_SCRIPT)
        loader = Loader(wrk, script, args.connections, logs)

        servers: list[Server] = []
        has_probot = False
        if "probot" in wanted:
            probot, about = probot_server(tmp)
            notes.append(about)
            if probot:
                servers.append(probot)
                has_probot = True
        servers.append(bare_server(tmp))
        pg_problem = postgres_problem(PG_ADMIN_URL) if any(n.endswith("-postgres") for n in wanted) else None
        if pg_problem:
            notes.append(f"{pg_problem}: the -postgres servers are skipped")
        for name in HONK_SERVERS:
            if name not in wanted or (name.endswith("-postgres") and pg_problem):
                continue
            if name.endswith("-sqlite"):
                url = f"sqlite:///{tmp / name / 'honk.db'}"
            else:
                database, url = create_pg_database()
                pg_databases.append(database)
            servers.append(honk_server(name, tmp, url))

        notes.insert(0, f"Honk at {commit}")
        for note in notes:
            log(f"- {note}")
        log(f"- {os.cpu_count()} cores, load average {load_before[0]:.2f} at the start; "
            f"{args.connections} connections, {args.seconds:g}s per measurement, {args.runs} run(s); temp dir {tmp}")
        results = measure(servers, loader, args, tmp, log)

        load_after = os.getloadavg()
        if code_state()[1] != fingerprint:
            print("\nWARNING: files under app/ changed during the run, and the servers restart for every run: "
                  "these figures may mix two versions of Honk.")
        print(f"\nWebhook intake, Honk {commit}, {os.cpu_count()} cores shared by client and server "
              f"(other work may be running: load average {load_before[0]:.2f} before, {load_after[0]:.2f} after); "
              f"{'wrk' if wrk else 'Python client'}, {args.connections} connections closed loop, "
              f"{args.seconds:g}s x {args.runs} run(s), median run shown (range of req/s in brackets):")
        print_table(results, servers, has_probot)
        print("\nreq/s counts answers with the expected status and body only; errors = unexpected answers + "
              "socket errors over all runs.")
        for server in servers:
            if server.database_url:
                print(f"- {server.name} stored: {stored(server.database_url)}")
        if has_probot:
            print("- Probot stores nothing and has no duplicate notion: its duplicate path is its queued path again.")
        print("- honk-serve-* run the worker in the same process: with no GitHub App configured it fails each job "
              "it claims at once, one at a time (every job here is for the same issue), its claims taking the "
              "same database as the intake's writes.")

        if args.memory:
            url = f"sqlite:///{tmp / 'honk-web-sqlite-memory' / 'honk.db'}"
            memory_run(honk_server("honk-web-sqlite-memory", tmp, url), loader, tmp, args.memory_deliveries, log)
        print(f"\n(total {time.monotonic() - started_at:.0f}s)")
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the servers", file=sys.stderr)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        stop_all()
        for database in pg_databases:
            try:
                drop_pg_database(database)
            except Exception as exc:
                print(f"could not drop PostgreSQL database {database}: {exc}", file=sys.stderr)
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
