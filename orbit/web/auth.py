"""Who may call the API: a bearer API token, or a staff session (with CSRF on writes).

Each endpoint names the Django permissions it needs with `allow("runs.view_run")`; the
token's or session's user must hold all of them (superusers hold every one). Anonymous
callers get 401, authenticated ones without the permission 403. Roles (viewer, operator,
admin) are groups of these permissions, so the same check serves the admin, the
dashboard and the API.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from ninja.errors import AuthenticationError, AuthorizationError
from ninja.security import APIKeyCookie, HttpBearer
from ninja.utils import check_csrf

from orbit.core.tokens import TokenRefused, user_for_key

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def require_permissions(user: Any, permissions: tuple[str, ...]) -> Any:
    """Return `user` if it holds every permission, else raise 403 naming the missing ones."""
    missing = [p for p in permissions if not user.has_perm(p)]
    if missing:
        raise AuthorizationError(
            message=f"You do not have permission to do this (needs {', '.join(missing)})"
        )
    return user


class ApiTokenAuth(HttpBearer):
    """`Authorization: Bearer orbit_...`: a token made in the admin or by `createapitoken`."""

    def __init__(self, permissions: tuple[str, ...] = ()) -> None:
        self.permissions = permissions
        super().__init__()

    def authenticate(self, request: HttpRequest, token: str) -> Any:
        try:
            user = user_for_key(token)
        except TokenRefused as exc:
            raise AuthenticationError(message=str(exc)) from None
        request.user = user  # the audit trail and views read request.user
        return require_permissions(user, self.permissions)


class StaffSessionAuth(APIKeyCookie):
    """A logged-in staff user's session cookie; unsafe methods must pass Django's CSRF check."""

    param_name = settings.SESSION_COOKIE_NAME

    def __init__(self, permissions: tuple[str, ...] = ()) -> None:
        self.permissions = permissions
        super().__init__(csrf=True)

    def __call__(self, request: HttpRequest) -> Any:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None  # anonymous: 401, whatever the method
        if not user.is_staff:
            raise AuthorizationError(
                message="API access with a session needs a staff account; use an API token"
            )
        if request.method not in SAFE_METHODS and check_csrf(request) is not None:
            raise AuthorizationError(
                message="CSRF check failed: send the X-CSRFToken header with the csrftoken cookie"
            )
        return require_permissions(user, self.permissions)

    def authenticate(self, request: HttpRequest, key: str | None) -> Any:  # pragma: no cover
        return None  # __call__ does the work; required by the base class


def allow(*permissions: str) -> list[Any]:
    """The `auth=` of an endpoint that needs these permissions, by token or staff session."""
    return [ApiTokenAuth(permissions), StaffSessionAuth(permissions)]
