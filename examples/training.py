"""Train an example's model where it will be served: in the runtime twin of its image.

A model pickled by another scikit-learn than the one that unpickles it warns on every worker
(``InconsistentVersionWarning``) and may not load at all after the next change, so each
example's ``python -m examples.<name>.model --output DIR`` runs in the twin's interpreter
(its scikit-learn, numpy, pandas and joblib) and leaves the artifact, its baseline and a
summary that :func:`build` reads back here. A team's training pipeline does the same in the
image's own container.

A model that measures its holdout also leaves ``model-quality.json``: the holdout's quality in
the shape of SageMaker Model Monitor's model quality statistics
(``binary_classification_metrics``, each metric a ``value``), registered as the package's
``ModelMetrics.ModelQuality.Statistics``; a stage's model-quality job measures each scored
day's drop against it (``pipelines/batch_inference/evaluate.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from common.stage_model import container_environment as container_environment  # its API
from local_mode import twin

ARCHIVE, BASELINE, SUMMARY = "model.tar.gz", "baseline.json", "training.json"
MODEL_QUALITY = "model-quality.json"


@dataclass(frozen=True)
class Built:
    """What :func:`build` leaves: the artifact, its baseline, and how it was made."""

    archive: Path
    baseline: Path
    holdout_accuracy: float
    versions: dict[str, str]
    model_quality: Path | None = None  # the holdout's ModelQuality statistics, if measured


def build(
    module: str, destination: Path, seed: int = 0, degraded: bool = False, retrained: bool = False
) -> Built:
    """Run ``python -m <module> --output destination --seed seed [--degraded | --retrained]``
    in the runtime twin."""
    destination.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "PYTHONPATH": str(twin.REPOSITORY), "PYTHONNOUSERSITE": "1"}
    environment.pop("PYTHONHOME", None)
    command = [str(twin.python()), "-m", module, "--output", str(destination), "--seed", str(seed)]
    finished = subprocess.run(
        command + (["--degraded"] if degraded else []) + (["--retrained"] if retrained else []),
        cwd=twin.REPOSITORY, env=environment, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if finished.returncode:
        raise RuntimeError(f"training in the runtime twin failed: {finished.stderr.strip()}")
    summary = json.loads((destination / SUMMARY).read_text())
    quality = destination / MODEL_QUALITY
    return Built(
        destination / ARCHIVE,
        destination / BASELINE,
        float(summary["holdout_accuracy"]),
        dict(summary["versions"]),
        quality if summary.get("model_quality") else None,
    )


def binary_classification_statistics(
    labels: Any, scores: Any, threshold: float = 0.5
) -> dict[str, Any]:
    """A holdout's quality as Model Monitor's model quality job writes it for a binary
    classifier: ``binary_classification_metrics``, each metric a ``value`` (its
    ``standard_deviation`` is "NaN": Model Monitor gives one only from 200 rows, and the
    holdout is smaller). ``scores``: the positive class's probability (run in the twin)."""
    import numpy as np
    from sklearn import metrics

    truth = np.asarray(labels).astype(int)
    predicted = (np.asarray(scores) >= threshold).astype(int)
    matrix = metrics.confusion_matrix(truth, predicted, labels=[0, 1])
    values = {
        "recall": metrics.recall_score(truth, predicted, zero_division=0),
        "precision": metrics.precision_score(truth, predicted, zero_division=0),
        "accuracy": metrics.accuracy_score(truth, predicted),
        "auc": metrics.roc_auc_score(truth, scores),
        "f1": metrics.f1_score(truth, predicted, zero_division=0),
    }
    section: dict[str, Any] = {
        "confusion_matrix": {
            str(actual): {str(guess): int(matrix[actual, guess]) for guess in (0, 1)}
            for actual in (0, 1)
        }
    }
    section |= {
        name: {"value": float(value), "standard_deviation": "NaN"} for name, value in values.items()
    }
    return {"binary_classification_metrics": section}


def write_outputs(
    destination: Path,
    baseline: dict[str, Any],
    holdout_accuracy: float,
    model_quality: dict[str, Any] | None = None,
) -> None:
    """The baseline, the ModelQuality statistics and the summary :func:`build` reads (run in
    the twin, after packaging)."""
    import joblib
    import numpy as np
    import sklearn

    destination.mkdir(parents=True, exist_ok=True)
    (destination / BASELINE).write_text(json.dumps(baseline, indent=1) + "\n", encoding="utf-8")
    versions = {
        "python": ".".join(map(str, sys.version_info[:3])),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "joblib": joblib.__version__,
    }
    if model_quality is not None:
        (destination / MODEL_QUALITY).write_text(json.dumps(model_quality, indent=1) + "\n")
    summary = {
        "holdout_accuracy": holdout_accuracy,
        "versions": versions,
        "model_quality": model_quality is not None,
    }
    (destination / SUMMARY).write_text(json.dumps(summary, indent=1) + "\n")


class Trained(Protocol):
    """What an example's ``train`` returns."""

    @property
    def baseline(self) -> dict[str, Any]: ...

    @property
    def holdout_accuracy(self) -> float: ...


_Model = TypeVar("_Model", bound=Trained)


def main(
    argv: Sequence[str] | None,
    description: str,
    train: Callable[[int], _Model],
    package: Callable[[_Model, Path], Path],
    train_degraded: Callable[[int], _Model] | None = None,
    train_retrained: Callable[[int], _Model] | None = None,
) -> int:
    """An example's ``python -m examples.<name>.model --output DIR [--seed N] [--degraded]``
    (in the twin): train, package into ``DIR/model.tar.gz``, write the baseline, the
    ModelQuality statistics (when the model measures them: ``model_quality``) and the
    summary. ``--degraded``: ``train_degraded``, a deliberately worse model (for the demo's
    quality alarm); an example without one refuses it (exit 2). ``--retrained``:
    ``train_retrained``, the demo's second version, trained again so that a few percent of
    its decisions differ (what ``make demo``'s shadow run shows before the prod approval)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    variant = parser.add_mutually_exclusive_group()
    variant.add_argument("--degraded", action="store_true", help="train a deliberately worse model")
    variant.add_argument(
        "--retrained", action="store_true", help="train the demo's second, retrained version"
    )
    args = parser.parse_args(argv)
    if args.degraded and train_degraded is None:
        parser.error("--degraded: this example has no degraded model")
    if args.retrained and train_retrained is None:
        parser.error("--retrained: this example has no retrained model")
    chosen = train
    if args.degraded and train_degraded:
        chosen = train_degraded
    elif args.retrained and train_retrained:
        chosen = train_retrained
    trained = chosen(args.seed)
    package(trained, args.output / ARCHIVE)
    write_outputs(
        args.output,
        trained.baseline,
        trained.holdout_accuracy,
        getattr(trained, "model_quality", None),
    )
    return 0
