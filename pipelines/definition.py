"""Pipelines defined in Python: `Pipeline(name, steps=[step(name, fn, ...)])`.

Definitions are validated when they are built, so a mistake fails at import with a message
naming the pipeline and the step, long before a worker would trip over it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from orbit.core.exceptions import DefinitionError, InvalidLimit, InvalidSchedule
from pipelines.limits import check_max_concurrency, check_rate_limit
from pipelines.registry import Registry
from pipelines.retry import Backoff, RetryPolicy
from pipelines.schedules import validate_schedule

#: The one rule for pipeline and step names, wherever they come from (code, the API, the
#: admin): printable ASCII only, so a name can never carry a newline or a terminal escape.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
NAME_RULE = (
    "Pipeline name {name!r} is invalid: use 1-100 letters, digits, '-', '_' or '.', "
    "starting with a letter or digit"
)
StepFunction = Callable[..., Any]
#: The queue a run goes to when neither its enqueue nor its definition names one, and the
#: one `runworker` serves when given no `--queue`.
DEFAULT_QUEUE = "default"
#: Queues follow the names' rule, within the column's 64 characters.
QUEUE_MAX_LENGTH = 64
QUEUE_RULE = (
    "Queue name {queue!r} is invalid: use 1-64 letters, digits, '-', '_' or '.', "
    "starting with a letter or digit"
)


def is_valid_name(name: object) -> bool:
    """Whether `name` follows NAME_PATTERN, all of it (`$` alone would let a final newline by)."""
    return isinstance(name, str) and NAME_PATTERN.fullmatch(name) is not None


@dataclass(frozen=True)
class StepDefinition:
    name: str
    fn: StepFunction
    retry: RetryPolicy
    timeout: float | None  # None: ORBIT_DEFAULT_STEP_TIMEOUT

    @property
    def max_retries(self) -> int:
        return self.retry.max_retries

    @property
    def function_path(self) -> str:
        return f"{getattr(self.fn, '__module__', '?')}.{getattr(self.fn, '__qualname__', '?')}"


@dataclass(frozen=True)
class _PendingStep:
    """What `step()` returns: checked against its pipeline when the pipeline is built."""

    name: str
    fn: Any
    max_retries: Any
    timeout: Any
    backoff: Any


def step(
    name: str,
    fn: StepFunction,
    *,
    max_retries: int = 0,
    timeout: float | None = None,
    backoff: Backoff | float | None = None,
) -> Any:
    """Declare one step: `fn(ctx)` runs with up to `max_retries` retries, each `timeout` s."""
    return _PendingStep(name, fn, max_retries, timeout, backoff)


def _build_step(pipeline: str, pending: Any) -> StepDefinition:
    if not isinstance(pending, _PendingStep):
        raise DefinitionError(
            f"Pipeline {pipeline!r}: steps must be made with step(name, fn, ...), got {pending!r}"
        )
    where = f"Pipeline {pipeline!r}, step {pending.name!r}"
    if not is_valid_name(pending.name):
        raise DefinitionError(
            f"{where}: a step name is 1-100 letters, digits, '-', '_' or '.', "
            "starting with a letter or digit"
        )
    if not callable(pending.fn):
        raise DefinitionError(f"{where}: {pending.fn!r} is not callable")
    backoff = pending.backoff
    try:
        if backoff is None:
            backoff = Backoff()
        elif isinstance(backoff, int | float) and not isinstance(backoff, bool):
            backoff = Backoff(base=float(backoff))
        elif not isinstance(backoff, Backoff):
            raise ValueError(f"backoff must be a number of seconds or a Backoff, not {backoff!r}")
        retry = RetryPolicy(max_retries=pending.max_retries, backoff=backoff)
    except ValueError as exc:
        raise DefinitionError(f"{where}: {exc}") from None
    timeout = pending.timeout
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
    ):
        raise DefinitionError(
            f"{where}: timeout must be a positive number of seconds, not {timeout!r}"
        )
    return StepDefinition(
        name=pending.name,
        fn=pending.fn,
        retry=retry,
        timeout=float(timeout) if timeout is not None else None,
    )


def is_valid_queue(queue: object) -> bool:
    """Whether `queue` is a queue name: the names' rule, at most 64 characters."""
    return is_valid_name(queue) and len(str(queue)) <= QUEUE_MAX_LENGTH


class Pipeline:
    """An ordered list of steps with a unique name; registered as soon as it is built."""

    def __init__(
        self,
        name: str,
        *,
        steps: Sequence[Any],
        description: str = "",
        schedule: str = "",
        upload_field: str = "",
        metadata_example: dict[str, Any] | None = None,
        queue: str = DEFAULT_QUEUE,
        max_concurrency: int | None = None,
        rate_limit: str = "",
        register: bool = True,
    ) -> None:
        if not is_valid_name(name):
            raise DefinitionError(
                f"Pipeline name {name!r} is invalid: use 1-100 letters, digits, '-', '_' or '.'"
            )
        if not steps:
            raise DefinitionError(f"Pipeline {name!r} has no steps")
        built = [_build_step(name, pending) for pending in steps]
        seen: set[str] = set()
        for definition in built:
            if definition.name in seen:
                raise DefinitionError(
                    f"Pipeline {name!r}, step {definition.name!r}: step names must be unique"
                )
            seen.add(definition.name)
        if metadata_example is not None:
            try:
                if not isinstance(metadata_example, dict):
                    raise TypeError(f"a dict, not {type(metadata_example).__name__}")
                json.dumps(metadata_example)
            except (TypeError, ValueError) as exc:
                raise DefinitionError(
                    f"Pipeline {name!r}: metadata_example must be a JSON object ({exc})"
                ) from None
        schedule = "" if schedule is None else schedule
        if schedule != "":
            try:
                validate_schedule(schedule)
            except InvalidSchedule as exc:
                raise DefinitionError(f"Pipeline {name!r}: {exc}") from None
        if not is_valid_queue(queue):
            raise DefinitionError(f"Pipeline {name!r}: {QUEUE_RULE.format(queue=queue)}")
        try:
            max_concurrency = check_max_concurrency(max_concurrency)
            rate_limit = check_rate_limit(rate_limit)
        except InvalidLimit as exc:
            raise DefinitionError(f"Pipeline {name!r}: {exc}") from None
        if upload_field and (not isinstance(upload_field, str) or not upload_field.isidentifier()):
            raise DefinitionError(
                f"Pipeline {name!r}: upload_field must be a metadata key such as 'filePath', "
                f"not {upload_field!r}"
            )
        self.name = name
        self.description = description
        # The metadata key that receives an uploaded file's path (relative to
        # ORBIT_DOCUMENTS_ROOT); empty: the pipeline takes no upload.
        self.upload_field = upload_field
        # The schedule a new row starts with; operators change it on the row afterwards.
        self.schedule = schedule
        #: The metadata its steps expect, as an example run's: shown to whoever starts a run.
        self.metadata_example: dict[str, Any] | None = metadata_example
        #: The queue its runs go to unless their enqueue names another (runworker --queue).
        self.queue = queue
        #: The most of its runs running at once over every worker (None: no limit); a row's
        #: operator may change it (docs/FLOW-CONTROL.md, "Limits").
        self.max_concurrency = max_concurrency
        #: Claims per period: a named limit (ORBIT_RATE_LIMITS) or a rate ("20/minute").
        self.rate_limit = rate_limit
        self.steps: tuple[StepDefinition, ...] = tuple(built)
        self.module = _caller_module()
        if register:
            registry.register(self)

    @property
    def step_names(self) -> tuple[str, ...]:
        """The steps' names, in order: what the planner and the claim go by."""
        return tuple(s.name for s in self.steps)

    def step_named(self, name: str) -> StepDefinition:
        for definition in self.steps:
            if definition.name == name:
                return definition
        raise KeyError(name)

    def __repr__(self) -> str:
        return f"<Pipeline {self.name}: {', '.join(s.name for s in self.steps)}>"


def _caller_module() -> str:
    import inspect

    frame = inspect.currentframe()
    try:
        # __init__ <- the module that built the pipeline
        caller = frame.f_back.f_back if frame and frame.f_back else None
        return str(caller.f_globals.get("__name__", "?")) if caller else "?"
    finally:
        del frame


#: Every definition built with `register=True` (the default), by name.
registry: Registry[Pipeline] = Registry()
