"""One typed accessor for Orbit's `ORBIT_*` settings, so defaults live in one place."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

DEFAULTS: dict[str, Any] = {
    "PIPELINE_MODULES": [],
    "ALLOW_BROKEN_MODULES": False,  # start workers even when a pipeline module fails to import
    "POLL_INTERVAL": 1.0,
    # A due run waiting longer than this is claimed ahead of every priority by the next
    # aging probe of a worker serving its queue (docs/FLOW-CONTROL.md); 0: pure priority.
    "PRIORITY_AGING_SECONDS": 300.0,
    "LEASE_SECONDS": 30.0,
    "MAX_INTERRUPTIONS": 3,
    "DEAD_WORKER_WINDOW": 900.0,  # seconds a worker's death keeps worker health "degraded"
    "MAX_RESULT_BYTES": 1024 * 1024,
    "MAX_METADATA_BYTES": 256 * 1024,
    "DEFAULT_STEP_TIMEOUT": 300.0,
    "SWEEP_INTERVAL": None,  # None: a third of the lease
    "MAX_LOG_RECORDS": 1000,
    "SCHEDULE_TIMEZONE": None,  # None: TIME_ZONE
    "SCHEDULE_CATCHUP": "latest",
    "SCHEDULE_CATCHUP_MAX": 100,
    "SCHEDULE_GRACE": 60.0,
    "SCHEDULE_INTERVAL": 5.0,
    "REDACT_KEYS": [
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "secret",
        "token",
        "api_key",
        "apikey",
        "authorization",
        "cookie",
        "private_key",
        "signing_key",
    ],
    "API_RATE_LIMIT": "600/minute",
    "LOGIN_RATE_LIMIT": "10/minute",
    "ADMIN_SEARCH_RATE_LIMIT": "60/minute",
    "TRUSTED_PROXIES": 0,
    "MAX_JSON_DEPTH": 32,
    "CONTENT_SECURITY_POLICY": "",  # empty: DEFAULT_CONTENT_SECURITY_POLICY
    "DOCUMENTS_ROOT": "",  # empty: documents/ in the project folder (BASE_DIR)
    "MAX_UPLOAD_BYTES": 20 * 1024 * 1024,  # Veryfi's own limit
    # How long finished runs (with their steps, attempts and logs) and audit events are
    # kept: "30d", "12h", "2w"; "" or "never" keeps them for ever (runs/retention.py).
    "RETENTION_SUCCEEDED": "30d",
    "RETENTION_FAILED": "90d",
    "RETENTION_CANCELLED": "30d",
    "RETENTION_AUDIT": "365d",
    "RETENTION_INTERVAL": 60.0,  # seconds between a worker's looks for rows to prune
    "RETENTION_BATCH": 500,  # runs (or audit events) per pruning transaction
    "RETENTION_SHARE": 0.05,  # of a worker's time spent pruning while a backlog lasts
    # A direct PostgreSQL URL for the workers' LISTEN connection, when DATABASE_URL goes
    # through a transaction-pooling PgBouncer (docs/WORKER-DEPLOYMENT.md); "": DATABASE_URL.
    "LISTEN_DATABASE_URL": "",
    # Whether the store's statements are prepared once per PostgreSQL connection
    # (runs/store/prepared.py): "auto" prepares them unless the database's
    # DISABLE_SERVER_SIDE_CURSORS says a transaction-pooling PgBouncer is in front
    # (docs/WORKER-DEPLOYMENT.md); "true" or "false" decide outright.
    "PREPARED_STATEMENTS": "auto",
    # Steps a `runworker` executes at once when --concurrency is not given; "" (unset):
    # default_worker_concurrency(), sized for the host (docs/WORKER-DEPLOYMENT.md).
    "WORKER_CONCURRENCY": "",
    # Flow limits (docs/FLOW-CONTROL.md, "Limits"): the most runs running at once per queue,
    # over every worker ("documents=4,mail=10"); named rate limits that pipelines share by
    # name ("veryfi=20/minute,maps=5/2s"); the document pipeline's "veryfi" limit, unless
    # ORBIT_RATE_LIMITS names it ("off": none).
    "QUEUE_LIMITS": "",
    "RATE_LIMITS": "",
    "VERYFI_RATE_LIMIT": "20/minute",
    # Webhooks (docs/WEBHOOKS.md): seconds to wait for a receiver's answer; the first
    # retry's delay, doubled per attempt up to the cap; attempts before a delivery fails;
    # failed attempts in a row before its endpoint is disabled; private targets (the SSRF
    # guard); how long a worker's claim on a delivery lasts; how often a worker looks for
    # due deliveries; how old a process's list of enabled endpoints may grow.
    "WEBHOOK_TIMEOUT": 5.0,
    "WEBHOOK_BACKOFF_BASE": 10.0,
    "WEBHOOK_BACKOFF_CAP": 3600.0,
    "WEBHOOK_MAX_ATTEMPTS": 8,
    "WEBHOOK_DISABLE_AFTER": 10,
    "WEBHOOK_ALLOW_PRIVATE": False,
    "WEBHOOK_LEASE": 60.0,
    "WEBHOOK_POLL_INTERVAL": 1.0,
    "WEBHOOK_REFRESH": 5.0,
    # The address runs are linked from (webhook payloads): "https://orbit.example.com";
    # empty: links are paths (/dashboard/runs/<id>/).
    "BASE_URL": "",
}

SCHEDULE_CATCHUP_POLICIES = ("latest", "skip", "all")

#: psycopg's prepare_threshold for a connection whose store statements are prepared: so
#: high that nothing is prepared unless it asks to be (runs/store/prepared.py), so Django's
#: own statements are sent as they always were.
PREPARE_WHEN_ASKED = 2**31 - 1


def prepares_statements(value: str, database: dict[str, Any]) -> bool:
    """Whether ORBIT_PREPARED_STATEMENTS (`value`) has the store prepare its statements on
    the PostgreSQL `database` (a DATABASES entry). "auto": yes, unless server-side cursors
    are off, which is what a transaction-pooling PgBouncer needs and what
    docs/WORKER-DEPLOYMENT.md has such deployments set; a PgBouncer before 1.21 cannot
    route prepared statements either."""
    choice = value.strip().lower()
    if choice == "auto":
        return not database.get("DISABLE_SERVER_SIDE_CURSORS", False)
    if choice in ("true", "on", "yes", "1"):
        return True
    if choice in ("false", "off", "no", "0"):
        return False
    raise ImproperlyConfigured(
        f"ORBIT_PREPARED_STATEMENTS must be auto, true or false, not {value!r}"
    )


#: Slots per CPU, and the bounds, of a worker's default concurrency.
CONCURRENCY_PER_CPU = 4
MIN_DEFAULT_CONCURRENCY = 16
MAX_DEFAULT_CONCURRENCY = 64


def usable_cpus() -> int:
    """The CPUs this process may run on (a container's cpuset, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_worker_concurrency(cpus: int | None = None) -> int:
    """How many steps a worker runs at once unless told: 4 per CPU, at least 16, at most 64.

    Steps are mostly waiting on the network (HTTP calls to outside services), so a slot
    costs a forked child's memory, not a CPU, and holds no database connection: children
    never touch Orbit's tables, and the one connection of the worker loop claims and
    commits for every slot (a turn's results in one statement). 16 keeps a small host's
    worker busy while its steps wait; the cap bounds memory and process count on a large
    one, where more worker processes are the better way to grow."""
    cpus = usable_cpus() if cpus is None else cpus
    return max(MIN_DEFAULT_CONCURRENCY, min(MAX_DEFAULT_CONCURRENCY, CONCURRENCY_PER_CPU * cpus))


# Strict: only this origin's own files; no inline script or style, no eval, no framing.
DEFAULT_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


class OrbitSettings:
    """Reads `settings.ORBIT_<NAME>` once, then from memory until a setting changes.

    The worker reads a few settings per run (the redaction keys for its one log line,
    the log buffer's size, a step's result limit), and a read through Django's lazy
    settings object costs a Python-level attribute lookup and a string built each time.
    Django announces every change it makes to settings (`override_settings`, the test
    `settings` fixture) with `setting_changed`; `forget` drops what was read then, so an
    overridden setting applies at once (tests/core/test_conf.py)."""

    def __init__(self) -> None:
        self._read: dict[str, Any] = {}

    def _get(self, name: str) -> Any:
        try:
            return self._read[name]
        except KeyError:
            value = self._read[name] = getattr(django_settings, f"ORBIT_{name}", DEFAULTS[name])
            return value

    def forget(self, **_: Any) -> None:
        """Read every setting afresh (a `setting_changed` receiver)."""
        self._read.clear()

    @property
    def pipeline_modules(self) -> list[str]:
        return [m.strip() for m in self._get("PIPELINE_MODULES") if m.strip()]

    @property
    def allow_broken_modules(self) -> bool:
        return bool(self._get("ALLOW_BROKEN_MODULES"))

    @property
    def dead_worker_window(self) -> float:
        return float(self._get("DEAD_WORKER_WINDOW"))

    @property
    def poll_interval(self) -> float:
        return float(self._get("POLL_INTERVAL"))

    @property
    def priority_aging_seconds(self) -> float:
        return max(0.0, float(self._get("PRIORITY_AGING_SECONDS")))

    @property
    def lease_seconds(self) -> float:
        return float(self._get("LEASE_SECONDS"))

    @property
    def max_interruptions(self) -> int:
        return int(self._get("MAX_INTERRUPTIONS"))

    @property
    def max_result_bytes(self) -> int:
        return int(self._get("MAX_RESULT_BYTES"))

    @property
    def max_metadata_bytes(self) -> int:
        return int(self._get("MAX_METADATA_BYTES"))

    @property
    def default_step_timeout(self) -> float:
        return float(self._get("DEFAULT_STEP_TIMEOUT"))

    @property
    def sweep_interval(self) -> float:
        value = self._get("SWEEP_INTERVAL")
        return float(value) if value else self.lease_seconds / 3

    @property
    def max_log_records(self) -> int:
        return int(self._get("MAX_LOG_RECORDS"))

    @property
    def schedule_timezone(self) -> ZoneInfo:
        name = self._get("SCHEDULE_TIMEZONE") or django_settings.TIME_ZONE or "UTC"
        try:
            return ZoneInfo(str(name))
        except (ZoneInfoNotFoundError, ValueError):
            raise ImproperlyConfigured(
                f"ORBIT_SCHEDULE_TIMEZONE is {name!r}, which is not a time zone name "
                "such as 'UTC' or 'Europe/Berlin'"
            ) from None

    @property
    def schedule_catchup(self) -> str:
        value = str(self._get("SCHEDULE_CATCHUP")).strip().lower()
        if value not in SCHEDULE_CATCHUP_POLICIES:
            raise ImproperlyConfigured(
                f"ORBIT_SCHEDULE_CATCHUP is {value!r}; use one of: "
                + ", ".join(SCHEDULE_CATCHUP_POLICIES)
            )
        return value

    @property
    def schedule_catchup_max(self) -> int:
        value = int(self._get("SCHEDULE_CATCHUP_MAX"))
        if value < 1:
            raise ImproperlyConfigured(
                f"ORBIT_SCHEDULE_CATCHUP_MAX must be at least 1, not {value}"
            )
        return value

    @property
    def schedule_grace(self) -> float:
        return float(self._get("SCHEDULE_GRACE"))

    @property
    def schedule_interval(self) -> float:
        return float(self._get("SCHEDULE_INTERVAL"))

    @property
    def redact_keys(self) -> tuple[str, ...]:
        """Fragments of key names whose values are masked on output, as they are matched:
        lower-case letters and digits only (orbit.core.redaction.key_name)."""
        parsed: tuple[str, ...] | None = self._read.get("redact_keys")
        if parsed is None:  # parsed once until a setting changes: every log line reads them
            value = self._get("REDACT_KEYS")
            parsed = _key_fragments(value)
            self._read["redact_keys"] = parsed
        return parsed

    @property
    def api_rate_limit(self) -> Rate | None:
        return parse_rate("ORBIT_API_RATE_LIMIT", self._get("API_RATE_LIMIT"))

    @property
    def login_rate_limit(self) -> Rate | None:
        return parse_rate("ORBIT_LOGIN_RATE_LIMIT", self._get("LOGIN_RATE_LIMIT"))

    @property
    def admin_search_rate_limit(self) -> Rate | None:
        return parse_rate("ORBIT_ADMIN_SEARCH_RATE_LIMIT", self._get("ADMIN_SEARCH_RATE_LIMIT"))

    @property
    def queue_limits(self) -> dict[str, int]:
        """ORBIT_QUEUE_LIMITS: queue -> the most of its runs running at once."""
        return parse_named("ORBIT_QUEUE_LIMITS", self._get("QUEUE_LIMITS"), _positive)

    @property
    def rate_limits(self) -> dict[str, Rate | None]:
        """The named rate limits: ORBIT_RATE_LIMITS, and "veryfi" from ORBIT_VERYFI_RATE_LIMIT
        (None: configured "off", no limit)."""
        named = parse_named(
            "ORBIT_RATE_LIMITS",
            self._get("RATE_LIMITS"),
            lambda text: parse_rate("ORBIT_RATE_LIMITS", text),
        )
        if "veryfi" not in named:
            named["veryfi"] = parse_rate("ORBIT_VERYFI_RATE_LIMIT", self._get("VERYFI_RATE_LIMIT"))
        return named

    @property
    def trusted_proxies(self) -> int:
        value = int(self._get("TRUSTED_PROXIES"))
        if value < 0:
            raise ImproperlyConfigured(f"ORBIT_TRUSTED_PROXIES must be 0 or more, not {value}")
        return value

    @property
    def max_json_depth(self) -> int:
        return int(self._get("MAX_JSON_DEPTH"))

    @property
    def documents_root(self) -> str:
        """The folder runs read their documents from, as configured (orbit.core.documents)."""
        return str(self._get("DOCUMENTS_ROOT") or "").strip()

    @property
    def max_upload_bytes(self) -> int:
        return int(self._get("MAX_UPLOAD_BYTES"))

    @property
    def content_security_policy(self) -> str:
        return str(self._get("CONTENT_SECURITY_POLICY") or DEFAULT_CONTENT_SECURITY_POLICY)

    def retention(self, kind: str) -> timedelta | None:
        """How long `kind` (succeeded, failed, cancelled, audit) is kept; None: for ever."""
        name = f"RETENTION_{kind.upper()}"
        return parse_age(f"ORBIT_{name}", self._get(name))

    @property
    def retention_interval(self) -> float:
        return float(self._get("RETENTION_INTERVAL"))

    @property
    def retention_batch(self) -> int:
        value = int(self._get("RETENTION_BATCH"))
        if value < 1:
            raise ImproperlyConfigured(f"ORBIT_RETENTION_BATCH must be at least 1, not {value}")
        return value

    @property
    def retention_share(self) -> float:
        value = float(self._get("RETENTION_SHARE"))
        if not 0 < value <= 0.5:
            raise ImproperlyConfigured(
                f"ORBIT_RETENTION_SHARE must be above 0 and at most 0.5, not {value}"
            )
        return value

    @property
    def listen_database_url(self) -> str:
        return str(self._get("LISTEN_DATABASE_URL") or "")

    @property
    def worker_concurrency(self) -> int:
        """ORBIT_WORKER_CONCURRENCY, or default_worker_concurrency() when it is unset."""
        value = str(self._get("WORKER_CONCURRENCY") or "").strip()
        if not value:
            return default_worker_concurrency()
        try:
            number = int(value)
        except ValueError:
            number = 0
        if number < 1:
            raise ImproperlyConfigured(
                f"ORBIT_WORKER_CONCURRENCY must be a whole number of 1 or more, not {value!r}"
            )
        return number

    @property
    def webhook_timeout(self) -> float:
        return float(self._get("WEBHOOK_TIMEOUT"))

    @property
    def webhook_backoff_base(self) -> float:
        return float(self._get("WEBHOOK_BACKOFF_BASE"))

    @property
    def webhook_backoff_cap(self) -> float:
        return float(self._get("WEBHOOK_BACKOFF_CAP"))

    @property
    def webhook_max_attempts(self) -> int:
        return max(1, int(self._get("WEBHOOK_MAX_ATTEMPTS")))

    @property
    def webhook_disable_after(self) -> int:
        """Failed attempts in a row before an endpoint is disabled; 0: never."""
        return max(0, int(self._get("WEBHOOK_DISABLE_AFTER")))

    @property
    def webhook_allow_private(self) -> bool:
        value = self._get("WEBHOOK_ALLOW_PRIVATE")
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)

    @property
    def webhook_lease(self) -> float:
        return float(self._get("WEBHOOK_LEASE"))

    @property
    def webhook_poll_interval(self) -> float:
        return float(self._get("WEBHOOK_POLL_INTERVAL"))

    @property
    def webhook_refresh(self) -> float:
        return float(self._get("WEBHOOK_REFRESH"))

    @property
    def base_url(self) -> str:
        return str(self._get("BASE_URL") or "").strip().rstrip("/")


@dataclass(frozen=True)
class Rate:
    """At most `limit` requests in each fixed window of `seconds`."""

    limit: int
    seconds: int

    def __str__(self) -> str:
        return f"{self.limit}/{self.seconds}s"


#: The shortest retention: the dashboard's last-hour cards and per-minute chart read only
#: rows, never rollups, so nothing younger than an hour may be pruned.
MIN_RETENTION = timedelta(hours=1)
#: The longest age `parse_age` and `createapitoken --expires-in` take: a century outlasts
#: any retention or key, and now minus or plus it is still a date (99999999999d was not,
#: nor even a timedelta: an OverflowError traceback).
MAX_AGE = timedelta(days=36500)
AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$", re.I)


def _key_fragments(names: str | Iterable[Any]) -> tuple[str, ...]:
    """ORBIT_REDACT_KEYS as matched (kept by `OrbitSettings.redact_keys` until it changes)."""
    parts = names.split(",") if isinstance(names, str) else names
    fragments = (re.sub(r"[^a-z0-9]+", "", str(n).lower()) for n in parts)
    return tuple(dict.fromkeys(f for f in fragments if f))


def parse_age(name: str, value: Any) -> timedelta | None:
    """`7d`, `12h`, `2w`, `90m` as a timedelta; empty, `never` or `off`: None (keep for ever)."""
    if isinstance(value, timedelta):
        age = bounded_age(name, format_age(value), value.total_seconds())
    else:
        text = str(value if value is not None else "").strip().lower()
        if text in ("", "never", "off", "none", "forever"):
            return None
        match = _AGE.match(text)
        if not match:
            raise ImproperlyConfigured(
                f"{name} is {text!r}; write an age such as '7d', '12h', '2w' or '90m' "
                "(s, m, h, d, w), or 'never'"
            )
        age = bounded_age(name, repr(text), int(match[1]) * AGE_UNITS[match[2].lower()])
    if age < MIN_RETENTION:
        raise ImproperlyConfigured(
            f"{name} is {format_age(age)}; keep at least 1h (the dashboard's last hour "
            "reads the runs themselves)"
        )
    return age


def bounded_age(name: str, shown: str, seconds: float) -> timedelta:
    """`seconds` as a timedelta, checked against MAX_AGE before it is made (a timedelta
    cannot hold 99999999999d); ImproperlyConfigured naming `name` and `shown` else."""
    if seconds > MAX_AGE.total_seconds():
        raise ImproperlyConfigured(
            f"{name} is {shown}; the longest age is {format_age(MAX_AGE)} (100 years)"
        )
    return timedelta(seconds=seconds)


def format_age(age: timedelta) -> str:
    """An age as `parse_age` reads it: 7d, 12h, 90m."""
    seconds = int(age.total_seconds())
    for unit in ("d", "h", "m"):
        if seconds and seconds % AGE_UNITS[unit] == 0:
            return f"{seconds // AGE_UNITS[unit]}{unit}"
    return f"{seconds}s"


RATE_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(second|minute|hour|day|s|m|h|d)s?\s*$", re.I)


def parse_rate(name: str, value: Any) -> Rate | None:
    """`600/minute`, `10/5minutes` or `100/30s` as a Rate; empty or `off`: no limit."""
    text = str(value or "").strip()
    if not text or text.lower() in ("off", "none", "0"):
        return None
    match = _RATE.match(text)
    if not match or int(match[1]) < 1:
        raise ImproperlyConfigured(
            f"{name} is {text!r}; write it as requests/period, such as '600/minute', "
            "'10/5minutes' or '100/30s' (periods: second, minute, hour, day), or 'off'"
        )
    unit = match[3].lower()
    period = next(s for p, s in RATE_PERIODS.items() if p.startswith(unit))
    return Rate(limit=int(match[1]), seconds=int(match[2] or 1) * period)


#: A named limit's name: the names' rule of pipelines, within 64 characters.
LIMIT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def parse_named(setting: str, value: Any, parse: Any) -> dict[str, Any]:
    """'a=x,b=y' as {a: parse(x), b: parse(y)}; ImproperlyConfigured names the setting."""
    text = str(value or "")
    found: dict[str, Any] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep or not LIMIT_NAME.fullmatch(name):
            raise ImproperlyConfigured(
                f"{setting} is {text!r}; write it as name=value pairs separated by commas, "
                "such as 'documents=4,mail=10'"
            )
        try:
            found[name] = parse(raw.strip())
        except ValueError as exc:
            raise ImproperlyConfigured(f"{setting}: {name}: {exc}") from None
    return found


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"a limit is a whole number of 1 or more, not {text!r}")
    return int(text)


orbit_settings = OrbitSettings()
setting_changed.connect(orbit_settings.forget, dispatch_uid="orbit-settings-forget")
