"""Where the model's commands run: bubblewrap, or (only when asked for explicitly) nothing at all.

The sandbox sees the system's programs read-only and of `/etc` only what programs need (no shadow files,
no host config), the repository read-write (its `.git` and the job's git directory read-only), a private
`/tmp` and `$HOME`, its own PID namespace, and an environment rebuilt from a short allow-list. It has no
network, except setup's, whose only way out is Honk's filtering proxy (app/checkout/egress.py). It dies with
Honk; closing a shell returns only once every process of its PID namespace is gone, so that nothing the model
started still runs when Honk reads the tree.

Two ways in:
- `Sandbox.run(command, timeout)`: one fresh process per command, for Honk's own setup/test commands.
- `Sandbox.shell()`: the persistent shell behind the model's `bash` tool; `cd` and `export` persist.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import glob
import logging
import os
import secrets
import shutil
import signal
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from app.checkout.egress import (
    PROXY_PORT,
    SOCKET_IN_SANDBOX,
    EgressProxy,
    EgressUnavailable,
    require_socat,
    sandbox_env,
    wrap,
)

if TYPE_CHECKING:
    from app.settings import Settings

log = logging.getLogger("honk.sandbox")

SandboxMode = Literal["bwrap", "none"]
_PR_SET_CHILD_SUBREAPER = 36

DEFAULT_MAX_OUTPUT = 30_000  # bytes of output kept per command: half from the head, half from the tail
SANDBOX_HOME = "/home/honk"
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# The whole environment of a sandboxed process. Nothing is inherited except these few host values.
BASE_ENV = {
    "PATH": SAFE_PATH,
    "HOME": SANDBOX_HOME,
    "USER": "honk",
    "LOGNAME": "honk",
    "SHELL": "/bin/bash",
    "TMPDIR": "/tmp",
    "TERM": "dumb",
    "LANG": "C.UTF-8",
    "PAGER": "cat",
    "GIT_PAGER": "cat",
    "CI": "true",
    "PYTHONUNBUFFERED": "1",
    "PYTHONDONTWRITEBYTECODE": "1",  # no __pycache__ litter in the diff Honk commits
}
INHERITED_ENV = ("LANG", "LC_ALL", "TZ")

# System paths mounted read-only when present. Honk's working directory, its data directory, /opt,
# /srv, /root and /home are deliberately absent: they may hold the App key, `.env` and the database.
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Of /etc, only what programs need: users and name lookup, the dynamic linker, CA certificates, the
# alternatives links behind /usr/bin/java and friends, the time zone, and the config that Debian's JDK,
# Maven and Python keep there. Everything else (shadow files, ssh keys, the host's services) stays out.
ETC_PATHS = ("passwd", "group", "hosts", "nsswitch.conf", "host.conf", "gai.conf", "ld.so.cache", "ld.so.conf",
             "ld.so.conf.d", "ssl/certs", "ssl/openssl.cnf", "ca-certificates", "ca-certificates.conf", "pki/tls/certs",
             "pki/ca-trust/extracted", "alternatives", "localtime", "timezone", "mime.types", "protocols", "services",
             "os-release", "debian_version", "java-*", "maven", "python3*")
# Only for setup, which may install from package registries: the installers' own config (name resolution is
# the egress proxy's: inside, there is no name server to ask).
SETUP_ETC_PATHS = ("pip.conf", "npmrc")


class SandboxError(RuntimeError):
    """The sandbox cannot run here (bwrap missing or refused); worded for the operator."""


@dataclass(frozen=True)
class CommandResult:
    exit_code: int | None  # None when the command was killed at its timeout
    output: str  # stdout and stderr interleaved, bounded (see `dropped`)
    timed_out: bool
    duration: float
    dropped: int = 0  # bytes cut from the middle of the output


class Sandbox:
    """Runs commands for one repository checkout."""

    def __init__(self, root: Path, settings: Settings | None = None, *, mode: SandboxMode | None = None,
                 command_timeout: float | None = None, max_output: int = DEFAULT_MAX_OUTPUT,
                 protect_git: bool = True, git_dir: Path | None = None,
                 network: EgressProxy | Literal[False] | None = None) -> None:
        self.root = Path(root).resolve()
        # Only Honk's own setup step, run on the untouched checkout before the model acts, gets a network, and
        # only the filtered one of an EgressProxy (app.checkout.egress): the host's own is never shared.
        if network is not None and network is not False and not isinstance(network, EgressProxy):
            raise TypeError("Sandbox(network=...) takes an EgressProxy (app.checkout.egress), or None for no network; "
                            "the host's network is never shared")
        self.network: EgressProxy | None = network or None
        self.mode: SandboxMode = mode or (settings.honk_sandbox if settings is not None else "bwrap")
        if self.network is not None and self.mode == "bwrap":
            try:
                require_socat()  # the bridge to the proxy inside the sandbox; say so now, not mid-setup
            except EgressUnavailable as exc:
                raise SandboxError(str(exc)) from exc
        if self.network is not None and self.mode == "none" and self.network.tcp_port is None:
            raise ValueError("HONK_SANDBOX=none has no sandbox to bridge into: start the EgressProxy with tcp=True "
                             "(EgressProxy.for_settings does)")
        self.command_timeout = command_timeout or (settings.honk_command_timeout if settings else 120.0)
        self.max_output = max_output
        self.protect_git = protect_git
        # A job's git directory lives outside the tree; git inside the sandbox reads it, nothing writes it.
        self.git_dir = Path(git_dir).resolve() if git_dir is not None else None
        self.hidden = _honk_paths(settings)
        self.home = SANDBOX_HOME
        if self.mode == "none":
            # Unsandboxed commands still get a private, throwaway $HOME rather than Honk's own.
            self.home = tempfile.mkdtemp(prefix="honk-home-")
            weakref.finalize(self, shutil.rmtree, self.home, ignore_errors=True)

    # Setup

    async def check(self) -> None:
        """Fail early, in one clear line, when the sandbox cannot work on this machine."""
        if not self.root.is_dir():
            raise SandboxError(f"repository root {self.root} is not a directory")
        if self.mode == "none":
            log.warning("HONK_SANDBOX=none: commands run WITHOUT a sandbox, with the host's file system "
                        "and network")
            return
        if shutil.which("bwrap") is None:
            raise SandboxError("bubblewrap (bwrap) is not installed; install it, or set HONK_SANDBOX=none "
                               "to run commands unsandboxed (unsafe)")
        result = await self.run("true", timeout=30)
        if result.exit_code != 0:
            raise SandboxError(f"bubblewrap cannot start a sandbox here: {result.output.strip()[:300]}")

    def argv(self, command: list[str]) -> list[str]:
        """The full argv that runs `command` inside the sandbox at the repository root."""
        if self.mode == "none":
            return command
        # Always a network namespace of its own (--unshare-all), with only `lo`. With an EgressProxy, its socket
        # is the one way out: bound in under /run, bridged to 127.0.0.1:PROXY_PORT by `wrap` below.
        egress = (["--dir", os.path.dirname(SOCKET_IN_SANDBOX), "--bind", str(self.network.socket_path),
                   SOCKET_IN_SANDBOX] if self.network is not None else [])
        args = ["bwrap", "--unshare-all", "--die-with-parent",
                "--new-session", "--clearenv",
                "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/var/tmp", "--tmpfs", "/run",
                *egress, "--tmpfs", "/home", "--dir", SANDBOX_HOME]
        etc = [*ETC_PATHS, *(SETUP_ETC_PATHS if self.network else ())]
        for path in [*SYSTEM_PATHS, *sorted({p for name in etc for p in glob.glob(f"/etc/{name}")})]:
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            elif os.path.exists(path):
                args += ["--ro-bind", path, path]
        for path in self.hidden:
            if os.path.isdir(path) and not os.path.islink(path):
                args += ["--tmpfs", path]
            elif os.path.exists(path):
                args += ["--ro-bind", "/dev/null", path]
        root = str(self.root)
        args += ["--bind", root, root]
        if self.protect_git and os.path.lexists(f"{root}/.git"):
            args += ["--ro-bind", f"{root}/.git", f"{root}/.git"]
        if self.git_dir is not None and self.git_dir.is_dir():
            args += ["--ro-bind", str(self.git_dir), str(self.git_dir)]
        for key, value in self.env().items():
            args += ["--setenv", key, value]
        args += ["--chdir", root, "--", *(wrap(command) if self.network is not None else command)]
        return args

    def env(self) -> dict[str, str]:
        env = dict(BASE_ENV, HOME=self.home)
        env.update({k: os.environ[k] for k in INHERITED_ENV if os.environ.get(k)})
        if self.network is not None:
            # In bwrap the proxy is the only way out and these variables say where it is. With HONK_SANDBOX=none
            # nothing can filter the network: tools that honour them still go through the filter (to its
            # loopback port, `tcp_port`), but any program can ignore them and connect wherever it likes.
            port = PROXY_PORT if self.mode == "bwrap" else self.network.tcp_port
            assert port is not None  # checked in __init__
            env.update(sandbox_env(port))
        return env

    async def _spawn(self, command: list[str], stdin: int | None) -> asyncio.subprocess.Process:
        # A new session gives the process its own group, so a timeout can kill the whole tree. Without
        # bwrap's PID namespace, the process is made a subreaper so that children which detach
        # (setsid, double fork) stay its descendants and can be found and killed too.
        return await asyncio.create_subprocess_exec(
            *self.argv(command), stdin=stdin, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            cwd=self.root, env=self.env(), start_new_session=True,
            preexec_fn=_become_subreaper if self.mode == "none" else None)

    # One-shot commands

    async def run(self, command: str, timeout: float | None = None) -> CommandResult:
        """Run `command` with bash in a fresh sandbox; kill everything it started at the timeout.
        Background jobs end with the command."""
        timeout = timeout or self.command_timeout
        started = time.monotonic()
        out = _Bounded(self.max_output)
        collector = _Collector(out)
        transport, _ = await asyncio.get_running_loop().subprocess_exec(
            lambda: collector, *self.argv(["/bin/bash", "--noprofile", "--norc", "-c", command]),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            cwd=self.root, env=self.env(), start_new_session=True,
            preexec_fn=_become_subreaper if self.mode == "none" else None)
        pid = transport.get_pid()
        timed_out = False
        try:
            await asyncio.wait_for(collector.exited.wait(), timeout)
        except TimeoutError:
            timed_out = True
        finally:
            if collector.exited.is_set():
                # Background jobs may still hold the pipe; they are in the command's process group, whose
                # id cannot be reused while they live (unlike the exited leader's pid).
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
            else:
                namespaces = _namespaces_below(pid)
                await _gone(_signal_tree(pid))
                await _namespaces_gone(namespaces)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(collector.closed.wait(), 2.0)
            transport.close()
        code = None if timed_out else transport.get_returncode()
        return CommandResult(code, out.text(), timed_out, time.monotonic() - started, out.dropped)

    def shell(self) -> Shell:
        """A persistent shell; close it when done."""
        return Shell(self)


# The shell's driver: read NUL-terminated (nonce, command) pairs from fd 3, run each command in this
# shell (so cd/export persist) with stdin from /dev/null, then print the nonce, exit code and cwd.
# `builtin` keeps the driver working when a command defines functions named read, eval or printf.
_DRIVER = r"""
exec 3<&0 0</dev/null 2>&1
while IFS= builtin read -r -d '' -u 3 __honk_nonce && IFS= builtin read -r -d '' -u 3 __honk_cmd; do
  builtin eval "$__honk_cmd" 3<&-
  builtin printf '%s %d %s\n' "$__honk_nonce" "$?" "$PWD"
done
"""


class Shell:
    """One bash process kept alive across commands, started lazily in the repository root.

    A command that outlives its timeout takes the shell with it: the whole process tree is killed,
    and the next command gets a fresh shell in the directory the last finished command left.
    """

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.cwd = str(sandbox.root)
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self.restarts = 0

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def _start(self) -> asyncio.subprocess.Process:
        proc = await self.sandbox._spawn(["/bin/bash", "--noprofile", "--norc", "-c", _DRIVER],
                                         asyncio.subprocess.PIPE)
        self._proc = proc
        if self.cwd != str(self.sandbox.root):
            await self._exchange(f"cd {_quote(self.cwd)} 2>/dev/null || true", 10.0)
        return proc

    async def run(self, command: str, timeout: float | None = None) -> CommandResult:
        async with self._lock:
            if not self.alive:
                await self._start()
            return await self._exchange(command.replace("\0", ""), timeout or self.sandbox.command_timeout)

    async def restart(self) -> None:
        async with self._lock:
            await self._stop()
            self.cwd = str(self.sandbox.root)
            self.restarts += 1

    async def close(self) -> None:
        async with self._lock:
            await self._stop()

    def kill(self) -> None:
        """Kill the shell and everything it started, without waiting (for cleanup outside a loop)."""
        if self._proc is not None and self._proc.returncode is None:
            _signal_tree(self._proc.pid)
        self._proc = None

    async def _stop(self) -> None:
        if self._proc is not None:
            await _kill_tree(self._proc)
            self._proc = None

    async def _exchange(self, command: str, timeout: float) -> CommandResult:
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        started = time.monotonic()
        nonce = f"__honk_{secrets.token_hex(8)}__".encode()
        out = _Bounded(self.sandbox.max_output)
        pending = bytearray()
        keep = len(nonce) + 8192  # enough to hold the status line while the rest moves to `out`
        try:
            proc.stdin.write(nonce + b"\0" + command.encode() + b"\0")
            await proc.stdin.drain()
            async with asyncio.timeout(timeout):
                while True:
                    chunk = await proc.stdout.read(65536)
                    if not chunk:  # the shell exited (`exit`, `exec`, set -e ...)
                        out.add(bytes(pending))
                        code = await proc.wait()
                        self._proc = None
                        note = f"\n[the shell exited with code {code}; the next command starts a new shell]"
                        return CommandResult(code, out.text() + note, False, time.monotonic() - started,
                                             out.dropped)
                    search_from = max(0, len(pending) - len(nonce))
                    pending += chunk
                    at = pending.find(nonce, search_from)
                    if at >= 0 and (end := pending.find(b"\n", at)) >= 0:
                        out.add(bytes(pending[:at]))
                        status = pending[at + len(nonce):end].decode(errors="replace").split(" ", 2)
                        code = int(status[1]) if len(status) > 1 and status[1].lstrip("-").isdigit() else None
                        if len(status) > 2 and status[2]:
                            self.cwd = status[2]
                        return CommandResult(code, out.text(), False, time.monotonic() - started, out.dropped)
                    if at < 0 and len(pending) > 2 * keep:
                        out.add(bytes(pending[:-keep]))
                        del pending[:-keep]
        except TimeoutError:
            out.add(bytes(pending))
            await self._stop()
            return CommandResult(None, out.text(), True, time.monotonic() - started, out.dropped)
        except (BrokenPipeError, ConnectionResetError):
            await self._stop()
            return CommandResult(None, "[the shell had exited; the next command starts a new shell]", False,
                                 time.monotonic() - started)
        except BaseException:
            await self._stop()  # cancelled mid-command: never leave a half-read shell behind
            raise


def _honk_paths(settings: Settings | None) -> list[str]:
    """Honk's own files that happen to lie under a mounted system path (say Honk runs from /usr/src/honk,
    or keeps its key in /etc/honk): they are masked inside the sandbox."""
    candidates = [Path.cwd(), Path.cwd() / ".env"]
    if settings is not None:
        candidates += [settings.honk_data_dir, settings.github_private_key_path]
    hidden = []
    for path in candidates:
        if path is None:
            continue
        real = os.path.realpath(path.expanduser())
        if any(real.startswith(system + "/") for system in SYSTEM_PATHS):
            hidden.append(real)
    return hidden


class _Collector(asyncio.SubprocessProtocol):
    """Gathers a one-shot command's output and notices its exit without waiting for its pipes."""

    def __init__(self, out: _Bounded) -> None:
        self.out = out
        self.exited = asyncio.Event()
        self.closed = asyncio.Event()

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        self.out.add(data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self.closed.set()

    def process_exited(self) -> None:
        self.exited.set()


class _Bounded:
    """Keeps the first and last `limit/2` bytes of a stream and counts what fell in between."""

    def __init__(self, limit: int) -> None:
        self.head_limit = limit // 2
        self.tail_limit = limit - self.head_limit
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def add(self, data: bytes) -> None:
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > self.tail_limit:
                excess = len(self.tail) - self.tail_limit
                self.dropped += excess
                del self.tail[:excess]

    def text(self) -> str:
        if not self.dropped:
            return (self.head + self.tail).decode(errors="replace")
        return (self.head.decode(errors="replace")
                + f"\n[... {self.dropped} bytes of output cut here; {len(self.head)} kept from the start, "
                  f"{len(self.tail)} from the end ...]\n"
                + self.tail.decode(errors="replace"))


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _descendants(pid: int) -> list[int]:
    """Every process below `pid`, found through /proc (covers children that left the process group)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _pid_namespace(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def _namespaces_below(pid: int) -> set[str]:
    """The PID namespaces of `pid`'s descendants other than Honk's own: a bwrap sandbox has one."""
    own = _pid_namespace(os.getpid())
    return {ns for p in _descendants(pid) if (ns := _pid_namespace(p)) is not None and ns != own}


def namespace_members(namespaces: set[str]) -> list[int]:
    """Every live (not zombie) process in these PID namespaces, found through /proc."""
    if not namespaces:
        return []
    return [int(entry) for entry in os.listdir("/proc")
            if entry.isdigit() and _pid_namespace(int(entry)) in namespaces and _running(int(entry))]


async def _namespaces_gone(namespaces: set[str], limit: float = 5.0) -> None:
    """Wait until the sandbox's PID namespace is empty. The kernel kills every member once its first
    process dies; a straggler that was still being forked is killed here too, and anything that survives
    that is an error: Honk must not read the tree while sandboxed code still runs."""
    deadline = time.monotonic() + limit
    while members := namespace_members(namespaces):
        if time.monotonic() > deadline:
            raise SandboxError(f"processes {members[:10]} of a finished sandbox are still running")
        for pid in members:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.01)


def _become_subreaper() -> None:
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _signal_tree(pid: int) -> list[int]:
    """SIGKILL `pid`, its group and its descendants; returns who was signalled."""
    victims = [pid, *_descendants(pid)]
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    for victim in victims:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(victim, signal.SIGKILL)
    return victims


async def _gone(pids: list[int], limit: float = 5.0) -> None:
    """Wait until killed processes have really exited (SIGKILL is delivered asynchronously), so that a
    timed-out command has left nothing running when `run` returns."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        alive = [p for p in pids if _running(p)]
        if not alive:
            return
        await asyncio.sleep(0.01)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2:][:1] != b"Z"  # a zombie has exited; only its parent's wait is left


async def _kill_tree(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL the process, its group and every descendant; with bwrap the PID namespace goes too, and this
    returns only once no process is left in it (SandboxError if one outlives every attempt)."""
    namespaces = _namespaces_below(proc.pid) if proc.returncode is None else set()
    if proc.returncode is None:
        await _gone(_signal_tree(proc.pid))
    await _namespaces_gone(namespaces)
    if proc.stdin is not None:
        with contextlib.suppress(Exception):
            proc.stdin.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(proc.wait(), 5)
    # Close the pipes now rather than when the transport is collected, possibly after its loop closed.
    transport = getattr(proc, "_transport", None)
    if transport is not None:
        transport.close()
