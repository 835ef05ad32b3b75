"""Train the ticket-triage model and package it the way SageMaker serves scikit-learn models.

A scikit-learn ``Pipeline``: the categories one-hot encoded (a null is its own category, an
unseen one is ignored), the numbers imputed with the training median and scaled, then a
multinomial logistic regression over the three priorities. Everything fitted travels in the
artifact, with the handlers (``code/inference.py``) and the feature schema they read the
request by. The baseline is the training features' statistics (strings are categorical) and
the distribution of the priorities it predicts on a holdout.

``python -m examples.ticket_triage.model --output DIR`` runs in the image's runtime twin
(``examples.training``); :func:`build` starts it there.
"""

from __future__ import annotations

import shutil
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from examples import training
from examples.ticket_triage import data
from examples.training import Built
from pipelines.batch_inference import quality

HERE = Path(__file__).resolve().parent
SCHEMA = HERE / "feature-schema.json"
TRAINING_ROWS, HOLDOUT_ROWS = 20_000, 5_000


@dataclass(frozen=True)
class TrainedModel:
    pipeline: Pipeline
    holdout_accuracy: float
    baseline: dict


def frame(columns: dict[str, list]) -> pd.DataFrame:
    """Columns as the handlers build them from a request: strings with None, floats with NaN."""
    return pd.DataFrame(
        {
            name: pd.Series(values, dtype=object if name in data.CATEGORIES else np.float64)
            for name, values in columns.items()
        }
    )


def train(seed: int = 0) -> TrainedModel:
    tickets = data.draw(TRAINING_ROWS + HOLDOUT_ROWS, seed=seed)
    features = frame(tickets.columns)
    labels = np.asarray(tickets.priorities)
    train_x, test_x = features.iloc[:TRAINING_ROWS], features.iloc[TRAINING_ROWS:]
    train_y, test_y = labels[:TRAINING_ROWS], labels[TRAINING_ROWS:]
    categories = list(data.CATEGORIES)
    encode = ColumnTransformer(
        [
            (
                "categories",
                make_pipeline(
                    SimpleImputer(missing_values=None, strategy="constant", fill_value="(null)"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                categories,
            ),
            (
                "numbers",
                make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                list(data.NUMBERS),
            ),
        ]
    )
    pipeline = make_pipeline(encode, LogisticRegression(max_iter=2000))
    pipeline.fit(train_x, train_y)
    predicted = pipeline.predict(test_x)
    baseline = quality.compute_baseline(
        {name: tickets.columns[name][:TRAINING_ROWS] for name in data.COLUMNS},
        predictions=[str(label) for label in predicted],
    )
    return TrainedModel(pipeline, float(np.mean(predicted == test_y)), baseline)


def package(model: TrainedModel, destination: Path) -> Path:
    """Write ``model.tar.gz``: ``model.joblib``, ``feature-schema.json`` and ``code/``."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as staging:
        root = Path(staging)
        joblib.dump(model.pipeline, root / "model.joblib")
        shutil.copy(SCHEMA, root / SCHEMA.name)
        (root / "code").mkdir()
        shutil.copy(HERE / "inference.py", root / "code" / "inference.py")
        with tarfile.open(destination, "w:gz") as archive:
            for name in ("model.joblib", SCHEMA.name, "code"):
                archive.add(root / name, arcname=name)
    return destination


def build(destination: Path, seed: int = 0, retrained: bool = False) -> Built:
    """Train, package and baseline the model in the image's runtime twin, into
    ``destination`` (``model.tar.gz``, ``baseline.json``). ``retrained``: the demo's second
    version, the same training on the tickets another ``seed`` draws (seed 1: about 2 % of
    the demo's tickets change priority)."""
    return training.build("examples.ticket_triage.model", destination, seed, retrained=retrained)


if __name__ == "__main__":
    sys.exit(
        training.main(
            None,
            "train and package the ticket-triage model",
            train,
            package,
            train_retrained=train,  # another seed draws another sample: that is the retraining
        )
    )
