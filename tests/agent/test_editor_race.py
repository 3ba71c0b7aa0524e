"""The editor against a sandboxed job that keeps swapping directories for symlinks, for real.

The editor runs in Honk's process on the host, so a symlink planted by sandboxed code is followed
with Honk's rights. Here background loops inside bubblewrap swap directories of the repository with
symlinks to a directory beside the repository (by absolute host path and by `../`) and to `.git`:
with coreutils, and where the sandbox has python3 also with system calls in a tight loop and
atomically with renameat2(RENAME_EXCHANGE). Meanwhile Honk's process calls the editor on paths
through those directories as fast as it can. Nothing outside the repository may be read, listed,
created or changed, `.git` included; the operations that land inside must succeed. (The editor as it
was, checking paths and then using them, fails this test within a second.)
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from pathlib import Path

import pytest

from app.agent import editor as editor_module
from app.agent.editor import Editor, EditorError
from app.checkout.sandbox import Sandbox
from tests.agent.conftest import needs_bwrap, run
from tests.agent.test_editor import HAS_OPENAT2

MARKER = "OUTSIDE-MARKER-5d1c9e"
HAS_SANDBOX_PYTHON = os.path.exists("/usr/bin/python3")
# How long each swapping loop is attacked (bounds on the work, not timing assertions): about 1.7 s
# per parametrised run. The shell loops are slow, so they get longer, and longer still without python.
ATTACK_SECONDS = {"shell": 0.3 if HAS_SANDBOX_PYTHON else 0.6, "swap": 0.12, "exchange": 0.15}

# Puts the real directory aside and a prepared symlink in its place, leaves it there for the
# time one `mv` takes, then puts the directory back: one process per step, slow, but all coreutils.
# If the editor's `create` made a fresh directory in a gap, it is dropped so that the loop goes on.
SHELL_SWAP = r"""
(tries=0 n=0
 ln -sfT {target} {d}.link
 while [ ! -e /tmp/stop ]; do
   tries=$((tries+1))
   if [ -e {d}.real ]; then rm -rf {d}; mv -T {d}.real {d}; fi
   mv -T {d} {d}.real 2>/dev/null && mv -T {d}.link {d} 2>/dev/null && n=$((n+1)) &&
     mv -T {d} {d}.link && mv -T {d}.real {d}
 done
 echo "$tries $n" >/tmp/count) >/dev/null 2>&1 &
"""

# The same steps as system calls, much faster; or, with exchange, renameat2's RENAME_EXCHANGE,
# so that at every instant one of the directory and the symlink is in place.
PYTHON_LOOP = r"""
/usr/bin/python3 -c '
import ctypes, os, shutil
renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
d, real, target, exchange = "{d}", "{d}.real", "{target}", {exchange}
tries = n = 0  # n counts the times the symlink was put in place

def recover():  # the editor made a fresh directory in a gap: drop it, put the real one back
    try:
        if os.path.lexists(real):
            if os.path.isdir(d) and not os.path.islink(d):
                shutil.rmtree(d, ignore_errors=True)
            elif os.path.lexists(d):
                os.unlink(d)
            os.rename(real, d)
    except OSError:
        pass

if exchange:
    os.symlink(target, real)
while tries % 256 or not os.path.exists("/tmp/stop"):
    tries += 1
    if exchange:
        n += renameat2(-100, d.encode(), -100, real.encode(), 2) == 0  # AT_FDCWD, RENAME_EXCHANGE
        continue
    try:
        os.rename(d, real)
        os.symlink(target, d)
        n += 1
        os.unlink(d)
        os.rename(real, d)
    except OSError:
        recover()
open("/tmp/count", "w").write(f"{{tries}} {{n}}")
' >/dev/null 2>&1 &
"""


def loop(d: str, target: str, how: str) -> str:
    if how == "shell":
        return SHELL_SWAP.format(d=d, target=target)
    return PYTHON_LOOP.format(d=d, target=target, exchange=how == "exchange")


def snapshot(*paths: Path) -> dict[str, tuple[bytes, int] | str]:
    """Every file and directory under `paths`, with contents and mtimes."""
    seen: dict[str, tuple[bytes, int] | str] = {}
    for top in paths:
        for where, dirs, files in os.walk(top):
            for name in dirs:
                seen[os.path.join(where, name)] = "dir"
            for name in files:
                path = os.path.join(where, name)
                seen[path] = "link" if os.path.islink(path) else (Path(path).read_bytes(), os.lstat(path).st_mtime_ns)
    return seen


@pytest.fixture(params=["openat2", "walk"])
def confinement(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "openat2" and not HAS_OPENAT2:
        pytest.skip("this kernel has no openat2 (or a seccomp filter refuses it)")
    monkeypatch.setattr(editor_module, "openat2_usable", request.param == "openat2")
    return request.param


OPS = (("create", "{d}/config", {"file_text": "pwned = true\n"}),
       ("view", "{d}/secret.txt", {}),
       ("view", "{d}", {}),
       ("str_replace", "{d}/victim.txt", {"old_str": "victim\n", "new_str": "victim\nPWNED\n"}),
       ("insert", "{d}/victim.txt", {"insert_line": 0, "insert_text": "PWNED"}))


@needs_bwrap
def test_swapping_directories_for_symlinks_never_gets_the_editor_outside(repo: Path, confinement: str) -> None:
    outside = repo.parent / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(f"{MARKER} secret\n")
    (outside / "victim.txt").write_text("victim\n")
    (outside / f"{MARKER}.txt").write_text("listed only if the outside directory is listed\n")
    # directory -> (symlink target, how it is swapped); one at a time, so that the loop has a CPU
    variants = {"d1": (str(outside), "shell"), "d2": ("../outside", "shell"), "d3": (".git", "shell")}
    if HAS_SANDBOX_PYTHON:
        variants.update({"d4": (str(outside), "swap"), "d5": ("../outside", "swap"), "d6": (".git", "swap"),
                         "d7": (str(outside), "exchange"), "d8": ("../outside", "exchange"),
                         "d9": (".git", "exchange")})
    for d in variants:
        (repo / d).mkdir()
        (repo / d / "secret.txt").write_text("inside secret\n")
        (repo / d / "victim.txt").write_text("victim\n")
        (repo / d / "inside-only.txt").write_text("x\n")
    before = snapshot(outside, repo / ".git")
    beside_before = sorted(os.listdir(repo.parent))

    ed = Editor(repo)
    results: Counter[str] = Counter()
    unexpected: list[str] = []
    leaks: list[str] = []

    def attack(d: str, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for op, path, args in OPS:
                path = path.format(d=d)
                try:
                    out = ed(op, path, **args)
                except EditorError as exc:
                    out = str(exc)
                    results["changed" if "changed while" in out else "refused"] += 1
                except Exception as exc:
                    unexpected.append(f"{op} {path}: {exc!r}")
                    continue
                else:
                    results[f"{op} ok"] += 1
                if MARKER in out:
                    leaks.append(f"{op} {path}: {out[:300]!r}")

    async def main() -> dict[str, tuple[int, int]]:
        swaps = {}  # variant -> (iterations of its loop, times its symlink was put in place)
        shell = Sandbox(repo, mode="bwrap").shell()
        try:
            for d, (target, how) in variants.items():
                started = await shell.run(loop(d, target, how), 20)
                assert started.exit_code == 0, started.output
                await asyncio.to_thread(attack, d, ATTACK_SECONDS[how])
                stop = "touch /tmp/stop; wait; cat /tmp/count || echo 0 0; rm -f /tmp/stop /tmp/count"
                stopped = await shell.run(stop, 20)
                tries, placed = stopped.output.split()[-2:]
                swaps[d] = int(tries), int(placed)
        finally:
            await shell.close()
        return swaps

    swaps = run(main())
    print(f"confinement={confinement} swaps={swaps} results={dict(results)}")
    assert not leaks, leaks
    assert not unexpected, unexpected
    assert snapshot(outside, repo / ".git") == before  # nothing outside touched, .git intact
    assert sorted(os.listdir(repo.parent)) == beside_before
    # The test is not vacuous: every loop ran, the fast ones put their symlinks in place again and
    # again (the shell loops fork four times a swap, and the editor's `create` often refills their
    # gap with a fresh directory, so they may manage only a few), the editor met the symlinks, and
    # every kind of operation also succeeded on the real directories inside.
    assert all(tries > 0 for tries, _ in swaps.values()), swaps
    assert all(placed > 0 for d, (_, placed) in swaps.items() if variants[d][1] != "shell"), swaps
    assert sum(placed for _, placed in swaps.values()) > 0, swaps
    assert results["refused"] + results["changed"] > 0
    for op in ("create", "view", "str_replace", "insert"):
        assert results[f"{op} ok"] > 0, results
