"""How long the test suite takes, lane by lane, against the targets of issue #29.

    python -m benchmarks.suite [--lanes test-fast,test] [--workers 4]

Runs ``make <lane>`` for each lane (the commands a developer and CI run, with their
installs, which are no-ops once the venvs are built) and prints its wall time against its
target: ``make test-fast`` at most 6 minutes, ``make test`` at most 14, on a 2-core machine
(the CI machine's kind). The times are absolute, not ratios: the targets are what a
developer waits. Each line says ``met`` or ``NOT MET``; the machine is printed with them,
and docs/development.md records the numbers.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# minutes a lane may take on a 2-core machine
TARGETS = {"test-fast": 6.0, "test": 14.0, "test-infra": 14.0}


LOGS = REPO / "build" / "benchmarks"


def run_lane(lane: str, workers: int) -> tuple[float, int]:
    """``make <lane>`` in the repository, its output in build/benchmarks/<lane>.log:
    (minutes, exit code)."""
    # a make above this one (make benchmark) must not leak its flags into the lane's make
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MAKELEVEL", "MFLAGS"}}
    make = shutil.which("make")
    if make is None:
        raise SystemExit("make is not on PATH: the lanes are make targets")
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"{lane}.log"
    started = time.monotonic()
    with log.open("w", encoding="utf-8") as output:
        done = subprocess.run(
            [make, "--no-print-directory", lane, f"TEST_WORKERS={workers}"],
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            check=False,
        )
    minutes = (time.monotonic() - started) / 60
    if done.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        print(f"{tail}\n(the whole output: {log})", file=sys.stderr)
    return minutes, done.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.suite", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--lanes", default="test-fast,test", help="comma-separated make targets")
    parser.add_argument("--workers", type=int, default=4, help="TEST_WORKERS for each lane")
    args = parser.parse_args(argv)
    lanes = [lane for lane in args.lanes.split(",") if lane]
    unknown = [lane for lane in lanes if lane not in TARGETS]
    if unknown:
        parser.error(f"unknown lane(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")
    print(
        f"machine: {os.cpu_count()} cores, {platform.machine()}, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}; {args.workers} workers"
    )
    failed = False
    for lane in lanes:
        minutes, code = run_lane(lane, args.workers)
        verdict = "met" if minutes <= TARGETS[lane] else "NOT MET"
        outcome = "passed" if code == 0 else f"FAILED (exit {code})"
        print(
            f"make {lane}: {minutes:.1f} min, target at most {TARGETS[lane]:g} min: {verdict} "
            f"({outcome})"
        )
        failed |= code != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
