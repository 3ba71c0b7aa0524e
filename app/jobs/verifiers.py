"""Which verifiers to run for a checkout: the ones `.github/honk.yml` declares, else the ones its build files imply.

`verifiers_for` applies the repository's settings; `detect_verifiers` reads build files only (nothing is executed,
every scan is bounded) and proposes the commands a person who knows the project would run. Only tools the
repository configures, or that ship with its toolchain (gofmt, go vet, cargo fmt, cargo clippy), are proposed:
Honk never brings linters of its own choosing. A proposed tool that turns out not to be installed is skipped at
run time (exit 127, or "No module named X" for `python -m X`), which is why the toolchain commands below answer
127 when their tool is missing instead of an error of their own.

Naming. Verifiers are named by stage, `format`, `lint`, `types`, `test`, in that order. When a repository holds
several ecosystems, the first one found in the order Python, Go, Rust, Java, JavaScript/TypeScript owns those
plain names and every later one's names carry its prefix (`go-test`, `js-lint`). JavaScript comes last because a
root package.json beside another language's build file is usually tooling (commit hooks, a docs site). A
Makefile's `test` and `lint` targets are the project's own entry points: they take the plain names `test` and
`lint` over the first ecosystem's runners (prefixed verifiers of later ecosystems stay).
"""

from __future__ import annotations

import configparser
import json
import os
import re
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from app.checkout.verify import Verifier
from app.jobs.repo_config import DEFAULT_SOURCE, RepoConfig

STAGES = ("format", "lint", "types", "test")
DECLARED = f"from `{DEFAULT_SOURCE}`"
NOTHING_DETECTED = (f"no verifiers in `{DEFAULT_SOURCE}` and none detected "
                    "(Python, JavaScript/TypeScript, Go, Rust, Java, make)")
NPM_DEFAULT_TEST = 'echo "Error: no test specified" && exit 1'
MAX_FILE_BYTES = 1024 * 1024  # a build file larger than this is generated; its first MiB says enough
MAX_ENTRIES_SCANNED = 5000  # directory entries looked at to find one test file; keeps huge trees fast
MAX_LISTED = 200  # entries of one directory looked at for requirement files or workflows


# What callers use


def verifiers_for(config: RepoConfig, root: Path) -> tuple[list[Verifier], str]:
    """The verifiers to run in the checkout at `root`, and a sentence fragment saying where they came from
    (for the pull request, and the reason none ran when the list is empty).

    `verify:` present: exactly those, plus `test:` as the verifier `test` if set. Only `test:`: the detected
    verifiers with `test` replaced by the declared one. Neither: the detected verifiers.
    """
    declared_test = Verifier("test", config.test, DECLARED, declared=True) if config.test else None
    if config.verify is not None:
        verifiers = [Verifier(name, command, DECLARED, declared=True) for name, command in config.verify.items()]
        verifiers += [declared_test] if declared_test else []
        return verifiers, DECLARED if verifiers else f"`verify:` in `{DEFAULT_SOURCE}` lists no verifiers"
    detected = detect_verifiers(root)
    if declared_test:
        return _put(detected, declared_test), f"`test` {DECLARED}, the others detected from the repository's files"
    return detected, "detected from the repository's files" if detected else NOTHING_DETECTED


def detect_verifiers(root: Path) -> list[Verifier]:
    """The verifiers the repository's build files imply, in a stable order; nothing is executed."""
    found = [(prefix, verifiers) for prefix, detect in _ECOSYSTEMS if (verifiers := detect(root))]
    first = found[0][1] if found else []
    for verifier in _make(root):
        first = _put(first, verifier)
    later = [replace(v, name=prefix + v.name) for prefix, verifiers in found[1:] for v in verifiers]
    return first + later


def _put(verifiers: list[Verifier], new: Verifier) -> list[Verifier]:
    """`verifiers` with `new` in the place of the one of the same name, else in its stage's place among the
    plain names (prefixed names of later ecosystems stay after them)."""
    if any(v.name == new.name for v in verifiers):
        return [new if v.name == new.name else v for v in verifiers]
    rank = STAGES.index(new.name) if new.name in STAGES else len(STAGES)
    at = next((i for i, v in enumerate(verifiers) if (STAGES.index(v.name) if v.name in STAGES else 99) > rank),
              len(verifiers))
    return [*verifiers[:at], new, *verifiers[at:]]


# Reading build files


def _read(path: Path) -> str | None:
    try:
        if not path.is_file():
            return None
        with path.open("rb") as handle:
            return handle.read(MAX_FILE_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return None


@dataclass(frozen=True)
class _Toml:
    """A TOML build file: its tables when it parses, else its text (a broken file still says what it uses)."""

    name: str
    text: str
    data: dict[str, Any] | None

    def has(self, dotted: str) -> bool:
        if self.data is None:
            return re.search(rf"^\s*\[\[?{re.escape(dotted)}[.\]]", self.text, re.M) is not None
        return _get(self.data, dotted) is not None

    def get(self, dotted: str) -> Any:
        return _get(self.data, dotted) if self.data is not None else None


def _toml(root: Path, name: str) -> _Toml | None:
    text = _read(root / name)
    if text is None:
        return None
    try:
        return _Toml(name, text, tomllib.loads(text))
    except tomllib.TOMLDecodeError:
        return _Toml(name, text, None)


def _get(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def _ini(root: Path, name: str) -> configparser.ConfigParser | None:
    text = _read(root / name)
    if text is None:
        return None
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:
        # A broken file still says which sections it has; keep just their names.
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        for section in re.findall(r"^\s*\[([^\]\n]+)\]", text, re.M):
            if not parser.has_section(section):
                parser.add_section(section)
    return parser


def _listed(folder: Path) -> Iterator[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            for seen, entry in enumerate(entries):
                if seen >= MAX_LISTED:
                    return
                yield entry
    except OSError:
        return


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


# Python


@dataclass(frozen=True)
class _Python:
    """What a Python project's files say about its tools."""

    root: Path
    pyproject: _Toml | None
    setup_cfg: configparser.ConfigParser | None
    tox_ini: configparser.ConfigParser | None
    hooks: frozenset[str]  # pre-commit hook ids
    dev: dict[str, str]  # normalized package name -> where it is listed ("requirements-dev.txt")

    @property
    def python(self) -> str:
        # Setup may have made a virtualenv in the checkout; its interpreter has the project's tools.
        return ".venv/bin/python" if (self.root / ".venv" / "bin" / "python").exists() else "python3"

    def signal(self, tool: str, hooks: tuple[str, ...] = ()) -> str | None:
        """Where the project says it uses `tool` outside the tool's own config: pre-commit or dev dependencies."""
        hook = next((h for h in (tool, *hooks) if h in self.hooks), None)
        if hook:
            return f"found the `{hook}` hook in .pre-commit-config.yaml"
        if tool in self.dev:
            return f"found {tool} in {self.dev[tool]}"
        return None

    def ini_section(self, section: str, files: tuple[str, ...] = ("setup.cfg", "tox.ini")) -> str | None:
        for name in files:
            parser = {"setup.cfg": self.setup_cfg, "tox.ini": self.tox_ini}[name]
            if parser is not None and parser.has_section(section):
                return name
        return None


def _python_project(root: Path) -> _Python:
    pyproject = _toml(root, "pyproject.toml")
    return _Python(root, pyproject, _ini(root, "setup.cfg"), _ini(root, "tox.ini"), _pre_commit_hooks(root),
                   _dev_packages(root, pyproject))


def _python(root: Path) -> list[Verifier]:
    project = _python_project(root)
    return [v for v in (_py_format(project), _py_lint(project), _py_types(project), _py_test(project)) if v]


def _ruff_config(project: _Python) -> tuple[_Toml | None, str | None]:
    """The file ruff itself would read (its own first), and the reason to say it is configured."""
    for name in (".ruff.toml", "ruff.toml"):
        config = _toml(project.root, name)
        if config is not None:
            return config, f"found {name}"
    if project.pyproject is not None and project.pyproject.has("tool.ruff"):
        return project.pyproject, "found `[tool.ruff]` in pyproject.toml"
    return None, project.signal("ruff", hooks=("ruff-check",))


def _py_format(project: _Python) -> Verifier | None:
    py = project.python
    config, _ = _ruff_config(project)
    if config is not None and config.has("format" if config.name != "pyproject.toml" else "tool.ruff.format"):
        table = "[format]" if config.name != "pyproject.toml" else "[tool.ruff.format]"
        return Verifier("format", f"{py} -m ruff format --check .", f"found `{table}` in {config.name}")
    if "ruff-format" in project.hooks:
        return Verifier("format", f"{py} -m ruff format --check .",
                        "found the `ruff-format` hook in .pre-commit-config.yaml")
    if project.pyproject is not None and project.pyproject.has("tool.black"):
        return Verifier("format", f"{py} -m black --check .", "found `[tool.black]` in pyproject.toml")
    reason = project.signal("black", hooks=("black-jupyter",))
    return Verifier("format", f"{py} -m black --check .", reason) if reason else None


def _py_lint(project: _Python) -> Verifier | None:
    _, ruff = _ruff_config(project)
    if ruff:
        return Verifier("lint", f"{project.python} -m ruff check .", ruff)
    if (project.root / ".flake8").is_file():
        return Verifier("lint", f"{project.python} -m flake8", "found .flake8")
    where = project.ini_section("flake8")
    reason = f"found a `[flake8]` section in {where}" if where else project.signal("flake8")
    return Verifier("lint", f"{project.python} -m flake8", reason) if reason else None


def _py_types(project: _Python) -> Verifier | None:
    mypy = _mypy_config(project)
    if mypy:
        reason, has_files = mypy
        # With `files` configured, a bare `mypy` checks exactly those; `mypy .` would check more.
        return Verifier("types", f"{project.python} -m mypy" + ("" if has_files else " ."), reason)
    pyright = "pyrightconfig.json" if (project.root / "pyrightconfig.json").is_file() else None
    if pyright is None and project.pyproject is not None and project.pyproject.has("tool.pyright"):
        pyright = "`[tool.pyright]` in pyproject.toml"
    if pyright:
        # pip's `pyright` package puts its launcher in the virtualenv, npm's on PATH.
        command = ".venv/bin/pyright" if (project.root / ".venv" / "bin" / "pyright").exists() else "pyright"
        return Verifier("types", command, f"found {pyright}")
    return None


def _mypy_config(project: _Python) -> tuple[str, bool] | None:
    """The reason mypy is configured and whether its config lists `files`, in mypy's own lookup order."""
    for name in ("mypy.ini", ".mypy.ini"):
        parser = _ini(project.root, name)
        if parser is not None:
            return f"found {name}", parser.has_option("mypy", "files")
    if project.pyproject is not None and project.pyproject.has("tool.mypy"):
        return "found `[tool.mypy]` in pyproject.toml", bool(project.pyproject.get("tool.mypy.files"))
    if project.setup_cfg is not None and project.setup_cfg.has_section("mypy"):
        return "found a `[mypy]` section in setup.cfg", project.setup_cfg.has_option("mypy", "files")
    return None


def _py_test(project: _Python) -> Verifier | None:
    reason = _pytest_reason(project)
    return Verifier("test", f"{project.python} -m pytest -q", reason) if reason else None


def _pytest_reason(project: _Python) -> str | None:
    if project.pyproject is not None and project.pyproject.has("tool.pytest"):
        return "found `pytest` settings in pyproject.toml"
    if (project.root / "pytest.ini").is_file():
        return "found pytest.ini"
    for section, name in (("pytest", "tox.ini"), ("tool:pytest", "setup.cfg")):
        if project.ini_section(section, files=(name,)):
            return f"found a `[{section}]` section in {name}"
    for conftest in ("conftest.py", "tests/conftest.py", "test/conftest.py"):
        if (project.root / conftest).is_file():
            return f"found {conftest}"
    example = _python_test_file(project.root)
    return f"found Python test files such as `{example}`" if example else None


def _python_test_file(root: Path) -> str | None:
    """A `test_*.py` / `*_test.py` under tests/ or test/, looking at MAX_ENTRIES_SCANNED entries at most."""
    budget = MAX_ENTRIES_SCANNED
    folders = [root / name for name in ("tests", "test") if (root / name).is_dir()]
    while folders and budget > 0:
        folder = folders.pop(0)  # breadth first: test files sit near the top
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    budget -= 1
                    if budget < 0:
                        break
                    if entry.is_dir(follow_symlinks=False):
                        folders.append(Path(entry.path))
                    elif entry.name.endswith(".py") and (entry.name.startswith("test_") or
                                                         entry.name.endswith("_test.py")):
                        return Path(entry.path).relative_to(root).as_posix()
        except OSError:
            continue
    return None


def _pre_commit_hooks(root: Path) -> frozenset[str]:
    text = _read(root / ".pre-commit-config.yaml")
    if text is None:
        return frozenset()
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError:
        return frozenset(re.findall(r"^\s*-?\s*id:\s*['\"]?([\w.-]+)", text, re.M))
    repos = config.get("repos") if isinstance(config, dict) else None
    hooks = [hook for repo in repos if isinstance(repo, dict) for hook in repo.get("hooks") or []] \
        if isinstance(repos, list) else []
    return frozenset(str(hook["id"]) for hook in hooks if isinstance(hook, dict) and "id" in hook)


def _dev_packages(root: Path, pyproject: _Toml | None) -> dict[str, str]:
    """Packages the project lists for development, each with where it is listed."""
    found: dict[str, str] = {}
    for entry in _listed(root):
        if re.fullmatch(r"(.*[-_])?requirements([-_.].*)?\.(txt|in)", entry.name) and entry.is_file():
            _add_requirements(found, root / entry.name, entry.name)
    for entry in _listed(root / "requirements"):
        if entry.name.endswith((".txt", ".in")) and entry.is_file():
            _add_requirements(found, Path(entry.path), f"requirements/{entry.name}")
    if pyproject is not None and pyproject.data is not None:
        for requirement in _pyproject_dev_requirements(pyproject.data):
            found.setdefault(_package_name(requirement), "pyproject.toml's development dependencies")
    found.pop("", None)
    return found


def _add_requirements(found: dict[str, str], path: Path, shown: str) -> None:
    for line in (_read(path) or "").splitlines():
        found.setdefault(_package_name(line), shown)


def _pyproject_dev_requirements(data: dict[str, Any]) -> list[str]:
    """Requirement strings (or bare names) from the places Python tools keep development dependencies."""
    groups: list[Any] = []
    for dotted in ("project.optional-dependencies", "dependency-groups", "tool.pdm.dev-dependencies"):
        table = _get(data, dotted)
        groups += list(table.values()) if isinstance(table, dict) else []
    groups.append(_get(data, "tool.uv.dev-dependencies"))
    poetry = [_get(data, "tool.poetry.dev-dependencies")]
    poetry_groups = _get(data, "tool.poetry.group")
    poetry += [_get(g, "dependencies") for g in poetry_groups.values()] if isinstance(poetry_groups, dict) else []
    hatch = _get(data, "tool.hatch.envs")
    groups += [_get(env, "dependencies") for env in hatch.values()] if isinstance(hatch, dict) else []
    names = [item for group in groups if isinstance(group, list) for item in group if isinstance(item, str)]
    return names + [name for table in poetry if isinstance(table, dict) for name in table]


def _package_name(requirement: str) -> str:
    found = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    return re.sub(r"[-_.]+", "-", found.group(1)).lower() if found else ""


# JavaScript and TypeScript


def _javascript(root: Path) -> list[Verifier]:
    text = _read(root / "package.json")
    try:
        package = json.loads(text) if text is not None else None
    except ValueError:
        return []
    if not isinstance(package, dict):
        return []
    scripts = package.get("scripts")
    scripts = {k: v for k, v in scripts.items() if isinstance(v, str) and v.strip()} if isinstance(scripts, dict) \
        else {}
    manager, why = _package_manager(root, package)
    run = {"npm": "npm run --silent", "pnpm": "pnpm run", "yarn": "yarn run"}[manager]
    found: list[Verifier] = []
    if "format:check" in scripts:
        found.append(Verifier("format", f"{run} format:check", f"found a `format:check` script in package.json{why}"))
    if "lint" in scripts:
        found.append(Verifier("lint", f"{run} lint", f"found a `lint` script in package.json{why}"))
    types = _js_types(root, package, scripts, run, why)
    found += [types] if types else []
    test = scripts.get("test", "").strip()
    if test and test != NPM_DEFAULT_TEST and "no test specified" not in test:  # `npm init`'s test only fails
        found.append(Verifier("test", f"{manager} test", f"found a `test` script in package.json{why}"))
    return found


def _js_types(root: Path, package: dict[str, Any], scripts: dict[str, str], run: str, why: str) -> Verifier | None:
    script = next((name for name in ("typecheck", "type-check") if name in scripts), None)
    if script:
        return Verifier("types", f"{run} {script}", f"found a `{script}` script in package.json{why}")
    dependencies = [package.get(key) for key in ("devDependencies", "dependencies")]
    if (root / "tsconfig.json").is_file() and any(isinstance(d, dict) and "typescript" in d for d in dependencies):
        # The project's own compiler, never one npx would download; absent (not installed) it exits 127.
        return Verifier("types", "node_modules/.bin/tsc --noEmit", "found tsconfig.json and typescript in package.json")
    return None


def _package_manager(root: Path, package: dict[str, Any]) -> tuple[str, str]:
    """npm, pnpm or yarn, from the lockfile (else `packageManager`), and a reason suffix when not npm."""
    for lockfile, manager in (("pnpm-lock.yaml", "pnpm"), ("yarn.lock", "yarn")):
        if (root / lockfile).is_file():
            return manager, f" (run with {manager}: found {lockfile})"
    declared = package.get("packageManager")
    if isinstance(declared, str) and declared.split("@")[0] in ("pnpm", "yarn"):
        return declared.split("@")[0], f" (run with {declared.split('@')[0]}: `packageManager` in package.json)"
    return "npm", ""


# Go, Rust, Java


# `gofmt -l` lists unformatted files but exits 0; fail when it lists any. `|| exit` keeps a missing gofmt's 127
# (and a syntax error's 2) instead of passing with an empty list.
GOFMT = ('files="$(gofmt -l .)" || exit; test -z "$files" || '
         '{ echo "gofmt would reformat these files:"; echo "$files"; exit 1; }')


def _go(root: Path) -> list[Verifier]:
    if not (root / "go.mod").is_file():
        return []
    return [Verifier("format", GOFMT, "found go.mod (gofmt ships with Go)"),
            Verifier("lint", "go vet ./...", "found go.mod (go vet ships with Go)"),
            Verifier("test", "go test ./...", "found go.mod")]


def _rust(root: Path) -> list[Verifier]:
    if not (root / "Cargo.toml").is_file():
        return []
    # rustfmt and clippy are rustup components that may be absent; cargo then fails with its own error, so ask
    # first and answer 127, which makes a missing component a skip rather than a failure.
    fmt = "cargo fmt --version >/dev/null 2>&1 || exit 127; cargo fmt --all --check"
    clippy, reason = "cargo clippy --all-targets", "found Cargo.toml (clippy ships with Rust)"
    workflow = _clippy_denies_warnings(root)
    if workflow:
        # The repository's CI fails on warnings; so does this. Otherwise only errors and deny-level lints fail:
        # `-D warnings` on a newer toolchain than CI's would fail on lints that did not exist when CI passed.
        clippy, reason = f"{clippy} -- -D warnings", f"found Cargo.toml, and `clippy -D warnings` in {workflow}"
    return [Verifier("format", fmt, "found Cargo.toml (rustfmt ships with Rust)"),
            Verifier("lint", f"cargo clippy --version >/dev/null 2>&1 || exit 127; {clippy}", reason),
            Verifier("test", "cargo test", "found Cargo.toml")]


def _clippy_denies_warnings(root: Path) -> str | None:
    """The GitHub Actions workflow that runs clippy with warnings denied, if one does."""
    folder = root / ".github" / "workflows"
    for entry in sorted(_listed(folder), key=lambda e: e.name):
        if not entry.name.endswith((".yml", ".yaml")):
            continue
        text = _read(Path(entry.path)) or ""
        if "clippy" in text and re.search(r"-D\s*warnings|--deny[= ]warnings", text):
            return f".github/workflows/{entry.name}"
    return None


def _java(root: Path) -> list[Verifier]:
    if (root / "pom.xml").is_file():
        maven = "./mvnw" if _executable(root / "mvnw") else "mvn"
        return [Verifier("test", f"{maven} -q -B test", "found pom.xml" + (" and mvnw" if maven == "./mvnw" else ""))]
    gradle_file = next((n for n in ("build.gradle.kts", "build.gradle") if (root / n).is_file()), None)
    if gradle_file:
        gradle = "./gradlew" if _executable(root / "gradlew") else "gradle"
        return [Verifier("test", f"{gradle} test", f"found {gradle_file}" + (" and gradlew" if gradle != "gradle"
                                                                              else ""))]
    return []


# make


def _make(root: Path) -> list[Verifier]:
    """`make test` and `make lint` when the makefile GNU make would read has those targets."""
    for name in ("GNUmakefile", "makefile", "Makefile"):
        text = _read(root / name)
        if text is not None:
            return [Verifier(target, f"make {target}", f"found a `{target}` target in {name}")
                    for target in ("lint", "test") if _has_target(text, target)]
    return []


def _has_target(text: str, target: str) -> bool:
    # `test:` or `lint test: deps`, but not a variable such as `test := x` or `test ?= x`.
    pattern = rf"^(?:[^\s:#=]+[ \t]+)*{re.escape(target)}(?:[ \t]+[^\s:#=]+)*[ \t]*::?(?!=)"
    return re.search(pattern, text, re.M) is not None


# The order decides which ecosystem owns the plain names (see the module's docstring).
_ECOSYSTEMS: tuple[tuple[str, Callable[[Path], list[Verifier]]], ...] = (
    ("py-", _python), ("go-", _go), ("rust-", _rust), ("java-", _java), ("js-", _javascript))
