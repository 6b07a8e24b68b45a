"""The web process as the Procfile starts it (gunicorn, sync workers): what a slow client
can and cannot do to it, and the buffering proxy configuration shipped for production.

A sync worker reading a request body is busy until the body has arrived, so a client that
sends one byte a second holds a worker. Without a proxy in front nothing can stop that;
what the Procfile guarantees is that gunicorn's timeout (WEB_TIMEOUT) ends each such
stall: the worker is replaced, and the next request is served. docs/SECURITY.md says so.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import time
from contextlib import suppress
from pathlib import Path

import pytest
import requests

from tests.processes import ROOT, database_env, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthz(base: str, timeout: float = 1.0) -> int:
    try:
        return requests.get(f"{base}/healthz", timeout=timeout).status_code
    except requests.RequestException:
        return 0


def _procfile_web() -> str:
    procfile = (ROOT / "Procfile").read_text()
    match = re.search(r"^web:\s*(.+)$", procfile, re.M)
    assert match, procfile
    return match[1]


def _start_web(tmp_path: Path, name: str, **settings: str):
    """The Procfile's web command with one worker and these settings; (process, its log,
    its base URL, its environment)."""
    port = _free_port()
    env = {
        **database_env(),
        "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
        "PORT": str(port),
        "ORBIT_BIND": "127.0.0.1",
        "WEB_CONCURRENCY": "1",
        **settings,
    }
    log = (tmp_path / f"{name}.log").open("wb")
    process = subprocess.Popen(
        ["sh", "-c", f"exec {_procfile_web()}"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: _healthz(base) == 200, timeout=60, message="gunicorn to serve")
    return process, log, base, env


def _stop(process: subprocess.Popen, log) -> None:
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
    log.close()


@pytest.fixture
def web(tmp_path: Path):
    """The Procfile's web command with one worker and a 2-second timeout."""
    process, log, base, _ = _start_web(tmp_path, "web", WEB_TIMEOUT="2")
    try:
        yield base, int(base.rsplit(":", 1)[1])
    finally:
        _stop(process, log)


def test_the_procfile_sets_gunicorns_timeouts() -> None:
    command = shlex.split(_procfile_web())
    assert command[command.index("--timeout") + 1] == "${WEB_TIMEOUT:-30}"
    assert command[command.index("--graceful-timeout") + 1] == "${WEB_TIMEOUT:-30}"


def test_a_slow_body_holds_the_worker_only_until_the_timeout(web) -> None:
    base, port = web
    slow = socket.create_connection(("127.0.0.1", port))
    try:
        slow.sendall(
            b"POST /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
        )
        started = time.monotonic()
        # The only worker waits for the other 999 bytes; gunicorn replaces it after
        # WEB_TIMEOUT (2 s) and the next request is answered.
        wait_until(lambda: _healthz(base) == 200, timeout=15, interval=0.2, message="/healthz")
        assert time.monotonic() - started < 10
    finally:
        slow.close()


def test_the_shipped_proxy_configuration_buffers_bodies() -> None:
    """What a proxy must do so that slow clients never reach a sync worker (docs/deploy)."""
    conf = (ROOT / "docs" / "deploy" / "nginx.conf").read_text()
    directives = {
        line.split()[0]: " ".join(line.split()[1:]).rstrip(";")
        for line in (raw.split("#", 1)[0].strip() for raw in conf.splitlines())
        if line and not line.endswith("{") and line != "}"
    }
    assert directives["proxy_request_buffering"] == "on"
    assert directives["proxy_buffering"] == "on"
    assert directives["client_body_timeout"] == "10s"
    assert directives["client_header_timeout"] == "10s"
    assert directives["client_max_body_size"] == "21m"  # ORBIT_MAX_UPLOAD_BYTES and metadata


def test_a_chunked_body_is_refused_not_dropped(web, test_pipelines) -> None:
    """gunicorn de-chunks the body but gives no Content-Length, so Django would read an
    empty body and queue a run without its metadata: refused with 411 instead."""
    from orbit.core.tokens import create_token
    from pipelines.models import Pipeline
    from runs.models import Run
    from tests.api.conftest import OPERATOR, make_user

    base, _ = web
    _, key = create_token(make_user("operator", OPERATOR), "tests")
    pipeline = Pipeline.objects.get(name="t-single")
    body = iter([b'{"metadata": ', b'{"a": 1}}'])  # a generator: requests sends it chunked
    response = requests.post(
        f"{base}/api/pipelines/{pipeline.id}/runs",
        data=body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 411
    assert response.json() == {
        "detail": "Chunked request bodies are not accepted: send the body with a Content-Length"
    }
    assert not Run.objects.exists()


def _login_page_and_its_styles(base: str) -> tuple[int, list[tuple[str, int]]]:
    page = requests.get(f"{base}/admin/login/", timeout=10)
    sheets = re.findall(r'href="(/static/[^"]+\.css)"', page.text)
    return page.status_code, [(s, requests.get(base + s, timeout=10).status_code) for s in sheets]


def test_with_debug_off_pages_are_served_before_and_after_collectstatic(tmp_path: Path) -> None:
    """Before `collectstatic` (a deploy that skipped the step) every page naming a static
    file was a 500; now the files go by their plain names, found where they live, and
    `check` warns. After it, by their hashed names from STATIC_ROOT."""
    static_root = tmp_path / "static"
    static_root.mkdir()
    without_debug = {
        "DEBUG": "False",
        "SECRET_KEY": "a-test-key-of-more-than-thirty-two-characters",
        "STATIC_ROOT": str(static_root),
    }
    process, log, base, env = _start_web(tmp_path, "before", **without_debug)
    try:
        status, sheets = _login_page_and_its_styles(base)
        assert status == 200
        assert ("/static/admin/css/base.css", 200) in sheets
        assert all(code == 200 for _, code in sheets), sheets
    finally:
        _stop(process, log)
    python = str(ROOT / ".venv" / "bin" / "python")
    check = subprocess.run(
        [python, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert "orbit.W001" in check.stderr + check.stdout
    # a worker host serves no pages: only the deployment checks ask for the manifest
    plain = subprocess.run(
        [python, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert plain.returncode == 0 and "orbit.W001" not in plain.stderr + plain.stdout
    subprocess.run(
        [python, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    check = subprocess.run(
        [python, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert "orbit.W001" not in check.stderr + check.stdout
    process, log, base, env = _start_web(tmp_path, "after", **without_debug)
    try:
        status, sheets = _login_page_and_its_styles(base)
        assert status == 200
        hashed = [s for s, _ in sheets if re.fullmatch(r"/static/admin/css/base\.\w{12}\.css", s)]
        assert hashed, sheets
        assert all(code == 200 for _, code in sheets), sheets
    finally:
        _stop(process, log)
