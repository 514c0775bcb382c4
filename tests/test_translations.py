"""Every user-facing string has Swahili, and the compiled catalogs match their sources."""

import gettext
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CATALOGS = [ROOT / "locale/sw/LC_MESSAGES", ROOT / "locale_thirdparty/sw/LC_MESSAGES"]


def po_entries(path: Path) -> dict[str, str]:
    """Tiny .po reader: msgid -> msgstr (msgstr[0] for plurals)."""
    entries, key, field, fuzzy = {}, None, None, False
    values: dict[str, str] = {}
    import ast

    def flush():
        nonlocal values, fuzzy
        if "msgid" in values and values["msgid"]:
            entries[values["msgid"]] = "" if fuzzy else values.get("msgstr", values.get("msgstr[0]", ""))
        values, fuzzy = {}, False

    for line in path.read_text(encoding="utf8").splitlines() + [""]:
        if not line.strip():
            flush()
        elif line.startswith("#,") and "fuzzy" in line:
            fuzzy = True
        elif line.startswith("#"):
            continue
        elif line.startswith('"'):
            values[field] += ast.literal_eval(line)
        else:
            field, _, rest = line.partition(" ")
            values[field] = ast.literal_eval(rest)
    return entries


@pytest.mark.parametrize("catalog", CATALOGS, ids=lambda p: p.parent.parent.parent.name)
def test_every_string_is_translated_to_swahili(catalog):
    entries = po_entries(catalog / "django.po")
    assert entries
    untranslated = [msgid for msgid, msgstr in entries.items() if not msgstr]
    assert untranslated == []


@pytest.mark.parametrize("catalog", CATALOGS, ids=lambda p: p.parent.parent.parent.name)
def test_compiled_catalog_is_up_to_date(catalog):
    with (catalog / "django.mo").open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    for msgid, msgstr in po_entries(catalog / "django.po").items():
        assert compiled._catalog.get(msgid, compiled._catalog.get((msgid, 0))) == msgstr, msgid


def test_every_string_in_the_code_is_in_the_catalog(tmp_path):
    """Strings marked for translation but never extracted would show in English on Swahili
    pages: extract them afresh (as the README's makemessages line does) into a copy."""
    import shutil
    import subprocess
    import sys

    for name in ["pawa", "templates", "static", "inference", "manage.py"]:
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, tmp_path / name)
    (tmp_path / "locale/sw/LC_MESSAGES").mkdir(parents=True)
    shutil.copy(CATALOGS[0] / "django.po", tmp_path / "locale/sw/LC_MESSAGES/django.po")
    import os

    env = dict(os.environ, DJANGO_SETTINGS_MODULE="pawa.settings", PAWA_VAR_DIR=str(tmp_path / "var"))
    subprocess.run([sys.executable, "manage.py", "makemessages", "-l", "sw", "--no-location", "-i", "static/vendor/*"],
                   cwd=tmp_path, check=True, capture_output=True, env=env)
    fresh = po_entries(tmp_path / "locale/sw/LC_MESSAGES/django.po")
    thirdparty = po_entries(CATALOGS[1] / "django.po")  # allauth's and Django's own strings
    missing = [msgid for msgid, msgstr in fresh.items() if not msgstr and not thirdparty.get(msgid)]
    assert missing == []
