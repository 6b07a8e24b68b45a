from __future__ import annotations

from django.apps import AppConfig


class OrbitConfig(AppConfig):
    """Orbit's foundations as an app: API tokens and the audit trail.

    Labelled "orbit", as when the project package was the app, so its tables
    (`orbit_apitoken`, `orbit_auditevent`), permissions and migrations keep their names.
    """

    name = "orbit.core"
    label = "orbit"
    verbose_name = "Orbit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core import checks

        from orbit.core import tracing
        from orbit.core.checks import check_static_manifest

        # with --deploy only: a worker host serves no pages and needs no collectstatic
        checks.register(check_static_manifest, checks.Tags.staticfiles, deploy=True)
        tracing.configure()  # on only when OTEL_TRACES_EXPORTER says so (docs/TRACING.md)
