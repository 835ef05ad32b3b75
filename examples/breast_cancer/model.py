"""Train the sample model and package it the way SageMaker serves scikit-learn models.

A scikit-learn ``Pipeline`` (scaler + logistic regression), so the scaling fitted on the
training data travels inside the artifact and the batch is never re-fitted. Its data-quality
baseline (the training features' statistics and the holdout's predictions) is written beside
it and registered as the package's ``DriftCheckBaselines``.

:func:`build` trains in the runtime twin of the image that serves the model (its
scikit-learn, numpy and joblib): a model pickled by another scikit-learn than the one that
unpickles it warns on every worker (``InconsistentVersionWarning``) and may not load at all
after the next change. ``python -m examples.breast_cancer.model --output DIR`` is what it runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from local_mode import twin
from pipelines.batch_inference import quality

INFERENCE_SCRIPT = Path(__file__).with_name("inference.py")
ENTRY_POINT = "inference.py"
ID_COLUMN = "record_id"


def feature_names() -> list[str]:
    """The data set's feature names as CSV column names: ``mean radius`` -> ``mean_radius``."""
    return [
        re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
        for name in load_breast_cancer().feature_names
    ]


def feature_schema() -> dict:
    """The schema ``preprocess.py`` validates against, in the model's feature order."""
    return {
        "id_column": ID_COLUMN,
        "features": [{"name": name, "type": "float"} for name in feature_names()],
    }


@dataclass(frozen=True)
class TrainedModel:
    pipeline: Pipeline
    holdout_accuracy: float
    baseline: dict


def train(seed: int = 0) -> TrainedModel:
    features, labels = load_breast_cancer(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        features, labels, test_size=0.2, random_state=seed, stratify=labels
    )
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    pipeline.fit(x_train, y_train)
    accuracy = float(np.mean(pipeline.predict(x_test) == y_test))
    baseline = quality.compute_baseline(
        {name: x_train[:, i] for i, name in enumerate(feature_names())},
        predictions=pipeline.predict_proba(x_test)[:, 1],
    )
    return TrainedModel(pipeline, accuracy, baseline)


def write_baseline(model: TrainedModel, destination: Path) -> Path:
    """The model's data-quality baseline as JSON (registered as its DriftCheckBaselines)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_text(json.dumps(model.baseline, indent=1) + "\n", encoding="utf-8")
    return destination


def package(model: TrainedModel, destination: Path) -> Path:
    """Write ``model.tar.gz``: ``model.joblib`` and ``code/inference.py``."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as staging:
        root = Path(staging)
        joblib.dump(model.pipeline, root / "model.joblib")
        (root / "code").mkdir()
        shutil.copy(INFERENCE_SCRIPT, root / "code" / ENTRY_POINT)
        with tarfile.open(destination, "w:gz") as archive:
            archive.add(root / "model.joblib", arcname="model.joblib")
            archive.add(root / "code", arcname="code")
    return destination


def container_environment() -> dict[str, str]:
    """What the scikit-learn serving container needs to find the handlers, and the answer's
    type for a request without ``Accept`` (the toolkit's default is JSON, which the handlers
    do not write)."""
    return {
        "SAGEMAKER_PROGRAM": ENTRY_POINT,
        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
        "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv",
    }


@dataclass(frozen=True)
class Built:
    """What :func:`build` leaves: the artifact, its baseline, and how it was made."""

    archive: Path
    baseline: Path
    holdout_accuracy: float
    versions: dict[str, str]


ARCHIVE, BASELINE, SUMMARY = "model.tar.gz", "baseline.json", "training.json"


def build(destination: Path, seed: int = 0) -> Built:
    """Train, package and baseline the sample model in the image's runtime twin, into
    ``destination`` (``model.tar.gz``, ``baseline.json``)."""
    destination.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "PYTHONPATH": str(twin.REPOSITORY), "PYTHONNOUSERSITE": "1"}
    environment.pop("PYTHONHOME", None)
    finished = subprocess.run(
        [str(twin.python()), "-m", "examples.breast_cancer.model", "--output", str(destination),
         "--seed", str(seed)],
        cwd=twin.REPOSITORY, env=environment, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if finished.returncode:
        raise RuntimeError(f"training in the runtime twin failed: {finished.stderr.strip()}")
    summary = json.loads((destination / SUMMARY).read_text())
    return Built(
        destination / ARCHIVE,
        destination / BASELINE,
        float(summary["holdout_accuracy"]),
        dict(summary["versions"]),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="train and package the sample model here")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import sklearn

    trained = train(args.seed)
    package(trained, args.output / ARCHIVE)
    write_baseline(trained, args.output / BASELINE)
    versions = {
        "python": ".".join(map(str, sys.version_info[:3])),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "joblib": joblib.__version__,
    }
    summary = {"holdout_accuracy": trained.holdout_accuracy, "versions": versions}
    (args.output / SUMMARY).write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
