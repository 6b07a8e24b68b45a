"""A system check, so a mistyped limit stops `manage.py check` and start-up rather than
answering every API request with a 500."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error
from django.core.exceptions import ImproperlyConfigured

from orbit.core.conf import orbit_settings

LIMIT_SETTINGS = (
    "api_rate_limit",
    "login_rate_limit",
    "admin_search_rate_limit",
    "trusted_proxies",
)


def check_limits(**kwargs: Any) -> list[CheckMessage]:
    """ORBIT_API_RATE_LIMIT, ORBIT_LOGIN_RATE_LIMIT, ORBIT_ADMIN_SEARCH_RATE_LIMIT and
    ORBIT_TRUSTED_PROXIES must parse."""
    errors: list[CheckMessage] = []
    for name in LIMIT_SETTINGS:
        try:
            getattr(orbit_settings, name)
        except (ImproperlyConfigured, ValueError) as exc:
            errors.append(Error(str(exc), id="ratelimit.E001"))
    return errors
