from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client

from orbit.core.models import ApiToken
from orbit.core.tokens import user_for_key

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
