"""The sandbox: no network, no secrets, no writes outside the repository, runaway commands killed."""

from __future__ import annotations

import os
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.agent import Task
from app.checkout.egress import EgressProxy
from app.checkout.sandbox import SYSTEM_PATHS, Sandbox, SandboxError, Shell
from app.settings import Settings
from tests.agent.conftest import ANTHROPIC_KEY, AgentFactory, needs_bwrap, run
from tests.fakes.messages_api import FakeMessagesAPI, end

SECRETS = {"ANTHROPIC_API_KEY": ANTHROPIC_KEY, "GITHUB_TOKEN": "ghs_HostTokenHostToken1234567890",
           "GITHUB_WEBHOOK_SECRET": "webhook-secret-from-env", "AWS_SECRET_ACCESS_KEY": "aws/secret/value/1234567890"}


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def loopback_server() -> Iterator[int]:
    """A TCP server on the host's loopback that answers anyone who connects."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            conn.sendall(b"hello from the host\n")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


def shell_run(sandbox: Sandbox, *commands: str, timeout: float = 10) -> list[str]:
    async def main() -> list[str]:
        shell = sandbox.shell()
        try:
            return [(await shell.run(c, timeout)).output for c in commands]
        finally:
            await shell.close()
    return run(main())


def test_check_explains_a_missing_bwrap(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("app.checkout.sandbox.shutil.which", lambda name: None)
    with pytest.raises(SandboxError, match=r"bubblewrap .* not installed.*HONK_SANDBOX=none"):
        run(Sandbox(repo, mode="bwrap").check())


@needs_bwrap
def test_no_network(repo: Path, loopback_server: int) -> None:
    probe = f"exec 3<>/dev/tcp/127.0.0.1/{loopback_server} && cat <&3 && echo CONNECTED || echo REFUSED"
    unsandboxed = run(Sandbox(repo, mode="none").run(probe))
    assert "hello from the host" in unsandboxed.output  # the probe works when nothing stops it
    sandboxed = run(Sandbox(repo, mode="bwrap").run(probe))
    assert "REFUSED" in sandboxed.output and "hello" not in sandboxed.output
    assert "REFUSED" in shell_run(Sandbox(repo, mode="bwrap"), probe)[0]


@needs_bwrap
@pytest.mark.skipif(shutil.which("socat") is None, reason="socat is not installed; the setup sandbox needs it")
def test_setup_sandbox_has_only_the_filtered_network_and_nothing_else_more(repo: Path, loopback_server: int,
                                                                             secret_env: None) -> None:
    """Honk's own setup step (before the model acts) may install dependencies, but only through Honk's
    filtering proxy (tests/checkout/test_egress.py): the host's network, its loopback included, stays out of reach."""
    probe = f"exec 3<>/dev/tcp/127.0.0.1/{loopback_server} && cat <&3 && echo CONNECTED || echo REFUSED; env"

    async def main() -> str:
        async with EgressProxy(["registry.example.com"]) as proxy:
            return (await Sandbox(repo, mode="bwrap", network=proxy).run(probe)).output

    output = run(main())
    assert "REFUSED" in output and "hello from the host" not in output
    assert "https_proxy=http://127.0.0.1:3128" in output and "NO_PROXY=\n" in output
    assert not [value for value in SECRETS.values() if value in output]
    assert "GITHUB" not in output
    with pytest.raises(TypeError, match="takes an EgressProxy"):
        Sandbox(repo, mode="bwrap", network=True)  # type: ignore[arg-type]


@needs_bwrap
def test_no_secret_in_the_environment(repo: Path, secret_env: None) -> None:
    env, procs = shell_run(Sandbox(repo, mode="bwrap"), "env", "cat /proc/[0-9]*/environ | tr '\\0' '\\n'")
    for value in SECRETS.values():
        assert value not in env and value not in procs
    assert "PATH=" in env and "HOME=/home/honk" in env
    assert "ANTHROPIC" not in env and "GITHUB" not in env


def test_unsandboxed_mode_still_rebuilds_the_environment(repo: Path, secret_env: None) -> None:
    output = run(Sandbox(repo, mode="none").run("env; pwd")).output
    assert not [value for value in SECRETS.values() if value in output]
    assert output.rstrip().endswith(str(repo.resolve()))


@needs_bwrap
def test_nothing_written_outside_the_repository(repo: Path, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("GITHUB_PRIVATE_KEY=very-secret\n")  # Honk's own files nearby
    marker = f"honk-sandbox-escape-{os.getpid()}"
    outputs = shell_run(Sandbox(repo, mode="bwrap"), "\n".join([
        f"touch /tmp/{marker} && echo TMP-WRITABLE",
        f"touch {tmp_path}/{marker} ; touch /usr/{marker} ; touch /etc/{marker} ; touch ~/{marker}",
        f"cat {tmp_path}/.env || echo NO-ENV-FILE",
        f"ls /root 2>&1 | head -1; touch .git/{marker} || echo GIT-READ-ONLY",
        f"echo inside > {marker}.txt && echo REPO-WRITABLE",
    ]))
    out = outputs[0]
    assert "TMP-WRITABLE" in out and "REPO-WRITABLE" in out and "GIT-READ-ONLY" in out and "NO-ENV-FILE" in out
    assert "very-secret" not in out
    assert not Path(f"/tmp/{marker}").exists() and not (tmp_path / marker).exists()
    assert not Path(f"/usr/{marker}").exists() and not Path(f"/etc/{marker}").exists()
    assert not (repo / ".git" / marker).exists()
    assert (repo / f"{marker}.txt").read_text() == "inside\n"


@needs_bwrap
def test_own_pid_namespace(repo: Path) -> None:
    count = shell_run(Sandbox(repo, mode="bwrap"), "ls /proc | grep -c '^[0-9]'")[0]
    assert int(count) < 10


@pytest.mark.parametrize("mode", [pytest.param("bwrap", marks=needs_bwrap), "none"])
def test_runaway_command_and_children_are_killed(repo: Path, mode: str) -> None:
    tag = f"3{os.getpid() % 100000}.5"
    command = f"sleep {tag} & (setsid sleep {tag} &); nohup sleep {tag} >/dev/null 2>&1 & while :; do :; done"

    async def main() -> tuple[bool, str]:
        shell = Shell(Sandbox(repo, mode=mode))  # type: ignore[arg-type]
        try:
            await shell.run("cd sub 2>/dev/null || mkdir sub && cd sub; export KEPT=1")
            result = await shell.run(command, timeout=0.5)
            after = await shell.run("pwd; echo ${KEPT:-unset}")
            return result.timed_out, after.output
        finally:
            await shell.close()

    timed_out, after = run(main())
    assert timed_out
    assert after.splitlines() == [str(repo / "sub"), "unset"]  # fresh shell, same directory
    assert not _processes_with(f"sleep {tag}")
    # The one-shot API kills its tree too.
    result = run(Sandbox(repo, mode=mode).run(command, timeout=0.5))  # type: ignore[arg-type]
    assert result.timed_out and result.exit_code is None
    assert not _processes_with(f"sleep {tag}")


def test_persistent_shell_and_restart(repo: Path, settings: Settings) -> None:
    sandbox = Sandbox(repo, settings)

    async def main() -> list[str]:
        shell = sandbox.shell()
        outputs = []
        try:
            for command in ("mkdir -p a/b && cd a/b && export FOO=bar", "pwd; echo $FOO",
                            "printf 'no newline'", "cat", "exit 3"):
                outputs.append((await shell.run(command)).output)
            outputs.append((await shell.run("echo $FOO; pwd")).output)
            await shell.restart()
            outputs.append((await shell.run("pwd; echo ${FOO:-unset}")).output)
        finally:
            await shell.close()
        return outputs

    outputs = run(main())
    assert outputs[1] == f"{repo}/a/b\nbar\n"
    assert outputs[2] == "no newline"
    assert outputs[3] == ""  # stdin is /dev/null: cat does not hang
    assert "shell exited with code 3" in outputs[4]
    assert outputs[6] == f"{repo}\nunset\n"


def test_output_is_bounded_keeping_head_and_tail(repo: Path) -> None:
    sandbox = Sandbox(repo, mode="none", max_output=2000)
    out = shell_run(sandbox, "seq 1 100000; echo THE-END")[0]
    assert out.startswith("1\n2\n3\n") and out.endswith("99999\n100000\nTHE-END\n")
    assert "bytes of output cut here" in out and len(out) < 2200
    result = run(sandbox.run("seq 1 100000"))
    assert result.dropped > 500_000 and result.exit_code == 0


def test_exit_codes_and_one_shot_results(repo: Path, settings: Settings) -> None:
    sandbox = Sandbox(repo, settings)
    result = run(sandbox.run("echo out; echo err >&2; exit 7"))
    assert (result.exit_code, result.timed_out) == (7, False)
    assert sorted(result.output.split()) == ["err", "out"]


def _processes_with(needle: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if needle in cmdline:
                found.append(int(entry))
    return found


@pytest.mark.parametrize("mode", [pytest.param("bwrap", marks=needs_bwrap), "none"])
def test_one_shot_command_ends_with_its_background_jobs(repo: Path, mode: str) -> None:
    tag = f"4{os.getpid() % 100000}.5"
    result = run(Sandbox(repo, mode=mode).run(f"sleep {tag} & echo started", timeout=30))  # type: ignore[arg-type]
    assert (result.exit_code, result.output, result.timed_out) == (0, "started\n", False)
    assert not _processes_with(f"sleep {tag}")


@needs_bwrap
def test_honks_own_files_under_system_paths_are_masked(repo: Path, tmp_path: Path, settings: Settings,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    system = tmp_path / "usr-like"
    (system / "honk").mkdir(parents=True)
    (system / "tool.txt").write_text("a system file\n")
    key = system / "honk" / "app-key.pem"
    key.write_text("-----BEGIN RSA PRIVATE KEY-----\nsecret\n-----END RSA PRIVATE KEY-----\n")
    monkeypatch.setattr("app.checkout.sandbox.SYSTEM_PATHS", (*SYSTEM_PATHS, str(system)))
    keyed = settings.model_copy(update={"github_private_key_path": key})
    output = run(Sandbox(repo, keyed, mode="bwrap").run(f"cat {system}/tool.txt; cat {key}; echo END")).output
    assert output.startswith("a system file\n") and output.endswith("END\n")
    assert "secret" not in output and "PRIVATE KEY" not in output  # masked: unreadable


def test_unsandboxed_agent_says_so_in_the_transcript(make_agent: AgentFactory, fake: FakeMessagesAPI,
                                                      settings: Settings) -> None:
    fake.script(end("ok"))
    agent, audit = make_agent(settings=settings.model_copy(update={"honk_sandbox": "none"}))

    async def main() -> None:
        async with agent:
            await agent.run(Task("x"))

    run(main())
    assert audit.of_kind("agent.start")[0]["sandbox"] == "none"
    assert "without a sandbox" in audit.of_kind("sandbox.unsafe")[0]["message"]


def test_shell_survives_commands_that_shadow_its_builtins(repo: Path) -> None:
    outputs = shell_run(Sandbox(repo, mode="none"), "read() { echo hijacked; }; eval() { :; }; printf() { :; }",
                        "echo still here")
    assert outputs == ["", "still here\n"]
