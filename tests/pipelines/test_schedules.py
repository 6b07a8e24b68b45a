from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim
from django.core.exceptions import ImproperlyConfigured
from django.forms import modelform_factory

from orbit.core.conf import orbit_settings
from orbit.core.exceptions import DefinitionError, InvalidSchedule
from orbit.core.models import AuditEvent
from pipelines import Pipeline as Definition
from pipelines import step
from pipelines.definition import registry
from pipelines.models import Pipeline
from pipelines.schedules import (
    describe_schedule,
    slots_between,
    validate_schedule,
)
from pipelines.sync import sync_pipelines
from tests import steps
from tests.factories import PipelineFactory

BERLIN = ZoneInfo("Europe/Berlin")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def scheduled(name: str = "nightly", schedule: str = "0 3 * * *", **fields) -> Pipeline:
    """A row of the t-single definition whose schedule counts from T0."""
    row = PipelineFactory(name=name, definition="t-single", schedule=schedule, **fields)
    Pipeline.objects.filter(pk=row.pk).update(schedule_anchor=T0)
    row.refresh_from_db()
    return row


@pytest.mark.parametrize(
    "expression",
    [
        "0 3 * * *",  # every day at 03:00
        "*/15 * * * *",  # every quarter hour
        "0 9-17 * * MON-FRI",  # office hours, names for days
        "30 2 1,15 JAN,JUL *",  # lists and month names
        "0 0 L * *",  # last day of the month (cronsim extension)
        "0 8 * * MON#1",  # first Monday of the month (cronsim extension)
        "0 0 29 2 *",  # leap days only, but it does fire
        "0 0 * * 7",  # 7 is Sunday too
        "  5 4 * * *  ",  # surrounding spaces
        "@hourly",
        "@daily",
        "@weekly",
        "@monthly",
        "@yearly",
        "@annually",
        "@midnight",
        "@Daily",  # aliases are case-insensitive
    ],
)
def test_valid_expressions_pass(expression):
    validate_schedule(expression)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "The schedule is empty: give a cron expression such as '0 3 * * *'"),
        (
            "* * *",  # too few fields
            "Schedule '* * *' has 3 fields; a cron expression has five: "
            "minute hour day-of-month month day-of-week",
        ),
        (
            "0 0 3 * * *",  # six fields (seconds) are not cron
            "Schedule '0 0 3 * * *' has 6 fields; a cron expression has five: "
            "minute hour day-of-month month day-of-week",
        ),
        ("61 * * * *", "Schedule '61 * * * *': the minute field '61' is invalid (allowed: 0-59)"),
        ("0 24 * * *", "Schedule '0 24 * * *': the hour field '24' is invalid (allowed: 0-23)"),
        (
            "0 0 0 * *",
            "Schedule '0 0 0 * *': the day-of-month field '0' is invalid (allowed: 1-31, L or LW)",
        ),
        (
            "0 0 * 13 *",
            "Schedule '0 0 * 13 *': the month field '13' is invalid (allowed: 1-12 or JAN-DEC)",
        ),
        (
            "0 0 * * FUN",
            "Schedule '0 0 * * FUN': the day-of-week field 'FUN' is invalid "
            "(allowed: 0-7 or SUN-SAT, 0 and 7 being Sunday; 5L and MON#2 forms)",
        ),
        (
            "*/0 * * * *",
            "Schedule '*/0 * * * *': the minute field '*/0' is invalid (allowed: 0-59)",
        ),
        (
            "5-1 * * * *",
            "Schedule '5-1 * * * *': the minute field '5-1' is invalid (allowed: 0-59)",
        ),
        (
            "0 0 30 2 *",  # February never has a 30th
            "Schedule '0 0 30 2 *' never fires: no month in it has that day of the month",
        ),
        (
            "@reboot",  # no such thing for a worker pool
            "Schedule '@reboot' is not a known alias; use one of: "
            "@yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly",
        ),
        (
            "0 3 * * * " + "1" * 100,
            "Schedule '0 3 * * * 11111111111111111111...' is 110 characters long; the limit is 100",
        ),
    ],
)
def test_invalid_expressions_say_what_is_wrong(expression, message):
    with pytest.raises(InvalidSchedule) as error:
        validate_schedule(expression)
    assert str(error.value) == message


def test_a_schedule_must_be_a_string():
    with pytest.raises(InvalidSchedule, match=r"^A schedule must be a string, not int$"):
        validate_schedule(5)  # type: ignore[arg-type]


def test_describe_schedule_reads_like_a_sentence():
    assert describe_schedule("0 3 * * *") == "At 03:00 every day"
    assert describe_schedule("@hourly") == "At the start of every hour"
    assert describe_schedule("") == ""
    assert describe_schedule("nonsense") == ""


# --- refused everywhere ------------------------------------------------------------------

MINUTE_61 = "Schedule '61 * * * *': the minute field '61' is invalid (allowed: 0-59)"


@pytest.mark.django_db
def test_create_refuses_an_invalid_schedule_and_writes_nothing():
    with pytest.raises(InvalidSchedule, match=f"^{re.escape(MINUTE_61)}$"):
        Pipeline.objects.create(name="bad", definition="t-single", schedule="61 * * * *")
    assert not Pipeline.objects.filter(name="bad").exists()


@pytest.mark.django_db
def test_save_refuses_an_invalid_schedule_and_keeps_the_old_one():
    row = scheduled()
    row.schedule = "61 * * * *"
    with pytest.raises(InvalidSchedule, match=f"^{re.escape(MINUTE_61)}$"):
        row.save()
    row.refresh_from_db()
    assert row.schedule == "0 3 * * *"


@pytest.mark.django_db
def test_the_admin_form_shows_the_message_on_the_schedule_field():
    form_class = modelform_factory(Pipeline, fields="__all__")
    form = form_class(
        data={
            "name": "nightly",
            "definition": "t-single",
            "schedule": "61 * * * *",
            "default_metadata": "{}",
            "enabled": "on",
        }
    )
    assert not form.is_valid()
    assert form.errors["schedule"] == [MINUTE_61]
    assert "schedule_anchor" not in form.fields  # managed by Orbit, not operators


@pytest.mark.django_db
def test_full_clean_refuses_an_invalid_schedule():
    row = PipelineFactory.build(name="nightly", schedule="0 3 * * * *")
    with pytest.raises(Exception) as error:
        row.full_clean()
    assert error.value.message_dict["schedule"] == [  # type: ignore[attr-defined]
        "Schedule '0 3 * * * *' has 6 fields; a cron expression has five: "
        "minute hour day-of-month month day-of-week"
    ]


def test_a_code_definition_with_an_invalid_schedule_fails_at_import():
    with pytest.raises(DefinitionError) as error:
        Definition(
            "t-bad-cron", steps=[step("noop", steps.noop)], schedule="0 3 * *", register=False
        )
    assert str(error.value) == (
        "Pipeline 't-bad-cron': Schedule '0 3 * *' has 4 fields; a cron expression has five: "
        "minute hour day-of-month month day-of-week"
    )


@pytest.fixture
def cron_definition():
    definition = Definition("t-cron", steps=[step("noop", steps.noop)], schedule="@hourly")
    yield definition
    registry.unregister("t-cron")


@pytest.mark.django_db
def test_a_code_schedule_is_the_new_rows_schedule(cron_definition):
    sync_pipelines()
    row = Pipeline.objects.get(name="t-cron")
    assert (row.schedule, row.schedule_source, row.code_schedule) == ("@hourly", "code", "@hourly")


@pytest.mark.django_db
def test_a_schedule_changed_in_code_is_in_force_after_the_next_sync(cron_definition):
    """Code wins while no operator changed the schedule: a deploy's new value applies."""
    sync_pipelines()
    cron_definition.schedule = "0 6 * * *"  # the next deploy's code
    sync_pipelines()
    row = Pipeline.objects.get(name="t-cron")
    assert (row.schedule, row.schedule_source) == ("0 6 * * *", "code")
    event = AuditEvent.objects.filter(target_id=str(row.id)).latest("id")
    assert (event.action, event.actor, event.source) == (
        "pipeline.changed",
        "pipeline sync",
        "code",
    )
    assert event.changes == {"schedule": ["@hourly", "0 6 * * *"]}


# An operator's schedule outliving a deploy, and handed back to the code: the rule for
# every setting that follows its code, in tests/pipelines/test_sources.py.


# --- daylight saving ---------------------------------------------------------------------


def local(slots: list[datetime]) -> list[str]:
    return [slot.isoformat() for slot in slots]


@pytest.mark.parametrize(
    ("expression", "after", "until", "expected"),
    [
        (  # spring: 02:30 does not exist on 29 March; cron runs it right after the jump
            "30 2 * * *",
            datetime(2026, 3, 27, 12, tzinfo=UTC),
            datetime(2026, 3, 30, 12, tzinfo=UTC),
            ["2026-03-28T02:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"],
        ),
        (  # autumn: 02:30 happens twice on 25 October; a fixed-time job runs once
            "30 2 * * *",
            datetime(2026, 10, 23, 12, tzinfo=UTC),
            datetime(2026, 10, 26, 12, tzinfo=UTC),
            ["2026-10-24T02:30:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"],
        ),
        (  # autumn: a wildcard-hour job runs by elapsed time, so in both 02:00 hours
            "*/30 * * * *",
            datetime(2026, 10, 24, 23, 15, tzinfo=UTC),
            datetime(2026, 10, 25, 1, 45, tzinfo=UTC),
            [
                "2026-10-25T01:30:00+02:00",
                "2026-10-25T02:00:00+02:00",
                "2026-10-25T02:30:00+02:00",
                "2026-10-25T02:00:00+01:00",
                "2026-10-25T02:30:00+01:00",
            ],
        ),
        (  # spring: a wildcard-hour job has no 02:00 hour to run in
            "0 * * * *",
            datetime(2026, 3, 28, 23, 30, tzinfo=UTC),
            datetime(2026, 3, 29, 2, 30, tzinfo=UTC),
            ["2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00"],
        ),
    ],
)
def test_daylight_saving_changes_follow_cron(settings, expression, after, until, expected):
    settings.ORBIT_SCHEDULE_TIMEZONE = "Europe/Berlin"
    assert local(slots_between(expression, after, until, limit=100)) == expected


def forward(expression: str, after: datetime, until: datetime) -> list[datetime]:
    """Every slot in (after, until] by plain forward iteration: the reference."""
    found = []
    for slot in CronSim(expression, after.astimezone(BERLIN)):
        if slot > until:
            return found
        if slot > after:
            found.append(slot)
    return found


@pytest.mark.parametrize("expression", ["30 2 * * *", "*/20 * * * *", "15 1-3 * * *", "0 0 * * *"])
@pytest.mark.parametrize("limit", [1, 2, 5])
@pytest.mark.parametrize(
    "after",
    [  # windows that start and end inside each transition, in both its hours
        datetime(2026, 10, 25, 0, 10, tzinfo=UTC),  # 02:10 CEST, the first 02:00 hour
        datetime(2026, 10, 25, 1, 10, tzinfo=UTC),  # 02:10 CET, the repeated hour
        datetime(2026, 3, 29, 0, 50, tzinfo=UTC),  # 01:50 CET, just before the jump
    ],
)
@pytest.mark.parametrize("hours", [1, 2, 30])
def test_the_latest_slots_match_forward_iteration(settings, expression, limit, after, hours):
    settings.ORBIT_SCHEDULE_TIMEZONE = "Europe/Berlin"
    until = after + timedelta(hours=hours)
    expected = forward(expression, after - timedelta(days=2), until)
    expected = [slot for slot in expected if slot > after][-limit:]
    assert slots_between(expression, after, until, limit=limit) == expected


def test_a_year_of_missed_minutes_is_cheap():
    after = datetime(2025, 1, 1, tzinfo=UTC)
    until = datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)
    assert local(slots_between("* * * * *", after, until, limit=2)) == [
        "2025-12-31T23:59:00+00:00",
        "2026-01-01T00:00:00+00:00",
    ]


# --- the anchor: enabling resumes from the next slot -------------------------------------


@pytest.mark.django_db
def test_enabling_moves_the_anchor_to_now():
    row = scheduled()
    row.set_enabled(False)
    assert row.schedule_anchor == T0  # disabling leaves it: nothing fires anyway
    row.set_enabled(True)
    assert row.schedule_anchor > T0
    assert Pipeline.objects.get(pk=row.pk).schedule_anchor == row.schedule_anchor


@pytest.mark.django_db
def test_saving_without_a_change_keeps_the_anchor():
    row = scheduled()
    row.description = "Nightly report"
    row.save()
    row.set_enabled(True)  # already enabled
    assert Pipeline.objects.get(pk=row.pk).schedule_anchor == T0


@pytest.mark.django_db
def test_a_new_schedule_moves_the_anchor():
    row = scheduled()
    row.schedule = "0 4 * * *"
    row.save(update_fields=["schedule"])
    assert row.schedule_anchor > T0


@pytest.mark.django_db
def test_enabling_many_rows_moves_only_the_disabled_ones():
    on = scheduled("on")
    off = scheduled("off", enabled=False)
    Pipeline.objects.filter(pk__in=[on.pk, off.pk]).set_enabled(True)
    on.refresh_from_db()
    off.refresh_from_db()
    assert on.schedule_anchor == T0
    assert off.enabled
    assert off.schedule_anchor > T0


# --- settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "ORBIT_SCHEDULE_TIMEZONE",
            "Mars/Olympus",
            "ORBIT_SCHEDULE_TIMEZONE is 'Mars/Olympus', which is not a time zone name such as "
            "'UTC' or 'Europe/Berlin'",
        ),
        (
            "ORBIT_SCHEDULE_CATCHUP",
            "replay",
            "ORBIT_SCHEDULE_CATCHUP is 'replay'; use one of: latest, skip, all",
        ),
        ("ORBIT_SCHEDULE_CATCHUP_MAX", 0, "ORBIT_SCHEDULE_CATCHUP_MAX must be at least 1, not 0"),
    ],
)
def test_bad_schedule_settings_name_the_variable(settings, name, value, message):
    setattr(settings, name, value)
    accessor = name.removeprefix("ORBIT_").lower()
    with pytest.raises(ImproperlyConfigured) as error:
        getattr(orbit_settings, accessor)
    assert str(error.value) == message


def test_the_schedule_time_zone_defaults_to_time_zone(settings):
    del settings.ORBIT_SCHEDULE_TIMEZONE
    settings.TIME_ZONE = "America/New_York"
    assert orbit_settings.schedule_timezone == ZoneInfo("America/New_York")
