"""`orbit archive NAME`: set aside a pipeline whose definition is gone from code
(pipelines/archiving.py); `orbit unarchive NAME` brings it back."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from orbit.cli import console, escape, refusals
from orbit.core.audit import Actor
from pipelines.archiving import pipeline_archive
from runs.enqueueing import get_pipeline


class Command(BaseCommand):
    help = (
        "Archive a pipeline whose definition is gone from code: it leaves the dashboard's "
        "pipelines page and cannot start runs; its runs stay. Exit 2 for an unknown name or "
        "a pipeline still defined in code (disable it instead)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("name", help="the pipeline's name")

    def handle(self, *args: Any, **options: Any) -> None:
        out = console()
        with refusals(out):
            row = get_pipeline(options["name"])
            done = pipeline_archive(row, actor=Actor.cli())
        if done:
            out.print(
                f"Pipeline {escape(repr(row.name))} archived: `orbit unarchive {escape(row.name)}` "
                "brings it back, and so does its definition coming back into the code."
            )
        else:
            out.print(
                f"Pipeline {escape(repr(row.name))} was already archived by "
                f"{escape(row.archived_by)}; left as it was."
            )
