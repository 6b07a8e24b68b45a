"""The flow limits' pure decisions (pipelines/limits.py) and their settings' parsing."""

from __future__ import annotations

import itertools

import pytest
from django.core.exceptions import ImproperlyConfigured

from orbit.core.conf import Rate, orbit_settings, parse_named
from orbit.core.exceptions import DefinitionError, InvalidLimit
from pipelines import Pipeline, step
from pipelines.limits import (
    Candidate,
    LimitedPipeline,
    RateRule,
    admit,
    check_max_concurrency,
    check_rate_limit,
    choose,
    rate_rule,
    room,
    rooms,
    windows_after,
)
from tests import steps

FIVE_PER_2S = Rate(limit=5, seconds=2)


@pytest.mark.parametrize(
    ("starts", "now", "wanted", "granted", "next_at"),
    [
        ((), 100.0, 3, 1, 100.4),  # an empty window: one now, the next one gap (2 s / 5) on
        ((), 100.0, 9, 1, 100.4),  # never a burst, however many are wanted
        ((99.0, 99.5), 100.0, 9, 1, 100.4),  # the last was a gap ago: one more
        ((99.8,), 100.0, 1, 0, 100.2),  # the last was 0.2 s ago: wait out the gap
        ((97.0, 97.5, 98.0, 98.5, 99.0), 100.0, 1, 1, 100.4),  # old starts have left
        ((98.5, 99.0, 99.2, 99.4, 99.6), 100.0, 1, 0, 100.5),  # full: wait for 98.5 + 2
        ((98.0, 99.0, 99.1, 99.2, 99.3), 100.0, 1, 1, 101.0),  # 98.0 leaves exactly at 100.0
        ((), 100.0, 0, 0, None),  # nothing wanted, nothing recorded
    ],
)
def test_admit_spaces_claims_and_keeps_every_window_within_the_limit(
    starts, now, wanted, granted, next_at
):
    admitted = admit(starts, now, FIVE_PER_2S, wanted)
    assert admitted.granted == granted
    assert admitted.next_at == pytest.approx(next_at) if next_at else admitted.next_at is None
    assert len(admitted.starts) <= 5
    assert admitted.starts.count(now) == granted


def test_admit_over_a_long_stream_never_puts_more_than_the_limit_in_any_window():
    starts: tuple[float, ...] = ()
    admitted_at = []
    now = 0.0
    while now < 20:
        decision = admit(starts, now, FIVE_PER_2S, 3)
        admitted_at += [now] * decision.granted
        starts = decision.starts
        now = round(now + 0.1, 1)
    for t in admitted_at:
        assert sum(1 for s in admitted_at if t <= s < t + 2) <= 5
    assert len(admitted_at) == 50  # and it admits the full rate: 5 per 2 s over 20 s
    gaps = [b - a for a, b in itertools.pairwise(admitted_at)]
    assert min(gaps) == pytest.approx(0.4)  # spaced evenly, never in a burst


@pytest.mark.parametrize(
    ("rooms", "expected"),
    [
        ({}, ["a1", "a2", "b1", "c1"]),  # no limits: the order, up to the claim's limit
        ({("pipeline", 1): 1}, ["a1", "b1", "c1"]),  # a full pipeline is skipped, not blocking
        ({("queue", "q"): 1}, ["a1", "b1", "c1"]),  # the queue's one slot: a1
        ({("rate", "r"): 0}, ["a1", "a2"]),  # b and c share a full rate limit
        ({("pipeline", 1): 0, ("rate", "r"): 1}, ["b1"]),
    ],
)
def test_choose_takes_runs_in_order_while_their_limits_have_room(rooms, expected):
    candidates = [
        Candidate("a1", (("pipeline", 1), ("queue", "q"))),
        Candidate("a2", (("pipeline", 1), ("queue", "q"))),
        Candidate("b1", (("pipeline", 2), ("rate", "r"))),
        Candidate("c1", (("pipeline", 3), ("rate", "r"))),
    ]
    assert choose(candidates, limit=4, rooms=rooms) == expected


def test_choose_stops_at_the_claims_limit():
    candidates = [Candidate(n, (("pipeline", 1),)) for n in range(10)]
    assert choose(candidates, limit=3, rooms={("pipeline", 1): 5}) == [0, 1, 2]


def test_room_is_what_a_limit_leaves():
    assert (room(None, 7), room(3, 1), room(3, 5)) == (None, 2, 0)


def test_rooms_are_what_every_limit_leaves_and_when_a_full_window_admits_again():
    pipelines = [
        LimitedPipeline(1, "capped", 3, "", running=1),
        LimitedPipeline(2, "rated", None, "5/2s", running=0),
        LimitedPipeline(3, "veryfi-a", 2, "veryfi", running=2),
        LimitedPipeline(4, "veryfi-b", None, "veryfi", running=0),
        LimitedPipeline(5, "nobody", None, "unset", running=0),
    ]
    found = rooms(
        pipelines,
        {"documents": (4, 1), "full": (2, 5)},
        {"pipeline:rated": [99.8], "veryfi": []},
        100.0,
        {"veryfi": FIVE_PER_2S},
        wanted=8,
    )
    assert found.rooms == {
        ("pipeline", 1): 2,
        ("rate", "pipeline:rated"): 0,  # its last start was 0.2 s ago: one gap is 0.4 s
        ("pipeline", 3): 0,
        ("rate", "veryfi"): 1,  # one window, shared by both pipelines naming it
        ("rate", "unset"): 0,  # named, never configured: its runs wait
        ("queue", "documents"): 3,
        ("queue", "full"): 0,
    }
    assert found.unconfigured == (("unset", "nobody"),)
    assert found.retry_after == pytest.approx(0.2)  # when the inline window admits again
    assert found.buckets(4, "documents") == (
        ("pipeline", 4),
        ("queue", "documents"),
        ("rate", "veryfi"),
    )
    assert found.bound(found.buckets(1, ""), 8) == 2
    assert found.bound(found.buckets(4, "documents"), 8) == 1
    assert found.bound(found.buckets(3, "documents"), 8) == 0


def test_rooms_with_no_full_window_name_no_wait():
    found = rooms([LimitedPipeline(1, "p", None, "5/2s", 0)], {}, {}, 100.0, {}, wanted=1)
    assert found.rooms == {("rate", "pipeline:p"): 1} and found.retry_after is None


def test_windows_after_a_claim_keep_its_starts_and_say_when_the_next_is_admitted():
    rated, veryfi = RateRule("pipeline:rated", FIVE_PER_2S), RateRule("veryfi", FIVE_PER_2S)
    windows = {"pipeline:rated": [98.0, 99.0], "veryfi": [99.6]}
    after = windows_after([rated, veryfi, veryfi, None], windows, 100.0, {"veryfi": 1})
    # Only the window that admitted a start is written; the old start out of it is gone.
    assert after.windows == {"veryfi": (99.6, 100.0)}
    # rated: one gap (0.4 s) after 99.0 has passed; veryfi: one gap after its new start.
    assert after.retry_after == pytest.approx(0.4)


def test_windows_after_no_claim_change_nothing_and_name_the_first_wait():
    rated = RateRule("pipeline:rated", FIVE_PER_2S)
    full = {"pipeline:rated": [98.5, 98.9, 99.2, 99.5, 99.9]}
    after = windows_after([rated, RateRule("unset", None)], full, 100.0, {})
    assert after.windows == {}
    assert after.retry_after == pytest.approx(0.5)  # when 98.5 leaves the 2 s window
    assert windows_after([rated], {}, 100.0, {}).retry_after is None


@pytest.mark.parametrize("value", [0, -1, 1.5, "3", True, 100_001])
def test_max_concurrency_must_be_a_positive_whole_number(value):
    with pytest.raises(InvalidLimit) as error:
        check_max_concurrency(value)
    assert str(error.value) == (
        "max_concurrency must be a whole number from 1 to 100,000, or null for no limit"
    )


@pytest.mark.parametrize(
    ("spec", "rule"),
    [
        ("", None),
        ("20/minute", RateRule("pipeline:docs", Rate(20, 60))),  # inline: the pipeline's own
        ("5/2s", RateRule("pipeline:docs", Rate(5, 2))),
        ("veryfi", RateRule("veryfi", Rate(20, 60))),  # named: shared by name
        ("unknown", RateRule("unknown", None)),  # named, not configured: holds its runs
    ],
)
def test_a_rate_limit_is_inline_or_named(spec, rule):
    assert rate_rule("docs", check_rate_limit(spec), {"veryfi": Rate(20, 60)}) == rule


@pytest.mark.parametrize("spec", ["20/fortnight", "0/minute", "two words", "-x", 20])
def test_a_bad_rate_limit_is_refused(spec):
    with pytest.raises(InvalidLimit):
        check_rate_limit(spec)


def test_a_definition_carries_its_limits():
    defined = Pipeline(
        "t-lim",
        steps=[step("noop", steps.noop)],
        max_concurrency=3,
        rate_limit="veryfi",
        register=False,
    )
    assert (defined.max_concurrency, defined.rate_limit) == (3, "veryfi")


def test_a_definitions_bad_limit_fails_at_import_naming_the_pipeline():
    with pytest.raises(DefinitionError) as error:
        Pipeline("t-bad", steps=[step("noop", steps.noop)], max_concurrency=0, register=False)
    assert str(error.value) == (
        "Pipeline 't-bad': max_concurrency must be a whole number from 1 to 100,000, "
        "or null for no limit"
    )


def test_queue_limits_and_named_rates_come_from_settings(settings):
    settings.ORBIT_QUEUE_LIMITS = "documents=4, mail=10"
    settings.ORBIT_RATE_LIMITS = "maps=5/2s"
    settings.ORBIT_VERYFI_RATE_LIMIT = "30/minute"
    assert orbit_settings.queue_limits == {"documents": 4, "mail": 10}
    assert orbit_settings.rate_limits == {"maps": Rate(5, 2), "veryfi": Rate(30, 60)}
    settings.ORBIT_VERYFI_RATE_LIMIT = "off"
    assert orbit_settings.rate_limits["veryfi"] is None
    assert rate_rule("docs", "veryfi", orbit_settings.rate_limits) is None  # off: no limit


@pytest.mark.parametrize("text", ["documents", "documents=0", "documents=x", "=4"])
def test_a_bad_queue_limit_setting_names_the_setting(text):
    with pytest.raises(ImproperlyConfigured, match="ORBIT_QUEUE_LIMITS"):
        parse_named("ORBIT_QUEUE_LIMITS", text, lambda v: int(v) if int(v) > 0 else int("x"))


@pytest.fixture
def defined(db):
    """Define `t-lim` in code (again, to change it), unregistered at the end."""
    from pipelines.definition import registry

    def define(**limits: object) -> Pipeline:
        registry.unregister("t-lim")
        return Pipeline("t-lim", steps=[step("noop", steps.noop)], **limits)  # type: ignore[arg-type]

    yield define
    registry.unregister("t-lim")


def test_a_rows_limits_follow_its_code_until_an_operator_changes_max_concurrency(defined):
    from pipelines.lifecycle import pipeline_update
    from pipelines.models import Pipeline as Row
    from pipelines.sync import sync_pipelines

    defined(max_concurrency=2, rate_limit="5/2s")
    sync_pipelines()
    row = Row.objects.get(name="t-lim")
    assert (row.max_concurrency, row.max_concurrency_source, row.rate_limit) == (2, "code", "5/2s")
    defined(max_concurrency=5, rate_limit="veryfi")
    sync_pipelines()
    row.refresh_from_db()
    assert (row.max_concurrency, row.rate_limit) == (5, "veryfi")  # a deploy changes both
    pipeline_update(row, max_concurrency=3)
    defined(max_concurrency=9, rate_limit="")
    sync_pipelines()
    row.refresh_from_db()
    # The operator's max_concurrency wins over the code's; the rate limit is the code's.
    assert (row.max_concurrency, row.max_concurrency_source, row.rate_limit) == (3, "operator", "")
    pipeline_update(row, max_concurrency_source="code")
    row.refresh_from_db()
    assert (row.max_concurrency, row.max_concurrency_source) == (9, "code")


@pytest.mark.parametrize("value", [0, "3", 2.5])
def test_an_operators_bad_max_concurrency_changes_nothing(defined, value):
    from pipelines.lifecycle import pipeline_update
    from pipelines.models import Pipeline as Row
    from pipelines.sync import sync_pipelines

    defined(max_concurrency=2)
    sync_pipelines()
    row = Row.objects.get(name="t-lim")
    with pytest.raises(InvalidLimit):
        pipeline_update(row, max_concurrency=value)
    assert Row.objects.get(name="t-lim").max_concurrency == 2


@pytest.mark.django_db
def test_a_row_is_limited_in_python_exactly_when_the_query_says_so() -> None:
    """`Pipeline.is_limited` (how an enqueue tells a plain announcement from a limited
    one) and `PipelineQuerySet.limited()` (which runs a worker claims under the limits'
    lock) are one rule: a run announced as plain must never need the limited claim."""
    from pipelines.models import Pipeline as Row
    from tests.factories import PipelineFactory

    Row.objects.all().delete()
    rows = [
        PipelineFactory(name="t-plain"),
        PipelineFactory(name="t-capped", max_concurrency=3),
        PipelineFactory(name="t-capped-zero", max_concurrency=0),
        PipelineFactory(name="t-rated", rate_limit="veryfi"),
        PipelineFactory(name="t-both", max_concurrency=1, rate_limit="veryfi"),
    ]
    in_query = set(Row.objects.limited().values_list("name", flat=True))
    assert {row.name for row in rows if row.is_limited} == in_query
    assert in_query == {"t-capped", "t-capped-zero", "t-rated", "t-both"}
