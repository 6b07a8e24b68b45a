"""What every admin list allows (orbit/console/admin/base.py): a date filter or drill-down
past the calendar is refused as Django refuses a bad lookup, on every database."""

from __future__ import annotations

import pytest

from tests.factories import RunFactory

pytestmark = pytest.mark.django_db

#: Django's answer to lookups it cannot use (IncorrectLookupParameters).
REFUSED = "?e=1"


@pytest.fixture
def admin_client_(client, django_user_model, test_pipelines):
    user = django_user_model.objects.create_superuser("root", "r@example.com", "pw")
    client.force_login(user)
    RunFactory()
    return client


@pytest.mark.parametrize(
    ("time_zone", "page", "query"),
    [
        # later than the last moment UTC holds (SQLite converts to UTC in Python)
        ("UTC", "/admin/runs/run/", "created_at__gte=9999-12-31+23:59:59-05:00"),
        # earlier than the first
        ("UTC", "/admin/runs/run/", "created_at__lt=0001-01-01+00:00:00%2B05:00"),
        # a time without an offset is in TIME_ZONE, here behind UTC
        ("America/New_York", "/admin/runs/run/", "created_at__gte=9999-12-31+23:59:59"),
        # each admin with a date filter
        ("UTC", "/admin/runs/stepattempt/", "finished_at__lt=9999-12-31+23:59:59-05:00"),
        ("UTC", "/admin/orbit/auditevent/", "created_at__gte=9999-12-31+23:59:59-05:00"),
        ("UTC", "/admin/services/veryfidocument/", "created_at__gte=9999-12-31+23:59:59-05:00"),
        # the date drill-down's year, month or day ends after 9999
        ("UTC", "/admin/runs/run/", "created_at__year=9999"),
        ("UTC", "/admin/runs/run/", "created_at__year=9999&created_at__month=12"),
        (
            "UTC",
            "/admin/orbit/auditevent/",
            "created_at__year=9999&created_at__month=12&created_at__day=31",
        ),
        # its first day starts, in a TIME_ZONE ahead of UTC, before the first moment
        (
            "Asia/Tokyo",
            "/admin/services/veryfidocument/",
            "created_at__year=1&created_at__month=1&created_at__day=1",
        ),
    ],
)
def test_a_date_past_the_calendar_is_refused_as_a_bad_lookup(
    admin_client_, settings, time_zone, page, query
):
    settings.TIME_ZONE = time_zone
    response = admin_client_.get(f"{page}?{query}")
    assert response.status_code == 302
    assert response["Location"] == f"{page}{REFUSED}"


@pytest.mark.parametrize(
    "query",
    [
        "created_at__gte=9999-12-31+00:00:00%2B00:00",  # the last day, in UTC
        "created_at__lt=0001-01-02+00:00:00%2B00:00",  # the first
        "created_at__year=9999&created_at__month=12&created_at__day=30",
        "created_at__year=1&created_at__month=1&created_at__day=1",
    ],
)
def test_the_calendar_s_first_and_last_days_are_listed(admin_client_, query):
    response = admin_client_.get(f"/admin/runs/run/?{query}")
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == []
