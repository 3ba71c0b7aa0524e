"""The editor tool on awkward files, and every path escape we could think of."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from app.agent import editor as editor_module
from app.agent.editor import MAX_FILE_BYTES, Editor, EditorError
from app.agent.tools import Toolbox
from app.checkout.sandbox import Sandbox
from tests.agent.conftest import git, run


def kernel_has_openat2() -> bool:
    if editor_module._SYS_OPENAT2 is None:
        return False
    root = os.open("/", os.O_PATH)
    try:
        os.close(editor_module._openat2(root, ".", os.O_PATH))
    except OSError:
        return False
    finally:
        os.close(root)
    return True


HAS_OPENAT2 = kernel_has_openat2()


@pytest.fixture(params=["openat2", "walk"])
def confinement(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs with the kernel's openat2 and with the component walk used where it is missing."""
    if request.param == "openat2" and not HAS_OPENAT2:
        pytest.skip("this kernel has no openat2 (or a seccomp filter refuses it)")
    monkeypatch.setattr(editor_module, "openat2_usable", request.param == "openat2")
    return request.param


@pytest.fixture
def ed(repo: Path, confinement: str) -> Editor:
    return Editor(repo)


@pytest.fixture
def outside(repo: Path) -> Path:
    """A directory beside the repository, which nothing may read or change."""
    path = repo.parent / "outside"
    path.mkdir()
    (path / "secret.txt").write_text("OUTSIDE secret\n")
    (path / "victim.txt").write_text("victim\n")
    return path


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


# The path layer: symlinks inside the repository, symlinks out, and a tree changing underneath.

def test_confined_opens_use_openat2_where_the_kernel_has_it(ed: Editor, repo: Path, confinement: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = editor_module._openat2

    def counting(dirfd: int, path: str, flags: int) -> int:
        calls.append(path)
        return real(dirfd, path, flags)

    monkeypatch.setattr(editor_module, "_openat2", counting)
    ed("view", "calc.py")
    ed("str_replace", "calc.py", old_str="a - b", new_str="a + b")
    assert (calls != []) == (confinement == "openat2")


@pytest.mark.parametrize("code", [errno.ENOSYS, errno.EPERM])
def test_falls_back_to_the_walk_when_openat2_is_refused(repo: Path, monkeypatch: pytest.MonkeyPatch,
                                                         code: int) -> None:
    def refused(dirfd: int, path: str, flags: int) -> int:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(editor_module, "openat2_usable", True)
    monkeypatch.setattr(editor_module, "_openat2", refused)
    ed = Editor(repo)
    assert "return a - b" in ed("view", "calc.py")
    assert editor_module.openat2_usable is False
    ed("create", "new/file.txt", file_text="x\n")
    assert (repo / "new/file.txt").read_text() == "x\n"


def test_symlinks_inside_the_repository_are_followed(ed: Editor, repo: Path) -> None:
    (repo / "docs").mkdir()
    os.symlink("../README.md", repo / "docs/README.md")
    os.symlink("docs", repo / "docs-link")
    os.symlink("docs-link/README.md", repo / "chain.md")  # a link through a linked directory
    assert ed("view", "docs/README.md") == "Here's the result of running `cat -n` on README.md:\n     1\t# calc\n"
    assert "# calc" in ed("view", "chain.md")
    assert "README.md" in ed("view", "docs-link")
    ed("str_replace", "docs/README.md", old_str="# calc", new_str="# calculator")
    ed("insert", "chain.md", insert_line=1, insert_text="Adds numbers.")
    assert (repo / "README.md").read_text() == "# calculator\nAdds numbers.\n"
    assert ed("create", "docs/README.md", file_text="# new\n") == "File overwritten: README.md"
    assert (repo / "docs/README.md").is_symlink() and (repo / "README.md").read_text() == "# new\n"
    assert ed("create", "docs-link/guide.md", file_text="g\n") == "File created: docs/guide.md"
    assert (repo / "docs/guide.md").read_text() == "g\n"


def test_absolute_symlinks_are_followed_only_under_the_root(ed: Editor, repo: Path, outside: Path) -> None:
    (repo / "src").mkdir()
    os.symlink(repo / "README.md", repo / "abs.md")
    os.symlink(repo / "src", repo / "abs-src")
    os.symlink(f"{repo}/src/../README.md", repo / "abs-dotdot.md")  # normalised lexically: still inside
    assert "# calc" in ed("view", "abs.md") and "# calc" in ed("view", "abs-dotdot.md")
    assert ed("create", "abs-src/new.py", file_text="x = 1\n") == "File created: src/new.py"
    assert (repo / "src/new.py").read_text() == "x = 1\n"
    os.symlink(f"{repo}/../outside/secret.txt", repo / "abs-out.txt")
    os.symlink(f"{repo}-evil/x.txt", repo / "abs-evil.txt")
    for path in ("abs-out.txt", "abs-evil.txt"):
        with pytest.raises(EditorError, match="leads outside"):
            ed("view", path)
        with pytest.raises(EditorError, match="leads outside"):
            ed("create", path, file_text="x")
    assert not (repo.parent / "repo-evil").exists()


def test_relative_symlinks_out_are_refused_however_they_get_there(ed: Editor, repo: Path, outside: Path) -> None:
    (repo / "sub").mkdir()
    os.symlink("../../outside", repo / "sub/up-two")
    os.symlink("..", repo / "parent")
    os.symlink("b.txt", repo / "a.txt")
    os.symlink("../outside/secret.txt", repo / "b.txt")  # reached through a chain
    os.symlink("../outside/new.txt", repo / "dangling.txt")  # would create a file outside
    os.symlink(".", repo / "self")
    for command, path, args in (("view", "sub/up-two/secret.txt", {}), ("view", "parent/outside/secret.txt", {}),
                                ("view", "a.txt", {}), ("str_replace", "a.txt", {"old_str": "OUTSIDE", "new_str": "x"}),
                                ("create", "dangling.txt", {"file_text": "x"}),
                                ("create", "sub/up-two/new.txt", {"file_text": "x"}),
                                ("view", "self/self/parent", {})):
        with pytest.raises(EditorError, match="leads outside"):
            ed(command, path, **args)
    assert sorted(os.listdir(outside)) == ["secret.txt", "victim.txt"]
    assert (outside / "secret.txt").read_text() == "OUTSIDE secret\n"
    assert "# calc" in ed("view", "self/self/README.md")  # a link to "." is harmless


def test_directory_listing_does_not_follow_symlinks(ed: Editor, repo: Path, outside: Path) -> None:
    os.symlink(outside, repo / "linkdir")
    lines = ed("view", ".").splitlines()[1:]
    assert "linkdir" in lines and not [line for line in lines if "secret" in line or "victim" in line]


def swap_after_resolving(monkeypatch: pytest.MonkeyPatch, swap: Callable[[], None]) -> None:
    """Run `swap` in the window between resolving a path and opening it: the race, made certain."""
    follow = Editor._follow

    def follow_then_swap(self: Editor, path: str, parts: tuple[str, ...]) -> editor_module._Target:
        target = follow(self, path, parts)
        swap()
        return target

    monkeypatch.setattr(Editor, "_follow", follow_then_swap)


OPERATIONS = (("create", "d/config", {"file_text": "pwned = true\n"}), ("view", "d/secret.txt", {}),
              ("view", "d", {}), ("str_replace", "d/victim.txt", {"old_str": "victim", "new_str": "PWNED"}),
              ("insert", "d/victim.txt", {"insert_line": 0, "insert_text": "PWNED"}))


@pytest.mark.parametrize("link", ["{outside}", "../outside", ".git", "elsewhere"])
def test_a_directory_swapped_for_a_symlink_after_resolving_is_refused(
        ed: Editor, repo: Path, outside: Path, monkeypatch: pytest.MonkeyPatch, link: str) -> None:
    (repo / "d").mkdir()
    (repo / "d/secret.txt").write_text("inside\n")
    (repo / "d/victim.txt").write_text("victim\n")
    (repo / "d/config").write_text("inside = true\n")
    (repo / "elsewhere").mkdir()  # even a symlink to a directory inside: the tree changed, so refuse
    git_config = (repo / ".git/config").read_bytes()

    def swap() -> None:
        os.rename(repo / "d", repo / "d.real")
        os.symlink(link.format(outside=outside), repo / "d")

    swap_after_resolving(monkeypatch, swap)
    for command, path, args in OPERATIONS:
        with pytest.raises(EditorError, match=r"^d.* changed while it was being opened .*; try again$"):
            ed(command, path, **args)
        os.unlink(repo / "d")
        os.rename(repo / "d.real", repo / "d")
    assert sorted(os.listdir(outside)) == ["secret.txt", "victim.txt"]
    assert (outside / "victim.txt").read_text() == "victim\n"
    assert (repo / ".git/config").read_bytes() == git_config
    assert (repo / "d/victim.txt").read_text() == "victim\n" and not os.listdir(repo / "elsewhere")


def test_a_file_swapped_for_a_symlink_after_resolving_is_refused(
        ed: Editor, repo: Path, outside: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (repo / "victim.txt").write_text("victim\n")
    swap_after_resolving(monkeypatch, lambda: (os.rename(repo / "victim.txt", repo / "victim.real"),
                                               os.symlink(outside / "victim.txt", repo / "victim.txt")))
    with pytest.raises(EditorError, match="changed while"):
        ed("str_replace", "victim.txt", old_str="victim", new_str="PWNED")
    assert (outside / "victim.txt").read_text() == "victim\n"


def test_a_directory_swapped_between_reading_and_writing_is_refused(
        ed: Editor, repo: Path, outside: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (repo / "d").mkdir()
    (repo / "d/victim.txt").write_text("victim\n")
    read = Editor._read

    def read_then_swap(self: Editor, target: editor_module._Target, path: str) -> editor_module._Decoded:
        decoded = read(self, target, path)
        os.rename(repo / "d", repo / "d.real")
        os.symlink(outside, repo / "d")
        return decoded

    monkeypatch.setattr(Editor, "_read", read_then_swap)
    with pytest.raises(EditorError, match="changed while"):
        ed("str_replace", "d/victim.txt", old_str="victim", new_str="PWNED")
    assert (outside / "victim.txt").read_text() == "victim\n"


def test_a_missing_directory_that_turns_into_a_symlink_while_being_made_is_refused(
        ed: Editor, repo: Path, outside: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    open_beneath = editor_module.open_beneath

    def plant_then_open(root_fd: int, parts: tuple[str, ...], flags: int) -> int:
        if parts == ("new", "deeper"):  # the directories are missing: create now makes them one by one
            os.symlink(outside, repo / "new")
            raise FileNotFoundError(errno.ENOENT, "No such file or directory")
        return open_beneath(root_fd, parts, flags)

    monkeypatch.setattr(editor_module, "open_beneath", plant_then_open)
    with pytest.raises(EditorError, match="changed while"):
        ed("create", "new/deeper/file.txt", file_text="x\n")
    assert sorted(os.listdir(outside)) == ["secret.txt", "victim.txt"]


def test_workspace_whose_git_is_a_file(ed: Editor, repo: Path, tmp_path: Path) -> None:
    (repo / ".git").rename(tmp_path / "gitdir")
    (repo / ".git").write_text(f"gitdir: {tmp_path / 'gitdir'}\n")
    (repo / ".gitignore").write_text("*.log\n")
    (repo / "build.log").write_text("x\n")
    assert "gitdir:" in ed("view", ".git")
    for command, path, args in (("create", ".git/config", {"file_text": "x"}), ("create", ".git", {"file_text": "x"}),
                                ("str_replace", ".git", {"old_str": "gitdir", "new_str": "x"})):
        with pytest.raises(EditorError, match=r"\.git"):
            ed(command, path, **args)
    assert not (repo / ".git").is_dir() and "gitdir:" in (repo / ".git").read_text()
    lines = ed("view", ".").splitlines()[1:]
    assert "calc.py" in lines and "build.log" not in lines


def test_directory_listing_honours_nested_gitignore_files(ed: Editor, repo: Path) -> None:
    files = ("a.log", "only-root.txt", "excluded.txt", "src/only-root.txt", "src/keep.log", "src/other.log",
             "src/generated/x.py", "src/pkg/secret.txt", "src/pkg/ok.py", "src/pkg/sub/deep.log")
    for path in files:
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text("x")
    (repo / ".gitignore").write_text("*.log\n/only-root.txt\n")
    (repo / "src/.gitignore").write_text("generated/\n!keep.log\n")
    (repo / "src/pkg/.gitignore").write_text("secret.txt\n")
    (repo / ".git/info").mkdir(exist_ok=True)
    (repo / ".git/info/exclude").write_text("excluded.txt\n")
    top = set(ed("view", ".").splitlines()[1:])
    assert {"src/", "src/keep.log", "src/only-root.txt", "src/pkg/"} <= top
    assert not top & {"a.log", "only-root.txt", "excluded.txt", "src/other.log", "src/generated/"}
    assert ed("view", "src").splitlines()[1:] == ["keep.log", "only-root.txt", "pkg/", "pkg/ok.py", "pkg/sub/"]
    assert ed("view", "src/pkg").splitlines()[1:] == ["ok.py", "sub/"]


def test_the_root_fd_is_closed_and_reopened(repo: Path) -> None:
    ed = Editor(repo)
    assert "add" in ed("view", "calc.py")
    fd = ed.root_fd
    ed.close()
    with pytest.raises(OSError):
        os.fstat(fd)
    assert "add" in ed("view", "calc.py")
    ed.close()
    ed.close()
