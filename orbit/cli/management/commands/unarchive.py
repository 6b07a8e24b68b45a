"""`orbit unarchive NAME`: bring back an archived pipeline (pipelines/archiving.py)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from orbit.cli import console, escape, refusals
from orbit.core.audit import Actor
from runs.bulk import unarchive_pipelines
from runs.enqueueing import get_pipeline


class Command(BaseCommand):
    help = "Bring back an archived pipeline: its card returns and it may start runs. Exit 2 for an unknown name."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("name", help="the pipeline's name")

    def handle(self, *args: Any, **options: Any) -> None:
        out = console()
        with refusals(out):
            row = get_pipeline(options["name"])
        if unarchive_pipelines([row], actor=Actor.cli()).done:
            out.print(f"Pipeline {escape(repr(row.name))} unarchived.")
        else:
            out.print(f"Pipeline {escape(repr(row.name))} was not archived; left as it was.")
