"""Preprocess on every core: its speed on one core against pyarrow's own typed read and
write, and two workers against one, on one large file and on many small ones (#34).

    python -m benchmarks.scale_out [--rows 1000000] [--repeat 3] [--files 40]

Every timing runs ``preprocess.py`` as the Processing job does (a fresh interpreter of the
image's runtime twin, the script by its path, the sample model's baseline so drift is
measured), best of ``--repeat``:

* **one core**: the script with ``--workers 1`` and pyarrow's limit (a typed read of the
  same file without threads, the complete rows written as CSV), both held to one CPU.
  Target: the script at least 0.8x the limit's speed;
* **two workers on two cores** against one worker: on the one large file (read in spans)
  and on the same rows as ``--files`` files. Target: at least 1.7x, each;
* **memory**: the two-worker run's processes' peaks summed (the summary's
  ``parallelism.peak_memory_mb``) within its ``--max-memory-mb``.

Each line says ``met`` or ``NOT MET``; docs/benchmarks.md records the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.quality import prepare
from local_mode import twin
from pipelines.batch_inference import preprocess

ONE_CORE_TARGET = 0.8
TWO_WORKERS_TARGET = 1.7
MEMORY_SETTING_MB = 3 * preprocess.WORKER_MEMORY_MB  # two workers and the coordinator

# pyarrow's limit: what Preprocess does at the least (typed read, complete rows, CSV out)
LIMIT = """
import sys
import pyarrow as pa, pyarrow.compute as pc, pyarrow.csv as pacsv
source, target, columns = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
types = {columns[0]: pa.string()} | {name: pa.float64() for name in columns[1:]}
table = pacsv.read_csv(
    source,
    read_options=pacsv.ReadOptions(use_threads=False),
    parse_options=pacsv.ParseOptions(invalid_row_handler=lambda _: "skip"),
    convert_options=pacsv.ConvertOptions(column_types=types, include_columns=columns),
)
mask = pc.is_valid(table.column(0))
for column in table.columns[1:]:
    mask = pc.and_(mask, pc.is_valid(column))
pacsv.write_csv(
    table.filter(mask), target,
    write_options=pacsv.WriteOptions(include_header=False, quoting_style="none"),
)
"""


def one_cpu() -> None:
    """Hold the child to the first CPU this process may use."""
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def timed(command: list[str], pinned: bool) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        command,
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=one_cpu if pinned else None,
    )
    if done.returncode:
        raise SystemExit(f"{' '.join(command[:2])} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def preprocess_command(
    inputs: Path, schema: Path, baseline: Path, out: Path, workers: int
) -> list[str]:
    shutil.rmtree(out, ignore_errors=True)
    return [
        str(twin.python()), str(Path(preprocess.__file__)),
        "--input-dir", str(inputs), "--output-dir", str(out), "--schema", str(schema),
        "--baseline", str(baseline), "--max-rejected-fraction", "0.05",
        "--quality-gate-mode", "warn", "--workers", str(workers),
        "--max-memory-mb", str(MEMORY_SETTING_MB),
    ]  # fmt: skip


def best(command: Callable[[], list[str]], repeat: int, pinned: bool = False) -> float:
    """Best of ``repeat``; ``command`` is made again each time (Preprocess's output emptied)."""
    return min(timed(command(), pinned) for _ in range(repeat))


def split_into(source: Path, folder: Path, count: int) -> Path:
    """The same rows as ``count`` CSV files of about equal size, each with the header."""
    if folder.is_dir() and len(list(folder.glob("*.csv"))) == count:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    cut = preprocess.spans(source, source.stat().st_size, -(-source.stat().st_size // count))
    with source.open("rb") as handle:
        header = handle.readline()
        for span in cut:
            handle.seek(span.start)
            body = handle.read(span.end - span.start)
            if span.start == 0:
                body = body[len(header) :]
            (folder / f"part-{span.piece:03d}.csv").write_bytes(header + body)
    return folder


def verdict(met: bool) -> str:
    return "met" if met else "NOT MET"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmarks.scale_out", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of N for each timing")
    parser.add_argument("--files", type=int, default=40, help="the many-files case's count")
    parser.add_argument("--workdir", type=Path, default=Path("build/benchmarks"))
    args = parser.parse_args(argv)
    inputs, schema, baseline = prepare(args.workdir, args.rows)
    (source,) = sorted(inputs.glob("*.csv"))
    columns = ",".join(preprocess.Schema.load(schema).columns)
    out = args.workdir / "scale-out"
    out.mkdir(parents=True, exist_ok=True)

    def script(folder: Path, workers: int) -> Callable[[], list[str]]:
        return lambda: preprocess_command(folder, schema, baseline, out, workers)

    limit = best(
        lambda: [str(twin.python()), "-c", LIMIT, str(source), str(out / "limit.csv"), columns],
        args.repeat,
        pinned=True,
    )
    one_core = best(script(inputs, 1), args.repeat, pinned=True)
    one_large = best(script(inputs, 1), args.repeat)
    two_large = best(script(inputs, 2), args.repeat)
    summary = json.loads((out / "summary" / "algo-1.json").read_text())["parallelism"]
    many = split_into(source, args.workdir / f"scale-out-{args.files}-files", args.files)
    one_many = best(script(many, 1), args.repeat)
    two_many = best(script(many, 2), args.repeat)

    print(
        f"machine: {os.cpu_count()} cores; {args.rows:,} rows ({source.stat().st_size / 1e6:.0f}"
        f" MB), best of {args.repeat}"
    )
    ratio = limit / one_core
    print(
        f"one core: Preprocess {one_core:.1f}s, pyarrow's typed read + write {limit:.1f}s: "
        f"{ratio:.2f}x its speed (target >= {ONE_CORE_TARGET}x: "
        f"{verdict(ratio >= ONE_CORE_TARGET)})"
    )
    for case, one, two in (("one large file", one_large, two_large),
                           (f"{args.files} files", one_many, two_many)):  # fmt: skip
        speedup = one / two
        print(
            f"two workers vs one, {case}: {two:.1f}s vs {one:.1f}s: {speedup:.2f}x "
            f"(target >= {TWO_WORKERS_TARGET}x: {verdict(speedup >= TWO_WORKERS_TARGET)})"
        )
    peak = summary["peak_memory_mb"]
    print(
        f"two workers' peak memory, summed: {peak:.0f} MB of the {MEMORY_SETTING_MB} MB "
        f"setting ({summary['workers']} workers, {summary['units']} spans): "
        f"{verdict(peak <= MEMORY_SETTING_MB)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
