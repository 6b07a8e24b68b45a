"""`make bench`: Orbit and its peers on this machine, side by side in one table.

    make bench                    # about 15 min: Orbit on PostgreSQL and SQLite, then the peers
    BENCH_QUICK=1 make bench      # smoke run: 200 jobs per drain, 10 pickup samples, short pgbench
    BENCH_PEERS=0 make bench      # Orbit alone
    BENCH_ONLY=tasks make bench   # only the @task drains: Orbit beside django-tasks-db (~7 min)
    BENCH_LIMITS=0 make bench     # without the flow-limits drains (bench/bench_limits.py)
    BENCH_ENQUEUE_ROUNDS=0 make bench   # without the single enqueues in alternating rounds
    PEERS_SCRIPT=/path/to/run_all.sh make bench

The peers (procrastinate, django-tasks, DBOS, and pgbench for PostgreSQL's own limit) come
from the shared peer benchmark, ../shared/bench/peers/run_all.sh from the repository root;
it builds its own venv under /tmp/peerbench and needs root. When it is missing or fails,
the table shows Orbit alone and says why. Both sides drain the same N no-op jobs per
measurement and take the same number of pickup samples, timed the same way (wall clock
from just before the enqueue call to the job function's start).

Then the same N `@task` no-ops (Django's Tasks framework) drained through Orbit's backend
(`runs.tasks.OrbitBackend`, bench/bench_tasks.py) and through django-tasks-db (the peers'
django-tasks rows, from this run), side by side in a table of their own: `run_tasks`.

Then single enqueues of Orbit and every peer in alternating rounds (~3 min,
bench/bench_enqueue_rounds.py), each system one process queueing a few hundred jobs at its
turn: the single-enqueue comparison to read, since the table's one figure per system,
taken minutes apart, moves by a third on a shared machine.

Two row sets. "Default logging": every system as it is installed, Orbit at INFO (its
default, one line per successful run) and each peer at its own default; Orbit's rows at
the tuned --concurrency 32 and at runworker's default concurrency (4 per CPU, at least 16).
"Quiet logging": every system at WARNING, Orbit with ORBIT_LOG_LEVEL=WARNING and the peers
with PEERBENCH_QUIET=1 (each the way it documents it), drains only.

Writes everything (Orbit's rows, the peers' raw results, the machine) to
bench/results/bench-<time>.json.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
#: Where Orbit's workers write what they log, a folder per drain set: to a file, as the
#: peers' benchmark has each peer's workers do (bench/peers: $PEERBENCH_TMP/logs), not to
#: /dev/null, which costs a worker less per line than a file does.
LOGS = Path(os.environ.get("BENCH_ORBIT_LOGS", "/tmp/orbit-bench-logs"))
PEERS_SCRIPT = Path(os.environ.get("PEERS_SCRIPT", ROOT.parent / "shared/bench/peers/run_all.sh"))
PEERS_TMP = Path(os.environ.get("PEERBENCH_TMP", "/tmp/peerbench"))
PEERS_RESULTS = Path(os.environ.get("PEERBENCH_RESULTS", PEERS_TMP / "results"))
ADMIN_URL = os.environ.get("BENCH_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
N = int(os.environ.get("BENCH_N", 200 if QUICK else 2000))
LAT_N = int(os.environ.get("BENCH_LAT_N", 10 if QUICK else 50))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", 32))

sys.path.insert(0, str(ROOT))
from bench.bench_enqueue_rounds import table  # noqa: E402
from orbit.core.conf import default_worker_concurrency  # noqa: E402  (after the path)

#: What runworker runs at when it is not told (bench_worker.py --concurrency 0).
DEFAULT_CONCURRENCY = default_worker_concurrency()


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "postgres": postgres_version(),
        "load_average": os.getloadavg(),
    }


def postgres_version() -> str | None:
    import psycopg

    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
    except psycopg.Error:
        return None
    return str(row[0]) if row else None


def run_orbit(
    db: str,
    stamp: str,
    *,
    log_level: str = "default",
    concurrency: int = CONCURRENCY,
    lat_n: int = LAT_N,
    noop_only: bool = False,
) -> list[dict[str, Any]]:
    """Orbit's rows for one database; none (and a message) when the run failed.
    log_level "default": Orbit's own (INFO); concurrency 0: runworker's default."""
    out = RESULTS / f"orbit-{db}-{log_level}-{concurrency}-{stamp}.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "bench_worker.py"),
            "--db",
            db,
            "--n",
            str(N),
            "--lat-n",
            str(lat_n),
            "--concurrency",
            str(concurrency),
            "--log-level",
            log_level,
            "--log-dir",
            str(LOGS / out.stem),
            *(["--noop-only"] if noop_only else []),
            "--out",
            str(out),
        ],
        cwd=ROOT,
    )
    if proc.returncode != 0:
        print(f"orbit ({db}): bench_worker.py exited with {proc.returncode}", flush=True)
        return []
    rows: list[dict[str, Any]] = json.loads(out.read_text())
    out.unlink()  # folded into the combined file
    return rows


def run_peers(stamp: str, **overrides: str) -> tuple[dict[str, Any], str | None]:
    """The peers' raw results, and why they are missing if they are. `overrides` are
    run_all.sh's settings (PEERBENCH_SYSTEMS="django-tasks", SKIP_PGBENCH="1", ...)."""
    if os.environ.get("BENCH_PEERS", "1") == "0":
        return {}, "skipped (BENCH_PEERS=0)"
    if not PEERS_SCRIPT.is_file():
        return {}, f"{PEERS_SCRIPT} not found (set PEERS_SCRIPT)"
    if os.geteuid() != 0:
        return {}, f"{PEERS_SCRIPT.name} needs root (it runs `su postgres`)"
    if shutil.which("pgbench") is None and not Path("/usr/lib/postgresql/15/bin/pgbench").exists():
        return {}, "pgbench (PostgreSQL 15) is not installed"
    env = {**os.environ, "PEERBENCH_N": str(N), "PEERBENCH_LAT_N": str(LAT_N), **overrides}
    if QUICK:
        env.setdefault("PGBENCH_SECS", "2")
        env.setdefault("PGBENCH_SCRIPTS", "claim_complete")
    env.setdefault("PGBENCH_CLIENTS", "1 2")
    prepare_peer_database(env)
    for name in ("systems.jsonl", "pgbench.jsonl"):  # never show a previous run's figures
        (PEERS_RESULTS / name).unlink(missing_ok=True)
    PEERS_TMP.mkdir(parents=True, exist_ok=True)
    systems = overrides.get("PEERBENCH_SYSTEMS", "").replace(" ", "-")
    quiet = "-quiet" if overrides.get("PEERBENCH_QUIET") else ""
    log = PEERS_TMP / f"run_all-{stamp}{'-' + systems if systems else ''}{quiet}.log"
    print(f"peers: running {PEERS_SCRIPT} (log: {log})", flush=True)
    with log.open("w") as f:
        proc = subprocess.run(
            ["bash", str(PEERS_SCRIPT)], env=env, stdout=f, stderr=subprocess.STDOUT
        )
    peers = {"systems": read_jsonl("systems.jsonl"), "pgbench": read_jsonl("pgbench.jsonl")}
    if proc.returncode != 0:
        tail = [line for line in log.read_text().splitlines() if line.strip()][-1:]
        reason = f"{PEERS_SCRIPT.name} exited with {proc.returncode}: {' '.join(tail)[:200]}"
        return peers, reason
    if not peers["systems"]:
        return peers, f"{PEERS_SCRIPT.name} wrote no results (see {log})"
    return peers, None


def run_tasks(
    stamp: str, peers: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str | None]:
    """N `@task` no-ops drained through Orbit's Tasks backend and through django-tasks-db,
    on PostgreSQL: the table's rows, django-tasks-db's raw results, and why they are
    missing if they are.

    Both sides enqueue with the framework's `task.enqueue()` and are timed as the other
    drains are. django-tasks-db's figures are the peers' django-tasks rows of this run;
    when the peers did not run it (BENCH_ONLY=tasks), it is run here, drains only.
    """
    out = RESULTS / f"orbit-tasks-{stamp}.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "bench_worker.py"),
            "--tasks",
            "--log-level",
            "default",  # as the peer's django-tasks-db logs at its default
            "--db",
            "postgres",
            "--n",
            str(N),
            "--concurrency",
            str(CONCURRENCY),
            "--log-dir",
            str(LOGS / out.stem),
            "--out",
            str(out),
        ],
        cwd=ROOT,
    )
    rows: list[dict[str, Any]] = []
    if proc.returncode == 0:
        orbit = json.loads(out.read_text())
        out.unlink()  # folded into the combined file
        rows.append(
            {
                "system": "Orbit (OrbitBackend)",
                "config": f"runworker --concurrency {CONCURRENCY}",
                "enqueue_s": statistics.mean(r["enqueue_per_s"] for r in orbit),
                "drain_1p": rate(orbit, "bench.bench_tasks.noop", 1),
                "drain_2p": rate(orbit, "bench.bench_tasks.noop", 2),
                "steps_2p": None,
                "lat_p50": None,
                "lat_p95": None,
            }
        )
    else:
        print(f"orbit (@task): bench_worker.py --tasks exited with {proc.returncode}", flush=True)
    mine = [r for r in peers.get("systems", []) if r.get("system") == "django-tasks"]
    missing = None
    if not mine:
        ran, missing = run_peers(
            stamp, PEERBENCH_SYSTEMS="django-tasks", SKIP_PGBENCH="1", PEERBENCH_LAT_N="0"
        )
        mine = [r for r in ran.get("systems", []) if r.get("system") == "django-tasks"]
    rows += [{**r, "system": "django-tasks-db"} for r in peer_rows({"systems": mine})]
    return rows, mine, missing if not mine else None


def run_enqueue_rounds(peers_missing: str | None) -> dict[str, Any] | None:
    """Single enqueues of Orbit (PostgreSQL) and every peer in alternating rounds
    (bench/bench_enqueue_rounds.py): one figure per system, minutes apart, moves by a
    third on this machine; rounds that every system meets at the same moments do not.
    Needs the peers' venv and database, which their run has just made."""
    if peers_missing is not None or os.environ.get("BENCH_ENQUEUE_ROUNDS", "1") in ("", "0"):
        return None
    out = RESULTS / "enqueue-rounds.json"
    out.unlink(missing_ok=True)
    rounds = ["--rounds", "4", "--calls", "100"] if QUICK else ["--rounds", "16", "--calls", "300"]
    print("enqueue rounds: bench/bench_enqueue_rounds.py", flush=True)
    proc = subprocess.run(
        [sys.executable, "bench/bench_enqueue_rounds.py", *rounds, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 or not out.exists():
        print(f"enqueue rounds failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        return None
    figures: dict[str, Any] = json.loads(out.read_text())
    return figures


def print_enqueue_rounds(figures: dict[str, Any] | None) -> None:
    """The alternating rounds' table, and Orbit against the fastest peer in them."""
    if figures is None:
        return
    systems = figures["systems"]
    print()
    print(
        f"SINGLE ENQUEUE IN ALTERNATING ROUNDS: {figures['rounds']} rounds of "
        f"{figures['calls']} enqueues per system, in turn (PostgreSQL, one transaction each)"
    )
    print("\n".join(table(systems)))
    peers = {name: found for name, found in systems.items() if name != "Orbit"}
    if peers:
        fastest = min(peers, key=lambda name: peers[name]["orbit_ratio"])
        print(
            f"Orbit (PostgreSQL) single enqueue, per-round median: "
            f"{peers[fastest]['orbit_ratio']:.2f}x the fastest peer's ({fastest})"
        )


def run_limits() -> dict[str, float] | None:
    """The unlimited pipeline's drain with no flow limit anywhere and with limits configured
    on other pipelines (a held backlog under max_concurrency, a rate-limited pipeline with
    queued runs): bench/bench_limits.py, alternating the two, medians of two rounds each."""
    if os.environ.get("BENCH_LIMITS", "1") in ("", "0"):
        return None
    proc = subprocess.run(
        [sys.executable, "bench/bench_limits.py", "drain", "--n", str(N), "--rounds", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("median"):
            words = line.replace(",", "").split()
            return {"none": float(words[2]), "limited": float(words[5])}
    print(f"flow limits: bench_limits.py failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return None


def print_limits(figures: dict[str, float] | None) -> None:
    if figures is None:
        return
    none, limited = figures["none"], figures["limited"]
    print()
    print(
        "FLOW LIMITS: an unlimited pipeline's drain (4 workers x concurrency 8, PostgreSQL, "
        "WARNING), medians of two rounds, alternating"
    )
    print(f"  no flow limit anywhere                 {none:8.0f} runs/s")
    print(
        f"  limits configured on other pipelines   {limited:8.0f} runs/s  "
        f"({100 * (limited - none) / none:+.1f}%)"
    )


def prepare_peer_database(env: dict[str, str]) -> None:
    """Create the peers' role and database if missing.

    run_all.sh creates them with `su postgres -c psql`, but that psql inherits PGUSER and
    PGHOST from common.sh and so connects as the role it is about to create, and fails.
    """
    import psycopg

    user = env.get("PGUSER", "peerbench")
    password = env.get("PGPASSWORD", "peerbench")
    database = env.get("PGDATABASE", "peerbench")
    try:
        with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [user]).fetchone():
                conn.execute(f"CREATE ROLE \"{user}\" LOGIN PASSWORD '{password}' CREATEDB")
                conn.execute(f'GRANT pg_checkpoint TO "{user}"')
            if not conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [database]
            ).fetchone():
                conn.execute(f'CREATE DATABASE "{database}" OWNER "{user}"')
    except psycopg.Error as exc:
        print(f"peers: could not prepare role/database ({exc}); run_all.sh will try", flush=True)


def read_jsonl(name: str) -> list[dict[str, Any]]:
    path = PEERS_RESULTS / name
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def rate(
    rows: list[dict[str, Any]], pipeline: str, workers: int, key: str = "runs_per_s"
) -> float | None:
    for r in rows:
        if r.get("pipeline") == pipeline and r.get("workers") == workers:
            return float(r[key])
    return None


def orbit_rows(
    results: list[dict[str, Any]], concurrency: int = CONCURRENCY
) -> list[dict[str, Any]]:
    """Orbit's table rows from bench_worker.py's results at one concurrency (0: the default)."""
    rows = []
    config = (
        f"runworker --concurrency {concurrency}"
        if concurrency
        else f"runworker (default concurrency: {DEFAULT_CONCURRENCY})"
    )
    for db, label in (("postgres", "PostgreSQL"), ("sqlite", "SQLite")):
        # Pickup (one slot busy at a time) is measured once, shown with the tuned rows.
        with_pickup = concurrency == CONCURRENCY
        mine = [
            r
            for r in results
            if r.get("db") == db
            and (r.get("concurrency") == concurrency or (with_pickup and "pickup" in r))
        ]
        if not mine:
            continue
        pickup = next((r["pickup"] for r in mine if "pickup" in r), {})
        rows.append(
            {
                "system": f"Orbit ({label})",
                "config": config,
                "enqueue_s": statistics.mean(
                    r["enqueue_per_s"] for r in mine if "enqueue_per_s" in r
                ),
                "drain_1p": rate(mine, "bench-noop", 1),
                "drain_2p": rate(mine, "bench-noop", 2),
                "steps_2p": rate(mine, "bench-three", 2, "steps_per_s"),
                "lat_p50": pickup.get("wall_p50_ms"),
                "lat_p95": pickup.get("wall_p95_ms"),
                "db_lat_p50": pickup.get("p50_ms"),
                "db_lat_p95": pickup.get("p95_ms"),
                "log_bytes": figure(mine, "bench-noop", 2, "log_bytes_per_run"),
                "log_lines": figure(mine, "bench-noop", 2, "log_lines_per_run"),
            }
        )
    return rows


def figure(rows: list[dict[str, Any]], pipeline: str, workers: int, key: str) -> float | None:
    """The figure `key` of the drain of `pipeline` by `workers` worker processes, or None
    when that drain did not measure it."""
    for r in rows:
        if r.get("pipeline") == pipeline and r.get("workers") == workers and key in r:
            return float(r[key])
    return None


def peer_rows(peers: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for r in peers.get("systems", []):
        latency = r.get("latency") or {}
        rows.append(
            {
                "system": r["system"],
                "config": r["config"],
                "enqueue_s": statistics.mean(r["enqueue_s"]) if r.get("enqueue_s") else None,
                "drain_1p": (r.get("drain_1p") or {}).get("drain_jobs_s"),
                "drain_2p": (r.get("drain_2p") or {}).get("drain_jobs_s"),
                "steps_2p": None,
                "lat_p50": latency.get("lat_p50_ms"),
                "lat_p95": latency.get("lat_p95_ms"),
            }
        )
    pg = {(r["script"], r["clients"]): r for r in peers.get("pgbench", [])}
    one, two = pg.get(("claim_complete", 1)), pg.get(("claim_complete", 2))
    if one or two:
        rows.append(
            {
                "system": "PostgreSQL (pgbench)",
                "config": "claim + complete: 2 transactions per job",
                "enqueue_s": (pg.get(("insert", 1)) or {}).get("tps"),
                "drain_1p": (one or {}).get("tps"),
                "drain_2p": (two or {}).get("tps"),
                "steps_2p": None,
                "lat_p50": None,
                "lat_p95": None,
            }
        )
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    def cell(value: float | None, unit: str = "") -> str:
        return (
            "-" if value is None else f"{value:.0f}{unit}" if value >= 10 else f"{value:.1f}{unit}"
        )

    header = (
        f"{'system':<22} {'configuration':<42} {'enqueue/s':>9} {'drain 1p':>9} {'drain 2p':>9} "
        f"{'3-step 2p':>10} {'pickup p50':>10} {'p95':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['system'][:22]:<22} {r['config'][:42]:<42} {cell(r['enqueue_s']):>9} "
            f"{cell(r['drain_1p']):>9} {cell(r['drain_2p']):>9} {cell(r['steps_2p']):>10} "
            f"{cell(r['lat_p50'], ' ms'):>10} {cell(r['lat_p95'], ' ms'):>8}"
        )


def print_ratio(rows: list[dict[str, Any]]) -> None:
    """Orbit's 2-process drain on PostgreSQL against the best peer's, in one row set."""
    orbit = [r["drain_2p"] for r in rows if r["system"] == "Orbit (PostgreSQL)" and r["drain_2p"]]
    peers = [
        r["drain_2p"]
        for r in rows
        if not r["system"].startswith(("Orbit", "PostgreSQL")) and r["drain_2p"]
    ]
    if orbit and peers:
        print(f"Orbit (PostgreSQL) 2-process drain: {max(orbit) / max(peers):.1f}x the best peer's")


def enqueue_rows(orbit: list[dict[str, Any]], peers: dict[str, Any]) -> list[dict[str, Any]]:
    """The enqueue table's rows: Orbit's single enqueue and `enqueue_many` per database
    (bench_worker.py `enqueue_rates`), each peer's single enqueue (the mean of its
    measurements, at its fastest configuration), and pickup from the enqueue call for
    Orbit and for each peer that measured it (its best configuration)."""
    rows: list[dict[str, Any]] = []
    for db, label in (("postgres", "PostgreSQL"), ("sqlite", "SQLite")):
        pickup = next((r["pickup"] for r in orbit if r.get("db") == db and "pickup" in r), {})
        for r in orbit:
            rate = r.get("enqueue")
            if r.get("db") != db or rate is None:
                continue
            single = rate["batch"] == 1
            rows.append(
                {
                    "system": f"Orbit ({label})",
                    "how": "enqueue(), one at a time"
                    if single
                    else f"enqueue_many(), {rate['batch']:,} a statement (median)",
                    "runs_per_s": rate["runs_per_s"],
                    "lat_p50": pickup.get("wall_p50_ms") if single else None,
                    "lat_p95": pickup.get("wall_p95_ms") if single else None,
                }
            )
    best: dict[str, dict[str, Any]] = {}
    for r in peers.get("systems", []):
        if not r.get("enqueue_s"):
            continue
        rate = statistics.mean(r["enqueue_s"])
        latency = r.get("latency") or {}
        mine = best.setdefault(r["system"], {"runs_per_s": 0.0, "lat_p50": None, "lat_p95": None})
        mine["runs_per_s"] = max(mine["runs_per_s"], rate)
        if latency.get("lat_p50_ms") is not None and (
            mine["lat_p50"] is None or latency["lat_p50_ms"] < mine["lat_p50"]
        ):
            mine["lat_p50"], mine["lat_p95"] = latency["lat_p50_ms"], latency["lat_p95_ms"]
    for system, mine in best.items():
        rows.append(
            {"system": system, "how": "its enqueue, one at a time (fastest config)", **mine}
        )
    return rows


def print_enqueue(rows: list[dict[str, Any]]) -> None:
    """The enqueue table, and how Orbit's single enqueue and pickup stand against the
    fastest peer's enqueue and the best peer pickup, from this same run."""

    def cell(value: float | None, unit: str = "") -> str:
        return (
            "-" if value is None else f"{value:,.0f}{unit}" if value >= 10 else f"{value:.1f}{unit}"
        )

    print()
    print(
        "ENQUEUE: runs queued per second with no worker running (one transaction per call, "
        "as the peers time theirs);\npickup = enqueue call to the job function's start "
        "(wall clock), one idle worker"
    )
    header = f"{'system':<22} {'how':<44} {'runs/s':>9} {'pickup p50':>10} {'p95':>8}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['system'][:22]:<22} {r['how'][:44]:<44} {cell(r['runs_per_s']):>9} "
            f"{cell(r['lat_p50'], ' ms'):>10} {cell(r['lat_p95'], ' ms'):>8}"
        )
    orbit = next(
        (
            r
            for r in rows
            if r["system"] == "Orbit (PostgreSQL)" and r["how"].startswith("enqueue()")
        ),
        None,
    )
    peers = [r for r in rows if not r["system"].startswith("Orbit")]
    if orbit and peers:
        fastest = max(peers, key=lambda r: r["runs_per_s"])
        print(
            f"Orbit (PostgreSQL) single enqueue: {orbit['runs_per_s']:,.0f}/s against the fastest "
            f"peer's {fastest['runs_per_s']:,.0f}/s ({fastest['system']}): "
            f"{orbit['runs_per_s'] / fastest['runs_per_s']:.2f}x"
        )
        timed = [r for r in peers if r["lat_p50"] is not None]
        if timed and orbit["lat_p50"] is not None:
            quickest = min(timed, key=lambda r: r["lat_p50"])
            print(
                f"Orbit (PostgreSQL) pickup p50 {orbit['lat_p50']:.1f} ms, p95 "
                f"{orbit['lat_p95']:.1f} ms against {quickest['system']}'s "
                f"{quickest['lat_p50']:.1f} / {quickest['lat_p95']:.1f} ms"
            )


def print_tasks(rows: list[dict[str, Any]], missing: str | None) -> None:
    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}" if value >= 10 else f"{value:.1f}"

    print()
    print(
        f"{N} @task no-ops (Django's Tasks framework: task.enqueue()) on PostgreSQL, "
        "Orbit's backend beside django-tasks-db; tasks/s"
    )
    header = (
        f"{'system':<22} {'configuration':<42} {'enqueue/s':>9} {'drain 1p':>9} {'drain 2p':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['system'][:22]:<22} {r['config'][:42]:<42} {cell(r['enqueue_s']):>9} "
            f"{cell(r['drain_1p']):>9} {cell(r['drain_2p']):>9}"
        )
    if missing:
        print(f"django-tasks-db: not available ({missing})")


def main() -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    started = time.time()
    host = machine()
    only = os.environ.get("BENCH_ONLY", "")
    orbit: list[dict[str, Any]] = []
    peers: dict[str, Any] = {}
    missing: str | None = None
    quiet: list[dict[str, Any]] = []
    peers_quiet: dict[str, Any] = {}
    missing_quiet: str | None = None
    if only != "tasks":
        # Default logging: Orbit at INFO, tuned and at runworker's default concurrency.
        for db in ("postgres", "sqlite"):
            orbit += run_orbit(db, stamp)
            orbit += run_orbit(db, stamp, concurrency=0, lat_n=0, noop_only=True)
        peers, missing = run_peers(stamp)
        # Quiet logging: every system at WARNING; drains only (pickup is one line apart).
        for db in ("postgres", "sqlite"):
            quiet += run_orbit(db, stamp, log_level="WARNING", lat_n=0)
        peers_quiet, missing_quiet = run_peers(
            stamp, PEERBENCH_QUIET="1", SKIP_PGBENCH="1", PEERBENCH_LAT_N="0"
        )
    rounds = run_enqueue_rounds(missing) if only != "tasks" else None
    limits = run_limits() if only != "tasks" else None
    tasks, tasks_peer, tasks_missing = run_tasks(stamp, peers)
    rows = orbit_rows(orbit) + orbit_rows(orbit, 0) + peer_rows(peers)
    quiet_rows = orbit_rows(quiet) + peer_rows(peers_quiet)
    host["load_average_after"] = os.getloadavg()

    if rows:
        print_main(rows, host, missing)
    enqueue = enqueue_rows(orbit, peers)
    if enqueue:
        print_enqueue(enqueue)
    print_enqueue_rounds(rounds)
    if quiet_rows:
        print()
        print(
            "QUIET LOGGING: every system at WARNING (Orbit ORBIT_LOG_LEVEL=WARNING, "
            "peers PEERBENCH_QUIET=1); drains only"
        )
        print_table(quiet_rows)
        print_ratio(quiet_rows)
        if missing_quiet:
            print(f"peers (quiet): not available ({missing_quiet})")
    print_limits(limits)
    print_tasks(tasks, tasks_missing)
    versions = dict.fromkeys(
        f"{r['system']} {r['version']}" for r in [*peers.get("systems", []), *tasks_peer]
    )
    if versions:
        print("peer versions: " + "; ".join(versions))

    out = RESULTS / f"bench-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "quick": QUICK,
                "n": N,
                "lat_n": LAT_N,
                "concurrency": CONCURRENCY,
                "machine": host,
                "seconds": round(time.time() - started),
                "default_concurrency": DEFAULT_CONCURRENCY,
                "table": rows,
                "quiet_table": quiet_rows,
                "tasks_table": tasks,
                "enqueue_table": enqueue,
                "enqueue_rounds": rounds,
                "limits": limits,
                "orbit": orbit,
                "peers": peers,
                "peers_missing": missing,
                "orbit_quiet": quiet,
                "peers_quiet": peers_quiet,
                "peers_quiet_missing": missing_quiet,
                "tasks_peer": tasks_peer,
            },
            indent=2,
        )
    )
    print(f"wrote {out.relative_to(ROOT)}")


def print_main(rows: list[dict[str, Any]], host: dict[str, Any], missing: str | None) -> None:
    print()
    print(
        f"{N} no-op jobs per drain, {LAT_N} pickup samples{' (BENCH_QUICK)' if QUICK else ''}; "
        f"{host['cores']} cores, {host['cpu']}, PostgreSQL {host['postgres']}"
    )
    print(
        "drain = jobs/s by 1 or 2 worker processes (start-up excluded); 3-step 2p = steps/s of a "
        "3-step no-op pipeline;\npickup = enqueue call to the job function's start (wall clock); "
        "pgbench: transactions/s with 1 or 2 clients"
    )
    print()
    print(
        "DEFAULT LOGGING: every system as installed (Orbit at INFO, one line per successful "
        "run; each peer at its own default)"
    )
    print_table(rows)
    print_ratio(rows)
    for r in rows:
        if r.get("db_lat_p50") is not None:
            print(
                f"{r['system']}: pickup by the database clock (run INSERT to claim) "
                f"p50 {r['db_lat_p50']:.1f} ms, p95 {r['db_lat_p95']:.1f} ms"
            )
    for r in rows:
        if r.get("log_bytes") is not None and r["config"].endswith(f" {CONCURRENCY}"):
            print(
                f"{r['system']}: its workers wrote {r['log_bytes']:.0f} bytes and "
                f"{r['log_lines']:.2f} lines of log per run (2-process drain, to a file "
                "as each peer's are; start and stop lines included)"
            )
    if missing:
        print(f"peers: not available ({missing})")


if __name__ == "__main__":
    main()
