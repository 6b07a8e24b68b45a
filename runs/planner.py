"""Which step a run runs next: one pure decision, from its definition and its step rows.

Every claimant asks this, and only this, whenever a run is claimed or an outcome is
committed; the stores only carry the answer out. The rule: the first step of the
definition, in the definition's order, that has not succeeded. A step the definition
gained after the run was created has no row yet and is created when it starts (placed
after the rows laid out at enqueue). A step the run has but the definition does not
know, and that has not succeeded, means the run was created by a newer definition than
this process has: it must not run here (the claim leaves such runs for a worker that
knows every step; see docs/WORKER-DEPLOYMENT.md, rolling deploys).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: Rows created for steps the definition gained after the run was laid out start here,
#: so they sort after the original steps and never collide with their positions.
ADDED_STEP_POSITION = 1000

SUCCEEDED = "succeeded"


@dataclass(frozen=True)
class NextStep:
    """Run the step `name`, the `index`-th of the definition (0-based)."""

    name: str
    index: int
    exists: bool  # False: no row yet (the definition gained it); create it at `position`

    @property
    def position(self) -> int:
        """Where a missing row is created."""
        return ADDED_STEP_POSITION + self.index


@dataclass(frozen=True)
class Finished:
    """Every step of the definition has succeeded: the run is done."""


@dataclass(frozen=True)
class Unrunnable:
    """The run has unfinished steps this definition does not know (a newer deploy made it)."""

    unknown: tuple[str, ...]

    @property
    def reason(self) -> str:
        names = ", ".join(repr(name) for name in self.unknown)
        return f"its unfinished step(s) {names} are not in this process's definition"


Plan = NextStep | Finished | Unrunnable


def plan(definition: Sequence[str], statuses: Mapping[str, str]) -> Plan:
    """The next step of a run whose step rows have `statuses` (step name -> status)."""
    known = set(definition)
    unknown = tuple(
        name for name, status in statuses.items() if name not in known and status != SUCCEEDED
    )
    if unknown:
        return Unrunnable(tuple(sorted(unknown)))
    for index, name in enumerate(definition):
        status = statuses.get(name)
        if status != SUCCEEDED:
            return NextStep(name=name, index=index, exists=status is not None)
    return Finished()
