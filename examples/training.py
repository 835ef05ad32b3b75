"""Train an example's model where it will be served: in the runtime twin of its image.

A model pickled by another scikit-learn than the one that unpickles it warns on every worker
(``InconsistentVersionWarning``) and may not load at all after the next change, so each
example's ``python -m examples.<name>.model --output DIR`` runs in the twin's interpreter
(its scikit-learn, numpy, pandas and joblib) and leaves the artifact, its baseline and a
summary that :func:`build` reads back here. A team's training pipeline does the same in the
image's own container.
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


@dataclass(frozen=True)
class Built:
    """What :func:`build` leaves: the artifact, its baseline, and how it was made."""

    archive: Path
    baseline: Path
    holdout_accuracy: float
    versions: dict[str, str]


def build(module: str, destination: Path, seed: int = 0) -> Built:
    """Run ``python -m <module> --output destination --seed seed`` in the runtime twin."""
    destination.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "PYTHONPATH": str(twin.REPOSITORY), "PYTHONNOUSERSITE": "1"}
    environment.pop("PYTHONHOME", None)
    finished = subprocess.run(
        [str(twin.python()), "-m", module, "--output", str(destination), "--seed", str(seed)],
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


def write_outputs(destination: Path, baseline: dict[str, Any], holdout_accuracy: float) -> None:
    """The baseline and the summary :func:`build` reads (run in the twin, after packaging)."""
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
    summary = {"holdout_accuracy": holdout_accuracy, "versions": versions}
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
) -> int:
    """An example's ``python -m examples.<name>.model --output DIR [--seed N]`` (in the twin):
    train, package into ``DIR/model.tar.gz``, write the baseline and the summary."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    trained = train(args.seed)
    package(trained, args.output / ARCHIVE)
    write_outputs(args.output, trained.baseline, trained.holdout_accuracy)
    return 0
