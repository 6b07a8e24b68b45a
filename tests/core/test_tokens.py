from __future__ import annotations

import re
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from orbit.core.models import ApiToken
from orbit.core.tokens import TokenRefused, create_token, user_for_key

pytestmark = pytest.mark.django_db


def test_createapitoken_prints_a_working_key_once():
    user = User.objects.create_user("ci-bot")
    out, err = StringIO(), StringIO()
    call_command("createapitoken", "ci-bot", "--name", "deploys", stdout=out, stderr=err)
    key = out.getvalue().strip()
    token = ApiToken.objects.get(user=user)
    assert token.name == "deploys"
    assert key.startswith(f"orbit_{token.prefix}_")
    assert "not shown again" in err.getvalue()
    assert user_for_key(key) == user


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ghost"], "No user named 'ghost'"),  # unknown user
        (["ci-bot", "--name", " "], "A token needs a name saying what it is for"),  # blank name
    ],
)
def test_createapitoken_refuses_clearly(args, message):
    User.objects.create_user("ci-bot")
    with pytest.raises(CommandError, match=message):
        call_command("createapitoken", *args, stdout=StringIO(), stderr=StringIO())
    assert not ApiToken.objects.exists()


def admin_client() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", password="pw"))
    return client


def test_admin_creates_a_token_and_shows_the_key_once_in_the_page_only():
    """The messages cookie is signed, not encrypted: the key must never travel in it (nor
    in the session); it is in the answer to the form, once, and not cached."""
    client = admin_client()
    owner = User.objects.create_user("bot")
    response = client.post("/admin/orbit/apitoken/add/", {"user": owner.id, "name": "nightly"})
    assert response.status_code == 200
    token = ApiToken.objects.get(user=owner)
    page = response.content.decode()
    [key] = re.findall(rf"orbit_{token.prefix}_[A-Za-z0-9_-]+", page)
    assert user_for_key(key) == owner
    assert "copy it now; it is not shown again" in page
    assert "no-store" in response["Cache-Control"]
    for cookie in (*response.cookies.values(), *client.cookies.values()):
        assert key not in cookie.value and token.prefix not in cookie.value
    assert key not in str(dict(client.session))
    for url in ("/admin/orbit/apitoken/", f"/admin/orbit/apitoken/{token.id}/change/"):
        assert key not in client.get(url).content.decode()


def test_admin_revoke_action():
    client = admin_client()
    owner = User.objects.create_user("bot")
    from orbit.core.tokens import create_token

    token, _ = create_token(owner, "old")
    response = client.post(
        "/admin/orbit/apitoken/",
        {"action": "revoke", "_selected_action": [token.id]},
        follow=True,
    )
    assert "Revoked 1 token(s)." in response.content.decode()
    token.refresh_from_db()
    assert token.revoked_at is not None


# --- Expiry -------------------------------------------------------------------------------------


def test_a_token_works_until_it_expires_and_is_refused_after(django_user_model):
    user = django_user_model.objects.create_user("bot")
    _, key = create_token(user, "short-lived", expires_at=timezone.now() + timedelta(hours=1))
    assert user_for_key(key) == user
    ApiToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    expired = ApiToken.objects.get().expires_at
    with pytest.raises(TokenRefused) as caught:
        user_for_key(key)
    assert str(caught.value) == f"This API token expired on {expired:%Y-%m-%d %H:%M:%S} UTC"


def test_the_api_refuses_an_expired_token(django_user_model, test_pipelines):
    user = django_user_model.objects.create_user("bot", is_superuser=True)
    _, key = create_token(user, "old", expires_at=timezone.now() + timedelta(minutes=5))
    api = Client(headers={"Authorization": f"Bearer {key}"})
    assert api.get("/api/runs").status_code == 200
    ApiToken.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    response = api.get("/api/runs")
    assert response.status_code == 401
    assert response.json()["detail"].startswith("This API token expired on ")


def test_a_token_cannot_be_made_already_expired(django_user_model):
    user = django_user_model.objects.create_user("bot")
    with pytest.raises(ValueError, match=r"^A token.s expiry must be in the future$"):
        create_token(user, "dead", expires_at=timezone.now() - timedelta(seconds=1))
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize(
    ("given", "lasts"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("90m", timedelta(minutes=90)),
        ("2w", timedelta(weeks=2)),
        ("3600s", timedelta(hours=1)),
        ("3600", timedelta(hours=1)),  # plain seconds
    ],
)
def test_createapitoken_expires_in(given, lasts):
    User.objects.create_user("ci-bot")
    err = StringIO()
    before = timezone.now()
    call_command("createapitoken", "ci-bot", "--expires-in", given, stdout=StringIO(), stderr=err)
    token = ApiToken.objects.get()
    assert before + lasts <= token.expires_at <= timezone.now() + lasts
    assert f"It expires on {token.expires_at:%Y-%m-%d %H:%M:%S} UTC." in err.getvalue()


@pytest.mark.parametrize("given", ["soon", "0d", "1.5h", "5y", ""])
def test_createapitoken_refuses_an_unreadable_expiry(given):
    User.objects.create_user("ci-bot")
    with pytest.raises(CommandError) as caught:
        call_command("createapitoken", "ci-bot", "--expires-in", given, stdout=StringIO())
    assert str(caught.value) == (
        f"--expires-in must be a positive duration such as 30d, 12h, 90m, 2w or 3600s, not {given!r}"
    )
    assert not ApiToken.objects.exists()


def test_the_admin_sets_and_shows_the_expiry():
    client = admin_client()
    owner = User.objects.create_user("bot")
    response = client.post(
        "/admin/orbit/apitoken/add/",
        {
            "user": owner.id,
            "name": "quarterly",
            "expires_at_0": "2099-01-31",
            "expires_at_1": "12:00:00",
        },
    )
    assert response.status_code == 200, response.content.decode()[:2000]
    token = ApiToken.objects.get()
    assert f"{token.expires_at:%Y-%m-%d %H:%M}" == "2099-01-31 12:00"
    assert "expires 2099-01-31 12:00" in response.content.decode()
    listing = client.get("/admin/orbit/apitoken/").content.decode()
    assert "Expires" in listing and "Jan. 31, 2099" in listing
    ApiToken.objects.update(expires_at=timezone.now() - timedelta(days=1))
    assert "expired" in client.get("/admin/orbit/apitoken/").content.decode()


def test_the_admin_refuses_an_expiry_in_the_past():
    client = admin_client()
    owner = User.objects.create_user("bot")
    response = client.post(
        "/admin/orbit/apitoken/add/",
        {
            "user": owner.id,
            "name": "dead",
            "expires_at_0": "2001-01-01",
            "expires_at_1": "00:00:00",
        },
    )
    assert response.status_code == 200
    assert "A token&#x27;s expiry must be in the future" in response.content.decode()
    assert not ApiToken.objects.exists()
