"""Numbers and text in the pages' paths and queries (CONTRACT.md section 2: bad input never gets a 5xx).

Each of these once got a 500: a job id past 63 bits (OverflowError in the database driver), a page whose OFFSET
passes 63 bits, a page or per of "²" (`str.isdigit` takes it, `int` does not) or of 5,000 digits (past Python's
int-from-string limit), and on PostgreSQL a repository filter holding NUL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest

from app.intake.triggers import TriggerRules, decide
from app.process import HonkState
from app.untyped import MAX_ID
from app.web.app import create_app
from tests.support import labeled_payload, live_server

TWENTY_DIGITS = "99999999999999999999"


@pytest.fixture
def served(state: HonkState) -> Iterator[tuple[HonkState, httpx.Client]]:
    with live_server(create_app(state)) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield state, client


def _add_job(state: HonkState, number: int) -> int:
    request = decide("issues", labeled_payload(number=number), TriggerRules(), f"d-{number}")
    return state.queue.enqueue(request)  # type: ignore[arg-type]


def test_a_job_id_no_job_can_have_is_404(served: tuple[HonkState, httpx.Client]) -> None:
    _, client = served
    for job_id in (TWENTY_DIGITS, str(MAX_ID + 1), str(MAX_ID), "0", "-1", "-" + TWENTY_DIGITS):
        api = client.get(f"/api/jobs/{job_id}")
        assert (api.status_code, api.json()) == (404, {"detail": f"there is no job {int(job_id)}"})
        page = client.get(f"/jobs/{job_id}")
        assert page.status_code == 404 and f"There is no job {int(job_id)}." in page.text
    for not_a_number in ("abc", "1.5", "9" * 5000, "²"):
        assert client.get(f"/api/jobs/{not_a_number}").status_code == 422
        assert client.get(f"/jobs/{not_a_number}").status_code == 422


def test_a_page_far_past_the_last_is_an_empty_page_not_a_500(served: tuple[HonkState, httpx.Client]) -> None:
    state, client = served
    _add_job(state, 7)
    for page in (TWENTY_DIGITS, str(MAX_ID), str(MAX_ID // 50 + 1), "9" * 5000):
        answer = client.get("/jobs", params={"page": page})
        assert answer.status_code == 200 and "No jobs" in answer.text
        shown = int(re.search(r"page (\d+) of 1 · 1 job", answer.text)[1])  # type: ignore[index]
        assert shown * 50 <= MAX_ID  # clamped where the OFFSET still fits in 64 bits
        newer = re.search(r'href="(/jobs\?page=(\d+))"', answer.text)
        assert newer is not None and int(newer[2]) == shown - 1
        assert client.get(newer[1]).status_code == 200


def test_a_page_or_per_that_is_not_ascii_digits_is_the_default(served: tuple[HonkState, httpx.Client]) -> None:
    state, client = served
    ids = [_add_job(state, n) for n in range(1, 4)]
    for value in ("²", "١٢", "-3", "0", "1e3", " 2", "", "abc", "\x00"):
        for name in ("page", "per"):
            answer = client.get("/jobs", params={name: value})
            assert answer.status_code == 200, (name, value)
            assert [int(i) for i in re.findall(r'<tr data-job="(\d+)"', answer.text)] == ids[::-1]


def test_per_is_clamped_to_the_most_a_page_shows(served: tuple[HonkState, httpx.Client]) -> None:
    state, client = served
    _add_job(state, 7)
    for per in (TWENTY_DIGITS, "9" * 5000, "201"):
        answer = client.get("/jobs", params={"per": per})
        assert answer.status_code == 200 and "page 1 of 1 · 1 job" in answer.text


def test_a_repository_filter_no_job_can_match_lists_nothing(served: tuple[HonkState, httpx.Client]) -> None:
    state, client = served
    _add_job(state, 7)
    for repo in ("\x00", "acme/\x00widgets", "\ud800", "x" * 5000, "acme/widgets\n"):
        answer = client.get("/jobs?repo=" + quote(repo.encode("utf-8", "surrogatepass"), safe=""))
        assert answer.status_code == 200 and "No jobs" in answer.text, repr(repo[:20])
    assert client.get("/jobs", params={"repo": "acme/widgets"}).text.count("<tr data-job") == 1
