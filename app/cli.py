"""`honk serve | web | worker | run` (README, "Commands")."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import uvicorn

from app import audit_cli, campaign_cli
from app.process import HonkState
from app.queue.db import DatabaseUnavailable
from app.settings import Settings, SettingsError, load_settings

log = logging.getLogger("honk")

SETUP_CODE_VARIABLE = "HONK_SETUP_CODE"  # passed by `honk web --workers N` to the processes it starts
SLUG_ATTEMPT_SECONDS = 300.0  # one attempt, GitHubApp's own retries included; a guard against a hung connection
SLUG_RETRY_SECONDS = 30.0  # then, while GitHub cannot be reached, ask again after this, doubling
SLUG_MAX_RETRY_SECONDS = 1800.0


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
        cmd.add_argument("--proxy", default=None, metavar="URL",
                         help="relay webhooks from this smee.io channel (sets HONK_WEBHOOK_PROXY_URL for this run)")
        if name == "web":
            cmd.add_argument("--workers", type=_positive, default=1, metavar="N",
                             help="web processes sharing the port, one per core (default 1)")
            # The processes `--workers` starts: they share the port, and leave the relay and the log to the first.
            cmd.add_argument("--follower", action="store_true", help=argparse.SUPPRESS)
    worker = commands.add_parser("worker", help="worker only; any number may share one database")
    worker.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                        help="serve this worker's Prometheus metrics on PORT (default: none)")
    worker.add_argument("--metrics-host", default="127.0.0.1",
                        help="address the metrics port listens on (default 127.0.0.1)")
    run = commands.add_parser("run", help="run the agent on a local checkout, without GitHub")
    run.add_argument("--repo", type=Path, required=True, help="path to a git checkout")
    run.add_argument("task", help="what to do, in words")
    commands.add_parser("doctor", help="check settings, GitHub, Anthropic, database, sandbox, git and disk")
    spend = commands.add_parser("spend", help="what model calls cost, by month, organization, repository, "
                                              "requester or model")
    spend.add_argument("--month", type=_month, default=None, metavar="YYYY-MM",
                       help="the month (default: this one, UTC)")
    spend.add_argument("--by", choices=["month", "installation", "org", "repo", "requester", "model"], default=None,
                       help="one table by this (default: by org, repo, requester and model)")
    spend.add_argument("--json", action="store_true", help="print JSON instead of tables")
    audit_cli.add_parser(commands)  # honk audit verify | export | purge
    campaign_cli.add_parser(commands)  # honk campaign start
    args = parser.parse_args(argv)

    _configure_logging()
    if args.command == "doctor":  # before loading settings: a bad setting is one of the things it reports
        from app.doctor import main as doctor

        return doctor()
    if getattr(args, "public_url", None):
        # Through the environment, so that settings reloaded after the first-run setup keep it too.
        os.environ["HONK_PUBLIC_URL"] = args.public_url
    if getattr(args, "proxy", None):
        os.environ["HONK_WEBHOOK_PROXY_URL"] = args.proxy
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"honk: {exc}", file=sys.stderr)
        return 2
    try:
        if args.command in ("serve", "web"):
            port = args.port if args.port is not None else _port_from_env()
            workers = getattr(args, "workers", 1)
            if workers > 1:
                return _serve_many(settings, args.host, port, workers)
            follower = getattr(args, "follower", False)
            return asyncio.run(_serve(settings, args.host, port, with_worker=args.command == "serve",
                                      reuse_port=follower, follower=follower))
        if args.command == "spend":
            return _spend(settings, args.month, args.by, as_json=args.json)
        if args.command == "audit":
            return audit_cli.main(args, settings)
        if args.command == "campaign":
            return campaign_cli.main(args, settings)
        if args.command == "worker":
            return asyncio.run(_worker(settings, args.metrics_host, args.metrics_port))
        return _run(settings, args.repo, args.task)
    except DatabaseUnavailable as exc:
        print(f"honk: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


async def _serve(settings: Settings, host: str, port: int, *, with_worker: bool, reuse_port: bool = False,
                 follower: bool = False) -> int:
    state = _prepare(settings, host)
    if os.environ.get(SETUP_CODE_VARIABLE):  # one of `honk web --workers N`: all share the first one's code
        state.setup_code = os.environ[SETUP_CODE_VARIABLE]
    # Links in comments and pull requests point here unless HONK_PUBLIC_URL says otherwise.
    settings.honk_public_url = settings.honk_public_url or f"http://{_url_host(host)}:{port}"
    state.public_url = settings.honk_public_url
    # Until the sockets are bound and looked at, the job pages assume the worst (README, "Security").
    state.bound_loopback = False
    from app.intake.relay import WebhookRelay, webhook_url
    from app.web.app import create_app
    from app.web.auth import sockets_are_loopback
    from app.web.setup_flow import setup_url

    relay_target: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def started(server: uvicorn.Server) -> None:
        addresses = [sock.getsockname() for listener in server.servers for sock in listener.sockets or ()]
        state.bound_loopback = sockets_are_loopback(addresses)
        if not relay_target.done() and (own := webhook_url(addresses)) is not None:
            relay_target.set_result(own)  # the relay posts to the route on a socket the server really bound
        if not state.bound_loopback and settings.honk_dashboard_token is None:
            log.warning("Honk listens beyond loopback (%s) and HONK_DASHBOARD_TOKEN is not set: the job pages "
                        "answer 403 until it is", ", ".join(_shown_address(a) for a in addresses))

    server = _Server(uvicorn.Config(create_app(state), host=host, port=port, log_config=None,
                                    access_log=False, lifespan="off"), on_started=started)
    stop = asyncio.Event()

    async def web() -> None:
        try:
            # Several processes on one port (`--workers`): each binds it with SO_REUSEPORT and the kernel
            # spreads connections between them.
            await server.serve(sockets=[_reusable_socket(host, port)] if reuse_port else None)
        finally:
            stop.set()

    # In the background: GitHub may be slow or unreachable, and the server must listen meanwhile. The trigger
    # rules read the slug per delivery, so learning it a moment later is enough.
    slug = asyncio.create_task(_learn_app_slug(state))
    relay = (asyncio.create_task(WebhookRelay(settings.honk_webhook_proxy_url).serve(stop, relay_target))
             if settings.honk_webhook_proxy_url and not follower else None)  # one relay: a delivery arrives once
    with _signals(stop, server):
        log.info("honk %s listening on http://%s:%d (database %s)", "serve" if with_worker else "web",
                 _url_host(host), port, state.db.safe_url)
        if state.settings.missing_github() and not follower:
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
    slug.cancel()  # it may still be waiting for GitHub
    # The relay stops by itself once `stop` is set, after letting a delivery it is posting finish.
    await asyncio.gather(slug, *([relay] if relay else []), return_exceptions=True)
    state.db.dispose()
    return 0 if server.started else 1


async def _worker(settings: Settings, metrics_host: str = "127.0.0.1", metrics_port: int | None = None) -> int:
    from app.queue.worker import serve_metrics

    state = _prepare(settings, host="")
    worker = _make_worker(state)
    metrics = None
    if metrics_port is not None:  # README, "Metrics": each worker of a fleet serves its own figures
        try:
            metrics = serve_metrics(worker, metrics_host, metrics_port)
        except OSError as exc:
            print(f"honk: cannot serve metrics on {_url_host(metrics_host)}:{metrics_port}: {exc}", file=sys.stderr)
            state.db.dispose()
            return 1
        log.info("worker metrics on http://%s:%d/metrics", _url_host(metrics_host), metrics.port)
    stop = asyncio.Event()
    with _signals(stop):
        await worker.run(stop)
    if metrics is not None:
        metrics.close()
    state.db.dispose()
    return 0


async def _learn_app_slug(state: HonkState, timeout: float = SLUG_ATTEMPT_SECONDS,
                          retry_after: float = SLUG_RETRY_SECONDS) -> None:
    """Learn the App's slug, so that a mention of `@<slug>` asks Honk to work too. Runs beside the server and
    never stops it: while GitHub cannot be reached only HONK_TRIGGER is recognised, the log says why, and Honk
    asks again (with backoff) until GitHub answers or refuses."""
    from githubkit.exception import GitHubException, RequestFailed

    from app.github.client import GitHubApp, GitHubNotConfigured

    attempt = 0
    while True:
        attempt += 1
        try:
            info = await asyncio.wait_for(GitHubApp.for_settings(state.settings).app_info(), timeout)
            slug = info["slug"]
        except GitHubNotConfigured:
            return  # the first-run setup learns it once the App exists
        except RequestFailed as exc:
            if exc.response.status_code < 500:  # asking again changes nothing (a wrong key, a wrong URL)
                log.warning("cannot learn the App's slug from GitHub (%s); only %s will be recognised (run "
                            "honk doctor)", _reason(exc), state.settings.honk_trigger)
                return
            problem: BaseException = exc
        except (GitHubException, TimeoutError, KeyError, TypeError, ValueError) as exc:
            problem = exc
        else:
            state.learn_app_slug(slug)
            log.info("GitHub App %r (id %s): mentions of @%s ask Honk to work", info.get("name"), info.get("id"),
                     slug)
            return
        wait = min(retry_after * 2 ** (attempt - 1), SLUG_MAX_RETRY_SECONDS)
        reason = (f"TimeoutError: no answer from {state.settings.github_api_url} within {timeout:.0f} s"
                  if isinstance(problem, TimeoutError) else _reason(problem))
        # Once loudly; afterwards quietly, so that a laptop offline for a day does not fill its log.
        (log.warning if attempt == 1 else log.debug)(
            "cannot learn the App's slug from GitHub (%s); only %s will be recognised until it answers (asking "
            "again in %.0f s)", reason, state.settings.honk_trigger, wait)
        await asyncio.sleep(wait)


def _reason(exc: BaseException) -> str:
    """An exception as a log line's reason: its type and message, and what caused it; never empty (a timeout's
    message is)."""
    from githubkit.exception import RequestFailed

    if isinstance(exc, RequestFailed):
        response = exc.response
        try:
            body = response.json()
            message = str(body.get("message") or body) if isinstance(body, dict) else str(body)
        except ValueError:
            message = response.text.strip()[:200] or "no body"
        return f"GitHub answered {response.status_code}: {message}"
    text = str(exc).strip()
    reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    if cause is not None:
        said = str(cause).strip()
        if said and said != text:
            reason += f" ({type(cause).__name__}: {said})"
        elif type(cause) is not type(exc):
            reason += f" ({type(cause).__name__})"  # e.g. githubkit's RequestError repeats httpx's ConnectError
    return reason


def _spend(settings: Settings, month: str | None, by: str | None, *, as_json: bool) -> int:
    """`honk spend`: the spending ledger as tables (or JSON), with each cap of the policy beside what it caps."""
    import json

    from app.policy import PolicyError, current_policy
    from app.queue.spending import SpendLedger, overview

    state = HonkState.create(settings)
    state.db.migrate()
    try:
        policy = current_policy(settings.honk_policy_file)
    except PolicyError as exc:
        print(f"honk spend: {exc}; caps are not shown (jobs will not run until it is fixed)", file=sys.stderr)
        policy = None
    text, body = overview(SpendLedger(state.db), month, by, policy)  # type: ignore[arg-type]
    state.db.dispose()
    print(json.dumps(body, indent=2) if as_json else text)
    return 0


def _month(text: str) -> str:
    from app.policy import parse_month

    try:
        return parse_month(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _run(settings: Settings, repo: Path, task: str) -> int:
    """`honk run`: the agent on a local checkout, with the verifiers its `.github/honk.yml` declares or its files
    suggest, as a job would have them."""
    from app.agent.local import run_local  # the agent is heavy; only `run` needs it here
    from app.jobs.repo_config import DEFAULT_SOURCE, RepoConfigError, parse_repo_config
    from app.jobs.verifiers import verifiers_for

    root = Path(repo).expanduser()
    config_file = root / DEFAULT_SOURCE
    try:
        config = parse_repo_config(config_file.read_text(errors="replace") if config_file.is_file() else None)
    except RepoConfigError as exc:
        print(f"honk run: {exc}", file=sys.stderr)
        return 2
    verifiers, why = verifiers_for(config, root) if root.is_dir() else ([], "")
    return asyncio.run(run_local(settings, root, task, verifiers=verifiers, no_verifiers=why))


def _serve_many(settings: Settings, host: str, port: int, workers: int) -> int:
    """`honk web --workers N`: this process and N-1 more serve one port (SO_REUSEPORT), each with its own event
    loop, group-commit writer and database connections, so that intake uses every core. They share the first-run
    setup code; only this one relays a webhook channel and logs the setup address. Stopping this one stops all."""
    code = secrets.token_urlsafe(24)
    env = {**os.environ, SETUP_CODE_VARIABLE: code}
    others = [subprocess.Popen([sys.executable, "-m", "app", "web", "--host", host, "--port", str(port),
                                "--follower"], env=env) for _ in range(workers - 1)]
    os.environ[SETUP_CODE_VARIABLE] = code
    try:
        return asyncio.run(_serve(settings, host, port, with_worker=False, reuse_port=True))
    finally:
        for other in others:
            other.terminate()
        for other in others:
            try:
                other.wait(timeout=settings.honk_shutdown_grace_seconds + 10)
            except subprocess.TimeoutExpired:
                other.kill()


def _reusable_socket(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    sock.set_inheritable(True)
    return sock


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


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

    _warn_without_bwrap(state.settings)
    return Worker(state.queue, handlers, state.settings)


def _warn_without_bwrap(settings: Settings) -> None:
    """Say at start, not at each job's sandbox step, that jobs cannot run here (what `honk doctor` checks in
    full; the sandbox looks bwrap up on PATH the same way)."""
    if settings.honk_sandbox == "bwrap" and shutil.which("bwrap") is None:
        log.warning("bubblewrap (bwrap) is not on PATH, so every job will fail when it starts its sandbox: install "
                    "it (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap) and restart, "
                    "or run honk doctor")


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
