"""The first administrator is made by email alone and logs in with it; where emails go is said."""

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_createsuperuser_works_by_email_alone(client, monkeypatch, django_user_model):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "Mnazi-Mmoja-2026")
    call_command("createsuperuser", "--email", "mkuu@example.com", "--noinput", verbosity=0)
    admin = django_user_model.objects.get(email="mkuu@example.com")
    assert admin.is_superuser and admin.is_staff and admin.username == "mkuu"
    response = client.post("/accounts/login/", {"login": "mkuu@example.com", "password": "Mnazi-Mmoja-2026"})
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_a_second_admin_with_the_same_local_part_gets_its_own_username(monkeypatch, django_user_model, owner):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "Mnazi-Mmoja-2026")
    call_command("createsuperuser", "--email", "amina@admin.example", "--noinput", verbosity=0)
    assert django_user_model.objects.get(email="amina@admin.example").username == "amina2"


def test_an_address_that_already_has_an_account_is_a_clear_error(monkeypatch, django_user_model):
    from django.core.management import CommandError

    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "Mnazi-Mmoja-2026")
    call_command("createsuperuser", "--email", "mkuu@example.com", "--noinput", verbosity=0)
    with pytest.raises(CommandError, match="already exists"):
        call_command("createsuperuser", "--email", "MKUU@example.com", "--noinput", verbosity=0)
    assert django_user_model.objects.filter(email__iexact="mkuu@example.com").count() == 1


def test_the_password_reset_page_says_where_emails_go_locally(client, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    body = client.get("/accounts/password/reset/", HTTP_ACCEPT_LANGUAGE="sw").content.decode()
    assert "kumbukumbu (log) ya seva" in body
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    assert "kumbukumbu (log) ya seva" not in client.get("/accounts/password/reset/").content.decode()


@pytest.mark.parametrize("language", ["sw", "en"])
def test_the_docs_say_how_to_become_admin_and_list_the_email_settings(client, language):
    body = client.get("/docs/getting-started/", HTTP_ACCEPT_LANGUAGE=language).content.decode()
    assert "createsuperuser --email" in body
    for name in ["EMAIL_BACKEND", "EMAIL_HOST", "EMAIL_PORT", "EMAIL_USE_TLS", "EMAIL_HOST_USER", "DEFAULT_FROM_EMAIL"]:
        assert name in body
