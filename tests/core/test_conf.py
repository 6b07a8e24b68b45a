"""Orbit's settings are read once and kept until Django says a setting changed."""

from __future__ import annotations

from django.conf import settings as django_settings
from django.test import override_settings

from orbit.core.conf import orbit_settings


def test_a_setting_read_once_follows_an_override_and_its_end() -> None:
    before = orbit_settings.max_result_bytes
    with override_settings(ORBIT_MAX_RESULT_BYTES=before + 1):
        assert orbit_settings.max_result_bytes == before + 1
    assert orbit_settings.max_result_bytes == before


def test_the_settings_fixture_applies_at_once(settings) -> None:  # type: ignore[no-untyped-def]
    assert orbit_settings.lease_seconds == django_settings.ORBIT_LEASE_SECONDS
    settings.ORBIT_LEASE_SECONDS = 7.5
    assert orbit_settings.lease_seconds == 7.5


def test_the_redaction_keys_are_parsed_again_when_they_change() -> None:
    assert "pin" not in orbit_settings.redact_keys
    with override_settings(ORBIT_REDACT_KEYS="Card-PIN, otp"):
        assert orbit_settings.redact_keys == ("cardpin", "otp")
    assert "pin" not in orbit_settings.redact_keys
