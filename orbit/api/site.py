"""The REST API: one NinjaAPI at /api/, with each app's router, and errors as JSON.

Every error is `{"detail": "..."}` (422 adds `errors`, one per field). Orbit's own
exceptions map to statuses here, so endpoints never catch them. A request Django refuses to
read (too many fields or files, a multipart body it cannot parse, anything it finds
suspicious) is the caller's fault and a 400; anything unexpected is logged and answered
with a plain 500 that leaks nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import (
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.http import Http404, HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from orbit.api.idempotency import IdempotencyConflict
from orbit.api.pipelines import router as pipelines_router
from orbit.api.queues import router as queues_router
from orbit.api.runs import runs_router, steps_router, worker_router
from orbit.api.webhooks import router as webhooks_router
from orbit.core.exceptions import (
    DeliveryNotFound,
    DocumentTooLarge,
    InvalidRunQuery,
    InvalidTransition,
    MetadataTooLarge,
    OrbitError,
    PipelineArchived,
    PipelineDisabled,
    RunNotFound,
    UnknownPipeline,
    WebhookNotFound,
    WorkerNotFound,
)
from pipelines.lifecycle import PipelineConflict

logger = logging.getLogger(__name__)

#: The status of each of Orbit's errors; a subclass not listed takes its parent's.
ERROR_STATUS: dict[type[OrbitError], int] = {
    IdempotencyConflict: 409,
    OrbitError: 422,
    RunNotFound: 404,
    WorkerNotFound: 404,
    WebhookNotFound: 404,
    DeliveryNotFound: 404,
    UnknownPipeline: 404,
    InvalidTransition: 409,
    InvalidRunQuery: 400,
    PipelineDisabled: 409,
    PipelineArchived: 409,
    PipelineConflict: 409,
    MetadataTooLarge: 413,
    DocumentTooLarge: 413,
}
UNAUTHENTICATED = (
    "Authentication required: send 'Authorization: Bearer <token>' or log in as a staff user"
)

api = NinjaAPI(
    title="Orbit API",
    version="1",
    description="Pipelines, runs, steps and workers. See docs/API.md.",
    urls_namespace="api",
    docs_url="/docs",
    openapi_url="/openapi.json",
)
api.add_router("/pipelines", pipelines_router)
api.add_router("/queues", queues_router)
api.add_router("/runs", runs_router)
api.add_router("/steps", steps_router)
api.add_router("/worker", worker_router)
api.add_router("/webhooks", webhooks_router)


def _error(request: HttpRequest, detail: str, status: int, **extra: Any) -> HttpResponse:
    return api.create_response(request, {"detail": detail, **extra}, status=status)


@api.exception_handler(OrbitError)
def _orbit_error(request: HttpRequest, exc: OrbitError) -> HttpResponse:
    status = next(ERROR_STATUS[k] for k in type(exc).__mro__ if k in ERROR_STATUS)
    field = exc.context.get("field")
    if status == 422:
        errors = [{"field": field, "message": str(exc)}] if field else []
        return _error(request, str(exc), 422, errors=errors)
    return _error(request, str(exc), status)


@api.exception_handler(ValidationError)
def _validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    errors = [{"field": _field(e.get("loc", ())), "message": e.get("msg", "")} for e in exc.errors]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "Invalid input"
    return _error(request, detail, 422, errors=errors)


def _field(loc: Any) -> str:
    """('body', 'payload', 'metadata') -> 'metadata'; ('query', 'limit') -> 'limit'."""
    parts = [str(p) for p in loc]
    inner = parts[2:] if parts[:1] == ["body"] else parts[1:]
    return ".".join(inner) or (parts[0] if parts else "body")


@api.exception_handler(AuthenticationError)
def _authentication_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    detail = str(exc) if str(exc) != "Unauthorized" else UNAUTHENTICATED
    response = _error(request, detail, 401)
    response["WWW-Authenticate"] = 'Bearer realm="orbit"'
    return response


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    return _error(request, str(exc), exc.status_code)


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return _error(request, str(exc) or "Not found", 404)


@api.exception_handler(RequestDataTooBig)
def _too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    return _error(request, "The request body is too large", 413)


@api.exception_handler(SuspiciousOperation)
def _suspicious(request: HttpRequest, exc: SuspiciousOperation) -> HttpResponse:
    """A 400 as Django itself answers these, logged where Django logs them
    (`django.security.<class>`), without the traceback: the caller erred, not Orbit."""
    logging.getLogger(f"django.security.{type(exc).__name__}").warning(
        "Refused %s %s: %s",
        request.method,
        request.path,
        type(exc).__name__,
        extra={"event": "api_suspicious_request", "path": request.path},
    )
    return _error(request, _suspicious_detail(exc), 400)


def _suspicious_detail(exc: SuspiciousOperation) -> str:
    """What the caller sent too much of; other SuspiciousOperation messages are not shown,
    as some name server paths (SuspiciousFileOperation)."""
    if isinstance(exc, TooManyFieldsSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        return f"More than {limit} query or form fields (DATA_UPLOAD_MAX_NUMBER_FIELDS)"
    if isinstance(exc, TooManyFilesSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FILES
        return f"More than {limit} files (DATA_UPLOAD_MAX_NUMBER_FILES)"
    return f"The request was refused ({type(exc).__name__})"


@api.exception_handler(MultiPartParserError)
def _unreadable_multipart(request: HttpRequest, exc: MultiPartParserError) -> HttpResponse:
    # Django's parser names only what the request itself got wrong (its boundary, its
    # Content-Type, its Content-Length), so its message is safe to show.
    return _error(request, f"The multipart body cannot be read: {exc}", 400)


@api.exception_handler(Exception)
def _unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    logger.exception(
        "Unexpected error in %s %s",
        request.method,
        request.path,
        extra={"event": "api_error", "path": request.path},
    )
    return _error(request, "Internal server error; it has been logged", 500)


# Each of Orbit's errors with its own status gets the handler too: handlers are found by class.
for _exc_class in ERROR_STATUS:
    api.exception_handler(_exc_class)(_orbit_error)
