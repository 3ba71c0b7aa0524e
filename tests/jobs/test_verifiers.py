"""Verifiers: detection from build files, the rules that combine it with `.github/honk.yml`, and proof that the
detected commands work when run for real on small broken projects."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.checkout.extract import VerifierResult
from app.checkout.verify import Verifier
from app.jobs import verifiers as verifiers_module
from app.jobs.repo_config import parse_repo_config
from app.jobs.verifiers import GOFMT, NOTHING_DETECTED, detect_verifiers, verifiers_for

PY = "python3"
PYTEST = f"{PY} -m pytest -q"
RUFF = f"{PY} -m ruff check ."
CARGO_FMT = "cargo fmt --version >/dev/null 2>&1 || exit 127; cargo fmt --all --check"
DEV_RUFF = "found ruff in pyproject.toml's development dependencies"
BASH = shutil.which("bash") or "/bin/bash"  # by its path: some tests run commands with an empty PATH
CLIPPY = "cargo clippy --version >/dev/null 2>&1 || exit 127; cargo clippy --all-targets"


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def detected(root: Path, files: dict[str, str] | None = None) -> dict[str, str]:
    """name -> command of what is detected, in order."""
    return {v.name: v.command for v in detect_verifiers(write(root, files or {}))}


def reasons(root: Path, files: dict[str, str] | None = None) -> dict[str, str]:
    return {v.name: v.reason for v in detect_verifiers(write(root, files or {}))}


def package(scripts: dict[str, str] | None = None, **fields: object) -> str:
    return json.dumps({"name": "x", **({"scripts": scripts} if scripts is not None else {}), **fields})


# Python: pytest (the rules of the former test-command detection)


@pytest.mark.parametrize(("files", "reason"), [
    ({"pyproject.toml": "[project]\nname='x'\n[tool.pytest.ini_options]\naddopts='-q'\n"},
     "found `pytest` settings in pyproject.toml"),
    ({"pyproject.toml": "[project\nname='x'\n[tool.pytest.ini_options]\n"},  # broken TOML still says it
     "found `pytest` settings in pyproject.toml"),
    ({"pytest.ini": "[pytest]\n"}, "found pytest.ini"),
    ({"tox.ini": "[tox]\nenvlist=py3\n[pytest]\ntestpaths=tests\n"}, "found a `[pytest]` section in tox.ini"),
    ({"setup.cfg": "[metadata]\nname=x\n[tool:pytest]\naddopts=-q\n"},
     "found a `[tool:pytest]` section in setup.cfg"),
    ({"setup.cfg": "[metadata\n[tool:pytest]\n"}, "found a `[tool:pytest]` section in setup.cfg"),
    ({"conftest.py": ""}, "found conftest.py"),
    ({"test/conftest.py": ""}, "found test/conftest.py"),
    ({"tests/unit/test_things.py": "def test_x(): pass\n"},
     "found Python test files such as `tests/unit/test_things.py`"),
    ({"test/things_test.py": ""}, "found Python test files such as `test/things_test.py`"),
])
def test_pytest_is_detected(tmp_path: Path, files: dict[str, str], reason: str) -> None:
    assert detect_verifiers(write(tmp_path, files)) == [Verifier("test", PYTEST, reason)]


@pytest.mark.parametrize("files", [
    {"pyproject.toml": "[project]\nname='x'\n[tool.ruff]\nline-length=100\n"},
    {"tox.ini": "[tox]\nenvlist=py3\n"},
    {"setup.cfg": "[metadata]\nname=x\n"},
    {"tests/helpers.py": "", "tests/data/sample.json": "{}", "tests/test_data.txt": ""},
])
def test_python_files_without_pytest_signs_are_not_pytest(tmp_path: Path, files: dict[str, str]) -> None:
    assert "test" not in detected(tmp_path, files)


def test_the_test_file_search_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verifiers_module, "MAX_ENTRIES_SCANNED", 10)
    write(tmp_path, {f"tests/a/helper_{i}.py": "" for i in range(20)} | {"tests/z/deep/test_late.py": ""})
    assert detected(tmp_path) == {}
    monkeypatch.setattr(verifiers_module, "MAX_ENTRIES_SCANNED", 100)
    assert detected(tmp_path) == {"test": PYTEST}


def test_the_virtualenv_interpreter_is_used_when_setup_made_one(tmp_path: Path) -> None:
    write(tmp_path, {"pytest.ini": "", "pyproject.toml": "[tool.ruff]\n", ".venv/bin/python": ""})
    assert detected(tmp_path) == {"lint": ".venv/bin/python -m ruff check .", "test": ".venv/bin/python -m pytest -q"}
    (tmp_path / ".venv/bin/python").unlink()
    (tmp_path / ".venv/bin/python").symlink_to(tmp_path / "nowhere")  # a broken virtualenv is no interpreter
    assert detected(tmp_path) == {"lint": RUFF, "test": PYTEST}


# Python: ruff, black, flake8


@pytest.mark.parametrize(("files", "reason"), [
    ({"pyproject.toml": "[project]\nname='x'\n[tool.ruff]\nline-length=100\n"},
     "found `[tool.ruff]` in pyproject.toml"),
    ({"pyproject.toml": "[tool.ruff.lint]\nselect=['E']\n"}, "found `[tool.ruff]` in pyproject.toml"),
    ({"pyproject.toml": "[tool.ruff.lint\n"}, "found `[tool.ruff]` in pyproject.toml"),  # broken TOML still says it
    ({"ruff.toml": "line-length = 100\n"}, "found ruff.toml"),
    ({".ruff.toml": "", "ruff.toml": "", "pyproject.toml": "[tool.ruff]\n"}, "found .ruff.toml"),
    ({".pre-commit-config.yaml": "repos:\n- repo: https://github.com/astral-sh/ruff-pre-commit\n  rev: v0.5.0\n"
                                 "  hooks:\n  - id: ruff\n    args: [--fix]\n"},
     "found the `ruff` hook in .pre-commit-config.yaml"),
    ({".pre-commit-config.yaml": "repos:\n- repo: local\n  hooks:\n  - id: ruff-check\n  - id: ruff-format\n"},
     "found the `ruff-check` hook in .pre-commit-config.yaml"),
    ({".pre-commit-config.yaml": "repos: [\n  - id: ruff\n"}, "found the `ruff` hook in .pre-commit-config.yaml"),
    ({"requirements-dev.txt": "pytest==8\nRuff>=0.4 ; python_version >= '3.9'\n"},
     "found ruff in requirements-dev.txt"),
    ({"dev-requirements.in": "ruff\n"}, "found ruff in dev-requirements.in"),
    ({"requirements/lint.txt": "ruff==0.5.0\n"}, "found ruff in requirements/lint.txt"),
    ({"pyproject.toml": "[project]\nname='x'\n[project.optional-dependencies]\ndev=['ruff>=0.4', 'pytest']\n"},
     DEV_RUFF),
    ({"pyproject.toml": "[dependency-groups]\nlint=['ruff']\n"}, DEV_RUFF),
    ({"pyproject.toml": "[tool.poetry.group.dev.dependencies]\nruff='^0.5'\n"},
     DEV_RUFF),
    ({"pyproject.toml": "[tool.poetry.dev-dependencies]\nruff='^0.5'\n"},
     DEV_RUFF),
    ({"pyproject.toml": "[tool.uv]\ndev-dependencies=['ruff']\n"}, DEV_RUFF),
    ({"pyproject.toml": "[tool.pdm.dev-dependencies]\nlint=['ruff']\n"},
     DEV_RUFF),
    ({"pyproject.toml": "[tool.hatch.envs.lint]\ndependencies=['ruff']\n"},
     DEV_RUFF),
])
def test_ruff_lint_when_configured(tmp_path: Path, files: dict[str, str], reason: str) -> None:
    found = [v for v in detect_verifiers(write(tmp_path, files)) if v.name == "lint"]
    assert found == [Verifier("lint", RUFF, reason)]


@pytest.mark.parametrize("files", [
    {"pyproject.toml": "[project]\nname='x'\ndependencies=['ruff-lsp-client']\n"},
    {"requirements.txt": "ruffus\n"},
    {"pyproject.toml": "[project]\nname='ruff'\n"},
    {"README.md": "we use ruff\n"},
])
def test_ruff_is_not_guessed(tmp_path: Path, files: dict[str, str]) -> None:
    assert detected(tmp_path, files) == {}


@pytest.mark.parametrize(("files", "command", "reason"), [
    ({"pyproject.toml": "[tool.ruff]\n[tool.ruff.format]\nquote-style='single'\n"}, f"{PY} -m ruff format --check .",
     "found `[tool.ruff.format]` in pyproject.toml"),
    ({"ruff.toml": "[format]\nquote-style = 'single'\n"}, f"{PY} -m ruff format --check .",
     "found `[format]` in ruff.toml"),
    ({".pre-commit-config.yaml": "repos:\n- repo: x\n  hooks:\n  - id: ruff-format\n"},
     f"{PY} -m ruff format --check .", "found the `ruff-format` hook in .pre-commit-config.yaml"),
    ({"pyproject.toml": "[tool.ruff.format]\n[tool.black]\n"}, f"{PY} -m ruff format --check .",
     "found `[tool.ruff.format]` in pyproject.toml"),
    ({"pyproject.toml": "[tool.black]\nline-length=100\n"}, f"{PY} -m black --check .",
     "found `[tool.black]` in pyproject.toml"),
    ({"pyproject.toml": "[tool.ruff]\n[tool.black]\n"}, f"{PY} -m black --check .",
     "found `[tool.black]` in pyproject.toml"),
    ({".pre-commit-config.yaml": "repos:\n- repo: x\n  hooks:\n  - id: black-jupyter\n"}, f"{PY} -m black --check .",
     "found the `black-jupyter` hook in .pre-commit-config.yaml"),
    ({"requirements-dev.txt": "black==24.1\n"}, f"{PY} -m black --check .", "found black in requirements-dev.txt"),
])
def test_formatter(tmp_path: Path, files: dict[str, str], command: str, reason: str) -> None:
    assert [v for v in detect_verifiers(write(tmp_path, files)) if v.name == "format"] == [
        Verifier("format", command, reason)]


def test_ruff_without_format_settings_is_not_a_formatter(tmp_path: Path) -> None:
    assert detected(tmp_path, {"pyproject.toml": "[tool.ruff]\nline-length=100\n"}) == {"lint": RUFF}


@pytest.mark.parametrize(("files", "reason"), [
    ({".flake8": "[flake8]\nmax-line-length=100\n"}, "found .flake8"),
    ({"setup.cfg": "[metadata]\nname=x\n[flake8]\nignore=E501\n"}, "found a `[flake8]` section in setup.cfg"),
    ({"tox.ini": "[flake8]\nignore=E501\n"}, "found a `[flake8]` section in tox.ini"),
    ({".pre-commit-config.yaml": "repos:\n- repo: x\n  hooks:\n  - id: flake8\n"},
     "found the `flake8` hook in .pre-commit-config.yaml"),
])
def test_flake8_when_configured(tmp_path: Path, files: dict[str, str], reason: str) -> None:
    assert detect_verifiers(write(tmp_path, files)) == [Verifier("lint", f"{PY} -m flake8", reason)]


def test_ruff_wins_over_flake8(tmp_path: Path) -> None:
    assert detected(tmp_path, {".flake8": "[flake8]\n", "ruff.toml": ""}) == {"lint": RUFF}


# Python: mypy, pyright


@pytest.mark.parametrize(("files", "command", "reason"), [
    ({"mypy.ini": "[mypy]\nstrict = True\n"}, f"{PY} -m mypy .", "found mypy.ini"),
    ({".mypy.ini": "[mypy]\n"}, f"{PY} -m mypy .", "found .mypy.ini"),
    ({"mypy.ini": "[mypy]\nfiles = src, tests\n"}, f"{PY} -m mypy", "found mypy.ini"),
    ({"pyproject.toml": "[tool.mypy]\nstrict=true\n"}, f"{PY} -m mypy .", "found `[tool.mypy]` in pyproject.toml"),
    ({"pyproject.toml": "[tool.mypy]\nfiles=['src']\n"}, f"{PY} -m mypy", "found `[tool.mypy]` in pyproject.toml"),
    ({"setup.cfg": "[mypy]\nfiles = src\n"}, f"{PY} -m mypy", "found a `[mypy]` section in setup.cfg"),
    ({"setup.cfg": "[mypy]\n[mypy-requests.*]\nignore_missing_imports=True\n"}, f"{PY} -m mypy .",
     "found a `[mypy]` section in setup.cfg"),
    ({"mypy.ini": "[mypy]\n", "pyrightconfig.json": "{}"}, f"{PY} -m mypy .", "found mypy.ini"),
    ({"pyrightconfig.json": "{}"}, "pyright", "found pyrightconfig.json"),
    ({"pyproject.toml": "[tool.pyright]\nstrict=['src']\n"}, "pyright", "found `[tool.pyright]` in pyproject.toml"),
    ({"pyrightconfig.json": "{}", ".venv/bin/pyright": "", ".venv/bin/python": ""}, ".venv/bin/pyright",
     "found pyrightconfig.json"),
])
def test_type_checker(tmp_path: Path, files: dict[str, str], command: str, reason: str) -> None:
    assert detect_verifiers(write(tmp_path, files)) == [Verifier("types", command, reason)]


def test_mypy_in_dev_dependencies_alone_is_not_enough(tmp_path: Path) -> None:
    # Without its settings, which files mypy should check and how strictly is anyone's guess.
    assert detected(tmp_path, {"requirements-dev.txt": "mypy\n"}) == {}


def test_a_full_python_project_in_stage_order(tmp_path: Path) -> None:
    pyproject = ("[project]\nname='x'\n[tool.pytest.ini_options]\n[tool.mypy]\n[tool.ruff]\n"
                 "[tool.ruff.format]\n")
    assert detected(tmp_path, {"pyproject.toml": pyproject}) == {
        "format": f"{PY} -m ruff format --check .", "lint": RUFF, "types": f"{PY} -m mypy .", "test": PYTEST}


# JavaScript and TypeScript


def test_npm_scripts(tmp_path: Path) -> None:
    scripts = {"lint": "eslint .", "typecheck": "tsc -p .", "test": "vitest run", "format:check": "prettier -c ."}
    assert detected(tmp_path, {"package.json": package(scripts)}) == {
        "format": "npm run --silent format:check", "lint": "npm run --silent lint",
        "types": "npm run --silent typecheck", "test": "npm test"}
    assert reasons(tmp_path)["lint"] == "found a `lint` script in package.json"


def test_npm_needs_a_real_test_script(tmp_path: Path) -> None:
    write(tmp_path, {"package.json": package({"test": 'echo "Error: no test specified" && exit 1'})})
    assert detected(tmp_path) == {}
    write(tmp_path, {"package.json": package({"test": "vitest run"})})
    assert detect_verifiers(tmp_path) == [Verifier("test", "npm test", "found a `test` script in package.json")]


@pytest.mark.parametrize("text", ["{not json", '{"scripts": {"build": "tsc"}}', '{"scripts": {"test": ""}}',
                                  '{"scripts": {"test": "echo \\"Error: no test specified\\"; exit 1"}}',
                                  '{"scripts": ["test"]}', '{"scripts": {"lint": 3}}', "[]", "null"])
def test_package_json_without_usable_scripts(tmp_path: Path, text: str) -> None:
    assert detected(tmp_path, {"package.json": text}) == {}


def test_typescript_compiler_when_there_is_no_typecheck_script(tmp_path: Path) -> None:
    write(tmp_path, {"tsconfig.json": "{}", "package.json": package({}, devDependencies={"typescript": "^5"})})
    assert detect_verifiers(tmp_path) == [
        Verifier("types", "node_modules/.bin/tsc --noEmit", "found tsconfig.json and typescript in package.json")]
    write(tmp_path, {"package.json": package({"type-check": "vue-tsc"}, devDependencies={"typescript": "^5"})})
    assert detected(tmp_path) == {"types": "npm run --silent type-check"}


def test_no_compiler_without_typescript_or_tsconfig(tmp_path: Path) -> None:
    assert detected(tmp_path / "a", {"tsconfig.json": "{}", "package.json": package({})}) == {}
    assert detected(tmp_path / "b", {"package.json": package({}, dependencies={"typescript": "5"})}) == {}


@pytest.mark.parametrize(("files", "lint", "test", "why"), [
    ({"pnpm-lock.yaml": ""}, "pnpm run lint", "pnpm test", " (run with pnpm: found pnpm-lock.yaml)"),
    ({"yarn.lock": ""}, "yarn run lint", "yarn test", " (run with yarn: found yarn.lock)"),
    ({"package-lock.json": "{}"}, "npm run --silent lint", "npm test", ""),
])
def test_the_lockfile_picks_the_package_manager(tmp_path: Path, files: dict[str, str], lint: str, test: str,
                                                why: str) -> None:
    files["package.json"] = package({"lint": "eslint .", "test": "jest"})
    assert detect_verifiers(write(tmp_path, files)) == [
        Verifier("lint", lint, f"found a `lint` script in package.json{why}"),
        Verifier("test", test, f"found a `test` script in package.json{why}")]


def test_package_manager_field_without_a_lockfile(tmp_path: Path) -> None:
    write(tmp_path, {"package.json": package({"test": "jest"}, packageManager="pnpm@9.1.0")})
    assert detect_verifiers(tmp_path) == [
        Verifier("test", "pnpm test", "found a `test` script in package.json (run with pnpm: `packageManager` in "
                                      "package.json)")]


# Go, Rust, Java


def test_go(tmp_path: Path) -> None:
    assert detect_verifiers(write(tmp_path, {"go.mod": "module x\n"})) == [
        Verifier("format", GOFMT, "found go.mod (gofmt ships with Go)"),
        Verifier("lint", "go vet ./...", "found go.mod (go vet ships with Go)"),
        Verifier("test", "go test ./...", "found go.mod")]


def test_rust(tmp_path: Path) -> None:
    assert detect_verifiers(write(tmp_path, {"Cargo.toml": "[package]\nname='x'\n"})) == [
        Verifier("format", CARGO_FMT, "found Cargo.toml (rustfmt ships with Rust)"),
        Verifier("lint", CLIPPY, "found Cargo.toml (clippy ships with Rust)"),
        Verifier("test", "cargo test", "found Cargo.toml")]


@pytest.mark.parametrize("line", ["cargo clippy --all-targets -- -D warnings", "cargo clippy -- --deny warnings",
                                  "cargo clippy\n    env:\n      RUSTFLAGS: -Dwarnings"])
def test_clippy_denies_warnings_when_ci_does(tmp_path: Path, line: str) -> None:
    write(tmp_path, {"Cargo.toml": "", ".github/workflows/ci.yml": f"jobs:\n  lint:\n    steps:\n      - run: {line}\n",
                     ".github/workflows/release.yml": "jobs: {}\n"})
    lint = next(v for v in detect_verifiers(tmp_path) if v.name == "lint")
    assert lint == Verifier("lint", f"{CLIPPY} -- -D warnings",
                            "found Cargo.toml, and `clippy -D warnings` in .github/workflows/ci.yml")


def test_clippy_warnings_in_ci_without_deny_stay_warnings(tmp_path: Path) -> None:
    write(tmp_path, {"Cargo.toml": "", ".github/workflows/ci.yml": "steps:\n  - run: cargo clippy\n"})
    assert detected(tmp_path)["lint"] == CLIPPY


def test_maven(tmp_path: Path) -> None:
    write(tmp_path, {"pom.xml": "<project/>"})
    assert detect_verifiers(tmp_path) == [Verifier("test", "mvn -q -B test", "found pom.xml")]
    write(tmp_path, {"mvnw": "#!/bin/sh\n"})
    assert detected(tmp_path) == {"test": "mvn -q -B test"}  # a wrapper that cannot run is no wrapper
    (tmp_path / "mvnw").chmod(0o755)
    assert detect_verifiers(tmp_path) == [Verifier("test", "./mvnw -q -B test", "found pom.xml and mvnw")]


@pytest.mark.parametrize("build", ["build.gradle", "build.gradle.kts"])
def test_gradle(tmp_path: Path, build: str) -> None:
    write(tmp_path, {build: ""})
    assert detect_verifiers(tmp_path) == [Verifier("test", "gradle test", f"found {build}")]
    write(tmp_path, {"gradlew": "#!/bin/sh\n"})
    (tmp_path / "gradlew").chmod(0o755)
    assert detect_verifiers(tmp_path) == [Verifier("test", "./gradlew test", f"found {build} and gradlew")]


def test_maven_before_gradle(tmp_path: Path) -> None:
    assert detected(tmp_path, {"pom.xml": "", "build.gradle": ""}) == {"test": "mvn -q -B test"}


# make


@pytest.mark.parametrize("name", ["Makefile", "makefile", "GNUmakefile"])
def test_make_targets(tmp_path: Path, name: str) -> None:
    write(tmp_path, {name: ".PHONY: test lint\nbuild:\n\tcc x.c\n\ntest: build\n\t./run-tests\n"
                           "lint:\n\tshellcheck *.sh\n"})
    assert detect_verifiers(tmp_path) == [Verifier("lint", "make lint", f"found a `lint` target in {name}"),
                                          Verifier("test", "make test", f"found a `test` target in {name}")]


def test_make_reads_the_first_makefile_only(tmp_path: Path) -> None:
    # GNU make reads GNUmakefile before Makefile; a target only in Makefile never runs with a bare `make test`.
    assert detected(tmp_path, {"GNUmakefile": "all:\n\ttrue\n", "Makefile": "test:\n\ttrue\n"}) == {}


@pytest.mark.parametrize("makefile", ["lint test: deps\n\ttrue\n", "test::\n\ttrue\n", "test :\n\ttrue\n"])
def test_make_target_forms(tmp_path: Path, makefile: str) -> None:
    assert detected(tmp_path, {"Makefile": makefile})["test"] == "make test"


@pytest.mark.parametrize("makefile", ["test := unit\nall:\n\ttrue\n", "test ?= x\n", ".PHONY: test\n",
                                      "tests:\n\ttrue\n", "# test: not really\n", "integration-test:\n\ttrue\n",
                                      "lint-test:\n\ttrue\n"])
def test_makefile_without_a_test_target(tmp_path: Path, makefile: str) -> None:
    assert "test" not in detected(tmp_path, {"Makefile": makefile})


# Several ecosystems in one repository


def test_make_takes_the_plain_names_over_the_first_ecosystem(tmp_path: Path) -> None:
    files = {"pyproject.toml": "[tool.ruff]\n[tool.mypy]\n", "pytest.ini": "", "Makefile": "test:\n\ttox\n"}
    assert detected(tmp_path, files) == {"lint": RUFF, "types": f"{PY} -m mypy .", "test": "make test"}
    write(tmp_path, {"Makefile": "lint:\n\tpre-commit run -a\n"})
    assert detected(tmp_path) == {"lint": "make lint", "types": f"{PY} -m mypy .", "test": PYTEST}


def test_make_slots_into_stage_order(tmp_path: Path) -> None:
    files = {"pyproject.toml": "[tool.ruff.format]\n[tool.mypy]\n", "Makefile": "lint:\n\ttrue\n"}
    assert list(detected(tmp_path, files)) == ["format", "lint", "types"]


def test_later_ecosystems_are_prefixed(tmp_path: Path) -> None:
    files = {"pyproject.toml": "[tool.ruff]\n", "pytest.ini": "", "go.mod": "module x\n", "Cargo.toml": "",
             "pom.xml": "", "package.json": package({"lint": "eslint .", "test": "jest"})}
    assert list(detected(tmp_path, files)) == [
        "lint", "test", "go-format", "go-lint", "go-test", "rust-format", "rust-lint", "rust-test", "java-test",
        "js-lint", "js-test"]


def test_javascript_comes_after_another_language(tmp_path: Path) -> None:
    files = {"go.mod": "module x\n", "package.json": package({"test": "jest"})}
    assert detected(tmp_path, files) == {"format": GOFMT, "lint": "go vet ./...", "test": "go test ./...",
                                         "js-test": "npm test"}


def test_an_ecosystem_with_nothing_to_run_does_not_take_the_plain_names(tmp_path: Path) -> None:
    files = {"pyproject.toml": "[project]\nname='x'\n", "package.json": package({"lint": "eslint ."})}
    assert detected(tmp_path, files) == {"lint": "npm run --silent lint"}


def test_make_test_leaves_later_ecosystems_alone(tmp_path: Path) -> None:
    files = {"pytest.ini": "", "package.json": package({"test": "jest"}), "Makefile": "test:\n\ttox\n"}
    assert detected(tmp_path, files) == {"test": "make test", "js-test": "npm test"}


def test_nothing_to_detect(tmp_path: Path) -> None:
    assert detect_verifiers(write(tmp_path, {"README.md": "hello\n", "main.py": "print(1)\n"})) == []


def test_detection_executes_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    write(tmp_path, {"Makefile": f"test:\n\ttouch {marker}\n",
                     "package.json": package({"test": f"touch {marker}", "lint": f"touch {marker}"}),
                     "conftest.py": f"open({str(marker)!r}, 'w')\n", "setup.py": f"open({str(marker)!r}, 'w')\n"})
    assert detect_verifiers(tmp_path)
    assert not marker.exists()


def test_detected_names_are_valid_verifier_names(tmp_path: Path) -> None:
    files = {"pytest.ini": "", "go.mod": "", "Cargo.toml": "", "pom.xml": "", "package.json": package({"lint": "x"})}
    names = [v.name for v in detect_verifiers(write(tmp_path, files))]
    config = parse_repo_config("verify:\n" + "".join(f"  {name}: 'true'\n" for name in names))
    assert config.verify is not None and list(config.verify) == names
    assert not any(v.declared for v in detect_verifiers(tmp_path))


# verifiers_for: `.github/honk.yml` first


def test_declared_verifiers_are_exactly_those(tmp_path: Path) -> None:
    write(tmp_path, {"pyproject.toml": "[tool.ruff]\n", "pytest.ini": ""})
    config = parse_repo_config("verify:\n  types: mypy src\n  lint: ruff check src\n")
    assert verifiers_for(config, tmp_path) == ([
        Verifier("types", "mypy src", "from `.github/honk.yml`", declared=True),
        Verifier("lint", "ruff check src", "from `.github/honk.yml`", declared=True)], "from `.github/honk.yml`")


def test_declared_verifiers_and_the_old_test_key(tmp_path: Path) -> None:
    config = parse_repo_config("test: make check\nverify:\n  lint: ruff check .\n")
    assert verifiers_for(config, tmp_path) == ([
        Verifier("lint", "ruff check .", "from `.github/honk.yml`", declared=True),
        Verifier("test", "make check", "from `.github/honk.yml`", declared=True)], "from `.github/honk.yml`")


def test_an_empty_verify_map_runs_nothing(tmp_path: Path) -> None:
    write(tmp_path, {"pytest.ini": ""})
    assert verifiers_for(parse_repo_config("verify: {}\n"), tmp_path) == (
        [], "`verify:` in `.github/honk.yml` lists no verifiers")
    assert verifiers_for(parse_repo_config("verify:\n"), tmp_path)[0] == [Verifier("test", PYTEST, "found pytest.ini")]


def test_the_old_test_key_replaces_the_detected_test(tmp_path: Path) -> None:
    write(tmp_path, {"pyproject.toml": "[tool.ruff]\n[tool.mypy]\n", "pytest.ini": "",
                     "package.json": package({"test": "jest"})})
    verifiers, reason = verifiers_for(parse_repo_config("test: tox -e py\n"), tmp_path)
    assert verifiers == [Verifier("lint", RUFF, "found `[tool.ruff]` in pyproject.toml"),
                         Verifier("types", f"{PY} -m mypy .", "found `[tool.mypy]` in pyproject.toml"),
                         Verifier("test", "tox -e py", "from `.github/honk.yml`", declared=True),
                         Verifier("js-test", "npm test", "found a `test` script in package.json")]
    assert reason == "`test` from `.github/honk.yml`, the others detected from the repository's files"


def test_the_old_test_key_is_added_in_its_place_when_nothing_was_detected_for_it(tmp_path: Path) -> None:
    write(tmp_path, {"pyproject.toml": "[tool.ruff]\n", "package.json": package({"lint": "eslint ."})})
    verifiers, _ = verifiers_for(parse_repo_config("test: ./run-tests\n"), tmp_path)
    assert [v.name for v in verifiers] == ["lint", "test", "js-lint"]
    assert verifiers_for(parse_repo_config("test: ./run-tests\n"), tmp_path / "nothing")[0] == [
        Verifier("test", "./run-tests", "from `.github/honk.yml`", declared=True)]


def test_detected_when_nothing_is_declared(tmp_path: Path) -> None:
    assert verifiers_for(parse_repo_config(None), tmp_path) == ([], NOTHING_DETECTED)
    assert "none detected" in NOTHING_DETECTED and "make" in NOTHING_DETECTED
    write(tmp_path, {"go.mod": ""})
    verifiers, reason = verifiers_for(parse_repo_config(None), tmp_path)
    assert [v.name for v in verifiers] == ["format", "lint", "test"]
    assert reason == "detected from the repository's files"


# The detected commands work: run for real on small broken projects


def run(command: str, cwd: Path, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": path} if path is not None else None
    return subprocess.run([BASH, "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def python_project(tmp_path: Path) -> Path:
    """A project with ruff, ruff format, mypy and pytest configured; its `.venv/bin/python` is the Python running
    these tests (which has ruff, mypy and pytest), as if setup had made a virtualenv."""
    write(tmp_path, {
        "pyproject.toml": "[project]\nname = 'demo'\nversion = '0'\n\n[tool.ruff]\nline-length = 100\n\n"
                          "[tool.ruff.format]\n\n[tool.mypy]\n\n[tool.pytest.ini_options]\ntestpaths = ['tests']\n",
        "demo.py": "import os\n\n\ndef double(x: int) -> int:\n    return x * 2\n",
        "tests/test_demo.py": "from demo import double\n\n\ndef test_double() -> None:\n    assert double(2) == 5\n",
    })
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    return tmp_path


def test_detected_python_commands_run(python_project: Path) -> None:
    found = detected(python_project)
    assert found == {"format": ".venv/bin/python -m ruff format --check .", "lint": ".venv/bin/python -m ruff check .",
                     "types": ".venv/bin/python -m mypy .", "test": ".venv/bin/python -m pytest -q"}

    lint = run(found["lint"], python_project)
    assert lint.returncode == 1 and "demo.py:1:8" in lint.stdout and "F401" in lint.stdout
    test = run(found["test"], python_project)
    assert test.returncode == 1 and "FAILED tests/test_demo.py::test_double" in test.stdout

    write(python_project, {"demo.py": "def double(x: int) -> int:\n    return x * 2\n\n\nvalue: str = double(1)\n",
                           "tests/test_demo.py": "from demo import double\n\n\ndef test_double() -> None:\n"
                                                 "    assert double(2) == 4\n"})
    assert run(found["lint"], python_project).returncode == 0
    assert run(found["test"], python_project).returncode == 0
    types = run(found["types"], python_project)
    assert types.returncode == 1 and "demo.py:5: error" in types.stdout, types.stdout + types.stderr

    write(python_project, {"demo.py": "def double(x: int) -> int:\n    return x*2\n"})
    fmt = run(found["format"], python_project)
    assert fmt.returncode == 1 and "demo.py" in fmt.stdout
    write(python_project, {"demo.py": "def double(x: int) -> int:\n    return x * 2\n"})
    assert run(found["format"], python_project).returncode == 0
    assert run(found["types"], python_project).returncode == 0


def test_a_python_tool_that_is_not_installed_says_so(tmp_path: Path) -> None:
    # What `Verifier.missing_tool` looks for to skip a detected verifier: "No module named X" for `-m X`.
    if importlib.util.find_spec("black") is not None:
        pytest.skip("black is installed here; this test needs a configured tool that is not")
    write(tmp_path, {"pyproject.toml": "[tool.black]\n",
                     ".venv/bin/python": f'#!/bin/sh\nexec {sys.executable} "$@"\n'})
    (tmp_path / ".venv/bin/python").chmod(0o755)
    verifier = detect_verifiers(tmp_path)[0]
    done = run(verifier.command, tmp_path)
    assert done.returncode == 1 and "No module named black" in done.stderr
    assert verifier.missing_tool(VerifierResult(verifier.name, verifier.command, done.returncode, done.stderr))


def test_gofmt_command(tmp_path: Path) -> None:
    go = shutil.which("go")
    gofmt = shutil.which("gofmt")
    if not go or not gofmt:
        pytest.skip(f"go is not installed: go={go}, gofmt={gofmt} on PATH={os.environ.get('PATH')}")
    write(tmp_path, {"go.mod": "module demo\n\ngo 1.21\n", "main.go": "package main\nfunc main(){\n}\n"})
    found = detected(tmp_path)
    done = run(found["format"], tmp_path)
    assert done.returncode == 1 and "main.go" in done.stdout
    write(tmp_path, {"main.go": "package main\n\nfunc main() {\n}\n"})
    assert run(found["format"], tmp_path).returncode == 0
    assert run(found["lint"], tmp_path).returncode == 0


def test_gofmt_command_without_go_is_a_missing_tool(tmp_path: Path) -> None:
    write(tmp_path, {"go.mod": "module demo\n", "main.go": "package main\nfunc main(){\n}\n"})
    assert run(GOFMT, tmp_path, path=str(tmp_path / "empty-bin")).returncode == 127


def cargo_or_skip() -> str:
    cargo = shutil.which("cargo")
    if not cargo:
        pytest.skip(f"cargo is not installed (PATH={os.environ.get('PATH')})")
    return cargo


@pytest.fixture
def crate(tmp_path: Path) -> Path:
    return write(tmp_path, {"Cargo.toml": "[package]\nname = \"demo\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
                            "src/main.rs": "fn main(){println!(\"hi\");}\n"})


def test_cargo_fmt_command(crate: Path) -> None:
    cargo_or_skip()
    if run("cargo fmt --version", crate).returncode != 0:
        pytest.skip("rustfmt is not installed for this toolchain")
    found = detected(crate)
    done = run(found["format"], crate)
    assert done.returncode == 1 and "src/main.rs" in done.stdout, done.stdout + done.stderr
    write(crate, {"src/main.rs": "fn main() {\n    println!(\"hi\");\n}\n"})
    assert run(found["format"], crate).returncode == 0


def test_cargo_clippy_command(crate: Path) -> None:
    cargo_or_skip()
    if run("cargo clippy --version", crate).returncode != 0:
        pytest.skip("clippy is not installed for this toolchain")
    write(crate, {"src/main.rs": "fn main() {\n    let unused = 1;\n}\n"})
    lint = detected(crate)["lint"]
    warned = run(lint, crate)
    assert warned.returncode == 0 and "unused" in warned.stderr  # warnings alone do not fail it
    write(crate, {".github/workflows/ci.yml": "steps:\n  - run: cargo clippy -- -D warnings\n"})
    denied = detected(crate)["lint"]
    done = run(denied, crate)
    assert done.returncode != 0 and "src/main.rs:2" in done.stderr, done.stderr


def test_cargo_commands_without_cargo_are_missing_tools(crate: Path) -> None:
    found = detected(crate)
    for name in ("format", "lint"):
        assert run(found[name], crate, path=str(crate / "empty-bin")).returncode == 127


def test_npm_commands(tmp_path: Path) -> None:
    if not shutil.which("npm"):
        pytest.skip(f"npm is not installed (PATH={os.environ.get('PATH')})")
    write(tmp_path, {"tsconfig.json": "{}", "package.json": package(
        {"lint": "node -e \"console.error('src/a.js:3:1 error no-undef'); process.exit(2)\"", "test": "eslint-x ."},
        devDependencies={"typescript": "^5"})})
    found = detected(tmp_path)
    lint = run(found["lint"], tmp_path)
    assert lint.returncode == 2 and "src/a.js:3:1" in lint.stderr and "npm" not in lint.stdout + lint.stderr
    assert run(found["test"], tmp_path).returncode == 127  # a script's tool that is not installed: a missing tool
    assert run(found["types"], tmp_path).returncode == 127  # typescript not installed: a missing tool, not a failure
