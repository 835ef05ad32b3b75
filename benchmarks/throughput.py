"""Per-core throughput of Preprocess and of the serving stack, for the capacity plan.

    python -m benchmarks.throughput [--rows 1000000] [--stack-rows 300000] [--repeat 2]
        [--workdir build/benchmarks] [--record [--output pipelines/capacity_measurements.json]]

It measures the two rates ``python -m pipelines.capacity`` projects from, on the demo's
generated rows (``id`` + the sample's 30 float features):

* **Preprocess per core**: ``preprocess.py`` run as the Processing job runs it (the image's
  runtime twin, a fresh interpreter, the sample model's baseline so drift is measured), one
  worker (``--workers 1`` when the script has that option, else today's single process),
  best of ``--repeat``. The rate per core is rows over the child's CPU seconds (user +
  system): a worker that used more than one core is not counted as one core. Also its wall
  rate, its peak RSS (what bounds the workers an instance's memory holds), the input's bytes
  per row and the output's (what the job downloads and uploads).
* **Serving per core**: the scikit-learn image's serving stack in its runtime twin
  (``benchmarks.transform.serving_stack``: gunicorn, gevent, Flask, the sample's handlers)
  answering the Transform's 6 MB mini-batches, with 1 to this machine's core count workers
  (as many requests at a time), best of ``--repeat`` each. One worker's ``predict_proba``
  already runs its matrix product on every core (OpenBLAS threads), so the best of these
  rates is this machine's, and the rate per core is it over this machine's cores.

It prints the numbers; ``--record`` also writes them, with the machine (cores, CPU model,
Python), the date and this command, to the capacity plan's measurements file. These are
recorded numbers, not ratios: there is no target to meet, only a rate to keep honest.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import parquet_input, quality, transform
from local_mode import twin
from pipelines import capacity
from pipelines.batch_inference import preprocess

DEFAULT_ROWS = 1_000_000
DEFAULT_STACK_ROWS = 300_000


def script_has_workers_option() -> bool:
    """Whether today's ``preprocess.py`` takes ``--workers`` (asked through its ``--help``)."""
    shown = subprocess.run(
        [str(twin.python()), str(Path(preprocess.__file__)), "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return "--workers" in shown


def children_cpu_seconds() -> float:
    """User + system CPU seconds of this process's waited-for children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure_preprocess(workdir: Path, rows: int, repeat: int) -> dict[str, Any]:
    """One worker of ``preprocess.py`` on ``rows`` generated rows, best of ``repeat``."""
    inputs, _, _ = quality.prepare(workdir, rows)
    folder = inputs.parent
    arguments = ["--workers", "1"] if script_has_workers_option() else []
    runs = []
    for _ in range(repeat):
        before = children_cpu_seconds()
        peak, seconds, summary = parquet_input.run_script(folder, arguments, keep_output=True)
        cpu = children_cpu_seconds() - before
        assert summary["rows_read"] == rows, summary["rows_read"]
        written = folder / "out" / "inference"
        output = sum(f.stat().st_size for f in written.rglob("*") if f.is_file())
        shutil.rmtree(folder / "out")  # as large as the input: not kept
        runs.append(
            {
                "seconds": seconds,
                "cpu_seconds": cpu,
                "peak_rss_mib": peak,
                "output": output,
                "rows_written": summary["rows_written"],
            }
        )
    best = min(runs, key=lambda run: run["cpu_seconds"])
    input_bytes = sum(f.stat().st_size for f in inputs.iterdir() if f.is_file())
    return {
        "rows": rows,
        "arguments": arguments,
        "rows_per_second_per_core": round(rows / best["cpu_seconds"]),
        "rows_per_second_wall": round(rows / min(run["seconds"] for run in runs)),
        "cores_busy": round(best["cpu_seconds"] / best["seconds"], 2),
        "peak_rss_mib": round(max(run["peak_rss_mib"] for run in runs), 1),
        "input_bytes_per_row": round(input_bytes / rows, 1),
        "output_bytes_per_row": round(best["output"] / max(best["rows_written"], 1), 1),
    }


def measure_serving(workdir: Path, rows: int, repeat: int, cores: int) -> dict[str, Any]:
    """The serving stack with 1..``cores`` workers on ``rows`` rows of 6 MB requests."""
    source, server = transform.prepare(workdir, rows)
    batches = transform.mini_batches(source, rows)
    sent = sum(payload.count(b"\n") for payload in batches)
    by_workers = {
        workers: round(
            sent / min(transform.serving_stack(batches, server, workers) for _ in range(repeat))
        )
        for workers in range(1, cores + 1)
    }
    best = max(by_workers.values())
    return {
        "rows": sent,
        "request_mb": 6,
        "rows_per_second_by_workers": {str(k): v for k, v in by_workers.items()},
        "rows_per_second_machine": best,
        "rows_per_second_per_core": round(best / cores),
    }


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """What the rates were measured on."""
    twin_python = subprocess.run(
        [str(twin.python()), "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return {
        "cores": os.cpu_count(),
        "cpu_model": cpu_model(),
        "architecture": platform.machine(),
        "python": platform.python_version(),
        "twin_python": twin_python,
        "system": f"{platform.system()} {platform.release()}",
        # a shared machine's other work slows the serving stack's wall-clock rate (the
        # Preprocess rate is per CPU second, which it disturbs far less)
        "load_average_at_start": round(os.getloadavg()[0], 2),
    }


def command(args: argparse.Namespace) -> str:
    parts = ["python -m benchmarks.throughput", f"--rows {args.rows}"]
    parts.append(f"--stack-rows {args.stack_rows} --repeat {args.repeat} --record")
    return " ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.throughput", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="rows for Preprocess")
    parser.add_argument("--stack-rows", type=int, default=DEFAULT_STACK_ROWS)
    parser.add_argument("--repeat", type=int, default=3, help="best of N for each timing")
    parser.add_argument("--workdir", type=Path, default=Path("build/benchmarks"))
    parser.add_argument("--record", action="store_true", help="write the measurements file")
    parser.add_argument("--output", type=Path, default=capacity.MEASUREMENTS)
    args = parser.parse_args(argv)
    if args.rows < 1 or args.stack_rows < 1 or args.repeat < 1:
        parser.error("--rows, --stack-rows and --repeat must be at least 1")
    cores = os.cpu_count() or 1
    stack_rows = min(args.stack_rows, args.rows)
    document = {
        "measured_on": datetime.now(UTC).date().isoformat(),
        "command": command(args),
        "machine": machine(),
        "preprocess": measure_preprocess(args.workdir, args.rows, args.repeat),
        "serving": measure_serving(args.workdir, stack_rows, args.repeat, cores),
    }
    print(json.dumps(document, indent=2))
    if args.record:
        args.output.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"recorded: {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
