"""One typed accessor for Orbit's `ORBIT_*` settings, so defaults live in one place."""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings

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
}


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


orbit_settings = OrbitSettings()
