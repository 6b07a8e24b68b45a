"""GET /healthz: is this web process able to serve? For load balancers; no auth, no details."""

from __future__ import annotations

import logging
import time

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_safe

logger = logging.getLogger(__name__)

#: Once every migration is applied, the (disk-reading) migration check is repeated at
#: most this often; the database itself is checked on every call.
MIGRATIONS_RECHECK_SECONDS = 60.0
_migrated_at: float | None = None


@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """200 `{"status": "ok"}` when the database answers and is migrated, else 503."""
    try:
        connection = connections[DEFAULT_DB_ALIAS]
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        if not _migrated():
            logger.error("Health check: migrations are not applied", extra={"event": "unhealthy"})
            return JsonResponse({"status": "unavailable"}, status=503)
    except Exception:
        logger.exception("Health check: database unreachable", extra={"event": "unhealthy"})
        return JsonResponse({"status": "unavailable"}, status=503)
    return JsonResponse({"status": "ok"})


def _migrated() -> bool:
    global _migrated_at
    if _migrated_at is not None and time.monotonic() - _migrated_at < MIGRATIONS_RECHECK_SECONDS:
        return True
    executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        _migrated_at = None
        return False
    _migrated_at = time.monotonic()
    return True
