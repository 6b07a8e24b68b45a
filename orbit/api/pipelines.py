"""/api/pipelines: list, read, create, change, enable, disable, pause, resume, archive,
unarchive and delete pipelines, and start their runs. Enabling, disabling, pausing,
resuming, archiving and the concurrency limit (PUT .../limits) are an operator's; the rest
of editing an admin's."""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest
from ninja import Router, Status, UploadedFile
from ninja.params import functions as params

from orbit.api.idempotency import ensure_same_request, scoped_key
from orbit.api.pagination import by_created
from orbit.api.runs import CURSOR, LIMIT, api_actor, run_with_steps
from orbit.api.schemas.pipelines import (
    LimitsIn,
    PauseIn,
    PipelineDetailOut,
    PipelineIn,
    PipelineOut,
    PipelinePatch,
)
from orbit.api.schemas.runs import (
    ErrorOut,
    RunBulkIn,
    RunDetailOut,
    RunIn,
    RunOut,
    RunPageOut,
    ValidationErrorOut,
)
from orbit.core.limits import parse_json
from orbit.core.redaction import unmask
from orbit.web.auth import allow, require_permissions
from pipelines.archiving import pipeline_archive
from pipelines.lifecycle import (
    pipeline_create,
    pipeline_delete,
    pipeline_set_enabled,
    pipeline_update,
)
from pipelines.models import Pipeline
from runs.bulk import unarchive_pipelines
from runs.enqueueing import PRIORITY_RANGE, enqueue_many, run_create
from runs.metrics import pipeline_success_rate, running_by_pipeline
from runs.models import Run
from runs.pausing import pipeline_pause, pipeline_resume
from runs.scheduler import next_fire_time
from runs.uploads import run_create_with_upload

router = Router(tags=["pipelines"])

READ = allow("pipelines.view_pipeline")
OPERATE = allow("pipelines.operate_pipeline")
IDEMPOTENCY_KEY: Any = params.Header(
    None,
    alias="Idempotency-Key",
    min_length=1,
    max_length=200,
    pattern=r"^[\x20-\x7e]+$",
    description=(
        "Repeating a request with the same key returns the first run; printable ASCII. "
        "Keys are yours alone: another caller's same key makes another run"
    ),
)
#: The URL name the request size limit knows uploads by (orbit/web/middleware.py).
UPLOAD_URL_NAME = "pipeline-run-upload"
UPLOAD_FILE: Any = params.File(..., description="The file the run processes")
UPLOAD_METADATA: Any = params.Form(
    "", description="A JSON object, merged over the pipeline's default_metadata"
)
UPLOAD_PRIORITY: Any = params.Form(
    0, ge=PRIORITY_RANGE[0], le=PRIORITY_RANGE[1], description="Higher first"
)
ERRORS: dict[int, Any] = {401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 422: ValidationErrorOut}
#: Requests with a JSON body may also be malformed (400) or too large (413).
BODY_ERRORS: dict[int, Any] = {**ERRORS, 400: ErrorOut, 413: ErrorOut}


@router.get("", response={200: list[PipelineOut], **ERRORS}, auth=READ)
def list_pipelines(request: HttpRequest, archived: bool | None = None) -> Any:
    """Every pipeline, by name, with its steps as defined in code; `archived=false` leaves
    the archived ones out, `archived=true` lists only them."""
    found = Pipeline.objects.all()
    if archived is not None:
        found = found.archived() if archived else found.unarchived()
    rows = list(found)
    running = running_by_pipeline()
    for row in rows:
        row.running = running.get(row.id, 0)  # type: ignore[attr-defined]
    return rows


@router.post(
    "",
    response={201: PipelineDetailOut, 409: ErrorOut, **BODY_ERRORS},
    auth=allow("pipelines.add_pipeline"),
)
def create_pipeline(request: HttpRequest, payload: PipelineIn) -> Any:
    """A pipeline running a code definition; 409 if the name is taken."""
    return Status(201, _detail(pipeline_create(**payload.model_dump(), actor=api_actor(request))))


@router.get("/{pipeline_id}", response={200: PipelineDetailOut, **ERRORS}, auth=READ)
def get_pipeline(request: HttpRequest, pipeline_id: int) -> Any:
    """One pipeline, with its next fire time and its success rate over the last 24 hours."""
    return _detail(_get(pipeline_id))


@router.patch(
    "/{pipeline_id}",
    response={200: PipelineDetailOut, 409: ErrorOut, **BODY_ERRORS},
    auth=allow("pipelines.change_pipeline"),
)
def update_pipeline(request: HttpRequest, pipeline_id: int, payload: PipelinePatch) -> Any:
    """Change the name, description, schedule, default metadata or enabled flag.

    Secrets in default metadata are masked when read; a masked value sent back keeps the
    stored secret, so reading, editing and sending a pipeline loses nothing."""
    pipeline = _get(pipeline_id)
    changes = payload.model_dump(exclude_unset=True)
    if "enabled" in changes:  # switching a pipeline on or off is also an operator's act
        require_permissions(request.user, ("pipelines.operate_pipeline",))
    if changes.get("default_metadata") is not None:
        changes["default_metadata"] = unmask(changes["default_metadata"], pipeline.default_metadata)
    return _detail(pipeline_update(pipeline, actor=api_actor(request), **changes))


@router.put(
    "/{pipeline_id}/limits",
    response={200: PipelineDetailOut, **BODY_ERRORS},
    auth=OPERATE,
)
def set_limits(request: HttpRequest, pipeline_id: int, payload: LimitsIn) -> Any:
    """Set the pipeline's max_concurrency (null: no limit), which then stays the operator's
    whatever the code says; or `follow_code` to take the code's and follow it again."""
    pipeline = _get(pipeline_id)
    if payload.follow_code:
        changes: dict[str, Any] = {"max_concurrency_source": "code"}
    else:
        changes = {"max_concurrency": payload.max_concurrency, "max_concurrency_source": "operator"}
    return _detail(pipeline_update(pipeline, actor=api_actor(request), **changes))


@router.post("/{pipeline_id}/enable", response={200: PipelineDetailOut, **ERRORS}, auth=OPERATE)
def enable_pipeline(request: HttpRequest, pipeline_id: int) -> Any:
    """Let the pipeline start runs again; its schedule resumes from the next slot."""
    row = _get(pipeline_id)
    pipeline_set_enabled(row, True, actor=api_actor(request))
    return _detail(row)


@router.post("/{pipeline_id}/disable", response={200: PipelineDetailOut, **ERRORS}, auth=OPERATE)
def disable_pipeline(request: HttpRequest, pipeline_id: int) -> Any:
    """Stop the pipeline starting runs and firing its schedule; its queued runs are held
    (left pending, unclaimed) until it is enabled again."""
    row = _get(pipeline_id)
    pipeline_set_enabled(row, False, actor=api_actor(request))
    return _detail(row)


@router.post("/{pipeline_id}/pause", response={200: PipelineDetailOut, **BODY_ERRORS}, auth=OPERATE)
def pause_pipeline(request: HttpRequest, pipeline_id: int, payload: PauseIn | None = None) -> Any:
    """Pause the pipeline: its queued runs wait (on every queue), new runs are accepted and
    wait, running runs finish. Pausing a paused pipeline keeps the first pause."""
    row = _get(pipeline_id)
    pipeline_pause(row, reason=payload.reason if payload else "", actor=api_actor(request))
    return _detail(row)


@router.post("/{pipeline_id}/resume", response={200: PipelineDetailOut, **ERRORS}, auth=OPERATE)
def resume_pipeline(request: HttpRequest, pipeline_id: int) -> Any:
    """Resume the pipeline: idle workers claim its queued runs at once."""
    row = _get(pipeline_id)
    pipeline_resume(row, actor=api_actor(request))
    return _detail(row)


@router.post(
    "/{pipeline_id}/archive",
    response={200: PipelineDetailOut, 409: ErrorOut, **ERRORS},
    auth=OPERATE,
)
def archive_pipeline(request: HttpRequest, pipeline_id: int) -> Any:
    """Archive a pipeline whose definition is gone from code: it leaves the dashboard's
    pipelines page, cannot start runs (409), and its queued runs are held; its runs stay
    visible. 409 for a pipeline still defined in code (disable it instead). Archiving an
    archived pipeline keeps the first archive."""
    row = _get(pipeline_id)
    pipeline_archive(row, actor=api_actor(request))
    return _detail(row)


@router.post("/{pipeline_id}/unarchive", response={200: PipelineDetailOut, **ERRORS}, auth=OPERATE)
def unarchive_pipeline(request: HttpRequest, pipeline_id: int) -> Any:
    """Bring an archived pipeline back (a sync also does when its definition returns)."""
    row = _get(pipeline_id)
    unarchive_pipelines([row], actor=api_actor(request))
    return _detail(row)


@router.delete(
    "/{pipeline_id}",
    response={204: None, 409: ErrorOut, **ERRORS},
    auth=allow("pipelines.delete_pipeline"),
)
def delete_pipeline(request: HttpRequest, pipeline_id: int) -> Any:
    """Delete a pipeline that has no runs; 409 otherwise (disable it to keep its history)."""
    pipeline_delete(_get(pipeline_id), actor=api_actor(request))
    return Status(204, None)


@router.post(
    "/{pipeline_id}/runs",
    response={201: RunDetailOut, 409: ErrorOut, **BODY_ERRORS},
    auth=allow("runs.operate_run"),
)
def create_run(
    request: HttpRequest,
    pipeline_id: int,
    payload: RunIn | None = None,
    idempotency_key: str | None = IDEMPOTENCY_KEY,
) -> Any:
    """Queue a run, on a queue, now or later (run_after or delay_seconds); with an
    Idempotency-Key header a repeated request returns the same run.

    Keys are the caller's own (another caller's same key makes another run); the same key
    with different metadata or priority is a 409, and so is a disabled pipeline. A bad
    queue name, a run_after in the past, or both run_after and delay_seconds are a 422."""
    payload = payload or RunIn(
        metadata=None, priority=0, queue=None, run_after=None, delay_seconds=None, unique_key=None
    )
    pipeline = _get(pipeline_id)
    key = scoped_key(request.user.pk, idempotency_key)
    run = run_create(
        pipeline,
        metadata=payload.metadata,
        priority=payload.priority,
        queue=payload.queue,
        run_after=payload.run_after,
        delay=payload.delay_seconds,
        idempotency_key=key,
        unique_key=payload.unique_key,
        actor=api_actor(request),
    )
    if key is not None:
        ensure_same_request(run, pipeline, payload.metadata, payload.priority)
    return Status(201, _run_detail(run.id))


@router.post(
    "/{pipeline_id}/runs/bulk",
    response={201: list[RunOut], 409: ErrorOut, **BODY_ERRORS},
    auth=allow("runs.operate_run"),
)
def create_runs(request: HttpRequest, pipeline_id: int, payload: RunBulkIn) -> Any:
    """Queue one run per metadata in `runs` (at most 1000), with the same options, in one
    insert: all are validated first, and bad input queues none."""
    pipeline = _get(pipeline_id)
    created = enqueue_many(
        pipeline,
        payload.runs,
        queue=payload.queue,
        priority=payload.priority,
        run_after=payload.run_after,
        delay=payload.delay_seconds,
        actor=api_actor(request),
    )
    return Status(201, created)


@router.post(
    "/{pipeline_id}/runs/upload",
    response={201: RunDetailOut, 409: ErrorOut, **BODY_ERRORS},
    auth=allow("runs.operate_run"),
    url_name=UPLOAD_URL_NAME,
)
def create_run_with_upload(
    request: HttpRequest,
    pipeline_id: int,
    file: UploadedFile = UPLOAD_FILE,
    metadata: str = UPLOAD_METADATA,
    priority: int = UPLOAD_PRIORITY,
) -> Any:
    """Send a file and queue a run that processes it (multipart/form-data).

    The file is stored in ORBIT_DOCUMENTS_ROOT and the run gets its path under the
    pipeline's `upload_field` (`filePath` for document-processing); 422 for a pipeline
    that takes no file, 413 over ORBIT_MAX_UPLOAD_BYTES."""
    run = run_create_with_upload(
        _get(pipeline_id),
        file,
        file_name=file.name or "document",
        metadata=parse_json(metadata, what="Metadata") if metadata.strip() else None,
        priority=priority,
        actor=api_actor(request),
    )
    return Status(201, _run_detail(run.id))


@router.get(
    "/{pipeline_id}/runs",
    response={200: RunPageOut, **ERRORS},
    auth=allow("runs.view_run"),
)
def list_pipeline_runs(
    request: HttpRequest,
    pipeline_id: int,
    limit: int = LIMIT,
    cursor: str | None = CURSOR,
) -> Any:
    """The pipeline's runs, newest first, a page at a time (pass `next_cursor` back)."""
    runs = Run.objects.filter(pipeline=_get(pipeline_id)).select_related("pipeline", "worker")
    return by_created(runs, limit=limit, cursor=cursor)


def _get(pipeline_id: int) -> Pipeline:
    try:
        return Pipeline.objects.get(id=pipeline_id)
    except Pipeline.DoesNotExist:
        raise Http404(f"No pipeline with id {pipeline_id}") from None


def _detail(pipeline: Pipeline) -> Pipeline:
    pipeline.running = running_by_pipeline([pipeline.id]).get(pipeline.id, 0)  # type: ignore[attr-defined]
    pipeline.next_fire_time = next_fire_time(pipeline)  # type: ignore[attr-defined]
    pipeline.success_rate = pipeline_success_rate(pipeline.id)  # type: ignore[attr-defined]
    return pipeline


def _run_detail(run_id: Any) -> Run:
    return run_with_steps(run_id)
