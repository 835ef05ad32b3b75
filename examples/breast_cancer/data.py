"""Batch-inference input for the sample model: rows drawn from the data set's distribution.

Each row is a real sample of the data set with a little Gaussian noise (1 % of each
feature's spread), an id column, and, for a small share of rows, a realistic defect (a
non-numeric value or a missing field) that ``preprocess.py`` must quarantine. Each row's
true class is its sample's (the noise is far smaller than what separates the classes):
``labels_path`` writes them beside the rows, as the delayed labels a stage's model-quality
job reads (``record_id,label``: the data set's target, 1 for benign, the class whose
probability the model answers).

    python -m examples.breast_cancer.data --rows 100000 --output build/input.csv
"""

from __future__ import annotations

import argparse
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from sklearn.datasets import load_breast_cancer

from examples.breast_cancer.model import ID_COLUMN, feature_names

CHUNK_ROWS = 100_000
LABEL_COLUMN = "label"  # the stage's label column (evaluate.py's default)


@dataclass(frozen=True)
class GeneratedInput:
    rows: int
    malformed: int
    path: Path


# what --drift shifts: the size features, by this factor (a batch the gate must stop)
DRIFTED_FEATURES = ("mean_radius", "mean_perimeter", "mean_area")
DRIFT_FACTOR = 1.5


def generate(
    path: Path,
    rows: int = 100_000,
    malformed_fraction: float = 0.002,
    seed: int = 7,
    drifted: bool = False,
    labels_path: Path | None = None,
) -> GeneratedInput:
    """Write ``rows`` rows (with a header) to ``path``, streaming in chunks; ``drifted``
    scales the size features (``DRIFTED_FEATURES``) by ``DRIFT_FACTOR``; ``labels_path``:
    also write each row's true class there (``record_id,label``, malformed rows too: the
    world labels them whatever the input's defect)."""
    features, targets = load_breast_cancer(return_X_y=True)
    names = feature_names()
    spread = features.std(axis=0) * 0.01
    rng = np.random.default_rng(seed)
    malformed = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    truth = labels_path.open("w") if labels_path else None
    with path.open("wb") as sink:
        sink.write((",".join([ID_COLUMN, *names]) + "\n").encode())
        if truth:
            truth.write(f"{ID_COLUMN},{LABEL_COLUMN}\n")
        for first in range(0, rows, CHUNK_ROWS):
            count = min(CHUNK_ROWS, rows - first)
            drawn = rng.integers(0, len(features), count)
            sample = features[drawn]
            values = np.abs(sample + rng.normal(0.0, 1.0, sample.shape) * spread)
            if drifted:
                for name in DRIFTED_FEATURES:
                    values[:, names.index(name)] *= DRIFT_FACTOR
            ids = [f"r{first + i:09d}" for i in range(count)]
            if truth:
                truth.writelines(f"{i},{c}\n" for i, c in zip(ids, targets[drawn], strict=True))
            table = pa.table({ID_COLUMN: ids, **{n: values[:, k] for k, n in enumerate(names)}})
            buffer = io.BytesIO()
            pacsv.write_csv(
                table,
                buffer,
                write_options=pacsv.WriteOptions(include_header=False, quoting_style="none"),
            )
            lines = buffer.getvalue().split(b"\n")
            for row in np.flatnonzero(rng.random(count) < malformed_fraction):
                fields = lines[row].split(b",")
                if row % 2:
                    fields[1 + int(rng.integers(len(names)))] = b"n/a"
                else:
                    fields = fields[:-1]
                lines[row] = b",".join(fields)
                malformed += 1
            sink.write(b"\n".join(lines))
    if truth:
        truth.close()
    return GeneratedInput(rows, malformed, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write sample batch-inference input.")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--malformed-fraction", type=float, default=0.002)
    args = parser.parse_args(argv)
    result = generate(args.output, args.rows, args.malformed_fraction)
    print(f"wrote {result.rows} rows ({result.malformed} malformed) to {result.path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
