"""Failure extraction and the verify verdict, on the real output of real tools run on small broken projects.

Each tool runs here on a project written to tmp_path; tools this machine lacks (go, tsc, jest, ...) skip with
the reason. Hand-written samples cover formats no tool here prints (vitest, eslint, gradle, pyright) and are
extra cases, not stand-ins. What is asserted is what the model reading the verdict would notice: every failing
test's id, file:line, the assertion, none of the passing noise, and the size bound with its cut note.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.checkout.extract import Extract, VerifierResult, extract, verdict


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return root


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> tuple[str, int]:
    """The command's stdout and stderr as a verifier sees them, and its exit code."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")} | (env or {})
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=environ)
    return proc.stdout + proc.stderr, proc.returncode


def failed(command: list[str], cwd: Path, name: str = "test", *, limit: int = 4000,
           env: dict[str, str] | None = None) -> tuple[Extract, str, str]:
    """Run a command that must fail; its extract, its verdict and its raw output."""
    output, code = run(command, cwd, env)
    assert code != 0, output
    line = " ".join(command)
    found = extract(output, line, code, root=str(cwd))
    text = verdict([VerifierResult(name, line, code, output, 1.0, root=str(cwd))], limit)
    assert len(text) <= limit
    return found, text, output


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed on this machine: its real output is not tested here")
    return path


# ---------------------------------------------------------------------------------------------------------------
# pytest

CALC = """
    def add(a, b):
        return a + b


    def divide(a, b):
        return a / b
    """

CALC_TESTS = """
    import pytest

    from calc import add, divide


    def test_adds():
        assert add(1, 2) == 3


    def test_sum_is_off():
        total = add(1, 2)
        assert total == 4, "sum is off"


    class TestDivide:
        def test_by_zero_is_none(self):
            print("NOISE-FROM-A-FAILING-TEST")
            assert divide(1, 0) is None


    @pytest.mark.parametrize("n", [1, 2, 3])
    def test_small(n):
        assert n < 3


    def test_dicts():
        assert {"a": 1, "b": 2} == {"a": 1, "b": 3}
    """


def pytest_project(root: Path, extra: dict[str, str] | None = None) -> Path:
    files = {"pytest.ini": "[pytest]\n", "calc.py": CALC, "tests/test_calc.py": CALC_TESTS}
    return write(root, files | (extra or {}))


FAILING = ["tests/test_calc.py::test_sum_is_off", "tests/test_calc.py::TestDivide::test_by_zero_is_none",
           "tests/test_calc.py::test_small[3]", "tests/test_calc.py::test_dicts"]


@pytest.mark.parametrize("flags", [["-q"], ["-v"], ["--tb=short"], ["--tb=line"], ["--tb=native"], ["-q", "-rN"]])
def test_pytest_every_failing_id_with_its_place_and_assertion(tmp_path: Path, flags: list[str]) -> None:
    pytest_project(tmp_path)
    found, text, raw = failed([sys.executable, "-m", "pytest", *flags, "-p", "no:cacheprovider"], tmp_path)
    assert found.parser == "pytest"
    assert list(found.failing_tests) == FAILING
    for test_id in FAILING:
        assert test_id in text
    assert "(line 12): AssertionError: sum is off" in text
    assert "assert 3 == 4" in text or flags == ["--tb=line"]  # one line per failure is all that prints
    assert "ZeroDivisionError: division by zero" in text
    assert "calc.py:6" in text  # where the exception was raised, in the project's code
    assert "4 failed, 3 passed" in text
    # The passing tests, the progress and the captured output are not what the model needs.
    assert "test_adds" not in text and "PASSED" not in text and "NOISE-FROM-A-FAILING-TEST" not in text
    assert str(tmp_path) not in text
    assert len(text) < len(raw) or flags == ["-q"]


def test_pytest_collection_error_names_the_module_and_the_import(tmp_path: Path) -> None:
    pytest_project(tmp_path, {"tests/test_broken.py": "import not_a_module\n"})
    found, text, _ = failed([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], tmp_path)
    assert "tests/test_broken.py (line 1): ModuleNotFoundError: No module named 'not_a_module'" in text
    assert "exited 2 (interrupted)" in text
    assert found.failing_tests == ("tests/test_broken.py",)


def test_pytest_no_tests_collected_says_so(tmp_path: Path) -> None:
    write(tmp_path, {"pytest.ini": "[pytest]\n", "tests/test_none.py": "x = 1\n"})
    _, text, _ = failed([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], tmp_path)
    assert "exited 5 (no tests were collected)" in text


# ---------------------------------------------------------------------------------------------------------------
# unittest and plain Python tracebacks

UNITTEST = """
    import unittest


    def parse(text):
        if not text:
            raise ValueError("empty input")
        return int(text)


    class ParseTest(unittest.TestCase):
        def test_number(self):
            self.assertEqual(parse("2"), 2)

        def test_wrong(self):
            self.assertEqual(parse("2"), 3)

        def test_empty(self):
            parse("")

        def test_rows(self):
            for row in range(3):
                with self.subTest(row=row):
                    self.assertLess(row, 2)
    """


def test_unittest_ids_last_own_frame_and_assertion(tmp_path: Path) -> None:
    write(tmp_path, {"pkg/__init__.py": "", "pkg/test_parse.py": UNITTEST, "pkg/test_gone.py": "import gone\n"})
    found, text, _ = failed([sys.executable, "-m", "unittest"], tmp_path)
    assert found.parser == "unittest"
    assert set(found.failing_tests) == {"pkg.test_gone", "pkg.test_parse.ParseTest.test_wrong",
                                        "pkg.test_parse.ParseTest.test_empty",
                                        "pkg.test_parse.ParseTest.test_rows (row=2)"}
    assert "pkg.test_parse.ParseTest.test_wrong at pkg/test_parse.py:15: AssertionError: 2 != 3" in text
    # An error raised below the test: the raising line is the location, the test's call is context.
    assert "pkg.test_parse.ParseTest.test_empty at pkg/test_parse.py:6: ValueError: empty input" in text
    assert "pkg/test_parse.py:18 in test_empty" in text
    assert "pkg.test_gone at pkg/test_gone.py:1: ModuleNotFoundError: No module named 'gone'" in text
    assert "unittest/loader.py" not in text and "test_number" not in text
    assert "FAILED (failures=2, errors=2)" in text


def test_a_script_that_dies_shows_its_last_own_frame_and_exception(tmp_path: Path) -> None:
    write(tmp_path, {"tool.py": """
        import json

        def load(text):
            try:
                return json.loads(text)
            except ValueError as exc:
                raise RuntimeError("config is not JSON") from exc

        load("{")
        """})
    found, text, _ = failed([sys.executable, "tool.py"], tmp_path, "check")
    assert found.parser == "traceback"
    assert "tool.py:7: RuntimeError: config is not JSON" in text
    assert "json/decoder.py" not in text


# ---------------------------------------------------------------------------------------------------------------
# Linters and type checkers

LINTED = """
    import os
    import sys

    def f(x: int) -> str:
        unused = 1
        return x

    def g() -> None:
        print(undefined_name)
    """


@pytest.mark.parametrize("style", [[], ["--output-format=concise"]])
def test_ruff_every_diagnostic_at_its_place(tmp_path: Path, style: list[str]) -> None:
    write(tmp_path, {"src/a.py": LINTED})
    ruff = str(Path(sys.executable).with_name("ruff"))
    found, text, _ = failed([ruff, "check", "--no-cache", "--select", "F", *style, "."], tmp_path, "lint")
    assert len(found.failures) == 4
    for where, code in [("src/a.py:1:8", "F401"), ("src/a.py:2:8", "F401"), ("src/a.py:5:5", "F841"),
                        ("src/a.py:9:11", "F821")]:
        assert f"{where}: {code}" in text
    assert "Undefined name `undefined_name`" in text


def test_ruff_format_names_the_file(tmp_path: Path) -> None:
    write(tmp_path, {"src/a.py": LINTED})
    ruff = str(Path(sys.executable).with_name("ruff"))
    _, text, _ = failed([ruff, "format", "--no-cache", "--check", "."], tmp_path, "format")
    assert "src/a.py" in text and "would be reformatted" in text


def test_mypy_errors_with_their_codes(tmp_path: Path) -> None:
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed in this environment (pip install mypy)")
    write(tmp_path, {"src/a.py": LINTED})
    for pretty in ([], ["--pretty"]):
        found, text, _ = failed([sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir", os.devnull,
                                 *pretty, "src"], tmp_path, "types")
        assert found.parser == "diagnostics"
        assert 'src/a.py:6: Incompatible return value type (got "int", expected "str")' in text
        assert 'src/a.py:9: Name "undefined_name" is not defined' in text
        assert "Found 2 errors in 1 file" in text


# ---------------------------------------------------------------------------------------------------------------
# Rust: cargo test, cargo build, cargo clippy

CARGO_TOML = """
    [package]
    name = "demo"
    version = "0.1.0"
    edition = "2021"
    """


def cargo(tmp_path: Path, sub: list[str], source: str, name: str = "lib.rs") -> tuple[Extract, str, str]:
    need("cargo")
    write(tmp_path, {"Cargo.toml": CARGO_TOML, f"src/{name}": source})
    env = {"CARGO_TARGET_DIR": str(tmp_path / "target"), "RUST_BACKTRACE": "1", "CARGO_TERM_COLOR": "never"}
    return failed(["cargo", sub[0], "--offline", *sub[1:]], tmp_path, env=env)


@pytest.mark.slow  # compiles a crate
def test_cargo_test_names_failing_tests_with_the_panic(tmp_path: Path) -> None:
    found, text, raw = cargo(tmp_path, ["test"], """
        pub fn add(a: i32, b: i32) -> i32 {
            a + b
        }

        #[cfg(test)]
        mod tests {
            use super::*;

            #[test]
            fn adds() {
                assert_eq!(add(1, 2), 3);
            }

            #[test]
            fn sum_is_off() {
                assert_eq!(add(1, 2), 4, "sum is off");
            }

            #[test]
            fn out_of_bounds() {
                let v: Vec<i32> = vec![];
                let _ = v[3];
            }
        }
        """)
    assert found.parser == "cargo-test"
    assert set(found.failing_tests) == {"tests::sum_is_off", "tests::out_of_bounds"}
    assert "tests::sum_is_off at src/lib.rs:16:9: assertion `left == right` failed: sum is off" in text
    assert "left: 3" in text and "right: 4" in text
    assert "tests::out_of_bounds at src/lib.rs:22:" in text and "index out of bounds" in text
    assert "stack backtrace" in raw and "stack backtrace" not in text and "/rustc/" not in text
    assert "tests::adds" not in text
    assert "FAILED. 1 passed; 2 failed" in text


@pytest.mark.slow
def test_cargo_build_errors_with_code_and_place(tmp_path: Path) -> None:
    found, text, _ = cargo(tmp_path, ["build"], """
        fn main() {
            let x: i32 = "hello";
            println!("{}", y);
        }
        """, "main.rs")
    assert found.parser == "compiler"
    assert "src/main.rs:2:18: error[E0308]: mismatched types" in text
    assert "src/main.rs:3:20: error[E0425]: cannot find value `y` in this scope" in text
    assert "warning" not in text  # the unused variable's warning did not fail the build


@pytest.mark.slow
def test_cargo_clippy_denied_lints(tmp_path: Path) -> None:
    need("cargo-clippy")
    _, text, _ = cargo(tmp_path, ["clippy", "-q", "--", "-D", "warnings"], """
        pub fn f(v: &Vec<i32>) -> usize {
            if v.len() == 0 { return 0; }
            return v.len();
        }
        """)
    assert "src/lib.rs:3:5: error: unneeded `return` statement" in text
    assert "src/lib.rs:2:8: error: length comparison to zero" in text
    assert "for further information visit" not in text


# ---------------------------------------------------------------------------------------------------------------
# The JVM: javac, maven with surefire

def test_javac_errors_with_place_and_symbol(tmp_path: Path) -> None:
    need("javac")
    write(tmp_path, {"src/A.java": """
        public class A {
            public static void main(String[] args) {
                int x = "hello";
                System.out.println(y);
            }
        }
        """})
    found, text, _ = failed(["javac", "-d", "out", "src/A.java"], tmp_path, "build")
    assert found.parser == "diagnostics"
    assert "src/A.java:3: incompatible types: String cannot be converted to int" in text
    assert "src/A.java:4: cannot find symbol" in text and "symbol:   variable y" in text


POM = """
    <project xmlns="http://maven.apache.org/POM/4.0.0">
      <modelVersion>4.0.0</modelVersion>
      <groupId>demo</groupId>
      <artifactId>demo</artifactId>
      <version>1.0</version>
      <properties>
        <maven.compiler.release>17</maven.compiler.release>
        <project.build.sourceEncoding>UTF-8</project.build.sourceEncoding>
      </properties>
      <dependencies>
        <dependency>
          <groupId>org.junit.jupiter</groupId><artifactId>junit-jupiter</artifactId><version>5.10.2</version>
          <scope>test</scope>
        </dependency>
      </dependencies>
      <build><plugins>
        <plugin><artifactId>maven-resources-plugin</artifactId><version>3.3.1</version></plugin>
        <plugin><artifactId>maven-compiler-plugin</artifactId><version>3.13.0</version></plugin>
        <plugin><artifactId>maven-surefire-plugin</artifactId><version>3.2.5</version></plugin>
      </plugins></build>
    </project>
    """

CALC_JAVA = """
    package demo;
    public class Calc {
        public static int add(int a, int b) { return a + b; }
    }
    """


def maven(tmp_path: Path, files: dict[str, str]) -> tuple[Extract, str, str]:
    """mvn offline: only what this machine's ~/.m2 holds, and a skip with the reason when that is not enough."""
    need("mvn")
    write(tmp_path, {"pom.xml": POM} | files)
    output, code = run(["mvn", "-o", "-B", "test"], tmp_path)
    if "offline mode" in output or "could not be resolved" in output:
        pytest.skip("maven's local repository lacks the plugins or JUnit this test pins (offline only)")
    assert code != 0, output
    found = extract(output, "mvn -o -B test", code, root=str(tmp_path))
    text = verdict([VerifierResult("test", "mvn -o -B test", code, output, root=str(tmp_path))])
    return found, text, output


@pytest.mark.slow  # maven starts a JVM or two
def test_maven_surefire_failing_tests(tmp_path: Path) -> None:
    found, text, raw = maven(tmp_path, {"src/main/java/demo/Calc.java": CALC_JAVA,
                                        "src/test/java/demo/CalcTest.java": """
        package demo;
        import static org.junit.jupiter.api.Assertions.assertEquals;
        import org.junit.jupiter.api.Test;
        class CalcTest {
            @Test void adds() { assertEquals(3, Calc.add(1, 2)); }
            @Test void sumIsOff() { assertEquals(4, Calc.add(1, 2), "sum is off"); }
            @Test void boom() { throw new IllegalStateException("boom"); }
        }
        """})
    assert found.parser == "jvm"
    assert set(found.failing_tests) == {"demo.CalcTest.sumIsOff", "demo.CalcTest.boom"}
    assert "demo.CalcTest.sumIsOff at CalcTest.java:6: org.opentest4j.AssertionFailedError: sum is off" in text
    assert "expected: <4> but was: <3>" in text
    assert "demo.CalcTest.boom at CalcTest.java:7: java.lang.IllegalStateException: boom" in text
    assert "[INFO]" in raw and "[INFO]" not in text and "at org.junit" not in text
    assert "Tests run: 3, Failures: 1, Errors: 1, Skipped: 0" in text


@pytest.mark.slow
def test_maven_compile_errors_once_each(tmp_path: Path) -> None:
    found, text, raw = maven(tmp_path, {"src/main/java/demo/Calc.java": """
        package demo;
        public class Calc {
            public static int add(int a, int b) { return a + c; }
        }
        """})
    assert raw.count("Calc.java:[3,54] cannot find symbol") == 2  # maven prints it twice
    assert [f.location for f in found.failures] == ["src/main/java/demo/Calc.java:3:54"]
    assert "src/main/java/demo/Calc.java:3:54: cannot find symbol" in text and "variable c" in text


# ---------------------------------------------------------------------------------------------------------------
# JavaScript: node's own test runner here; go, tsc and jest where installed

NODE_TESTS = """
    const test = require('node:test');
    const assert = require('node:assert');
    test('adds', () => { assert.strictEqual(1 + 2, 3); });
    test('sum is off', () => { assert.strictEqual(1 + 2, 4, 'sum is off'); });
    test('parses', () => { JSON.parse('{'); });
    """


@pytest.mark.parametrize("reporter", ["tap", "spec"])
def test_node_test_runner(tmp_path: Path, reporter: str) -> None:
    need("node")
    write(tmp_path, {"test/calc.test.js": NODE_TESTS})
    found, text, _ = failed(["node", "--test", f"--test-reporter={reporter}"], tmp_path)
    assert set(found.failing_tests) == {"sum is off", "parses"}
    assert "sum is off at test/calc.test.js:4:" in text and "AssertionError" in text and "3 !== 4" in text
    assert "parses at test/calc.test.js:5:" in text and "SyntaxError" in text
    assert "node:internal" not in text and "adds" not in text


def test_go_test(tmp_path: Path) -> None:
    need("go")
    write(tmp_path, {"go.mod": "module example.com/calc\n\ngo 1.18\n",
                     "calc.go": "package calc\n\nfunc Add(a, b int) int { return a + b }\n",
                     "calc_test.go": """
        package calc

        import "testing"

        func TestAdds(t *testing.T) {
        \tif Add(1, 2) != 3 {
        \t\tt.Fatal("no")
        \t}
        }

        func TestSumIsOff(t *testing.T) {
        \tif got := Add(1, 2); got != 4 {
        \t\tt.Errorf("Add(1, 2) = %d; want 4", got)
        \t}
        }

        func TestTable(t *testing.T) {
        \tt.Run("negative", func(t *testing.T) {
        \t\tt.Errorf("got %d, want 1", Add(-1, 0))
        \t})
        }
        """})
    env = {"GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod", "GOCACHE": str(tmp_path / ".cache")}
    found, text, _ = failed(["go", "test", "./..."], tmp_path, env=env)
    assert set(found.failing_tests) == {"TestSumIsOff", "TestTable/negative"}
    assert "TestSumIsOff at calc_test.go:13: Add(1, 2) = 3; want 4" in text
    assert "TestTable/negative at calc_test.go:19: got -1, want 1" in text


def test_tsc(tmp_path: Path) -> None:
    need("tsc")
    write(tmp_path, {"src/a.ts": 'const x: number = "a";\nexport { x };\n'})
    for pretty in ("false", "true"):
        found, text, _ = failed(["tsc", "--noEmit", "--pretty", pretty, "src/a.ts"], tmp_path, "types")
        assert found.parser == "tsc"
        assert "src/a.ts:1:7: TS2322: Type 'string' is not assignable to type 'number'." in text


def test_jest(tmp_path: Path) -> None:
    need("jest")
    write(tmp_path, {"sum.test.js": """
        const sum = (a, b) => a + b;
        describe('sum', () => {
          test('adds', () => { expect(sum(1, 2)).toBe(3); });
          test('is off', () => { expect(sum(1, 2)).toBe(4); });
        });
        """})
    found, text, raw = failed(["jest", "--ci", "--rootDir", "."], tmp_path)
    if "Tests:" not in raw:
        pytest.skip(f"jest did not run here: {raw[:200]}")
    assert found.failing_tests == ("sum.test.js › sum › is off",)
    assert "sum.test.js:4:" in text and "Expected: 4" in text and "Received: 3" in text


# ---------------------------------------------------------------------------------------------------------------
# Formats no tool here prints: hand-written, faithful to each tool's documented output

GO_OUTPUT = """\
--- FAIL: TestAdd (0.00s)
    add_test.go:12: Add(1, 2) = 3; want 4
--- FAIL: TestTable (0.00s)
    --- FAIL: TestTable/negative (0.00s)
        add_test.go:25: got -1, want 1
--- FAIL: TestPanic (0.00s)
panic: runtime error: index out of range [3] with length 0 [recovered]
\tpanic: runtime error: index out of range [3] with length 0

goroutine 7 [running]:
testing.tRunner.func1.2({0x5150c0, 0xc000016108})
\t/usr/local/go/src/testing/testing.go:1545 +0x238
panic({0x5150c0?, 0xc000016108?})
\t/usr/local/go/src/runtime/panic.go:914 +0x21f
example.com/add.TestPanic(0x0?)
\t/home/u/proj/add_test.go:30 +0x1d
FAIL\texample.com/add\t0.003s
FAIL
"""

GO_BUILD = """\
# example.com/add [example.com/add.test]
./add.go:4:9: cannot use "x" (untyped string constant) as int value in return statement
FAIL\texample.com/add [build failed]
"""

JEST = """\
 FAIL  src/sum.test.js
  sum
    ✓ adds 1 + 2 to equal 3 (2 ms)
    ✕ adds 1 + 2 to equal 4 (3 ms)

  ● sum › adds 1 + 2 to equal 4

    expect(received).toBe(expected) // Object.is equality

    Expected: 4
    Received: 3

       7 |   test('adds 1 + 2 to equal 4', () => {
    >  8 |     expect(sum(1, 2)).toBe(4);
         |                       ^
       9 |   });

      at Object.toBe (src/sum.test.js:8:23)

 PASS  src/other.test.js

Test Suites: 1 failed, 1 passed, 2 total
Tests:       1 failed, 2 passed, 3 total
"""

VITEST = """\
 ❯ src/sum.test.ts  (2 tests | 1 failed) 5ms
   ❯ src/sum.test.ts > sum > adds
     → expected 3 to be 4 // Object.is equality

⎯⎯⎯⎯⎯⎯⎯ Failed Tests 1 ⎯⎯⎯⎯⎯⎯⎯

 FAIL  src/sum.test.ts > sum > adds
AssertionError: expected 3 to be 4 // Object.is equality

- Expected
+ Received

- 4
+ 3

 ❯ src/sum.test.ts:5:23
      4|   it('adds', () => {
      5|     expect(sum(1, 2)).toBe(4)
       |                       ^
      6|   })

⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯[1/1]⎯

 Test Files  1 failed (1)
      Tests  1 failed | 1 passed (2)
"""

TSC_PRETTY = """\
src/a.ts:3:7 - error TS2322: Type 'string' is not assignable to type 'number'.

3 const x: number = "a";
        ~

Found 1 error in src/a.ts:3
"""

ESLINT = """\

/home/u/proj/src/a.js
  1:7   error    'x' is assigned a value but never used  no-unused-vars
  3:1   warning  Unexpected console statement            no-console

/home/u/proj/src/b.js
  2:10  error  Parsing error: Unexpected token )

✖ 3 problems (2 errors, 1 warning)
"""

GRADLE = """\
> Task :test FAILED

demo.CalcTest > badSum() FAILED
    org.opentest4j.AssertionFailedError: sum is off ==> expected: <4> but was: <3>
        at app//org.junit.jupiter.api.AssertionFailureBuilder.build(AssertionFailureBuilder.java:151)
        at app//demo.CalcTest.badSum(CalcTest.java:6)

3 tests completed, 1 failed
"""

PYRIGHT = """\
/home/u/proj/src/a.py
  /home/u/proj/src/a.py:3:12 - error: Type "Literal['a']" is not assignable to declared type "int"
1 error, 0 warnings, 0 informations
"""


@pytest.mark.parametrize(("command", "output", "parser", "expected"), [
    ("go test ./...", GO_OUTPUT, "go", ["TestAdd at add_test.go:12: Add(1, 2) = 3; want 4",
                                        "TestTable/negative at add_test.go:25: got -1, want 1",
                                        "TestPanic at add_test.go:30: panic: runtime error: index out of range"]),
    ("go vet ./...", GO_BUILD, "go", ['./add.go:4:9: cannot use "x" (untyped string constant)']),
    ("npm test", JEST, "jest", ["src/sum.test.js › sum › adds 1 + 2 to equal 4 at src/sum.test.js:8:23",
                                "Expected: 4", "Received: 3", ">  8 |     expect(sum(1, 2)).toBe(4);"]),
    ("npx vitest run", VITEST, "vitest", ["src/sum.test.ts > sum > adds at src/sum.test.ts:5:23: AssertionError",
                                          "1 failed | 1 passed (2)"]),
    ("npm run typecheck", TSC_PRETTY, "tsc", ["src/a.ts:3:7: TS2322: Type 'string' is not assignable"]),
    ("npx eslint .", ESLINT, "eslint", ["src/a.js:1:7: 'x' is assigned a value but never used (no-unused-vars)",
                                        "src/b.js:2:10: Parsing error: Unexpected token )"]),
    ("./gradlew test", GRADLE, "jvm", ["demo.CalcTest.badSum() at CalcTest.java:6: org.opentest4j"]),
    ("pyright", PYRIGHT, "tsc", ['src/a.py:3:12: Type "Literal[\'a\']" is not assignable']),
])
def test_hand_written_samples(command: str, output: str, parser: str, expected: list[str]) -> None:
    found = extract(output, command, 1, root="/home/u/proj")
    text = verdict([VerifierResult("check", command, 1, output, root="/home/u/proj")])
    assert found.parser == parser
    for part in expected:
        assert part in text
    assert "Unexpected console statement" not in text  # eslint's warning beside errors
    assert "/usr/local/go" not in text and "TestTable (0" not in text  # go's runtime frames; a parent of a subtest


def test_parsers_are_found_by_the_output_whatever_the_command() -> None:
    assert extract(JEST, "make check", 1).parser == "jest"
    assert extract(GO_OUTPUT, "./scripts/test.sh", 1).parser == "go"


# ---------------------------------------------------------------------------------------------------------------
# Anything else: the generic scan, and the tail when nothing reads like an error


def test_generic_scan_finds_error_lines_with_a_little_context(tmp_path: Path) -> None:
    script = ("exec 2>&1; echo 'building 1/3'; echo 'building 2/3'; echo 'config/app.yml:7: bad value for port'; "
              "echo 'Error: deploy check failed' >&2; echo 'building 3/3'; exit 3")
    found, text, _ = failed(["sh", "-c", script], tmp_path, "deploy")
    assert found.parser == "generic"
    assert "Error: deploy check failed" in text and "config/app.yml:7" in text
    assert "building 1/3" not in text.split("\n", 1)[1]  # the header quotes the command


def test_nothing_recognised_shows_the_tail(tmp_path: Path) -> None:
    script = "for i in $(seq 1 100); do echo \"step $i\"; done; exit 1"
    _, text, _ = failed(["sh", "-c", script], tmp_path, "odd")
    assert "no failure recognised" in text and "step 100" in text and "step 50" not in text
    _, text, _ = failed(["sh", "-c", "exit 1"], tmp_path, "silent")
    assert "no output" in text
    _, text, _ = failed(["sh", "-c", "no-such-command-here"], tmp_path, "missing")
    assert "exited 127 (command not found)" in text and "no-such-command-here" in text


# ---------------------------------------------------------------------------------------------------------------
# The verdict: one line when all passed, a budget otherwise


def test_all_passed_is_one_short_line() -> None:
    results = [VerifierResult("format", "ruff format --check .", 0, "3 files already formatted", 0.3),
               VerifierResult("lint", "ruff check .", 0, "All checks passed!", 0.4),
               VerifierResult("test", "pytest -q", 0, "." * 2000 + "\n2000 passed in 3.50s", 3.5)]
    assert verdict(results) == "All 3 verifiers passed: format, lint, test (4.2 s)."
    assert verdict(results[2:]) == "1 verifier passed: test (3.5 s)."


def test_passed_verifiers_get_a_line_each_beside_the_failed(tmp_path: Path) -> None:
    pytest_project(tmp_path)
    output, code = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], tmp_path)
    text = verdict([VerifierResult("format", "ruff format --check .", 0, "ok", 0.2),
                    VerifierResult("test", "pytest -q", code, output, 1.5, root=str(tmp_path))])
    lines = text.splitlines()
    assert lines[0] == "1 of 2 verifiers failed: test."
    assert lines[1] == "✓ format (0.2 s)"
    assert lines[2].startswith("✗ test: pytest -q exited 1 — 4 failed, 3 passed")


def test_a_timeout_says_so() -> None:
    text = verdict([VerifierResult("test", "pytest -q", None, "....", 600.0, timed_out=True)])
    assert text.startswith("✗ test: pytest -q timed out after 600 s")


@dataclass(frozen=True)
class Run:
    root: str
    output: str
    code: int
    ids: list[str]

    def result(self, name: str = "test", command: str = "pytest -q") -> VerifierResult:
        return VerifierResult(name, command, self.code, self.output, 2.0, root=self.root)


@pytest.fixture(scope="module")
def forty(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A real pytest run with 40 failures whose assertions print dict diffs, and one passing test."""
    root = tmp_path_factory.mktemp("forty")
    body = "".join(f"""
def test_case_{n:03}():
    expected = {{"id": {n}, "name": "widget-{n}", "tags": ["a", "b", "c"], "price": {n}.5}}
    actual = dict(expected, price={n}.25)
    assert actual == expected, "price drifted for widget {n}"
""" for n in range(40))
    write(root, {"pytest.ini": "[pytest]\n", "tests/test_many.py": body + "\ndef test_fine():\n    pass\n"})
    output, code = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], root)
    return Run(str(root), output, code, [f"tests/test_many.py::test_case_{n:03}" for n in range(40)])


def named(text: str) -> set[str]:
    """The pytest ids a verdict names: in headlines, and in its cut note as `path::{test_a, test_b}`."""
    names = set(re.findall(r"(\S+\.py::[\w:\[\]-]+)", text))
    for path, group in re.findall(r"(\S+\.py)::\{([^}]*)\}", text):
        names |= {f"{path}::{name}" for name in group.split(", ")}
    return names


@pytest.mark.parametrize("limit", [4000, 2500, 1200])
def test_every_failing_id_is_listed_while_there_is_room(forty: Run, limit: int) -> None:
    text = verdict([forty.result()], limit)
    assert len(text) <= limit < len(forty.output)
    assert set(forty.ids) <= named(text)
    assert "characters cut]" in text
    if limit < 4000:
        assert "more failures: tests/test_many.py::{test_case_" in text
    assert "test_fine" not in text
    # The first failures keep their assertion: what is cut first is context, then whole later failures.
    assert "test_case_000 (line 4): AssertionError: price drifted for widget 0" in text


def test_ids_that_do_not_fit_are_counted(forty: Run) -> None:
    text = verdict([forty.result()], 500)
    assert len(text) <= 500
    assert forty.ids[0] in text and re.search(r"\[… 39 more failures: .* \(\+\d+ more\); [\d,]+ characters cut\]", text)


def test_context_is_cut_before_any_failure(tmp_path: Path) -> None:
    pytest_project(tmp_path)
    output, code = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], tmp_path)
    full = verdict([VerifierResult("test", "pytest -q", code, output, root=str(tmp_path))], 100_000)
    limit = len(full) - 120
    text = verdict([VerifierResult("test", "pytest -q", code, output, root=str(tmp_path))], limit)
    assert len(text) <= limit
    assert set(FAILING) <= named(text)
    assert "more failure" not in text and "characters cut]" in text


def test_two_failing_verifiers_share_the_budget(tmp_path: Path, forty: Run) -> None:
    write(tmp_path, {"src/a.py": LINTED})
    ruff = str(Path(sys.executable).with_name("ruff"))
    lint_output, lint_code = run([ruff, "check", "--no-cache", "--select", "F", "."], tmp_path)
    text = verdict([VerifierResult("lint", "ruff check .", lint_code, lint_output, root=str(tmp_path)),
                    forty.result()], 1500)
    assert len(text) <= 1500
    assert "✗ lint: ruff check . exited 1" in text and "✗ test: pytest -q exited 1" in text
    assert "src/a.py:1:8: F401" in text and forty.ids[0] in text  # each verifier's first failure, however many follow


def test_extract_render_alone_keeps_to_its_limit(forty: Run) -> None:
    text = extract(forty.output, "pytest", forty.code, root=forty.root).render(1000)
    assert len(text) <= 1000 and forty.ids[0] in text and "more failures" in text


TOOL_LINES = [line for sample in (GO_OUTPUT, JEST, VITEST, ESLINT, GRADLE, TSC_PRETTY) for line in sample.splitlines()]
TOOL_LINES += ["=" * 20 + " FAILURES " + "=" * 20, "_" * 10 + " test_x " + "_" * 10, "E   assert 1 == 2",
               "tests/test_x.py:3: AssertionError", "FAILED tests/test_x.py::test_x - assert 1 == 2",
               "error[E0308]: mismatched types", " --> src/main.rs:2:18", "---- tests::x stdout ----",
               "thread 'tests::x' panicked at src/lib.rs:1:1:", "FAIL: test_x (m.T.test_x)", "-" * 70,
               "Traceback (most recent call last):", '  File "m.py", line 3, in f', "ValueError: x", "not ok 1 - x"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TOOL_LINES) | st.text(max_size=300), max_size=80), st.integers(40, 5000),
       st.sampled_from(["pytest -q", "cargo test", "go test ./...", "make", "npm test"]))
def test_any_output_gives_a_verdict_within_the_limit(lines: list[str], limit: int, command: str) -> None:
    output = "\n".join(lines)
    text = verdict([VerifierResult("a", command, 1, output), VerifierResult("b", "true", 0, ""),
                    VerifierResult("c", command, 2, output[::-1])], limit)
    assert len(text) <= limit
    assert extract(output, command, 1).failures
