"""`runworker --reload` (runs/worker/reloader.py) as a developer uses it: a real reloader
process watching a pipeline module that the test writes, edits and breaks."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import textwrap
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path

import pytest

from pipelines import Pipeline, step
from pipelines.definition import registry
from pipelines.sync import sync_pipelines
from runs import enqueue
from runs.models import AttemptOutcome, Run, RunStatus, Step
from runs.models import Worker as WorkerRow
from runs.worker.reloader import POLL_SECONDS
from tests.processes import ROOT, WorkerProcess, stays_true, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

MODULE = "reloadpipes"

# The step logs each execution, then waits for the test to create `release`: a step the
# test can hold running for as long as it needs, without sleeping on luck.
SOURCE = '''
"""Written by tests/runs/test_reload.py, which edits VERSION while a worker runs it."""
import time
from pathlib import Path

from pipelines import Pipeline, step

HERE = Path(__file__).parent
VERSION = {version!r}


def answer(ctx):
    with (HERE / "executions.log").open("a") as log:
        log.write(f"{{ctx.run_id}} {{VERSION}}\\n")
    deadline = time.monotonic() + 60
    while not (HERE / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return {{"version": VERSION}}


Pipeline("t-reload", steps=[step("answer", answer, timeout=120)])
'''


class EditablePipeline:
    """`reloadpipes.py` in a directory of its own, rewritten by the test like a developer."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir()
        self.directory = directory
        self.path = directory / f"{MODULE}.py"
        self.write("v1")

    def write(self, version: str) -> None:
        self.path.write_text(textwrap.dedent(SOURCE).format(version=version))

    def break_syntax(self) -> None:
        self.path.write_text("def answer(ctx:\n")

    def release(self) -> None:
        (self.directory / "release").touch()

    def executions(self, run: Run) -> list[str]:
        """The version of the code each execution of the run's step ran."""
        log = self.directory / "executions.log"
        lines = log.read_text().splitlines() if log.exists() else []
        return [line.split()[1] for line in lines if line.split()[0] == str(run.id)]


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[EditablePipeline]:
    editable = EditablePipeline(tmp_path / "pipes")
    # The test process creates the runs, which needs only the definition's step names.
    Pipeline("t-reload", steps=[step("answer", lambda ctx: None)])
    sync_pipelines()
    yield editable
    registry.unregister("t-reload")


@pytest.fixture
def reloader(tmp_path: Path, pipeline: EditablePipeline) -> Iterator[Callable[..., WorkerProcess]]:
    """Start `runworker --reload` with the pipeline's directory on its path."""
    started: list[WorkerProcess] = []

    def start(*, project: Path = ROOT, session: bool = False) -> WorkerProcess:
        env = {
            "PYTHONPATH": os.pathsep.join([str(pipeline.directory), str(project)]),
            "ORBIT_PIPELINE_MODULES": MODULE,
            # Bytecode records its source's mtime in whole seconds: an edit of the same
            # size within a second of the last import would run the old code.
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        process = WorkerProcess(
            tmp_path,
            "--reload",
            "--no-schedules",
            env=env,
            name="reloader",
            project=project,
            session=session,
        )
        started.append(process)
        return process

    yield start
    pipeline.release()  # a step still held would make the graceful stop wait for it
    for process in started:
        if process.process.poll() is None:
            process.send(signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                process.wait(30)
        process.stop()
    # A reloader that had to be killed leaves its worker behind (in its own process group).
    for pid in WorkerRow.objects.exclude(state="stopped").values_list("pid", flat=True):
        with suppress(OSError):
            if b"runworker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)


def new_worker(before: set[int], timeout: float = 30.0) -> WorkerRow:
    """Wait until the workers in `before` have stopped and a new one is running."""
    wait_until(
        lambda: not WorkerRow.objects.filter(id__in=before).exclude(state="stopped").exists(),
        timeout,
        message="the old worker to stop",
    )
    return wait_until(
        lambda: WorkerRow.objects.exclude(id__in=before).filter(state="running").first(),
        timeout,
        message="a new worker to start",
    )


def worker_ids() -> set[int]:
    return set(WorkerRow.objects.values_list("id", flat=True))


def finished(run: Run, timeout: float = 30.0) -> Step:
    """Wait for the run to finish; it must have succeeded. Returns its one step."""
    wait_until(
        lambda: Run.objects.filter(id=run.id).exclude(status__in=["pending", "running"]).exists(),
        timeout,
        message=f"run {run.id} to finish",
    )
    answer = Step.objects.get(run_id=run.id, name="answer")
    assert Run.objects.get(id=run.id).status == RunStatus.SUCCEEDED, answer.error
    return answer


def test_an_edit_restarts_the_worker_and_new_runs_get_the_new_code(pipeline, reloader):
    pipeline.release()
    process = reloader()
    first = enqueue("t-reload")
    assert finished(first).result == {"version": "v1"}
    before = worker_ids()

    pipeline.write("v2")

    new_worker(before)
    assert "Code changed" in process.log()
    second = enqueue("t-reload")
    assert finished(second).result == {"version": "v2"}
    assert process.process.poll() is None


def test_a_running_step_finishes_before_the_restart(pipeline, reloader):
    reloader()
    run = enqueue("t-reload")
    wait_until(lambda: pipeline.executions(run), message="the step to start")
    before = worker_ids()

    pipeline.write("v2")

    wait_until(
        lambda: WorkerRow.objects.filter(id__in=before, state="stopping").exists(),
        message="the worker to start stopping",
    )
    # Stopping, not stopped: the reloader waits for the step before starting a new worker.
    assert not WorkerRow.objects.exclude(id__in=before).exists()
    assert Run.objects.get(id=run.id).status == RunStatus.RUNNING
    pipeline.release()
    answer = finished(run)
    assert answer.result == {"version": "v1"}
    assert pipeline.executions(run) == ["v1"]
    assert list(answer.attempt_records.values_list("outcome", flat=True)) == [
        AttemptOutcome.SUCCEEDED
    ]
    new_worker(before)
    after = enqueue("t-reload")
    assert finished(after).result == {"version": "v2"}


def test_a_syntax_error_in_the_pipeline_stops_the_worker_until_the_fix(pipeline, reloader):
    """The restarted worker refuses to start without the broken module (whose runs would
    otherwise wait unseen), saying where the error is; the fix starts it again."""
    pipeline.release()
    process = reloader()
    wait_until(lambda: worker_ids(), message="the worker to start")
    before = worker_ids()

    pipeline.break_syntax()

    wait_until(
        lambda: (
            f"Pipeline module {MODULE} failed to import ({pipeline.path}, line 1): "
            "SyntaxError" in process.log()
        ),
        message="the syntax error, with its file and line, in the log",
    )
    wait_until(lambda: "waiting for a code change" in process.log(), message="the reloader to wait")
    assert worker_ids() == before  # no worker started with the module missing
    pipeline.write("v3")
    new_worker(before)
    run = enqueue("t-reload")
    assert finished(run).result == {"version": "v3"}
    assert process.process.poll() is None


def test_a_worker_that_cannot_start_waits_for_the_fix(pipeline, reloader, tmp_path):
    # A copy of the project, so the test can break code every worker imports at startup.
    project = tmp_path / "project"
    shutil.copytree(
        ROOT,
        project,
        ignore=shutil.ignore_patterns(
            ".*", "__pycache__", "node_modules", "docs", "bench", "tests", "*.sqlite3*"
        ),
    )
    models = project / "runs" / "models.py"
    source = models.read_text()
    pipeline.release()
    process = reloader(project=project)
    wait_until(lambda: worker_ids(), message="the worker to start")
    before = worker_ids()

    models.write_text(source + "\ndef broken(:\n")

    wait_until(
        lambda: "The worker exited with status 1; waiting for a code change" in process.log(),
        message="the reloader to report the failed start",
    )
    assert "SyntaxError" in process.log()
    assert process.process.poll() is None
    models.write_text(source)
    new_worker(before)
    run = enqueue("t-reload")
    assert finished(run).result == {"version": "v1"}


def test_ctrl_c_stops_the_worker_gracefully(pipeline, reloader):
    process = reloader(session=True)
    run = enqueue("t-reload")
    wait_until(lambda: pipeline.executions(run), message="the step to start")

    os.killpg(process.pid, signal.SIGINT)  # what a terminal does: the whole process group

    wait_until(
        lambda: WorkerRow.objects.filter(state="stopping").exists(),
        message="the worker to start stopping",
    )
    # One signal reached the worker, not two (which would stop the step at once).
    stays_true(
        lambda: WorkerRow.objects.filter(state="stopping").exists(),
        seconds=3 * POLL_SECONDS,
        message="the worker stopping gracefully",
    )
    pipeline.release()
    assert process.wait(30) == 0, process.log()
    answer = Step.objects.get(run_id=run.id, name="answer")
    assert (answer.status, answer.result) == ("succeeded", {"version": "v1"})
    assert list(answer.attempt_records.values_list("outcome", flat=True)) == [
        AttemptOutcome.SUCCEEDED
    ]
    # Its last step finished while the worker was stopping: the run is done, not re-queued.
    assert Run.objects.get(id=run.id).status == RunStatus.SUCCEEDED
    assert WorkerRow.objects.get().state == "stopped"


def test_a_killed_reloader_takes_its_worker_down_gracefully(pipeline, reloader):
    process = reloader()
    wait_until(
        lambda: WorkerRow.objects.filter(state="running").exists(),
        message="the worker to start",
    )
    process.send(signal.SIGKILL)
    wait_until(
        lambda: not WorkerRow.objects.exclude(state="stopped").exists(),
        timeout=30,
        message="the worker to stop with its reloader (and mark itself stopped)",
    )
