"""Code or operator: where a row's schedule and max_concurrency come from.

The rule (docs/SCHEDULES.md and docs/FLOW-CONTROL.md, "Code or operator"): such a setting
follows its definition in code while its `<field>_source` is "code", so a value changed in
code takes effect at the next sync (pipelines/sync.py). Once an operator gives the row a
new value (admin, API), its source is "operator" and changes in code leave it as it is,
until an operator hands it back with `<field>_source="code"`, which takes the code's value
at once. One rule for every such setting, each of which is named here once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orbit.core.exceptions import DefinitionError, OrbitError
from pipelines.definition import Pipeline as Definition
from pipelines.models import Pipeline, ScheduleSource


@dataclass(frozen=True)
class Followed:
    """A row's setting that follows its definition's attribute of the same name."""

    field: str  # "schedule": the row's column and the definition's attribute

    @property
    def source(self) -> str:
        """The column that says where the value in force came from."""
        return f"{self.field}_source"

    def of(self, code: Definition) -> Any:
        """The value the code gives."""
        return getattr(code, self.field)

    def lags(self, row: Pipeline, code: Definition) -> bool:
        """Whether a sync brings the row's value to the code's: it follows it and differs."""
        follows: bool = getattr(row, self.source) == ScheduleSource.CODE
        return follows and bool(getattr(row, self.field) != self.of(code))

    def rule(self, pipeline: Pipeline, changes: dict[str, Any]) -> dict[str, Any]:
        """An operator's `changes` to a row, with the value and its source made consistent:
        a new value makes the setting the operator's; source "code" hands it back to the
        code, taking the code's value now. Refuses an unknown source, and handing back a
        setting whose definition is gone from code."""
        changes = dict(changes)
        source = changes.get(self.source)
        if source is not None and source not in ScheduleSource.values:
            raise OrbitError(
                f"{self.source} must be one of: {', '.join(ScheduleSource.values)}",
                field=self.source,
            )
        if source == ScheduleSource.CODE:
            code = pipeline.code
            if code is None:
                raise DefinitionError(
                    f"Pipeline {pipeline.name!r} runs definition {pipeline.definition!r}, "
                    f"which is not in code: its {self.field} cannot follow the code",
                    field=self.source,
                )
            changes[self.field] = self.of(code)
        elif (
            self.field in changes
            and changes[self.field] != getattr(pipeline, self.field)
            and source is None
        ):
            changes[self.source] = ScheduleSource.OPERATOR
        if changes.get(self.source) == getattr(pipeline, self.source):
            del changes[self.source]
        return changes


SCHEDULE = Followed("schedule")
MAX_CONCURRENCY = Followed("max_concurrency")
