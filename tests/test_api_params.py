"""Parameters and shapes real clients rely on: validation, penalties, logit_bias, prefill,
chunked bodies, CORS, headers and the language of errors."""

import json

import httpx2 as httpx
import openai
import pytest

from pawa.api.keys import apikey_create
from pawa.generation.models import Generation

SMOL = "smollm2-135m-instruct"
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def auth(owner):
    return {"HTTP_AUTHORIZATION": f"Bearer {apikey_create(user=owner, name='t')[1]}"}


def post(client, auth, body, path="/v1/chat/completions", **extra):
    return client.post(path, json.dumps(body), content_type="application/json", **auth, **extra)


@pytest.mark.django_db
@pytest.mark.parametrize("extra,param", [
    ({"n": 2}, "n"),
    ({"presence_penalty": -2.5}, "presence_penalty"),
    ({"frequency_penalty": 2.01}, "frequency_penalty"),
    ({"seed": 2**64}, "seed"),
    ({"seed": -(2**63) - 1}, "seed"),
    ({"logit_bias": {"abc": 1}}, "logit_bias"),
    ({"logit_bias": {"42": 101}}, "logit_bias"),
    ({"logit_bias": {"42": -100.5}}, "logit_bias"),
    ({"logit_bias": {"99999999": -100}}, "logit_bias"),
    ({"stream_options": {"include_usage": True}}, "stream_options"),
    ({"stream": False, "stream_options": {"include_usage": True}}, "stream_options"),
    ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
])
def test_it_refuses_out_of_range_parameters_with_a_400_naming_them(client, auth, real_models, extra, param):
    response = post(client, auth, {"model": SMOL, "messages": HI, **extra})
    assert response.status_code == 400, response.content
    assert response.json()["error"]["param"] == param
    assert Generation.objects.count() == 0


@pytest.mark.django_db
def test_errors_are_english_by_default_and_swahili_when_asked(client, auth, real_models):
    english = post(client, auth, {"model": "gpt-9", "messages": HI})
    assert english.status_code == 404
    assert english.json()["error"]["message"] == ("The model “gpt-9” is not installed. "
                                                  "GET /v1/models lists the installed models.")
    # The site's own language cookie does not change what a program reads.
    client.cookies["django_language"] = "sw"
    assert post(client, auth, {"model": "gpt-9", "messages": HI}).json() == english.json()
    swahili = post(client, auth, {"model": "gpt-9", "messages": HI}, HTTP_ACCEPT_LANGUAGE="sw-TZ,en;q=0.5")
    assert swahili.json()["error"]["message"] == ("Modeli “gpt-9” haijasakinishwa. "
                                                  "GET /v1/models huorodhesha modeli zilizosakinishwa.")
    assert swahili["Content-Language"] == "sw" and english["Content-Language"] == "en"


@pytest.mark.django_db
def test_the_decoder_never_ends_an_answer_inside_a_character(smollm):
    from inference.text import IncrementalDecoder

    ids = smollm.tokenizer.encode("Simba 🦁", add_special_tokens=False).ids
    for cut in range(1, len(ids) + 1):
        decoder = IncrementalDecoder(smollm.tokenizer)
        text = "".join(decoder.add(i) for i in ids[:cut]) + decoder.flush()
        assert "\ufffd" not in text and "Simba 🦁".startswith(text)


# Live server ------------------------------------------------------------------------------

live = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def api_key(owner):
    return apikey_create(user=owner, name="tests")[1]


@pytest.fixture
def sdk(live_asgi, api_key, real_models, celery_worker):
    return openai.OpenAI(base_url=f"{live_asgi}/v1", api_key=api_key, max_retries=0, timeout=60)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_negative_penalties_are_accepted_and_mapped(sdk):
    response = sdk.chat.completions.create(model=SMOL, messages=HI, max_tokens=4, presence_penalty=-1.5,
                                           frequency_penalty=0.5, seed=2**64 - 1, temperature=0.5)
    assert response.choices[0].message.content
    assert Generation.objects.get().params["repetition_penalty"] == pytest.approx(1 - 0.25 * 1.5)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_logit_bias_of_minus_100_bans_the_token(sdk, real_models):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(real_models.path(SMOL) / "tokenizer.json"))
    kwargs = dict(model=SMOL, messages=[{"role": "user", "content": "What is the capital of Tanzania?"}],
                  temperature=0, max_tokens=8)
    plain = sdk.chat.completions.create(**kwargs).choices[0].message.content
    first = tokenizer.encode(plain, add_special_tokens=False).ids[0]
    banned = sdk.chat.completions.create(**kwargs, logit_bias={str(first): -100, "13": 5}).choices[0].message.content
    assert first not in tokenizer.encode(banned, add_special_tokens=False).ids


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_an_answer_continues_a_final_assistant_message(sdk):
    messages = [{"role": "user", "content": "What is the capital of France?"},
                {"role": "assistant", "content": "The capital of France is"}]
    response = sdk.chat.completions.create(model=SMOL, messages=messages, temperature=0, max_tokens=6)
    assert "Paris" in response.choices[0].message.content
    assert not response.choices[0].message.content.startswith("The capital")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_conversation_of_only_a_system_message_is_answered(sdk):
    response = sdk.chat.completions.create(
        model=SMOL, messages=[{"role": "system", "content": "Greet the user in one short sentence."}],
        temperature=0, max_tokens=12)
    assert response.choices[0].message.content.strip()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_chunked_body_without_content_length_is_read(live_asgi, api_key, real_models, celery_worker):
    body = json.dumps({"model": SMOL, "messages": HI, "max_tokens": 3}).encode()

    def pieces():
        for start in range(0, len(body), 16):
            yield body[start:start + 16]

    response = httpx.post(f"{live_asgi}/v1/chat/completions", content=pieces(), timeout=60,
                          headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"})
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.request.headers
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] is not None


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_streamed_chunks_carry_null_usage_until_the_last_and_a_processing_time(sdk):
    raw = sdk.chat.completions.with_raw_response.create(model=SMOL, messages=HI, max_tokens=5, stream=True,
                                                        stream_options={"include_usage": True})
    assert int(raw.headers["openai-processing-ms"]) >= 0
    chunks = list(raw.parse())
    assert all(c.usage is None and "usage" in c.model_fields_set for c in chunks[:-1])
    assert chunks[-1].usage.total_tokens > 0


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_browser_apps_get_cors_and_a_preflight_needs_no_key(live_asgi, api_key, real_models):
    preflight = httpx.options(f"{live_asgi}/v1/chat/completions", headers={
        "Origin": "https://app.example.org", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "authorization" in preflight.headers["access-control-allow-headers"]
    assert "access-control-allow-credentials" not in preflight.headers
    models = httpx.get(f"{live_asgi}/v1/models", headers={"Origin": "https://app.example.org",
                                                            "Authorization": f"Bearer {api_key}"})
    assert models.headers["access-control-allow-origin"] == "*"
    # The site's own pages are not opened to other origins.
    assert "access-control-allow-origin" not in httpx.get(f"{live_asgi}/", headers={"Origin": "https://x.org"}).headers


def test_a_refusal_quoting_the_engine_is_never_half_swahili():
    from django.utils import translation
    from django.utils.translation import gettext_lazy as _

    from pawa.api.views import refusal_error
    from pawa.generation.admission import GenerationRefused

    refused = GenerationRefused("invalid_parameter", _("Invalid %(field)s: %(detail)s"), param="top_p",
                                field="top_p", detail="top_p must be greater than 0 and at most 1")
    with translation.override("sw"):
        error = refusal_error(refused)
    assert error.body["error"]["message"] == "Invalid top_p: top_p must be greater than 0 and at most 1"
