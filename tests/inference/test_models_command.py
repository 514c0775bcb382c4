"""python manage.py models …"""

import json

import pytest
from django.core.management import CommandError, call_command


@pytest.fixture
def models_dir(settings, tmp_path):
    settings.PAWA_MODELS_DIR = tmp_path / "models"
    return settings.PAWA_MODELS_DIR


def run(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command("models", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_install_list_show_configure_remove(models_dir, tiny_models):
    assert "No models installed" in run("list")
    assert "Installed tiny" in run("install", str(tiny_models["llama"]["gguf"]), "--name", "tiny")
    assert "already installed" in run("install", str(tiny_models["llama"]["gguf"]), "--name", "tiny")
    listing = run("list")
    assert "tiny" in listing and "instruct" in listing and "int8" in listing
    card = json.loads(run("show", "tiny"))
    assert card["architecture"] == "llama" and card["source"]["sha256"]
    assert "float32" in run("configure", "tiny", "--compute-type", "float32", "--threads", "2")
    assert json.loads(run("show", "tiny"))["threads"] == 2
    assert "Removed tiny" in run("remove", "tiny")
    assert "No models installed" in run("list")


def test_try_streams_an_answer(models_dir, tiny_models):
    run("install", str(tiny_models["llama"]["gguf"]), "--name", "tiny")
    output = run("try", "tiny", "--prompt", "habari", "--temperature", "0", "--max-tokens", "5")
    assert output.strip()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("install", "no-such-model"), "neither a built-in model"),
        (("show", "missing"), "not installed"),
        (("remove", "missing"), "not installed"),
        (("try", "missing", "--prompt", "x"), "not installed"),
    ],
)
def test_bad_input_is_a_clear_error(models_dir, args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)
