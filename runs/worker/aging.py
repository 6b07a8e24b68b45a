"""Priority aging: when a worker probes for runs that have waited too long.

A claim takes the highest priority first (run_claimable_idx yields runs in that order, so
the claim stops at its LIMIT), so under a steady stream of higher-priority work a
low-priority run could wait for ever. Ordering the claim by an age-adjusted priority
would cost the index order and sort every due run on each claim. Instead, at most once per
PROBE_FRACTION of ORBIT_PRIORITY_AGING_SECONDS, a worker with free slots first claims the
runs due for longer than ORBIT_PRIORITY_AGING_SECONDS, the longest waiting first, whatever
their priority, then fills its remaining slots as usual. The bound (docs/FLOW-CONTROL.md):
a due run on a queue some worker serves is claimed within aging + aging * PROBE_FRACTION
of becoming due, plus the time for a slot of such a worker to free, unless older aged runs
take those slots first. The probe is one extra statement per interval, never per claim.
"""

from __future__ import annotations

#: A worker probes at most once per this fraction of the aging threshold.
PROBE_FRACTION = 0.1
#: However small the threshold, no more often than this (seconds).
MIN_PROBE_INTERVAL = 0.05


def probe_interval(aging_seconds: float) -> float | None:
    """Seconds between a worker's aging probes; None when aging is off (0)."""
    if aging_seconds <= 0:
        return None
    return max(aging_seconds * PROBE_FRACTION, MIN_PROBE_INTERVAL)


def probe_due(last_probe: float, now: float, aging_seconds: float) -> bool:
    """Whether a worker whose last probe (or start) was at `last_probe` probes at `now`."""
    interval = probe_interval(aging_seconds)
    return interval is not None and now - last_probe >= interval
