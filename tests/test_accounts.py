import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client

pytestmark = pytest.mark.django_db


def signup(client, email="neema@example.com", password1="Mlima-Kilimanjaro-5895", password2=None, **headers):
    return client.post(
        "/accounts/signup/",
        {"email": email, "password1": password1, "password2": password2 or password1},
        **headers,
    )


def test_it_registers_a_user_and_opens_the_dashboard(client):
    response = signup(client)
    assert response.status_code == 302
    assert response["Location"] == "/dashboard/"
    user = get_user_model().objects.get(email="neema@example.com")
    assert user.password.startswith("md5$")  # test hasher; production uses Argon2
    dashboard = client.get("/dashboard/").content.decode()
    assert "Karibu, neema@example.com" in dashboard


def test_passwords_are_hashed_with_argon2_outside_tests():
    from pawa import settings as project_settings

    assert project_settings.PASSWORD_HASHERS[0].endswith("Argon2PasswordHasher")


def test_it_refuses_an_existing_email_in_swahili(client, owner):
    response = signup(client, email=owner.email)
    assert response.status_code == 200
    assert "Tayari kuna mtumiaji aliyesajiliwa kwa barua pepe hii." in response.content.decode()
    assert get_user_model().objects.filter(email=owner.email).count() == 1


def test_it_refuses_a_weak_password(client):
    response = signup(client, password1="12345")
    body = response.content.decode()
    assert response.status_code == 200
    assert "Nenosiri hili ni fupi mno" in body
    assert "Nenosiri hili lina namba tupu." in body
    assert not get_user_model().objects.filter(email="neema@example.com").exists()


def test_it_refuses_mismatched_passwords_in_english(client):
    response = signup(client, password2="Something-else-2024", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    assert "You must type the same password each time." in response.content.decode()


def test_a_post_without_csrf_token_is_refused_with_a_message():
    client = Client(enforce_csrf_checks=True)
    response = client.post("/accounts/signup/", {"email": "x@example.com"})
    assert response.status_code == 403
    assert "Fomu imepitwa na muda" in response.content.decode()


def test_an_oversized_body_is_a_400_not_a_crash(client):
    response = client.post("/accounts/login/", {"login": "a@example.com", "password": "x" * (2 * 1024 * 1024)})
    assert response.status_code == 400


def test_it_logs_in_and_out(client, owner, password):
    response = client.post("/accounts/login/", {"login": owner.email, "password": password})
    assert response.status_code == 302 and response["Location"] == "/dashboard/"
    assert client.get("/dashboard/").status_code == 200
    client.post("/accounts/logout/")
    assert client.get("/dashboard/").status_code == 302


def test_wrong_password_gives_a_clear_message(client, owner):
    response = client.post("/accounts/login/", {"login": owner.email, "password": "wrong-one"})
    assert response.status_code == 200
    assert "Barua pepe na/au nenosiri ulilotaja si sahihi." in response.content.decode()


def test_login_is_throttled_after_repeated_failures(client, owner, password):
    for _ in range(5):
        client.post("/accounts/login/", {"login": owner.email, "password": "wrong-one"})
    response = client.post("/accounts/login/", {"login": owner.email, "password": password})
    assert "Majaribio mengi mno ya kuingia yameshindwa" in response.content.decode()
    assert client.get("/dashboard/").status_code == 302


def test_dashboard_requires_login(client):
    response = client.get("/dashboard/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_password_reset_email_is_sent_in_the_users_language(client, owner):
    response = client.post("/accounts/password/reset/", {"email": owner.email})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [owner.email]
    assert "Unapokea barua pepe hii kwa sababu wewe au mtu mwingine ameomba" in message.body
    assert "/accounts/password/reset/key/" in message.body


def test_password_reset_email_in_english(client, owner):
    client.post("/accounts/password/reset/", {"email": owner.email}, HTTP_ACCEPT_LANGUAGE="en")
    assert "requested a password reset" in mail.outbox[0].body


def test_password_change(client, owner, password):
    client.force_login(owner)
    response = client.post(
        "/accounts/password/change/",
        {"oldpassword": password, "password1": "Serengeti-Tembo-2026", "password2": "Serengeti-Tembo-2026"},
    )
    assert response.status_code == 302
    owner.refresh_from_db()
    assert owner.check_password("Serengeti-Tembo-2026")


def test_email_verification_can_be_required(client, settings):
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    response = signup(client)
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    assert "Tafadhali thibitisha barua pepe yako" in mail.outbox[0].subject
    assert client.get("/dashboard/").status_code == 302


def test_a_stranger_cannot_lock_the_owner_out(owner, password):
    from django.test import Client

    attacker = Client(REMOTE_ADDR="203.0.113.9")
    for _ in range(8):
        attacker.post("/accounts/login/", {"login": owner.email, "password": "guess"})
    refused = attacker.post("/accounts/login/", {"login": owner.email, "password": password})
    assert "Majaribio mengi mno ya kuingia yameshindwa" in refused.content.decode()
    owner_client = Client(REMOTE_ADDR="198.51.100.7")
    owner_client.post("/accounts/login/", {"login": owner.email, "password": password})
    assert owner_client.get("/dashboard/").status_code == 200


def test_one_address_guessing_many_accounts_is_throttled(make_user, password):
    from django.test import Client

    attacker = Client(REMOTE_ADDR="203.0.113.10")
    for n in range(12):
        response = attacker.post("/accounts/login/", {"login": f"mtu{n}@example.com", "password": "guess"})
    assert "Majaribio mengi mno ya kuingia yameshindwa" in response.content.decode()
