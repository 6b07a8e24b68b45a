from __future__ import annotations

from django.db import models


class Window(models.Model):
    """How many requests one key (an address, a user, a token) made in its current window.

    One row per key, updated in place by a single upsert (`orbit/web/ratelimit/limiter.py`), so
    concurrent requests in any number of processes count exactly.
    """

    key = models.CharField(max_length=200, primary_key=True)
    started = models.BigIntegerField(help_text="Start of the current window, Unix seconds")
    count = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "orbit_ratelimit_window"
        indexes = [models.Index(fields=["started"], name="ratelimit_window_started")]

    def __str__(self) -> str:
        return f"{self.key}: {self.count} since {self.started}"
