"""Batch Transform throughput and memory, measured against baselines in the same run.

    python -m benchmarks.transform [--rows 1000000] [--workdir build/benchmarks]

On the same generated rows (``id,30 features``, as ``Preprocess`` writes them) and the same
sample model, it prints rows/s and ratios for:

* **local Transform**: the local executor's path (stream, split, ``InputFilter``,
  ``MultiRecord`` batching under ``MaxPayloadInMB``, the handlers, ``JoinSource`` +
  ``OutputFilter``, assembly; columnar for this plain CSV), with the object store on local
  disk so S3 emulation does not blur the measurement;
* **in-process limit**: read the CSV with pyarrow, ``predict_proba``, write ``id,score``: no
  batching machinery at all (target: local Transform >= 0.8x of it);
* **SageMaker toolkit path**: per mini-batch, the ``sagemaker-inference`` toolkit's CSV
  decoder, the model, its CSV encoder (what the scikit-learn container does by default);
* **sample handlers vs toolkit defaults**: the sample's CSV parse and encode
  (``examples/breast_cancer/inference.py``: ``parse_features``, ``encode_scores``) against
  the defaults on the same mini-batches (target >= 5x);
* **the real serving stack**: the scikit-learn image's (``local_mode.container``, the
  runtime twin: sagemaker-containers, gunicorn with gevent workers) answering the same 6 MB
  mini-batches over HTTP, one worker with one request at a time (rows/s per worker, against
  the in-process limit), and two workers with two requests at a time; and the local
  Transform through it (the default) against the in-process option;
* **peak memory** of the local Transform at a quarter of the rows and at all of them (target:
  flat, it streams).

``--payload-sweep 1,2,3,6`` measures only the serving stack, one worker with one request at a
time, on the same rows cut into mini-batches of each ``MaxPayloadInMB``: rows/s and ms per
request for each size, the measurement the Transform's default ``MaxPayloadInMB`` comes from.

The slow toolkit paths run on a slice of the rows (``--toolkit-rows``) and are reported per
row. The local Transform and the limit are timed best of ``--repeat`` (3) runs each.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from common.stage_model import STAGE_MODEL_ENVIRONMENT
from examples.breast_cancer import data, inference, model
from local_mode import records, transform
from local_mode.container import Container
from local_mode.serving import (
    ModelServer,
    default_input_fn,
    default_output_fn,
    extract_artifact,
)
from pipelines.batch_inference.pipeline import TRANSFORM_INPUT_FILTER, transform_output_filter

PIPELINE_TRANSFORM = {
    "TransformInput": {
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bench/in/"}},
        "ContentType": "text/csv",
        "SplitType": "Line",
    },
    "TransformOutput": {
        "S3OutputPath": "s3://bench/out",
        "Accept": "text/csv",
        "AssembleWith": "Line",
    },
    "BatchStrategy": "MultiRecord",
    "MaxPayloadInMB": 6,
    "DataProcessing": {
        "InputFilter": TRANSFORM_INPUT_FILTER,
        "JoinSource": "Input",
        "OutputFilter": transform_output_filter(len(model.feature_names())),
    },
}


class LocalDiskStore:
    """The two object-store calls ``transform_object`` makes, served from a folder."""

    def __init__(self, root: Path):
        self.root = root

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        return {"Body": (self.root / Key).open("rb")}

    def upload_file(self, filename: str, bucket: str, key: str, ExtraArgs: Any = None) -> None:
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(filename, target)


def prepare(workdir: Path, rows: int) -> tuple[Path, ModelServer]:
    """Headerless ``id,features`` input and the loaded sample model."""
    workdir.mkdir(parents=True, exist_ok=True)
    source = workdir / f"in/rows-{rows}.csv"
    source.parent.mkdir(parents=True, exist_ok=True)
    if not source.exists():
        raw = workdir / f"raw-{rows}.csv"
        data.generate(raw, rows=rows, malformed_fraction=0.0)
        with raw.open("rb") as reader, source.open("wb") as writer:
            reader.readline()
            while chunk := reader.read(2**24):
                writer.write(chunk)
        raw.unlink()
    built = model.build(workdir / "trained")
    server = ModelServer(extract_artifact(built.archive, workdir / "model"), environment())
    return source, server


def environment() -> dict[str, str]:
    """The sample's container environment as the stage's model has it."""
    return {**model.container_environment(), **STAGE_MODEL_ENVIRONMENT}


def serving_stack(batches: list[bytes], server: ModelServer, workers: int) -> float:
    """Seconds for the image's serving stack to answer ``batches`` (``workers`` gunicorn
    workers, as many requests at a time); the start is not timed."""
    with Container(server.model_dir, environment(), workers=workers) as container:
        for _ in range(workers):  # each worker loads the model on its first request
            container.request("POST", "/invocations", batches[0], CSV_HEADERS)

        def send(payload: bytes) -> None:
            status, _, _ = container.request("POST", "/invocations", payload, CSV_HEADERS)
            assert status == 200, status

        started = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(send, batches))
        return time.perf_counter() - started


def local_transform_container(source: Path, server: ModelServer, workdir: Path) -> float:
    """The local Transform as local mode runs it by default: through the container."""
    with Container(server.model_dir, environment(), workers=1) as container:
        return local_transform(source, container, workdir)


CSV_HEADERS = {"Content-Type": "text/csv", "Accept": "text/csv"}


def local_transform(source: Path, server: Any, workdir: Path) -> float:
    options = transform.TransformOptions.from_arguments(PIPELINE_TRANSFORM)
    runner = transform.RecordTransformer(server, options)
    started = time.perf_counter()
    result = transform.transform_object(
        LocalDiskStore(workdir), runner, "bench", f"in/{source.name}", workdir
    )
    elapsed = time.perf_counter() - started
    assert result.records_out == result.records_in
    return elapsed


def in_process_limit(source: Path, server: ModelServer, workdir: Path) -> float:
    started = time.perf_counter()
    table = pacsv.read_csv(source, read_options=pacsv.ReadOptions(autogenerate_column_names=True))
    features = np.column_stack([column.to_numpy() for column in table.columns[1:]])
    scores = server.model.predict_proba(features)[:, 1]
    pacsv.write_csv(
        pa.table({"id": table.column(0), "score": scores}),
        workdir / "limit.csv",
        write_options=pacsv.WriteOptions(include_header=False, quoting_style="none"),
    )
    return time.perf_counter() - started


def mini_batches(source: Path, rows: int, payload_mb: int = 6) -> list[bytes]:
    """The first ``rows`` rows as the feature payloads of ``payload_mb`` MB the Transform
    would send."""
    options = transform.TransformOptions.from_arguments(
        {**PIPELINE_TRANSFORM, "MaxPayloadInMB": payload_mb}
    )
    with source.open("rb") as reader:
        lines = [next(reader).rstrip(b"\n") for _ in range(rows)]
    features = records.select_csv(lines, options.input_filter)
    return [
        records.to_payload(features[first:last])
        for first, last in transform.request_ranges(
            transform.RecordBatch(lines, features, False).payload_sizes(), options
        )
    ]


def payload_sweep(
    source: Path, server: ModelServer, rows: int, sizes: list[int], repeat: int
) -> dict[str, dict[str, float]]:
    """Per ``MaxPayloadInMB``: the serving stack's rows/s and ms per request, one worker
    with one request at a time (best of ``repeat``), on the same ``rows`` rows."""
    found = {}
    for size in sizes:
        batches = mini_batches(source, rows, size)
        seconds = min(serving_stack(batches, server, 1) for _ in range(repeat))
        found[f"{size} MB"] = {
            "rows_per_request": round(rows / len(batches)),
            "rows_per_s": round(rows / seconds),
            "ms_per_request": round(1000 * seconds / len(batches), 1),
        }
    return found


def toolkit_path(batches: list[bytes], server: ModelServer) -> float:
    started = time.perf_counter()
    for payload in batches:
        array = default_input_fn(payload.decode(), "text/csv")
        default_output_fn(server.model.predict_proba(array)[:, 1], "text/csv")
    return time.perf_counter() - started


def handlers(batches: list[bytes], server: ModelServer, sample: bool) -> float:
    """Decode + encode only (the model is the same on both sides)."""
    scores = [np.random.default_rng(0).random(payload.count(b"\n")) for payload in batches]
    decode = (lambda body, _: inference.parse_features(body)) if sample else default_input_fn
    encode = (lambda values, _: inference.encode_scores(values)) if sample else default_output_fn
    started = time.perf_counter()
    for payload, values in zip(batches, scores, strict=True):
        decode(payload.decode(), "text/csv")
        encode(values, "text/csv")
    return time.perf_counter() - started


def peak_rss_of_this_process_mib() -> float:
    """``VmHWM``: unlike ``ru_maxrss``, it does not inherit the parent's peak across exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def peak_memory_mib(rows: int, workdir: Path) -> float:
    """Peak RSS of a fresh interpreter running the local Transform on ``rows`` rows."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.transform",
            "--memory-probe",
            str(rows),
            "--workdir",
            str(workdir),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmarks.transform", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--toolkit-rows", type=int, default=100_000)
    parser.add_argument("--stack-rows", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of N for the main timings")
    parser.add_argument("--workdir", type=Path, default=Path("build/benchmarks"))
    parser.add_argument("--memory-probe", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--payload-sweep", help="MaxPayloadInMB sizes to measure the serving stack at, e.g. 1,2,6"
    )
    args = parser.parse_args(argv)
    if args.payload_sweep:
        source, server = prepare(args.workdir, args.rows)
        sizes = [int(size) for size in args.payload_sweep.split(",")]
        rows = min(args.stack_rows, args.rows)
        print(json.dumps(payload_sweep(source, server, rows, sizes, args.repeat), indent=2))
        return 0
    if args.memory_probe:
        source, server = prepare(args.workdir, args.memory_probe)
        local_transform(source, server, args.workdir)
        print(peak_rss_of_this_process_mib())
        return 0

    source, server = prepare(args.workdir, args.rows)
    # best of N: the fastest run is the one least disturbed by the rest of the machine
    local = min(local_transform(source, server, args.workdir) for _ in range(args.repeat))
    limit = min(in_process_limit(source, server, args.workdir) for _ in range(args.repeat))
    batches = mini_batches(source, min(args.toolkit_rows, args.rows))
    toolkit_rows = min(args.toolkit_rows, args.rows)
    toolkit = toolkit_path(batches, server)
    sample_handlers = handlers(batches, server, sample=True)
    default_handlers = handlers(batches, server, sample=False)
    stack_batches = mini_batches(source, min(args.stack_rows, args.rows))
    stack_rows = sum(payload.count(b"\n") for payload in stack_batches)
    one_worker = min(serving_stack(stack_batches, server, 1) for _ in range(args.repeat))
    two_workers = min(serving_stack(stack_batches, server, 2) for _ in range(args.repeat))
    through_container = min(
        local_transform_container(source, server, args.workdir) for _ in range(args.repeat)
    )
    quarter = max(args.rows // 4, 1)
    prepare(args.workdir, quarter)  # the probes then only read: generating rows is not measured
    memory_quarter = peak_memory_mib(quarter, args.workdir)
    memory_full = peak_memory_mib(args.rows, args.workdir)

    rate = args.rows / local
    results = {
        "rows": args.rows,
        "local_transform_rows_per_s": round(rate),
        "in_process_limit_rows_per_s": round(args.rows / limit),
        "toolkit_path_rows_per_s": round(toolkit_rows / toolkit),
        "local_vs_limit": round(limit / local, 3),
        "local_vs_toolkit_path": round(rate / (toolkit_rows / toolkit), 2),
        "sample_handlers_vs_toolkit_defaults": round(default_handlers / sample_handlers, 2),
        "serving_stack_rows_per_s_one_worker": round(stack_rows / one_worker),
        "serving_stack_rows_per_s_two_workers": round(stack_rows / two_workers),
        "serving_stack_one_worker_vs_limit": round(limit / args.rows * stack_rows / one_worker, 3),
        "local_transform_through_container_rows_per_s": round(args.rows / through_container),
        "local_transform_container_vs_in_process": round(local / through_container, 3),
        "peak_rss_mib": {
            f"{quarter} rows": round(memory_quarter),
            f"{args.rows} rows": round(memory_full),
        },
    }
    print(json.dumps(results, indent=2))
    checks = [
        ("local Transform >= 0.8x in-process limit", results["local_vs_limit"] >= 0.8),
        ("local Transform >= 0.7x in-process limit (#14)", results["local_vs_limit"] >= 0.7),
        (
            "sample handlers >= 5x toolkit defaults",
            results["sample_handlers_vs_toolkit_defaults"] >= 5,
        ),
        ("peak memory flat (+25 MiB at most for 4x rows)", memory_full - memory_quarter <= 25),
    ]
    for name, met in checks:
        print(f"{'met' if met else 'NOT MET'}: {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
