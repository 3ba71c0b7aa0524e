"""Providers (issue #16): whole agent runs over Amazon Bedrock and Google Vertex AI through the SDK's own clients,
against local fakes speaking their wire formats (SigV4 and AWS event streams; bearer tokens minted by a fake Google
token service), the fallback that takes over a failing provider, the judge on another provider, the model table,
the prices per provider, and `honk doctor`'s line per provider."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app import doctor
from app.agent import Agent, AgentResult, RetryPolicy, Task, providers
from app.agent.judge import Judge
from app.agent.pricing import MODELS, REGIONAL_PREMIUM, model_info
from app.agent.providers import MODEL_IDS, ProviderError, canonical, model_for
from app.audit import MemoryAudit
from app.settings import Settings
from tests.agent.conftest import run
from tests.fakes import bedrock as bedrock_fake
from tests.fakes import vertex as vertex_fake
from tests.fakes.bedrock import FakeBedrock
from tests.fakes.messages_api import FakeMessagesAPI, bash, edit, end, error, reply, thinking, tool_use
from tests.support import free_port

QUICK = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02)
PROVIDER_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                      "AWS_SESSION_TOKEN", "AWS_BEARER_TOKEN_BEDROCK", "ANTHROPIC_BEDROCK_BASE_URL",
                      "CLOUD_ML_REGION", "ANTHROPIC_VERTEX_PROJECT_ID", "ANTHROPIC_VERTEX_BASE_URL",
                      "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT")


@pytest.fixture(autouse=True)
def no_provider_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AWS or Google setting of this machine leaks in: no variables, no ~/.aws, no gcloud, no metadata server,
    and a `.env` of the test's own."""
    for name in PROVIDER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))
    monkeypatch.setenv("GCE_METADATA_HOST", f"127.0.0.1:{free_port()}")
    monkeypatch.setattr(providers, "ENV_FILE", tmp_path / ".env")


@pytest.fixture
def bedrock() -> Iterator[FakeBedrock]:
    with FakeBedrock() as fake:
        yield fake


@pytest.fixture
def vertex() -> Iterator[vertex_fake.FakeVertex]:
    with vertex_fake.FakeVertex() as fake:
        yield fake


def setenv(monkeypatch: pytest.MonkeyPatch, values: dict[str, str]) -> None:
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def on(settings: Settings, fake: FakeMessagesAPI, **changes: Any) -> Settings:
    """`settings` with the Anthropic API at `fake` (the primary, the fallback or the judge in these tests)."""
    return settings.model_copy(update={"anthropic_base_url": fake.url, **changes})


def go(settings: Settings, repo: Path, stream: bool = True, **kwargs: Any) -> tuple[AgentResult, MemoryAudit]:
    """A whole run with the clients Honk makes from the settings, as a job's run does."""
    audit = MemoryAudit()

    async def main() -> AgentResult:
        async with Agent(settings, repo, audit, retry=QUICK, stream=stream, **kwargs) as agent:
            return await agent.run(Task("Fix add() in calc.py", repository="acme/calc"))
    return run(main()), audit


def fix_script() -> list[Any]:
    return [reply(thinking("Let me look."), bash("ls"), edit("view", "calc.py")),
            reply(thinking("It subtracts."), edit("str_replace", "calc.py", old_str="a - b", new_str="a + b")),
            end("Fixed add(): it subtracted instead of adding.", thinking("Done."))]


def assert_valid_conversation(fake: FakeMessagesAPI) -> None:
    """What the run sent, read back as Messages API bodies: Honk's tools, auto tool choice, no sampling parameters,
    and every thinking block sent back exactly as it came (the fake checks its signature too)."""
    assert fake.rejected == []
    for body in fake.bodies:
        assert not {"temperature", "top_p", "top_k"} & set(body)
        assert body["tool_choice"] == {"type": "auto"}
        assert [t["name"] for t in body["tools"]] == ["str_replace_based_edit_tool", "bash", "verify"]
    sent = [r["response"]["content"][0] for r in fake.requests if r.get("response")]
    for index, block in enumerate(sent[:-1]):
        back = fake.bodies[index + 1]["messages"][2 * index + 1]["content"][0]
        assert back == {"type": "thinking", "thinking": block["thinking"], "signature": block["signature"]}


# Whole runs over each provider

@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
def test_a_whole_run_over_bedrock(settings: Settings, repo: Path, bedrock: FakeBedrock,
                                  monkeypatch: pytest.MonkeyPatch, stream: bool) -> None:
    setenv(monkeypatch, bedrock.env())
    bedrock.script(*fix_script())
    result, audit = go(settings.model_copy(update={"honk_provider": "bedrock"}), repo, stream=stream)
    assert result.stop == "completed", result.error
    assert (repo / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
    assert (result.provider, result.model, result.fallback) == ("bedrock", "claude-opus-5-5", None)
    operation = "invoke-with-response-stream" if stream else "invoke"
    assert [call["path"] for call in bedrock.calls] == [f"/model/global.anthropic.claude-opus-5-5/{operation}"] * 3
    for call in bedrock.calls:
        assert call["auth"] is None  # the fake recomputed the SigV4 signature with its secret key
        assert call["headers"]["authorization"].startswith(
            f"AWS4-HMAC-SHA256 Credential={bedrock.access_key}/")
        assert "/us-east-1/bedrock/aws4_request, SignedHeaders=" in call["headers"]["authorization"]
        assert call["body"]["anthropic_version"] == "bedrock-2023-05-31"
        assert not {"model", "stream"} & set(call["body"])
    assert_valid_conversation(bedrock)
    [start] = audit.of_kind("agent.start")
    assert (start["provider"], start["model"], start["model_id"]) == ("bedrock", "claude-opus-5-5",
                                                                      "global.anthropic.claude-opus-5-5")
    assert {event["provider"] for event in audit.of_kind("model.response")} == {"bedrock"}


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
def test_a_whole_run_over_vertex(settings: Settings, repo: Path, vertex: vertex_fake.FakeVertex,
                                 monkeypatch: pytest.MonkeyPatch, tmp_path: Path, stream: bool) -> None:
    # A service account's key file, as an operator sets it; the fake is also Google's token service.
    setenv(monkeypatch, vertex.env(key_file=tmp_path / "service-account.json"))
    vertex.script(*fix_script())
    result, _ = go(settings.model_copy(update={"honk_provider": "vertex"}), repo, stream=stream)
    assert result.stop == "completed", result.error
    assert (result.provider, result.model) == ("vertex", "claude-opus-5-5")
    method = "streamRawPredict" if stream else "rawPredict"
    assert [call["path"] for call in vertex.calls] == [
        f"/v1/projects/{vertex.project}/locations/us-east5/publishers/anthropic/models/claude-opus-5-5:{method}"] * 3
    [grant] = vertex.token_requests  # one token, minted from a signed assertion, used for every request
    assert grant["error"] is None
    for call in vertex.calls:
        assert call["auth"] is None and call["headers"]["authorization"].startswith("Bearer ya29.fake-access-token-")
        assert call["body"]["anthropic_version"] == "vertex-2023-10-16" and "model" not in call["body"]
    assert_valid_conversation(vertex)
    # Vertex's regional endpoints cost more than its global one; the run's cost is at the regional price.
    regional = MODELS["claude-opus-5-5"].scaled(REGIONAL_PREMIUM)
    assert result.cost_usd == pytest.approx(regional.cost(result.usage), abs=1e-5)
    assert result.cost_usd > MODELS["claude-opus-5-5"].cost(result.usage)


def test_provider_settings_from_the_env_file(settings: Settings, repo: Path, bedrock: FakeBedrock,
                                             vertex: vertex_fake.FakeVertex, tmp_path: Path) -> None:
    """AWS's and Google's settings in `.env` work like Honk's own, a session token included, and their secrets
    are redacted like Honk's."""
    with FakeBedrock(session_token="FwoGZXIvYXdzEXAMPLEsessiontoken1234567890") as temporary:
        key_file = tmp_path / "key.json"
        lines = {**temporary.env(), **vertex.env(key_file=key_file)}
        (tmp_path / ".env").write_text("".join(f"{name}={value}\n" for name, value in lines.items()))
        temporary.script(end("done on bedrock"))
        result, _ = go(settings.model_copy(update={"honk_provider": "bedrock"}), repo)
        assert result.stop == "completed", result.error
        [call] = temporary.calls
        assert call["auth"] is None and call["headers"]["x-amz-security-token"] == temporary.session_token
    vertex.script(end("done on vertex"))
    result, _ = go(settings.model_copy(update={"honk_provider": "vertex"}), repo)
    assert result.stop == "completed", result.error
    assert vertex.accepted and len(vertex.token_requests) == 1
    assert set(providers.secrets()) == {temporary.secret_key, temporary.session_token}


def test_a_bedrock_api_key_is_sent_instead_of_a_signature(settings: Settings, repo: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeBedrock(end("done"), api_key="ABSKbedrockapikey0123456789") as fake:
        setenv(monkeypatch, {"AWS_REGION": fake.region, "AWS_BEARER_TOKEN_BEDROCK": "ABSKbedrockapikey0123456789",
                             "ANTHROPIC_BEDROCK_BASE_URL": fake.url})
        result, _ = go(settings.model_copy(update={"honk_provider": "bedrock"}), repo)
        assert result.stop == "completed", result.error
        assert fake.calls[0]["headers"]["authorization"] == "Bearer ABSKbedrockapikey0123456789"


def test_a_wrong_aws_secret_is_refused_and_does_not_fall_back(settings: Settings, repo: Path, bedrock: FakeBedrock,
                                                              fake: FakeMessagesAPI,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    setenv(monkeypatch, {**bedrock.env(), "AWS_SECRET_ACCESS_KEY": "not/the/secret/key/at/all/0123456789abc"})
    bedrock.script(end("never"))
    result, audit = go(on(settings, fake, honk_provider="bedrock", honk_fallback_provider="anthropic"), repo)
    assert result.stop == "api_error" and "signature we calculated does not match" in (result.error or "")
    assert "InvalidSignatureException" in (result.error or "")
    assert len(bedrock.calls) == 1  # a 403 is not retried, and it is not an outage: no fallback
    assert fake.requests == [] and audit.of_kind("model.fallback") == [] and result.fallback is None


def test_bedrock_stream_exceptions_are_retried(settings: Settings, repo: Path, bedrock: FakeBedrock,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    setenv(monkeypatch, bedrock.env())
    bedrock.script(error(429, "rate_limit_error", "Too many tokens", mid_stream=True), end("done"))
    result, audit = go(settings.model_copy(update={"honk_provider": "bedrock"}), repo)
    assert result.stop == "completed", result.error
    [retry] = audit.of_kind("model.retry")
    assert "throttlingException" in retry["error"] and "Too many tokens" in retry["error"]


def test_a_provider_missing_its_region_says_which_variable(settings: Settings, repo: Path) -> None:
    for provider, variable in (("bedrock", "AWS_REGION"), ("vertex", "CLOUD_ML_REGION")):
        with pytest.raises(ProviderError, match=variable):
            Agent(settings.model_copy(update={"honk_provider": provider}), repo, MemoryAudit())


# The fallback

@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
def test_an_overloaded_provider_hands_the_run_to_the_fallback(settings: Settings, repo: Path, fake: FakeMessagesAPI,
                                                              bedrock: FakeBedrock, monkeypatch: pytest.MonkeyPatch,
                                                              stream: bool) -> None:
    setenv(monkeypatch, bedrock.env())
    fake.script(reply(thinking("Let me look."), bash("ls")), error(529), error(529), end("never"))
    bedrock.script(reply(thinking("It subtracts."), edit("str_replace", "calc.py", old_str="a - b", new_str="a + b")),
                   end("Fixed add()."))
    result, audit = go(on(settings, fake, honk_fallback_provider="bedrock"), repo, stream=stream)
    assert result.stop == "completed", result.error
    assert result.summary == "Fixed add()." and (repo / "calc.py").read_text().endswith("a + b\n")
    assert (result.provider, result.model) == ("bedrock", "claude-opus-5-5")
    assert result.fallback is not None and "the Anthropic API" in result.fallback
    assert "Amazon Bedrock (global.anthropic.claude-opus-5-5)" in result.fallback and "529" in result.fallback
    # The failed request, repeated on the fallback from the same conversation state; the run stays there.
    assert len(fake.requests) == 3 and fake.pending == 1
    failed, repeated = fake.bodies[-1], bedrock.bodies[0]
    for key in ("system", "tools", "messages", "max_tokens", "tool_choice"):
        assert repeated[key] == failed[key], key
    assert repeated["messages"][1]["content"][0]["type"] == "thinking"  # the first provider's, unchanged
    assert bedrock.rejected == [] and len(bedrock.bodies) == 2
    [switch] = audit.of_kind("model.fallback")
    assert switch["from"] == {"provider": "anthropic", "model": "claude-opus-5-5", "model_id": "claude-opus-5-5"}
    assert switch["to"] == {"provider": "bedrock", "model": "claude-opus-5-5",
                            "model_id": "global.anthropic.claude-opus-5-5"}
    assert "529" in switch["error"] and switch["turn"] == 2
    assert [e["provider"] for e in audit.of_kind("model.response")] == ["anthropic", "bedrock", "bedrock"]
    assert audit.of_kind("agent.stop")[0]["fallback"] == result.fallback


def test_an_unreachable_provider_hands_the_run_to_another_model(settings: Settings, repo: Path,
                                                                vertex: vertex_fake.FakeVertex, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    setenv(monkeypatch, vertex.env(key_file=tmp_path / "key.json"))
    vertex.script(end("done on the fallback"))
    down = settings.model_copy(update={"anthropic_base_url": f"http://127.0.0.1:{free_port()}",
                                       "honk_fallback_provider": "vertex", "honk_fallback_model": "claude-sonnet-4-5"})
    result, audit = go(down, repo)
    assert result.stop == "completed", result.error
    assert (result.provider, result.model) == ("vertex", "claude-sonnet-4-5")
    assert "connection error" in (result.fallback or "")
    assert vertex.calls[0]["model"] == "claude-sonnet-4-5@20250929"
    [response] = audit.of_kind("model.response")
    assert response["cost_usd"] == round(model_info("claude-sonnet-4-5", "vertex", regional=True).cost(
        response["usage"]), 6)


def test_a_bad_request_does_not_fall_back(settings: Settings, repo: Path, fake: FakeMessagesAPI,
                                          bedrock: FakeBedrock, monkeypatch: pytest.MonkeyPatch) -> None:
    setenv(monkeypatch, bedrock.env())
    fake.script(error(400, "invalid_request_error", "messages: something is wrong"))
    bedrock.script(end("never"))
    result, audit = go(on(settings, fake, honk_fallback_provider="bedrock"), repo)
    assert result.stop == "api_error" and "something is wrong" in (result.error or "")
    assert bedrock.calls == [] and audit.of_kind("model.fallback") == [] and result.fallback is None


def test_a_failing_fallback_ends_the_run_saying_both(settings: Settings, repo: Path, fake: FakeMessagesAPI,
                                                     bedrock: FakeBedrock, monkeypatch: pytest.MonkeyPatch) -> None:
    setenv(monkeypatch, bedrock.env())
    fake.script(error(529), error(529))
    bedrock.script(error(503, "api_error", "Bedrock is unable to process your request."), error(503, "api_error", "x"))
    result, _ = go(on(settings, fake, honk_fallback_provider="bedrock"), repo)
    assert result.stop == "api_error" and "ServiceUnavailableException" in (result.error or "")
    assert result.fallback is not None and result.provider == "bedrock"


def test_no_fallback_without_the_settings(settings: Settings) -> None:
    assert providers.fallback_target(settings, "anthropic", "claude-opus-5-5") is None
    same = settings.model_copy(update={"honk_fallback_provider": "anthropic"})
    assert providers.fallback_target(same, "anthropic", "claude-opus-5-5") is None  # the very same model
    other = settings.model_copy(update={"honk_fallback_model": "claude-sonnet-5-5"})
    assert providers.fallback_target(other, "anthropic", "claude-opus-5-5") == ("anthropic", "claude-sonnet-5-5")


# The judge on another provider

def test_the_judge_may_use_another_provider(settings: Settings, fake: FakeMessagesAPI,
                                            vertex: vertex_fake.FakeVertex, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    setenv(monkeypatch, vertex.env(key_file=tmp_path / "key.json"))
    vertex.script(reply(thinking("Fine."), tool_use("verdict", {"decision": "approve", "reason": "calc.py only."})))
    judged = on(settings, fake, honk_judge_provider="vertex", honk_judge_model="claude-haiku-4-5")
    audit = MemoryAudit()

    async def main() -> Any:
        async with Judge(judged, audit, retry=QUICK) as judge:
            return await judge.review(request="Fix add().", diff="diff --git a/calc.py b/calc.py\n+fixed\n")
    verdict = run(main())
    assert (verdict.decision, verdict.provider, verdict.model) == ("approve", "vertex", "claude-haiku-4-5")
    assert fake.requests == []  # the coder's provider saw nothing of it
    [call] = vertex.calls
    assert call["model"] == "claude-haiku-4-5@20251001" and call["body"]["tools"][0]["name"] == "verdict"
    assert verdict.cost_usd == round(model_info("claude-haiku-4-5", "vertex", regional=True).cost(verdict.usage), 6)


def test_a_judge_whose_provider_cannot_be_set_up_is_undecided(settings: Settings) -> None:
    audit = MemoryAudit()
    judge = Judge(settings.model_copy(update={"honk_judge_provider": "bedrock"}), audit)
    verdict = run(judge.review(request="Fix add().", diff="diff --git a/x b/x\n"))
    assert verdict.decision == "undecided" and "AWS_REGION" in verdict.reason and verdict.provider == "bedrock"


# The model table and the prices

def test_every_model_has_an_id_at_every_provider_and_back() -> None:
    assert set(MODEL_IDS) == set(MODELS)  # one table of names, one of prices, the same models
    for name, ids in MODEL_IDS.items():
        assert model_for("anthropic", name) == name
        assert model_for("bedrock", name) == ids.bedrock and ids.bedrock.startswith("global.anthropic.")
        assert model_for("vertex", name) == ids.vertex
        for provider_id in (name, ids.bedrock, ids.vertex):
            assert canonical(provider_id) == name
            for provider in providers.PROVIDERS:  # another provider's id of a known model is translated
                assert model_for(provider, provider_id) == model_for(provider, name)


@pytest.mark.parametrize(("provider", "model", "sent"), [
    ("bedrock", "claude-opus-5-5", "global.anthropic.claude-opus-5-5"),
    ("bedrock", "claude-opus-4-6", "global.anthropic.claude-opus-4-6-v1"),
    ("bedrock", "claude-haiku-4-5", "global.anthropic.claude-haiku-4-5-20251001-v1:0"),
    ("bedrock", "eu.anthropic.claude-sonnet-4-5-20250929-v1:0", "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"),
    ("bedrock", "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3",
     "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3"),
    ("vertex", "claude-sonnet-4-5", "claude-sonnet-4-5@20250929"),
    ("vertex", "claude-opus-4-6@default", "claude-opus-4-6@default"),
    ("vertex", "claude-haiku-4-5-20251001", "claude-haiku-4-5@20251001"),
    ("anthropic", "claude-haiku-4-5-20251001", "claude-haiku-4-5-20251001"),
    ("anthropic", "us.anthropic.claude-opus-4-7", "claude-opus-4-7"),
    ("anthropic", "claude-next-9", "claude-next-9"),
    ("bedrock", "claude-next-9", "claude-next-9"),
])
def test_model_ids(provider: providers.Provider, model: str, sent: str) -> None:
    assert model_for(provider, model) == sent


def test_prices_per_provider_and_model() -> None:
    listed = MODELS["claude-sonnet-4-5"]
    for spelled in ("claude-sonnet-4-5", "claude-sonnet-4-5-20250929",
                    "global.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5@20250929"):
        assert model_info(spelled) == listed
        assert model_info(spelled, "bedrock") == listed == model_info(spelled, "vertex")  # global endpoints
    assert model_info("claude-sonnet-4-5", "anthropic", regional=True) == listed
    for provider in ("bedrock", "vertex"):
        regional = model_info("claude-sonnet-4-5", provider, regional=True)
        assert (regional.input, regional.output) == pytest.approx((listed.input * 1.1, listed.output * 1.1))
        assert regional.context_window == listed.context_window
    assert not model_info("claude-next-9", "bedrock").known


def test_regional_endpoints(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    setenv(monkeypatch, {"AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE0000000001",
                         "AWS_SECRET_ACCESS_KEY": "example", "CLOUD_ML_REGION": "global",
                         "ANTHROPIC_VERTEX_PROJECT_ID": "p"})
    assert not providers.route("bedrock", "claude-opus-5-5", settings).regional
    assert providers.route("bedrock", "eu.anthropic.claude-opus-5-5", settings).regional
    assert not providers.route("vertex", "claude-opus-5-5", settings).regional
    monkeypatch.setenv("CLOUD_ML_REGION", "europe-west1")
    assert providers.route("vertex", "claude-opus-5-5", settings).regional


# honk doctor

def test_doctor_checks_each_configured_provider(settings: Settings, fake: FakeMessagesAPI, bedrock: FakeBedrock,
                                                vertex: vertex_fake.FakeVertex, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    setenv(monkeypatch, {**bedrock.env(), **vertex.env(key_file=tmp_path / "key.json")})
    for api in (fake, bedrock, vertex):
        api.script(end("pong"))
    configured = on(settings, fake, honk_provider="bedrock", honk_fallback_provider="vertex",
                    honk_judge_provider="anthropic", honk_judge_model="claude-sonnet-4-5")
    lines = asyncio.run(doctor.check_providers(configured))
    assert [(c.name, c.status) for c in lines] == [("Amazon Bedrock", "ok"), ("Google Vertex AI", "ok"),
                                                    ("Anthropic API", "ok")]
    assert "global.anthropic.claude-opus-5-5 answered" in lines[0].detail and "(coding)" in lines[0].detail
    assert "(fallback)" in lines[1].detail and "(judge)" in lines[2].detail
    # One token from each model, nothing else.
    assert [b["max_tokens"] for b in (*bedrock.bodies, *vertex.bodies, *fake.bodies)] == [1, 1, 1]
    assert fake.bodies[0]["model"] == "claude-sonnet-4-5" and vertex.bodies[0]["model"] == "claude-opus-5-5"
    assert bedrock.calls[0]["auth"] is None and vertex.calls[0]["auth"] is None


def test_doctor_says_what_a_provider_lacks(settings: Settings, bedrock: FakeBedrock, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    vertex_only = settings.model_copy(update={"honk_provider": "vertex", "honk_judge": False})
    [line] = asyncio.run(doctor.check_providers(vertex_only))
    assert line.status == "fail" and "CLOUD_ML_REGION" in line.detail
    setenv(monkeypatch, {**bedrock.env(), "AWS_SECRET_ACCESS_KEY": "wrong/secret/key/0123456789abcdefghijklm"})
    [line] = asyncio.run(doctor.check_providers(vertex_only.model_copy(update={"honk_provider": "bedrock"})))
    assert line.status == "fail" and "403" in line.detail and "bedrock:InvokeModel" in (line.fix or "")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    [line] = asyncio.run(doctor.check_providers(vertex_only.model_copy(update={"honk_provider": "bedrock"})))
    assert line.status == "fail" and "no AWS credentials" in line.detail


def test_the_fakes_refuse_what_the_real_services_refuse(bedrock: FakeBedrock, vertex: vertex_fake.FakeVertex) -> None:
    """The fakes' checks bite: an unsigned or wrongly scoped request, a wrong version, an unknown token."""
    import httpx
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    body = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 1,
                       "messages": [{"role": "user", "content": "x"}]}).encode()
    answer = httpx.post(f"{bedrock.url}/model/m/invoke", content=body)
    assert answer.status_code == 403 and answer.json() == {"message": "Missing Authentication Token"}
    # botocore's own signer: its signature passes; a changed body, another service or region does not.
    for service, region, sent, passes in (("bedrock", "us-east-1", body, True), ("bedrock", "us-east-1", b"{}", False),
                                          ("s3", "us-east-1", body, False), ("bedrock", "eu-west-1", body, False)):
        request = AWSRequest(method="POST", url=f"{bedrock.url}/model/m:0/invoke", data=body,
                             headers={"content-type": "application/json"})
        SigV4Auth(Credentials(bedrock.access_key, bedrock.secret_key), service, region).add_auth(request)
        headers = {k.lower(): v for k, v in request.headers.items()} | {"host": bedrock.url.split("//")[1]}
        assert (bedrock.check_signature("POST", "/model/m:0/invoke", headers, sent) is None) is passes
    frame = bedrock_fake.frame({":event-type": "chunk"}, b"{}")
    assert len(frame) == int.from_bytes(frame[:4], "big")  # the frame's own length prefix
    assert bedrock.check_body({"anthropic_version": "2026-10-21"}) is not None
    assert bedrock.check_body({"anthropic_version": "bedrock-2023-05-31", "model": "m"}) is not None
    answer = httpx.post(f"{vertex.base_url}/projects/{vertex.project}/locations/{vertex.region}/publishers/"
                        "anthropic/models/claude-opus-5-5:rawPredict", headers={"Authorization": "Bearer nope"},
                        content=b"{}")
    assert answer.status_code == 401 and answer.json()["error"]["status"] == "UNAUTHENTICATED"
    assert vertex.check_body({"anthropic_version": "vertex-2023-10-16", "stream": True}, stream=False) is not None


def test_honk_run_shows_the_switch() -> None:
    import io

    from rich.console import Console

    from app.agent.local import _Progress

    out = io.StringIO()
    _Progress(Console(file=out, width=200, color_system=None)).on_event("model.fallback", {
        "turn": 2, "error": "HTTP 529 overloaded_error: Overloaded",
        "from": {"provider": "anthropic", "model": "claude-opus-5-5", "model_id": "claude-opus-5-5"},
        "to": {"provider": "bedrock", "model": "claude-opus-5-5", "model_id": "global.anthropic.claude-opus-5-5"}})
    assert ("anthropic kept failing (HTTP 529 overloaded_error: Overloaded); going on with claude-opus-5-5 on "
            "bedrock") in out.getvalue()
