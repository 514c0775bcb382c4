"""Structured output: response_format json_object / json_schema guide the decoding (inference/guided.py)."""

import json

import jsonschema
import openai
import pytest
from pydantic import BaseModel

from pawa.api.keys import apikey_create
from pawa.generation.models import Generation

SMOL = "smollm2-135m-instruct"


@pytest.fixture
def auth(owner):
    return {"HTTP_AUTHORIZATION": f"Bearer {apikey_create(user=owner, name='t')[1]}"}


@pytest.mark.django_db
@pytest.mark.parametrize("response_format,words", [
    ({"type": "sound"}, ["sound"]),
    ("json", ["Unsupported"]),
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": []}}, ["schema"]),
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "strin"}}}, ["strin"]),
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "type": "object", "if": {"type": "object"}, "then": {}}}}, ["if", "then"]),
])
def test_unsupported_formats_and_schemas_are_a_400_naming_the_problem(client, auth, real_models, response_format,
                                                                       words):
    body = {"model": SMOL, "messages": [{"role": "user", "content": "hi"}], "response_format": response_format}
    response = client.post("/v1/chat/completions", json.dumps(body), content_type="application/json", **auth)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "response_format"
    assert all(word in error["message"] for word in words), error["message"]
    assert Generation.objects.count() == 0


@pytest.fixture
def sdk(live_asgi, owner, real_models, celery_worker):
    return openai.OpenAI(base_url=f"{live_asgi}/v1", api_key=apikey_create(user=owner, name="t")[1], max_retries=0,
                         timeout=120)


class City(BaseModel):
    name: str
    country: str
    population: int
    coastal: bool


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_sdk_parse_helper_returns_a_parsed_object(sdk):
    completion = sdk.chat.completions.parse(
        model=SMOL, messages=[{"role": "user", "content": "Describe the city of Mombasa."}], response_format=City,
        # Room for both free strings at their bound (256 characters each), so the answer can close.
        temperature=0, max_tokens=600,
    )
    city = completion.choices[0].message.parsed
    assert isinstance(city, City) and city.name
    assert completion.choices[0].finish_reason == "stop"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("stream", [False, True])
def test_json_object_and_json_schema_answers_parse_and_validate(sdk, stream):
    schema = {"type": "object", "properties": {
        "animals": {"type": "array", "items": {"type": "string", "enum": ["lion", "zebra", "elephant", "giraffe"]},
                    "minItems": 2, "maxItems": 4},
        "count": {"type": "integer", "minimum": 0, "maximum": 100}},
        "required": ["animals", "count"], "additionalProperties": False}
    for response_format in [{"type": "json_object"},
                            {"type": "json_schema", "json_schema": {"name": "zoo", "schema": schema, "strict": True}}]:
        kwargs = dict(model=SMOL, messages=[{"role": "user", "content": "Which animals live in the Serengeti?"}],
                      response_format=response_format, temperature=0.7, max_tokens=400)  # room for a 256-character string
        if stream:
            text = "".join(c.choices[0].delta.content or "" for c in sdk.chat.completions.create(**kwargs, stream=True)
                           if c.choices)
        else:
            text = sdk.chat.completions.create(**kwargs).choices[0].message.content
        value = json.loads(text)
        assert isinstance(value, dict)
        if response_format["type"] == "json_schema":
            jsonschema.validate(value, schema)
