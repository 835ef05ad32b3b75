"""Preprocess's peak memory on Parquet input: flat in the file's size (#31).

    python -m benchmarks.parquet_input [--rows 1000000] [--scale 10] [--workdir build/benchmarks]

Writes two Parquet files of the same shape (``id``, an int, a float and a nullable string
feature; a NaN every 1000 rows, rejected; row groups of 1 048 576 rows, pyarrow's default),
``--rows`` and ``--scale`` times as many, and runs ``preprocess.py`` on each as the
Processing job does (the image's runtime twin, a fresh interpreter, a baseline so the drift
is measured). It prints each run's peak RSS (the child's ``VmHWM``: ``ru_maxrss`` of a
child keeps its parent's peak from before the exec) and time, and the ratio of the peaks
(target: the larger file's peak at most 1.3x the smaller's). The baseline is measured in
the same run: the ratio, not the MiB, is the result.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from local_mode import twin
from pipelines.batch_inference import preprocess, quality

TARGET_RATIO = 1.3
CHUNK_ROWS = 1 << 20  # rows generated and written at a time (one row group each)
SCHEMA = {
    "id_column": "id",
    "features": [
        {"name": "age", "type": "int"},
        {"name": "income", "type": "float"},
        {"name": "segment", "type": "string", "nullable": True},
    ],
}
SEGMENTS = pa.array(["gold", "silver", "bronze", "retail", "online", "partner", "staff"])


def _chunk(start: int, rows: int, rng: np.random.Generator) -> pa.Table:
    index = pa.array(np.arange(start, start + rows))
    income = rng.normal(3.0, 1.0, rows)
    income[(np.arange(start, start + rows) % 1000) == 999] = np.nan  # rejected rows
    segment = pc.take(SEGMENTS, pa.array(rng.integers(0, len(SEGMENTS), rows)))
    null = pa.array((np.arange(start, start + rows) % 10) == 0)
    return pa.table(
        {
            "id": pc.binary_join_element_wise("r", pc.cast(index, pa.string()), "-"),
            "age": pa.array(rng.integers(18, 90, rows)),
            "income": pa.array(income),
            "segment": pc.if_else(null, pa.scalar(None, pa.string()), segment),
        }
    )


def prepare(workdir: Path, rows: int) -> Path:
    """The folder holding a ``rows``-row Parquet file, its schema and a baseline (reused)."""
    folder = workdir / f"parquet-{rows}"
    source = folder / "in" / "batch.parquet"
    if source.exists() and (folder / "baseline.json").exists():
        return folder
    source.parent.mkdir(parents=True, exist_ok=True)
    (folder / "feature-schema.json").write_text(json.dumps(SCHEMA))
    rng = np.random.default_rng(31)
    first = _chunk(0, min(rows, CHUNK_ROWS), rng)
    with pq.ParquetWriter(source, first.schema) as writer:
        writer.write_table(first)
        for start in range(CHUNK_ROWS, rows, CHUNK_ROWS):
            writer.write_table(_chunk(start, min(CHUNK_ROWS, rows - start), rng))
    sample = first.slice(0, 100_000)
    baseline = quality.compute_baseline(
        {
            "age": sample["age"].to_numpy(),
            "income": sample["income"].to_numpy(zero_copy_only=False),
            "segment": sample["segment"].to_pylist(),
        },
        categorical=["segment"],
    )
    (folder / "baseline.json").write_text(json.dumps(baseline))
    return folder


def run_script(
    folder: Path, arguments: Sequence[str] = (), keep_output: bool = False
) -> tuple[float, float, dict]:
    """``preprocess.py`` on the folder in the runtime twin, with ``arguments`` added: (peak
    RSS MiB, seconds, summary). Its output (``folder/out``) is removed unless ``keep_output``."""
    out = folder / "out"
    shutil.rmtree(out, ignore_errors=True)
    argv = [
        "preprocess", "--input-dir", str(folder / "in"), "--output-dir", str(out),
        "--schema", str(folder / "feature-schema.json"),
        "--baseline", str(folder / "baseline.json"), *arguments,
    ]  # fmt: skip
    code = (
        "import runpy, sys\n"
        f"sys.argv = {argv!r}\n"
        "try:\n"
        f"    runpy.run_path({str(Path(preprocess.__file__))!r}, run_name='__main__')\n"
        "except SystemExit as exited:\n"
        "    assert not exited.code, exited.code\n"
        "print([l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1])\n"
    )
    started = time.perf_counter()
    result = subprocess.run(
        [str(twin.python()), "-c", code], capture_output=True, text=True, check=True
    )
    seconds = time.perf_counter() - started
    peak_kib = int(result.stdout.strip().splitlines()[-1])
    summary = json.loads((out / "summary" / "algo-1.json").read_text())
    if not keep_output:
        shutil.rmtree(out)  # the inference output is as large as the input: not kept
    return peak_kib / 1024, seconds, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmarks.parquet_input", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--scale", type=int, default=10, help="the larger file: this many times")
    parser.add_argument("--workdir", type=Path, default=Path("build/benchmarks"))
    args = parser.parse_args(argv)
    results: dict[str, dict] = {}
    peaks = []
    for rows in (args.rows, args.rows * args.scale):
        folder = prepare(args.workdir, rows)
        size = (folder / "in" / "batch.parquet").stat().st_size
        peak, seconds, summary = run_script(folder)
        expected_rejected = (rows + 1) // 1000
        assert summary["rows_read"] == rows, summary["rows_read"]
        assert summary["rows_rejected"] == expected_rejected, summary["rows_rejected"]
        assert summary["rows_written"] == rows - expected_rejected
        peaks.append(peak)
        results[f"{rows} rows"] = {
            "parquet_mib": round(size / 2**20, 1),
            "peak_rss_mib": round(peak, 1),
            "seconds": round(seconds, 1),
            "rows_per_second": round(rows / seconds),
        }
    ratio = peaks[1] / peaks[0]
    print(json.dumps({**results, "peak_ratio": round(ratio, 3)}, indent=2))
    met = ratio <= TARGET_RATIO
    print(f"{'met' if met else 'NOT MET'}: peak RSS at {args.scale}x the rows <= {TARGET_RATIO}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
