from __future__ import annotations

from django.apps import AppConfig


class RateLimitConfig(AppConfig):
    """The counters behind ORBIT_API_RATE_LIMIT and ORBIT_LOGIN_RATE_LIMIT."""

    name = "orbit.web.ratelimit"
    label = "ratelimit"
    verbose_name = "Rate limits"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core import checks

        from orbit.web.ratelimit.checks import check_limits

        checks.register(check_limits)
