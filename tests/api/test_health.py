from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_healthz_needs_no_login_and_says_only_ok():
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_healthz_with_unapplied_migrations_is_503(monkeypatch):
    from django.db.migrations.executor import MigrationExecutor

    from orbit.api import health

    monkeypatch.setattr(health, "_migrated_at", None)
    monkeypatch.setattr(MigrationExecutor, "migration_plan", lambda self, targets: [("x", False)])
    response = Client().get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable"}


def test_healthz_refuses_writes():
    assert Client().post("/healthz").status_code == 405
