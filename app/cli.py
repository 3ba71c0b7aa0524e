"""`honk serve | web | worker | run` (README, "Commands")."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import uvicorn

from app.process import HonkState
from app.queue.db import DatabaseUnavailable
from app.settings import Settings, SettingsError, load_settings

log = logging.getLogger("honk")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="honk", description="Hand GitHub issues and reviews to Claude.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in (("serve", "webhook receiver, pages and worker in one process"),
                            ("web", "webhook receiver and pages only")):
        cmd = commands.add_parser(name, help=help_text)
        cmd.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
        cmd.add_argument("--port", type=int, default=None, help="port (default $PORT, else 3000)")
        cmd.add_argument("--public-url", default=None,
                         help="where users and GitHub reach Honk (sets HONK_PUBLIC_URL for this run)")
    commands.add_parser("worker", help="worker only; any number may share one database")
    run = commands.add_parser("run", help="run the agent on a local checkout, without GitHub")
    run.add_argument("--repo", type=Path, required=True, help="path to a git checkout")
    run.add_argument("task", help="what to do, in words")
    commands.add_parser("doctor", help="check settings, GitHub, Anthropic, database, sandbox, git and disk")
    args = parser.parse_args(argv)

    _configure_logging()
    if args.command == "doctor":  # before loading settings: a bad setting is one of the things it reports
        from app.doctor import main as doctor

        return doctor()
    if getattr(args, "public_url", None):
        # Through the environment, so that settings reloaded after the first-run setup keep it too.
        os.environ["HONK_PUBLIC_URL"] = args.public_url
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"honk: {exc}", file=sys.stderr)
        return 2
    try:
        if args.command in ("serve", "web"):
            port = args.port if args.port is not None else _port_from_env()
            return asyncio.run(_serve(settings, args.host, port, with_worker=args.command == "serve"))
        if args.command == "worker":
            return asyncio.run(_worker(settings))
        from app.agent.local import run_local  # the agent is heavy; only `run` needs it here
        return asyncio.run(run_local(settings, args.repo, args.task))
    except DatabaseUnavailable as exc:
        print(f"honk: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


async def _serve(settings: Settings, host: str, port: int, *, with_worker: bool) -> int:
    state = _prepare(settings, host)
    # Links in comments and pull requests point here unless HONK_PUBLIC_URL says otherwise.
    settings.honk_public_url = settings.honk_public_url or f"http://{_url_host(host)}:{port}"
    state.public_url = settings.honk_public_url
    # Until the sockets are bound and looked at, the job pages assume the worst (README, "Security").
    state.bound_loopback = False
    from app.web.app import create_app
    from app.web.auth import sockets_are_loopback
    from app.web.setup_flow import setup_url

    def started(server: uvicorn.Server) -> None:
        addresses = [sock.getsockname() for listener in server.servers for sock in listener.sockets or ()]
        state.bound_loopback = sockets_are_loopback(addresses)
        if not state.bound_loopback and settings.honk_dashboard_token is None:
            log.warning("Honk listens beyond loopback (%s) and HONK_DASHBOARD_TOKEN is not set: the job pages "
                        "answer 403 until it is", ", ".join(_shown_address(a) for a in addresses))

    server = _Server(uvicorn.Config(create_app(state), host=host, port=port, log_config=None,
                                    access_log=False, lifespan="off"), on_started=started)
    stop = asyncio.Event()

    async def web() -> None:
        try:
            await server.serve()
        finally:
            stop.set()

    await _learn_app_slug(state)
    with _signals(stop, server):
        log.info("honk %s listening on http://%s:%d (database %s)", "serve" if with_worker else "web",
                 _url_host(host), port, state.db.safe_url)
        if state.settings.missing_github():
            # The setup pages ask anyone not on this machine for this code (app/setup_flow.py); the log is
            # where the operator, and only the operator, finds it.
            log.warning("First-run setup: open %s", setup_url(settings.honk_public_url, state.setup_code))
        if with_worker:
            worker = _make_worker(state)
            state.on_job_queued.append(worker.wake)
            state.on_settings_changed.append(lambda new: setattr(worker, "settings", new))  # after first-run setup
            await asyncio.gather(web(), worker.run(stop))
        else:
            await web()
    state.db.dispose()
    return 0 if server.started else 1


async def _worker(settings: Settings) -> int:
    state = _prepare(settings, host="")
    worker = _make_worker(state)
    stop = asyncio.Event()
    with _signals(stop):
        await worker.run(stop)
    state.db.dispose()
    return 0


async def _learn_app_slug(state: HonkState, timeout: float = 10.0) -> None:
    """Learn the App's slug, so that a mention of `@<slug>` asks Honk to work too. Never fatal: without
    it only HONK_TRIGGER is recognised, and the log says so."""
    from githubkit.exception import GitHubException

    from app.github.client import GitHubApp, GitHubNotConfigured

    try:
        info = await asyncio.wait_for(GitHubApp.for_settings(state.settings).app_info(), timeout)
    except GitHubNotConfigured:
        return
    except (GitHubException, TimeoutError, KeyError, ValueError) as exc:
        log.warning("cannot learn the App's slug from GitHub (%s); only %s will be recognised",
                    exc or type(exc).__name__, state.settings.honk_trigger)
        return
    state.learn_app_slug(info["slug"])
    log.info("GitHub App %r (id %s): mentions of @%s ask Honk to work", info.get("name"), info.get("id"),
             info["slug"])


def _prepare(settings: Settings, host: str) -> HonkState:
    state = HonkState.create(settings, listen_host=host)
    state.db.migrate()
    missing = settings.missing_github()
    if missing:
        log.warning("GitHub is not configured: set %s (Honk answers webhooks only once they are set)",
                    ", ".join(missing))
    if settings.honk_sandbox == "none":
        log.warning("HONK_SANDBOX=none: the model's commands run WITHOUT a sandbox")
    return state


def _make_worker(state: HonkState):
    from app.jobs.registry import handlers
    from app.queue.worker import Worker

    return Worker(state.queue, handlers, state.settings)


class _Server(uvicorn.Server):
    """uvicorn, minus its own signal handling: Honk stops the web server and the worker together. Tells
    `on_started` once its sockets are bound, so that Honk can see what it really listens on."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[uvicorn.Server], None] | None = None) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self._on_started is not None:
            self._on_started(self)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _url_host(host: str) -> str:
    """`--host` as it goes into a URL: IPv6 in brackets; "" (every interface) as 0.0.0.0, not `http://:3000`."""
    if not host:
        return "0.0.0.0"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _shown_address(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        return f"[{address[0]}]:{address[1]}" if ":" in str(address[0]) else f"{address[0]}:{address[1]}"
    return str(address)


@contextlib.contextmanager
def _signals(stop: asyncio.Event, server: uvicorn.Server | None = None) -> Iterator[None]:
    loop = asyncio.get_running_loop()

    def request_stop(signum: int) -> None:
        if stop.is_set() and server is not None:
            server.force_exit = True  # a second Ctrl-C: stop now
        log.info("received %s: stopping (running jobs finish or go back to the queue)",
                 signal.Signals(signum).name)
        stop.set()
        if server is not None:
            server.should_exit = True

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, request_stop, signum)
    try:
        yield
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def _port_from_env() -> int:
    value = os.environ.get("PORT", "3000")
    try:
        return int(value)
    except ValueError:
        raise SystemExit(f"honk: PORT: not a port number (got {value!r})") from None


def _configure_logging() -> None:
    logging.basicConfig(level=os.environ.get("HONK_LOG_LEVEL", "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
