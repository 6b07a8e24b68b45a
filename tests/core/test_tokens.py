from __future__ import annotations

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


def test_admin_creates_a_token_and_shows_the_key_once():
    client = admin_client()
    owner = User.objects.create_user("bot")
    response = client.post(
        "/admin/orbit/apitoken/add/", {"user": owner.id, "name": "nightly"}, follow=True
    )
    assert response.status_code == 200
    token = ApiToken.objects.get(user=owner)
    [message] = [str(m) for m in response.context["messages"] if "not shown again" in str(m)]
    key = message.split(" is ")[1].split(" ")[0]
    assert user_for_key(key) == owner
    assert key not in client.get(f"/admin/orbit/apitoken/{token.id}/change/").content.decode()


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
