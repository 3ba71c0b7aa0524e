"""Failure extraction: what a failed verifier's output says went wrong, cut to what a model needs.

A verifier (a named command such as `lint: ruff check .` or `test: pytest -q`) that fails may print megabytes:
progress dots, passing tests, backtraces through the standard library, banners, download logs. The model
needs what locates each failure: the failing test's id, file:line, the message, the assertion and a few lines
around it. `extract` reads one command's output with the parser for its tool family, chosen from a table by
the command and by recognising the output (a generic error-line scan when nothing matches), and `verdict`
renders a verify call's results within a character budget: one line when all passed; otherwise, per failing
verifier, its failures, dropping context lines before whole failures and never a failing test's id while
there is room.

Pure functions over text, no I/O: the `verify` tool and the checks after a run can share them.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import accumulate, chain, zip_longest

# Input beyond this is cut from the middle: compilers report first and test runners sum up last.
MAX_INPUT_CHARS = 2_000_000
HEAD_CHARS = 400_000
MAX_FAILURES = 2_000  # kept per extract; more are counted, not kept
MAX_MESSAGE = 300  # characters in a failure's one-line message
MAX_LINE = 200  # characters in a detail line
MAX_DETAIL = 12  # detail lines kept per failure
MAX_CONTEXT = 4  # context lines kept per failure
TAIL_LINES = MAX_DETAIL  # shown when no failure is recognised at all


@dataclass(frozen=True)
class Line:
    """One line under a failure. Detail (the assertion, expected/actual, the failing code) is kept before
    context (code around it, the call that led there), which is the first thing dropped for room."""

    text: str
    context: bool = False


@dataclass(frozen=True)
class Failure:
    """One thing that failed: a test, or a diagnostic at a place."""

    message: str  # one line: the assertion, exception or diagnostic
    location: str | None = None  # "path:line[:col]" as the tool wrote it (made relative when a root is given)
    test: str | None = None  # the failing test's id as its runner names it, so it can be run alone
    lines: tuple[Line, ...] = ()  # in display order

    @property
    def detail(self) -> tuple[str, ...]:
        return tuple(line.text for line in self.lines if not line.context)

    @property
    def context(self) -> tuple[str, ...]:
        return tuple(line.text for line in self.lines if line.context)

    def headline(self) -> str:
        message = f": {self.message}" if self.message else ""
        if self.test and self.location:
            path, _, place = self.location.partition(":")
            if self.test == path or self.test.startswith(path + "::"):  # pytest's ids start with the file
                return f"{self.test} (line {place}){message}"
            return f"{self.test} at {self.location}{message}"
        return f"{self.test or self.location or ''}{message}".lstrip(": ") or "failed"


@dataclass(frozen=True)
class Extract:
    """What one failed command's output says went wrong."""

    parser: str  # the tool family that read it: "pytest", "cargo-test", ..., or "generic"
    failures: tuple[Failure, ...]
    summary: str | None = None  # the tool's own count line, e.g. "3 failed, 1997 passed in 4.10s"
    note: str | None = None  # what the exit code says, e.g. "command not found"
    raw_chars: int = 0
    omitted: int = 0  # failures beyond MAX_FAILURES, counted only

    @property
    def failing_tests(self) -> tuple[str, ...]:
        return tuple(f.test for f in self.failures if f.test)

    def render(self, limit: int = 4000) -> str:
        """The failures alone, within `limit` characters (the verdict adds a header per verifier)."""
        block = _Block("", self)
        return "\n".join(_fit([block], limit)[0])[:limit]


@dataclass(frozen=True)
class VerifierResult:
    """One verifier's run, as the verify tool hands it to `verdict`."""

    name: str  # "lint"
    command: str  # "ruff check ."
    exit_code: int | None  # None: it did not finish
    output: str = ""  # stdout and stderr as the command printed them
    duration_s: float = 0.0
    timed_out: bool = False
    root: str | None = None  # the repository's path as the command saw it, stripped from paths in the output

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


# ---------------------------------------------------------------------------------------------------------------
# Shared pieces of parsing

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
# Frames in a library, the runtime or the toolchain: a failure's location is the last frame outside them.
_LIBRARY = re.compile(r"site-packages|dist-packages|/lib/python\d|<frozen |^<|node_modules|node:|/rustc/"
                      r"|/\.cargo/registry/|/\.rustup/|/usr/lib/|/go/src/|/src/runtime/|/src/testing/")


def _clean(text: str, root: str | None) -> str:
    if len(text) > MAX_INPUT_CHARS:
        cut = len(text) - MAX_INPUT_CHARS
        text = f"{text[:HEAD_CHARS]}\n[… {cut:,} characters of output cut …]\n{text[-(MAX_INPUT_CHARS - HEAD_CHARS):]}"
    text = _ANSI.sub("", text)
    if "\r" in text:  # progress bars redraw a line with \r: only its last state was ever readable
        text = "\n".join(line.rsplit("\r", 1)[-1] if "\r" in line else line
                         for line in text.replace("\r\n", "\n").split("\n"))
    if root and root.strip("/"):
        text = text.replace(root.rstrip("/") + "/", "")
    return text


def _place(path: str, line: str | int, col: str | int | None = None) -> str:
    return f"{path}:{line}:{col}" if col else f"{path}:{line}"


def _is_library(path: str) -> bool:
    return bool(_LIBRARY.search(path))


def _pick(paths: list[str]) -> str | None:
    """The last location outside libraries (where the project's own code failed), else the last one."""
    own = [p for p in paths if not _is_library(p)]
    return (own or paths)[-1] if paths else None


def _blank(line: str) -> bool:
    return not line.strip()


def _until(lines: list[str], start: int, stop: Callable[[str], bool]) -> list[str]:
    """lines[start:] up to (not including) the first line for which stop() holds."""
    out = []
    for line in lines[start:]:
        if stop(line):
            break
        out.append(line)
    return out


def _outdented(depth: int, *, blank: bool) -> Callable[[str], bool]:
    """A stop test for `_until`: a line indented `depth` or less ends an indented block (a blank one too if `blank`)."""
    def stop(line: str) -> bool:
        if not line.strip():
            return blank
        return len(line) - len(line.lstrip()) <= depth
    return stop


def _keep_errors(found: list[tuple[bool, Failure]]) -> list[Failure]:
    """Warnings are noise beside errors (they did not fail the command); alone, they are what failed it."""
    errors = [f for is_error, f in found if is_error]
    return errors or [f for _, f in found]


# ---------------------------------------------------------------------------------------------------------------
# pytest: the FAILURES/ERRORS sections (E lines, the `>` line, file:line) matched to the short summary's ids

_PYTEST_BLOCK = re.compile(r"^={3,} (?:FAILURES|ERRORS) ={3,}$")
_PYTEST_BANNER = re.compile(r"^={3,} .* ={3,}$")
_PYTEST_TITLE = re.compile(r"^_{3,} (.+?) _{3,}$")
_PYTEST_CAPTURED = re.compile(r"^-{3,} Captured .* -{3,}$")
_PYTEST_WHERE = re.compile(r"^(?P<path>[^\s:][^:]*?\.\w+):(?P<line>\d+):(?: (?P<rest>.*))?$")
_PYTEST_SHORT = re.compile(r"^(?:\[gw\d+\] (?:\[ *\d+%\] )?)?(FAILED|ERROR) (\S.*?)(?: - (.*))?$")


def _parse_pytest(lines: list[str]) -> list[Failure]:
    summary = _pytest_summary(lines)
    by_name: dict[str, list[str]] = {}
    for nodeid in summary:
        by_name.setdefault(_last_segment(nodeid), []).append(nodeid)
    failures: list[Failure] = []
    for title, body in _pytest_sections(lines):
        test = _pytest_id(title, by_name) or _pytest_guess_id(title, body) or title
        failures.append(_pytest_failure(test, body))
    named = {f.test for f in failures}
    rest = [(nodeid, message) for nodeid, message in summary.items() if nodeid not in named]
    # --tb=line: one `path:line: message` per failure, in the summary's order
    places = [m for m in map(_PYTEST_WHERE.match, _pytest_block(lines)) if m] if not failures else []
    if len(places) != len(rest):
        places = []
    failures += [Failure(m["rest"].strip() if m and m["rest"] else message or "failed",
                         _place(m["path"], m["line"]) if m else None, nodeid)
                 for (nodeid, message), m in zip_longest(rest, places)]
    return failures


def _pytest_summary(lines: list[str]) -> dict[str, str]:
    """The short test summary: node id -> its message (truncated by pytest to the terminal's width)."""
    found: dict[str, str] = {}
    for line in lines:
        if line.startswith(("FAILED ", "ERROR ", "[gw")) and (m := _PYTEST_SHORT.match(line)):
            found.setdefault(m[2], m[3] or "")
    return found


def _pytest_block(lines: list[str]) -> list[str]:
    """The lines of the FAILURES and ERRORS blocks."""
    block, inside = [], False
    for line in lines:
        if _PYTEST_BANNER.match(line):
            inside = bool(_PYTEST_BLOCK.match(line))
        elif inside:
            block.append(line)
    return block


def _pytest_sections(lines: list[str]) -> Iterator[tuple[str, list[str]]]:
    """Each failure's `____ title ____` and the lines under it."""
    title, body = None, list[str]()
    for line in _pytest_block(lines):
        if heading := _PYTEST_TITLE.match(line):
            if title is not None:
                yield title, body
            title, body = heading[1], []
        elif title is not None:
            body.append(line)
    if title is not None:
        yield title, body


def _last_segment(nodeid: str) -> str:
    name, bracket, params = nodeid.partition("[")
    return name.rsplit("::", 1)[-1] + bracket + params


def _pytest_id(title: str, by_name: dict[str, list[str]]) -> str | None:
    """The summary's node id for a section title: `TestThing.test_x[1]` is `path::TestThing::test_x[1]`."""
    for prefix in ("ERROR at setup of ", "ERROR at teardown of ", "ERROR collecting "):
        if title.startswith(prefix):
            title = title[len(prefix):]
            if prefix == "ERROR collecting ":
                return title
    name, bracket, params = title.partition("[")
    wanted = name.replace(".", "::") + bracket + params
    for nodeid in by_name.get(_last_segment(wanted), []):
        if nodeid == wanted or nodeid.endswith("::" + wanted):
            return nodeid
    return None


def _pytest_guess_id(title: str, body: list[str]) -> str | None:
    """Without the short summary (-rN), the id from the section: the traceback starts in the test's file."""
    first = next((m for line in body if (m := _PYTEST_WHERE.match(line))), None)
    if first is None or not re.search(r"(?:^|/)test_[^/]*\.py$|_test\.py$", first["path"]) or " " in title:
        return None
    name, bracket, params = title.partition("[")
    return f"{first['path']}::{name.replace('.', '::')}{bracket}{params}"


def _pytest_failure(test: str, body: list[str]) -> Failure:
    # Captured output is the test's noise, not its failure.
    body = _until(body, 0, lambda text: bool(_PYTEST_CAPTURED.match(text)))
    if any(line.strip() == _TRACEBACK for line in body):  # --tb=native
        return _from_traceback(body, test)
    wheres = [m for line in body if (m := _PYTEST_WHERE.match(line))]
    location = _pick([_place(m["path"], m["line"]) for m in wheres])
    errors = [i for i, line in enumerate(body) if line.startswith("E ") or line == "E"]
    arrows = [i for i, line in enumerate(body) if line.startswith(">")]
    message = next((body[i][1:].strip() for i in errors if body[i][1:].strip()), "")
    if not message and wheres:
        message = wheres[-1].group(0).partition(": ")[2].strip()
    shown: list[Line] = []
    if arrows:
        start = arrows[-1]
        before = [i for i in range(max(0, start - 3), start) if body[i].startswith(" ") and body[i].strip()]
        shown += [Line(_pytest_line(body[i]), context=True) for i in before]
        shown.append(Line(_pytest_line(body[start])))
    elif errors and errors[0] > 0 and body[errors[0] - 1].startswith("    "):  # --tb=short: the code, unmarked
        shown.append(Line("> " + body[errors[0] - 1].strip()))
    shown += [Line(_pytest_line(body[i])) for i in errors if body[i][1:].strip() not in ("", message)]
    own = [_place(m["path"], m["line"]) for m in wheres if not _is_library(m["path"])]
    if len(own) > 1 and own[0] != location:
        shown.append(Line(f"(called from {own[0]})", context=True))
    return Failure(message, location, test, tuple(shown))


def _pytest_line(line: str) -> str:
    """pytest indents code and E lines by 4 beyond their marker column (3 with --tb=short); drop that for room."""
    if line.startswith("    "):
        return line[4:]
    rest = line[1:]
    lead = len(rest) - len(rest.lstrip(" "))
    return line[0] + rest[max(0, min(4, lead - 1)):]


# ---------------------------------------------------------------------------------------------------------------
# Python tracebacks: unittest's FAIL/ERROR blocks, and any script that died of an exception

_UNITTEST_HEAD = re.compile(r"^(FAIL|ERROR|UNEXPECTED SUCCESS): (\S+) \(([^)]*)\)(.*)$")
_RULE = re.compile(r"^(?:={40,}|-{40,})$")
_TRACEBACK = "Traceback (most recent call last):"
_FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line (?P<line>\d+), in (?P<func>.+)$')
_CHAINED = ("During handling of the above exception", "The above exception was the direct cause")


def _parse_unittest(lines: list[str]) -> list[Failure]:
    failures = []
    for i, line in enumerate(lines):
        if not (m := _UNITTEST_HEAD.match(line)) or i + 1 >= len(lines) or not _RULE.match(lines[i + 1]):
            continue
        name, where, subtest = m[2], m[3], m[4].strip()
        test = name if "_FailedTest" in where else where if where.endswith("." + name) else f"{where}.{name}"
        body = _until(lines, i + 2, lambda text: bool(_RULE.match(text)))
        failures.append(_from_traceback(body, f"{test} {subtest}".strip()))
    return failures


def _parse_traceback(lines: list[str]) -> list[Failure]:
    starts = [i for i, line in enumerate(lines) if line.strip() == _TRACEBACK]
    failures = []
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(lines)
        chunk = lines[start:end]
        if any(line.startswith(_CHAINED) for line in chunk[-3:]):
            continue  # a chained exception: the traceback after it is the one that ended the program
        failures.append(_from_traceback(chunk, None))
    return failures


def _from_traceback(body: list[str], test: str | None) -> Failure:
    """The exception at the end of the last traceback in `body`, placed at its last frame in the project."""
    last = max((i for i, line in enumerate(body) if line.strip() == _TRACEBACK), default=-1)
    frames: list[tuple[str, str, str]] = []  # (place, function, code)
    exception_at = next((i for i, line in enumerate(body) if line.strip()), len(body))  # no traceback: all of it
    for i in range(last + 1, len(body)):
        if m := _FRAME.match(body[i]):
            code = body[i + 1].strip() if i + 1 < len(body) and not _FRAME.match(body[i + 1]) else ""
            frames.append((_place(m["path"], m["line"]), m["func"], "" if set(code) <= set("^~ ") else code))
        elif frames and body[i].strip() and not body[i][0].isspace():
            exception_at = i
            break
    exception = _until(body, exception_at, _blank)
    location = _pick([place for place, _, _ in frames])
    shown = [Line(f"{place} in {func}: {code}", context=True) for place, func, code in frames[-3:-1]
             if place != location and not _is_library(place)]
    code = next((code for place, _, code in reversed(frames) if place == location), "")
    if code:
        shown.append(Line(f"> {code}"))
    shown += [Line(line) for line in exception[1:]]
    return Failure(exception[0].strip() if exception else "failed", location, test, tuple(shown))


# ---------------------------------------------------------------------------------------------------------------
# cargo test: `---- name stdout ----` sections with the panic's place and message

_CARGO_SECTION = re.compile(r"^---- (.+?) stdout ----$")
_PANIC = re.compile(r"^thread '[^']*'(?: \(\d+\))? panicked at (?:'(?P<old>.*)', )?(?P<where>\S+?:\d+:\d+):?$")
_CARGO_END = re.compile(r"^(?:failures:|test result: |running \d+ tests?|---- .+ stdout ----)$|^test result: ")
_CARGO_FAILED = re.compile(r"^test (\S+(?: - .+?)?) \.\.\. FAILED$")


def _parse_cargo_test(lines: list[str]) -> list[Failure]:
    failures = []
    for i, line in enumerate(lines):
        if m := _CARGO_SECTION.match(line):
            failures.append(_cargo_failure(m[1], _until(lines, i + 1, lambda text: bool(_CARGO_END.match(text)))))
    named = {f.test for f in failures}
    failures += [Failure("failed", test=m[1]) for line in lines
                 if (m := _CARGO_FAILED.match(line)) and m[1] not in named]
    return failures


def _cargo_failure(test: str, body: list[str]) -> Failure:
    body = _until(body, 0, lambda text: text.startswith(("stack backtrace:", "note: run with", "note: Some details")))
    panic = next(((n, m) for n, line in enumerate(body) if (m := _PANIC.match(line))), None)
    if panic is None:
        text = [line for line in body if line.strip()]
        return Failure(text[0].strip() if text else "failed", None, test, tuple(Line(t) for t in text[1:]))
    n, m = panic
    rest = [line for line in body[n + 1:] if line.strip()]
    message = m["old"] if m["old"] is not None else (rest.pop(0).strip() if rest else "panicked")
    return Failure(message, m["where"], test, tuple(Line(t) for t in rest))


# ---------------------------------------------------------------------------------------------------------------
# go test: `--- FAIL: TestX` with `file_test.go:12: message`, panics, build errors

_GO_FAIL = re.compile(r"^\s*--- FAIL: (\S+) \([\d.]+s\)$")
_GO_CURRENT = re.compile(r"^\s*(?:=== (?:RUN|CONT|NAME)\s+|--- (?:PASS|SKIP|FAIL): )(\S+)")
_GO_MESSAGE = re.compile(r"^(?P<indent>\s+)(?P<path>[\w./-]+\.go):(?P<line>\d+): (?P<msg>.*)$")
_GO_BUILD = re.compile(r"^(?P<path>[\w./-]+\.go):(?P<line>\d+)(?::(?P<col>\d+))?: (?P<msg>.*)$")
_GO_FRAME = re.compile(r"^\t(?P<path>\S+\.go):(?P<line>\d+)(?: \+0x[0-9a-f]+)?$")


def _parse_go(lines: list[str]) -> list[Failure]:
    messages: dict[str, list[tuple[str, str, list[str]]]] = {}  # test -> [(place, message, continuation)]
    failed: list[str] = []
    builds: list[Failure] = []
    current: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if m := _GO_CURRENT.match(line):
            current = m[1]
            if _GO_FAIL.match(line) and current not in failed:
                failed.append(current)
        elif (m := _GO_MESSAGE.match(line)) and current:
            more = _until(lines, i + 1, _outdented(len(m["indent"]), blank=True))
            messages.setdefault(current, []).append((_place(m["path"], m["line"]), m["msg"], more))
            i += len(more)
        elif line.startswith("panic: "):
            frames = [_place(f["path"], f["line"]) for text in lines[i:i + 200] if (f := _GO_FRAME.match(text))]
            where = next((p for p in frames if not _is_library(p)), None)
            message = line.removesuffix(" [recovered]").strip()
            messages.setdefault(current or "panic", []).insert(0, (where or "", message, []))
            if current and current not in failed:
                failed.append(current)
            elif not current:
                builds.append(Failure(message, where))
        elif m := _GO_BUILD.match(line):
            builds.append(Failure(m["msg"], _place(m["path"], m["line"], m["col"])))
        i += 1
    tests = [_go_failure(name, messages.get(name, []), failed) for name in failed]
    return [f for f in tests if f] + builds


def _go_failure(name: str, said: list[tuple[str, str, list[str]]], failed: list[str]) -> Failure | None:
    if not said and any(other.startswith(name + "/") for other in failed):
        return None  # a parent test that failed only because a subtest did: the subtest says where
    if not said:
        return Failure("failed", None, name)
    (place, message, more), *others = said
    shown = [Line(text.strip()) for text in more] + [Line(f"{p}: {m}") for p, m, _ in others]
    return Failure(message, place or None, name, tuple(shown))


# ---------------------------------------------------------------------------------------------------------------
# JavaScript test runners: vitest, jest, node --test (TAP and spec)

_VITEST_FAIL = re.compile(r"^\s*FAIL\s+(?P<file>\S+)(?: > (?P<name>.+?)| \[ .* \])?\s*$")
_VITEST_END = re.compile(r"^\s*⎯{3,}")
_JS_FRAME = re.compile(r"(?:^\s*(?:❯|at)\s+(?:.*?\()?)(?P<path>[^\s()]+?):(?P<line>\d+):(?P<col>\d+)\)?\s*$")
# Stack frames (those `_JS_FRAME` cannot place too) and the error object's bookkeeping fields.
_JS_NOISE = re.compile(r"^\s*(?:at |❯ |\}$|generatedMessage:|code: '|operator: ')")
_CODE_FRAME = re.compile(r"^\s*(?P<mark>>)?\s*(?P<n>\d*)\s*\|")
_JEST_ENTRY = re.compile(r"^\s*● (?!Console$)(.+)$")
_JEST_FILE = re.compile(r"^\s*(?:FAIL|PASS)\s+(\S+)")
_JEST_END = re.compile(r"^\s*(?:FAIL|PASS)\s+\S|^Summary of all failing tests|^Test Suites:|^\s*● ")


def _parse_vitest(lines: list[str]) -> list[Failure]:
    failures = []
    for i, line in enumerate(lines):
        if (m := _VITEST_FAIL.match(line)) and (m["name"] or "[" in line):
            test = f"{m['file']} > {m['name']}" if m["name"] else m["file"]
            body = _until(lines, i + 1, lambda text: bool(_VITEST_END.match(text) or _VITEST_FAIL.match(text)))
            failures.append(_js_failure(test, body))
    return failures


def _parse_jest(lines: list[str]) -> list[Failure]:
    failures, file = [], ""
    for i, line in enumerate(lines):
        if m := _JEST_FILE.match(line):
            file = m[1]
        elif m := _JEST_ENTRY.match(line):
            test = f"{file} › {m[1].strip()}" if file else m[1].strip()
            failures.append(_js_failure(test, _until(lines, i + 1, lambda text: bool(_JEST_END.match(text)))))
    return failures


def _js_failure(test: str, body: list[str]) -> Failure:
    frames = [m for line in body if (m := _JS_FRAME.match(line))]
    location = next((_place(m["path"], m["line"], m["col"]) for m in frames if not _is_library(m["path"])), None)
    text = [line for line in body if line.strip() and not _JS_FRAME.match(line) and not _JS_NOISE.match(line)]
    message = text.pop(0).strip() if text else "failed"
    failing_line = location.split(":")[1] if location else None
    shown = []
    for line in text:
        # In a code frame, the failing line (jest marks it `>`) and its caret are detail, the lines around context.
        if frame := _CODE_FRAME.match(line):
            caret = not frame["n"] and set(line.split("|", 1)[1].strip()) <= set("^~")
            shown.append(Line(line, context=not (frame["mark"] or caret or frame["n"] == failing_line)))
        else:
            shown.append(Line(line))
    return Failure(message, location, test, tuple(shown))


_TAP_SUBTEST = re.compile(r"^(\s*)# Subtest: (.+)$")
_TAP_NOT_OK = re.compile(r"^(\s*)not ok \d+ - (.*)$")
_YAML_KEY = re.compile(r"^(\w+): ?(.*)$")


def _parse_tap(lines: list[str]) -> list[Failure]:
    failures, parents = [], dict[int, str]()
    for i, line in enumerate(lines):
        if m := _TAP_SUBTEST.match(line):
            parents = {depth: name for depth, name in parents.items() if depth < len(m[1])}
            parents[len(m[1])] = m[2]
        elif (m := _TAP_NOT_OK.match(line)) and not re.search(r"# (?:TODO|SKIP)\b", m[2], re.I):
            fields = _tap_yaml(lines, i + 1)
            if fields.get("failureType", "").strip("'\"") == "subtestsFailed":
                continue  # a suite failing because a test in it did: the test says where
            names = [name for depth, name in sorted(parents.items()) if depth < len(m[1])] + [m[2].strip()]
            failures.append(_tap_failure(" > ".join(names), fields))
    return failures


def _tap_yaml(lines: list[str], start: int) -> dict[str, str]:
    """The YAML block after `not ok`, flat: key -> text (multi-line values joined by newlines)."""
    if start >= len(lines) or lines[start].strip() != "---":
        return {}
    base = len(lines[start]) - len(lines[start].lstrip())
    fields: dict[str, str] = {}
    key = None
    for line in lines[start + 1:]:
        if line.strip() == "...":
            break
        indent = len(line) - len(line.lstrip())
        if indent == base and (m := _YAML_KEY.match(line.strip())):
            key = m[1]
            fields[key] = "" if m[2] in ("|-", "|", ">-", ">") else m[2]
        elif key and line.strip():
            fields[key] = (fields[key] + "\n" + line.strip()).strip("\n")
    return fields


def _tap_failure(test: str, fields: dict[str, str]) -> Failure:
    frames = [m for line in fields.get("stack", "").split("\n") if (m := _JS_FRAME.match("at " + line))]
    location = next((_place(m["path"], m["line"], m["col"]) for m in frames if not _is_library(m["path"])),
                    fields.get("location", "").strip("'\"") or None)
    error = [line for line in fields.get("error", "").strip("'\"").split("\n") if line.strip()]
    name = fields.get("name", "").strip("'\"")
    message = f"{name}: {error[0]}" if name and error else (error[0] if error else name or "failed")
    shown = [Line(line) for line in error[1:]]
    shown += [Line(f"{key}: {fields[key]}") for key in ("expected", "actual") if key in fields]
    return Failure(message, location, test, tuple(shown))


_SPEC_FAILING = re.compile(r"^✖ failing tests:\s*$")
_SPEC_AT = re.compile(r"^test at (?P<path>\S+?):(?P<line>\d+):(?P<col>\d+)$")
_SPEC_TEST = re.compile(r"^(?P<indent>\s*)✖ (?P<name>.+?) \([\d.]+m?s\)$")


def _parse_node_spec(lines: list[str]) -> list[Failure]:
    start = next((i for i, line in enumerate(lines) if _SPEC_FAILING.match(line)), None)
    if start is None:
        return []
    failures, where = [], None
    for i in range(start + 1, len(lines)):
        if m := _SPEC_AT.match(lines[i]):
            where = _place(m["path"], m["line"], m["col"])
        elif m := _SPEC_TEST.match(lines[i]):
            body = _until(lines, i + 1, _outdented(len(m["indent"]), blank=False))
            found = _js_failure(m["name"], body)
            if not re.match(r"^'?\d+ subtests? failed'?$", found.message):
                failures.append(Failure(found.message, found.location or where, found.test, found.lines))
            where = None
    return failures


# ---------------------------------------------------------------------------------------------------------------
# The JVM: surefire's per-test blocks and results, maven's compiler errors, gradle's test lines

_SUREFIRE_TEST = re.compile(r"^(?:\[ERROR\] )?(?P<id>\S.*?)\s+(?:--\s+)?Time elapsed: .*<<< (?:FAILURE|ERROR)!$")
_SUREFIRE_OLD = re.compile(r"^(?P<method>[\w$]+)\((?P<cls>[\w.$]+)\)$")
_SUREFIRE_RESULT = re.compile(r"^\[ERROR\]\s{2,}(?P<id>[\w.$]+):(?P<line>\d+) (?P<msg>.*)$")
_JAVAC_MAVEN = re.compile(r"^\[ERROR\] (?P<path>\S+\.(?:java|kt|scala|groovy)):\[(?P<line>\d+),(?P<col>\d+)\] "
                          r"(?P<msg>.*)$")
_KOTLINC = re.compile(r"^(?:\[ERROR\] )?e: (?:file://)?(?P<path>\S+\.kts?):(?P<line>\d+):(?P<col>\d+):? (?P<msg>.*)$")
_GRADLE_TEST = re.compile(r"^(?P<cls>[\w.$]+) > (?P<name>.+) FAILED$")
_JAVA_FRAME = re.compile(r"^\s+at (?P<method>[\w.$<>/]+)\((?P<file>[\w$]+\.\w+):(?P<line>\d+)\)$")
_JVM_LIBRARY = ("org.junit.", "junit.", "java.", "jdk.", "sun.", "org.opentest4j.", "org.apache.maven.",
                "org.assertj.", "org.hamcrest.", "kotlin.", "org.gradle.", "worker.org.gradle.")


def _parse_jvm(lines: list[str]) -> list[Failure]:
    failures = []
    for i, line in enumerate(lines):
        if m := _JAVAC_MAVEN.match(line) or _KOTLINC.match(line):
            more = _until(lines, i + 1, lambda text: text.startswith("[") or not text.strip())
            failures.append(Failure(m["msg"], _place(m["path"], m["line"], m["col"]), None,
                                    tuple(Line(t.strip()) for t in more)))
        elif m := _SUREFIRE_TEST.match(line):
            test = m["id"]
            if old := _SUREFIRE_OLD.match(test):
                test = f"{old['cls']}.{old['method']}"
            failures.append(_jvm_failure(test, _until(lines, i + 1, lambda text: text.startswith("[") or
                                                      _blank(text))))
        elif m := _GRADLE_TEST.match(line):
            body = _until(lines, i + 1, lambda text: not text.startswith((" ", "\t")))
            failures.append(_jvm_failure(f"{m['cls']}.{m['name']}", body))
    if not any(f.test for f in failures):  # surefire without its per-test blocks: its results list
        failures += [Failure(m["msg"], f"{m['id'].split('.')[0]}.java:{m['line']}", m["id"])
                     for line in lines if (m := _SUREFIRE_RESULT.match(line))]
    return failures


def _jvm_failure(test: str, body: list[str]) -> Failure:
    # (method, place) per frame; gradle prefixes a class loader's name: `at app//demo.CalcTest.badSum(...)`
    frames = [(re.sub(r"^[\w.-]*//", "", m["method"]), _place(m["file"], m["line"]))
              for line in body if (m := _JAVA_FRAME.match(line))]
    own = [frame for frame in frames if not frame[0].startswith(_JVM_LIBRARY)]
    in_test = [frame for frame in own if frame[0].startswith(test.rsplit(".", 1)[0])]
    location = (in_test or own or frames)[0][1] if frames else None
    text = [line.strip() for line in body if line.strip() and not _JAVA_FRAME.match(line)
            and not line.strip().startswith("...")]
    if not location and text and (at := re.search(r" at (\w+\.\w+):(\d+)$", text[0])):
        location, text[0] = _place(at[1], at[2]), text[0][:at.start()]
    message = text.pop(0) if text else "failed"
    return Failure(message, location, test, tuple(Line(t) for t in text))


# ---------------------------------------------------------------------------------------------------------------
# Compilers and linters

# tsc (`a.ts(3,7): error TS2322: ...` and its pretty form), pyright (`  /a.py:3:5 - error: ...`)
_TSC = re.compile(r"^(?P<path>\S[^(]*?)\((?P<line>\d+),(?P<col>\d+)\): (?P<sev>error|warning) (?P<code>TS\d+): "
                  r"(?P<msg>.*)$")
_DASH = re.compile(r"^\s*(?P<path>[^\s:]+?):(?P<line>\d+):(?P<col>\d+) - (?P<sev>error|warning)(?: (?P<code>TS\d+))?: "
                   r"(?P<msg>.*)$")
_FOUND = re.compile(r"^Found \d+ errors?|^\d+ errors?, \d+ warnings?")


def _parse_tsc(lines: list[str]) -> list[Failure]:
    found = []
    for i, line in enumerate(lines):
        if m := _TSC.match(line) or _DASH.match(line):
            more = _until(lines, i + 1, lambda text: bool(_TSC.match(text) or _DASH.match(text) or _FOUND.match(text)))
            message = f"{m['code']}: {m['msg']}" if m["code"] else m["msg"]
            found.append((m["sev"] == "error", Failure(message, _place(m["path"], m["line"], m["col"]), None,
                                                       tuple(Line(t) for t in more if t.strip()))))
    return _keep_errors(found)


_ESLINT_FILE = re.compile(r"^(?P<path>(?:[A-Za-z]:)?[^\s:]*[/\\.][^\s:]*\.\w+)$")
_ESLINT_ROW = re.compile(r"^\s+(?P<line>\d+):(?P<col>\d+)\s+(?P<sev>error|warning)\s+(?P<msg>.+?)"
                         r"(?:\s{2,}(?P<rule>[@\w/-]+))?\s*$")


def _parse_eslint(lines: list[str]) -> list[Failure]:
    found, path = [], None
    for line in lines:
        if m := _ESLINT_FILE.match(line):
            path = m["path"]
        elif path and (m := _ESLINT_ROW.match(line)):
            message = f"{m['msg']} ({m['rule']})" if m["rule"] else m["msg"]
            found.append((m["sev"] == "error", Failure(message, _place(path, m["line"], m["col"]))))
    return _keep_errors(found)


# rustc, cargo build/check/clippy, and ruff's default format: a headline, then ` --> path:line:col`, a snippet
_ARROW = re.compile(r"^\s*--> (?P<where>\S+?:\d+(?::\d+)?)\s*$")
_RUST_BARE = re.compile(r"^error(?:\[\w+\])?: (?!could not compile|aborting due to|test failed|\d+ previous errors?)")
_NUMBERED = re.compile(r"^\s*(\d+)\s*[|+-]")
_SNIPPET_NOISE = re.compile(r"^\s*\|\s*$|^\s*= (?:help|note): (?:for further information visit|.*implied by|"
                            r"to override)|^note: This is an unsafe fix")


def _parse_arrows(lines: list[str]) -> list[Failure]:
    found: list[tuple[bool, Failure]] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        arrow = _arrow_under(lines, i) if line[:1].strip() else None
        if arrow is None and not _RUST_BARE.match(line):
            i += 1
            continue
        where = m["where"] if arrow is not None and (m := _ARROW.match(lines[arrow])) else None
        start = (i if arrow is None else arrow) + 1
        body = _until(lines, start, _blank)  # a diagnostic's snippet, notes and help end at a blank line
        found.append((not line.startswith("warning"), Failure(line.strip(), where, None, _snippet(body, where))))
        i = start + len(body)
    return _keep_errors(found)


# One line per diagnostic, `path:line[:col]: ...`: mypy, javac, gcc/clang, ruff --output-format=concise,
# flake8, pylint, shellcheck -f gcc. A severity word or a rule code must follow, or any `file:1:` line would do.
_LINE_DIAG = re.compile(r"^(?P<path>[^\s:][^:]*?\.\w+):(?P<line>\d+)(?::(?P<col>\d+))?:\s*"
                        r"(?:(?P<sev>fatal error|error|warning|note)(?:\[[\w-]+\])?:\s*"
                        r"|(?P<code>[A-Z]{1,6}\d{2,5})\b:?\s*)"
                        r"(?P<msg>.*)$")
_WRAPPED = re.compile(r"^\[[\w-]+\]$")
_FORMATTER = re.compile(r"^(?:Would reformat:?|would reformat|\[warn\]) (?P<path>\S+\.\w+)$")


def _snippet(body: list[str], where: str | None) -> tuple[Line, ...]:
    """The failing line, its markers and the advice are detail; the code around it and suggested diffs are context."""
    line_no = where.split(":")[1] if where else None
    shown, advice = [], False
    for text in body:
        if _SNIPPET_NOISE.match(text):
            continue
        if text.lstrip().startswith(("help:", "= help:", "note:", "= note:")):
            advice = True
            shown.append(Line(text))
        elif m := _NUMBERED.match(text):
            shown.append(Line(text, context=advice or m[1] != line_no))
        else:
            shown.append(Line(text, context=advice))
    return tuple(shown)


def _arrow_under(lines: list[str], headline: int) -> int | None:
    """The ` --> path:line:col` line among the three after a headline, before any blank line."""
    for j in range(headline + 1, min(headline + 4, len(lines))):
        if _ARROW.match(lines[j]):
            return j
        if _blank(lines[j]):
            break
    return None


def _parse_line_diagnostics(lines: list[str]) -> list[Failure]:
    found: list[tuple[bool, Failure]] = []
    for i, line in enumerate(lines):
        if m := _LINE_DIAG.match(line):
            if m["sev"] == "note" and found:  # mypy's notes explain the error before them
                is_error, last = found[-1]
                found[-1] = (is_error, Failure(last.message, last.location, None, (*last.lines, Line(m["msg"]))))
                continue
            # Continuation lines are indented (javac's code and caret, mypy --pretty's); mypy wraps its [code].
            more = _until(lines, i + 1, lambda text: _blank(text) or not (text[:1].isspace() or _WRAPPED.match(text)))
            message = f"{m['code']} {m['msg']}" if m["code"] else m["msg"]
            sev = m["sev"] or "error"
            found.append((sev != "warning", Failure(message, _place(m["path"], m["line"], m["col"]), None,
                                                    tuple(Line(t) for t in more))))
        elif m := _FORMATTER.match(line):
            found.append((True, Failure("would be reformatted", m["path"])))
    return _keep_errors(found)


# ---------------------------------------------------------------------------------------------------------------
# Anything else: lines that read like an error, with a little context

# Matched against the lowercased output in one pass: a per-line, case-blind search costs 20x as much on 1 MB.
_ERRORISH = re.compile(r"e(?:rror|xception)|fa(?:il|tal)|panic|traceback|✗|✖|not (?:ok|found)|cannot")
_NOT_AN_ERROR = re.compile(r"\b0 (?:errors?|failed|failures)\b|\berrors?=0\b|\bno errors?\b", re.I)
_ANY_PLACE = re.compile(r"(?P<path>[\w./-]*\w\.\w+):(?P<line>\d+)(?::(?P<col>\d+))?")
_GENERIC_WINDOWS = 40


def _error_lines(lines: list[str]) -> list[int]:
    """Indexes of the lines that read like an error, in order."""
    starts = list(accumulate((len(line) + 1 for line in lines), initial=0))
    text = "\n".join(lines).lower()
    return sorted({bisect_right(starts, m.start()) - 1 for m in _ERRORISH.finditer(text)})


def _parse_generic(lines: list[str]) -> list[Failure]:
    found = _error_lines(lines)
    hits = set(found)
    failures: list[Failure] = []
    covered = -1
    for i in found:
        if i <= covered or _NOT_AN_ERROR.search(lines[i]):
            continue
        if len(failures) >= _GENERIC_WINDOWS:
            break
        end = min(len(lines), i + 3)
        while end < len(lines) and end - i < 12 and end in hits:  # a run of error lines stays one window
            end += 1
        window = [n for n in range(max(0, i - 1), end) if n > covered and lines[n].strip()]
        place = _ANY_PLACE.search(lines[i])  # a place on another line may not be this error's
        shown = tuple(Line(lines[n].rstrip(), context=n not in hits) for n in window if n != i)
        failures.append(Failure(lines[i].strip(), _place(place["path"], place["line"], place["col"])
                                if place else None, None, shown))
        covered = end - 1
    if failures:
        return failures
    text = [line.rstrip() for line in lines if line.strip()]
    if not text:
        return [Failure("no output")]
    return [Failure(f"no failure recognised; the output's last {min(TAIL_LINES, len(text))} lines:", None, None,
                    tuple(Line(t) for t in text[-TAIL_LINES:]))]


# ---------------------------------------------------------------------------------------------------------------
# The table of parsers: tried in this order, those the command names first; the first to find failures wins.


def _last(pattern: str) -> Callable[[str], str | None]:
    compiled = re.compile(pattern, re.M)

    def summary(text: str) -> str | None:
        last = deque(compiled.finditer(text), maxlen=1)  # a tool's last count line is its final word
        return " ".join(next((g for g in last[0].groups() if g), "").split()) or None if last else None

    return summary


def _tap_summary(text: str) -> str | None:
    counts = re.findall(r"^(?:#|ℹ) (tests|pass|fail) (\d+)$", text, re.M)
    return ", ".join(f"{n} {word}" for word, n in counts[-3:]) or None


@dataclass(frozen=True)
class Parser:
    """One tool family's reader. It runs when its signature is in the output; those the command names first."""

    name: str
    command: re.Pattern[str]  # commands that name this family
    needles: tuple[str, ...]  # one of these is in any output it reads: a cheap test before the signature's
    signature: re.Pattern[str]  # the family's output, whatever the command that printed it
    parse: Callable[[list[str]], list[Failure]]
    summary: Callable[[str], str | None] = lambda text: None

    def recognises(self, text: str) -> bool:
        return any(needle in text for needle in self.needles) and bool(self.signature.search(text))


def _re(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.M)


PARSERS: tuple[Parser, ...] = (
    Parser("pytest", _re(r"\bpy\.?test\b|\btox\b|\bnox\b"),
           ("FAILURES", "ERRORS", "short test summary", "FAILED ", "ERROR "),
           _re(r"^={3,} (?:FAILURES|ERRORS|short test summary info) ={3,}$|^(?:FAILED|ERROR) \S+\.py"),
           _parse_pytest, _last(r"^=*\s*((?:\d+ \w+, )*\d+ (?:failed|passed|errors?)\b.* in [\d.]+s\b.*?)\s*=*$")),
    Parser("unittest", _re(r"\bunittest\b|manage\.py test|\bnose2?\b"), ("FAIL: ", "ERROR: "),
           _re(r"^(?:FAIL|ERROR): \S+ \("), _parse_unittest, _last(r"^(FAILED \(.*\))$")),
    Parser("cargo-test", _re(r"\bcargo (?:\+\S+ )?(?:test|nextest)\b"), (" stdout ----", "test result: FAILED"),
           _re(r"^---- .+ stdout ----$|^test result: FAILED"), _parse_cargo_test,
           _last(r"^test result: (FAILED\..*)$")),
    Parser("go", _re(r"\bgo (?:test|vet|build)\b|\bgotestsum\b"), ("--- FAIL: ", "FAIL\t", "panic: ", ".go:"),
           _re(r"^\s*--- FAIL: |^FAIL\t|^panic: |^# \S+.*\n(?:# .*\n)?[\w./-]+\.go:\d+"), _parse_go,
           _last(r"^(FAIL\s+\S+.*)$")),
    Parser("vitest", _re(r"\bvitest\b"), ("FAIL ", "Failed Tests"), _re(r"^\s*FAIL\s+\S+ > |⎯+ Failed Tests \d+ ⎯+"),
           _parse_vitest, _last(r"^\s*Tests\s+(\d.*)$")),
    Parser("jest", _re(r"\bjest\b|react-scripts test"), ("● ",), _re(r"^\s*● (?!Console$)"), _parse_jest,
           _last(r"^Tests:\s+(.*)$")),
    Parser("node-tap", _re(r"node --test|\btap\b|\bprove\b"), ("not ok ",), _re(r"^\s*not ok \d+"), _parse_tap,
           _tap_summary),
    Parser("node-spec", _re(r"node --test"), ("✖ failing tests:",), _re(r"^✖ failing tests:"), _parse_node_spec,
           _tap_summary),
    Parser("jvm", _re(r"\bmvnw?\b|\bgradlew?\b|\bmaven\b"), ("<<< ", "[ERROR] ", " FAILED", "e: "),
           _re(r"<<< (?:FAILURE|ERROR)!$|^\[ERROR\] \S+\.(?:java|kt|scala|groovy):\[\d+,\d+\]|^\S+ > .+ FAILED$"
               r"|^(?:\[ERROR\] )?e: "),
           _parse_jvm, _last(r"^(?:\[\w+\] )?(Tests run: \d+, Failures: \d+, Errors: \d+, Skipped: \d+)\s*$"
                             r"|^(\d+ tests completed, \d+ failed.*)$")),
    Parser("tsc", _re(r"\btsc\b|\bpyright\b|type-?check"), (": error TS", ": warning TS", " - error", " - warning"),
           _re(r"\(\d+,\d+\): (?:error|warning) TS\d+|:\d+:\d+ - (?:error|warning)"), _parse_tsc,
           _last(r"^(Found \d+ errors?.*|\d+ errors?, \d+ warnings?.*)$")),
    Parser("eslint", _re(r"\beslint\b|next lint"), ("  error  ", "  warning  "),
           _re(r"^\s+\d+:\d+\s+(?:error|warning)\s{2}"), _parse_eslint, _last(r"^✖ (\d+ problems? .*)$")),
    Parser("compiler", _re(r"\bcargo\b|\brustc\b|\bclippy\b|\bruff\b"), ("--> ",), _re(r"^\s*--> \S+:\d+"),
           _parse_arrows,
           _last(r"^(error: could not compile .*|Found \d+ errors?\.|\d+ files? would be reformatted.*)$")),
    Parser("diagnostics", _re(r"\bmypy\b|\bjavac\b|\bgcc\b|\bg\+\+|\bclang\b|\bflake8\b|\bpylint\b|\bruff\b"),
           (":",),
           _re(r"^[^\s:][^:]*?\.\w+:\d+(?::\d+)?:\s*(?:fatal error|error|warning|[A-Z]{1,6}\d{2,5}\b)"
               r"|^(?:Would reformat|would reformat|\[warn\]) \S+\.\w+$"),
           _parse_line_diagnostics,
           _last(r"^(Found \d+ errors? in .*|\d+ errors?(?: generated)?\.?|\d+ files? would be reformatted.*)$")),
    Parser("traceback", _re(r"\bpython"), ("Traceback (most recent call last):",),
           _re(r"^\s*Traceback \(most recent call last\):$"), _parse_traceback),
    Parser("generic", _re(r"$^"), ("",), _re(r""), _parse_generic),
)

_EXIT_NOTES = {126: "not executable", 127: "command not found", 124: "timed out (timeout's exit code)",
               137: "killed: SIGKILL, often out of memory", 139: "crashed: segmentation fault",
               -9: "killed: SIGKILL, often out of memory", -11: "crashed: segmentation fault"}
_PYTEST_EXITS = {2: "interrupted", 3: "pytest's internal error", 4: "pytest usage error", 5: "no tests were collected"}


def extract(tool_output: str, command: str = "", exit_code: int | None = 1, *, root: str | None = None) -> Extract:
    """What a failed command's output says went wrong: the failures, the tool's summary line, the exit's meaning.

    `command` chooses the parsers tried first; the output chooses the rest. `root`, the repository's path as the
    command saw it, is stripped from paths so locations read as the model knows them.
    """
    text = _clean(tool_output, root)
    lines = text.split("\n")
    for parser in _candidates(command, text):
        try:
            failures = parser.parse(lines)
        except Exception:  # output a parser misreads must not cost the verdict: the next parser, or the scan, reads it
            continue
        if failures:
            return _finish(parser, failures, text, command, exit_code, len(tool_output))
    return _finish(PARSERS[-1], _parse_generic(lines), text, command, exit_code, len(tool_output))


def _candidates(command: str, text: str) -> list[Parser]:
    present = [p for p in PARSERS if p.recognises(text)]
    return [p for p in present if p.command.search(command)] + [p for p in present if not p.command.search(command)]


def _finish(parser: Parser, failures: list[Failure], text: str, command: str, exit_code: int | None,
            raw_chars: int) -> Extract:
    seen: set[tuple[str | None, str | None, str]] = set()
    kept = []
    for failure in failures:
        key = (failure.test, failure.location, failure.message)
        if key not in seen:  # maven prints each compiler error twice; jest repeats failures in its summary
            seen.add(key)
            kept.append(_tidy(failure))
    note = _EXIT_NOTES.get(exit_code) if exit_code is not None else None
    if re.search(r"\bpy\.?test\b", command) and exit_code in _PYTEST_EXITS:
        note = _PYTEST_EXITS[exit_code]
    return Extract(parser.name, tuple(kept[:MAX_FAILURES]), _cut(parser.summary(text) or "", MAX_MESSAGE) or None,
                   note, raw_chars, max(0, len(kept) - MAX_FAILURES))


def _tidy(failure: Failure) -> Failure:
    """One-line message, trimmed lines, common indentation dropped, at most MAX_DETAIL + MAX_CONTEXT lines."""
    first, *more = failure.message.strip().split("\n") or [""]
    lines = [Line(text, False) for text in more] + list(failure.lines)
    lines = [Line(line.text.rstrip(), line.context) for line in lines if line.text.strip()]
    indent = min((len(line.text) - len(line.text.lstrip()) for line in lines), default=0)
    kept, details, contexts = [], 0, 0
    for line in lines:
        if contexts < MAX_CONTEXT if line.context else details < MAX_DETAIL:
            kept.append(Line(_cut(line.text[indent:], MAX_LINE), line.context))
            contexts += line.context
            details += not line.context
    return Failure(_cut(first.strip(), MAX_MESSAGE), failure.location, failure.test, tuple(kept))


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


# ---------------------------------------------------------------------------------------------------------------
# The verdict: what the model sees, within a budget

_INDENT = "  "  # a failure's headline under its verifier
_SUB = "    "  # a failure's lines under its headline
_FIRST_DETAIL = 3  # detail lines that come with a failure's headline; the rest come after every failure's


def verdict(results: list[VerifierResult], limit: int = 4000) -> str:
    """The text the model sees for a verify call: one line when all passed; otherwise a line per passed verifier
    and, per failed one, a header and its failures, in at most `limit` characters, saying what was cut."""
    if not results:
        return "No verifiers ran."
    failed = [r for r in results if not r.passed]
    if not failed:
        return _cut(_all_passed(results), limit)
    blocks = [_Block(_header(r), extract(r.output, r.command, r.exit_code, root=r.root), n)
              for n, r in enumerate(failed)]
    out = [f"{len(failed)} of {len(results)} verifiers failed: {', '.join(r.name for r in failed)}."]
    out = out if len(results) > 1 else []
    fixed = sum(len(line) + 1 for line in out) + sum(len(_passed_line(r)) + 1 for r in results if r.passed)
    fixed += sum(len(b.header) + 1 for b in blocks)
    bodies = iter(zip(blocks, _fit(blocks, limit - fixed), strict=True))
    for result in results:
        if result.passed:
            out.append(_passed_line(result))
        else:
            block, body = next(bodies)
            out += [block.header, *body]
    text = "\n".join(out)
    return text if len(text) <= limit else _cut(text, limit)  # only when even the headers do not fit


def _all_passed(results: list[VerifierResult]) -> str:
    seconds = sum(r.duration_s for r in results)
    names = ", ".join(r.name for r in results)
    count = f"All {len(results)} verifiers" if len(results) > 1 else "1 verifier"
    return f"{count} passed: {names} ({seconds:.1f} s)."


def _passed_line(result: VerifierResult) -> str:
    return f"✓ {result.name} ({result.duration_s:.1f} s)"


def _header(result: VerifierResult) -> str:
    command = _cut(" ".join(result.command.split()), 120)
    if result.timed_out:
        how = f"timed out after {result.duration_s:.0f} s"
    elif result.exit_code is None:
        how = "did not finish"
    else:
        how = f"exited {result.exit_code}"
    return f"✗ {result.name}: {command} {how}"


class _Shown:
    """How much of one failure the verdict shows: its headline, its first `detail` lines, its context."""

    def __init__(self, failure: Failure, block: int) -> None:
        self.failure = failure
        self.block = block
        self.headline = _INDENT + failure.headline()
        self.visible = False
        self.detail = 0
        self.context = False

    def size(self, detail: int, context: bool = False) -> int:
        """Characters shown with `detail` lines and `context`, newlines included."""
        return len(self.headline) + 1 + sum(len(line) + 1 for line in self._lines(detail, context))

    def cost(self) -> int:
        return self.size(self.detail, self.context) if self.visible else 0

    def full(self) -> int:
        return self.size(len(self.failure.lines), True)

    def _lines(self, detail: int, context: bool) -> list[str]:
        shown, n = [], 0
        for line in self.failure.lines:
            if context if line.context else n < detail:
                shown.append(_SUB + line.text)
                n += not line.context
        return shown

    def render(self) -> list[str]:
        return [self.headline, *self._lines(self.detail, self.context)] if self.visible else []


class _Block:
    """One failed verifier: its header, its extract, and how much of each failure is shown."""

    def __init__(self, header: str, found: Extract, index: int = 0) -> None:
        self.extract = found
        if header and found.note:
            header += f" ({found.note})"
        if header and found.summary:
            header += f" — {found.summary}"
        self.header = header
        self.shown = [_Shown(f, index) for f in found.failures]

    def note(self, room: int) -> str:
        """The cut note: how many failures and characters were cut, naming the failures left out (test ids in
        full, to run them alone; diagnostics as a count per file) as far as `room` characters allow."""
        hidden = [s.failure for s in self.shown if not s.visible]
        more = len(hidden) + self.extract.omitted
        cut = sum(s.full() - s.cost() for s in self.shown)
        if not more and not cut:
            return ""
        names = _compact(hidden)
        if len(_note(more, names, len(names), cut)) <= room:
            return _note(more, names, len(names), cut)
        fits, over = 0, len(names)  # the longest prefix of names that fits: a binary search, for thousands
        while over - fits > 1:
            mid = (fits + over) // 2
            fits, over = (mid, over) if len(_note(more, names[:mid], len(names), cut)) <= room else (fits, mid)
        return _note(more, names[:fits], len(names), cut)


def _note(more: int, listed: list[str], total: int, cut: int) -> str:
    chars = f"{cut:,} characters cut" if cut else ""
    if not more:
        return f"{_INDENT}[{chars}]"
    text = f"{_INDENT}[… {more:,} more failure{'s' if more != 1 else ''}"
    if listed:
        rest = total - len(listed)
        text += ": " + _listing(listed) + (f" (+{rest:,} more)" if rest else "") + (f"; {chars}" if chars else "")
    elif chars:
        text += f", {chars}"
    return text + "]"


def _listing(names: list[str]) -> str:
    """Names joined compactly: consecutive pytest ids of one file as `path::{test_a, test_b}`."""
    groups: list[tuple[str, list[str]]] = []  # (path, names in it); a name without `::` is its own group
    for name in names:
        path, sep, rest = name.partition("::")
        if sep and groups and groups[-1][0] == path and groups[-1][1]:
            groups[-1][1].append(rest)
        else:
            groups.append((path, [rest]) if sep else (name, []))
    return ", ".join(path if not rest else f"{path}::{rest[0]}" if len(rest) == 1 else
                     f"{path}::{{{', '.join(rest)}}}" for path, rest in groups)


def _id_costs(order: list[_Shown]) -> list[int]:
    """Characters (a little over) to list the test ids of order[k:] as `_listing` groups them, per k."""
    costs = [0] * (len(order) + 1)
    grouped = 0  # the ids after k, each after the first of its file written without the file
    for k in range(len(order) - 1, -1, -1):
        test = order[k].failure.test
        if test:
            costs[k] = grouped + len(test) + 4  # the first is written in full
            before = order[k - 1].failure.test if k else None
            path, sep, rest = test.partition("::")
            same_file = sep and before and before.partition("::")[0] == path
            grouped += len(rest) + 2 if same_file else len(test) + 4
        else:
            costs[k] = costs[k + 1]
    return costs


def _compact(failures: list[Failure]) -> list[str]:
    names: list[str] = []
    files: dict[str, int] = {}
    for f in failures:
        if f.test:
            names.append(f.test)
        else:
            path = (f.location or "elsewhere").split(":")[0]
            files[path] = files.get(path, 0) + 1
    return names + [f"{path} ×{n}" if n > 1 else path for path, n in files.items()]


def _fit(blocks: list[_Block], budget: int) -> list[list[str]]:
    """Each block's lines within `budget` characters.

    What goes first: the ids of all failing tests (a compact list in the cut note when their failures are not
    shown), then failures in order, each with its message and first few detail lines (failures of different
    verifiers taking turns), then the rest of their detail, then context. So context is cut first, then whole
    later failures, and an id only when even the list of ids does not fit.
    """
    order = [s for s in chain.from_iterable(zip_longest(*(b.shown for b in blocks))) if s is not None]
    # Each block's shortest note is reserved now: its numbers only shrink as more is shown.
    left = budget - sum(len(b.note(0)) + 1 for b in blocks)
    ids_after = _id_costs(order)
    opened: set[int] = set()
    for k, item in enumerate(order):
        detail = _first_fit(item, left - ids_after[k + 1])
        if detail is None and item.block not in opened:  # a verifier's first failure beats a list of ids
            detail = _first_fit(item, left)
        if detail is None:
            break
        item.visible, item.detail, left = True, detail, left - item.size(detail)
        opened.add(item.block)
    shown = [s for s in order if s.visible]
    left -= min(max(0, left), ids_after[len(shown)] if len(shown) < len(order) else 0)
    for item in shown:
        while item.detail < len(item.failure.detail):
            step = item.size(item.detail + 1) - item.size(item.detail)
            if step > left:
                break
            item.detail, left = item.detail + 1, left - step
    for item in shown:
        step = item.size(item.detail, True) - item.size(item.detail)
        if item.detail == len(item.failure.detail) and 0 < step <= left:
            item.context, left = True, left - step
    return _with_notes(blocks, budget - sum(s.cost() for s in order))


def _first_fit(item: _Shown, room: int) -> int | None:
    """The most detail lines, up to _FIRST_DETAIL, with which a failure fits in `room`; None if it does not."""
    for detail in range(min(_FIRST_DETAIL, len(item.failure.detail)), -1, -1):
        if item.size(detail) <= room:
            return detail
    return None


def _with_notes(blocks: list[_Block], left: int) -> list[list[str]]:
    shortest = [len(b.note(0)) + 1 for b in blocks]
    bodies = []
    for n, block in enumerate(blocks):
        lines = list(chain.from_iterable(s.render() for s in block.shown))
        note = block.note(left - sum(shortest[n + 1:]) - 1)
        if note:
            lines.append(note)
            left -= len(note) + 1
        bodies.append(lines)
    return bodies
