"""`honk doctor`: checks everything Honk needs on this machine, one line each, and says what to do.

Every check runs even when an earlier one fails (except that a broken setting stops the rest, which all need
the settings), so one run shows every problem. A warning (`!`) is worth reading but does not stop Honk from
working; the exit code is 0 unless some check failed (`✗`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TextIO

from app.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    import httpx
    from alembic.script import ScriptDirectory

    from app.agent.providers import Provider

Status = Literal["ok", "warn", "fail"]
MIN_FREE_BYTES = 1024**3  # workspaces are full clones; below this a big repository's job may fail mid-way
NETWORK_TIMEOUT = 20.0
SYMBOLS = {"ok": "✓", "warn": "!", "fail": "✗"}
ASCII_SYMBOLS = {"ok": "ok", "warn": "!!", "fail": "XX"}


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str | None = None  # what to do, for a failure or a warning

    def line(self, symbols: dict[str, str] = SYMBOLS) -> str:
        fix = f" → {self.fix}" if self.fix and self.status != "ok" else ""
        return f"{symbols[self.status]} {self.name}: {self.detail}{fix}"


def ok(name: str, detail: str) -> Check:
    return Check(name, "ok", detail)


def fail(name: str, detail: str, fix: str) -> Check:
    return Check(name, "fail", detail, fix)


def warn(name: str, detail: str, fix: str) -> Check:
    return Check(name, "warn", detail, fix)


def main(out: TextIO | None = None) -> int:
    """Run every check, print one line per check and a verdict; 0 only when nothing failed."""
    out = out or sys.stdout
    symbols = SYMBOLS if _can_print(out, "✓✗→") else ASCII_SYMBOLS
    checks = asyncio.run(_run(lambda check: _print(out, check.line(symbols))))
    failed = [c for c in checks if c.status == "fail"]
    warned = [c for c in checks if c.status == "warn"]
    if failed:
        _print(out, f"{len(failed)} of {len(checks)} checks failed: {', '.join(c.name for c in failed)}.")
        return 1
    _print(out, f"All {len(checks)} checks passed" + (f" ({len(warned)} with a warning)." if warned else "."))
    return 0


async def _run(report: Callable[[Check], None]) -> list[Check]:
    done: list[Check] = []

    def record(check: Check) -> None:
        done.append(check)
        report(check)

    try:
        settings = load_settings()
    except SettingsError as exc:
        record(fail("settings", str(exc), "correct that variable in the environment or in .env, then run "
                                          "honk doctor again (the other checks need valid settings)"))
        return done
    record(ok("settings", f"loaded (data in {settings.honk_data_dir.resolve()}, model {settings.honk_model})"))

    checks: list[Callable[[Settings], Awaitable[list[Check]]]] = [
        check_github_app, check_webhook_secret, check_database, check_sandbox, check_git, check_disk,
        check_providers, check_policy]
    for check in checks:
        try:
            results = await check(settings)
        except Exception as exc:  # a check that breaks is a finding, not a traceback
            results = [fail(check.__name__.removeprefix("check_").replace("_", " "),
                            f"the check itself failed: {type(exc).__name__}: {exc}",
                            "report this; the line above says what broke")]
        for result in results:
            record(result)
    return done


# The checks. Each returns its lines (the database check has two: connection and migrations).

async def check_github_app(settings: Settings) -> list[Check]:
    from githubkit.exception import RequestError, RequestFailed

    from app.github.client import GitHubApp, GitHubRetry

    name = "GitHub App"
    missing = [v for v in settings.missing_github() if "WEBHOOK" not in v]
    if settings.github_app_id is None:
        return [fail(name, f"{' and '.join(missing)} not set: no GitHub App yet", _register_fix(settings))]
    if missing:
        return [fail(name, f"{' and '.join(missing)} not set",
                     "generate a private key on the App's settings page on GitHub and set GITHUB_PRIVATE_KEY (or "
                     "GITHUB_PRIVATE_KEY_PATH)")]
    github = GitHubApp(settings, retry=GitHubRetry(retries=0))  # a doctor wants the first answer, not a retry
    try:
        info = await asyncio.wait_for(github.app_info(), NETWORK_TIMEOUT)
    except RequestFailed as exc:
        status = exc.response.status_code
        message = _github_message(exc.response)
        if status == 401:
            return [fail(name, f"GitHub refused the App's credentials at {settings.github_api_url} (401: "
                               f"{message})", "check that GITHUB_APP_ID is the App's id and GITHUB_PRIVATE_KEY is "
                               "a current key of that App (generate one on the App's settings page), and that "
                               "this machine's clock is right")]
        return [fail(name, f"GET /app answered {status}: {message}",
                     "check GITHUB_API_URL (for GitHub Enterprise Server: https://HOST/api/v3)")]
    except (RequestError, TimeoutError) as exc:
        return [fail(name, f"cannot reach {settings.github_api_url}: {exc or type(exc).__name__}",
                     "check GITHUB_API_URL and this machine's network (proxy, firewall, DNS)")]
    except Exception as exc:  # the key itself could not sign a JWT
        return [fail(name, f"cannot authenticate as the App: {type(exc).__name__}: {exc}",
                     "check that GITHUB_PRIVATE_KEY (or the file GITHUB_PRIVATE_KEY_PATH) is the App's PEM key")]
    return [ok(name, f"{info.get('name') or info.get('slug')!s} (@{info.get('slug')}, id {info.get('id')}) "
                     f"at {settings.github_api_url}")]


def _register_fix(settings: Settings) -> str:
    """Where to register the App: the first-run setup page of `honk serve`. From this machine the page opens
    as it is; from anywhere else it needs the one-time code that only the running server knows and logs."""
    base = settings.honk_public_url or f"http://127.0.0.1:{_serve_port()}"
    return (f"start honk serve and open {base}/setup to register the App (from another machine, open the "
            "address in its log line \"First-run setup: open …\", which carries the one-time setup code), or set "
            "GITHUB_APP_ID and GITHUB_PRIVATE_KEY of an App you already have")


def _serve_port() -> str:
    # What `honk serve` listens on without --port.
    port = os.environ.get("PORT", "")
    return port if port.isdigit() else "3000"


async def check_webhook_secret(settings: Settings) -> list[Check]:
    name = "webhook secret"
    secret = settings.webhook_secret
    if secret is None and settings.github_app_id is None:
        return [fail(name, "GITHUB_WEBHOOK_SECRET is not set, so every delivery is refused with 401",
                     "registering the App on the setup page (see the GitHub App line) sets it too")]
    if secret is None:
        return [fail(name, "GITHUB_WEBHOOK_SECRET is not set, so every delivery is refused with 401",
                     "set GITHUB_WEBHOOK_SECRET to the secret in the App's webhook settings")]
    if len(secret) < 16:
        return [warn(name, f"set, but only {len(secret)} character{'s' if len(secret) > 1 else ''} long",
                     "use a long random secret (e.g. `openssl rand -hex 32`) here and in the App's settings")]
    return [ok(name, f"set ({len(secret)} characters)")]


async def check_database(settings: Settings) -> list[Check]:
    return await asyncio.to_thread(_database_checks, settings)


def _database_checks(settings: Settings) -> list[Check]:
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from app.queue.db import MIGRATIONS, Database

    logging.getLogger("alembic").setLevel(logging.WARNING)  # its INFO lines would interleave with the report
    start_honk = "start honk serve (or web, or worker) once: it creates and migrates the database at start-up"
    db = Database(settings.database_url)
    try:
        where = db.safe_url
        if db.is_sqlite and db.url.database not in (None, "", ":memory:") and not Path(db.url.database).exists():
            # Connecting would create an empty file; a doctor only looks.
            return [fail("database", f"no database at {db.url.database} yet", start_honk),
                    fail("migrations", "not checked: there is no database yet", start_honk)]
        try:
            with db.engine.connect() as conn:
                current = set(MigrationContext.configure(conn).get_current_heads())
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            return [fail("database", f"cannot use {where}: {first}",
                         "check HONK_DATABASE_URL and that the database server is running and reachable"),
                    fail("migrations", "not checked: the database is not answering", "fix the database first")]
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        script = ScriptDirectory.from_config(config)
        heads = set(script.get_heads())
        checks = [ok("database", f"{where} answers")]
        if current == heads:
            checks.append(ok("migrations", f"at the newest revision ({', '.join(sorted(heads))})"))
        elif not current:
            checks.append(fail("migrations", "the database has no Honk tables yet", start_honk))
        elif not all(_known(script, rev) for rev in current):
            checks.append(fail("migrations", f"the database is at revision {', '.join(sorted(current))}, which "
                                             "this Honk does not know (a newer Honk migrated it)",
                               "upgrade this Honk to the version the other processes run"))
        else:
            checks.append(fail("migrations", f"the database is at {', '.join(sorted(current))}, the newest is "
                                             f"{', '.join(sorted(heads))}", start_honk))
        return checks
    finally:
        db.dispose()


def _known(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except Exception:  # alembic raises for an unknown revision id
        return False


async def check_sandbox(settings: Settings) -> list[Check]:
    from app.checkout.sandbox import Sandbox, SandboxError

    name = "sandbox"
    if settings.honk_sandbox == "none":
        return [warn(name, "HONK_SANDBOX=none: the model's commands run WITHOUT a sandbox, with this machine's "
                           "files and network", "install bubblewrap and remove HONK_SANDBOX (or set it to bwrap)")]
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return [fail(name, "bubblewrap (bwrap) is not installed",
                     "install it (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap)")]
    version = _version([bwrap, "--version"])
    with tempfile.TemporaryDirectory(prefix="honk-doctor-") as root:
        try:
            await asyncio.wait_for(Sandbox(Path(root), settings).check(), 60)
        except (SandboxError, TimeoutError) as exc:
            return [fail(name, f"{version or 'bwrap'} cannot start a sandbox: {exc or 'timed out'}",
                         "allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, or "
                         "kernel.apparmor_restrict_unprivileged_userns=0), or run the container with "
                         "--security-opt seccomp=unconfined / --privileged")]
    checks = [ok(name, f"{version or 'bwrap'} starts a sandbox")]
    if shutil.which("socat") is None:
        checks.append(warn("setup network", "socat is not installed, so `setup` commands in .github/honk.yml cannot "
                           "reach package registries through Honk's filter (jobs with setup fail)",
                           "install it (Debian/Ubuntu: apt-get install socat)"))
    else:
        allowed = settings.setup_allowed_hosts
        checks.append(ok("setup network", f"setup may reach {len(allowed)} hosts through Honk's filter "
                                          "(extend with HONK_SETUP_ALLOWED_HOSTS)"))
    return checks


async def check_git(settings: Settings) -> list[Check]:
    git = shutil.which("git")
    if git is None:
        return [fail("git", "git is not installed", "install git (Debian/Ubuntu: apt-get install git)")]
    version = _version([git, "--version"])
    if version is None:
        return [fail("git", f"{git} does not run", "reinstall git")]
    return [ok("git", version)]


async def check_disk(settings: Settings) -> list[Check]:
    name = "disk space"
    data = settings.honk_data_dir.resolve()
    existing = next((p for p in (data, *data.parents) if p.exists()), Path("/"))
    free = shutil.disk_usage(existing).free
    where = str(data) if existing == data else f"{existing} (HONK_DATA_DIR {data} does not exist yet)"
    detail = f"{free / 1024**3:.1f} GiB free in {where}"
    if free < MIN_FREE_BYTES:
        return [warn(name, detail, "free some space or point HONK_DATA_DIR at a bigger disk: each job clones "
                                   "its repository there")]
    return [ok(name, detail)]


async def check_policy(settings: Settings) -> list[Check]:
    """The spending policy (HONK_POLICY_FILE) parses; no line at all when none is configured."""
    from app.policy import PolicyError, read_policy

    if settings.honk_policy_file is None:
        return []
    try:
        policy = read_policy(settings.honk_policy_file)
    except PolicyError as exc:
        return [fail("spending policy", str(exc), "fix the file (or unset HONK_POLICY_FILE): until then every job "
                                                  "fails before its first model call")]
    models = {"HONK_MODEL": settings.honk_model, **({"HONK_JUDGE_MODEL": settings.judge_model} if settings.honk_judge
                                                    else {})}
    refused = [f"{name} {model}" for name, model in models.items() if not policy.model_allowed(model)]
    if refused:
        return [fail("spending policy", f"{settings.honk_policy_file}: allowed_models does not include "
                                        f"{', '.join(refused)}", "add it to allowed_models or choose an allowed "
                                                                 "model: until then every job is refused")]
    return [ok("spending policy", f"{settings.honk_policy_file}: {policy.describe()}")]


# The model providers: HONK_PROVIDER's, the fallback's and the judge's, one line each.
PROVIDER_LINES = {"anthropic": "Anthropic API", "bedrock": "Amazon Bedrock", "vertex": "Google Vertex AI"}
MODEL_VARIABLES = {"coding": "HONK_MODEL", "fallback": "HONK_FALLBACK_MODEL", "judge": "HONK_JUDGE_MODEL"}
PROVIDER_FIXES = {  # what to check when the provider refuses the credentials, or cannot be reached
    "anthropic": ("check ANTHROPIC_API_KEY (create a new key at console.anthropic.com)",
                  "check ANTHROPIC_BASE_URL (unset means the official API) and this machine's network"),
    "bedrock": ("check the AWS credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, the machine's "
                "role, or AWS_BEARER_TOKEN_BEDROCK), that they may call bedrock:InvokeModel and "
                "bedrock:InvokeModelWithResponseStream, and that the model is enabled for the account in AWS_REGION",
                "check AWS_REGION, ANTHROPIC_BEDROCK_BASE_URL (unset means bedrock-runtime.<region>.amazonaws.com) "
                "and this machine's network"),
    "vertex": ("check the Google credentials (GOOGLE_APPLICATION_CREDENTIALS, or gcloud auth application-default "
               "login), that they hold the Vertex AI User role in ANTHROPIC_VERTEX_PROJECT_ID, and that the model is "
               "enabled in Model Garden for CLOUD_ML_REGION",
               "check CLOUD_ML_REGION, ANTHROPIC_VERTEX_BASE_URL (unset means Google's endpoint for the region) and "
               "this machine's network"),
}


async def check_providers(settings: Settings) -> list[Check]:
    """Each provider Honk would use (for coding, as the fallback, for the judge): its settings, then one request
    for one output token per model it serves, which proves the credentials, the model id and the endpoint for a
    fraction of a cent."""
    from app.agent import providers

    uses: dict[Provider, list[tuple[str, str]]] = {}  # provider -> (role, model), in the order of the roles
    uses.setdefault(settings.honk_provider, []).append(("coding", settings.honk_model))
    if fallback := providers.fallback_target(settings, settings.honk_provider, settings.honk_model):
        uses.setdefault(fallback[0], []).append(("fallback", fallback[1]))
    if settings.honk_judge:
        uses.setdefault(providers.judge_provider(settings), []).append(("judge", settings.judge_model))
    return [await _check_provider(settings, provider, roles) for provider, roles in uses.items()]


async def _check_provider(settings: Settings, provider: Provider, roles: list[tuple[str, str]]) -> Check:
    import anthropic

    from app.agent import providers

    name, (credentials_fix, reach_fix) = PROVIDER_LINES[provider], PROVIDER_FIXES[provider]
    what = ", ".join(dict.fromkeys(role for role, _ in roles))
    key = settings.anthropic_api_key
    if provider == "anthropic" and (key is None or not key.get_secret_value()):
        return fail(name, f"ANTHROPIC_API_KEY is not set ({what})", "set ANTHROPIC_API_KEY to a key from "
                                                                      "console.anthropic.com")
    try:
        client = providers.client_for(provider, settings, timeout=NETWORK_TIMEOUT)
    except providers.ProviderError as exc:
        return fail(name, f"{exc} ({what})", "set it in the environment or in .env")
    where = str(client.base_url).rstrip("/")
    models: dict[str, str] = {}  # the provider's id -> the variable that names it
    for role, model in roles:
        models.setdefault(providers.model_for(provider, model), MODEL_VARIABLES[role])
    try:
        for model, variable in models.items():
            try:
                await client.messages.create(model=model, max_tokens=1, messages=[{"role": "user", "content": "ping"}],
                                             **providers.request_extras(client))
            except anthropic.PermissionDeniedError as exc:
                return fail(name, f"{where} refused {model} (403: {_api_message(exc)})",
                            credentials_fix if provider != "anthropic" else
                            f"check the key's workspace and permissions, or set {variable} to a model it may use")
            except anthropic.NotFoundError as exc:
                return fail(name, f"model {model} not found at {where} (404: {_api_message(exc)})",
                            f"set {variable} to a model this endpoint serves (the README lists each provider's ids)")
    except anthropic.AuthenticationError as exc:
        return fail(name, f"{where} refused the credentials (401: {_api_message(exc)})", credentials_fix)
    except anthropic.APIStatusError as exc:
        if exc.status_code == 429 or exc.status_code >= 500:
            return warn(name, f"the credentials work but {where} is busy ({exc.status_code}: {_api_message(exc)})",
                        "nothing to change; Honk retries these; run honk doctor later to confirm")
        return fail(name, f"{where} answered {exc.status_code}: {_api_message(exc)}", credentials_fix)
    except anthropic.APIConnectionError as exc:
        cause = f" ({exc.__cause__})" if exc.__cause__ else ""  # the SDK's own message is only "Connection error."
        return fail(name, f"cannot reach {where}: {str(exc).rstrip('.')}{cause}", reach_fix)
    except Exception as exc:  # Bedrock's and Vertex's credentials, found outside the SDK
        if (trouble := providers.trouble(exc)) is None:
            raise
        return fail(name, trouble[0], credentials_fix)
    finally:
        await client.close()
    return ok(name, f"{', '.join(models)} answered at {where} ({what})")


# Helpers

def _version(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if done.returncode == 0 and text else None


def _github_message(response: httpx.Response) -> str:
    try:
        body = response.json()
        return str(body.get("message") or body) if isinstance(body, dict) else str(body)
    except ValueError:  # not JSON: a proxy's error page, say
        return (response.text or "no body")[:200]


def _api_message(exc: Exception) -> str:
    return str(getattr(exc, "message", None) or exc)[:300]


def _can_print(out: TextIO, text: str) -> bool:
    encoding = getattr(out, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
        return True
    except (UnicodeEncodeError, LookupError):
        return False


def _print(out: TextIO, line: str) -> None:
    print(line, file=out, flush=True)
