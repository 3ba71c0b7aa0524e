"""The `str_replace_based_edit_tool`: view, create, str_replace and insert, confined to one repository.

Files keep their encoding (UTF-8 with or without BOM, UTF-16 with BOM, else Latin-1 byte for byte)
and their line endings: a CRLF file is edited as LF text and written back as CRLF. Binary and huge
files are refused. Every path is resolved, symlinks included, and must stay inside the root.
"""

from __future__ import annotations

import codecs
import os
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_VIEW_CHARS = 40_000  # larger views are cut with a pointer to view_range
MAX_DIR_ENTRIES = 500
SNIPPET_CONTEXT = 4  # lines shown around an edit
SKIPPED_DIRS = {"node_modules", "__pycache__", "venv", "dist", "build", "target"}


class EditorError(Exception):
    """A refused or failed edit; the message goes back to the model with is_error."""


@dataclass(frozen=True)
class _Decoded:
    text: str  # with "\n" line endings when the file was uniformly CRLF
    encoding: str
    crlf: bool


class Editor:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def __call__(self, command: str, path: str, **args: object) -> str:
        handler = {"view": self.view, "create": self.create, "str_replace": self.str_replace,
                   "insert": self.insert}.get(command)
        if handler is None:
            raise EditorError(f"unknown command {command!r}; use one of view, create, str_replace, insert")
        return handler(path, **args)  # type: ignore[operator]

    # Paths

    def resolve(self, path: str, *, write: bool = False) -> Path:
        """The real path for `path`, or EditorError when it would leave the repository."""
        if not isinstance(path, str) or not path.strip():
            raise EditorError("`path` is required")
        if "\0" in path:
            raise EditorError("path contains a NUL byte")
        if ".." in PurePosixPath(path).parts:
            raise EditorError(f"{path}: '..' is not allowed in paths; use a path inside {self.root}")
        candidate = Path(path) if os.path.isabs(path) else self.root / path
        if not candidate.is_relative_to(self.root):
            raise EditorError(f"{path} is outside the repository {self.root}")
        try:
            real = candidate.resolve()
        except (RuntimeError, OSError):  # a symlink loop
            raise EditorError(f"{path}: cannot be resolved (symlink loop?)") from None
        if not real.is_relative_to(self.root):
            raise EditorError(f"{path} leads outside the repository (through a symlink) and is refused")
        if write and ".git" in real.relative_to(self.root).parts:
            raise EditorError(f"{path}: files under .git are not to be edited")
        return real

    def _show(self, real: Path) -> str:
        return str(real.relative_to(self.root)) if real != self.root else "."

    # Commands

    def view(self, path: str, view_range: list[int] | None = None, **_: object) -> str:
        real = self.resolve(path)
        if real.is_dir():
            if view_range is not None:
                raise EditorError("view_range applies to files, not directories")
            return self._view_dir(real)
        decoded = self._read(real)
        lines = _split(decoded.text)
        start, end = 1, len(lines)
        if view_range is not None:
            start, end = _check_range(view_range, len(lines))
        if not lines:
            return f"{self._show(real)} is empty."
        out, size = [], 0
        for number in range(start, end + 1):
            line = f"{number:6}\t{lines[number - 1]}"
            if size + len(line) > MAX_VIEW_CHARS and out:
                out.append(f"[... lines {number}-{end} not shown: output limit reached; "
                           f"the file has {len(lines)} lines, use view_range to see more]")
                break
            out.append(line)
            size += len(line) + 1
        return f"Here's the result of running `cat -n` on {self._show(real)}:\n" + "\n".join(out) + "\n"

    def create(self, path: str, file_text: str | None = None, **_: object) -> str:
        if file_text is None:
            raise EditorError("`file_text` is required for create")
        real = self.resolve(path, write=True)
        if real.is_dir():
            raise EditorError(f"{path} is a directory")
        existed = real.exists()
        encoding, crlf = "utf-8", False
        if existed:
            old = self._read(real)  # refuses to overwrite binary or huge files
            encoding, crlf = old.encoding, old.crlf
        real.parent.mkdir(parents=True, exist_ok=True)
        self._write(real, file_text.replace("\r\n", "\n") if crlf else file_text, encoding, crlf)
        return f"File {'overwritten' if existed else 'created'}: {self._show(real)}"

    def str_replace(self, path: str, old_str: str | None = None, new_str: str | None = None,
                    **_: object) -> str:
        if not old_str:
            raise EditorError("`old_str` is required and must not be empty")
        real = self.resolve(path, write=True)
        decoded = self._read(real)
        text = decoded.text
        if decoded.crlf:
            old_str = old_str.replace("\r\n", "\n")
            new_str = (new_str or "").replace("\r\n", "\n")
        new_str = new_str or ""
        count = text.count(old_str)
        if count == 0:
            raise EditorError(f"No replacement was performed: old_str does not occur in {self._show(real)}."
                              + _near_miss(text, old_str))
        if count > 1:
            lines = _occurrence_lines(text, old_str)
            raise EditorError(f"No replacement was performed: old_str occurs {count} times in "
                              f"{self._show(real)}, starting at lines {', '.join(map(str, lines))}. "
                              "Include more surrounding lines to make it unique.")
        at = text.index(old_str)
        text = text[:at] + new_str + text[at + len(old_str):]
        self._write(real, text, decoded.encoding, decoded.crlf)
        first = text.count("\n", 0, at) + 1
        return (f"The file {self._show(real)} has been edited. "
                + _snippet(text, first, first + new_str.count("\n")))

    def insert(self, path: str, insert_line: int | None = None, insert_text: str | None = None,
               new_str: str | None = None, **_: object) -> str:
        text_in = insert_text if insert_text is not None else new_str
        if text_in is None:
            raise EditorError("`insert_text` (or `new_str`) is required for insert")
        if not isinstance(insert_line, int) or isinstance(insert_line, bool):
            raise EditorError("`insert_line` is required and must be an integer")
        real = self.resolve(path, write=True)
        decoded = self._read(real)
        text = decoded.text
        if decoded.crlf:
            text_in = text_in.replace("\r\n", "\n")
        lines = _split(text)
        if not 0 <= insert_line <= len(lines):
            raise EditorError(f"insert_line {insert_line} is out of range: {self._show(real)} has "
                              f"{len(lines)} lines, so use 0 (start of file) to {len(lines)} (end of file)")
        head = "".join(line + "\n" for line in lines[:insert_line])
        tail = text[len(head):]
        if insert_line == len(lines) and text and not text.endswith("\n"):
            # Appending to a file without a final newline: keep it without one.
            head, tail = text + "\n", ""
            text_in = text_in.removesuffix("\n")
        elif not text_in.endswith("\n"):
            text_in += "\n"
        text = head + text_in + tail
        self._write(real, text, decoded.encoding, decoded.crlf)
        first = insert_line + 1
        return (f"The file {self._show(real)} has been edited. "
                + _snippet(text, first, first + max(text_in.count("\n") - 1, 0)))

    # File I/O

    def _read(self, real: Path) -> _Decoded:
        try:
            info = real.stat()
        except FileNotFoundError:
            raise EditorError(f"{self._show(real)} does not exist") from None
        if not stat.S_ISREG(info.st_mode):
            raise EditorError(f"{self._show(real)} is not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            raise EditorError(f"{self._show(real)} is {info.st_size / 1e6:.1f} MB, more than the editor's "
                              f"{MAX_FILE_BYTES // 1024 // 1024} MB limit; read parts of it with bash "
                              "(head, sed -n, grep)")
        data = real.read_bytes()
        text, encoding = _decode(data, self._show(real))
        crlf = "\r\n" in text and text.count("\r\n") == text.count("\n")
        return _Decoded(text.replace("\r\n", "\n") if crlf else text, encoding, crlf)

    def _write(self, real: Path, text: str, encoding: str, crlf: bool) -> None:
        if crlf:
            text = text.replace("\n", "\r\n")
        try:
            data = text.encode(encoding)
        except UnicodeEncodeError as exc:
            raise EditorError(f"{self._show(real)} is {encoding}-encoded and cannot hold "
                              f"{exc.object[exc.start:exc.end]!r}; nothing was written") from None
        # O_NOFOLLOW: never write through a symlink swapped in after the path was checked.
        fd = os.open(real, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)

    def _view_dir(self, real: Path) -> str:
        entries: list[str] = []
        for depth1 in _listdir(real):
            entries.append(depth1)
            if (real / depth1).is_dir() and not (real / depth1).is_symlink():
                entries += [f"{depth1}/{child}" for child in _listdir(real / depth1)]
        entries = self._unignored(real, entries)
        shown = [e + ("/" if (real / e).is_dir() else "") for e in entries[:MAX_DIR_ENTRIES]]
        more = len(entries) - len(shown)
        note = f"\n[... {more} more entries not shown]" if more > 0 else ""
        return (f"Here are the files and directories up to 2 levels deep in {self._show(real)}, "
                "excluding hidden items and ignored files:\n" + "\n".join(shown) + note + "\n")

    def _unignored(self, real: Path, entries: list[str]) -> list[str]:
        if not entries or not (self.root / ".git").exists():
            return entries
        try:
            # --no-index and the -c flags keep git from reading anything the repository could use
            # to run a program (fsmonitor, hooks) outside the sandbox.
            done = subprocess.run(["git", "-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null",
                                   "-C", str(real), "check-ignore", "--no-index", "--stdin", "-z"],
                                  input="\0".join(entries).encode(), capture_output=True, timeout=10,
                                  env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent",
                                       "GIT_CONFIG_NOSYSTEM": "1"})
        except (OSError, subprocess.TimeoutExpired):
            return entries
        ignored = set(done.stdout.decode(errors="replace").split("\0")) - {""}
        return [e for e in entries if e not in ignored and e.split("/")[0] not in ignored]


def _listdir(directory: Path) -> list[str]:
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    return [n for n in names if not n.startswith(".") and n not in SKIPPED_DIRS]


def _decode(data: bytes, shown: str) -> tuple[str, str]:
    for bom, encoding in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                          (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            try:
                return data.decode(encoding), encoding
            except UnicodeDecodeError:
                break
    if b"\0" in data[:8192]:
        raise EditorError(f"{shown} is a binary file; the editor only handles text (inspect it with bash)")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        # Latin-1 maps every byte to one character, so unchanged text is written back byte for byte.
        return data.decode("latin-1"), "latin-1"


def _split(text: str) -> list[str]:
    """Lines split on "\\n" only (str.splitlines also splits on form feeds and other separators)."""
    if not text:
        return []
    return text.removesuffix("\n").split("\n")


def _check_range(view_range: object, total: int) -> tuple[int, int]:
    if (not isinstance(view_range, list | tuple) or len(view_range) != 2
            or not all(isinstance(n, int) and not isinstance(n, bool) for n in view_range)):
        raise EditorError("view_range must be two integers [start, end]; end -1 means the end of the file")
    start, end = view_range
    if start < 1 or (total and start > total) or (not total and start > 1):
        raise EditorError(f"view_range start {start} is out of range: the file has {total} lines")
    if end == -1 or end > total:
        end = total
    if end < start:
        raise EditorError(f"view_range end {end} is before its start {start}")
    return start, end


def _occurrence_lines(text: str, needle: str) -> list[int]:
    lines, at = [], text.find(needle)
    while at >= 0:
        lines.append(text.count("\n", 0, at) + 1)
        at = text.find(needle, at + 1)
    return lines


def _near_miss(text: str, old: str) -> str:
    """A hint when old_str matches once whitespace at line ends or indentation is ignored."""
    def squash(s: str) -> str:
        return "\n".join(line.strip() for line in s.split("\n"))
    if squash(old) and squash(old) in squash(text):
        line = squash(text)[: squash(text).index(squash(old))].count("\n") + 1
        return (f" A match exists near line {line} if indentation and trailing whitespace are ignored; "
                "view the file and copy the text exactly, tabs and spaces included.")
    return " View the file and copy the text exactly, including whitespace."


def _snippet(text: str, first: int, last: int) -> str:
    lines = _split(text)
    start = max(1, first - SNIPPET_CONTEXT)
    end = min(len(lines), last + SNIPPET_CONTEXT)
    body = "\n".join(f"{n:6}\t{lines[n - 1]}" for n in range(start, end + 1))
    return f"Here's the result of running `cat -n` on a snippet of the edited file:\n{body}\n" \
           "Review the changes and make sure they are as expected."
