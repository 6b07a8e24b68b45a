from __future__ import annotations

from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    """The dashboard, its template tags and static files, and the admin of every app.

    Django's admin autodiscovery imports `orbit.console.admin`, which registers the
    models of runs, pipelines, services and orbit.core.
    """

    name = "orbit.console"
    label = "console"
    verbose_name = "Console"
