"""The console answers bad input with a 4xx and says what is wrong; it never fails with a 500."""

import pytest

from pawa.api.models import ApiLimits
from pawa.plans.models import Plan

pytestmark = pytest.mark.django_db

HUGE = "9" * 30


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    client.raise_request_exception = False  # a server error is a status to assert on, not a test crash
    return client


@pytest.mark.parametrize("query", [
    "users/?active_after=0001-01-01", "users/?joined_after=9999-12-31", "users/?joined_after=99999-01-01",
    "conversations/?since=0001-01-01", "conversations/?until=9999-12-31", "users/?min_tokens=-1",
    "users/?state=everything", "keys/?state=lost",
])
def test_filters_out_of_range_are_refused_with_a_message(staff_client, query):
    response = staff_client.get(f"/console/{query}", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 400
    assert 'class="errorlist' in response.content.decode()


def test_filter_errors_are_in_swahili_on_swahili_pages(staff_client):
    response = staff_client.get("/console/conversations/?until=9999-12-31", HTTP_ACCEPT_LANGUAGE="sw")
    assert response.status_code == 400 and 'class="errorlist' in response.content.decode()
    assert "Ensure this value" not in response.content.decode()


@pytest.mark.parametrize("value", ["²", "٣", HUGE, "-1", "1.5"])
def test_bulk_actions_ignore_ids_that_cannot_be_users(staff_client, owner, value):
    response = staff_client.post("/console/users/bulk/", {"action": "deactivate", "users": [value]})
    assert response.status_code == 302
    owner.refresh_from_db()
    assert owner.is_active


@pytest.mark.parametrize("field,value", [("requests_per_minute", HUGE), ("max_concurrent", "99999999999"),
                                         ("tokens_per_day", "-5"), ("plan", HUGE), ("plan", "abc")])
def test_a_user_s_limits_out_of_range_are_refused(staff_client, owner, field, value):
    response = staff_client.post(f"/console/users/{owner.pk}/", {field: value}, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 400 and 'class="errorlist' in response.content.decode()
    assert not ApiLimits.objects.filter(user=owner).exists()


@pytest.mark.parametrize("data", [{"name": ""}, {"name": "x" * 5000}, {"name": "Free", "requests_per_minute": "-1"},
                                  {"name": "Free", "requests_per_minute": HUGE},
                                  {"name": "Free", "allowed_models": ["no-such-model"]}])
def test_a_plan_with_bad_values_is_refused(staff_client, data):
    plan, _ = Plan.objects.update_or_create(slug="free", defaults={"name": "Free", "requests_per_minute": 5})
    response = staff_client.post(f"/console/plans/{plan.pk}/", data)
    assert response.status_code == 400 and 'class="errorlist' in response.content.decode()
    assert Plan.objects.get(pk=plan.pk).requests_per_minute == 5


@pytest.mark.parametrize("path", [f"users/{HUGE}/", f"plans/{HUGE}/", f"conversations/{HUGE}/",
                                  f"conversations/{HUGE}/delete/", "users/0/"])
def test_unknown_ids_are_404(staff_client, path):
    assert staff_client.get(f"/console/{path}").status_code == 404


@pytest.mark.parametrize("path", [f"keys/{HUGE}/revoke/", "keys/999999/revoke/", f"conversations/{HUGE}/delete/"])
def test_unknown_ids_posted_are_404(staff_client, path):
    assert staff_client.post(f"/console/{path}").status_code == 404
