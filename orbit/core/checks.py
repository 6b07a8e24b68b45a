"""A deployment check (`manage.py check --deploy`) for the one deploy step whose absence
was a 500: with DEBUG off, static files are named through whitenoise's manifest, which
`collectstatic` writes. Only with --deploy: a worker host serves no pages and needs none."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Warning

#: The manifest Django's ManifestStaticFilesStorage writes into STATIC_ROOT.
MANIFEST = "staticfiles.json"


def check_static_manifest(**kwargs: Any) -> list[CheckMessage]:
    """Warn when DEBUG is off and `collectstatic` has not run: the pages are served, and
    their files by their plain names from where they live (orbit/web/staticfiles.py), but
    without the hashed names and compression that let browsers cache them for good."""
    if settings.DEBUG or not settings.STATIC_ROOT:
        return []
    if (Path(settings.STATIC_ROOT) / MANIFEST).is_file():
        return []
    return [
        Warning(
            "DEBUG is off and collectstatic has not been run: static files are served "
            "from where they live, without hashed names or compression.",
            hint="Run `python manage.py collectstatic --noinput` at every deploy.",
            id="orbit.W001",
        )
    ]
