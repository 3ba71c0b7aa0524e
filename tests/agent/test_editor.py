"""The editor tool on awkward files, and every path escape we could think of."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.agent.editor import MAX_FILE_BYTES, Editor, EditorError
from app.agent.tools import Toolbox
from app.sandbox import Sandbox
from tests.agent.conftest import git, run


@pytest.fixture
def ed(repo: Path) -> Editor:
    return Editor(repo)


def test_view_file_with_line_numbers_and_ranges(ed: Editor, repo: Path) -> None:
    (repo / "f.txt").write_text("one\ntwo\nthree\nfour\n")
    assert ed("view", "f.txt") == ("Here's the result of running `cat -n` on f.txt:\n"
                                   "     1\tone\n     2\ttwo\n     3\tthree\n     4\tfour\n")
    assert ed("view", "f.txt", view_range=[2, 3]).endswith("     2\ttwo\n     3\tthree\n")
    assert ed("view", "f.txt", view_range=[3, -1]).endswith("     3\tthree\n     4\tfour\n")
    for bad, message in (([0, 2], "out of range"), ([9, 10], "out of range"), ([3, 2], "before its start"),
                         ([1], "two integers"), (["1", 2], "two integers")):
        with pytest.raises(EditorError, match=message):
            ed("view", "f.txt", view_range=bad)


def test_view_cuts_huge_output_and_points_to_view_range(ed: Editor, repo: Path) -> None:
    (repo / "long.txt").write_text("".join(f"line {i} " + "x" * 80 + "\n" for i in range(5000)))
    shown = ed("view", "long.txt")
    assert len(shown) < 50_000 and "use view_range" in shown and "5000 lines" in shown


def test_view_directory_two_levels_without_hidden_or_ignored(ed: Editor, repo: Path) -> None:
    for path in ("src/pkg/deep/deeper.py", "src/main.py", ".hidden/x", "build.log", "src/.env", "node_modules/a.js"):
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text("x")
    (repo / ".gitignore").write_text("*.log\n")
    listing = ed("view", ".")
    lines = listing.splitlines()[1:]
    assert {"calc.py", "src/", "src/main.py", "src/pkg/"} <= set(lines)
    assert not [line for line in lines if "deep" in line or "hidden" in line or ".log" in line
                or ".env" in line or "node_modules" in line or ".git" in line]
    assert ed("view", str(repo / "src")).splitlines()[1:] == ["main.py", "pkg/", "pkg/deep/"]


def test_create_and_overwrite(ed: Editor, repo: Path) -> None:
    assert ed("create", "new/dir/file.py", file_text="x = 1\n") == "File created: new/dir/file.py"
    assert (repo / "new/dir/file.py").read_text() == "x = 1\n"
    assert ed("create", str(repo / "new/dir/file.py"), file_text="x = 2\n").startswith("File overwritten")
    assert (repo / "new/dir/file.py").read_text() == "x = 2\n"
    with pytest.raises(EditorError, match="file_text"):
        ed("create", "other.py")
    with pytest.raises(EditorError, match="directory"):
        ed("create", "new", file_text="")


def test_str_replace_exactly_one_match(ed: Editor, repo: Path) -> None:
    (repo / "f.py").write_text("a = 1\nb = 2\na = 1\nc = 3\n")
    with pytest.raises(EditorError, match=r"occurs 2 times in f.py, starting at lines 1, 3"):
        ed("str_replace", "f.py", old_str="a = 1", new_str="a = 9")
    with pytest.raises(EditorError, match="does not occur"):
        ed("str_replace", "f.py", old_str="zzz", new_str="")
    with pytest.raises(EditorError, match="indentation"):
        ed("str_replace", "f.py", old_str="    b = 2", new_str="b = 3")
    with pytest.raises(EditorError, match="old_str"):
        ed("str_replace", "f.py", old_str="", new_str="x")
    out = ed("str_replace", "f.py", old_str="b = 2\na = 1", new_str="b = 2\na = 5")
    assert (repo / "f.py").read_text() == "a = 1\nb = 2\na = 5\nc = 3\n"
    assert "     3\ta = 5" in out
    ed("str_replace", "f.py", old_str="c = 3\n")  # no new_str deletes
    assert (repo / "f.py").read_text() == "a = 1\nb = 2\na = 5\n"


def test_insert(ed: Editor, repo: Path) -> None:
    (repo / "f.txt").write_text("one\ntwo\n")
    ed("insert", "f.txt", insert_line=0, insert_text="zero")
    ed("insert", "f.txt", insert_line=3, new_str="three\n")  # new_str is accepted too
    ed("insert", "f.txt", insert_line=1, insert_text="half\nhalf again\n")
    assert (repo / "f.txt").read_text() == "zero\nhalf\nhalf again\none\ntwo\nthree\n"
    with pytest.raises(EditorError, match=r"out of range.*has 6 lines"):
        ed("insert", "f.txt", insert_line=7, insert_text="x")
    with pytest.raises(EditorError, match="insert_text"):
        ed("insert", "f.txt", insert_line=1)
    with pytest.raises(EditorError, match="integer"):
        ed("insert", "f.txt", insert_line="2", insert_text="x")


def test_file_without_final_newline(ed: Editor, repo: Path) -> None:
    (repo / "f.txt").write_text("one\ntwo")
    assert ed("view", "f.txt").endswith("     2\ttwo\n")
    ed("insert", "f.txt", insert_line=2, insert_text="three\n")
    assert (repo / "f.txt").read_text() == "one\ntwo\nthree"
    ed("insert", "f.txt", insert_line=1, insert_text="1.5")
    ed("str_replace", "f.txt", old_str="three", new_str="3")
    assert (repo / "f.txt").read_text() == "one\n1.5\ntwo\n3"


def test_crlf_tabs_and_unicode_are_kept(ed: Editor, repo: Path) -> None:
    (repo / "win.txt").write_bytes("first\r\n\tindented\r\nnaïve — ünïcode ✓\r\n".encode())
    view = ed("view", "win.txt")
    assert "\r" not in view and "     2\t\tindented" in view
    ed("str_replace", "win.txt", old_str="\tindented\nnaïve", new_str="\tindented\n\tmore\nnaïve")
    ed("insert", "win.txt", insert_line=0, insert_text="zeroth\n")
    ed("str_replace", "win.txt", old_str="first\r\n", new_str="first!\r\n")  # CRLF in old_str works too
    assert (repo / "win.txt").read_bytes() == (
        "zeroth\r\nfirst!\r\n\tindented\r\n\tmore\r\nnaïve — ünïcode ✓\r\n".encode())
    ed("create", "win.txt", file_text="a\nb\n")  # overwriting keeps the file's line endings
    assert (repo / "win.txt").read_bytes() == b"a\r\nb\r\n"


def test_mixed_line_endings_are_left_alone(ed: Editor, repo: Path) -> None:
    (repo / "mixed.txt").write_bytes(b"a\r\nb\nc\r\n")
    ed("str_replace", "mixed.txt", old_str="b\n", new_str="B\n")
    assert (repo / "mixed.txt").read_bytes() == b"a\r\nB\nc\r\n"


def test_encodings_are_kept(ed: Editor, repo: Path) -> None:
    (repo / "bom.txt").write_bytes(b"\xef\xbb\xbfhello\n")
    ed("str_replace", "bom.txt", old_str="hello", new_str="héllo")
    assert (repo / "bom.txt").read_bytes() == "\ufeffhéllo\n".encode()
    (repo / "latin.txt").write_bytes(b"caf\xe9 = 1\nx = 2\n")
    ed("str_replace", "latin.txt", old_str="x = 2", new_str="x = 3")
    assert (repo / "latin.txt").read_bytes() == b"caf\xe9 = 1\nx = 3\n"
    with pytest.raises(EditorError, match="latin-1"):
        ed("str_replace", "latin.txt", old_str="x = 3", new_str="x = '✓'")
    assert (repo / "latin.txt").read_bytes() == b"caf\xe9 = 1\nx = 3\n"
    (repo / "wide.txt").write_bytes("wide\n".encode("utf-16"))
    ed("str_replace", "wide.txt", old_str="wide", new_str="wider")
    assert (repo / "wide.txt").read_bytes() == "wider\n".encode("utf-16")


def test_binary_and_huge_files_are_refused(ed: Editor, repo: Path) -> None:
    (repo / "img.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    for command, args in (("view", {}), ("str_replace", {"old_str": "PNG", "new_str": "x"}),
                          ("create", {"file_text": "x"})):
        with pytest.raises(EditorError, match="binary"):
            ed(command, "img.png", **args)
    with open(repo / "big.txt", "wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(EditorError, match="MB limit"):
        ed("view", "big.txt")
    os.mkfifo(repo / "pipe")
    with pytest.raises(EditorError, match="not a regular file"):
        ed("view", "pipe")


@pytest.mark.parametrize("path", [
    "../outside.txt", "sub/../../outside.txt", "./../outside.txt", "..", "/etc/passwd", "/etc", "/",
    "/tmp", "{parent}/outside.txt", "{root}/../outside.txt", "{root}-evil/x.txt", "nul\0byte", "",
])
def test_paths_outside_the_repository_are_refused(ed: Editor, repo: Path, path: str) -> None:
    (repo.parent / "outside.txt").write_text("secret\n")
    path = path.format(parent=repo.parent, root=repo)
    for command, args in (("view", {}), ("create", {"file_text": "pwned"}),
                          ("str_replace", {"old_str": "secret", "new_str": "pwned"}),
                          ("insert", {"insert_line": 0, "insert_text": "pwned"})):
        with pytest.raises(EditorError):
            ed(command, path, **args)
    assert (repo.parent / "outside.txt").read_text() == "secret\n"
    assert not (repo.parent / "repo-evil").exists()


def test_symlinks_leading_outside_are_refused(ed: Editor, repo: Path) -> None:
    outside = repo.parent / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret\n")
    os.symlink(outside / "secret.txt", repo / "link.txt")
    os.symlink(outside, repo / "linkdir")
    os.symlink("/etc", repo / "etc")
    os.symlink("loop", repo / "loop")
    (repo / "inside.txt").write_text("fine\n")
    os.symlink("inside.txt", repo / "good-link.txt")
    for command, path, args in (("view", "link.txt", {}), ("create", "link.txt", {"file_text": "x"}),
                                ("str_replace", "link.txt", {"old_str": "secret", "new_str": "x"}),
                                ("view", "linkdir", {}), ("create", "linkdir/new.txt", {"file_text": "x"}),
                                ("view", "etc/passwd", {}), ("view", "loop", {})):
        with pytest.raises(EditorError):
            ed(command, path, **args)
    assert (outside / "secret.txt").read_text() == "secret\n" and not (outside / "new.txt").exists()
    ed("str_replace", "good-link.txt", old_str="fine", new_str="good")  # a link inside the root is fine
    assert (repo / "inside.txt").read_text() == "good\n"


def test_git_directory_is_read_only(ed: Editor, repo: Path) -> None:
    assert "core" in ed("view", ".git/config")
    with pytest.raises(EditorError, match=r"\.git"):
        ed("str_replace", ".git/config", old_str="[core]", new_str="[core]\n\tfsmonitor = evil")
    with pytest.raises(EditorError, match=r"\.git"):
        ed("create", ".git/hooks/pre-commit", file_text="#!/bin/sh\nevil\n")
    assert "fsmonitor" not in git(repo, "config", "--list")


def test_toolbox_reports_refusals_as_errors(repo: Path) -> None:
    sandbox = Sandbox(repo, mode="none")
    toolbox = Toolbox(Editor(repo), sandbox.shell(), 10)
    result = run(toolbox.run("str_replace_based_edit_tool", {"command": "view", "path": "../x"}))
    assert result.is_error and "'..'" in result.content
    result = run(toolbox.run("str_replace_based_edit_tool", {"command": "create", "path": "x", "file_text": 3}))
    assert result.is_error and "must be a string" in result.content
    assert not run(toolbox.run("str_replace_based_edit_tool", {"command": "view", "path": "calc.py"})).is_error
