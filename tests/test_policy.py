"""The spending policy file (app/policy.py): its schema, its error messages (file, key, line), the cache that
reads it again when it changes, the month arithmetic, and `honk doctor`'s line about it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from app import doctor
from app.policy import (
    Policy,
    PolicyCache,
    PolicyError,
    Scope,
    cap_words,
    days_of,
    parse_month,
    parse_policy,
    read_policy,
    resets_on,
    scopes_of,
)
from app.settings import Settings

EXAMPLE = """\
caps:
  installation: {12345: 500}
  organization: {acme: 2000}
  repository:
    acme/widgets: 100
    acme/huge: null
  requester: {alice: 50}
  default: {repository: 200, requester: 100}
allowed_models: [claude-opus-5-5, "claude-sonnet-4-5*"]
campaign_budget_usd: 300
"""


def problem(text: str) -> str:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "policy.yml")
    return str(caught.value)


def test_the_example_sets_caps_models_and_the_campaign_default() -> None:
    policy = parse_policy(EXAMPLE, "policy.yml")
    assert policy.campaign_budget_usd == 300 and policy.reserve_per_call_usd == 0.5
    scopes = scopes_of(installation_id=12345, repository="acme/widgets", requester="bob")
    assert [s.kind for s in scopes] == ["installation", "organization", "repository", "requester"]
    assert policy.caps_for(scopes) == {Scope("installation", "12345"): 500, Scope("organization", "acme"): 2000,
                                       Scope("repository", "acme/widgets"): 100, Scope("requester", "bob"): 100}
    # Named entries win over the default, `null` names one without a cap, and GitHub's names ignore case.
    other = scopes_of(installation_id=None, repository="ACME/Huge", requester="Alice")
    assert policy.caps_for(other) == {Scope("organization", "ACME"): 2000, Scope("requester", "Alice"): 50}
    assert policy.caps.of(Scope("repository", "elsewhere/thing")) == 200
    assert policy.caps.of(Scope("organization", "elsewhere")) is None
    assert policy.describe() == ("6 monthly caps; models claude-opus-5-5, claude-sonnet-4-5*; campaign budget $300")


def test_allowed_models_are_names_or_patterns_and_left_out_allow_any() -> None:
    policy = parse_policy(EXAMPLE, "p")
    assert policy.model_allowed("claude-opus-5-5") and policy.model_allowed("Claude-Opus-5-5")
    assert policy.model_allowed("claude-sonnet-4-5-20250929")  # the pattern
    assert not policy.model_allowed("claude-opus-5-5-20260101") and not policy.model_allowed("claude-haiku-4-5")
    assert parse_policy("allowed_models: claude-haiku-4-5\n", "p").allowed_models == ["claude-haiku-4-5"]
    assert parse_policy("caps: {}\n", "p").model_allowed("anything")
    assert parse_policy("", "p") == Policy() and parse_policy("# nothing yet\n", "p") == Policy()


@pytest.mark.parametrize(("text", "expected"), [
    ("cap: {}\n", "policy.yml: unknown key `cap` (line 1); did you mean `caps`?"),
    ("caps:\n  repository:\n    acme/widgets: lots\n",
     "policy.yml: `caps.repository.acme/widgets` must be a number of US dollars, 0 or more, or null for no cap "
     "(got 'lots') (line 3)"),
    ("caps:\n  requester:\n    alice: -5\n",
     "`caps.requester.alice` must be a number of US dollars, 0 or more, or null for no cap (got -5) (line 3)"),
    ("caps:\n  requester:\n    alice: yes\n", "(got true) (line 3)"),
    ("caps:\n  repository: {widgets: 5}\n",
     "`caps.repository` names repositories as owner/name, not 'widgets' (line 2)"),
    ("caps:\n  installation: {acme: 5}\n", "`caps.installation` names installations by their numeric id, not 'acme'"),
    ("caps:\n  repository: [acme/widgets]\n",
     "`caps.repository` must be a mapping of names to monthly caps in US dollars, such as `acme/widgets: 100` "
     "(got a list) (line 2)"),
    ("caps:\n  default:\n    repo: 5\n", "unknown key `caps.default.repo` (line 3)"),
    ("caps:\n  requester:\n    alice: 5\n    Alice: 6\n", "`caps.requester.Alice` is set twice (again on line 4)"),
    ("allowed_models: []\n", "`allowed_models` lists no model, so no job could run; leave it out to allow any model"),
    ("allowed_models:\n  - claude-opus-5-5\n  - claude opus\n", "item 2 of `allowed_models` must be a model name "
                                                                "without spaces"),
    ("campaign_budget_usd: -1\n", "`campaign_budget_usd` must be a number of US dollars, 0 or more (got -1) (line 1)"),
    ("reserve_per_call_usd: 0\n", "`reserve_per_call_usd` must be a number of US dollars above 0 (got 0)"),
    ("caps: [\n", "policy.yml is not valid YAML at line 2, column 1"),
    ("- caps\n", "policy.yml must be a mapping with `caps`, `allowed_models`, `campaign_budget_usd` (it is a list)"),
])
def test_a_broken_policy_names_the_file_the_key_and_the_line(text: str, expected: str) -> None:
    assert expected in problem(text)


def test_the_file_is_read_again_when_it_changes_and_a_broken_one_stays_broken(tmp_path: Path) -> None:
    path = tmp_path / "policy.yml"
    cache = PolicyCache()
    assert cache.get(None) is None  # no policy configured
    with pytest.raises(PolicyError, match=r"the policy file .*policy.yml \(HONK_POLICY_FILE\) does not exist"):
        cache.get(path)
    path.write_text("caps: {repository: {acme/widgets: 100}}\n")
    first = cache.get(path)
    assert first is not None and first.caps.repository == {"acme/widgets": 100}
    assert cache.get(path) is first  # unchanged: not read again
    path.write_text("caps: {repository: {acme/widgets: 250}}\n")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    second = cache.get(path)
    assert second is not None and second.caps.repository == {"acme/widgets": 250}
    path.write_text("caps: {repository: {acme/widgets: 250}\n")  # a typo: never silently uncapped
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 2_000_000))
    with pytest.raises(PolicyError, match="is not valid YAML"):
        cache.get(path)
    with pytest.raises(PolicyError, match="is not valid YAML"):
        cache.get(path)
    path.unlink()
    with pytest.raises(PolicyError, match="does not exist"):
        read_policy(path)


def test_months_are_calendar_months_in_utc() -> None:
    assert parse_month("2026-5") == "2026-05" and parse_month(" 2026-12 ") == "2026-12"
    for bad in ("2026-13", "May", "", "2026-05-01", "9999-12", "\x00"):
        with pytest.raises(ValueError, match="is not a month written YYYY-MM"):
            parse_month(bad)
    assert resets_on("2026-12") == date(2027, 1, 1) and resets_on("2026-02") == date(2026, 3, 1)
    assert len(days_of("2028-02")) == 29 and days_of("2026-04")[-1] == date(2026, 4, 30)


def test_a_reached_cap_in_words_names_the_cap_the_amounts_and_the_reset() -> None:
    assert cap_words(Scope("repository", "acme/widgets"), spent=100.0234, cap=100, month="2026-12") == (
        "the repository acme/widgets has spent $100.02 of its $100 monthly cap; it resets on 2027-01-01 (UTC)")
    assert cap_words(Scope("requester", "alice"), spent=49.5, cap=50, month="2026-05", pending=0.75) == (
        "@alice has spent $49.50 of their $50 monthly cap, and model calls under way are expected to use the "
        "remaining $0.50; it resets on 2026-06-01 (UTC)")
    assert cap_words(Scope("installation", "42"), spent=0, cap=0, month="2026-05").startswith(
        "the installation 42 has spent $0.00 of its $0 monthly cap")
    assert "the organization acme has spent $2,000.10 of its $2,000" in cap_words(
        Scope("organization", "acme"), spent=2000.1, cap=2000, month="2026-05")


def test_honk_doctor_checks_the_policy_file_only_when_one_is_set(make_settings: Callable[..., Settings],
                                                                 tmp_path: Path) -> None:
    assert asyncio.run(doctor.check_policy(make_settings())) == []
    path = tmp_path / "policy.yml"
    path.write_text(EXAMPLE)
    [good] = asyncio.run(doctor.check_policy(make_settings(honk_policy_file=path)))
    assert good.status == "ok" and "6 monthly caps" in good.detail
    path.write_text("caps:\n  repository:\n    acme/widgets: lots\n")
    [bad] = asyncio.run(doctor.check_policy(make_settings(honk_policy_file=path)))
    assert bad.status == "fail" and "`caps.repository.acme/widgets`" in bad.detail and "(line 3)" in bad.detail
    assert "every job fails" in (bad.fix or "")
    path.write_text("allowed_models: [claude-sonnet-4-5]\n")
    [refused] = asyncio.run(doctor.check_policy(make_settings(honk_policy_file=path, honk_judge=False)))
    assert refused.status == "fail" and "HONK_MODEL claude-opus-5-5" in refused.detail
    [missing] = asyncio.run(doctor.check_policy(make_settings(honk_policy_file=tmp_path / "nope.yml")))
    assert missing.status == "fail" and "does not exist" in missing.detail
