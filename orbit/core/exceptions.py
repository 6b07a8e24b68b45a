"""Every error Orbit raises on purpose. Each class's docstring is its default message."""

from __future__ import annotations

from typing import Any


class OrbitError(Exception):
    """Orbit could not do what was asked."""

    def __init__(self, message: str | None = None, **context: Any) -> None:
        self.context = context
        super().__init__(message or (self.__doc__ or "").strip())


class DefinitionError(OrbitError):
    """A pipeline definition is invalid."""


class InvalidSchedule(OrbitError):
    """The schedule is not a valid cron expression."""


class InvalidLimit(OrbitError):
    """A concurrency or rate limit is not valid."""


class UnknownPipeline(OrbitError):
    """No pipeline has that name."""


class PipelineDisabled(OrbitError):
    """The pipeline is disabled and cannot start runs."""


class PipelineArchived(OrbitError):
    """The pipeline is archived and cannot start runs."""


class StalePipeline(OrbitError):
    """The pipeline row changed since it was read (disabled, renamed, redefined or given
    other default metadata): nothing was inserted; read it again."""


class IdempotencyConflict(OrbitError):
    """The idempotency key was already used for a different request."""


class InvalidMetadata(OrbitError):
    """Run metadata must be a JSON object."""


class MetadataTooLarge(InvalidMetadata):
    """Run metadata is larger than ORBIT_MAX_METADATA_BYTES."""


class InvalidResult(OrbitError):
    """A step returned a result Orbit cannot store."""


class RunNotFound(OrbitError):
    """No run has that id."""


class WorkerNotFound(OrbitError):
    """No worker has that id."""


class InvalidCursor(OrbitError):
    """The cursor is not one this API gave out."""


class InvalidRunQuery(OrbitError):
    """The search is not one Orbit can answer."""


class InvalidTransition(OrbitError):
    """The run is not in a state that allows this."""


class LeaseLost(OrbitError):
    """This worker no longer holds the run: another worker took it over or it was cancelled."""


class StepTimeout(OrbitError):
    """The step ran past its timeout and was stopped."""


class StepCrashed(OrbitError):
    """The process running the step died."""


class PermanentFailure(OrbitError):
    """The step failed in a way retrying cannot fix; it fails now, without further attempts."""


class StepInterrupted(OrbitError):
    """The step was stopped because its worker shut down; it runs again, no retry spent."""


class RunCancelled(OrbitError):
    """An operator cancelled the run while the step was running."""


class NotAllowedDocument(PermanentFailure):
    """Not an allowed document: documents come only from ORBIT_DOCUMENTS_ROOT."""


class DocumentTooLarge(OrbitError):
    """The file is larger than ORBIT_MAX_UPLOAD_BYTES."""


class InvalidWebhook(OrbitError):
    """The webhook endpoint is not valid."""


class WebhookNotFound(OrbitError):
    """No webhook endpoint has that id."""


class DeliveryNotFound(OrbitError):
    """No webhook delivery has that id."""


class TargetRefused(OrbitError):
    """The webhook's address is not one Orbit may send to (ORBIT_WEBHOOK_ALLOW_PRIVATE)."""


def type_path(error: type) -> str:
    """How an error's class is stored with an attempt: its dotted path, as for the
    errors step code raises, so every error type in the history reads the same way."""
    return f"{error.__module__}.{error.__qualname__}"


#: Where Orbit's own errors live: their messages say what happened without their type.
_ORBITS_OWN = ("orbit.", "pipelines.", "runs.", "services.")


def error_text(error_type: str, error: str) -> str:
    """An attempt's error as Python prints an exception (`KeyError: 'itemz'`): `str()` of
    an exception alone drops its type. Orbit's own outcomes (a timeout, a crash, a failed
    StepResult, a PermanentFailure) say what happened in the message itself."""
    name = error_type.rsplit(".", 1)[-1]
    if not name or error_type.startswith(_ORBITS_OWN) or name in error:
        return error
    return f"{name}: {error}"
