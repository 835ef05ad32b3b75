"""The quality check's cost inside ``Preprocess``, measured against the same run without it.

    python -m benchmarks.quality [--rows 1000000] [--workdir build/benchmarks]

On the demo's generated input (``id`` + 30 float features, a few malformed rows) and the
sample model's training baseline, it times ``preprocess.run`` without a baseline and with
one (drift measured for every feature, the gate evaluated), best of ``--repeat`` each, and
prints the ratio (target: the check adds at most 20 %). Peak memory with the check is probed
in a fresh interpreter at a quarter of the rows and at all of them (target: flat).

It also times Preprocess's limit (#14): pyarrow's CSV read of the same file with typed
columns (the generator's ``n/a`` as null, rows with the wrong field count skipped) and a
write of the rows without a null; target: ``preprocess.run`` with the check at least 0.8x
its speed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from benchmarks.transform import peak_rss_of_this_process_mib
from examples.breast_cancer import data, model
from pipelines.batch_inference import preprocess

TARGET_OVERHEAD = 1.2
TARGET_OF_LIMIT = 0.8


def prepare(workdir: Path, rows: int) -> tuple[Path, Path, Path]:
    """Input, schema and baseline files (generated once per row count, then reused)."""
    folder = workdir / f"quality-{rows}"
    source = folder / "in" / "batch.csv"
    schema = folder / "feature-schema.json"
    baseline = folder / "baseline.json"
    if not (source.exists() and schema.exists() and baseline.exists()):
        data.generate(source, rows)
        schema.write_text(json.dumps(model.feature_schema()))
        model.write_baseline(model.train(), baseline)
    return source.parent, schema, baseline


def preprocess_seconds(inputs: Path, schema: Path, baseline: Path | None, out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    loaded = preprocess.Schema.load(schema)
    started = time.perf_counter()
    drift, note = preprocess.load_baseline(baseline, loaded)
    gate = preprocess.Gate(0.05, 0.25, "warn")
    preprocess.run(inputs, out, loaded, drift=drift, gate=gate, baseline_note=note)
    return time.perf_counter() - started


def limit_seconds(inputs: Path, schema: Path, out: Path) -> float:
    """pyarrow alone: a typed read of the same file and a write of its complete rows."""
    loaded = preprocess.Schema.load(schema)
    types = {loaded.id_column: pa.string()} | {f.name: pa.float64() for f in loaded.features}
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for source in sorted(inputs.glob("*.csv")):
        table = pacsv.read_csv(
            source,
            parse_options=pacsv.ParseOptions(invalid_row_handler=lambda _: "skip"),
            convert_options=pacsv.ConvertOptions(column_types=types, null_values=["n/a"]),
        )
        complete = table.filter(_complete(table))
        pacsv.write_csv(
            complete,
            out / source.name,
            write_options=pacsv.WriteOptions(include_header=False, quoting_style="none"),
        )
    return time.perf_counter() - started


def _complete(table: pa.Table) -> pa.Array:
    mask = pc.is_valid(table.column(0))
    for column in table.columns[1:]:
        mask = pc.and_(mask, pc.is_valid(column))
    return mask


def peak_memory_mib(rows: int, workdir: Path) -> float:
    """Peak RSS of a fresh interpreter running Preprocess with the check on ``rows`` rows."""
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.quality", "--memory-probe", str(rows),
         "--workdir", str(workdir)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return float(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.quality", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of N for each timing")
    parser.add_argument("--workdir", type=Path, default=Path("build/benchmarks"))
    parser.add_argument("--memory-probe", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_probe:
        inputs, schema, baseline = prepare(args.workdir, args.memory_probe)
        preprocess_seconds(inputs, schema, baseline, args.workdir / "quality-probe-out")
        print(peak_rss_of_this_process_mib())
        return 0

    inputs, schema, baseline = prepare(args.workdir, args.rows)
    out = args.workdir / "quality-out"
    # alternate the two, best of N each: the fastest run is the least disturbed one
    without, with_check = [], []
    for _ in range(args.repeat):
        without.append(preprocess_seconds(inputs, schema, None, out))
        with_check.append(preprocess_seconds(inputs, schema, baseline, out))
    plain, checked = min(without), min(with_check)
    limit = min(
        limit_seconds(inputs, schema, args.workdir / "limit-out") for _ in range(args.repeat)
    )
    quarter = max(args.rows // 4, 1)
    prepare(args.workdir, quarter)
    memory_quarter = peak_memory_mib(quarter, args.workdir)
    memory_full = peak_memory_mib(args.rows, args.workdir)
    results = {
        "rows": args.rows,
        "preprocess_seconds": round(plain, 2),
        "preprocess_with_quality_check_seconds": round(checked, 2),
        "with_check_vs_without": round(checked / plain, 3),
        "pyarrow_limit_seconds": round(limit, 2),
        "with_check_speed_vs_limit": round(limit / checked, 3),
        "peak_rss_mib_with_check": {
            f"{quarter} rows": round(memory_quarter),
            f"{args.rows} rows": round(memory_full),
        },
    }
    print(json.dumps(results, indent=2))
    checks = [
        (f"quality check adds <= {TARGET_OVERHEAD - 1:.0%} to Preprocess",
         checked / plain <= TARGET_OVERHEAD),
        ("peak memory flat (+25 MiB at most for 4x rows)", memory_full - memory_quarter <= 25),
        (f"Preprocess with the check >= {TARGET_OF_LIMIT}x the speed of its pyarrow limit",
         limit / checked >= TARGET_OF_LIMIT),
    ]  # fmt: skip
    for name, met in checks:
        print(f"{'met' if met else 'NOT MET'}: {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
