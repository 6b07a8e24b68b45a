"""Rate limits: 429 with Retry-After past the limit, per token or user and per address, on
the API and the admin login; counted in the database, so every web process shares them."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.test import Client

from orbit.core.conf import Rate, parse_rate
from orbit.core.tokens import create_token
from orbit.web.ratelimit import limiter
from orbit.web.ratelimit.checks import check_limits
from orbit.web.ratelimit.limiter import hit
from orbit.web.ratelimit.models import Window
from tests.api.conftest import VIEWER, Api, make_user
from tests.processes import ROOT, database_env
from tests.threads import at_once

pytestmark = pytest.mark.django_db

START = 1_800_000_000.0  # a window boundary for minutes (a multiple of 60)


class Clock:
    """The limiter's clock, moved by the test instead of waiting for real time to pass."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock(START + 20)
    monkeypatch.setattr(limiter, "clock", fake)
    return fake


def viewer(name: str, address: str = "10.0.0.1") -> Api:
    _, key = create_token(make_user(name, VIEWER), "tests")
    return Api(key, Client(REMOTE_ADDR=address))


# --- The API ----------------------------------------------------------------------------------


def test_api_requests_past_the_limit_get_429_with_retry_after(settings, clock, test_pipelines):
    settings.ORBIT_API_RATE_LIMIT = "3/minute"
    api = viewer("alice")
    assert [api.get("/api/runs").status_code for _ in range(3)] == [200, 200, 200]
    response = api.get("/api/runs")
    assert response.status_code == 429
    assert response["Retry-After"] == "40"  # 20 s into a one-minute window
    assert response.json() == {
        "detail": "Too many requests; retry in 40 seconds (ORBIT_API_RATE_LIMIT)"
    }


def test_the_limit_recovers_in_the_next_window(settings, clock, test_pipelines):
    settings.ORBIT_API_RATE_LIMIT = "2/minute"
    api = viewer("alice")
    assert [api.get("/api/runs").status_code for _ in range(3)] == [200, 200, 429]
    clock.now = START + 59
    assert api.get("/api/runs")["Retry-After"] == "1"
    clock.now = START + 60
    assert [api.get("/api/runs").status_code for _ in range(3)] == [200, 200, 429]


def test_each_token_and_each_address_has_its_own_allowance(settings, clock, test_pipelines):
    settings.ORBIT_API_RATE_LIMIT = "2/minute"
    alice_home = viewer("alice", "10.0.0.1")
    assert [alice_home.get("/api/runs").status_code for _ in range(2)] == [200, 200]
    # the same token from elsewhere: the token's allowance is spent
    alice_away = Api(alice_home.key, Client(REMOTE_ADDR="10.0.0.2"))
    assert alice_away.get("/api/runs").status_code == 429
    # another token from the same address: the address's allowance is spent
    bob_home = viewer("bob", "10.0.0.1")
    assert bob_home.get("/api/runs").status_code == 429
    # another token from another address: untouched
    carol = viewer("carol", "10.0.0.3")
    assert carol.get("/api/runs").status_code == 200


def test_bad_tokens_are_counted_too(settings, clock, test_pipelines):
    settings.ORBIT_API_RATE_LIMIT = "2/minute"
    guesser = Api("orbit_guess_1", Client(REMOTE_ADDR="10.0.0.9"))
    assert [guesser.get("/api/runs").status_code for _ in range(3)] == [401, 401, 429]


def test_a_session_is_counted_by_its_user(settings, clock, test_pipelines, django_user_model):
    settings.ORBIT_API_RATE_LIMIT = "1/minute"
    user = django_user_model.objects.create_superuser("root", "r@example.com", "pw")
    first, second = Client(REMOTE_ADDR="10.0.0.1"), Client(REMOTE_ADDR="10.0.0.2")
    first.force_login(user)
    second.force_login(user)
    assert first.get("/api/runs").status_code == 200
    assert second.get("/api/runs").status_code == 429


def test_off_means_no_limit(settings, clock, test_pipelines):
    settings.ORBIT_API_RATE_LIMIT = "off"
    api = viewer("alice")
    assert {api.get("/api/runs").status_code for _ in range(5)} == {200}
    assert not Window.objects.exists()


def test_the_api_docs_are_not_limited(settings, clock):
    settings.ORBIT_API_RATE_LIMIT = "1/minute"
    client = Client()
    assert [client.get("/api/openapi.json").status_code for _ in range(3)] == [200, 200, 200]


# --- The admin login --------------------------------------------------------------------------


def log_in(client: Client, username: str, password: str) -> int:
    return client.post("/admin/login/", {"username": username, "password": password}).status_code


def test_login_attempts_past_the_limit_get_429(settings, clock, django_user_model):
    settings.ORBIT_LOGIN_RATE_LIMIT = "3/minute"
    django_user_model.objects.create_superuser("root", "r@example.com", "right")
    client = Client(REMOTE_ADDR="10.0.0.1")
    assert [log_in(client, "root", "wrong") for _ in range(3)] == [200, 200, 200]  # form again
    response = client.post("/admin/login/", {"username": "root", "password": "right"})
    assert response.status_code == 429
    assert response["Retry-After"] == "40"
    assert response.content.decode() == (
        "Too many login attempts from this address or for this user; try again in 40 seconds."
    )
    clock.now = START + 60
    assert log_in(client, "root", "right") == 302  # logged in


def test_login_attempts_are_counted_per_username_across_addresses(settings, clock):
    settings.ORBIT_LOGIN_RATE_LIMIT = "2/minute"
    attempts = [log_in(Client(REMOTE_ADDR=f"10.0.1.{i}"), "Root", "guess") for i in range(3)]
    assert attempts == [200, 200, 429]
    assert log_in(Client(REMOTE_ADDR="10.0.1.9"), "someone-else", "guess") == 200


def test_a_look_alike_username_spends_the_same_allowance(settings, clock, django_user_model):
    """Django logs `\uff4fperator` (a fullwidth o, NFKC-normalised) in as `operator`: the limit
    must count both, and every case of it, as one username."""
    settings.ORBIT_LOGIN_RATE_LIMIT = "2/minute"
    django_user_model.objects.create_user("operator", password="right", is_staff=True)
    assert log_in(Client(REMOTE_ADDR="10.0.2.1"), "operator", "guess") == 200
    assert log_in(Client(REMOTE_ADDR="10.0.2.2"), "OPERATOR", "guess") == 200
    assert log_in(Client(REMOTE_ADDR="10.0.2.3"), "\uff4fperator", "right") == 429
    clock.now = START + 60
    assert log_in(Client(REMOTE_ADDR="10.0.2.4"), "\uff4fperator", "right") == 302  # Django's own


def test_the_login_page_itself_is_not_limited(settings, clock):
    settings.ORBIT_LOGIN_RATE_LIMIT = "1/minute"
    client = Client()
    assert [client.get("/admin/login/").status_code for _ in range(3)] == [200, 200, 200]


# --- The counters -----------------------------------------------------------------------------


def test_counts_are_shared_with_other_processes(transactional_db, clock):
    """Another web process (here a subprocess on the same database) spends the same
    allowance: the count lives in the database, not in a process."""
    rate = Rate(limit=5, seconds=60)
    script = (
        "import django; django.setup()\n"
        "from orbit.core.conf import Rate\n"
        "from orbit.web.ratelimit import limiter\n"
        f"limiter.clock = lambda: {clock.now!r}\n"
        "print([limiter.hit(['api:addr:10.0.0.1'], Rate(5, 60)).allowed for _ in range(3)])\n"
    )
    env = {**database_env(), "DJANGO_SETTINGS_MODULE": "orbit.settings"}
    output = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert output.stdout.strip() == "[True, True, True]", output.stderr
    verdicts = [hit(["api:addr:10.0.0.1"], rate).allowed for _ in range(3)]
    assert verdicts == [True, True, False]


def test_concurrent_requests_never_lose_a_count(transactional_db, clock):
    """Threads on their own connections race on one key: exactly `limit` get through."""
    rate = Rate(limit=20, seconds=60)
    verdicts: list[bool] = []

    def spend() -> None:
        mine = [hit(["api:addr:10.0.0.1"], rate).allowed for _ in range(5)]
        verdicts.extend(mine)

    at_once(spend, 8)
    assert len(verdicts) == 40
    assert verdicts.count(True) == 20
    assert Window.objects.get(key="api:addr:10.0.0.1").count == 40


def test_old_windows_are_forgotten(clock):
    Window.objects.create(key="api:addr:gone", started=int(START) - 3 * 86400, count=9)
    Window.objects.create(key="api:addr:recent", started=int(START) - 60, count=9)
    hit(["api:addr:new"], Rate(limit=5, seconds=60))
    assert set(Window.objects.values_list("key", flat=True)) == {
        "api:addr:recent",
        "api:addr:new",
    }


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        (
            "ORBIT_API_RATE_LIMIT",
            "600 per minute",
            "ORBIT_API_RATE_LIMIT is '600 per minute'; write it as requests/period, such as "
            "'600/minute', '10/5minutes' or '100/30s' (periods: second, minute, hour, day), or 'off'",
        ),
        (
            "ORBIT_LOGIN_RATE_LIMIT",
            "0/minute",
            "ORBIT_LOGIN_RATE_LIMIT is '0/minute'; write it as requests/period, such as "
            "'600/minute', '10/5minutes' or '100/30s' (periods: second, minute, hour, day), or 'off'",
        ),
        ("ORBIT_TRUSTED_PROXIES", -1, "ORBIT_TRUSTED_PROXIES must be 0 or more, not -1"),
    ],
)
def test_a_mistyped_limit_fails_the_system_check(settings, setting, value, message):
    setattr(settings, setting, value)
    assert [(e.id, e.msg) for e in check_limits()] == [("ratelimit.E001", message)]


@pytest.mark.parametrize(
    ("value", "rate"),
    [
        ("600/minute", Rate(600, 60)),
        ("10/5minutes", Rate(10, 300)),
        ("100/30s", Rate(100, 30)),
        ("5000/hour", Rate(5000, 3600)),
        ("2/day", Rate(2, 86400)),
        ("off", None),
        ("", None),
    ],
)
def test_rates_are_written_requests_per_period(value, rate):
    assert parse_rate("X", value) == rate
