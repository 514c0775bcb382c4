"""logprobs / top_logprobs on chat and logprobs on completions, equal streamed and not."""

import pytest

import openai

from pawa.api.keys import apikey_create

SMOL = "smollm2-135m-instruct"
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def sdk(live_asgi, owner, real_models, celery_worker):
    return openai.OpenAI(base_url=f"{live_asgi}/v1", api_key=apikey_create(user=owner, name="t")[1], max_retries=0,
                         timeout=120)


def test_chat_logprobs_are_the_same_streamed_and_not(sdk):
    kwargs = dict(model=SMOL, messages=[{"role": "user", "content": "Name a colour."}], temperature=0, max_tokens=12,
                  logprobs=True, top_logprobs=3)
    whole = sdk.chat.completions.create(**kwargs)
    content = whole.choices[0].logprobs.content
    assert len(content) == whole.usage.completion_tokens
    assert "".join(entry.token for entry in content).strip() == whole.choices[0].message.content.strip()
    for entry in content:
        assert entry.logprob <= 0 and len(entry.top_logprobs) == 3
        assert entry.top_logprobs[0].logprob >= entry.top_logprobs[-1].logprob
        assert entry.top_logprobs[0].logprob >= entry.logprob - 1e-4  # greedy: the chosen token is the best
    streamed = [e for c in sdk.chat.completions.create(**kwargs, stream=True)
                if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content]
    assert [(e.token, round(e.logprob, 4)) for e in streamed] == [(e.token, round(e.logprob, 4)) for e in content]
    plain = sdk.chat.completions.create(**{**kwargs, "logprobs": None, "top_logprobs": None})
    assert plain.choices[0].logprobs is None


def test_completion_logprobs_are_the_same_streamed_and_not(sdk):
    kwargs = dict(model=SMOL, prompt="The capital of France is", temperature=0, max_tokens=6, logprobs=2)
    whole = sdk.completions.create(**kwargs).choices[0].logprobs
    assert len(whole.tokens) == len(whole.token_logprobs) == len(whole.top_logprobs) == 6
    assert all(len(top) <= 2 for top in whole.top_logprobs) and whole.text_offset[0] == 0
    tokens = [t for c in sdk.completions.create(**kwargs, stream=True) if c.choices and c.choices[0].logprobs
              for t in c.choices[0].logprobs.tokens]
    assert tokens == whole.tokens
