from __future__ import annotations

from django.apps import AppConfig


class OrbitConfig(AppConfig):
    """The project package as an app: it holds API tokens and the `createapitoken` command."""

    name = "orbit"
    verbose_name = "Orbit"
    default_auto_field = "django.db.models.BigAutoField"
