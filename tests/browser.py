"""Chromium for the tests that look at pages as a person would (job pages, /spend, /campaigns, a Slack thread on a
phone): one module-scoped `browser` fixture, registered as a pytest plugin in conftest.py.

It skips, saying why, without Chromium at /usr/bin/chromium or the playwright package; with HONK_REQUIRE_BROWSER=1
(set by .ci/run) it fails instead, so that CI never passes by skipping them. Each test opens its own context (its
own cookies).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Read at import, before a test's `make_settings` clears the HONK_* variables from the environment.
REQUIRE_BROWSER = os.environ.get("HONK_REQUIRE_BROWSER") == "1"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def browser_problem() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not Path(CHROMIUM).exists():
        return f"Chromium is not installed at {CHROMIUM} (Debian: apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium for the whole module."""
    problem = browser_problem()
    if problem:
        if REQUIRE_BROWSER:
            pytest.fail(f"HONK_REQUIRE_BROWSER=1 but {problem}")
        print(f"skipping the browser tests: {problem}")
        pytest.skip(problem)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
