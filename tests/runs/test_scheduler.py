from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connection, transaction

from pipelines.models import Pipeline
from runs.models import Run, RunStatus
from runs.scheduler import (
    fire_due_schedules,
    fire_slot,
    last_scheduled_run,
    next_fire_time,
    with_last_slot,
)
from tests.factories import PipelineFactory, RunFactory

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def scheduled(name: str = "nightly", schedule: str = "0 3 * * *", **fields) -> Pipeline:
    """A row of the t-single definition whose schedule counts from T0."""
    fields.setdefault("definition", "t-single")
    row = PipelineFactory(name=name, schedule=schedule, **fields)
    Pipeline.objects.filter(pk=row.pk).update(schedule_anchor=T0)
    row.refresh_from_db()
    return row


def slots(pipeline: Pipeline | None = None) -> list[str]:
    runs = Run.objects.filter(scheduled_for__isnull=False).order_by("scheduled_for")
    if pipeline is not None:
        runs = runs.filter(pipeline=pipeline)
    return [run.scheduled_for.isoformat() for run in runs]  # type: ignore[union-attr]


def ticks(start: datetime, end: datetime, every: timedelta) -> Iterator[datetime]:
    moment = start
    while moment <= end:
        yield moment
        moment += every


# --- firing --------------------------------------------------------------------------------


def test_a_due_slot_fires_one_run_with_the_default_metadata_and_the_slot():
    row = scheduled(default_metadata={"report": "eu"})
    [run] = fire_due_schedules(at(2026, 1, 1, 3, 0, 4))
    assert run.pipeline == row
    assert run.status == RunStatus.PENDING
    assert run.scheduled_for == at(2026, 1, 1, 3)
    assert run.metadata == {"report": "eu", "scheduled_for": "2026-01-01T03:00:00+00:00"}
    assert list(run.steps.values_list("name", flat=True)) == ["noop"]
    assert Run.objects.claimable().filter(id=run.id).exists()


def test_nothing_fires_before_the_slot():
    scheduled()
    assert fire_due_schedules(at(2026, 1, 1, 2, 59, 59)) == []
    assert not Run.objects.exists()


def test_ticking_again_fires_nothing_more():
    scheduled()
    assert len(fire_due_schedules(at(2026, 1, 1, 3, 0, 1))) == 1
    assert fire_due_schedules(at(2026, 1, 1, 3, 0, 6)) == []
    assert fire_due_schedules(at(2026, 1, 1, 14)) == []
    assert slots() == ["2026-01-01T03:00:00+00:00"]


def test_a_worker_ticking_for_three_days_fires_each_slot_once():
    scheduled()
    for moment in ticks(at(2026, 1, 1), at(2026, 1, 4), timedelta(minutes=7)):
        fire_due_schedules(moment)
    assert slots() == [
        "2026-01-01T03:00:00+00:00",
        "2026-01-02T03:00:00+00:00",
        "2026-01-03T03:00:00+00:00",
    ]


def test_manual_runs_do_not_count_as_slots():
    row = scheduled()
    RunFactory(pipeline=row)
    assert len(fire_due_schedules(at(2026, 1, 1, 3, 0, 1))) == 1


def test_the_database_refuses_a_second_run_for_a_slot():
    row = scheduled()
    RunFactory(pipeline=row, scheduled_for=at(2026, 1, 1, 3))
    with pytest.raises(IntegrityError), transaction.atomic():
        RunFactory(pipeline=row, scheduled_for=at(2026, 1, 1, 3))


def test_a_slot_another_worker_fired_is_not_an_error():
    row = scheduled()
    first = fire_slot(row, at(2026, 1, 1, 3))
    assert first is not None
    assert fire_slot(row, at(2026, 1, 1, 3)) is None  # lost the race: the constraint said no
    assert Run.objects.get() == first


def test_a_naive_time_is_refused():
    scheduled()
    with pytest.raises(ValueError, match=r"^now must be a timezone-aware datetime"):
        fire_due_schedules(datetime(2026, 1, 1, 3))
    assert not Run.objects.exists()


def test_without_a_time_the_database_clock_is_used():
    row = scheduled("every-minute", "* * * * *")
    [run] = fire_due_schedules()
    assert run.pipeline == row
    assert run.created_at - run.scheduled_for < timedelta(minutes=1, seconds=5)  # type: ignore[operator]


# --- catch-up after downtime -----------------------------------------------------------------

DOWN_UNTIL = at(2026, 1, 1, 10, 30)  # hourly slots 01:00 .. 10:00 were missed


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("latest", ["2026-01-01T10:00:00+00:00"]),  # one run, for the most recent slot
        ("skip", []),  # none: 10:00 is half an hour late, past the grace period
        ("all", [f"2026-01-01T{hour:02}:00:00+00:00" for hour in range(1, 11)]),  # every one
    ],
)
def test_catch_up_policies(settings, policy, expected):
    settings.ORBIT_SCHEDULE_CATCHUP = policy
    scheduled(schedule="@hourly")
    fire_due_schedules(DOWN_UNTIL)
    assert slots() == expected


@pytest.mark.parametrize("policy", ["latest", "skip", "all"])
def test_after_catching_up_every_policy_fires_the_next_slot(settings, policy):
    settings.ORBIT_SCHEDULE_CATCHUP = policy
    scheduled(schedule="@hourly")
    fire_due_schedules(DOWN_UNTIL)
    [run] = fire_due_schedules(at(2026, 1, 1, 11, 0, 5))
    assert run.scheduled_for == at(2026, 1, 1, 11)


def test_skip_still_fires_a_slot_within_the_grace_period(settings):
    settings.ORBIT_SCHEDULE_CATCHUP = "skip"
    settings.ORBIT_SCHEDULE_GRACE = 60
    scheduled(schedule="@hourly")
    assert fire_due_schedules(at(2026, 1, 1, 1, 1, 1)) == []  # 61 s late
    assert len(fire_due_schedules(at(2026, 1, 1, 2, 1))) == 1  # 60 s late
    assert slots() == ["2026-01-01T02:00:00+00:00"]


def test_catch_up_all_is_bounded_and_says_so(settings, caplog):
    settings.ORBIT_SCHEDULE_CATCHUP = "all"
    settings.ORBIT_SCHEDULE_CATCHUP_MAX = 3
    scheduled(schedule="@hourly")
    fire_due_schedules(DOWN_UNTIL)
    assert slots() == [
        "2026-01-01T08:00:00+00:00",
        "2026-01-01T09:00:00+00:00",
        "2026-01-01T10:00:00+00:00",
    ]
    assert next(r.getMessage() for r in caplog.records if r.name == "runs.scheduler") == (
        "Pipeline nightly missed more than 3 schedule slots; firing the latest 3 "
        "(ORBIT_SCHEDULE_CATCHUP_MAX)"
    )


def test_catch_up_all_at_exactly_the_bound_does_not_warn(settings, caplog):
    settings.ORBIT_SCHEDULE_CATCHUP = "all"
    settings.ORBIT_SCHEDULE_CATCHUP_MAX = 10
    scheduled(schedule="@hourly")
    fire_due_schedules(DOWN_UNTIL)
    assert len(slots()) == 10
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# --- enabled and disabled --------------------------------------------------------------------


def test_a_disabled_pipeline_never_fires():
    row = scheduled(schedule="@hourly")
    row.set_enabled(False)
    for moment in ticks(at(2026, 1, 1), at(2026, 1, 3), timedelta(minutes=13)):
        assert fire_due_schedules(moment) == []
    assert not Run.objects.exists()


def test_enabling_resumes_from_the_next_slot_without_catching_up():
    row = scheduled(schedule="@hourly")
    fire_due_schedules(at(2026, 1, 1, 1, 0, 5))
    row.set_enabled(False)
    row.set_enabled(True)  # hours later, by the database clock
    enabled_at = row.schedule_anchor
    assert fire_due_schedules(enabled_at + timedelta(seconds=1)) == []  # no catch-up
    following = next_fire_time(row, after=enabled_at)
    assert following is not None
    assert following == enabled_at.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    [run] = fire_due_schedules(following + timedelta(seconds=2))
    assert run.scheduled_for == following
    assert slots() == ["2026-01-01T01:00:00+00:00", following.isoformat()]


def test_a_new_schedule_does_not_fire_its_past_slots():
    row = scheduled(schedule="@hourly")
    row.schedule = "0 0 * * *"
    row.save()
    assert fire_due_schedules(row.schedule_anchor + timedelta(seconds=1)) == []


def test_a_pipeline_without_a_schedule_never_fires():
    scheduled(schedule="")
    assert fire_due_schedules(at(2026, 1, 5)) == []


def test_a_pipeline_whose_code_is_gone_does_not_stop_the_others():
    scheduled("orphan", definition="t-gone-from-code")
    scheduled("nightly")
    [run] = fire_due_schedules(at(2026, 1, 1, 3, 0, 1))
    assert run.pipeline.name == "nightly"


def test_an_invalid_stored_schedule_is_logged_once_and_does_not_stop_the_others(caplog):
    broken = scheduled("broken")
    Pipeline.objects.filter(pk=broken.pk).update(schedule="0 3 * *")  # around save()
    scheduled("nightly")
    [run] = fire_due_schedules(at(2026, 1, 1, 3, 0, 1))
    fire_due_schedules(at(2026, 1, 1, 3, 0, 6))
    assert run.pipeline.name == "nightly"
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        "Pipeline broken has an invalid schedule and does not fire: Schedule '0 3 * *' has 4 "
        "fields; a cron expression has five: minute hour day-of-month month day-of-week"
    ]


# --- daylight saving ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "expected", "transition_day"),
    [
        (  # spring forward: 02:30 does not exist on 29 March, so it runs at 03:00
            at(2026, 3, 27, 12),
            ["2026-03-28T01:30:00+00:00", "2026-03-29T01:00:00+00:00", "2026-03-30T00:30:00+00:00"],
            "2026-03-29T03:00:00+02:00",
        ),
        (  # fall back: 02:30 happens twice on 25 October, and it runs once, the first time
            at(2026, 10, 23, 12),
            ["2026-10-24T00:30:00+00:00", "2026-10-25T00:30:00+00:00", "2026-10-26T01:30:00+00:00"],
            "2026-10-25T02:30:00+02:00",
        ),
    ],
)
def test_a_worker_ticking_across_a_daylight_saving_change(
    settings, start, expected, transition_day
):
    settings.ORBIT_SCHEDULE_TIMEZONE = "Europe/Berlin"
    row = scheduled(schedule="30 2 * * *")
    Pipeline.objects.filter(pk=row.pk).update(schedule_anchor=start)
    for moment in ticks(start, start + timedelta(days=3), timedelta(minutes=10)):
        fire_due_schedules(moment)
    assert slots() == expected
    metadata = Run.objects.order_by("scheduled_for").values_list("metadata", flat=True)
    assert [m["scheduled_for"] for m in metadata][1] == transition_day


# --- the command -------------------------------------------------------------------------------


def test_the_command_fires_and_lists_the_runs(capsys):
    scheduled()
    call_command("fire_schedules", now="2026-01-01T03:00:30+00:00")
    run = Run.objects.get()
    assert capsys.readouterr().out == (
        f"nightly\t2026-01-01T03:00:00+00:00\t{run.id}\nFired 1 run.\n"
    )


def test_the_command_reads_a_time_without_offset_in_the_schedule_zone(settings, capsys):
    settings.ORBIT_SCHEDULE_TIMEZONE = "Europe/Berlin"
    scheduled()
    call_command("fire_schedules", now="2026-01-01T03:00:30")  # 02:00:30 UTC
    assert capsys.readouterr().out.splitlines()[0].split("\t")[:2] == [
        "nightly",
        "2026-01-01T03:00:00+01:00",
    ]


def test_the_command_refuses_a_bad_time():
    scheduled()
    with pytest.raises(CommandError) as error:
        call_command("fire_schedules", now="tomorrow")
    assert str(error.value) == (
        "--now 'tomorrow' is not an ISO 8601 time such as 2026-03-29T03:00:00+02:00"
    )
    assert not Run.objects.exists()


# --- next fire time and last scheduled run -------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"schedule": "0 3 * * *"}, datetime(2026, 1, 11, 3, tzinfo=UTC)),  # tomorrow 03:00
        ({"schedule": "@hourly"}, datetime(2026, 1, 10, 13, tzinfo=UTC)),  # next hour
        ({"schedule": "0 3 * * *", "enabled": False}, None),  # disabled: never
        ({"schedule": ""}, None),  # no schedule
    ],
)
def test_next_fire_time(fields, expected):
    row = scheduled(**fields)
    assert next_fire_time(row, after=datetime(2026, 1, 10, 12, 30, tzinfo=UTC)) == expected


@pytest.mark.django_db
def test_next_fire_time_is_in_the_schedule_time_zone(settings):
    settings.ORBIT_SCHEDULE_TIMEZONE = "Europe/Berlin"
    row = scheduled()
    fires = next_fire_time(row, after=datetime(2026, 1, 10, 12, tzinfo=UTC))
    assert fires is not None
    assert fires.isoformat() == "2026-01-11T03:00:00+01:00"


@pytest.mark.django_db
def test_next_fire_time_defaults_to_after_now():
    row = PipelineFactory(name="nightly", schedule="* * * * *")
    fires = next_fire_time(row)
    assert fires is not None
    assert timedelta(0) < fires - row.schedule_anchor <= timedelta(minutes=1, seconds=5)


@pytest.mark.django_db
def test_a_slot_already_fired_is_not_the_next_one():
    row = scheduled()
    RunFactory(pipeline=row, scheduled_for=datetime(2026, 1, 11, 3, tzinfo=UTC))
    after = datetime(2026, 1, 10, 12, tzinfo=UTC)
    assert next_fire_time(row, after=after) == datetime(2026, 1, 12, 3, tzinfo=UTC)


@pytest.mark.django_db
def test_a_listing_gets_next_fire_times_in_one_query(django_assert_num_queries):
    for n in range(3):
        row = scheduled(f"nightly-{n}")
        RunFactory(pipeline=row, scheduled_for=datetime(2026, 1, 11, 3, tzinfo=UTC))
    after = datetime(2026, 1, 10, 12, tzinfo=UTC)
    with django_assert_num_queries(1):
        fires = [
            next_fire_time(row, after=after)
            for row in with_last_slot(Pipeline.objects.filter(schedule="0 3 * * *"))
        ]
    assert fires == [datetime(2026, 1, 12, 3, tzinfo=UTC)] * 3


@pytest.mark.django_db
def test_last_scheduled_run_is_the_latest_slot_not_the_latest_run():
    row = scheduled()
    RunFactory(pipeline=row, scheduled_for=None)  # started by hand: not a schedule's run
    latest = RunFactory(pipeline=row, scheduled_for=datetime(2026, 1, 3, 3, tzinfo=UTC))
    RunFactory(pipeline=row, scheduled_for=datetime(2026, 1, 2, 3, tzinfo=UTC))
    assert last_scheduled_run(row) == latest
    assert last_scheduled_run(scheduled("other")) is None


# --- several real workers at once on PostgreSQL -----------------------------------------------

RACER = """
import json, sys
from datetime import datetime
import django
django.setup()
from django.db import connection
from runs.scheduler import fire_due_schedules
connection.ensure_connection()
print("ready", flush=True)
sys.stdin.readline()  # the starting gun: every process fires at the same instant
runs = fire_due_schedules(datetime.fromisoformat(sys.argv[1]), exclusive=sys.argv[2] == "1")
print(json.dumps([str(run.id) for run in runs]), flush=True)
"""

WORKERS = 4
HOURS_DOWN = 30


def subprocess_env(**extra: str) -> dict[str, str]:
    db = connection.settings_dict
    auth = quote(db["USER"] or "")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"])
    url = f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "orbit.settings",
        "DATABASE_URL": url,
        "ORBIT_PIPELINE_MODULES": "tests.pipelines_for_tests",
        "ORBIT_LOG_LEVEL": "WARNING",
        **extra,
    }


@pytest.fixture
def three_pipelines_down_for_a_day() -> tuple[list[Pipeline], datetime]:
    rows = [scheduled(f"hourly-{n}", "@hourly") for n in range(3)]
    return rows, T0 + timedelta(hours=HOURS_DOWN, minutes=5)


def assert_each_slot_once(rows: list[Pipeline], reported: list[str]) -> None:
    expected = [(T0 + timedelta(hours=h)).isoformat() for h in range(1, HOURS_DOWN + 1)]
    for row in rows:
        assert slots(row) == expected
    # Every run was created by exactly one process, and each process saw its own runs.
    assert sorted(reported) == sorted(str(i) for i in Run.objects.values_list("id", flat=True))


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "exclusive", [False, True], ids=["unique-constraint-only", "advisory-lock"]
)
def test_workers_racing_on_the_same_instant_fire_each_slot_once(
    three_pipelines_down_for_a_day, exclusive
):
    rows, now = three_pipelines_down_for_a_day
    env = subprocess_env(ORBIT_SCHEDULE_CATCHUP="all")
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, now.isoformat(), "1" if exclusive else "0"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(WORKERS)
    ]
    try:
        for racer in racers:
            assert racer.stdout is not None
            assert racer.stdout.readline().strip() == "ready"
        for racer in racers:
            assert racer.stdin is not None
            racer.stdin.write("go\n")
            racer.stdin.flush()
        outputs = [racer.communicate(timeout=60) for racer in racers]
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
                racer.wait(timeout=10)
    assert [racer.returncode for racer in racers] == [0] * WORKERS, [err for _, err in outputs]
    created = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert_each_slot_once(rows, [run_id for ids in created for run_id in ids])
    if exclusive:
        # The lock holder fired everything; the others found it taken, or nothing left to do.
        assert sorted(len(ids) for ids in created) == [0] * (WORKERS - 1) + [3 * HOURS_DOWN]


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_fire_schedules_commands_run_together_fire_each_slot_once(three_pipelines_down_for_a_day):
    rows, now = three_pipelines_down_for_a_day
    env = subprocess_env(ORBIT_SCHEDULE_CATCHUP="all")
    commands = [
        subprocess.Popen(
            [sys.executable, "manage.py", "fire_schedules", "--now", now.isoformat()],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(WORKERS)
    ]
    try:
        outputs = [command.communicate(timeout=60) for command in commands]
    finally:
        for command in commands:
            if command.poll() is None:
                command.kill()
                command.wait(timeout=10)
    assert [command.returncode for command in commands] == [0] * WORKERS, [e for _, e in outputs]
    lines = [line for out, _ in outputs for line in out.splitlines() if "\t" in line]
    assert_each_slot_once(rows, [line.split("\t")[2] for line in lines])
    totals = sorted(out.splitlines()[-1] for out, _ in outputs)
    assert sum(int(total.split()[1]) for total in totals) == 3 * HOURS_DOWN
