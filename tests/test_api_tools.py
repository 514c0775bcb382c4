"""Tool calls: tools + tool_choice, forced calls guided by the function's parameters schema,
and tool messages in the history."""

import json

import jsonschema
import openai
import pytest

from pawa.api.keys import apikey_create

SMOL = "smollm2-135m-instruct"
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                   "required": ["city", "unit"], "additionalProperties": False}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "The local time in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
ASK = [{"role": "user", "content": "What is the weather like in Arusha?"}]


@pytest.fixture
def auth(owner):
    return {"HTTP_AUTHORIZATION": f"Bearer {apikey_create(user=owner, name='t')[1]}"}


@pytest.mark.django_db
@pytest.mark.parametrize("extra,param", [
    ({"tools": [{"type": "retrieval"}]}, "tools"),
    ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "if": {}}}}]},
     "tools"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "get_time"}}}, "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tools": [WEATHER], "tool_choice": "always"}, "tool_choice"),
])
def test_bad_tools_and_choices_are_a_400(client, auth, real_models, extra, param):
    body = {"model": SMOL, "messages": ASK, **extra}
    response = client.post("/v1/chat/completions", json.dumps(body), content_type="application/json", **auth)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["param"] == param


@pytest.fixture
def sdk(live_asgi, owner, real_models, celery_worker):
    return openai.OpenAI(base_url=f"{live_asgi}/v1", api_key=apikey_create(user=owner, name="t")[1], max_retries=0,
                         timeout=120)


def _valid(call, tool):
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == tool["function"]["name"]
    jsonschema.validate(json.loads(call.function.arguments), tool["function"]["parameters"])


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "get_weather"}}])
def test_a_forced_tool_call_has_valid_arguments(sdk, choice):
    response = sdk.chat.completions.create(model=SMOL, messages=ASK, tools=[WEATHER, TIME] if choice == "required"
                                           else [WEATHER], tool_choice=choice, temperature=0, max_tokens=100)
    choice0 = response.choices[0]
    assert choice0.finish_reason == "tool_calls" and choice0.message.content is None
    call = choice0.message.tool_calls[0]
    _valid(call, WEATHER if call.function.name == "get_weather" else TIME)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("tools", [[WEATHER], [WEATHER, TIME]])
def test_a_forced_tool_call_streams_as_openai_streams_it(sdk, tools):
    stream = sdk.chat.completions.create(model=SMOL, messages=ASK, tools=tools, tool_choice="required",
                                         temperature=0, max_tokens=100, stream=True)
    chunks = [c for c in stream if c.choices]
    calls = [t for c in chunks for t in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].id and calls[0].function.name
    arguments = "".join(t.function.arguments or "" for t in calls)
    name = calls[0].function.name
    jsonschema.validate(json.loads(arguments), (WEATHER if name == "get_weather" else TIME)["function"]["parameters"])
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["tool_calls"]
    assert all(c.choices[0].delta.content is None for c in chunks)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_tool_results_in_the_history_are_read_and_none_answers_in_text(sdk):
    messages = [*ASK, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "get_weather", "arguments": json.dumps({"city": "Arusha", "unit": "celsius"})}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": json.dumps({"temperature": 24, "sky": "sunny"})}]
    response = sdk.chat.completions.create(model=SMOL, messages=messages, tools=[WEATHER], tool_choice="none",
                                           temperature=0, max_tokens=40)
    answer = response.choices[0]
    assert answer.finish_reason in ("stop", "length") and answer.message.tool_calls is None
    assert answer.message.content


def test_an_auto_answer_that_is_only_a_call_becomes_one_and_prose_stays_prose():
    import uuid
    from types import SimpleNamespace

    from pawa.api.views import _auto_tool_call

    context = {"generation": SimpleNamespace(id=uuid.uuid4()), "auto_tools": ["get_weather"]}
    call = _auto_tool_call(context, '```json\n{"name": "get_weather", "arguments": {"city": "Moshi"}}\n```')
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Moshi"}'}
    assert _auto_tool_call(context, "It is sunny in Moshi.") is None
    assert _auto_tool_call(context, '{"name": "launch_rocket", "arguments": {}}') is None
