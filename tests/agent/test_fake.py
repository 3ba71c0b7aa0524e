"""The fake Messages API rejects what the real one rejects, and can be scripted from another process."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import anthropic
import pytest

from tests.agent.conftest import run
from tests.fakes.messages_api import FakeMessagesAPI, bash, end, error, reply, thinking

USER = {"role": "user", "content": "hi"}


def call(fake: FakeMessagesAPI, stream: bool = False, **params: Any) -> Any:
    client = anthropic.AsyncAnthropic(base_url=fake.url, api_key="k", max_retries=0)
    params = {"model": "claude-opus-5-5", "max_tokens": 1000, "messages": [USER], **params}

    async def main() -> Any:
        if stream:
            async with client.messages.stream(**params) as events:
                return await events.get_final_message()
        return await client.messages.create(**params)

    return run(main())


def turn(fake: FakeMessagesAPI, stream: bool = False) -> tuple[list[dict[str, Any]], Any]:
    """One tool-use reply from the fake, returned as the assistant message a client would send back."""
    message = call(fake, stream)
    return [USER, {"role": "assistant", "content": [b.to_dict() for b in message.content]}], message


@pytest.mark.parametrize("param", [{"temperature": 0.2}, {"top_p": 0.9}, {"top_k": 5}])
def test_rejects_sampling_parameters(fake: FakeMessagesAPI, param: dict[str, Any]) -> None:
    fake.script(end("x"))
    with pytest.raises(anthropic.BadRequestError, match="not supported"):
        call(fake, extra_body=param)  # SDK 2.x has no such arguments; send them as raw JSON
    assert fake.pending == 1  # a rejected request does not use up the script


def test_rejects_forced_tool_choice_and_manual_thinking(fake: FakeMessagesAPI) -> None:
    fake.script(end("x"))
    with pytest.raises(anthropic.BadRequestError, match="tool_choice"):
        call(fake, tool_choice={"type": "any"})
    with pytest.raises(anthropic.BadRequestError, match=r"thinking\.type\.enabled"):
        call(fake, thinking={"type": "enabled", "budget_tokens": 2000})


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_thinking_must_come_back_unchanged(fake: FakeMessagesAPI, stream: bool) -> None:
    fake.script(reply(thinking("secret plan"), bash("ls")))
    messages, message = turn(fake, stream)
    assert message.content[0].signature and message.stop_reason == "tool_use"
    result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": message.content[1].id,
                                           "content": "ok"}]}
    altered = json.loads(json.dumps(messages))
    altered[1]["content"][0]["thinking"] = "another plan"
    dropped = json.loads(json.dumps(messages))
    del dropped[1]["content"][0]
    fake.script(end("x"))
    with pytest.raises(anthropic.BadRequestError, match="signature"):
        call(fake, stream, messages=[*altered, result])
    with pytest.raises(anthropic.BadRequestError, match="dropped"):
        call(fake, stream, messages=[*dropped, result])
    assert call(fake, stream, messages=[*messages, result]).content[0].text == "x"


def test_tool_results_must_be_first_and_match(fake: FakeMessagesAPI) -> None:
    fake.script(reply(bash("ls"), bash("pwd")))
    messages, message = turn(fake)
    ids = [b.id for b in message.content]
    results = [{"type": "tool_result", "tool_use_id": i, "content": "ok"} for i in ids]
    fake.script(end("x"))
    with pytest.raises(anthropic.BadRequestError, match="must come first"):
        call(fake, messages=[*messages, {"role": "user", "content": [{"type": "text", "text": "hm"}, *results]}])
    with pytest.raises(anthropic.BadRequestError, match="without `tool_result`"):
        call(fake, messages=[*messages, {"role": "user", "content": results[:1]}])
    with pytest.raises(anthropic.BadRequestError, match="unexpected `tool_use_id`"):
        call(fake, messages=[*messages, {"role": "user", "content": [
            *results, {"type": "tool_result", "tool_use_id": "toolu_other", "content": "?"}]}])
    with pytest.raises(anthropic.BadRequestError, match="prefill"):
        call(fake, messages=messages)
    assert call(fake, messages=[*messages, {"role": "user", "content": results}]).content[0].text == "x"


def test_rejects_unknown_block_fields_and_too_many_breakpoints(fake: FakeMessagesAPI) -> None:
    fake.script(end("x"))
    cached = {"type": "ephemeral"}
    with pytest.raises(anthropic.BadRequestError, match="Extra inputs"):
        call(fake, messages=[{"role": "user", "content": [{"type": "text", "text": "a", "parsed_output": None}]}])
    with pytest.raises(anthropic.BadRequestError, match="maximum of 4"):
        call(fake, system=[{"type": "text", "text": "s", "cache_control": cached}],
             messages=[{"role": "user", "content": [{"type": "text", "text": str(i), "cache_control": cached}
                                                    for i in range(4)]}])


def test_errors_carry_retry_after(fake: FakeMessagesAPI) -> None:
    fake.script(error(529, retry_after=7))
    client = anthropic.AsyncAnthropic(base_url=fake.url, api_key="k", max_retries=0)

    async def main() -> None:
        await client.messages.create(model="m", max_tokens=10, messages=[USER])

    with pytest.raises(anthropic.APIStatusError) as caught:
        run(main())
    assert caught.value.status_code == 529 and caught.value.response.headers["retry-after"] == "7"


def test_simulates_prompt_caching(fake: FakeMessagesAPI) -> None:
    cached = {"type": "ephemeral"}
    system = [{"type": "text", "text": "system prompt " * 200, "cache_control": cached}]
    fake.script(end("a"), end("b"))
    first = call(fake, system=system).usage
    second = call(fake, system=system, messages=[{"role": "user", "content": "different question"}]).usage
    assert first.cache_creation_input_tokens > 500 and first.cache_read_input_tokens == 0
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens


def test_http_control_routes(fake: FakeMessagesAPI) -> None:
    def post(path: str, payload: Any) -> Any:
        request = urllib.request.Request(fake.url + path, data=json.dumps(payload).encode(),
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    assert post("/_script", [end("one"), end("two")]) == {"pending": 2}
    assert post("/_script", end("three")) == {"pending": 3}
    assert call(fake).content[0].text == "one"
    with urllib.request.urlopen(fake.url + "/_requests", timeout=5) as response:
        recorded = json.loads(response.read())
    assert recorded[-1]["body"]["messages"] == [USER] and recorded[-1]["headers"]["anthropic-version"]
    assert post("/_reset", {}) == {"pending": 0} and fake.requests == []


def test_empty_script_is_a_clear_error(fake: FakeMessagesAPI) -> None:
    with pytest.raises(anthropic.BadRequestError, match="no scripted reply left"):
        call(fake)
