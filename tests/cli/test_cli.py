"""The `orbit` command line, run as a user runs it: a real process, exit codes, output."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from runs.models import Run, RunStatus, StepAttempt, Worker
from tests.processes import ROOT, database_env

pytestmark = pytest.mark.django_db(transaction=True)


def orbit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = database_env()
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "orbit.cli", *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_run_prints_steps_and_exits_zero(test_pipelines):
    done = orbit("run", "t-flaky", "--metadata", json.dumps({"fail_times": 2}))
    assert done.returncode == 0, done.stderr
    assert "▶ flaky (attempt 1)" in done.stdout
    assert "✖ flaky attempt 1 failed: RuntimeError: flaky failure on attempt 1" in done.stdout
    assert "↻ flaky retries in" in done.stdout
    assert "✔ after" in done.stdout
    run = Run.objects.get()
    assert run.status == RunStatus.SUCCEEDED
    assert StepAttempt.objects.filter(run=run, step__name="flaky").count() == 3


def test_run_failure_exits_one(test_pipelines):
    done = orbit("run", "t-failing")
    assert done.returncode == 1
    assert "Step 'fails' failed after 2 attempts: ValueError: this step always fails" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("run", "nope"), "Unknown pipeline 'nope'. Known pipelines:"),  # lists the known ones
        (("run", "t-single", "--metadata", "{not json"), "--metadata is not valid JSON"),
        (("run", "t-single", "--metadata", "[1]"), "Run metadata must be a JSON object, not list"),
        (("frobnicate",), "orbit: unknown command 'frobnicate'"),
    ],
)
def test_bad_usage_exits_two_and_writes_nothing(test_pipelines, args, message):
    done = orbit(*args)
    assert done.returncode == 2
    assert message in " ".join((done.stdout + done.stderr).split())
    assert not Run.objects.exists()


def test_outside_module_pipeline_is_listed_and_runs(test_pipelines, tmp_path):
    (tmp_path / "teampipes.py").write_text(
        "from pipelines import Pipeline, step\n"
        "def hello(ctx):\n    return {'greeting': 'hi ' + ctx.metadata.get('name', '?')}\n"
        "team = Pipeline('team-hello', steps=[step('hello', hello)])\n"
    )
    env = {
        "ORBIT_PIPELINE_MODULES": "tests.pipelines_for_tests,teampipes",
        "PYTHONPATH": f"{ROOT}:{tmp_path}",
    }
    listed = orbit("list", env=env)
    assert listed.returncode == 0
    assert "team-hello" in listed.stdout
    assert "- (code)" in listed.stdout  # no schedule, as its code says
    ran = orbit("run", "team-hello", "--metadata", '{"name": "ada"}', env=env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert '"greeting": "hi ada"' in ran.stdout


def test_check_waiting_names_the_pipeline_no_live_worker_defines(test_pipelines):
    from runs import enqueue
    from tests.factories import WorkerFactory

    assert "No runs are waiting" in orbit("check-waiting").stdout
    WorkerFactory(state="running", queues=["default"], definitions={"t-single": ["noop"]})
    enqueue("t-three")
    checked = orbit("check-waiting")
    assert checked.returncode == 0
    assert "1 run waiting for a worker that defines 't-three'" in " ".join(checked.stdout.split())


def test_rerun_queues_the_pipeline_again_with_edited_metadata(test_pipelines):
    from runs import enqueue

    original = enqueue("t-single", metadata={"n": 1})
    done = orbit("rerun", str(original.id), "--metadata", '{"n": 2}')
    assert done.returncode == 0, done.stdout + done.stderr
    rerun = Run.objects.get(rerun_of=original)
    assert rerun.metadata == {"n": 2}
    assert f"Run {rerun.id} queued: t-single again, a rerun of {original.id}" in done.stdout
    assert orbit("rerun", str(original.id), "--metadata", "[1]").returncode == 2
    assert orbit("rerun", "nope").returncode == 2


def test_check_interrupted_and_recover(test_pipelines):
    from runs import enqueue
    from tests.runs.test_recovery import interrupt

    run = interrupt(enqueue("t-three"))
    checked = orbit("check-interrupted")
    assert checked.returncode == 0
    assert str(run.id) in checked.stdout and "lease expired" in checked.stdout
    report = orbit("recover")
    assert "Nothing changed" in report.stdout
    assert Run.objects.get(id=run.id).status == RunStatus.RUNNING
    done = orbit("recover", "--auto-resume")
    assert "Re-queued 1 interrupted run(s)." in done.stdout
    assert Run.objects.get(id=run.id).status == RunStatus.PENDING
    resumed = orbit("resume", str(run.id))
    assert resumed.returncode == 0, resumed.stdout
    assert Run.objects.get(id=run.id).status == RunStatus.SUCCEEDED
    again = orbit("resume", str(run.id))
    assert again.returncode == 2
    assert "already finished: it succeeded" in again.stdout


def test_auto_recover_then_run(test_pipelines):
    from runs import enqueue
    from tests.runs.test_recovery import interrupt

    stuck = interrupt(enqueue("t-three"))
    done = orbit("--auto-recover", "run", "t-single")
    assert done.returncode == 0
    assert "Recovered 1 interrupted run(s)" in done.stdout
    assert Run.objects.get(id=stuck.id).status == RunStatus.PENDING


def test_manage_py_orbit_is_the_same_cli(test_pipelines):
    done = subprocess.run(
        [sys.executable, "manage.py", "orbit", "run", "t-single"],
        cwd=ROOT,
        env=database_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "✔ noop" in done.stdout


def test_list_escapes_control_characters_in_what_it_prints(test_pipelines):
    """A row written before the name rule covered the admin (or straight into the
    database) must not drive the terminal: escape codes are shown, not sent."""
    from pipelines.models import Pipeline

    Pipeline.objects.create(name="evil\x1b[2J\x1b[31m", definition="t-single\x07")
    done = orbit("list")
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout and "\x07" not in done.stdout
    assert "evil\\x1b[2J\\x1b[31m" in done.stdout
    assert "t-single\\x07" in done.stdout


def test_errors_printed_by_the_cli_escape_control_characters(test_pipelines):
    done = orbit("run", "nope\x1b[31mred")
    assert done.returncode == 2
    assert "\x1b[31m" not in done.stdout
    assert "nope\\x1b[31mred" in done.stdout


def test_run_verbose_prints_the_steps_log_records_as_they_are_written(test_pipelines, tmp_path):
    release = tmp_path / "release"
    metadata = json.dumps({"release": str(release), "every": 0.1})
    full_env = database_env()
    process = subprocess.Popen(
        [sys.executable, "-m", "orbit.cli", "run", "-v", "t-live-logs", "--metadata", metadata],
        cwd=ROOT,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        printed = []
        for line in process.stdout:  # type: ignore[union-attr]
            printed.append(line)
            if "waits: tick 1" in line:
                break
        assert process.poll() is None  # still running: the record was printed live
        release.touch()
        rest, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    output = "".join(printed) + rest
    assert process.returncode == 0, output
    assert "INFO    waits: waiting" in output
    assert "INFO    waits: released" in output


BROKEN = "from pipelines import Pipeline, step\n\nSETTINGS = {}\nTOKEN = SETTINGS['token']\n"


def broken_env(tmp_path, source: str = BROKEN) -> dict[str, str]:
    (tmp_path / "brokenpipes.py").write_text(source)
    return {
        "ORBIT_PIPELINE_MODULES": "tests.pipelines_for_tests,brokenpipes",
        "PYTHONPATH": f"{ROOT}:{tmp_path}",
    }


def test_a_worker_refuses_to_start_when_a_pipeline_module_fails_to_import(test_pipelines, tmp_path):
    done = orbit("worker", "--burst", env=broken_env(tmp_path))
    assert done.returncode == 1
    assert (
        f"Pipeline module brokenpipes failed to import ({tmp_path / 'brokenpipes.py'}, line 4): "
        "KeyError: 'token'"
    ) in done.stderr
    assert "--allow-broken-modules" in done.stderr
    assert not Worker.objects.exists()


def test_a_syntax_error_is_named_with_its_line(test_pipelines, tmp_path):
    done = orbit("worker", "--burst", env=broken_env(tmp_path, "x = 1\ndef broken(:\n"))
    assert done.returncode == 1
    assert f"({tmp_path / 'brokenpipes.py'}, line 2): SyntaxError: invalid syntax" in done.stderr


@pytest.mark.parametrize(
    "allow",
    [
        {"args": ("--allow-broken-modules",)},  # the flag
        {"env": {"ORBIT_ALLOW_BROKEN_MODULES": "True"}},  # the setting
    ],
)
def test_a_worker_allowed_to_start_with_a_broken_module_runs_the_others(
    test_pipelines, tmp_path, allow
):
    from runs import enqueue

    run = enqueue("t-single")
    env = {**broken_env(tmp_path), **allow.get("env", {})}
    done = orbit("worker", "--burst", "--no-schedules", *allow.get("args", ()), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Pipeline module brokenpipes failed to import" in done.stdout + done.stderr
    assert Run.objects.get(id=run.id).status == RunStatus.SUCCEEDED


def test_list_exits_one_and_says_where_a_module_failed(test_pipelines, tmp_path):
    listed = orbit("list", env=broken_env(tmp_path))
    assert listed.returncode == 1
    assert "t-single" in listed.stdout  # the modules that loaded are still listed
    assert (
        f"Pipeline module brokenpipes failed to import ({tmp_path / 'brokenpipes.py'}, line 4): "
        "KeyError: 'token'"
    ) in " ".join(listed.stdout.split())


def test_the_login_message_names_the_port_orbit_runs_on(db, monkeypatch):
    from io import StringIO

    from django.core.management import call_command

    monkeypatch.setenv("PORT", "9123")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "pw-for-tests")
    out = StringIO()
    call_command("ensure_admin", stdout=out)
    assert out.getvalue().strip() == (
        "Created superuser. Log in at http://127.0.0.1:9123/admin/ as admin / pw-for-tests"
    )


def test_enqueue_queues_a_delayed_run_on_a_queue_with_a_key(test_pipelines):
    args = ("enqueue", "t-single", "--metadata", '{"a": 1}', "--queue", "documents")
    done = orbit(*args, "--delay", "5m", "--priority", "3", "--idempotency-key", "k-1")
    assert done.returncode == 0, done.stdout + done.stderr
    run = Run.objects.get()
    assert "scheduled for" in done.stdout and str(run.id) in done.stdout
    assert (run.queue, run.priority, run.metadata, run.idempotency_key) == (
        "documents",
        3,
        {"a": 1},
        "k-1",
    )
    assert 290 < (run.available_at - run.created_at).total_seconds() < 310
    again = orbit(*args, "--delay", "5m", "--priority", "3", "--idempotency-key", "k-1")
    assert again.returncode == 0 and str(run.id) in again.stdout
    assert Run.objects.count() == 1


@pytest.mark.parametrize(
    "bad",
    [
        ("--queue", "no spaces"),
        ("--delay", "soon"),
        ("--at", "2020-01-01T00:00:00+00:00"),
        ("--at", "yesterday"),
        ("--metadata", "{oops"),
    ],
)
def test_enqueue_refuses_bad_input_and_queues_nothing(test_pipelines, bad):
    done = orbit("enqueue", "t-single", *bad)
    assert done.returncode == 2
    assert Run.objects.count() == 0


FAR = "is too far ahead: a run starts at most 3650 days from now"
DEEP = "[" * 5000 + "]" * 5000


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (("--delay", "99999999999w"), f"delay '99999999999w' {FAR}"),
        (("--delay", "522w"), f"delay '522w' {FAR}"),  # just past: 3654 days
        (("--at", "2099-01-01T00:00:00+00:00"), f"run_after 2099-01-01T00:00:00+00:00 {FAR}"),
        # in UTC, past the last moment a datetime holds
        (("--at", "9999-12-31T23:59:59-05:00"), f"run_after 9999-12-31T23:59:59-05:00 {FAR}"),
    ],
)
def test_enqueue_refuses_a_start_past_ten_years_and_queues_nothing(test_pipelines, bad, message):
    done = orbit("enqueue", "t-single", *bad)
    assert done.returncode == 2, done.stderr
    assert " ".join(done.stdout.split()) == message
    assert Run.objects.count() == 0


@pytest.mark.parametrize("command", [("enqueue", "t-single"), ("run", "t-single")])
def test_metadata_nested_past_the_parser_is_refused_with_exit_2(test_pipelines, command):
    done = orbit(*command, "--metadata", DEEP)
    assert done.returncode == 2, done.stderr
    assert " ".join(done.stdout.split()) == (
        "--metadata is nested deeper than 32 levels (ORBIT_MAX_JSON_DEPTH)"
    )
    assert Run.objects.count() == 0


def test_rerun_refuses_metadata_nested_past_the_parser(test_pipelines):
    from runs import enqueue

    original = enqueue("t-single")
    done = orbit("rerun", str(original.id), "--metadata", DEEP)
    assert done.returncode == 2, done.stderr
    assert " ".join(done.stdout.split()) == (
        "--metadata is nested deeper than 32 levels (ORBIT_MAX_JSON_DEPTH)"
    )
    assert Run.objects.count() == 1


def test_enqueue_of_an_unknown_pipeline_exits_2(test_pipelines):
    done = orbit("enqueue", "nope")
    assert done.returncode == 2 and "Unknown pipeline 'nope'" in done.stdout


def test_enqueue_with_a_unique_key_returns_the_pending_run(test_pipelines):
    first = orbit("enqueue", "t-single", "--unique-key", "sync-1")
    again = orbit("enqueue", "t-single", "--unique-key", "sync-1", "--metadata", '{"b": 2}')
    assert first.returncode == 0 and again.returncode == 0, again.stdout
    run = Run.objects.get()
    assert str(run.id) in again.stdout and run.unique_key == "sync-1"


def test_run_with_enqueue_queues_for_the_workers_instead(test_pipelines):
    done = orbit("run", "t-single", "--enqueue", "--queue", "documents", "--delay", "60")
    assert done.returncode == 0, done.stdout + done.stderr
    run = Run.objects.get()
    assert (run.status, run.queue) == (RunStatus.PENDING, "documents")
    assert "scheduled for" in done.stdout
