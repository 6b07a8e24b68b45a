"""When a worker's claim also takes runs under flow limits (docs/FLOW-CONTROL.md, "Pickup").

A claim under limits costs a transaction of several statements under the limits' lock
(runs/store/portable.py `_claim_limited`), and every worker of every deployment has a
limit to reckon with (the document pipeline's Veryfi rate). So a worker makes one only
when it may find something: at once after a limited run of its own ends or a recovery
(a slot of a limit is free), 5 ms after an announcement that was not plain and no sooner
than 50 ms after its last one, when a full rate window admits again, and otherwise once a
poll interval (other workers' limited runs ending). It never waits for the limits' lock:
while another worker holds it (claiming what the limits admit), it makes the plain claim
alone and tries again 20 ms later. The plain claim, one statement, goes on as it would
without limits, and it alone answers a plain announcement (a run no limit holds): when the
claim under limits that a poll interval brings falls due just then, it follows on the next
turn, owed (once: an owed one is not put off again), so the announced run does not wait
for the limits' lock and counts. With no limit anywhere nothing is owed, whatever was
announced: the loop never goes on claiming turn after turn for a claim it will not make.
The decisions are here, free of the database but for the one question asked through
`has_limits` (whether any pipeline has a limit), so they are tested without one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

#: How long a worker trusts its answer to "does any pipeline have a flow limit?": a limit
#: an operator sets on an unlimited pipeline holds its runs at once (the plain claim leaves
#: them alone) and they are claimed within this long.
LIMITS_REFRESH_SECONDS = 5.0
#: The least time between claims under limits that announcements bring forward: a stream
#: of enqueues (one announcement each) must not cost every claim the limits' lock.
ANNOUNCED_LIMITED_GAP_SECONDS = 0.05
#: How long after an announcement the claim under limits comes: the claim at once is the
#: plain one (one statement), so a run no limit holds is picked up without paying for the
#: limits' lock and counts.
ANNOUNCED_LIMITED_LAG_SECONDS = 0.005
#: How soon to try again when another worker held the limits' lock: it is claiming what
#: the limits admit right now, so there may be nothing left; but a slot of ours may be
#: owed a run it could not see yet.
LIMITS_BUSY_RETRY_SECONDS = 0.02


@dataclass
class LimitedPacing:
    """One worker's pacing of its claims under limits; times are monotonic seconds."""

    poll_interval: float
    #: Whether a queue this worker serves has a limit (ORBIT_QUEUE_LIMITS): then every
    #: claim may find limited runs, whatever the pipelines say.
    queue_limited: bool
    #: Asked at most every LIMITS_REFRESH_SECONDS: does any pipeline have a limit?
    has_limits: Callable[[], bool]
    #: When a claim under limits is next worth its statements.
    at: float = 0.0
    #: When the last one was made.
    tried: float = 0.0
    #: Whether a claim under limits is owed at `at`, even on an idle worker: an
    #: announcement asked for one, or the last one found the limits' lock taken.
    owed: bool = False
    #: Seconds until a full rate window admits again, as the last claim learnt.
    rate_wait: float | None = None
    #: Whether the next claim answers a plain announcement of a run due now.
    answering: bool = False
    _seen: tuple[float, bool] | None = None

    def wanted(self, now: float) -> bool:
        """Whether a claim at `now` also takes runs under limits."""
        answering, self.answering = self.answering, False
        if now < self.at:
            return False
        if not self._limits_exist(now):
            self.owed = False  # nothing to claim under limits: nothing is owed
            return False
        if answering and not self.owed:
            # The claim that answers an announcement is the plain one; the claim under
            # limits that fell due meanwhile comes on the next turn, owed.
            self.owed = True
            return False
        return True

    def _limits_exist(self, now: float) -> bool:
        if self.queue_limited:
            return True
        if self._seen is None or now - self._seen[0] > LIMITS_REFRESH_SECONDS:
            self._seen = (now, self.has_limits())
        return self._seen[1]

    def claimed(
        self,
        now: float,
        *,
        limited: bool,
        filled: bool,
        retry_after: float | None,
        busy: bool = False,
    ) -> None:
        """A claim was made at `now` (under limits or not); `filled`: runs under limits
        filled every free slot, so more may be claimable at once; `busy`: the claim under
        limits was skipped, another worker holding the limits' lock."""
        if busy:  # what the windows admit is learnt on the retry, not guessed from before
            self.tried = now
            self.at = now + LIMITS_BUSY_RETRY_SECONDS
            self.owed = True
            self.rate_wait = None
            return
        self.rate_wait = retry_after
        if not limited:
            return
        self.tried = now
        self.owed = False
        later = min(self.poll_interval, retry_after or self.poll_interval)
        self.at = now + (0.0 if filled else later)

    def freed(self) -> None:
        """A slot a limit counted is free (a limited run of ours ended, or a recovery):
        the next claim is under limits, owed, so no announcement defers it."""
        self.at = 0.0
        self.owed = True

    def heard(self, now: float, delay: float) -> None:
        """A run (not announced as plain) is due in `delay` seconds: it may be under a
        limit, so a claim under limits due already is made at once."""
        soonest = self.tried + ANNOUNCED_LIMITED_GAP_SECONDS
        self.at = min(self.at, max(now + max(delay, 0.0) + ANNOUNCED_LIMITED_LAG_SECONDS, soonest))
        self.owed = True

    def heard_plain(self, delay: float) -> None:
        """A run is due in `delay` seconds: if now, the claim that answers it is plain."""
        if delay <= 0:
            self.answering = True

    def claim_in(self, now: float) -> float | None:
        """Seconds until the worker should claim again for limits' sake (a full rate
        window admitting, a claim an announcement owes); None: no such reason."""
        waits = [self.rate_wait, self.at - now if self.owed else None]
        found = [max(w, 0.0) for w in waits if w is not None]
        return min(found) if found else None
