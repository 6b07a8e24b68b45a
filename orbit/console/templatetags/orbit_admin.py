"""Template tags for the admin's own pages: the index's health line, and list pieces that
stay cheap on a million runs (the paginator's count, the date drill-down)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django import template
from django.db.models import Max, Min
from django.utils import formats, timezone
from django.utils.text import capfirst
from django.utils.translation import gettext as _

from orbit.console.dashboard import paging
from orbit.console.dashboard.overview import Health, health

register = template.Library()


@register.simple_tag
def orbit_health() -> Health:
    """Workers alive, queue depth, interrupted runs and failures in the last hour."""
    return health()


@register.filter
def result_count_text(count: int) -> str:
    """A list's count as the paginator knows it: exact, capped, or estimated."""
    if paging.is_capped(count):
        return f"More than {paging.COUNT_LIMIT:,}"
    if count > paging.COUNT_LIMIT:
        return f"About {count:,}"
    return str(count)


@register.inclusion_tag("admin/date_hierarchy.html")
def bounded_date_hierarchy(cl: Any) -> dict[str, Any]:
    """The admin's date drill-down, with choices spanned from the list's first and last date.

    Django's own asks the database for every distinct year, month or day present, which is
    a scan of the whole (filtered) table; MIN and MAX are two index probes. A choice may
    lead to an empty page where no run was created that day.
    """
    field = cl.date_hierarchy
    year, month, day = (cl.params.get(f"{field}__{part}") for part in ("year", "month", "day"))

    def link(filters: dict[str, Any]) -> str:
        return str(cl.get_query_string(filters, [f"{field}__"]))

    if year and month and day:
        when = date(int(year), int(month), int(day))
        return {
            "show": True,
            "back": {
                "link": link({f"{field}__year": year, f"{field}__month": month}),
                "title": capfirst(formats.date_format(when, "YEAR_MONTH_FORMAT")),
            },
            "choices": [{"title": capfirst(formats.date_format(when, "MONTH_DAY_FORMAT"))}],
        }
    bounds = cl.queryset.aggregate(first=Min(field), last=Max(field))
    if bounds["first"] is None:
        return {"show": False}
    first, last = (timezone.localtime(bounds[k]).date() for k in ("first", "last"))
    if not year and first.year == last.year:
        year = str(first.year)
        if first.month == last.month:
            month = str(first.month)
    if year and month:
        days = _span(first, last, lambda d: d + timedelta(days=1), date(int(year), int(month), 1))
        return {
            "show": True,
            "back": {"link": link({f"{field}__year": year}), "title": str(year)},
            "choices": [
                {
                    "link": link(
                        {f"{field}__year": year, f"{field}__month": month, f"{field}__day": d.day}
                    ),
                    "title": capfirst(formats.date_format(d, "MONTH_DAY_FORMAT")),
                }
                for d in days
                if d.month == int(month)
            ],
        }
    if year:
        months = [date(int(year), m, 1) for m in range(1, 13)]
        return {
            "show": True,
            "back": {"link": link({}), "title": _("All dates")},
            "choices": [
                {
                    "link": link({f"{field}__year": year, f"{field}__month": m.month}),
                    "title": capfirst(formats.date_format(m, "YEAR_MONTH_FORMAT")),
                }
                for m in months
                if date(first.year, first.month, 1) <= m <= date(last.year, last.month, 1)
            ],
        }
    return {
        "show": True,
        "back": None,
        "choices": [
            {"link": link({f"{field}__year": y}), "title": str(y)}
            for y in range(first.year, last.year + 1)
        ],
    }


def _span(first: date, last: date, step: Any, start: date) -> list[date]:
    """Dates from `start` (not before `first`) through `last`."""
    current, found = max(start, first), list[date]()
    while current <= last and len(found) < 31:
        found.append(current)
        current = step(current)
    return found
