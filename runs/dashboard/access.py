"""Who may see and do what on the dashboard: Django's own permissions, checked per view.

Pages need a staff login (anonymous visitors go to the admin login) and the model's view
permission; actions need the change permission of what they change. The admin asks the
same permissions, so one role grants the same things in both places.
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
CHANGE_RUNS = "runs.change_run"  # retry, cancel, resume, run now
CHANGE_PIPELINES = "pipelines.change_pipeline"  # enable, disable


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
