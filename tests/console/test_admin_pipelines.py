"""The admin's pipeline form: the API's rules for names and default metadata."""

from __future__ import annotations

import pytest

from pipelines.models import Pipeline

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "r@example.com", "pw"))
    return client


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("evil\x1b[31m", "Pipeline name &#x27;evil\\x1b[31m&#x27; is invalid"),  # a terminal escape
        ("two words", "Pipeline name &#x27;two words&#x27; is invalid"),  # a space
        ("-leading", "Pipeline name &#x27;-leading&#x27; is invalid"),  # must start alnum
    ],
)
def test_the_admin_applies_the_apis_name_rule(admin_client_, test_pipelines, name, shown):
    response = admin_client_.post(
        "/admin/pipelines/pipeline/add/",
        {
            "name": name,
            "definition": "t-single",
            "description": "",
            "schedule": "",
            "default_metadata": "{}",
            "enabled": "on",
        },
    )
    assert response.status_code == 200  # the form again, with the error
    assert shown in response.content.decode()
    assert not Pipeline.objects.filter(name=name).exists()


def test_the_admin_refuses_default_metadata_a_database_cannot_store(admin_client_, test_pipelines):
    response = admin_client_.post(
        "/admin/pipelines/pipeline/add/",
        {
            "name": "with-nul",
            "definition": "t-single",
            "description": "",
            "schedule": "",
            "default_metadata": '{"k": "a\\u0000b"}',
            "enabled": "on",
        },
    )
    assert response.status_code == 200
    assert "cannot hold a NUL character" in response.content.decode()
    assert not Pipeline.objects.filter(name="with-nul").exists()


def test_the_admin_sets_max_concurrency_shows_it_and_refuses_a_bad_one(
    admin_client_, test_pipelines
):
    from runs import enqueue
    from runs.models import Run

    row = Pipeline.objects.get(name="t-single")
    Run.objects.filter(id=enqueue("t-single").id).update(status="running")
    url = f"/admin/pipelines/pipeline/{row.pk}/change/"
    form = {"description": "", "default_metadata": "{}", "enabled": "on", "schedule": ""}
    admin_client_.post(url, {**form, "max_concurrency": "3"})
    row.refresh_from_db()
    assert (row.max_concurrency, row.max_concurrency_source) == (3, "operator")
    listing = admin_client_.get("/admin/pipelines/pipeline/").content.decode()
    assert "3 at once (1 running)" in listing
    response = admin_client_.post(url, {**form, "max_concurrency": "0"})
    assert response.status_code == 200  # the form comes back with the error
    assert "max_concurrency must be a whole number from 1 to 100,000" in response.content.decode()
    row.refresh_from_db()
    assert row.max_concurrency == 3
