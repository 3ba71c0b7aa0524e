"""Webhook intake benchmark: a running `honk web` against a bare FastAPI endpoint, measured in one run.

    python bench/webhooks.py [--seconds 10] [--rate 100] [--concurrency 16] [--database-url URL]

Both servers run as separate uvicorn processes on loopback. Every delivery is a signed `issues.labeled`
from a writer, so each one Honk accepts is a durable job (the heaviest path: verify, parse, decide, one
write transaction). Prints throughput at full load and p50/p99 acknowledgement latency at a fixed rate,
with Honk's figures as ratios of the bare endpoint's. Targets (2 cores, SQLite): p99 under 25 ms at
100 deliveries/s, and at least half the bare endpoint's throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret"

BARE_APP = """
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
app = FastAPI()
@app.post("/api/github/webhooks")
async def hook(request: Request):
    await request.body()
    return JSONResponse({"status": "queued", "job": 0}, status_code=202)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def payload(number: int) -> bytes:
    return json.dumps({
        "action": "labeled",
        "issue": {"number": number, "title": "Widgets spin backwards", "body": "They should not." * 20,
                  "state": "open", "labels": [{"name": "honk"}], "user": {"login": "alice", "type": "User"}},
        "label": {"name": "honk"},
        "repository": {"id": 1, "full_name": "acme/widgets", "default_branch": "main",
                       "clone_url": "https://github.com/acme/widgets.git"},
        "sender": {"login": "alice", "id": 3, "type": "User"},
        "installation": {"id": 42},
    }).encode()


def signed(number: int) -> tuple[bytes, dict[str, str]]:
    body = payload(number)
    return body, {"X-GitHub-Event": "issues", "X-GitHub-Delivery": str(uuid.uuid4()),
                  "Content-Type": "application/json",
                  "X-Hub-Signature-256": "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()}


def start(cmd: list[str], env: dict[str, str], cwd: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"server did not start: {' '.join(cmd)}")


async def throughput(url: str, seconds: float, concurrency: int) -> tuple[float, int]:
    """Deliveries accepted per second with `concurrency` clients sending back to back."""
    accepted = errors = 0
    deadline = time.perf_counter() + seconds
    counter = iter(range(10**9))

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal accepted, errors
        while time.perf_counter() < deadline:
            body, headers = signed(next(counter))
            answer = await client.post("/api/github/webhooks", content=body, headers=headers)
            if answer.status_code == 202:
                accepted += 1
            else:
                errors += 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return accepted / elapsed, errors


async def latency(url: str, rate: float, seconds: float) -> tuple[float, float, float, int]:
    """Send at a fixed rate (open loop, so a slow answer cannot slow the sender); p50, p99, max in ms."""
    samples: list[float] = []
    errors = 0
    total = int(rate * seconds)

    async def one(client: httpx.AsyncClient, number: int) -> None:
        nonlocal errors
        body, headers = signed(number)
        sent = time.perf_counter()
        answer = await client.post("/api/github/webhooks", content=body, headers=headers)
        samples.append((time.perf_counter() - sent) * 1000)
        if answer.status_code != 202:
            errors += 1

    async with httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=64)) as client:
        for _ in range(20):  # warm up connections
            await one(client, 0)
        samples.clear()
        errors = 0
        start_at = time.perf_counter()
        tasks = []
        for n in range(total):
            delay = start_at + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(client, n)))
        await asyncio.gather(*tasks)
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return statistics.median(samples), p99, samples[-1], errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10, help="length of each measurement")
    parser.add_argument("--rate", type=float, default=100, help="deliveries per second for the latency run")
    parser.add_argument("--concurrency", type=int, default=16, help="clients for the throughput run")
    parser.add_argument("--database-url", default=None, help="HONK_DATABASE_URL (default: SQLite in a temp dir)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="honk-bench-") as tmp:
        tmpdir = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "HONK_"))}
        env.update({"GITHUB_WEBHOOK_SECRET": SECRET, "HONK_DATA_DIR": str(tmpdir / "data"),
                    "HONK_LOG_LEVEL": "WARNING"})
        if args.database_url:
            env["HONK_DATABASE_URL"] = args.database_url
        honk_port, bare_port = free_port(), free_port()
        (tmpdir / "bare_app.py").write_text(BARE_APP)
        honk = start([sys.executable, "-m", "app", "web", "--port", str(honk_port)], env, ROOT, honk_port)
        bare = start([sys.executable, "-m", "uvicorn", "bare_app:app", "--port", str(bare_port), "--log-level",
                      "warning", "--no-access-log"], env, tmpdir, bare_port)
        try:
            results = {}
            for name, port in (("bare FastAPI", bare_port), ("honk web", honk_port)):
                url = f"http://127.0.0.1:{port}"
                rps, t_errors = asyncio.run(throughput(url, args.seconds, args.concurrency))
                p50, p99, worst, l_errors = asyncio.run(latency(url, args.rate, args.seconds))
                results[name] = (rps, p50, p99, worst, t_errors + l_errors)
        finally:
            for proc in (honk, bare):
                proc.terminate()
                proc.wait(10)

    database = "PostgreSQL" if args.database_url else "SQLite"
    print(f"webhook intake, {os.cpu_count()} cores, {database}; throughput with {args.concurrency} clients for "
          f"{args.seconds:.0f}s; latency at {args.rate:.0f}/s for {args.seconds:.0f}s")
    print(f"{'server':<14}{'accepted/s':>12}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}{'errors':>8}")
    for name, (rps, p50, p99, worst, errors) in results.items():
        print(f"{name:<14}{rps:>12.0f}{p50:>10.2f}{p99:>10.2f}{worst:>10.2f}{errors:>8}")
    honk_r, bare_r = results["honk web"], results["bare FastAPI"]
    ratio = honk_r[0] / bare_r[0]
    print(f"honk/bare throughput: {ratio:.2f}  (target >= 0.50: {'met' if ratio >= 0.5 else 'MISSED'})")
    print(f"honk p99 at {args.rate:.0f}/s: {honk_r[2]:.2f} ms, {honk_r[2] / bare_r[2]:.1f}x bare "
          f"(target < 25 ms: {'met' if honk_r[2] < 25 else 'MISSED'})")


if __name__ == "__main__":
    main()
