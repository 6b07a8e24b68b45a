"""orbit/core/checks.py: the warning for a deploy that skipped collectstatic."""

from __future__ import annotations

from pathlib import Path

from django.test import override_settings

from orbit.core.checks import MANIFEST, check_static_manifest


def ids(messages: list) -> list[str]:
    return [m.id for m in messages]


def test_debug_off_without_a_manifest_warns_and_with_one_does_not(tmp_path: Path) -> None:
    with override_settings(DEBUG=False, STATIC_ROOT=tmp_path):
        assert ids(check_static_manifest()) == ["orbit.W001"]
        (tmp_path / MANIFEST).write_text("{}")
        assert check_static_manifest() == []


def test_debug_on_serves_from_the_apps_and_needs_no_manifest(tmp_path: Path) -> None:
    with override_settings(DEBUG=True, STATIC_ROOT=tmp_path):
        assert check_static_manifest() == []
