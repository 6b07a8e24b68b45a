"""`createapitoken --expires-in`: a lifetime past a century is refused, exit 2, no token."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from orbit.core.models import ApiToken
from tests.cli.test_cli import orbit

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    "given",
    [
        "99999999999d",  # beyond timedelta's range
        "5000000d",  # within it, but the expiry would fall after the year 9999
        "36501d",  # just past a century
    ],
)
def test_an_expiry_past_a_century_is_refused(given):
    User.objects.create_user("ci-bot")
    with pytest.raises(CommandError) as caught:
        call_command("createapitoken", "ci-bot", "--expires-in", given, stdout=StringIO())
    assert str(caught.value) == f"--expires-in is {given!r}; the longest age is 36500d (100 years)"
    assert not ApiToken.objects.exists()


def test_an_expiry_of_a_century_is_taken():
    User.objects.create_user("ci-bot")
    call_command(
        "createapitoken", "ci-bot", "--expires-in", "36500d", stdout=StringIO(), stderr=StringIO()
    )
    assert ApiToken.objects.get().expires_at is not None


def test_the_command_exits_2_on_an_expiry_past_a_century():
    User.objects.create_user("ci-bot")
    done = orbit("createapitoken", "ci-bot", "--name", "x", "--expires-in", "99999999999d")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        "CommandError: --expires-in is '99999999999d'; the longest age is 36500d (100 years)"
    )
    assert not ApiToken.objects.exists()
