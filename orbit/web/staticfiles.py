"""Static files with DEBUG off: whitenoise's compressed, hashed names, read from the
manifest `collectstatic` writes. Without that manifest (a deploy that skipped the step),
Django's storage failed every page that names a static file with a 500; here the files
keep their plain names and are found where they live (settings.py turns whitenoise's
finders on then), and `manage.py check --deploy` warns (orbit.W001, orbit/core/checks.py)."""

from __future__ import annotations

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticFiles(CompressedManifestStaticFilesStorage):  # type: ignore[misc]  # untyped
    def stored_name(self, name: str) -> str:
        if not self.hashed_files:  # no manifest: collectstatic has not been run
            return name
        return str(super().stored_name(name))
