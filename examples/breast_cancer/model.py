"""Train the sample model and package it the way SageMaker serves scikit-learn models.

A scikit-learn ``Pipeline`` (scaler + logistic regression), so the scaling fitted on the
training data travels inside the artifact and the batch is never re-fitted. Its data-quality
baseline (the training features' statistics and the holdout's predictions) is written beside
it and registered as the package's ``DriftCheckBaselines``; the holdout's quality (AUC,
accuracy, precision, recall, F1, as Model Monitor's statistics) as its
``ModelMetrics.ModelQuality``, what a stage's model-quality job measures each day against.
``--degraded`` trains the same pipeline on shuffled labels: a model no better than chance
whose holdout says so, which ``make demo`` scores a day with to trip the stage's
``quality_drop`` alarm. ``--retrained`` (with ``--seed 1``) is the demo's second version:
another split, fitted on a random 40 % of its training rows; about as good on its holdout
(0.974, the first version's 0.982), yet a few percent of the demo's rows land on the other
side of 0.5 (on 1,000 generated rows: 2.5 %, 19 up and 6 down, PSI of the scores 0.05),
which the shadow run shows before the prod approval.

:func:`build` trains in the runtime twin of the image that serves the model (its
scikit-learn, numpy and joblib): a model pickled by another scikit-learn than the one that
unpickles it warns on every worker (``InconsistentVersionWarning``) and may not load at all
after the next change. ``python -m examples.breast_cancer.model --output DIR`` is what it runs.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from examples import training
from examples.training import Built
from examples.training import container_environment as container_environment  # its API
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
    model_quality: dict[str, Any]  # the holdout's, as Model Monitor's statistics


RETRAINED_SHARE = 0.4  # the retrained version's share of its split's training rows


def train(seed: int = 0, degraded: bool = False, retrained: bool = False) -> TrainedModel:
    """Fit on 80 % of the data set, measure on the rest; ``degraded``: fit on the training
    labels shuffled (the holdout keeps its true labels, so its quality is chance's);
    ``retrained``: fit on a random ``RETRAINED_SHARE`` of the training rows (another sample:
    a genuinely different model, not a worse one)."""
    features, labels = load_breast_cancer(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        features, labels, test_size=0.2, random_state=seed, stratify=labels
    )
    if degraded:
        y_train = np.random.default_rng(seed).permutation(y_train)
    if retrained:
        rng = np.random.default_rng(seed)
        kept = rng.choice(len(x_train), int(RETRAINED_SHARE * len(x_train)), replace=False)
        x_train, y_train = x_train[kept], y_train[kept]
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    pipeline.fit(x_train, y_train)
    accuracy = float(np.mean(pipeline.predict(x_test) == y_test))
    scores = pipeline.predict_proba(x_test)[:, 1]
    baseline = quality.compute_baseline(
        {name: x_train[:, i] for i, name in enumerate(feature_names())}, predictions=scores
    )
    statistics = training.binary_classification_statistics(y_test, scores)
    return TrainedModel(pipeline, accuracy, baseline, statistics)


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


def build(
    destination: Path, seed: int = 0, degraded: bool = False, retrained: bool = False
) -> Built:
    """Train, package and baseline the sample model in the image's runtime twin, into
    ``destination`` (``model.tar.gz``, ``baseline.json``, ``model-quality.json``)."""
    return training.build("examples.breast_cancer.model", destination, seed, degraded, retrained)


if __name__ == "__main__":
    sys.exit(
        training.main(
            None,
            "train and package the sample model here",
            train,
            package,
            train_degraded=partial(train, degraded=True),
            train_retrained=partial(train, retrained=True),
        )
    )
