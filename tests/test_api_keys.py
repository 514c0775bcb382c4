"""API key lifecycle: dashboard, command line, admin; the secret is never stored or shown twice."""

import hashlib
import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from pawa.api.keys import apikey_authenticate, apikey_create
from pawa.api.models import ApiKey, ApiUsage

pytestmark = pytest.mark.django_db


def test_a_key_has_160_bits_or_more_and_only_its_hash_is_stored(owner):
    key, secret = apikey_create(user=owner, name="ci")
    assert re.fullmatch(r"pawa-[A-Za-z0-9_-]{43}", secret)  # 32 random bytes = 256 bits
    stored = ApiKey.objects.get(pk=key.pk)
    assert secret not in str(stored.__dict__.values())
    assert stored.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert stored.display == f"{secret[:13]}…{secret[-4:]}"
    assert apikey_authenticate(secret) == key
    assert apikey_authenticate(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
    assert apikey_authenticate("sk-openai-style") is None


def test_the_dashboard_shows_a_new_key_exactly_once(client, owner):
    client.force_login(owner)
    response = client.post("/dashboard/keys/", {"name": "laptop", "expires_in_days": "30"})
    body = response.content.decode()
    secret = re.search(r'<code id="new-key">(pawa-[^<]+)</code>', body).group(1)
    assert "Ufunguo huu unaonyeshwa mara moja tu" in body
    assert response["Cache-Control"].startswith("max-age=0") or "no-cache" in response["Cache-Control"]
    key = ApiKey.objects.get(user=owner)
    assert key.name == "laptop" and key.expires_at is not None
    again = client.get("/dashboard/keys/").content.decode()
    assert secret not in again and key.display in again
    assert apikey_authenticate(secret) == key


def test_the_dashboard_refuses_a_nameless_key(client, owner):
    client.force_login(owner)
    response = client.post("/dashboard/keys/", {"name": "", "expires_in_days": "-3"})
    assert response.status_code == 200
    assert ApiKey.objects.count() == 0
    assert "Sehemu hii inahitajika." in response.content.decode()


def test_revoking_from_the_dashboard(client, owner, outsider):
    key, secret = apikey_create(user=owner, name="old")
    client.force_login(outsider)
    assert client.post(f"/dashboard/keys/{key.pk}/revoke/").status_code == 404
    assert apikey_authenticate(secret) == key
    client.force_login(owner)
    client.post(f"/dashboard/keys/{key.pk}/revoke/")
    assert apikey_authenticate(secret) is None
    assert "Umebatilishwa" in client.get("/dashboard/keys/").content.decode() or "Revoked" in client.get("/dashboard/keys/", HTTP_ACCEPT_LANGUAGE="en").content.decode()


def test_outsiders_do_not_see_other_keys_or_usage(client, owner, outsider):
    key, _ = apikey_create(user=owner, name="secret-project")
    ApiUsage.objects.create(api_key=key, user=owner, endpoint="chat.completions", model_name="m", status_code=200)
    client.force_login(outsider)
    assert "secret-project" not in client.get("/dashboard/keys/").content.decode()
    assert "secret-project" not in client.get("/dashboard/usage/").content.decode()


def test_usage_page_groups_by_day_and_key(client, owner):
    key, _ = apikey_create(user=owner, name="laptop")
    for tokens in (10, 20):
        ApiUsage.objects.create(api_key=key, user=owner, endpoint="chat.completions", model_name="gemma3-270m",
                                status_code=200, prompt_tokens=tokens, completion_tokens=5)
    client.force_login(owner)
    body = client.get("/dashboard/usage/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Per day" in body and "Per key" in body and "laptop" in body
    assert "<td>2</td><td>30</td><td>10</td>" in body.replace("\n", "")


def test_the_command_prints_only_the_key(owner):
    out, err = StringIO(), StringIO()
    call_command("apikey", "create", "--user", owner.email, "--name", "ops", stdout=out, stderr=err)
    secret = out.getvalue().strip()
    assert re.fullmatch(r"pawa-\S+", secret) and "\n" not in secret
    key = apikey_authenticate(secret)
    assert key.user == owner and key.name == "ops"
    call_command("apikey", "revoke", key.prefix, stdout=StringIO(), stderr=StringIO())
    assert apikey_authenticate(secret) is None
    with pytest.raises(CommandError):
        call_command("apikey", "create", "--user", "nobody@example.com", "--name", "x")
    with pytest.raises(CommandError):
        call_command("apikey", "revoke", "pawa-nothing")


def test_admins_see_and_revoke_keys_but_never_secrets(client, owner, staff):
    staff.is_superuser = True
    staff.save()
    key, secret = apikey_create(user=owner, name="to-revoke")
    client.force_login(staff)
    page = client.get(f"/admin/api/apikey/{key.pk}/change/").content.decode()
    assert key.display in client.get("/admin/api/apikey/").content.decode()
    assert secret not in page and key.secret_hash not in page
    client.post("/admin/api/apikey/", {"action": "revoke", "_selected_action": [key.pk]})
    assert apikey_authenticate(secret) is None


def test_admins_see_generation_metadata_but_not_the_conversation(client, owner, staff):
    from pawa.generation.models import Generation

    staff.is_superuser = True
    staff.save()
    generation = Generation.objects.create(user=owner, model_name="gemma3-270m", status="complete",
                                           prompt=[{"role": "user", "content": "siri yangu ya ndani"}],
                                           text="jibu la siri", completion_tokens=5)
    client.force_login(staff)
    listing = client.get("/admin/generation/generation/").content.decode()
    assert "gemma3-270m" in listing
    detail = client.get(f"/admin/generation/generation/{generation.pk}/change/").content.decode()
    assert "siri yangu" not in detail and "jibu la siri" not in detail


def test_a_new_key_never_inherits_the_request_count_of_a_deleted_one(owner):
    """Counts follow the key's random prefix: a database id reused after a delete (or a test's
    rollback) starts from zero."""
    from pawa.api.errors import ApiError
    from pawa.api.limits import check_and_count_request
    from pawa.api.models import ApiLimits

    ApiLimits.objects.update_or_create(user=owner, defaults={"requests_per_minute": 2})
    owner.refresh_from_db()
    first, _ = apikey_create(user=owner, name="first")
    check_and_count_request(first, owner)
    check_and_count_request(first, owner)
    with pytest.raises(ApiError):
        check_and_count_request(first, owner)
    reused_id = first.pk
    first.delete()
    second, _ = apikey_create(user=owner, name="second")
    ApiKey.objects.filter(pk=second.pk).update(id=reused_id)
    second = ApiKey.objects.get(pk=reused_id)
    headers = check_and_count_request(second, owner)
    assert headers["x-ratelimit-remaining-requests"] == "1"
