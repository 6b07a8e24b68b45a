"""`{% load orbit_links %}{% if value|http_url %}<a href="{{ value|http_url }}">...`: link
data only when it is an http(s) URL (orbit/core/links.py)."""

from __future__ import annotations

from django import template

from orbit.core import links

register = template.Library()


@register.filter
def http_url(value: object) -> str:
    """The value if it is an http(s) URL, else an empty string."""
    return links.http_url(value)
