"""Task functions of Django's Tasks framework as Orbit pipelines of one step.

A task function is a pipeline of its own, named by its dotted path (`myapp.tasks.send`),
whose one step, `task`, calls it with the run's input (`{"args": [...], "kwargs": {...}}`).
Nothing lists the tasks: a process that needs a task's definition (the worker claiming its
runs, the child running one, the console showing it) imports the function by its path on
first need, through the registry's loader (`load`). A process that cannot import it has no
such definition, so its workers never claim those runs: they wait for a worker that can.

Orbit's options for a task (retries, backoff, timeout) come from the backend's `OPTIONS`,
and from the `@task(...)` decorator where the framework passes extra arguments on to the
backend's task class (django-tasks 0.12+, Django 6.1+): `OrbitTask`.
"""

from __future__ import annotations

import importlib
import logging
import re
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from orbit.core.exceptions import DefinitionError, InvalidResult, PermanentFailure
from pipelines.context import StepContext
from pipelines.definition import NAME_PATTERN, StepFunction, registry, step
from pipelines.definition import Pipeline as Definition
from pipelines.models import Pipeline
from pipelines.retry import Backoff
from pipelines.tasks_compat import Task, TaskContext, normalize_json

logger = logging.getLogger(__name__)

#: The name of a task pipeline's one step.
TASK_STEP = "task"
#: A name that failed to load is not tried again for this long by `registry.find` (it is
#: another deployment's task, or its module failed to import); `registry.get` always tries.
RETRY_MISSING_SECONDS = 60.0

_DOTTED_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
_OPTION_NAMES = ("MAX_RETRIES", "TIMEOUT", "BACKOFF")


@dataclass(frozen=True, slots=True, kw_only=True)
class OrbitTask(Task):  # type: ignore[type-arg]  # generic in the stubs only (Django 6)
    """A task with Orbit's options for it: `@task(max_retries=3, timeout=60, backoff=5)`.
    None takes the backend's OPTIONS."""

    max_retries: int | None = None
    timeout: float | None = None
    backoff: float | Backoff | None = None


@dataclass(frozen=True)
class TaskDefaults:
    """The backend's `OPTIONS`: what a task that says nothing of its own gets."""

    max_retries: int = 0
    timeout: float | None = None  # None: ORBIT_DEFAULT_STEP_TIMEOUT
    backoff: Backoff = field(default_factory=Backoff)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> TaskDefaults:
        """Read `MAX_RETRIES`, `TIMEOUT` and `BACKOFF`; ValueError naming what is wrong."""
        unknown = sorted(set(options) - set(_OPTION_NAMES))
        if unknown:
            raise ValueError(
                f"unknown option(s) {', '.join(unknown)}; Orbit reads {', '.join(_OPTION_NAMES)}"
            )
        max_retries = options.get("MAX_RETRIES", 0)
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"MAX_RETRIES must be a whole number, 0 or more, not {max_retries!r}")
        timeout = options.get("TIMEOUT")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
        ):
            raise ValueError(f"TIMEOUT must be a positive number of seconds, not {timeout!r}")
        return cls(
            max_retries=max_retries,
            timeout=float(timeout) if timeout is not None else None,
            backoff=_backoff(options.get("BACKOFF")),
        )


def _backoff(value: Any) -> Backoff:
    """BACKOFF: seconds (the first retry's delay, doubling after), or Backoff's fields."""
    if value is None:
        return Backoff()
    if isinstance(value, Backoff):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Backoff(base=float(value))
    if isinstance(value, Mapping):
        try:
            return Backoff(**value)
        except TypeError as exc:
            raise ValueError(f"BACKOFF takes base, factor, cap and jitter: {exc}") from None
    raise ValueError(
        f"BACKOFF must be a number of seconds or a dict of base, factor, cap, jitter; not {value!r}"
    )


def task_name(task: Task[..., Any]) -> str:
    """The task's dotted path: the name of its pipeline, and how any process imports it."""
    return f"{task.func.__module__}.{task.func.__qualname__}"


def definition_for(task: Task[..., Any], defaults: TaskDefaults) -> Definition:
    """The task as a pipeline of one step (not registered); DefinitionError if it cannot be."""
    name = task_name(task)
    if "." in task.func.__qualname__ or not NAME_PATTERN.match(name):
        raise DefinitionError(
            f"Orbit names a task's pipeline by its dotted path, {name!r}: the function must "
            "be defined at a module's top level, and the path must be 1-100 letters, digits, "
            "'_' or '.', starting with a letter"
        )
    own_retries = getattr(task, "max_retries", None)
    own_timeout = getattr(task, "timeout", None)
    own_backoff = getattr(task, "backoff", None)
    definition = Definition(
        name,
        steps=[
            step(
                TASK_STEP,
                _step_function(task, name),
                max_retries=defaults.max_retries if own_retries is None else own_retries,
                timeout=defaults.timeout if own_timeout is None else own_timeout,
                backoff=defaults.backoff if own_backoff is None else own_backoff,
            )
        ],
        description=_description(task),
        register=False,
    )
    definition.module = task.func.__module__
    return definition


def _description(task: Task[..., Any]) -> str:
    doc = (task.func.__doc__ or "").strip().splitlines()
    return doc[0] if doc else "A task function (Django's Tasks framework)"


def _step_function(task: Task[..., Any], name: str) -> StepFunction:
    """The step: the task called with the run's input, in the worker's child process."""

    def call(ctx: StepContext) -> Any:
        args, kwargs = ctx.metadata.get("args", []), ctx.metadata.get("kwargs", {})
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise PermanentFailure(
                f"Task {name!r}: a task's input is {{'args': [...], 'kwargs': {{...}}}}, "
                f"not {ctx.metadata!r}"
            )
        if task.takes_context:
            # The result as it stands, this attempt counted: TaskContext.attempt is its number.
            result = task.get_backend().get_result(ctx.run_id)
            value = task.call(TaskContext(task_result=result), *args, **kwargs)
        else:
            value = task.call(*args, **kwargs)
        try:
            return normalize_json(value)
        except (TypeError, ValueError) as exc:
            raise InvalidResult(
                f"Task {name!r} returned a value that is not JSON-serialisable ({exc}); "
                "return JSON data: dicts, lists, strings, numbers, booleans, None"
            ) from None

    call.__module__ = task.func.__module__
    call.__qualname__ = task.func.__qualname__
    return call


# -- finding tasks by their path ------------------------------------------------------

_tasks: dict[str, Task[..., Any]] = {}
_missing: dict[str, float] = {}  # name -> when it last failed to load (monotonic)


def load(name: str, fresh: bool = False) -> Definition | None:
    """The registry's loader: import the task `name` names and register its definition.

    None when `name` is no task this process can import (tried again after
    RETRY_MISSING_SECONDS, or at once when `fresh`).
    """
    if not _DOTTED_PATH.match(name) or not NAME_PATTERN.match(name):
        return None
    failed_at = _missing.get(name)
    if failed_at is not None and not fresh and time.monotonic() - failed_at < RETRY_MISSING_SECONDS:
        return None
    found = _import_task(name)
    if found is None:
        _missing[name] = time.monotonic()
        return None
    task, definition = found
    _missing.pop(name, None)
    registry.register(definition)
    _tasks[name] = task
    return definition


def task_named(name: str) -> Task[..., Any] | None:
    """The task whose pipeline is called `name`, imported if need be; None if there is none."""
    registry.find(name)
    return _tasks.get(name)


def _import_task(name: str) -> tuple[Task[..., Any], Definition] | None:
    module_name, attribute = name.rsplit(".", 1)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            logger.debug("No module %s here for task %s", module_name, name)
        else:  # the module is here, but something it imports is not
            _import_failed(name, exc)
        return None
    except Exception as exc:
        _import_failed(name, exc)
        return None
    task = getattr(module, attribute, None)
    if not isinstance(task, Task) or task_name(task) != name:
        logger.debug("%s is not a task function", name)
        return None
    try:
        definition = definition_for(task, TaskDefaults.from_options(task.get_backend().options))
    except Exception as exc:
        _import_failed(name, exc)
        return None
    return task, definition


def _import_failed(name: str, exc: BaseException) -> None:
    logger.warning(
        "Task %s cannot be loaded here (%s: %s); its runs wait for a worker that can",
        name,
        type(exc).__name__,
        exc,
        extra={"event": "task_load_failed", "pipeline": name},
    )


def discover(known: Collection[str]) -> list[str]:
    """Load the tasks that pipeline rows name and this process did not know yet (the
    worker's `discover` duty); the names of those it could import."""
    unknown = (
        Pipeline.objects.filter(definition__contains=".")
        .exclude(definition__in=list(known))
        .values_list("definition", flat=True)
        .distinct()
    )
    return [name for name in sorted(set(unknown)) if registry.find(name) is not None]
