"""Slack intake: signed `app_mention` events acknowledged per second, and their latency, on one `honk web` process,
beside a bare FastAPI route measured in the same run on this machine. Prints figures and the ratio; asserts
nothing. The goal is a p99 under 50 ms (Slack allows three seconds; a slow answer is retried and doubles the work).

    .venv/bin/python bench/slack.py [--seconds 8] [--connections 4] [--runs 2] [--only honk,bare]

Servers (each a subprocess on 127.0.0.1):
- honk: `honk web` on SQLite in a temp dir, with SLACK_BOT_TOKEN / SLACK_SIGNING_SECRET set (its Web API on a
  closed port: intake makes no Slack call). Every event goes through Bolt (signature, timestamp, routing), the
  mention listener, and the group-commit writer: it is stored with its SLACK job before the answer
  (200 {"status": "queued", "job": N}). After each run the bench counts the stored deliveries against the answers.
- bare: a FastAPI route on uvicorn that reads the body and answers the same JSON: no verification, no storage.

Load: --connections closed-loop clients on raw HTTP/1.1 keep-alive sockets (asyncio, in this process), each
request a new `app_mention` event with its own event_id, signed for its own timestamp as Slack signs (v0,
HMAC-SHA256). One second of warm-up per server and run is not counted. Runs alternate the servers; the table shows
each server's median run. `server CPU ms/req` is the server process's user+system CPU time over the measurement
divided by its answers.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from sqlalchemy import create_engine, text

from tests.fakes.slack_events import BOT_USER_ID, SIGNING_SECRET, app_mention
from tests.support import free_port, honk_env

ROOT = Path(__file__).resolve().parent.parent
EVENTS_PATH = "/api/slack/events"
START_TIMEOUT = 60.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
GOAL_P99_MS = 50.0

BARE_APP = """
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
app = FastAPI()
@app.post("/api/slack/events")
async def events(request: Request):
    await request.body()
    return JSONResponse({"status": "queued", "job": 0})
"""


@dataclass
class Server:
    name: str
    cmd: list[str]
    env: dict[str, str]
    cwd: Path
    database_url: str | None = None
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Load:
    seconds: float
    ok: int
    bad: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    cpu_s: float = 0.0
    first_bad: str = ""

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms_per_req(self) -> float:
        return self.cpu_s * 1000 / (self.ok + self.bad) if self.ok + self.bad else 0.0


# --- servers ----------------------------------------------------------------------------------------------


def start(server: Server, logs: Path) -> None:
    server.port = free_port()
    cmd = [part.replace("{port}", str(server.port)) for part in server.cmd]
    with (logs / f"{server.name}.log").open("ab") as log:
        server.proc = subprocess.Popen(cmd, env=server.env, cwd=server.cwd, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.proc.returncode}; see {logs}/{server.name}.log")
        try:
            httpx.get(server.url + "/healthz", timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    stop(server)
    raise RuntimeError(f"{server.name} did not answer within {START_TIMEOUT:.0f}s")


def stop(server: Server) -> None:
    proc, server.proc = server.proc, None
    if proc is None:
        return
    for sig, wait in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 10.0)):
        if proc.poll() is not None:
            break
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(wait)


def cpu_seconds(pid: int) -> float:
    with suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return 0.0


def honk_server(tmp: Path) -> Server:
    database_url = f"sqlite:///{tmp / 'honk.db'}"
    env = honk_env(tmp, HONK_DATABASE_URL=database_url, SLACK_BOT_TOKEN="xoxb-bench-not-used",
                   SLACK_SIGNING_SECRET=SIGNING_SECRET, SLACK_API_URL="http://127.0.0.1:9/api/")
    command = [str(ROOT / ".venv" / "bin" / "honk")] if (ROOT / ".venv" / "bin" / "honk").exists() \
        else [sys.executable, "-m", "app"]
    return Server("honk", [*command, "web", "--port", "{port}"], env, tmp, database_url)


def bare_server(tmp: Path) -> Server:
    (tmp / "bare_app.py").write_text(BARE_APP)
    cmd = [sys.executable, "-m", "uvicorn", "bare_app:app", "--host", "127.0.0.1", "--port", "{port}",
           "--log-level", "warning", "--no-access-log"]
    return Server("bare", cmd, {**os.environ, "PYTHONPATH": str(tmp)}, tmp)


# --- load -------------------------------------------------------------------------------------------------


def envelope_template() -> tuple[bytes, bytes]:
    """An `app_mention` callback as Slack sends it, split around its event_id (unique per request)."""
    event = app_mention("acme/widgets make the spinner spin forwards", user="U0ALICE", channel="C0GENERAL")
    payload = {"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "team_id": "T0ACME001", "context_team_id": "T0ACME001",
               "context_enterprise_id": None, "api_app_id": "A0HONK001", "event": event, "type": "event_callback",
               "event_id": "@@EVENT@@", "event_time": int(time.time()),
               "authorizations": [{"enterprise_id": None, "team_id": "T0ACME001", "user_id": BOT_USER_ID,
                                   "is_bot": True, "is_enterprise_install": False}],
               "is_ext_shared_channel": False, "event_context": "4-" + uuid.uuid4().hex}
    before, _, after = json.dumps(payload).encode().partition(b"@@EVENT@@")
    return before, after


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    if "content-length" not in headers:
        raise ValueError("an answer without Content-Length")
    return status, await reader.readexactly(int(headers["content-length"]))


async def load(port: int, seconds: float, warmup: float, connections: int) -> Load:
    before, after = envelope_template()
    secret = SIGNING_SECRET.encode()
    token = uuid.uuid4().hex[:8].upper()
    samples: list[float] = []
    counts = {"ok": 0, "bad": 0, "socket": 0}
    first_bad: list[str] = []
    start = time.perf_counter()
    measuring_from, deadline = start + warmup, start + warmup + seconds

    async def connection(number: int) -> None:
        sent = 0
        while time.perf_counter() < deadline:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                counts["socket"] += 1
                await asyncio.sleep(0.05)
                continue
            try:
                while time.perf_counter() < deadline:
                    sent += 1
                    body = before + f"Ev{token}{number:03d}{sent:07d}".encode() + after
                    stamp = str(int(time.time())).encode()
                    signature = hmac.new(secret, b"v0:" + stamp + b":" + body, hashlib.sha256).hexdigest()
                    request = (f"POST {EVENTS_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                               f"Content-Type: application/json\r\nUser-Agent: Slackbot 1.0 (+https://api.slack.com/"
                               f"robots)\r\nX-Slack-Request-Timestamp: {stamp.decode()}\r\n"
                               f"X-Slack-Signature: v0={signature}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
                    began = time.perf_counter()
                    writer.write(request + body)
                    status, answer = await asyncio.wait_for(_read_response(reader), 10)
                    done = time.perf_counter()
                    if began < measuring_from:
                        continue
                    samples.append((done - began) * 1000)
                    if status == 200 and b'"queued"' in answer:
                        counts["ok"] += 1
                    else:
                        counts["bad"] += 1
                        if not first_bad:
                            first_bad.append(f"{status} {answer[:200].decode(errors='replace')}")
            except (TimeoutError, OSError, ValueError, asyncio.IncompleteReadError):
                counts["socket"] += 1
            finally:
                writer.close()
                with suppress(OSError):
                    await writer.wait_closed()

    await asyncio.gather(*(connection(n) for n in range(connections)))
    elapsed = time.perf_counter() - max(measuring_from, start)
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))] if samples else 0.0
    return Load(elapsed, counts["ok"], counts["bad"], counts["socket"],
                statistics.median(samples) if samples else 0.0, p99, samples[-1] if samples else 0.0,
                first_bad="".join(first_bad))


def measure(server: Server, args: argparse.Namespace) -> Load:
    assert server.proc is not None
    pid = server.proc.pid
    # CPU over the whole load, warm-up included, scaled to the measured part's share of the answers.
    cpu_before = cpu_seconds(pid)
    result = asyncio.run(load(server.port, args.seconds, args.warmup, args.connections))
    total_cpu = cpu_seconds(pid) - cpu_before
    result.cpu_s = total_cpu * args.seconds / (args.seconds + args.warmup)
    return result


def stored(database_url: str) -> tuple[int, int]:
    """Slack deliveries and SLACK jobs in Honk's database."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            deliveries = conn.execute(text("SELECT count(*) FROM deliveries WHERE id LIKE 'slack:%'")).scalar_one()
            jobs = conn.execute(text("SELECT count(*) FROM jobs WHERE kind = 'slack'")).scalar_one()
            return int(deliveries), int(jobs)
    finally:
        engine.dispose()


# --- main -------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per server and run")
    parser.add_argument("--warmup", type=float, default=1.0, help="uncounted seconds before each measurement")
    parser.add_argument("--connections", type=int, default=4, help="concurrent clients")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--only", default="honk,bare", help="servers to measure: honk, bare")
    args = parser.parse_args()
    wanted = [name.strip() for name in args.only.split(",") if name.strip()]

    with tempfile.TemporaryDirectory(prefix="honk-bench-slack-") as tmp_name:
        tmp = Path(tmp_name)
        logs = tmp / "logs"
        logs.mkdir()
        servers = [s for s in (honk_server(tmp), bare_server(tmp)) if s.name in wanted]
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=False).stdout.strip() or "?"
        print(f"Slack intake, Honk at {head} (working tree as is), {os.cpu_count()} CPUs, Python "
              f"{sys.version.split()[0]}; {args.connections} connections, {args.seconds:g} s measured "
              f"(+{args.warmup:g} s warm-up) per server and run, {args.runs} runs")
        results: dict[str, list[Load]] = {s.name: [] for s in servers}
        for run in range(args.runs):
            for server in servers:
                start(server, logs)
                try:
                    result = measure(server, args)
                finally:
                    stop(server)
                results[server.name].append(result)
                print(f"  run {run + 1} {server.name:5} {result.rps:8.0f} events/s  p50 {result.p50_ms:6.2f} ms  "
                      f"p99 {result.p99_ms:6.2f} ms  max {result.max_ms:7.2f} ms  bad {result.bad}  socket errors "
                      f"{result.socket_errors}" + (f"  first bad: {result.first_bad}" if result.first_bad else ""))
        print()
        print(f"{'server':8} {'events/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'CPU ms/req':>11}")
        medians: dict[str, Load] = {}
        for name, loads in results.items():
            chosen = sorted(loads, key=lambda load: load.rps)[len(loads) // 2]
            medians[name] = chosen
            print(f"{name:8} {chosen.rps:9.0f} {chosen.p50_ms:8.2f} {chosen.p99_ms:8.2f} {chosen.max_ms:8.2f} "
                  f"{chosen.cpu_ms_per_req:11.3f}")
        if "honk" in medians and "bare" in medians and medians["bare"].rps:
            print(f"\nhonk / bare FastAPI: {medians['honk'].rps / medians['bare'].rps:.2f}x the rate, "
                  f"p99 {medians['honk'].p99_ms:.1f} ms vs {medians['bare'].p99_ms:.1f} ms")
        honk = next((s for s in servers if s.name == "honk"), None)
        if honk is not None and honk.database_url:
            deliveries, jobs = stored(honk.database_url)
            answered = sum(load.ok for load in results["honk"])
            print(f"honk stored {deliveries} Slack deliveries and {jobs} SLACK jobs "
                  f"({answered} queued answers measured, plus the warm-ups')")
            worst = max(load.p99_ms for load in results["honk"])
            print(f"goal p99 < {GOAL_P99_MS:.0f} ms: worst run {worst:.1f} ms "
                  f"({'met' if worst < GOAL_P99_MS else 'missed'})")


if __name__ == "__main__":
    main()
