"""`honk web --workers N`: N processes share one port, every delivery is stored once whichever process takes
it, they share one first-run setup code, and stopping the first stops them all."""

from __future__ import annotations

import json
import os
import signal
import uuid
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from tests.support import HonkProcess, delivery_headers, free_port, honk_env, labeled_payload, wait_for


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_bytes()
            except OSError:
                continue
            if int(stat[stat.rindex(b")") + 2:].split()[1]) == pid:
                found.append(int(entry))
    return found


def _serving(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and Path(f"/proc/{pid}/stat").read_bytes().split(b") ")[1][:1] != b"Z"


def test_several_web_processes_share_one_port_and_store_each_delivery_once(tmp_path: Path) -> None:
    port = free_port()
    database = tmp_path / "honk.db"
    honk = HonkProcess(["web", "--port", str(port), "--workers", "3"],
                       honk_env(tmp_path, HONK_DATABASE_URL=f"sqlite:///{database}"), tmp_path, tmp_path / "web.log")
    try:
        honk.wait_http(f"http://127.0.0.1:{port}/healthz")
        followers = _children(honk.proc.pid)
        assert len(followers) == 2, honk.output()
        body = json.dumps(labeled_payload()).encode()
        ids = [str(uuid.uuid4()) for _ in range(60)]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            # A new connection each time, so that the kernel spreads them over the processes.
            answers = [httpx.post(f"http://127.0.0.1:{port}/api/github/webhooks", content=body, timeout=10,
                                  headers=delivery_headers("issues", body, delivery=d)) for d in ids]
            again = [client.post("/api/github/webhooks", content=body,
                                 headers=delivery_headers("issues", body, delivery=d)) for d in ids[:10]]
            setup = [httpx.get(f"http://127.0.0.1:{port}/setup", headers={"Host": "honk.test"}, timeout=10)
                     for _ in range(6)]
        assert [a.status_code for a in answers] == [202] * 60
        assert [a.json() for a in again] == [{"status": "duplicate"}] * 10
        jobs = [a.json()["job"] for a in answers]
        assert len(set(jobs)) == 60
        with create_engine(f"sqlite:///{database}").connect() as conn:
            assert conn.execute(text("select count(*) from deliveries")).scalar() == 60
            assert conn.execute(text("select count(*) from jobs")).scalar() == 60
        # One setup code for all: the one the first process logged opens the page on any of them.
        [line] = [line for line in honk.output().splitlines() if "First-run setup: open" in line]
        code = line.rsplit("setup_code=", 1)[1].strip()
        assert all(r.status_code == 403 for r in setup)
        with_code = [httpx.get(f"http://127.0.0.1:{port}/setup", params={"setup_code": code},
                               headers={"Host": "honk.test"}, timeout=10) for _ in range(6)]
        assert [r.status_code for r in with_code] == [200] * 6
    finally:
        code = honk.stop(signal.SIGTERM)
    assert code == 0, honk.output()
    wait_for(lambda: not any(_serving(pid) for pid in followers), what="the other web processes to stop")
