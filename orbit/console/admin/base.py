"""What every admin page allows: filters it lists, and searches within a rate limit.

Django accepts any lookup on a model's own fields in a changelist's query string, JSON key
paths included: `?metadata__api_key__startswith=sk-l`, one character at a time, reads a
secret the pages mask. Here a lookup passes only when it is one of the admin's own filters
(`list_filter`, the date hierarchy, `extra_lookups`, and the lookups a raw-id popup sends
for a ForeignKey's `limit_choices_to`); anything else is Django's
DisallowedModelAdminLookup, a 400. Searches count against ORBIT_ADMIN_SEARCH_RATE_LIMIT
(each user, and each address), and search fields never name a value redaction masks
(tests/web/test_access_matrix.py holds every admin to both). A date filter or drill-down
that no date-time in UTC can hold (`created_at__gte=9999-12-31 23:59:59-05:00`,
`created_at__year=9999`) is refused as Django refuses a bad lookup: a redirect to `?e=1`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from django.contrib import admin
from django.contrib.admin import FieldListFilter, SimpleListFilter
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import get_fields_from_path
from django.contrib.admin.views.main import SEARCH_VAR, ChangeList
from django.contrib.admin.widgets import url_params_from_lookup_dict
from django.core.exceptions import ValidationError
from django.db import models
from django.http import HttpRequest, HttpResponse, QueryDict
from django.template.response import TemplateResponse

from orbit.core.clients import client_address
from orbit.core.clock import in_utc
from orbit.core.conf import orbit_settings
from orbit.core.text import storable
from orbit.web.ratelimit import limiter

#: The field a confirmation page sends with the action it confirms.
CONFIRMED = "confirmed"
#: How many of the selected rows a confirmation page names.
CONFIRM_SHOWN = 20
#: What each kind of field filter puts in the query string (django.contrib.admin.filters).
_DATE_PARAMS = ("gte", "lt", "isnull")
#: Those of them that take a date-time.
_MOMENT_PARAMS = ("gte", "lt")
_VALUE_PARAMS = ("exact", "isnull")


class OrbitModelAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """The base of every Orbit admin (and of the users and groups admins Orbit re-registers)."""

    #: Lookups an admin needs beyond its list filters and date hierarchy.
    extra_lookups: tuple[str, ...] = ()

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        if lookup in self.listed_lookups(request):
            return True
        return _is_limit_choices_lookup(self.model, lookup, value)

    def listed_lookups(self, request: HttpRequest | None) -> frozenset[str]:
        """The query-string lookups this admin's filters and date hierarchy send."""
        names = set(self.extra_lookups)
        if self.date_hierarchy:
            names.update(f"{self.date_hierarchy}__{part}" for part in ("year", "month", "day"))
        filters = self.get_list_filter(request) if request is not None else self.list_filter
        for item in filters:
            if isinstance(item, type) and issubclass(item, SimpleListFilter):
                names.add(str(item.parameter_name))
            elif isinstance(item, list | tuple) and isinstance(item[0], str):
                names.update(_field_filter_params(self.model, item[0], item[1]))
            elif isinstance(item, str):
                names.update(_field_filter_params(self.model, item, None))
        return frozenset(names)

    def ask_first(
        self, request: HttpRequest, queryset: models.QuerySet[Any], question: str
    ) -> HttpResponse | None:
        """A page asking `question` about the selected rows, until it is answered yes.

        Destructive actions (cancel, retry, forget) call this first and return its page
        when there is one: nothing changes on the first POST, only on the confirming one,
        which sends the same action and selection again with `confirmed=yes`."""
        if request.POST.get(CONFIRMED) == "yes":
            return None
        shown = list(queryset[:CONFIRM_SHOWN])
        context = {
            **self.admin_site.each_context(request),
            "title": "Are you sure?",
            "question": question,
            "objects": shown,
            "more": queryset[CONFIRM_SHOWN : CONFIRM_SHOWN + 1].exists(),
            "action": request.POST.get("action", ""),
            "selected": request.POST.getlist(ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
            "opts": self.model._meta,
            "confirmed_name": CONFIRMED,
        }
        return TemplateResponse(request, "admin/orbit/confirm_action.html", context)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not all(storable(v) for values in request.GET.lists() for v in values[1]):
            return _text("Searches and filters cannot hold NUL characters.", 400)
        if request.GET.get(SEARCH_VAR, "").strip():
            refusal = _search_refusal(request)
            if refusal is not None:
                return refusal
        return super().changelist_view(request, extra_context)

    def get_changelist_instance(self, request: HttpRequest) -> ChangeList:
        """Django's list, or IncorrectLookupParameters (Django's redirect to `?e=1`) for a
        date the databases cannot compare: SQLite converts each to UTC in Python, where
        `9999-12-31 23:59:59-05:00` overflowed into a 500, and Django's own drill-down
        arithmetic fails past 9999-12-31. Refused on PostgreSQL too, so both answer alike."""
        lookups = self.listed_lookups(request)
        if not _in_utc_range(_filter_moments(self.model, request.GET, lookups)):
            raise IncorrectLookupParameters("A date filter is out of range")
        if self.date_hierarchy and not _in_utc_range(
            _drill_down_bounds(request.GET, str(self.date_hierarchy))
        ):
            raise IncorrectLookupParameters("A date drill-down is out of range")
        return super().get_changelist_instance(request)


class ReadOnlyAdmin(OrbitModelAdmin):
    """Rows recorded by what they record (runs, attempts, audit events, deliveries): viewed,
    never added, edited or deleted by hand; actions are gated by their own permissions."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _field_filter_params(model: type[models.Model], path: str, filter_class: Any) -> set[str]:
    field = get_fields_from_path(model, path)[-1]
    if field.is_relation:
        target = field.target_field.name  # type: ignore[attr-defined]
        params = {f"{path}__{target}__exact", f"{path}__isnull"}
    elif isinstance(field, models.DateField):
        params = {f"{path}__{p}" for p in _DATE_PARAMS}
    else:
        # AllValuesFieldListFilter sends the bare path; the choices filters `__exact`
        params = {path} | {f"{path}__{p}" for p in _VALUE_PARAMS}
    if filter_class is not None and filter_class is not FieldListFilter.create:
        params.add(f"{path}__isempty")  # EmptyFieldListFilter
    return params


def _filter_moments(
    model: type[models.Model], params: QueryDict, lookups: frozenset[str]
) -> Iterator[datetime]:
    """The date-times the query string's date filters (`created_at__gte=...`) compare with;
    a value that is not one is left to Django, which refuses it."""
    for name, values in params.lists():
        path, _, lookup = name.rpartition("__")
        if name not in lookups or lookup not in _MOMENT_PARAMS:
            continue
        field = get_fields_from_path(model, path)[-1]
        if not isinstance(field, models.DateTimeField):
            continue
        for value in values:
            try:
                moment = field.to_python(value)
            except ValidationError:
                continue
            if moment is not None:
                yield moment


def _drill_down_bounds(params: QueryDict, field: str) -> Iterator[datetime]:
    """The first moment the date drill-down shows and the one after its last, computed as
    Django's ChangeList.get_filters computes them; none without a year."""
    year = params.get(f"{field}__year")
    if year is None:
        return
    month, day = params.get(f"{field}__month"), params.get(f"{field}__day")
    start = datetime(int(year), int(month or 1), int(day or 1))
    yield start
    if day:
        yield start + timedelta(days=1)
    elif month:
        yield (start + timedelta(days=32)).replace(day=1)
    else:
        yield start.replace(year=start.year + 1)


def _in_utc_range(moments: Iterator[datetime]) -> bool:
    """Whether each moment (naive: in TIME_ZONE) and the arithmetic that found it stay
    within the years 1 to 9999 in UTC."""
    try:
        return all(in_utc(moment) is not None for moment in moments)
    except (OverflowError, ValueError):  # the drill-down's own arithmetic left the calendar
        return False


def _is_limit_choices_lookup(model: type[models.Model], lookup: str, value: str) -> bool:
    """What a raw-id popup sends for a ForeignKey's `limit_choices_to` (as Django allows)."""
    for fk_lookup in model._meta.related_fkey_lookups:
        if callable(fk_lookup):
            fk_lookup = fk_lookup()
        if (lookup, value) in url_params_from_lookup_dict(fk_lookup).items():
            return True
    return False


def _search_refusal(request: HttpRequest) -> HttpResponse | None:
    """429 past ORBIT_ADMIN_SEARCH_RATE_LIMIT, for this user or this address."""
    rate = orbit_settings.admin_search_rate_limit
    if rate is None:
        return None
    keys = [f"admin-search:addr:{client_address(request)}"]
    if request.user.is_authenticated:
        keys.append(f"admin-search:user:{request.user.pk}")
    verdict = limiter.hit(keys, rate)
    if verdict.allowed:
        return None
    wait = f"{verdict.retry_after} second{'s' if verdict.retry_after != 1 else ''}"
    response = _text(
        f"Too many admin searches; try again in {wait} (ORBIT_ADMIN_SEARCH_RATE_LIMIT).", 429
    )
    response["Retry-After"] = str(verdict.retry_after)
    return response


def _text(body: str, status: int) -> HttpResponse:
    return HttpResponse(body, status=status, content_type="text/plain; charset=utf-8")
