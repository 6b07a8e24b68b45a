"""`{% load orbit_ids %}{{ run.id|short_id }}`: the part of an id that tells runs apart."""

from __future__ import annotations

from django import template

from orbit.console.dashboard import present

register = template.Library()


@register.filter
def short_id(value: object) -> str:
    """The id's last hex digits (orbit/console/dashboard/present.py `short_id`)."""
    return present.short_id(value)
