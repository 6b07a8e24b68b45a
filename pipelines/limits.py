"""Flow limits as plain values and pure decisions (docs/FLOW-CONTROL.md, "Limits").

A *concurrency limit* caps how many runs of a pipeline (or of a queue) are running at once,
counted over every worker; a *rate limit* caps how many claims (each claim starts the step
a run is at) a pipeline, or a named limit shared by several pipelines, gets in any window
of its period. The store (runs/store/) reads the counts and the recent starts under a lock
that serialises the claimers of limited work; this module decides, without a database,
how many of which runs may be claimed, and when a rate limit next admits one.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orbit.core.conf import LIMIT_NAME, Rate, parse_rate
from orbit.core.exceptions import InvalidLimit

#: The largest max_concurrency accepted: more than any deployment runs at once.
MAX_CONCURRENCY = 100_000
CONCURRENCY_RULE = "max_concurrency must be a whole number from 1 to {most}, or null for no limit"
#: The rate window key of a pipeline's own inline rate (`rate_limit="20/minute"`).
INLINE_PREFIX = "pipeline:"


def check_max_concurrency(value: Any) -> int | None:
    """`value` as a concurrency limit (None: no limit); InvalidLimit names the rule."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONCURRENCY:
        raise InvalidLimit(
            CONCURRENCY_RULE.format(most=f"{MAX_CONCURRENCY:,}"), field="max_concurrency"
        )
    return value


def check_rate_limit(value: Any) -> str:
    """A pipeline's `rate_limit`: '' (none), a named limit ('veryfi', configured in
    ORBIT_RATE_LIMITS) or an inline rate ('20/minute', '5/2s'); InvalidLimit otherwise."""
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise InvalidLimit(f"rate_limit must be text, not {value!r}", field="rate_limit")
    if "/" in value:
        try:
            parse_rate("rate_limit", value)
        except Exception as exc:  # ImproperlyConfigured: its message names the format
            raise InvalidLimit(str(exc), field="rate_limit") from None
        return value.strip()
    if not LIMIT_NAME.fullmatch(value):
        raise InvalidLimit(
            f"rate_limit {value!r} is neither a rate such as '20/minute' nor the name of a "
            "limit in ORBIT_RATE_LIMITS (1-64 letters, digits, '-', '_' or '.')",
            field="rate_limit",
        )
    return value


@dataclass(frozen=True)
class RateRule:
    """Where a pipeline's claims are counted (`key`, shared by every pipeline naming the
    same limit) and how many its window admits (None: a named limit nobody configured)."""

    key: str
    rate: Rate | None


def rate_rule(pipeline: str, spec: str, named: Mapping[str, Rate | None]) -> RateRule | None:
    """The rule a pipeline row's `rate_limit` stands for (None: it has none, or it names
    a limit configured "off")."""
    if not spec:
        return None
    if "/" in spec:
        return RateRule(INLINE_PREFIX + pipeline, parse_rate("rate_limit", spec))
    if spec in named and named[spec] is None:
        return None
    return RateRule(spec, named.get(spec))


# -- decisions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Admission:
    """What a rate window allows now: `granted` claims, the starts to keep (the window
    after them), and when the next claim would be admitted (None: at once)."""

    granted: int
    starts: tuple[float, ...]
    next_at: float | None


def admit(starts: Iterable[float], now: float, rate: Rate, wanted: int) -> Admission:
    """Admit a claim at `now` (seconds, the database clock) when the rate allows one: the
    claims are spaced, at most one every `rate.seconds / rate.limit` (20/minute: one every
    3 s), and no window of `rate.seconds` ever holds more than `rate.limit` of them (a
    sliding window over the recorded starts).

    Spaced, not in bursts, as Celery's `rate_limit` spreads tasks: a burst of twenty
    claims at the top of a minute meets its steps starting a little late (a slot's child
    process, a busy worker), and the next minute's burst starting on time, so the service
    the limit protects would see more than twenty calls in some minute. Spaced claims keep
    the steps' own start times within the limit as long as a step starts within one gap of
    its claim. `wanted` is how many the caller could take: at most one is granted."""
    window = sorted(s for s in starts if s > now - rate.seconds)
    allowed_at = _next_allowed(window, rate)
    granted = 1 if wanted > 0 and (allowed_at is None or now >= allowed_at - _EPSILON) else 0
    kept = tuple((window + [now] * granted)[-rate.limit :])
    next_at = _next_allowed(list(kept), rate)
    return Admission(granted, kept, next_at if next_at is not None and next_at > now else None)


#: Clock slack when a worker wakes exactly at the admitted moment (float seconds).
_EPSILON = 1e-6


def _next_allowed(window: list[float], rate: Rate) -> float | None:
    """When the next claim may be admitted after the starts in `window` (oldest first):
    one gap after the last, and not before the oldest that would make one too many
    leaves the window (None: no start recorded, at once)."""
    if not window:
        return None
    at = window[-1] + rate.seconds / rate.limit
    if len(window) >= rate.limit:
        at = max(at, window[-rate.limit] + rate.seconds)
    return at


def room(limit: int | None, running: int) -> int | None:
    """Claims a concurrency limit leaves (None: unlimited)."""
    return None if limit is None else max(0, limit - running)


@dataclass(frozen=True)
class Candidate:
    """A due pending run that limited claiming may take, with every limit it counts
    against (("pipeline", id), ("queue", name), ("rate", key)...)."""

    id: Any
    buckets: tuple[Hashable, ...]


def choose(
    candidates: Sequence[Candidate], *, limit: int, rooms: Mapping[Hashable, int]
) -> list[Any]:
    """The ids to claim, in the candidates' order (claim order: priority, then the longest
    due): each taken while every limit it counts against has room left (a bucket with no
    room given is unlimited), at most `limit` in all. A run whose limit is full does not
    hold back a lower one under other limits (no head-of-line blocking)."""
    left = dict(rooms)
    chosen: list[Any] = []
    for candidate in candidates:
        if len(chosen) >= limit:
            break
        if any(left.get(b, 1) <= 0 for b in candidate.buckets):
            continue
        chosen.append(candidate.id)
        for bucket in candidate.buckets:
            if bucket in left:
                left[bucket] -= 1
    return chosen


@dataclass(frozen=True)
class LimitedPipeline:
    """An enabled pipeline with a flow limit, as a claim under limits reads it."""

    id: int
    name: str
    max_concurrency: int | None
    rate_limit: str
    #: How many of its runs are running now, on every worker.
    running: int


@dataclass(frozen=True)
class Rooms:
    """What the limits leave for one claim: per bucket (("pipeline", id), ("queue",
    name), ("rate", key)) how many runs may be claimed, each pipeline's rate rule, the
    named limits no one configured (their runs wait: (key, pipeline) to warn about), and
    the seconds until a full rate window admits again (None: none is full)."""

    rooms: Mapping[Hashable, int]
    rules: Mapping[int, RateRule | None]
    unconfigured: tuple[tuple[str, str], ...]
    retry_after: float | None

    def buckets(self, pipeline_id: int, queue: str) -> tuple[Hashable, ...]:
        """Every limit a run of this pipeline on this queue counts against."""
        rule = self.rules.get(pipeline_id)
        found: list[Hashable] = [("pipeline", pipeline_id), ("queue", queue)]
        if rule is not None:
            found.append(("rate", rule.key))
        return tuple(found)

    def bound(self, buckets: Iterable[Hashable], limit: int) -> int:
        """How many due runs under these limits are worth looking at (a bucket with no
        room given is unlimited)."""
        return min([limit, *(self.rooms[b] for b in buckets if b in self.rooms)])


def rooms(
    pipelines: Sequence[LimitedPipeline],
    queues: Mapping[str, tuple[int, int]],
    windows: Mapping[str, Sequence[float]],
    now: float,
    named: Mapping[str, Rate | None],
    wanted: int,
) -> Rooms:
    """The rooms a claim of up to `wanted` runs has: under each pipeline's concurrency
    limit, each limited queue's (`queues`: name -> (limit, running)), and each rate
    window (`windows`: key -> admitted starts, at `now` by the database clock)."""
    rules = {p.id: rate_rule(p.name, p.rate_limit, named) for p in pipelines}
    found: dict[Hashable, int] = {}
    unconfigured: list[tuple[str, str]] = []
    for p in pipelines:
        left = room(p.max_concurrency, p.running)
        if left is not None:
            found[("pipeline", p.id)] = left
        rule = rules[p.id]
        if rule is None or ("rate", rule.key) in found:
            continue
        if rule.rate is None:
            unconfigured.append((rule.key, p.name))
            found[("rate", rule.key)] = 0
            continue
        found[("rate", rule.key)] = admit(windows.get(rule.key, []), now, rule.rate, wanted).granted
    for queue, (most, running) in queues.items():
        found[("queue", queue)] = max(0, most - running)
    waiting = windows_after(rules.values(), windows, now, {}).retry_after
    return Rooms(found, rules, tuple(unconfigured), waiting)


@dataclass(frozen=True)
class WindowsAfter:
    """The rate windows after a claim: the starts to keep for each key that admitted
    any, and the seconds until a full window admits again (None: none is full)."""

    windows: Mapping[str, tuple[float, ...]]
    retry_after: float | None


def windows_after(
    rules: Iterable[RateRule | None],
    windows: Mapping[str, Sequence[float]],
    now: float,
    started: Mapping[str, int],
) -> WindowsAfter:
    """Each configured rate window once `started[key]` claims were admitted at `now`
    (none: as it stands), and how long until the first full one admits again: what a
    claim under limits records and tells its worker to wait."""
    kept: dict[str, tuple[float, ...]] = {}
    waits: list[float] = []
    for rule in {r.key: r for r in rules if r is not None and r.rate is not None}.values():
        assert rule.rate is not None
        count = started.get(rule.key, 0)
        admitted = admit(windows.get(rule.key, []), now, rule.rate, count)
        if count:
            kept[rule.key] = admitted.starts
        if admitted.next_at is not None:
            waits.append(max(0.0, admitted.next_at - now))
    return WindowsAfter(kept, min(waits, default=None))
