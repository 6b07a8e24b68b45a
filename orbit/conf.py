"""One typed accessor for Orbit's `ORBIT_*` settings, so defaults live in one place."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

DEFAULTS: dict[str, Any] = {
    "PIPELINE_MODULES": [],
    "POLL_INTERVAL": 1.0,
    "LEASE_SECONDS": 30.0,
    "MAX_INTERRUPTIONS": 3,
    "MAX_RESULT_BYTES": 1024 * 1024,
    "MAX_METADATA_BYTES": 256 * 1024,
    "DEFAULT_STEP_TIMEOUT": 300.0,
    "SWEEP_INTERVAL": None,  # None: a third of the lease
    "MAX_LOG_RECORDS": 1000,
    "SCHEDULE_TIMEZONE": None,  # None: TIME_ZONE
    "SCHEDULE_CATCHUP": "latest",
    "SCHEDULE_CATCHUP_MAX": 100,
    "SCHEDULE_GRACE": 60.0,
    "SCHEDULE_INTERVAL": 5.0,
}

SCHEDULE_CATCHUP_POLICIES = ("latest", "skip", "all")


class OrbitSettings:
    """Reads `settings.ORBIT_<NAME>` at access time, so tests can override them."""

    def _get(self, name: str) -> Any:
        return getattr(django_settings, f"ORBIT_{name}", DEFAULTS[name])

    @property
    def pipeline_modules(self) -> list[str]:
        return [m.strip() for m in self._get("PIPELINE_MODULES") if m.strip()]

    @property
    def poll_interval(self) -> float:
        return float(self._get("POLL_INTERVAL"))

    @property
    def lease_seconds(self) -> float:
        return float(self._get("LEASE_SECONDS"))

    @property
    def max_interruptions(self) -> int:
        return int(self._get("MAX_INTERRUPTIONS"))

    @property
    def max_result_bytes(self) -> int:
        return int(self._get("MAX_RESULT_BYTES"))

    @property
    def max_metadata_bytes(self) -> int:
        return int(self._get("MAX_METADATA_BYTES"))

    @property
    def default_step_timeout(self) -> float:
        return float(self._get("DEFAULT_STEP_TIMEOUT"))

    @property
    def sweep_interval(self) -> float:
        value = self._get("SWEEP_INTERVAL")
        return float(value) if value else self.lease_seconds / 3

    @property
    def max_log_records(self) -> int:
        return int(self._get("MAX_LOG_RECORDS"))

    @property
    def schedule_timezone(self) -> ZoneInfo:
        name = self._get("SCHEDULE_TIMEZONE") or django_settings.TIME_ZONE or "UTC"
        try:
            return ZoneInfo(str(name))
        except (ZoneInfoNotFoundError, ValueError):
            raise ImproperlyConfigured(
                f"ORBIT_SCHEDULE_TIMEZONE is {name!r}, which is not a time zone name "
                "such as 'UTC' or 'Europe/Berlin'"
            ) from None

    @property
    def schedule_catchup(self) -> str:
        value = str(self._get("SCHEDULE_CATCHUP")).strip().lower()
        if value not in SCHEDULE_CATCHUP_POLICIES:
            raise ImproperlyConfigured(
                f"ORBIT_SCHEDULE_CATCHUP is {value!r}; use one of: "
                + ", ".join(SCHEDULE_CATCHUP_POLICIES)
            )
        return value

    @property
    def schedule_catchup_max(self) -> int:
        value = int(self._get("SCHEDULE_CATCHUP_MAX"))
        if value < 1:
            raise ImproperlyConfigured(
                f"ORBIT_SCHEDULE_CATCHUP_MAX must be at least 1, not {value}"
            )
        return value

    @property
    def schedule_grace(self) -> float:
        return float(self._get("SCHEDULE_GRACE"))

    @property
    def schedule_interval(self) -> float:
        return float(self._get("SCHEDULE_INTERVAL"))


orbit_settings = OrbitSettings()
