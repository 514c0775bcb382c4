import pytest

pytestmark = pytest.mark.django_db


def test_home_page_is_in_swahili_by_default(client):
    response = client.get("/")
    assert response.status_code == 200
    body = response.content.decode()
    assert '<html lang="sw"' in body
    assert "Nyumbani" in body and "Vipengele" in body and "Nyaraka" in body and "Jaribu" in body
    assert "Ingia" in body and "Jisajili" in body


def test_home_page_speaks_english_when_asked(client):
    response = client.get("/", HTTP_ACCEPT_LANGUAGE="en")
    body = response.content.decode()
    assert "Experience the power of PAWA, the Swahili language AI" in body
    for word in ["Home", "Features", "Documentation", "Demo", "Log in", "Sign up"]:
        assert word in body
    assert "Register" not in body
    for feature in ["Conversational interface", "API access", "On-premise and private", "Small-model efficiency"]:
        assert feature in body


def test_language_switcher_remembers_the_choice(client):
    response = client.post("/i18n/setlang/", {"language": "en", "next": "/docs/"})
    assert response.status_code == 302
    assert response.cookies["django_language"].value == "en"
    assert "Getting started" in client.get("/docs/").content.decode()
    client.post("/i18n/setlang/", {"language": "sw", "next": "/"})
    assert "Kuanza" in client.get("/docs/").content.decode()


@pytest.mark.parametrize("path", ["/docs/", "/docs/getting-started/", "/docs/api/", "/privacy/"])
def test_documentation_pages_exist_in_both_languages(client, path):
    swahili = client.get(path).content.decode()
    english = client.get(path, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert client.get(path).status_code == 200
    assert swahili != english


def test_getting_started_explains_the_first_steps(client):
    body = client.get("/docs/getting-started/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Create an account" in body and "Enter" in body and "Stop" in body


def test_unknown_page_is_a_translated_404(client):
    response = client.get("/hakuna-ukurasa/")
    assert response.status_code == 404
    assert "Ukurasa haukupatikana" in response.content.decode()
    response = client.get("/docs/nothing-here/", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 404
    assert "Page not found" in response.content.decode()


def test_pages_load_nothing_from_the_internet(client, owner):
    client.force_login(owner)
    for path in ["/", "/docs/", "/dashboard/", "/accounts/login/"]:
        body = client.get(path).content.decode()
        assert "https://" not in body.replace("https://example", ""), path
        assert "//cdn" not in body


def test_static_assets_are_served_by_the_platform(live_asgi):
    import urllib.request

    for asset in ["/static/css/pawa.css", "/static/js/site.js", "/static/img/pawa.svg"]:
        with urllib.request.urlopen(live_asgi + asset) as response:
            assert response.status == 200


def test_the_favicon_is_found(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("/static/img/pawa.svg")


@pytest.mark.parametrize("path", ["/", "/accounts/login/", "/accounts/signup/"])
def test_signing_up_and_in_have_one_name_each(client, path):
    english = client.get(path, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Sign In" not in english and "Sign Up" not in english and "Register" not in english
    assert "Log in" in english and "Sign up" in english
    swahili = client.get(path, HTTP_ACCEPT_LANGUAGE="sw").content.decode()
    assert "Ingia" in swahili and "Jisajili" in swahili


def test_swahili_pages_show_swahili_dates(client, owner):
    import datetime

    owner.date_joined = datetime.datetime(2026, 11, 29, 10, 0, tzinfo=datetime.UTC)
    owner.save()
    client.force_login(owner)
    assert "29 Novemba 2026" in client.get("/dashboard/", HTTP_ACCEPT_LANGUAGE="sw").content.decode()
    assert "Nov. 29, 2026" in client.get("/dashboard/", HTTP_ACCEPT_LANGUAGE="en").content.decode()


def test_password_errors_are_shown_under_the_password_field(client):
    body = client.post("/accounts/signup/", {"email": "neema@example.com", "password1": "abc", "password2": "abc"},
                       HTTP_ACCEPT_LANGUAGE="en").content.decode()
    password_input = body.index('id="id_password1"')
    errors = body.index('class="errorlist', password_input)
    assert body.index('id="id_email"') < password_input < errors < body.index('id="id_password2"')


def test_try_it_tells_visitors_why_they_must_log_in(client):
    response = client.get("/demo/", follow=True, HTTP_ACCEPT_LANGUAGE="sw")
    assert response.request["PATH_INFO"] == "/accounts/login/"
    assert "Ingia ili kujaribu PAWA" in response.content.decode()
