"""Single enqueues, Orbit's and the peers', in alternating rounds (not a test):

    python bench/bench_enqueue_rounds.py                       # Orbit beside every peer
    python bench/bench_enqueue_rounds.py --tree /tmp/before    # ... and an older checkout
    python bench/bench_enqueue_rounds.py --rounds 24 --calls 300 --peers dbos,django-tasks

`make bench` times each system's single enqueue once, minutes apart, and on this shared
2-core machine one figure moves by 30% from one minute to the next: too much to tell
systems within a few tens of percent apart. Here each system is one long-lived process
that queues `--calls` no-op jobs one at a time (one transaction each, as make bench and
the peers' benchmark time them) each time it is told to; a round tells every system once,
in turn, the order reversed every other round, so all of them meet the same moments of
the machine. Prints each system's median rate, and the median over rounds of Orbit's rate
divided by that system's in the same round: the figure to read (above 1: Orbit faster).

Orbit runs this checkout's code (and any --tree's) with this venv on the bench database
(recreated and migrated first); the peers run in the peers' venv on theirs, through the
peers' benchmark's own classes (../shared/bench/peers/bench_systems.py), so each enqueue
is exactly the one `make bench` times. The peers' venv and database come from `make bench`
(run it once first).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PEERS_DIR = Path(os.environ.get("PEERBENCH_DIR", ROOT.parent / "shared" / "bench" / "peers"))
PEERS_VENV = Path(os.environ.get("PEERBENCH_VENV", "/tmp/peerbench/venv"))
#: The peers' database, as ../shared/bench/peers/common.sh names it.
PEERS_DSN = "postgresql://peerbench:peerbench@127.0.0.1:5432/peerbench"
#: The peers' benchmark's class for each peer.
PEER_CLASSES = {"procrastinate": "Procrastinate", "django-tasks": "DjangoTasks", "dbos": "Dbos"}


def serve_orbit() -> None:
    """A system's process: Orbit's `enqueue` of the bench's no-op pipeline, with the code
    of the checkout it was started in (this one, or a --tree)."""
    tree = Path.cwd()
    sys.path.insert(0, str(tree / "bench"))
    sys.path.insert(0, str(tree))
    import bench_worker

    bench_worker.django_ready("postgres")  # which sets Django up
    from runs import enqueue

    enqueue("bench-noop")  # the pipeline row read and cached, the statement prepared
    serve(lambda: enqueue("bench-noop"))


def serve_peer(name: str) -> None:
    """A system's process: a peer's enqueue, as its make bench class makes it."""
    sys.argv = sys.argv[:1]  # the peers' module parses nothing at import, but be sure
    sys.path.insert(0, str(PEERS_DIR))
    import bench_systems

    system = getattr(bench_systems, PEER_CLASSES[name])()
    system.reset()
    system.enqueue_noop()
    serve(system.enqueue_noop)


def serve(enqueue_one: Any) -> None:
    """Answer each line of standard input (a count) with the rate of that many enqueues."""
    print("ready", flush=True)
    for line in sys.stdin:
        count = int(line)
        started = time.perf_counter()
        for _ in range(count):
            enqueue_one()
        print(count / (time.perf_counter() - started), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--calls", type=int, default=300, help="enqueues per system per round")
    parser.add_argument("--peers", default=",".join(PEER_CLASSES))
    parser.add_argument("--tree", type=Path, action="append", default=[], help="another checkout")
    parser.add_argument("--out", type=Path, help="also write the figures here, as JSON")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve == "orbit":
        serve_orbit()
        return
    if args.serve:
        serve_peer(args.serve)
        return

    sys.path.insert(0, str(ROOT / "bench"))
    import bench_worker

    bench_worker.setup("postgres")
    env = bench_worker.env_for("postgres")
    orbit = [sys.executable, str(Path(__file__).resolve()), "--serve", "orbit"]
    commands: dict[str, tuple[list[str], Path]] = {"Orbit": (orbit, ROOT)}
    for tree in args.tree:  # the same command, started in the other checkout
        commands[f"Orbit at {tree}"] = (orbit, tree.resolve())
    for peer in filter(None, args.peers.split(",")):
        python = PEERS_VENV / "bin" / "python"
        commands[peer] = ([str(python), str(Path(__file__).resolve()), "--serve", peer], PEERS_DIR)
    # the peers' own settings (their DSN, their Django settings module), none of Orbit's
    peer_env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "PYTHONPATH")
        and not k.startswith("ORBIT_")
    }
    peer_env.setdefault("PEERBENCH_DSN", PEERS_DSN)
    processes = {}
    for name, (command, cwd) in commands.items():
        process_env = dict(env, PYTHONPATH=str(cwd)) if name.startswith("Orbit") else peer_env
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=process_env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdin is not None and process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise SystemExit(f"{name} did not start")
        processes[name] = process
    rates: dict[str, list[float]] = {name: [] for name in processes}
    for round_ in range(args.rounds):
        order = list(processes) if round_ % 2 == 0 else list(reversed(processes))
        for name in order:
            process = processes[name]
            assert process.stdin is not None and process.stdout is not None
            process.stdin.write(f"{args.calls}\n")
            process.stdin.flush()
            rates[name].append(float(process.stdout.readline()))
    for process in processes.values():
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=60)
    figures = summary(rates)
    print(f"single enqueues, {args.rounds} rounds of {args.calls} per system, alternating")
    print("\n".join(table(figures)))
    if args.out:
        args.out.write_text(
            json.dumps({"rounds": args.rounds, "calls": args.calls, "systems": figures})
        )


def summary(rates: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """Each system's median and fastest rate, and the median over rounds of Orbit's rate
    divided by its own in the same round."""
    orbit = rates["Orbit"]
    return {
        name: {
            "median": statistics.median(found),
            "fastest": max(found),
            "orbit_ratio": statistics.median(a / b for a, b in zip(orbit, found, strict=True)),
        }
        for name, found in rates.items()
    }


def table(figures: dict[str, dict[str, float]]) -> list[str]:
    """`summary`'s figures as the lines of a table: this script's and make bench's."""
    lines = [f"{'system':28} {'median/s':>9} {'fastest/s':>10}  Orbit's rate / this one's"]
    for name, found in figures.items():
        lines.append(
            f"{name:28} {found['median']:9.0f} {found['fastest']:10.0f}  "
            f"{found['orbit_ratio']:.2f}x"
        )
    return lines


if __name__ == "__main__":
    main()
