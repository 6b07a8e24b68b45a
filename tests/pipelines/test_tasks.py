"""Task functions as pipelines of one step: their definitions, their options, and how a
process finds one by its path (pipelines/tasks.py)."""

from __future__ import annotations

import logging
import sys
import textwrap

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from pipelines import Backoff
from pipelines.definition import registry
from pipelines.models import Pipeline
from pipelines.tasks import TASK_STEP, TaskDefaults, definition_for, discover, load, task_named
from runs.tasks import OrbitBackend
from tests import tasks_for_tests as t


@pytest.fixture
def forget_tasks():
    """Each test finds the tasks afresh, as a new process would."""
    from pipelines import tasks

    def forget() -> None:
        for name in list(tasks._tasks):
            registry.unregister(name)
        tasks._tasks.clear()
        tasks._missing.clear()

    forget()
    yield
    forget()


def test_a_task_is_a_pipeline_of_one_step_named_by_its_path():
    definition = definition_for(t.add, TaskDefaults())
    assert definition.name == "tests.tasks_for_tests.add"
    assert definition.step_names == (TASK_STEP,)
    assert definition.module == "tests.tasks_for_tests"
    assert definition.description == "Adds two numbers."
    [step] = definition.steps
    assert step.function_path == "tests.tasks_for_tests.add"
    assert (step.max_retries, step.timeout, step.retry.backoff) == (0, None, Backoff())


@pytest.mark.skipif(not t.OWN_OPTIONS, reason="Django 6.0's @task takes no backend options")
def test_the_backend_options_are_the_defaults_and_the_decorator_overrides_them():
    defaults = TaskDefaults.from_options({"MAX_RETRIES": 5, "TIMEOUT": 20, "BACKOFF": 3})
    [plain] = definition_for(t.add, defaults).steps
    assert (plain.max_retries, plain.timeout, plain.retry.backoff.base) == (5, 20.0, 3.0)
    [own] = definition_for(t.flaky, defaults).steps  # @task(max_retries=2, backoff=0.05)
    assert (own.max_retries, own.timeout, own.retry.backoff.base) == (2, 20.0, 0.05)
    [timed] = definition_for(t.sleeps, defaults).steps  # @task(timeout=0.5)
    assert timed.timeout == 0.5


def test_backoff_may_be_given_field_by_field():
    defaults = TaskDefaults.from_options({"BACKOFF": {"base": 2, "factor": 3, "cap": 60}})
    assert defaults.backoff == Backoff(base=2, factor=3, cap=60)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        # a misspelt option is not ignored
        (
            {"MAX_RETRY": 3},
            "unknown option(s) MAX_RETRY; Orbit reads MAX_RETRIES, TIMEOUT, BACKOFF",
        ),
        # retries are counted
        ({"MAX_RETRIES": -1}, "MAX_RETRIES must be a whole number, 0 or more, not -1"),
        ({"MAX_RETRIES": True}, "MAX_RETRIES must be a whole number, 0 or more, not True"),
        # a timeout is a positive duration
        ({"TIMEOUT": 0}, "TIMEOUT must be a positive number of seconds, not 0"),
        ({"TIMEOUT": "60"}, "TIMEOUT must be a positive number of seconds, not '60'"),
        # backoff: seconds, or Backoff's fields
        (
            {"BACKOFF": "fast"},
            "BACKOFF must be a number of seconds or a dict of base, factor, cap, jitter; not 'fast'",
        ),
        (
            {"BACKOFF": {"speed": 1}},
            "BACKOFF takes base, factor, cap and jitter: "
            "Backoff.__init__() got an unexpected keyword argument 'speed'",
        ),
    ],
)
def test_invalid_options_are_refused_when_the_backend_is_made(options, message):
    with pytest.raises(ValueError) as refused:
        TaskDefaults.from_options(options)
    assert str(refused.value) == message
    with pytest.raises(ImproperlyConfigured) as refused_backend:
        OrbitBackend("default", {"OPTIONS": options})
    assert str(refused_backend.value) == f"TASKS['default']['OPTIONS']: {message}"


def test_a_queue_name_longer_than_a_run_can_carry_is_refused():
    with pytest.raises(ImproperlyConfigured) as refused:
        OrbitBackend("default", {"QUEUES": ["q" * 65]})
    assert str(refused.value) == (
        f"TASKS['default']['QUEUES']: a queue name is 1-64 characters, not {'q' * 65!r}"
    )


def test_the_backend_says_what_it_supports():
    backend = OrbitBackend("default", {})
    assert (
        backend.supports_defer,
        backend.supports_async_task,
        backend.supports_get_result,
        backend.supports_priority,
    ) == (True, True, True, True)


@override_settings(
    TASKS={"default": {"BACKEND": "runs.tasks.OrbitBackend", "QUEUES": []}},
)
def test_a_backend_without_queues_is_warned_about():
    try:  # Django 6
        from django.tasks import task_backends
    except ImportError:  # Django 5.2: the backport
        from django_tasks import task_backends

    [warning] = task_backends["default"].check()
    assert warning.id == "orbit.tasks.W001"


# -- finding a task by its path ---------------------------------------------------------


def test_a_task_is_loaded_by_its_path_on_first_need(forget_tasks):
    name = "tests.tasks_for_tests.add"
    assert name not in registry.step_names()
    definition = registry.find(name)
    assert definition is not None and definition.step_names == (TASK_STEP,)
    assert registry.step_names()[name] == (TASK_STEP,)
    assert task_named(name) is t.add


@pytest.mark.parametrize(
    "name",
    [
        "t-single-but-missing",  # not a dotted path
        "no_such_module.task",  # a module this process does not have
        "tests.tasks_for_tests._hidden",  # a plain function, not a task
        "tests.tasks_for_tests.renamed",  # a task, but its path is another
        "tests.tasks_for_tests.nothing",  # no such attribute
    ],
)
def test_what_is_not_a_task_here_is_not_loaded(forget_tasks, name):
    assert registry.find(name) is None
    assert task_named(name) is None


def test_a_task_module_that_fails_to_import_is_logged_and_tried_again_later(
    forget_tasks, tmp_path, monkeypatch, caplog
):
    module = tmp_path / "tasks_broken.py"
    module.write_text("raise RuntimeError('no database here')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="pipelines.tasks"):
        assert registry.find("tasks_broken.work") is None
    assert caplog.messages == [
        "Task tasks_broken.work cannot be loaded here (RuntimeError: no database here); "
        "its runs wait for a worker that can"
    ]
    module.write_text(
        textwrap.dedent(
            """
            try:
                from django.tasks import task
            except ImportError:
                from django_tasks import task

            @task()
            def work():
                return 1
            """
        )
    )
    sys.modules.pop("tasks_broken", None)
    try:
        assert registry.find("tasks_broken.work") is None  # not tried again at once
        assert registry.get("tasks_broken.work").name == "tasks_broken.work"  # a runner does
    finally:
        sys.modules.pop("tasks_broken", None)
        registry.unregister("tasks_broken.work")


@pytest.mark.django_db
def test_discover_loads_the_tasks_that_pipeline_rows_name(forget_tasks):
    for name in ("tests.tasks_for_tests.add", "elsewhere.tasks.send", "plain-pipeline"):
        Pipeline.objects.create(name=name, definition=name)
    assert discover(registry.step_names()) == ["tests.tasks_for_tests.add"]
    assert "tests.tasks_for_tests.add" in registry.step_names()
    assert discover(registry.step_names()) == []  # known now


def test_load_answers_none_for_a_name_it_cannot_be():
    assert load("") is None
    assert load("_private.tasks.job") is None  # no pipeline name starts with '_'
