"""Where pipeline definitions are found: every installed app's `pipelines.py`, plus the
modules named in ORBIT_PIPELINE_MODULES, so users add pipelines without editing Orbit.

The registry knows of a definition only its name and the module that built it, so this
module sits below `pipelines.definition`, which registers each definition as it is built
into the one registry, `pipelines.definition.registry`.
"""

from __future__ import annotations

import importlib
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from django.apps import apps

from orbit.core.conf import orbit_settings
from orbit.core.exceptions import DefinitionError, UnknownPipeline

logger = logging.getLogger(__name__)


class Registrable(Protocol):
    """What the registry reads of a definition."""

    @property
    def name(self) -> str: ...

    @property
    def module(self) -> str: ...

    @property
    def step_names(self) -> tuple[str, ...]: ...


D = TypeVar("D", bound=Registrable)


#: Frames of the import itself, which say nothing about where a module went wrong.
_IMPORT_MACHINERY = frozenset({__file__, importlib.__file__})


@dataclass(frozen=True)
class ImportFailure:
    """A pipeline module that failed to import, and where: the file and line the error was
    raised at (for a syntax error, the line that does not parse)."""

    module: str
    error: str  # "ZeroDivisionError: division by zero"
    file: str
    line: int | None

    @property
    def where(self) -> str:
        return f"{self.file}, line {self.line}" if self.line else self.file

    def __str__(self) -> str:
        return f"{self.module} ({self.where}): {self.error}"


def import_failure(module: str, exc: BaseException) -> ImportFailure:
    """Where `exc`, raised importing `module`, comes from: the innermost frame that is
    not the import machinery's, or the offending line of a syntax error."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return ImportFailure(module, f"{type(exc).__name__}: {exc.msg}", exc.filename, exc.lineno)
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if frame.filename not in _IMPORT_MACHINERY and not frame.filename.startswith("<frozen ")
    ]
    last = frames[-1] if frames else None
    return ImportFailure(
        module,
        f"{type(exc).__name__}: {exc}",
        last.filename if last else "?",
        last.lineno if last else None,
    )


class Registry(Generic[D]):
    """Definitions by name, loaded from the pipeline modules on first use, and from the
    loader (task functions, found by their dotted path: pipelines/tasks.py) on first need."""

    def __init__(self) -> None:
        self._pipelines: dict[str, D] = {}
        # module path -> why and where it failed to import; the other modules still load.
        self.errors: dict[str, ImportFailure] = {}
        self.discovered = False
        # Finds a definition no pipeline module registered, by its name (`fresh`: try
        # again even if that failed a moment ago), and registers it; None: there is none.
        self.loader: Callable[[str, bool], D | None] | None = None

    def register(self, pipeline: D) -> None:
        existing = self._pipelines.get(pipeline.name)
        if existing is not None and existing.module != pipeline.module:
            raise DefinitionError(
                f"Pipeline {pipeline.name!r} is defined twice: in {existing.module} "
                f"and in {pipeline.module}"
            )
        self._pipelines[pipeline.name] = pipeline

    def unregister(self, name: str) -> None:
        self._pipelines.pop(name, None)

    def get(self, name: str) -> D:
        """The definition called `name`, or UnknownPipeline. The loader is asked again
        even if it failed a moment ago: the caller is about to run it."""
        definition = self._lookup(name, fresh=True)
        if definition is None:
            known = ", ".join(sorted(self._pipelines)) or "none"
            raise UnknownPipeline(
                f"No pipeline definition named {name!r}. Known definitions: {known}"
            )
        return definition

    def find(self, name: str) -> D | None:
        """The definition called `name`, or None when this process has none."""
        return self._lookup(name, fresh=False)

    def _lookup(self, name: str, *, fresh: bool) -> D | None:
        self.autodiscover()
        definition = self._pipelines.get(name)
        if definition is None and self.loader is not None:
            definition = self.loader(name, fresh)
        return definition

    def step_names(self) -> dict[str, tuple[str, ...]]:
        """Each definition's step names, in order: what a claimant can run (runs/store)."""
        self.autodiscover()
        return {name: p.step_names for name, p in self._pipelines.items()}

    def import_failures(self) -> list[ImportFailure]:
        """The pipeline modules that failed to import (after loading them all)."""
        self.autodiscover()
        return list(self.errors.values())

    def all(self) -> list[D]:
        self.autodiscover()
        return sorted(self._pipelines.values(), key=lambda p: p.name)

    def autodiscover(self, *, force: bool = False) -> None:
        if self.discovered and not force:
            return
        self.discovered = True
        modules = [f"{config.name}.pipelines" for config in apps.get_app_configs()]
        for module in modules:
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name != module:  # the module exists but an import inside it failed
                    self._failed(module, exc)
            except Exception as exc:
                self._failed(module, exc)
        for module in orbit_settings.pipeline_modules:
            try:
                importlib.import_module(module)
            except Exception as exc:
                self._failed(module, exc)

    def _failed(self, module: str, exc: BaseException) -> None:
        failure = self.errors[module] = import_failure(module, exc)
        logger.error(
            "Pipeline module %s failed to import (%s): %s",
            module,
            failure.where,
            failure.error,
            extra={"event": "pipeline_module_failed", "pipeline_module": module},
        )
        logger.debug("%s", "".join(traceback.format_exception(exc)))
