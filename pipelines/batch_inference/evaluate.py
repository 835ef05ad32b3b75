"""Processing-job script: a day's model quality, once its delayed labels have landed.

Ground truth arrives days after a day was scored, as CSV files under the stage's labels
prefix (``<labels>/dt=YYYY-MM-DD/*.csv``, a header with the id column and the label
column). This script joins them by id with the day's rows of the predictions table (the
Publish step's ``day=YYYY-MM-DD/`` files, only the rows of the execution the day's marker
says Succeeded: a day forced to run again holds two executions' rows) and measures:

* classification (the answer is the positive class's probability, the label 0 or 1): AUC,
  accuracy, precision and recall at the package's threshold, log loss, the Brier score and
  the expected calibration error (10 equal-width bins, as scikit-learn's
  ``calibration_curve``);
* regression: MAE, RMSE and bias (mean of prediction minus label);
* the join's coverage: labels without a prediction, predictions without a label.

It compares the headline metric (AUC; RMSE for regression) with the value the package was
registered with (``ModelQuality`` statistics, Model Monitor's shape:
``{"binary_classification_metrics": {"auc": {"value": ...}}}`` or ``regression_metrics``)
and reports the relative drop (``quality_drop``: 0.1 is 10 % worse; negative is better).

Its stdout's one JSON line (``"event": "model-quality"``) is what the stage's metric
filters read (the job runs network-isolated, so it cannot call CloudWatch); the same
numbers go to ``<output-dir>/model-quality.json`` for the day's marker. Bad labels (no id or
label column, a label that is no number or no class, an id twice) fail the job with one
line in ``--exit-message``: a quality figure over part of the ground truth would mislead,
and nothing is written. numpy and pyarrow only, like ``preprocess.py``: it runs in the
scikit-learn image, network-isolated.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

DEFAULT_LABELS_DIR = "/opt/ml/processing/input/labels"
DEFAULT_PREDICTIONS_DIR = "/opt/ml/processing/input/predictions"
DEFAULT_OUTPUT_DIR = "/opt/ml/processing/output/quality"
RESULT = "model-quality.json"
EVENT = "model-quality"
TASKS = ("classification", "regression")
# the headline metric per task, its key in Model Monitor's statistics, and whether higher
# is better: the drop is measured on it
HEADLINE = {
    "classification": ("auc", "binary_classification_metrics", True),
    "regression": ("rmse", "regression_metrics", False),
}
CALIBRATION_BINS = 10
LABEL_SUFFIXES = (".csv", ".csv.gz")


class EvaluationError(Exception):
    """The labels or predictions cannot be evaluated; the message says why and the fix."""


@dataclass(frozen=True)
class Joined:
    """The day's labelled predictions, and how well the two sides met."""

    labels: np.ndarray
    scores: np.ndarray
    coverage: dict[str, int | float]


def _files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name.endswith(suffixes))


def read_labels(folder: Path, id_column: str, label_column: str) -> pa.Table:
    """Every labels file of the day: ``id`` as text, ``label`` as a number; one clear
    ``EvaluationError`` for a missing column or a label that is not a number."""
    files = _files(folder, LABEL_SUFFIXES)
    if not files:
        raise EvaluationError(f"no labels file (*.csv) under {folder}: upload the day's labels")
    tables = []
    for path in files:
        try:
            table = pacsv.read_csv(
                path,
                convert_options=pacsv.ConvertOptions(
                    column_types={id_column: pa.string(), label_column: pa.string()},
                    include_columns=[id_column, label_column],
                    strings_can_be_null=False,
                ),
            )
        except (pa.ArrowInvalid, pa.ArrowKeyError) as error:
            message = str(error).splitlines()[0]
            if isinstance(error, pa.ArrowKeyError):  # "Column 'id' ... does not exist"
                raise EvaluationError(
                    f"{path.name}: needs the columns {id_column!r} and {label_column!r} in its "
                    "header (the stage's id column and label_column)"
                ) from None
            raise EvaluationError(f"{path.name}: not a readable CSV ({message})") from None
        try:
            label = pc.cast(pc.utf8_trim_whitespace(table[label_column]), pa.float64())
        except pa.ArrowInvalid as error:
            raise EvaluationError(
                f"{path.name}: a label that is not a number ({str(error).splitlines()[0]}): "
                "write each label as a number"
            ) from None
        tables.append(pa.table({"id": table[id_column], "label": label}))
    return pa.concat_tables(tables)


def read_predictions(
    folder: Path, id_column: str, score_column: str, execution_id: str
) -> pa.Table:
    """The day's predictions of ``execution_id`` from the table's CSV or Parquet files."""
    columns = [id_column, score_column, "execution_id"]
    tables = []
    for path in _files(folder, (".csv", ".parquet")):
        try:
            if path.name.endswith(".parquet"):
                table = pq.read_table(path, columns=columns)
            else:
                table = pacsv.read_csv(
                    path,
                    convert_options=pacsv.ConvertOptions(
                        column_types={id_column: pa.string(), score_column: pa.float64(),
                                      "execution_id": pa.string()},
                        include_columns=columns,
                    ),
                )  # fmt: skip
        except (pa.ArrowInvalid, pa.ArrowKeyError, KeyError) as error:
            raise EvaluationError(
                f"{path.name}: not a predictions table file with {columns} "
                f"({str(error).splitlines()[0]}): check score_column"
            ) from None
        kept = table.filter(pc.equal(table["execution_id"], execution_id))
        tables.append(
            pa.table({"id": kept[id_column].cast(pa.string()),
                      "score": kept[score_column].cast(pa.float64())})
        )  # fmt: skip
    if not tables:
        return pa.table({"id": pa.array([], pa.string()), "score": pa.array([], pa.float64())})
    return pa.concat_tables(tables)


def _duplicate(ids: pa.ChunkedArray) -> str | None:
    """One id that appears more than once, or None."""
    if pc.count_distinct(ids).as_py() == len(ids):
        return None
    counts = pc.value_counts(ids)
    twice = counts.filter(pc.greater(counts.field("counts"), 1))
    return str(twice[0]["values"].as_py())


def join(labels: pa.Table, predictions: pa.Table, task: str) -> Joined:
    """Labels and predictions joined by id, with the join's coverage; duplicate ids and
    classification labels other than 0/1 are errors."""
    for side, table, fix in (
        ("labels", labels, "give each id one label"),
        ("predictions", predictions, "the execution scored an id twice: deduplicate the input"),
    ):
        twice = _duplicate(table["id"])
        if twice is not None:
            raise EvaluationError(f"{side}: id {twice!r} appears more than once: {fix}")
    if task == "classification":
        values = labels["label"].to_numpy()
        wrong = values[(values != 0) & (values != 1)]
        if wrong.size:
            raise EvaluationError(
                f"labels: {wrong.size} label(s) are not 0 or 1 (e.g. {wrong[0]:g}): a "
                "classification label is the class, 1 for the positive one"
            )
    matched = labels.join(predictions, keys="id", join_type="inner")
    scores = matched["score"].to_numpy()
    finite = np.isfinite(scores)
    coverage: dict[str, int | float] = {
        "labels": labels.num_rows,
        "predictions": predictions.num_rows,
        "matched": matched.num_rows,
        "labels_without_prediction": labels.num_rows - matched.num_rows,
        "predictions_without_label": predictions.num_rows - matched.num_rows,
        "unscored": int((~finite).sum()),  # matched, but the model answered no number
        "label_coverage": matched.num_rows / labels.num_rows if labels.num_rows else 0.0,
    }
    return Joined(matched["label"].to_numpy()[finite], scores[finite], coverage)


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve: the Mann-Whitney U statistic over average ranks (ties
    count one half), as scikit-learn's ``roc_auc_score``; NaN with one class only."""
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        return math.nan
    order = np.argsort(scores, kind="mergesort")
    ranked = scores[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    ends = np.r_[starts[1:], ranked.size]
    average = (starts + ends + 1) / 2.0  # 1-based average rank of each run of ties
    ranks = np.empty(scores.size)
    ranks[order] = np.repeat(average, ends - starts)
    u = ranks[labels == 1].sum() - positives * (positives + 1) / 2.0
    return float(u / (positives * negatives))


def calibration_error(labels: np.ndarray, scores: np.ndarray, bins: int) -> float:
    """Expected calibration error: the row-weighted gap between the mean predicted
    probability and the fraction of positives, over ``bins`` equal-width bins (the bins of
    scikit-learn's ``calibration_curve(strategy="uniform")``)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.searchsorted(edges[1:-1], scores)  # scikit-learn's: a bin holds its upper edge
    counts = np.bincount(which, minlength=bins)
    predicted = np.bincount(which, weights=scores, minlength=bins)
    observed = np.bincount(which, weights=labels, minlength=bins)
    used = counts > 0
    gaps = np.abs(observed[used] - predicted[used]) / counts[used]
    return float((gaps * counts[used]).sum() / labels.size)


def classification_metrics(
    labels: np.ndarray, scores: np.ndarray, threshold: float
) -> dict[str, float]:
    if scores.size and (scores.min() < 0 or scores.max() > 1):
        raise EvaluationError(
            "predictions: a score outside [0, 1]: a classification's score_column must be "
            "the positive class's probability"
        )
    predicted = scores >= threshold
    truth = labels == 1
    hits = int((predicted & truth).sum())
    eps = np.finfo(np.float64).eps  # scikit-learn's clipping for float64 input
    clipped = np.clip(scores, eps, 1 - eps)
    log_loss = -np.mean(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped))
    return {
        "auc": auc(labels, scores),
        "accuracy": float((predicted == truth).mean()),
        "precision": hits / int(predicted.sum()) if predicted.any() else 0.0,
        "recall": hits / int(truth.sum()) if truth.any() else 0.0,
        "log_loss": float(log_loss),
        "brier": float(np.mean((scores - labels) ** 2)),
        "calibration_error": calibration_error(labels, scores, CALIBRATION_BINS),
        "positive_rate": float(truth.mean()),
    }


def regression_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    errors = scores - labels
    return {
        "mae": float(np.abs(errors).mean()),
        "rmse": float(np.sqrt(np.mean(errors**2))),
        "bias": float(errors.mean()),
    }


def registered_value(statistics: dict[str, Any] | None, task: str) -> float | None:
    """The headline metric the package was registered with, or None when it declared none."""
    if not statistics:
        return None
    name, section, _ = HEADLINE[task]
    entry = statistics.get(section, {}).get(name)
    value = entry.get("value") if isinstance(entry, dict) else entry
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise EvaluationError(
            f"registered ModelQuality: {section}.{name} {value!r} is not a number: fix the "
            "package's model quality statistics"
        )
    return float(value)


def read_registered(path: Path | None) -> dict[str, Any] | None:
    """The package's ModelQuality statistics: the file, or the one JSON file in the folder
    a Processing input downloads it into (keeping its name); None when there is none."""
    if path is None:
        return None
    files = sorted(path.glob("*.json")) if path.is_dir() else [path] if path.is_file() else []
    if not files:
        return None
    try:
        loaded = json.loads(files[0].read_text())
    except ValueError:
        loaded = None
    if not isinstance(loaded, dict):
        raise EvaluationError(
            f"{files[0].name}: the registered ModelQuality statistics are not a JSON object: "
            "fix the package's model quality statistics"
        )
    return loaded


def quality_drop(observed: float, registered: float | None, task: str) -> float | None:
    """How much worse the headline metric is than registered, as a fraction of it."""
    if registered is None or not math.isfinite(observed) or registered == 0:
        return None
    higher_is_better = HEADLINE[task][2]
    worse = registered - observed if higher_is_better else observed - registered
    return worse / abs(registered)


def evaluate(
    labels: pa.Table,
    predictions: pa.Table,
    *,
    task: str,
    threshold: float,
    registered: dict[str, Any] | None,
    max_drop: float,
) -> dict[str, Any]:
    """The day's quality: metrics, coverage, registered headline, drop and verdict."""
    joined = join(labels, predictions, task)
    if joined.labels.size == 0:
        raise EvaluationError(
            f"no label's id is among the day's scored predictions ({joined.coverage['labels']} "
            f"label(s), {joined.coverage['predictions']} prediction(s)): check the labels' day "
            "and id column"
        )
    if task == "classification":
        metrics = classification_metrics(joined.labels, joined.scores, threshold)
    else:
        metrics = regression_metrics(joined.labels, joined.scores)
    headline = HEADLINE[task][0]
    reference = registered_value(registered, task)
    drop = quality_drop(metrics[headline], reference, task)
    verdict = "unknown" if drop is None else ("degraded" if drop > max_drop else "ok")
    return {
        "task": task,
        "threshold": threshold if task == "classification" else None,
        "metrics": metrics,
        "coverage": joined.coverage,
        "headline": headline,
        "registered": reference,
        "quality_drop": drop,
        "max_quality_drop": max_drop,
        "verdict": verdict,
    }


def metric_line(result: dict[str, Any], pipeline: str, day: str, execution_id: str) -> str:
    """The one JSON line the stage's metric filters read: flat fields, finite numbers only
    (a field a filter tests must be a number; an unknown drop is left out, not null)."""
    fields: dict[str, Any] = {"event": EVENT, "pipeline": pipeline, "date": day,
                              "execution_id": execution_id, "task": result["task"]}  # fmt: skip
    numbers = {**result["metrics"], "label_coverage": result["coverage"]["label_coverage"],
               "labels_matched": result["coverage"]["matched"],
               "quality_drop": result["quality_drop"]}  # fmt: skip
    fields.update(
        {k: round(v, 6) for k, v in numbers.items() if v is not None and math.isfinite(v)}
    )
    return json.dumps(fields, sort_keys=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels-dir", type=Path, default=Path(DEFAULT_LABELS_DIR))
    parser.add_argument("--predictions-dir", type=Path, default=Path(DEFAULT_PREDICTIONS_DIR))
    parser.add_argument("--output-dir", type=Path, default=Path(DEFAULT_OUTPUT_DIR))
    parser.add_argument(
        "--registered", type=Path, help="the package's ModelQuality statistics (file or folder)"
    )
    parser.add_argument("--id-column", required=True)
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--score-column", default="prediction")
    parser.add_argument("--task", choices=TASKS, default="classification")
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--max-quality-drop", type=float, default=0.05)
    parser.add_argument("--execution-id", required=True, help="the day's Succeeded execution")
    parser.add_argument("--day", required=True, help="YYYY-MM-DD")
    parser.add_argument("--pipeline-name", default="")
    parser.add_argument("--exit-message", type=Path)
    args = parser.parse_args(argv)
    try:
        if not 0 < args.threshold < 1:
            raise EvaluationError(f"--threshold {args.threshold:g} must be between 0 and 1")
        statistics = read_registered(args.registered)
        result = evaluate(
            read_labels(args.labels_dir, args.id_column, args.label_column),
            read_predictions(
                args.predictions_dir, args.id_column, args.score_column, args.execution_id
            ),
            task=args.task,
            threshold=args.threshold,
            registered=statistics,
            max_drop=args.max_quality_drop,
        )
    except EvaluationError as error:
        print(f"evaluate failed: {error}", file=sys.stderr, flush=True)
        if args.exit_message:
            args.exit_message.parent.mkdir(parents=True, exist_ok=True)
            args.exit_message.write_text(f"evaluate failed: {error}"[:1024])
        return 2
    document = {"date": args.day, "execution_id": args.execution_id, **result}
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / RESULT).write_text(json.dumps(document, indent=1) + "\n")
    print(metric_line(result, args.pipeline_name, args.day, args.execution_id), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
