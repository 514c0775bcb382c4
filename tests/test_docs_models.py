"""Documentation pages computed from the installed models."""

import re

import pytest

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def test_models_page_shows_each_model_card(client, real_models):
    body = client.get("/docs/models/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "SmolLM2 135M Instruct" in body and "Gemma 3 270M (base)" in body
    assert "base model (continues text)" in body and "Apache-2.0" in body
    swahili = client.get("/docs/models/").content.decode()
    assert "modeli ya msingi" in swahili and "Vigezo milioni 270" not in swahili


def test_quantization_page_is_computed_from_a_real_model(client, real_models):
    body = client.get("/docs/quantization/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "blk.0.attn_q.weight" in body
    block = re.search(r"<figcaption>int8</figcaption>(.*?)</table>", body, re.S).group(1)
    values = [int(v) for v in re.findall(r"<td>(-?\d+)</td>", block)]
    assert len(values) == 16 and all(-127 <= v <= 127 for v in values) and any(values)
    assert "row scale" in body and "restored" in body and "error" in body
    assert "MiB" in body
    assert "Ubanaji" in client.get("/docs/quantization/").content.decode()
