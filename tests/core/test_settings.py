"""The production settings documented in docs/SECURITY.md pass Django's deployment checks."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys

import pytest

from tests.processes import ROOT

pytestmark = pytest.mark.slow


def documented_production_env() -> dict[str, str]:
    """The KEY=value lines of the first code block under "## Production checklist"."""
    text = (ROOT / "docs" / "SECURITY.md").read_text()
    section = text.split("## Production checklist", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "docs/SECURITY.md has no sh block under '## Production checklist'"
    env = {}
    for line in block[1].splitlines():
        name, _, value = line.partition("=")
        env[name.strip()] = value.split("#", 1)[0].strip()
    return env


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # The documented variables, not the test run's (DATABASE_URL, ORBIT_TESTING, ...).
    base = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env={**base, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def production_env(tmp_path) -> dict[str, str]:
    env = documented_production_env()
    assert env["SECRET_KEY"] == "..."  # the docs say how to make one
    env["SECRET_KEY"] = secrets.token_urlsafe(50)
    # and collectstatic at deploy, as the checklist says (without it: orbit.W001)
    env["STATIC_ROOT"] = str(tmp_path / "static")
    base = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        env={**base, **env},
        cwd=ROOT,
        check=True,
        timeout=120,
    )
    return env


def test_the_documented_production_settings_pass_check_deploy(production_env):
    result = check_deploy(production_env)
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_fails_without_them(production_env):
    """The test above would pass vacuously if check --deploy never warned."""
    production_env.pop("SECURE_HSTS_SECONDS")
    result = check_deploy(production_env)
    assert result.returncode == 1
    assert "security.W004" in result.stderr


def start(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Load the settings and the WSGI application as a server would, in a fresh process."""
    base = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    return subprocess.run(
        [sys.executable, "-c", "import orbit.wsgi"],
        env={**base, "PYTHONPATH": str(ROOT), **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "hosts",
    [
        "*",  # anything
        "orbit.example.com",  # a public name
        "127.0.0.1,10.0.0.5",  # loopback and a network address
        ".example.com",  # a domain and its subdomains
    ],
)
def test_debug_refuses_to_serve_beyond_loopback(hosts):
    """With DEBUG on, an error page shows settings (ORBIT_METRICS_TOKEN among them) to
    anyone who reaches it; so DEBUG serves loopback names only."""
    result = start({"DEBUG": "True", "ALLOWED_HOSTS": hosts})
    assert result.returncode == 1
    assert (
        "DEBUG is on, so Orbit serves only loopback names (localhost, 127.0.0.1, [::1]), "
        f"but ALLOWED_HOSTS also admits {hosts.split(',')[-1]!r}: set DEBUG=False to serve "
        "other hosts (docs/SECURITY.md)"
    ) in result.stderr


@pytest.mark.parametrize(
    ("env"),
    [
        {"DEBUG": "True", "ALLOWED_HOSTS": "127.0.0.1,localhost,[::1]"},  # the default
        {"DEBUG": "True", "ALLOWED_HOSTS": "localhost,.localhost,::1,127.0.0.1"},
        {"DEBUG": "False", "ALLOWED_HOSTS": "*", "SECRET_KEY": "x" * 50},  # production
    ],
)
def test_debug_on_loopback_and_debug_off_anywhere_start(env):
    result = start(env)
    assert result.returncode == 0, result.stderr
