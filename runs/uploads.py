"""Starting a run with a file sent along (the API's upload endpoint, the dashboard's form).

The file is stored in the documents folder (orbit/core/documents.py) and the run receives its
path under the pipeline's `upload_field`, so no caller ever names a path on the server.
A run that is refused leaves no stored file behind.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from orbit.core.audit import Actor
from orbit.core.conf import orbit_settings
from orbit.core.documents import discard_upload, store_upload
from orbit.core.exceptions import OrbitError
from orbit.core.limits import validate_metadata
from pipelines.models import Pipeline
from runs.enqueueing import run_create
from runs.models import Run


def upload_field(pipeline: Pipeline) -> str:
    """The metadata key that takes an uploaded file's path; empty when it takes none."""
    definition = pipeline.code
    return definition.upload_field if definition is not None else ""


def run_create_with_upload(
    pipeline: Pipeline,
    upload: Any,
    *,
    file_name: str,
    metadata: dict[str, Any] | None = None,
    priority: int = 0,
    queue: str | None = None,
    delay: float | timedelta | None = None,
    actor: Actor | None = None,
) -> Run:
    """Store `upload` in the documents folder and queue a run of `pipeline` with its path."""
    field = upload_field(pipeline)
    if not field:
        raise OrbitError(f"Pipeline {pipeline.name!r} takes no file upload")
    metadata = validate_metadata(metadata)
    path = store_upload(upload, file_name, max_bytes=orbit_settings.max_upload_bytes)
    try:
        return run_create(
            pipeline,
            metadata={**metadata, field: path},
            priority=priority,
            queue=queue,
            delay=delay,
            actor=actor,
        )
    except BaseException:
        discard_upload(path)
        raise
