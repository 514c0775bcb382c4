"""The admin console: who may see it, and what staff can do with it (every change is logged)."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from pawa.api.keys import apikey_create
from pawa.api.models import ApiKey, ApiLimits
from pawa.chat.models import Conversation, Message
from pawa.console.models import AdminAction
from pawa.generation.models import Generation
from pawa.plans.models import Plan

pytestmark = pytest.mark.django_db


@pytest.fixture
def plans(db):
    from importlib import import_module

    from django.apps import apps

    import_module("pawa.plans.migrations.0002_seed_plans").seed(apps, None)
    return {plan.slug: plan for plan in Plan.objects.all()}


@pytest.fixture
def world(owner, plans):
    """Something on every page: a conversation, a key, answers with speed figures."""
    conversation = Conversation.objects.create(user=owner, model_name="gemma3-270m", title="Historia ya Kilwa")
    Message.objects.create(conversation=conversation, role="user", content="Eleza historia ya Kilwa Kisiwani.")
    key, _secret = apikey_create(user=owner, name="shamba")
    for day, source in [(0, "web"), (0, "api"), (1, "api"), (3, "web")]:
        generation = Generation.objects.create(
            user=owner, model_name="gemma3-270m", prompt=[], source=source, status="complete", prompt_tokens=20,
            completion_tokens=80, time_to_first_token_ms=300 + day * 10, tokens_per_second=30.5)
        Generation.objects.filter(pk=generation.pk).update(created_at=timezone.now() - timedelta(days=day))
    return {"conversation": conversation, "key": key, "plan": plans["starter"]}


def console_pages(world, owner) -> list[str]:
    return ["/console/", "/console/users/", f"/console/users/{owner.pk}/", "/console/plans/",
            f"/console/plans/{world['plan'].pk}/", "/console/plans/new/", "/console/keys/", "/console/conversations/",
            f"/console/conversations/{world['conversation'].pk}/",
            f"/console/conversations/{world['conversation'].pk}/delete/", "/console/log/"]


def console_posts(world, owner) -> list[tuple[str, dict]]:
    return [("/console/users/bulk/", {"action": "deactivate", "users": [owner.pk]}),
            (f"/console/users/{owner.pk}/", {"plan": world["plan"].pk}),
            (f"/console/plans/{world['plan'].pk}/", {"name": "Hacked"}),
            ("/console/plans/new/", {"name": "Hacked"}),
            (f"/console/keys/{world['key'].pk}/revoke/", {}),
            (f"/console/conversations/{world['conversation'].pk}/delete/", {})]


def test_staff_see_every_console_page_in_both_languages(client, staff, owner, world):
    client.force_login(staff)
    for language in ("sw", "en"):
        for path in console_pages(world, owner):
            response = client.get(path, HTTP_ACCEPT_LANGUAGE=language)
            assert response.status_code == 200, path
            assert response.headers["Content-Language"] == language


def test_anonymous_visitors_are_sent_to_log_in(client, owner, world):
    for path in console_pages(world, owner):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), path
    for path, data in console_posts(world, owner):
        assert client.post(path, data).status_code == 302, path
    assert get_user_model().objects.get(pk=owner.pk).is_active
    assert Conversation.objects.filter(pk=world["conversation"].pk).exists()


def test_people_who_are_not_staff_get_403_and_change_nothing(client, owner, outsider, world):
    for person in (owner, outsider):
        client.force_login(person)
        for path in console_pages(world, owner):
            assert client.get(path).status_code == 403, path
        for path, data in console_posts(world, owner):
            assert client.post(path, data).status_code == 403, path
    owner.refresh_from_db()
    assert owner.is_active and owner.plan is None
    assert ApiKey.objects.get(pk=world["key"].pk).revoked_at is None
    assert Plan.objects.get(pk=world["plan"].pk).name == "Starter" and not Plan.objects.filter(name="Hacked").exists()
    assert Conversation.objects.filter(pk=world["conversation"].pk).exists()
    assert AdminAction.objects.count() == 0


def test_the_header_links_the_console_for_staff_only(client, staff, owner):
    client.force_login(owner)
    assert "/console/" not in client.get("/dashboard/").content.decode()
    client.force_login(staff)
    assert 'href="/console/"' in client.get("/dashboard/").content.decode()


def test_the_overview_shows_live_state_today_and_charts(client, staff, owner, world, idle_worker):
    client.force_login(staff)
    body = client.get("/console/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert idle_worker.hostname in body
    assert 'data-stat="requests">2<' in body and 'data-stat="tokens">200<' in body
    assert body.count("<svg") == 5 and "<script" not in body.split("<main", 1)[1].split("</main>")[0]
    assert "gemma3-270m p95" in body and "amina@example.com" in body


def test_bulk_deactivate_and_reactivate_are_logged(client, staff, make_user):
    people = [make_user(f"mtu{n}@example.com") for n in range(3)]
    client.force_login(staff)
    response = client.post("/console/users/bulk/", {"action": "deactivate",
                                                    "users": [people[0].pk, people[1].pk, staff.pk]})
    assert response.status_code == 302
    states = {p.email: p.is_active for p in get_user_model().objects.all()}
    assert states == {"mtu0@example.com": False, "mtu1@example.com": False, "mtu2@example.com": True,
                      "baraka@example.com": True}  # never one's own account
    assert "Watumiaji 2 wamezimwa." in client.get("/console/users/", HTTP_ACCEPT_LANGUAGE="sw").content.decode()
    client.post("/console/users/bulk/", {"action": "reactivate", "users": [people[0].pk]})
    assert get_user_model().objects.get(pk=people[0].pk).is_active
    assert "Mtumiaji 1 amewashwa tena." in client.get("/console/users/", HTTP_ACCEPT_LANGUAGE="sw").content.decode()
    log = [(a.actor_id, a.action, a.target_id) for a in AdminAction.objects.order_by("id")]
    assert log == [(staff.pk, "deactivate", str(people[0].pk)), (staff.pk, "deactivate", str(people[1].pk)),
                   (staff.pk, "reactivate", str(people[0].pk))]
    page = client.get("/console/log/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Deactivated" in page and "mtu1@example.com" in page and "baraka@example.com" in page


def test_staff_who_are_not_superusers_cannot_deactivate_a_superuser(client, staff, make_user):
    root = make_user("mkuu@example.com", is_staff=True, is_superuser=True)
    client.force_login(staff)
    client.post("/console/users/bulk/", {"action": "deactivate", "users": [root.pk]})
    assert get_user_model().objects.get(pk=root.pk).is_active
    assert not AdminAction.objects.exists()
    other_root = make_user("mkuu2@example.com", is_staff=True, is_superuser=True)
    client.force_login(other_root)
    client.post("/console/users/bulk/", {"action": "deactivate", "users": [root.pk]})
    assert not get_user_model().objects.get(pk=root.pk).is_active  # a superuser may


def test_a_bulk_action_without_users_says_so(client, staff):
    client.force_login(staff)
    response = client.post("/console/users/bulk/", {"action": "deactivate"}, HTTP_ACCEPT_LANGUAGE="en", follow=True)
    assert response.status_code == 200 and "Choose at least one user" in response.content.decode()
    bad = client.post("/console/users/bulk/", {"action": "explode", "users": ["x"]}, follow=True)
    assert bad.status_code == 200 and AdminAction.objects.count() == 0


def test_approving_pending_users(client, staff, owner):
    owner.approval_pending = True
    owner.save()
    client.force_login(staff)
    listed = client.get("/console/users/?state=pending").content.decode()
    assert "amina@example.com" in listed
    done = client.post("/console/users/bulk/", {"action": "approve", "users": [owner.pk]}, follow=True,
                       HTTP_ACCEPT_LANGUAGE="en")
    assert "Approved 1 user." in done.content.decode()  # one: singular
    assert not get_user_model().objects.get(pk=owner.pk).approval_pending
    assert AdminAction.objects.get().action == "approve"


def test_user_search_and_filters(client, staff, make_user, world, owner):
    quiet = make_user("kimya@example.com", is_active=False)
    client.force_login(staff)

    def emails(query):
        body = client.get(f"/console/users/?{query}").content.decode()
        return {email for email in ("amina@example.com", "kimya@example.com", "baraka@example.com") if email in body}

    assert emails("q=kimya") == {"kimya@example.com"}
    assert emails("state=inactive") == {"kimya@example.com"}
    assert emails("state=staff") == {"baraka@example.com"}
    assert emails("min_tokens=300") == {"amina@example.com"}  # 4 answers × 100 tokens
    assert emails(f"joined_after={(timezone.localdate() + timedelta(days=1)).isoformat()}") == set()
    assert emails("order=-tokens_used&state=active") == {"amina@example.com", "baraka@example.com"}
    today = timezone.localdate().isoformat()
    # Amina answered today, Baraka signed in today (to look), Kimya never did either.
    assert emails(f"active_after={today}") == {"amina@example.com", "baraka@example.com"}
    assert emails("order=-last_active") == {"amina@example.com", "kimya@example.com", "baraka@example.com"}
    refused = client.get("/console/users/?joined_after=not-a-date", HTTP_ACCEPT_LANGUAGE="en")
    assert refused.status_code == 400 and "Enter a valid date." in refused.content.decode()
    assert quiet.pk


def test_setting_a_plan_and_limits_for_one_user(client, staff, owner, plans):
    client.force_login(staff)
    response = client.post(f"/console/users/{owner.pk}/", {"plan": plans["pro"].pk, "tokens_per_day": "777"})
    assert response.status_code == 302
    owner.refresh_from_db()
    assert owner.plan == plans["pro"]
    assert ApiLimits.objects.get(user=owner).tokens_per_day == 777
    assert sorted(AdminAction.objects.values_list("action", flat=True)) == ["set_limits", "set_plan"]
    bad = client.post(f"/console/users/{owner.pk}/", {"plan": "999", "tokens_per_day": "-1"},
                      HTTP_ACCEPT_LANGUAGE="en")
    assert bad.status_code == 400 and "errorlist" in bad.content.decode()


def test_editing_a_plan(client, staff, plans):
    client.force_login(staff)
    response = client.post(f"/console/plans/{plans['starter'].pk}/", {
        "name": "Starter", "requests_per_minute": "60", "tokens_per_minute": "", "tokens_per_day": "2000",
        "tokens_per_month": "", "max_concurrent": "3", "allowed_models": ["gemma3-270m"], "is_default": "on"})
    assert response.status_code == 302
    starter = Plan.objects.get(slug="starter")
    assert (starter.requests_per_minute, starter.tokens_per_minute, starter.allowed_models) == (60, None,
                                                                                                ["gemma3-270m"])
    assert list(Plan.objects.filter(is_default=True).values_list("slug", flat=True)) == ["starter"]
    assert AdminAction.objects.get().action == "edit_plan"


def test_keys_are_searched_by_prefix_or_owner_and_revoked(client, staff, owner, outsider):
    mine, _ = apikey_create(user=owner, name="simu")
    theirs, _ = apikey_create(user=outsider, name="kompyuta")
    client.force_login(staff)
    by_prefix = client.get(f"/console/keys/?q={mine.prefix}").content.decode()
    assert mine.display in by_prefix and theirs.display not in by_prefix
    by_owner = client.get("/console/keys/?q=chausiku").content.decode()
    assert theirs.display in by_owner and mine.display not in by_owner
    client.post(f"/console/keys/{mine.pk}/revoke/")
    assert ApiKey.objects.get(pk=mine.pk).revoked_at is not None
    assert AdminAction.objects.get().action == "revoke_key"
    assert "secret_hash" not in by_owner and mine.secret_hash not in by_prefix


def test_conversations_are_filtered_read_and_deleted_after_confirmation(client, staff, owner, outsider):
    kept = Conversation.objects.create(user=outsider, model_name="smollm2-135m-instruct", title="Mapishi")
    gone = Conversation.objects.create(user=owner, model_name="gemma3-270m", title="Historia ya Kilwa")
    Message.objects.create(conversation=gone, role="user", content="Eleza historia ya Kilwa Kisiwani.")
    client.force_login(staff)
    by_user = client.get("/console/conversations/?user=amina").content.decode()
    assert "Historia ya Kilwa" in by_user and "Mapishi" not in by_user
    by_model = client.get("/console/conversations/?model=smollm2").content.decode()
    assert "Mapishi" in by_model and "Historia ya Kilwa" not in by_model
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
    assert "Mapishi" not in client.get(f"/console/conversations/?since={tomorrow}").content.decode()
    assert "Eleza historia ya Kilwa Kisiwani." in client.get(f"/console/conversations/{gone.pk}/").content.decode()
    confirm = client.get(f"/console/conversations/{gone.pk}/delete/", HTTP_ACCEPT_LANGUAGE="en")
    assert "Delete this conversation?" in confirm.content.decode()
    assert Conversation.objects.filter(pk=gone.pk).exists()  # asking deletes nothing
    client.post(f"/console/conversations/{gone.pk}/delete/")
    assert not Conversation.objects.filter(pk=gone.pk).exists() and Conversation.objects.filter(pk=kept.pk).exists()
    action = AdminAction.objects.get()
    assert action.action == "delete_conversation" and action.details["owner"] == "amina@example.com"
    assert client.get(f"/console/conversations/{gone.pk}/").status_code == 404


def test_creating_a_plan(client, staff, plans):
    client.force_login(staff)
    assert client.get("/console/plans/new/").status_code == 200
    response = client.post("/console/plans/new/", {"name": "Shule", "requests_per_minute": "20",
                                                   "tokens_per_day": "50000"})
    assert response.status_code == 302
    school = Plan.objects.get(name="Shule")
    assert (school.slug, school.requests_per_minute, school.tokens_per_minute) == ("shule", 20, None)
    assert not school.is_default and Plan.objects.filter(is_default=True).count() == 1
    assert "Shule" in client.get("/console/plans/").content.decode()


def test_a_key_created_on_the_dashboard_keeps_its_models_and_expiry(client, owner, real_models):
    client.force_login(owner)
    response = client.post("/dashboard/keys/", {"name": "gemma tu", "expires_in_days": "7",
                                                "allowed_models": ["gemma3-270m"]})
    assert response.status_code == 200 and "pawa-" in response.content.decode()
    key = ApiKey.objects.get(user=owner)
    assert key.allowed_models == ["gemma3-270m"]
    assert timedelta(days=6) < key.expires_at - timezone.now() <= timedelta(days=7)
    bad = client.post("/dashboard/keys/", {"name": "x", "allowed_models": ["not-a-model"]})
    assert bad.status_code == 200 and ApiKey.objects.count() == 1


def test_the_chart_numbers_are_per_day_and_source(owner, world):
    from pawa.console import selectors

    usage = selectors.daily_usage()
    assert usage["days"][-1] == timezone.localdate() and len(usage["days"]) == 14
    assert usage["requests"]["web"][-1] == 1 and usage["requests"]["api"][-1] == 1
    assert usage["requests"]["api"][-2] == 1 and usage["requests"]["web"][-4] == 1
    assert sum(usage["requests"]["web"]) == 2 and sum(usage["tokens"]["api"]) == 200
    speed = selectors.speed_by_model()["models"]["gemma3-270m"]
    assert speed["ttft_p50"][-1] == 300 and speed["ttft_p50"][-2] == 310 and speed["ttft_p50"][-3] is None
    assert speed["tps"][-1] == 30.5
    assert selectors.top_users() == [("amina@example.com", 400)]
