"""Measure what users feel: `--help` latency, and `plan jetstream2` time and peak memory.

A script, not a timed test: timings on a shared CI machine are noise as assertions, but a number
printed on every run shows a regression. Targets on a 2-core machine: `--help` under 0.25 s, `plan`
under 1.5 s and 200 MB.

    python scripts/benchmark.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"--help": (0.25, None), "plan jetstream2": (1.5, 200.0)}


def run_once(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident MB of one run of the CLI's real entry point."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "jetstream_binderhub.cli", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        err = proc.stderr.read().decode() if proc.stderr else ""
        sys.exit(f"jetstream-binderhub {' '.join(args)} failed:\n{err}")
    return elapsed, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark the jetstream-binderhub CLI.")
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    run_once(["--help"])  # warm the bytecode cache so the first run does not count compilation
    print(f"{'command':<18} {'median s':>9} {'max s':>7} {'peak MB':>8}  target")
    for label, (max_s, max_mb) in TARGETS.items():
        samples = [run_once(label.split()) for _ in range(runs)]
        times = [t for t, _ in samples]
        peak = max(m for _, m in samples)
        target = f"< {max_s} s" + (f", < {max_mb:g} MB" if max_mb else "")
        ok = statistics.median(times) < max_s and (max_mb is None or peak < max_mb)
        print(
            f"{label:<18} {statistics.median(times):>9.3f} {max(times):>7.3f} {peak:>8.1f}  {target} {'ok' if ok else 'MISSED'}"
        )


if __name__ == "__main__":
    main()
