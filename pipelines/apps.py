from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PipelinesConfig(AppConfig):
    name = "pipelines"
    verbose_name = "Pipelines"

    def ready(self) -> None:
        from pipelines import tasks
        from pipelines.definition import registry
        from pipelines.sync import sync_after_migrate

        registry.loader = tasks.load  # task functions, found by their dotted path
        registry.autodiscover()
        post_migrate.connect(sync_after_migrate, sender=self)
