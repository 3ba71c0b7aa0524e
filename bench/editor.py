"""Benchmark of the editor tool's file operations: kernel-confined opens against the old path checks.

Prints figures and ratios against a baseline measured in the same run; asserts nothing.
- baseline: the editor as it was, resolving each path with realpath and then using the path
  (check-then-use, unsafe against a sandbox that swaps directories; kept here, minimal, to compare);
- the editor now, with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), and with the component walk
  used where the kernel has no openat2;
for view (a small file, a file 8 directories deep, a directory), create, str_replace and insert:
median per operation (target: under 5 ms).

Run: .venv/bin/python bench/editor.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.agent import editor as editor_module
from app.agent.editor import (
    MAX_DIR_ENTRIES,
    MAX_FILE_BYTES,
    Editor,
    EditorError,
    _check_range,
    _decode,
    _Decoded,
    _snippet,
    _split,
)

RUNS = 500
DEEP = "a/b/c/d/e/f/g/h/deep.py"


class PathEditor(Editor):
    """The old approach, minimal: resolve() checks a path, later calls use it again (the bug). Only
    the file system layer is the old one; the text handling is the editor's own."""

    def resolve(self, path: str, *, write: bool = False) -> Path:
        if not isinstance(path, str) or not path.strip() or "\0" in path:
            raise EditorError("bad path")
        if ".." in PurePosixPath(path).parts:
            raise EditorError("'..' is not allowed")
        candidate = Path(path) if os.path.isabs(path) else self.root / path
        if not candidate.is_relative_to(self.root):
            raise EditorError("outside the repository")
        real = candidate.resolve()
        if not real.is_relative_to(self.root):
            raise EditorError("leads outside the repository")
        if write and ".git" in real.relative_to(self.root).parts:
            raise EditorError("files under .git are not to be edited")
        return real

    def view(self, path: str, view_range: list[int] | None = None, **_: object) -> str:
        real = self.resolve(path)
        if real.is_dir():
            return self._old_view_dir(real)
        decoded = self._old_read(real)
        lines = _split(decoded.text)
        start, end = _check_range(view_range, len(lines)) if view_range else (1, len(lines))
        return "".join(f"{n:6}\t{lines[n - 1]}\n" for n in range(start, end + 1))

    def create(self, path: str, file_text: str | None = None, **_: object) -> str:
        real = self.resolve(path, write=True)
        encoding, crlf = "utf-8", False
        if real.exists():
            old = self._old_read(real)
            encoding, crlf = old.encoding, old.crlf
        real.parent.mkdir(parents=True, exist_ok=True)
        self._old_write(real, file_text or "", encoding, crlf)
        return "File created"

    def str_replace(self, path: str, old_str: str | None = None, new_str: str | None = None, **_: object) -> str:
        real = self.resolve(path, write=True)
        decoded = self._old_read(real)
        if decoded.text.count(old_str or "") != 1:
            raise EditorError("no unique match")
        at = decoded.text.index(old_str or "")
        text = decoded.text[:at] + (new_str or "") + decoded.text[at + len(old_str or ""):]
        self._old_write(real, text, decoded.encoding, decoded.crlf)
        first = text.count("\n", 0, at) + 1
        return _snippet(text, first, first + (new_str or "").count("\n"))

    def insert(self, path: str, insert_line: int | None = None, insert_text: str | None = None,
               **_: object) -> str:
        real = self.resolve(path, write=True)
        decoded = self._old_read(real)
        lines = _split(decoded.text)
        head = "".join(line + "\n" for line in lines[:insert_line])
        text = head + (insert_text or "") + decoded.text[len(head):]
        self._old_write(real, text, decoded.encoding, decoded.crlf)
        return _snippet(text, (insert_line or 0) + 1, (insert_line or 0) + 1)

    def _old_read(self, real: Path) -> _Decoded:
        info = real.stat()
        if info.st_size > MAX_FILE_BYTES:
            raise EditorError("too big")
        text, encoding = _decode(real.read_bytes(), str(real))
        crlf = "\r\n" in text and text.count("\r\n") == text.count("\n")
        return _Decoded(text.replace("\r\n", "\n") if crlf else text, encoding, crlf)

    def _old_write(self, real: Path, text: str, encoding: str, crlf: bool) -> None:
        data = (text.replace("\n", "\r\n") if crlf else text).encode(encoding)
        fd = os.open(real, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)

    def _old_view_dir(self, real: Path) -> str:
        def listdir(directory: Path) -> list[str]:
            return [n for n in sorted(os.listdir(directory)) if not n.startswith(".")
                    and n not in editor_module.SKIPPED_DIRS]
        entries: list[str] = []
        for depth1 in listdir(real):
            entries.append(depth1)
            if (real / depth1).is_dir() and not (real / depth1).is_symlink():
                entries += [f"{depth1}/{child}" for child in listdir(real / depth1)]
        # The old way to leave out ignored files: host git on the model's tree.
        done = subprocess.run(["git", "-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null", "-C", str(real),
                               "check-ignore", "--no-index", "--stdin", "-z"], input="\0".join(entries).encode(),
                              capture_output=True, timeout=10,
                              env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent",
                                   "GIT_CONFIG_NOSYSTEM": "1"})
        ignored = set(done.stdout.decode(errors="replace").split("\0")) - {""}
        kept = [e for e in entries if e not in ignored and e.split("/")[0] not in ignored]
        return "\n".join(e + ("/" if (real / e).is_dir() else "") for e in kept[:MAX_DIR_ENTRIES])


def interleaved(editors: dict[str, tuple[Editor, bool]], op: Callable[[Editor, int], object], n: int,
                setup: Callable[[Editor], None] | None = None) -> dict[str, float]:
    """Median seconds per call for each editor, over n calls each after a warm-up call. The editors
    take turns call by call, so that drift in the file system's speed (journal, page cache) hits
    them alike; `setup` runs untimed before each call."""
    times: dict[str, list[float]] = {label: [] for label in editors}
    for i in range(-1, n):
        for label, (ed, openat2) in editors.items():
            editor_module.openat2_usable = openat2
            if setup:
                setup(ed)
            started = time.perf_counter()
            op(ed, i)
            if i >= 0:
                times[label].append(time.perf_counter() - started)
    return {label: statistics.median(t) for label, t in times.items()}


def make_repo(root: Path) -> Path:
    repo = root / "repo"
    (repo / "src").mkdir(parents=True)
    for i in range(20):
        (repo / "src" / f"mod{i}.py").write_text("".join(f"def f{j}(x):\n    return x + {j}\n\n" for j in range(30)))
        (repo / "src" / f"mod{i}.log").write_text("ignored\n")
    (repo / DEEP).parent.mkdir(parents=True)
    (repo / DEEP).write_text("x = 1\n")
    (repo / ".gitignore").write_text("*.log\n__pycache__/\n")
    (repo / "src" / ".gitignore").write_text("!mod0.log\n")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    return repo


def fmt(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} µs" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


def line(label: str, values: list[str], note: str = "") -> None:
    print(f"  {label:<30} {''.join(f'{v:>16}' for v in values)}  {note}")


def measure(editors: dict[str, tuple[Editor, bool]]) -> dict[str, dict[str, float]]:
    original = (editors[next(iter(editors))][0].root / "src/mod1.py").read_text()

    def reset(ed: Editor) -> None:
        (ed.root / "src/mod1.py").write_text(original)

    return {
        "view file (90 lines)": interleaved(editors, lambda ed, i: ed("view", "src/mod1.py"), RUNS),
        "view file 8 dirs deep": interleaved(editors, lambda ed, i: ed("view", DEEP), RUNS),
        "view directory (2 levels)": interleaved(editors, lambda ed, i: ed("view", "."), RUNS // 5),
        "create (new file, new dir)": interleaved(
            editors, lambda ed, i: ed("create", f"new/d{i}/f.py", file_text="x\n"), RUNS),
        "create (overwrite)": interleaved(editors, lambda ed, i: ed("create", "src/mod2.py", file_text="y = 2\n"),
                                          RUNS),
        "str_replace": interleaved(editors, lambda ed, i: ed("str_replace", "src/mod1.py", old_str="return x + 7\n",
                                                             new_str="return x + 700\n"), RUNS, reset),
        "insert": interleaved(editors, lambda ed, i: ed("insert", "src/mod1.py", insert_line=3,
                                                        insert_text="# note\n"), RUNS, reset),
    }


def main() -> None:
    print(f"honk editor benchmark · python {sys.version.split()[0]} · {RUNS} runs per operation (median)")
    has_openat2 = editor_module.openat2_usable
    if not has_openat2:
        print("  (no openat2 on this machine: only the component walk is measured)")
    modes = [("old: path checks", PathEditor, False), ("new: openat2", Editor, True), ("new: walk", Editor, False)]
    with tempfile.TemporaryDirectory(prefix="honk-bench-") as tmp:
        editors = {label: (make(make_repo(Path(tmp) / f"mode{i}")), openat2)
                   for i, (label, make, openat2) in enumerate(modes) if has_openat2 or not openat2}
        try:
            results = measure(editors)
        finally:
            editor_module.openat2_usable = has_openat2
    labels = list(editors)
    line("operation", labels, "new vs old")
    worst = 0.0
    for op, by_label in results.items():
        old, news = by_label[labels[0]], [by_label[label] for label in labels[1:]]
        worst = max(worst, *news)
        ratios = ", ".join(f"{old / new:.1f}x faster" if new < old else f"{new / old:.1f}x slower" for new in news)
        line(op, [fmt(by_label[label]) for label in labels], ratios)
    verdict = "under the 5 ms target" if worst < 0.005 else "OVER the 5 ms target"
    print(f"  slowest confined operation: {fmt(worst)}, {verdict}")


if __name__ == "__main__":
    main()
