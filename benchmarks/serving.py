"""Local serving throughput and latency: the sample handlers against the toolkit's defaults.

    python -m benchmarks.serving [--seconds 3] [--workdir build/benchmarks/serving]

The sample model is served twice by the same server (``local_mode.serve``: gunicorn,
one worker per vCPU), one after the other: once with its own ``inference.py`` handlers,
once with only ``model_fn`` (the scikit-learn container's defaults: the ``sagemaker-inference``
toolkit's CSV decoder and encoder, ``model.predict``). For a 1-row and a 100-row CSV payload
at concurrency 1, 8 and 32 (client threads, a new connection per request as gunicorn's sync
workers close each), it prints requests/s and p50/p99 latency, and the ratio of the two
servers' throughput (target: the sample handlers >= 5x the defaults at 100 rows). Only
successful answers count: the defaults answer a 1-row payload with a 500 (the toolkit decodes
one CSV row to a 1-D array, which scikit-learn refuses), so that row shows 0 requests/s.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import sys
import time
from pathlib import Path

import numpy as np

from common.stage_model import STAGE_MODEL_ENVIRONMENT
from examples.breast_cancer import data, model
from local_mode import serve
from local_mode.serving import extract_artifact

CONCURRENCY = (1, 8, 32)
PAYLOAD_ROWS = (1, 100)
DEFAULT_HANDLERS = """
import os

import joblib


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))
"""


def prepare(workdir: Path) -> dict[int, bytes]:
    """Two model copies (sample handlers, toolkit defaults) and the payloads."""
    archive = model.build(workdir / "trained").archive
    for name in ("sample", "defaults"):
        copy = serve.model_copy(workdir, name)
        extract_artifact(archive, copy / "model")
        environment = {**model.container_environment(), **STAGE_MODEL_ENVIRONMENT}
        (copy / serve.ENVIRONMENT_FILE).write_text(json.dumps(environment))
    entry = serve.model_copy(workdir, "defaults") / "model" / "code" / model.ENTRY_POINT
    entry.write_text(DEFAULT_HANDLERS)
    generated = data.generate(workdir / "rows.csv", rows=max(PAYLOAD_ROWS), malformed_fraction=0)
    features = [line.split(b",", 1)[1] for line in generated.path.read_bytes().splitlines()[1:]]
    return {rows: b"\n".join(features[:rows]) + b"\n" for rows in PAYLOAD_ROWS}


def _invoke(port: int, payload: bytes) -> tuple[float, int]:
    started = time.perf_counter()
    status, _, _ = serve.request(
        port,
        "POST",
        "/invocations",
        payload,
        {"Content-Type": "text/csv", "Accept": "text/csv"},
        60,
    )
    return time.perf_counter() - started, status


def load(port: int, payload: bytes, concurrency: int, seconds: float) -> dict[str, float]:
    """``concurrency`` clients sending ``payload`` back to back for ``seconds``."""
    deadline = time.perf_counter() + seconds

    def client() -> list[tuple[float, int]]:
        answers = []
        while time.perf_counter() < deadline:
            answers.append(_invoke(port, payload))
        return answers

    for _ in range(20):  # warm both workers' caches and imports
        _invoke(port, payload)
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        answers = [a for f in [pool.submit(client) for _ in range(concurrency)] for a in f.result()]
    elapsed = time.perf_counter() - started
    latencies = np.array([seconds for seconds, status in answers if status == 200])
    if not latencies.size:
        return {"requests_per_s": 0.0, "p50_ms": float("nan"), "p99_ms": float("nan")}
    return {
        "requests_per_s": round(latencies.size / elapsed, 1),
        "p50_ms": round(float(np.percentile(latencies, 50)) * 1000, 2),
        "p99_ms": round(float(np.percentile(latencies, 99)) * 1000, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.serving", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    parser.add_argument("--workdir", type=Path, default=Path("build/benchmarks/serving"))
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    payloads = prepare(args.workdir)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for name in ("sample", "defaults"):
        with serve.running_endpoint(name, args.workdir, workers=2) as port:
            for rows, payload in payloads.items():
                for concurrency in CONCURRENCY:
                    cell = f"{rows} row(s), concurrency {concurrency}"
                    results.setdefault(cell, {})[name] = load(
                        port, payload, concurrency, args.seconds
                    )
    print(f"{'payload':<28} {'handlers':<9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    ratios = {}
    for cell, measured in results.items():
        for name, numbers in measured.items():
            print(
                f"{cell:<28} {name:<9} {numbers['requests_per_s']:>8} {numbers['p50_ms']:>8} "
                f"{numbers['p99_ms']:>8}"
            )
        defaults = measured["defaults"]["requests_per_s"]
        # None: the defaults answered nothing (one CSV row decodes to a 1-D array: a 500)
        ratios[cell] = (
            round(measured["sample"]["requests_per_s"] / defaults, 2) if defaults else None
        )
    print(json.dumps({"sample_vs_defaults_throughput": ratios}, indent=2))
    at_100 = [ratio or 0.0 for cell, ratio in ratios.items() if cell.startswith("100 ")]
    met = min(at_100) >= 5
    print(
        f"{'met' if met else 'NOT MET'}: sample handlers >= 5x toolkit defaults in throughput at "
        f"100 rows (lowest over concurrency 1, 8, 32: {min(at_100)}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
