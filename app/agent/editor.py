"""The `str_replace_based_edit_tool`: view, create, str_replace and insert, confined to one repository.

Files keep their encoding (UTF-8 with or without BOM, UTF-16 with BOM, else Latin-1 byte for byte)
and their line endings: a CRLF file is edited as LF text and written back as CRLF. Binary and huge
files are refused.

The editor runs in Honk's own process, on a tree that sandboxed code changes concurrently (a
background job may swap a directory for a symlink to anywhere, thousands of times a second). So no
path is ever checked and then used: every file operation goes through a directory fd of the root,
opened once, and reaches paths beneath it with `openat2(2)` and RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS
| RESOLVE_NO_MAGICLINKS, which makes the kernel refuse anything that leaves the root or crosses a
symlink at the moment of the open. Where openat2 is missing (old kernel, seccomp), the same
confinement comes from walking one component at a time from the root fd with O_NOFOLLOW.

Symlinks that stay inside the repository still work: they are resolved in user space first (read
through confined fds, normalised against the symlink-free path, refused when they leave the root),
and the resulting symlink-free path is then opened with the confined open. If the tree changed in
between, the open fails and the model is told to try again; nothing outside is ever touched.
Directory listings leave out files ignored by .gitignore, matched with `pathspec` on .gitignore
files read through the same confined opens (no git subprocess runs on the model's tree).
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import errno
import os
import platform
import stat
import threading
import weakref
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pathspec

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_VIEW_CHARS = 40_000  # larger views are cut with a pointer to view_range
MAX_DIR_ENTRIES = 500
SNIPPET_CONTEXT = 4  # lines shown around an edit
SKIPPED_DIRS = {"node_modules", "__pycache__", "venv", "dist", "build", "target"}
MAX_SYMLINK_HOPS = 40  # the kernel's own limit (MAXSYMLINKS)
MAX_GITIGNORE_BYTES = 1024 * 1024

# openat2(2) has no wrapper in Python's os module: it is called through syscall(2).
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
CONFINED = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
# 437 in the unified syscall table; other architectures just use the component walk.
_SYS_OPENAT2 = {"x86_64": 437, "aarch64": 437, "arm64": 437}.get(platform.machine())
# Set to False for good at the first ENOSYS or EPERM (old kernel, seccomp filter); tests set it too.
openat2_usable = _SYS_OPENAT2 is not None

_O_DIR = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC  # a directory to reach things from
# O_NONBLOCK: opening a FIFO the model planted must not hang Honk (fstat then refuses it).
_O_READ = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_O_WRITE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
# How a confined open of a just-resolved path fails when the tree changed in between: a symlink
# (ELOOP), a file (ENOTDIR) or nothing (ENOENT) where a directory was; openat2 saw a rename (EAGAIN).
_CHANGED = frozenset({errno.ELOOP, errno.EXDEV, errno.ENOENT, errno.ENOTDIR, errno.EAGAIN})


class EditorError(Exception):
    """A refused or failed edit; the message goes back to the model with is_error."""


# The confined open

class _OpenHow(ctypes.Structure):
    _fields_ = (("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64))


_syscall = ctypes.CDLL(None, use_errno=True).syscall
_syscall.restype = ctypes.c_long


def _openat2(dirfd: int, path: str, flags: int) -> int:
    how = _OpenHow(flags, 0, CONFINED)
    fd = _syscall(ctypes.c_long(_SYS_OPENAT2 or -1), ctypes.c_long(dirfd), ctypes.c_char_p(os.fsencode(path)),
                  ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), path)
    return fd


def open_beneath(root_fd: int, parts: Sequence[str], flags: int) -> int:
    """An fd for `parts` (plain names: no "", "." or "..") beneath the directory `root_fd`, opened so
    that the kernel itself refuses every symlink on the way, the last component included, and
    anything outside the root: OSError (ELOOP, EXDEV, ENOTDIR ...) then. No O_CREAT."""
    global openat2_usable
    for name in parts:
        if name in ("", ".", "..") or "/" in name:
            raise ValueError(f"not a plain path component: {name!r}")
    if openat2_usable:
        for _ in range(3):
            try:
                return _openat2(root_fd, "/".join(parts) or ".", flags)
            except OSError as exc:
                if exc.errno in (errno.ENOSYS, errno.EPERM):
                    openat2_usable = False
                    break
                if exc.errno != errno.EAGAIN:  # EAGAIN: a concurrent rename anywhere; worth a retry
                    raise
        else:
            raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN), "/".join(parts))
    return _walk_beneath(root_fd, parts, flags)


def _walk_beneath(root_fd: int, parts: Sequence[str], flags: int) -> int:
    """open_beneath without openat2: one component at a time from the root fd, none followed if it
    is a symlink. Each step is a single name relative to an fd already beneath the root."""
    if not parts:
        return os.open(".", flags, dir_fd=root_fd)
    fd = root_fd
    try:
        for name in parts[:-1]:
            step = os.open(name, _O_DIR | os.O_NOFOLLOW, dir_fd=fd)  # a symlink fails with ENOTDIR
            if fd != root_fd:
                os.close(fd)
            fd = step
        last = os.open(parts[-1], flags | os.O_NOFOLLOW, dir_fd=fd)
    finally:
        if fd != root_fd:
            os.close(fd)
    if flags & os.O_PATH and stat.S_ISLNK(os.fstat(last).st_mode):  # O_PATH|O_NOFOLLOW opens a link itself
        os.close(last)
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), "/".join(parts))
    return last


# The editor

@dataclass(frozen=True)
class _Target:
    parts: tuple[str, ...]  # the symlink-free path, relative to the root
    mode: int | None  # st_mode as resolving found it (lstat); None when nothing is there

    @property
    def shown(self) -> str:
        return "/".join(self.parts) or "."


@dataclass(frozen=True)
class _Decoded:
    text: str  # with "\n" line endings when the file was uniformly CRLF
    encoding: str
    crlf: bool


class Editor:
    """Called as `editor(command, path, **args)`. The root directory is opened on first use and
    closed when the editor is collected, or by `close()`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self._fd: int | None = None
        self._closer: weakref.finalize | None = None
        self._lock = threading.Lock()

    def __call__(self, command: str, path: str, **args: object) -> str:
        handler = {"view": self.view, "create": self.create, "str_replace": self.str_replace,
                   "insert": self.insert}.get(command)
        if handler is None:
            raise EditorError(f"unknown command {command!r}; use one of view, create, str_replace, insert")
        return handler(path, **args)  # type: ignore[operator]

    @property
    def root_fd(self) -> int:
        """An O_PATH fd of the root: everything the editor touches is reached from it."""
        with self._lock:
            if self._fd is None:
                self._fd = os.open(self.root, _O_DIR)
                self._closer = weakref.finalize(self, os.close, self._fd)
            return self._fd

    def close(self) -> None:
        with self._lock:
            if self._closer is not None:
                self._closer()
            self._fd = self._closer = None

    # Paths

    def _parts(self, path: str) -> tuple[str, ...]:
        """`path` as names relative to the root, refused when it plainly points elsewhere."""
        if not isinstance(path, str) or not path.strip():
            raise EditorError("`path` is required")
        if "\0" in path:
            raise EditorError("path contains a NUL byte")
        pure = PurePosixPath(path)
        if ".." in pure.parts:
            raise EditorError(f"{path}: '..' is not allowed in paths; use a path inside {self.root}")
        if pure.is_absolute():
            if not pure.is_relative_to(str(self.root)):
                raise EditorError(f"{path} is outside the repository {self.root}")
            return pure.relative_to(str(self.root)).parts
        return pure.parts

    def _resolve(self, path: str, *, write: bool = False) -> _Target:
        """Where `path` leads now, symlinks inside the repository followed. Only a convenience: what
        is found here is opened again later with open_beneath, which the kernel confines."""
        parts = self._parts(path)
        if write and ".git" in parts:
            raise EditorError(f"{path}: files under .git are not to be edited")
        target = self._follow(path, parts)
        if write and ".git" in target.parts:
            raise EditorError(f"{path}: files under .git are not to be edited")
        return target

    def _follow(self, path: str, parts: tuple[str, ...]) -> _Target:
        todo = deque(parts)
        real: list[str] = []
        dirs = [self.root_fd]  # dirs[i] is an fd of real[:i], each opened from the one before
        mode: int | None = stat.S_IFDIR
        hops = 0
        try:
            while todo:
                name = todo.popleft()
                if name in ("", "."):
                    continue
                if name == "..":  # only from a symlink's target: lexically, against the real path
                    if mode is None:
                        raise EditorError(f"{path} does not exist")
                    if not real:
                        raise EditorError(f"{path} leads outside the repository (through a symlink) "
                                          "and is refused")
                    real.pop()
                    os.close(dirs.pop())
                    mode = stat.S_IFDIR
                    continue
                if mode is None:  # below a missing name: nothing to look at, create makes it
                    real.append(name)
                    continue
                try:
                    info = os.stat(name, dir_fd=dirs[-1], follow_symlinks=False)
                except FileNotFoundError:
                    real.append(name)
                    mode = None
                    continue
                if stat.S_ISLNK(info.st_mode):
                    hops += 1
                    if hops > MAX_SYMLINK_HOPS:
                        raise EditorError(f"{path}: cannot be resolved (symlink loop?)")
                    try:
                        link = os.readlink(name, dir_fd=dirs[-1])
                    except OSError as exc:  # EINVAL: no longer a symlink
                        raise self._changed(path) from exc
                    if link.startswith("/"):
                        inside = self._beneath(link)
                        if inside is None:
                            raise EditorError(f"{path} leads outside the repository (through a symlink) "
                                              "and is refused")
                        for fd in dirs[1:]:
                            os.close(fd)
                        del dirs[1:]
                        real.clear()
                        mode = stat.S_IFDIR
                        todo.extendleft(reversed(inside))
                    else:
                        todo.extendleft(reversed(link.split("/")))
                    continue
                real.append(name)
                mode = info.st_mode
                if todo:  # more names follow, so this must be a directory
                    if not stat.S_ISDIR(mode):
                        raise EditorError(f"{path}: {'/'.join(real)} is not a directory")
                    try:
                        dirs.append(os.open(name, _O_DIR | os.O_NOFOLLOW, dir_fd=dirs[-1]))
                    except OSError as exc:
                        if exc.errno in _CHANGED:
                            raise self._changed(path) from exc
                        raise
        finally:
            for fd in dirs[1:]:
                os.close(fd)
        return _Target(tuple(real), mode)

    def _beneath(self, link: str) -> list[str] | None:
        """An absolute symlink target as names under the root, or None when it points elsewhere."""
        norm, root = os.path.normpath(link), str(self.root)
        if norm == root:
            return []
        if root != "/" and norm.startswith(root + "/"):
            return norm[len(root) + 1:].split("/")
        return None

    @staticmethod
    def _changed(path: str) -> EditorError:
        return EditorError(f"{path} changed while it was being opened (a symlink or directory was swapped in); "
                           "try again")

    def _open(self, target: _Target, flags: int, path: str) -> int:
        try:
            return open_beneath(self.root_fd, target.parts, flags)
        except OSError as exc:
            if exc.errno in _CHANGED:
                raise self._changed(path) from exc
            raise

    def _parent_fd(self, target: _Target, path: str) -> int:
        """A confined O_PATH fd of the target's directory; missing directories are made one at a
        time, each relative to a confined fd of its parent."""
        parents = target.parts[:-1]
        try:
            return open_beneath(self.root_fd, parents, _O_DIR)
        except FileNotFoundError:
            pass
        except OSError as exc:
            if exc.errno in _CHANGED:
                raise self._changed(path) from exc
            raise
        fd = open_beneath(self.root_fd, (), _O_DIR)
        try:
            for name in parents:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o777, dir_fd=fd)
                step = os.open(name, _O_DIR | os.O_NOFOLLOW, dir_fd=fd)  # a symlink fails with ENOTDIR
                os.close(fd)
                fd = step
        except OSError as exc:
            os.close(fd)
            if exc.errno in _CHANGED:
                raise self._changed(path) from exc
            raise
        return fd

    # Commands

    def view(self, path: str, view_range: list[int] | None = None, **_: object) -> str:
        target = self._resolve(path)
        if target.mode is None:
            raise EditorError(f"{target.shown} does not exist")
        if not (stat.S_ISDIR(target.mode) or stat.S_ISREG(target.mode)):
            raise EditorError(f"{target.shown} is not a regular file")
        fd = self._open(target, _O_READ, path)
        try:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                if view_range is not None:
                    raise EditorError("view_range applies to files, not directories")
                return self._view_dir(fd, target)
            decoded = self._decode_fd(fd, info, target.shown)
        finally:
            os.close(fd)
        lines = _split(decoded.text)
        start, end = 1, len(lines)
        if view_range is not None:
            start, end = _check_range(view_range, len(lines))
        if not lines:
            return f"{target.shown} is empty."
        out, size = [], 0
        for number in range(start, end + 1):
            line = f"{number:6}\t{lines[number - 1]}"
            if size + len(line) > MAX_VIEW_CHARS and out:
                out.append(f"[... lines {number}-{end} not shown: output limit reached; "
                           f"the file has {len(lines)} lines, use view_range to see more]")
                break
            out.append(line)
            size += len(line) + 1
        return f"Here's the result of running `cat -n` on {target.shown}:\n" + "\n".join(out) + "\n"

    def create(self, path: str, file_text: str | None = None, **_: object) -> str:
        if file_text is None:
            raise EditorError("`file_text` is required for create")
        target = self._resolve(path, write=True)
        if target.mode is not None and stat.S_ISDIR(target.mode):
            raise EditorError(f"{path} is a directory")
        existed = target.mode is not None
        encoding, crlf = "utf-8", False
        if existed:
            old = self._read(target, path)  # refuses to overwrite binary or huge files
            encoding, crlf = old.encoding, old.crlf
        self._write(target, file_text.replace("\r\n", "\n") if crlf else file_text, encoding, crlf, path)
        return f"File {'overwritten' if existed else 'created'}: {target.shown}"

    def str_replace(self, path: str, old_str: str | None = None, new_str: str | None = None,
                    **_: object) -> str:
        if not old_str:
            raise EditorError("`old_str` is required and must not be empty")
        target = self._resolve(path, write=True)
        decoded = self._read(target, path)
        text = decoded.text
        if decoded.crlf:
            old_str = old_str.replace("\r\n", "\n")
            new_str = (new_str or "").replace("\r\n", "\n")
        new_str = new_str or ""
        count = text.count(old_str)
        if count == 0:
            raise EditorError(f"No replacement was performed: old_str does not occur in {target.shown}."
                              + _near_miss(text, old_str))
        if count > 1:
            lines = _occurrence_lines(text, old_str)
            raise EditorError(f"No replacement was performed: old_str occurs {count} times in "
                              f"{target.shown}, starting at lines {', '.join(map(str, lines))}. "
                              "Include more surrounding lines to make it unique.")
        at = text.index(old_str)
        text = text[:at] + new_str + text[at + len(old_str):]
        self._write(target, text, decoded.encoding, decoded.crlf, path)
        first = text.count("\n", 0, at) + 1
        return (f"The file {target.shown} has been edited. "
                + _snippet(text, first, first + new_str.count("\n")))

    def insert(self, path: str, insert_line: int | None = None, insert_text: str | None = None,
               new_str: str | None = None, **_: object) -> str:
        text_in = insert_text if insert_text is not None else new_str
        if text_in is None:
            raise EditorError("`insert_text` (or `new_str`) is required for insert")
        if not isinstance(insert_line, int) or isinstance(insert_line, bool):
            raise EditorError("`insert_line` is required and must be an integer")
        target = self._resolve(path, write=True)
        decoded = self._read(target, path)
        text = decoded.text
        if decoded.crlf:
            text_in = text_in.replace("\r\n", "\n")
        lines = _split(text)
        if not 0 <= insert_line <= len(lines):
            raise EditorError(f"insert_line {insert_line} is out of range: {target.shown} has "
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
        self._write(target, text, decoded.encoding, decoded.crlf, path)
        first = insert_line + 1
        return (f"The file {target.shown} has been edited. "
                + _snippet(text, first, first + max(text_in.count("\n") - 1, 0)))

    # File I/O

    def _read(self, target: _Target, path: str) -> _Decoded:
        if target.mode is None:
            raise EditorError(f"{target.shown} does not exist")
        if not stat.S_ISREG(target.mode):
            raise EditorError(f"{target.shown} is not a regular file")
        fd = self._open(target, _O_READ, path)
        try:
            return self._decode_fd(fd, os.fstat(fd), target.shown)
        finally:
            os.close(fd)

    @staticmethod
    def _decode_fd(fd: int, info: os.stat_result, shown: str) -> _Decoded:
        # What counts is what the fd is, not what resolving saw.
        if not stat.S_ISREG(info.st_mode):
            raise EditorError(f"{shown} is not a regular file")
        data = b"" if info.st_size > MAX_FILE_BYTES else _read_fd(fd, MAX_FILE_BYTES + 1)
        if info.st_size > MAX_FILE_BYTES or len(data) > MAX_FILE_BYTES:
            size = max(info.st_size, len(data))
            raise EditorError(f"{shown} is {size / 1e6:.1f} MB, more than the editor's "
                              f"{MAX_FILE_BYTES // 1024 // 1024} MB limit; read parts of it with bash "
                              "(head, sed -n, grep)")
        text, encoding = _decode(data, shown)
        crlf = "\r\n" in text and text.count("\r\n") == text.count("\n")
        return _Decoded(text.replace("\r\n", "\n") if crlf else text, encoding, crlf)

    def _write(self, target: _Target, text: str, encoding: str, crlf: bool, path: str) -> None:
        if crlf:
            text = text.replace("\n", "\r\n")
        try:
            data = text.encode(encoding)
        except UnicodeEncodeError as exc:
            raise EditorError(f"{target.shown} is {encoding}-encoded and cannot hold "
                              f"{exc.object[exc.start:exc.end]!r}; nothing was written") from None
        if not target.parts:
            raise EditorError(f"{path} is a directory")
        parent = self._parent_fd(target, path)
        try:
            # One name relative to a confined directory fd, and O_NOFOLLOW: nowhere else to go.
            fd = os.open(target.parts[-1], _O_WRITE, 0o644, dir_fd=parent)
        except IsADirectoryError:
            raise EditorError(f"{path} is a directory") from None
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # a FIFO nobody reads
                raise EditorError(f"{target.shown} is not a regular file") from None
            if exc.errno in _CHANGED:
                raise self._changed(path) from exc
            raise
        finally:
            os.close(parent)
        with os.fdopen(fd, "wb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise EditorError(f"{target.shown} is not a regular file")
            f.write(data)

    # Directory listings

    def _view_dir(self, fd: int, target: _Target) -> str:
        entries: list[tuple[str, bool]] = []  # (path relative to the directory, is a directory)
        specs: dict[tuple[str, ...], pathspec.GitIgnoreSpec] = {}  # .gitignore files by directory
        git = self._is_git_repo()
        for name, is_dir in _scan(fd):
            entries.append((name, is_dir))
            if not is_dir:
                continue
            try:
                sub = os.open(name, _O_READ | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError:
                continue  # gone or swapped since the scan: listed without its contents
            try:
                entries += [(f"{name}/{child}", child_is_dir) for child, child_is_dir in _scan(sub)]
                if git and (spec := _gitignore(sub, ".gitignore")) is not None:
                    specs[(*target.parts, name)] = spec
            finally:
                os.close(sub)
        if git and entries:
            entries = self._unignored(target.parts, entries, specs)
        shown = [e + ("/" if is_dir else "") for e, is_dir in entries[:MAX_DIR_ENTRIES]]
        more = len(entries) - len(shown)
        note = f"\n[... {more} more entries not shown]" if more > 0 else ""
        return (f"Here are the files and directories up to 2 levels deep in {target.shown}, "
                "excluding hidden items and ignored files:\n" + "\n".join(shown) + note + "\n")

    def _is_git_repo(self) -> bool:
        try:
            os.stat(".git", dir_fd=self.root_fd, follow_symlinks=False)  # a directory, or a `gitdir:` file
        except OSError:
            return False
        return True

    def _unignored(self, base: tuple[str, ...], entries: list[tuple[str, bool]],
                   specs: dict[tuple[str, ...], pathspec.GitIgnoreSpec]) -> list[tuple[str, bool]]:
        """Entries (relative to the directory `base`) that git would not ignore, judged by the
        .gitignore files of the root, of every directory down to `base`, and of the listed
        directories (in `specs`), plus .git/info/exclude. Like git, a deeper .gitignore outranks
        a shallower one, and nothing inside a listed directory that is ignored is listed. Read
        with the confined opens: the files are the model's."""
        for depth in range(len(base) + 1):
            try:
                parent = open_beneath(self.root_fd, base[:depth], _O_DIR)
            except OSError:
                continue
            try:
                if (spec := _gitignore(parent, ".gitignore")) is not None:
                    specs[base[:depth]] = spec
            finally:
                os.close(parent)
        exclude = None
        try:
            info = open_beneath(self.root_fd, (".git", "info"), _O_DIR)
        except OSError:
            pass
        else:
            try:
                exclude = _gitignore(info, "exclude")
            finally:
                os.close(info)

        def ignored(rel: tuple[str, ...], is_dir: bool) -> bool:
            for depth in range(len(rel) - 1, -1, -1):
                spec = specs.get(rel[:depth])
                if spec is not None:
                    verdict = spec.check_file("/".join(rel[depth:]) + ("/" if is_dir else "")).include
                    if verdict is not None:
                        return verdict
            if exclude is not None:
                return bool(exclude.check_file("/".join(rel) + ("/" if is_dir else "")).include)
            return False

        kept, dropped_dirs = [], set()
        for entry, is_dir in entries:
            names = tuple(entry.split("/"))
            if names[0] in dropped_dirs or ignored((*base, *names), is_dir):
                if is_dir and len(names) == 1:
                    dropped_dirs.add(names[0])
                continue
            kept.append((entry, is_dir))
        return kept


def _read_fd(fd: int, limit: int) -> bytes:
    chunks, size = [], 0
    while size < limit:
        chunk = os.read(fd, min(limit - size, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _scan(fd: int) -> list[tuple[str, bool]]:
    """(name, is a directory, symlinks not followed) for the directory fd, hidden and bulky ones left out."""
    try:
        with os.scandir(fd) as found:
            names = [(e.name, e.is_dir(follow_symlinks=False)) for e in found
                     if not e.name.startswith(".") and e.name not in SKIPPED_DIRS]
    except OSError:
        return []
    return sorted(names)


def _gitignore(dir_fd: int, name: str) -> pathspec.GitIgnoreSpec | None:
    """The ignore rules in the regular file `name` of a confined directory fd (not followed if a
    symlink, as git does not follow a symlinked .gitignore), or None."""
    try:
        fd = os.open(name, _O_READ | os.O_NOFOLLOW, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_GITIGNORE_BYTES:
            return None
        lines = _read_fd(fd, MAX_GITIGNORE_BYTES).decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        return pathspec.GitIgnoreSpec.from_lines(lines)
    except ValueError:  # one malformed pattern: keep the others, as git does
        return pathspec.GitIgnoreSpec.from_lines([line for line in lines if _valid_pattern(line)])


def _valid_pattern(line: str) -> bool:
    try:
        pathspec.GitIgnoreSpec.from_lines([line])
    except ValueError:
        return False
    return True


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
