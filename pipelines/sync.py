"""Keep a `Pipeline` row for every code definition (after migrate and at worker start)."""

from __future__ import annotations

from typing import Any

from django.db import DEFAULT_DB_ALIAS, IntegrityError, transaction

from pipelines.definition import registry


def sync_pipelines(using: str = DEFAULT_DB_ALIAS) -> list[str]:
    """Create the missing rows; returns the names created. Operators' edits are kept."""
    from pipelines.models import Pipeline

    existing = set(Pipeline.objects.using(using).values_list("definition", flat=True))
    created = []
    for definition in registry.all():
        if definition.name in existing:
            continue
        try:
            with transaction.atomic(using=using):
                Pipeline.objects.using(using).create(
                    name=definition.name,
                    definition=definition.name,
                    description=definition.description,
                    schedule=definition.schedule,
                )
        except IntegrityError:
            continue  # another process created it, or a row already uses the name
        created.append(definition.name)
    return created


def sync_after_migrate(using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    sync_pipelines(using)
