"""Who may see and do what on the dashboard: Django's own permissions, checked per view.

Pages need a staff login (anonymous visitors go to the admin login) and the model's view
permission; actions need the operate permission of what they act on. The admin and the
API ask the same permissions, so a role (orbit/core/roles.py) grants the same things everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

View = Callable[..., HttpResponse]

VIEW_RUNS = "runs.view_run"
VIEW_WORKERS = "runs.view_worker"
VIEW_PIPELINES = "pipelines.view_pipeline"
VIEW_AUDIT = "orbit.view_auditevent"
OPERATE_RUNS = "runs.operate_run"  # run now, retry, cancel, resume; pause and resume queues
OPERATE_PIPELINES = "pipelines.operate_pipeline"  # enable, disable, pause, resume


def requires(permission: str) -> Callable[[View], View]:
    """Staff login first (redirect to the login page), then `permission` (403 without it)."""

    def decorate(view: View) -> View:
        @wraps(view)
        def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.has_perm(permission):
                raise PermissionDenied(f"You need the {permission} permission for this page.")
            return view(request, *args, **kwargs)

        return staff_member_required(checked)

    return decorate


def can(request: HttpRequest, permission: str) -> bool:
    return bool(request.user.has_perm(permission))
