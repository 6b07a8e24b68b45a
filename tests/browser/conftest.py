"""A real browser (Debian's chromium through Playwright) against a live server, with a real
worker process executing the runs it queues."""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest
from django.db import connections

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
PASSWORD = "browser-test-password"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests need chromium, and run in one of the suite's two passes: the SQLite
    one (the database of `make run`, and the one every checkout can run). What they test
    is the front end (pages, scripts, the content policy, layouts), the same over either
    store; the views' behaviour on PostgreSQL is tested without a browser (tests/console,
    tests/web, tests/api), and the stores by one behaviour suite. Running them twice cost
    CI 2.5 minutes. ORBIT_TEST_BROWSER_ON_POSTGRES=1 runs them on PostgreSQL too."""
    from django.db import connection

    if not os.path.exists(CHROMIUM):
        reason = f"needs chromium at {CHROMIUM} (apt-get install chromium)"
    elif connection.vendor == "postgresql" and not os.environ.get("ORBIT_TEST_BROWSER_ON_POSTGRES"):
        reason = (
            "the browser tests run in the SQLite pass (ORBIT_TEST_BROWSER_ON_POSTGRES=1: here too)"
        )
    else:
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def browser_context(monkeypatch, live_server, transactional_db):
    """A fresh chromium per test. Playwright's sync API keeps an event loop running in this
    thread while it is open, so it opens after the database is set up and closes before
    it is flushed; meanwhile the test's own (synchronous) ORM calls are allowed."""
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(30_000)
        yield context
        context.close()
        browser.close()
        # While the loop runs, Django keeps separate (context-local) connections for this
        # test's ORM calls: close them here, or PostgreSQL refuses to drop the test database.
        connections.close_all()


def log_in(page: Any, live_server: Any, username: str, path: str) -> Any:
    """`page`, logged in as `username` through the admin's login form, and at `path`."""
    page.goto(f"{live_server.url}/admin/login/?next={path}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}{path}")
    return page


@pytest.fixture
def superuser(transactional_db, django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)


@pytest.fixture
def logged_in(browser_context, live_server, superuser):
    """A page logged in through the admin's login form."""
    return log_in(browser_context.new_page(), live_server, "root", "/dashboard/")


@pytest.fixture
def as_operator(browser_context, live_server, transactional_db):
    """Open a page as alice, an operator, logged in through the admin's login form."""
    from django.contrib.auth.models import Permission, User

    from orbit.core.roles import OPERATOR

    # The operator role's permissions, given directly: a transactional test's flush
    # removes the groups the roles migration made.
    alice = User.objects.create_user("alice", password=PASSWORD, is_staff=True)
    for name in OPERATOR.permissions:
        app_label, codename = name.split(".")
        alice.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )

    return lambda path: log_in(browser_context.new_page(), live_server, "alice", path)


@pytest.fixture
def worker(workers, test_pipelines):
    """One real `runworker` process against the test database, polling fast.

    Stopped gracefully at the end, so its database sessions are closed before the test
    database is flushed or dropped (PostgreSQL refuses to drop a database in use)."""
    process = workers(
        "--concurrency", "2", "--no-schedules", "--grace", "5", env={"ORBIT_POLL_INTERVAL": "0.2"}
    )
    yield process
    process.send(signal.SIGTERM)
    process.wait(30)
