"""A real worker process for the crash tests: `python -m tests.worker_process --db URL --marker DIR --mode MODE`.

It runs `Worker.run` on the given database with a short lease and fast polling until SIGTERM or SIGINT, with one
handler for `resolve_issue` jobs. The handler first writes `<DIR>/<job id>.<attempt>.started`, then either sleeps
until it is cancelled (`slow`) or returns `{"done": true}` (`finish`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from app.process import HonkState
from app.queue.worker import Handlers, JobContext, Worker
from app.settings import load_settings


def build_handlers(marker: Path, mode: str) -> Handlers:
    handlers = Handlers()

    @handlers.register("resolve_issue")
    async def resolve(ctx: JobContext) -> dict[str, Any]:
        (marker / f"{ctx.job.id}.{ctx.job.attempts}.started").touch()
        if mode == "slow":
            await asyncio.Event().wait()  # until the worker cancels us
        return {"done": True}

    return handlers


async def serve(args: argparse.Namespace) -> int:
    settings = load_settings(_env_file=None, honk_database_url=args.db, honk_data_dir=args.marker / "data",
                             honk_lease_seconds=args.lease, honk_poll_seconds=0.05,
                             honk_shutdown_grace_seconds=args.grace, honk_worker_concurrency=1)
    state = HonkState.create(settings, listen_host="")
    state.db.migrate()
    worker = Worker(state.queue, build_handlers(args.marker, args.mode), settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await worker.run(stop)
    finally:
        state.db.dispose()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.worker_process")
    parser.add_argument("--db", required=True, help="SQLAlchemy database URL")
    parser.add_argument("--marker", type=Path, required=True, help="directory for <job>.<attempt>.started files")
    parser.add_argument("--mode", choices=("slow", "finish"), required=True)
    parser.add_argument("--lease", type=float, default=1.0, help="HONK_LEASE_SECONDS")
    parser.add_argument("--grace", type=float, default=0.5, help="HONK_SHUTDOWN_GRACE_SECONDS")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
