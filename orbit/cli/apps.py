from __future__ import annotations

from django.apps import AppConfig


class CliConfig(AppConfig):
    """The `orbit` command line and every management command (runworker, recover, ...)."""

    name = "orbit.cli"
    label = "cli"
    verbose_name = "Command line"
