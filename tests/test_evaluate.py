"""The model-quality job's script: a day's delayed labels joined with its predictions."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from sklearn import calibration, metrics

from local_mode import alarms, quality_alarms, twin
from pipelines.batch_inference import evaluate, publish

SCRIPT = Path(evaluate.__file__)
DAY = date(2026, 11, 1)


def predictions_table(folder: Path, ids: list[str], scores: np.ndarray, execution: str,
                      output_format: str = "csv") -> None:  # fmt: skip
    """The day's rows as the Publish step writes them (its own code, its own layout)."""
    answers = folder.parent / f"answers-{execution}"
    answers.mkdir(parents=True)
    rows = "".join(f"{i},{float(s)!r}\n" for i, s in zip(ids, scores, strict=True))
    (answers / "day.csv.out").write_text(rows)
    columns = publish.parse_columns("prediction:double")
    publish.publish(answers, folder, "id", columns, (3, execution), DAY, output_format)


def labels_file(folder: Path, ids: list[str], labels: np.ndarray, name: str = "a.csv") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    body = "".join(f"{i},{label:g}\n" for i, label in zip(ids, labels, strict=True))
    (folder / name).write_text("id,label\n" + body)


def run(tmp_path: Path, *extra: str, python: str = sys.executable) -> subprocess.CompletedProcess:
    return subprocess.run(
        [python, str(SCRIPT), "--labels-dir", str(tmp_path / "labels"), "--predictions-dir",
         str(tmp_path / "table" / f"day={DAY}"), "--output-dir", str(tmp_path / "out"),
         "--id-column", "id", "--execution-id", "exec-2", "--day", str(DAY),
         "--pipeline-name", "p", "--exit-message", str(tmp_path / "message"), *extra],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip


def day(tmp_path: Path, rng: np.random.Generator, n: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """A scored day (exec-2, plus an earlier exec-1 forced over with other scores) and its
    labels: the first 300 ids unlabelled, 200 labels for ids never scored; scores rounded so
    that ties occur. Returns the matched labels and scores, in id order."""
    ids = [f"r{i:05d}" for i in range(n)]
    truth = rng.integers(0, 2, n)
    scores = np.round(np.clip(truth * 0.35 + rng.random(n) * 0.65, 0, 1), 2)
    predictions_table(tmp_path / "table", ids, scores, "exec-2", "parquet")
    predictions_table(tmp_path / "table", ids, 1 - scores, "exec-1")
    labelled = slice(300, n)
    labels_file(tmp_path / "labels", ids[labelled][:2000], truth[labelled][:2000])
    rest = ids[labelled][2000:] + [f"x{i}" for i in range(200)]
    labels_file(tmp_path / "labels", rest, np.r_[truth[labelled][2000:], np.ones(200)], "b.csv")
    return truth[labelled], scores[labelled]


def test_a_days_metrics_are_scikit_learns_in_the_image_twin(tmp_path: Path) -> None:
    """Run by its path in the scikit-learn image's runtime twin, on the Publish step's own
    table (Parquet and CSV files, two executions): every metric equals scikit-learn's on the
    matched rows of the day's Succeeded execution, and the coverage counts both sides."""
    truth, scores = day(tmp_path, np.random.default_rng(7))
    statistics = {"binary_classification_metrics": {"auc": {"value": 0.9, "standard_deviation": 0}}}
    (tmp_path / "registered.json").write_text(json.dumps(statistics))
    done = run(tmp_path, "--registered", str(tmp_path / "registered.json"), "--threshold", "0.6",
               python=str(twin.python()))  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "out" / evaluate.RESULT).read_text())
    found = result["metrics"]
    predicted = scores >= 0.6
    prob_true, prob_pred = calibration.calibration_curve(truth, scores, n_bins=10)
    counts = np.bincount(np.searchsorted(np.linspace(0, 1, 11)[1:-1], scores), None, 10)
    ece = float(np.sum(np.abs(prob_true - prob_pred) * counts[counts > 0]) / truth.size)
    expected = {
        "auc": metrics.roc_auc_score(truth, scores),
        "accuracy": metrics.accuracy_score(truth, predicted),
        "precision": metrics.precision_score(truth, predicted),
        "recall": metrics.recall_score(truth, predicted),
        "log_loss": metrics.log_loss(truth, scores),
        "brier": metrics.brier_score_loss(truth, scores),
        "calibration_error": ece,
        "positive_rate": truth.mean(),
    }
    assert found == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert result["coverage"] == {
        "labels": 3900, "predictions": 4000, "matched": 3700, "labels_without_prediction": 200,
        "predictions_without_label": 300, "unscored": 0, "label_coverage": 3700 / 3900,
    }  # fmt: skip
    assert result["registered"] == 0.9
    assert result["quality_drop"] == pytest.approx((0.9 - expected["auc"]) / 0.9)
    assert result["verdict"] == ("degraded" if result["quality_drop"] > 0.05 else "ok")
    (line,) = done.stdout.splitlines()
    printed = json.loads(line)
    assert printed["event"] == "model-quality"
    assert (printed["pipeline"], printed["date"], printed["execution_id"]) == (
        "p",
        str(DAY),
        "exec-2",
    )
    assert printed["auc"] == round(expected["auc"], 6)
    assert printed["quality_drop"] == round(result["quality_drop"], 6)


def test_the_earlier_executions_rows_are_not_the_days(tmp_path: Path) -> None:
    """exec-1's inverted scores would give 1 - AUC: only exec-2's rows count."""
    truth, scores = day(tmp_path, np.random.default_rng(3), n=1000)
    assert run(tmp_path).returncode == 0
    result = json.loads((tmp_path / "out" / evaluate.RESULT).read_text())
    assert result["metrics"]["auc"] == pytest.approx(metrics.roc_auc_score(truth, scores))
    assert result["metrics"]["auc"] > 0.5 > metrics.roc_auc_score(truth, 1 - scores)


def test_regression_metrics_and_the_drop_of_a_lower_is_better_metric(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    ids = [f"r{i}" for i in range(500)]
    truth = rng.normal(10, 3, 500)
    scores = truth + rng.normal(0.5, 1, 500)
    predictions_table(tmp_path / "table", ids, scores, "exec-2")
    labels_file(tmp_path / "labels", ids, truth)
    registered = {"regression_metrics": {"rmse": {"value": 1.0}}}
    (tmp_path / "registered.json").write_text(json.dumps(registered))
    done = run(tmp_path, "--task", "regression", "--registered", str(tmp_path / "registered.json"))
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "out" / evaluate.RESULT).read_text())
    labels = np.array([float(f"{v:g}") for v in truth])  # as the CSV carried them
    rmse = metrics.root_mean_squared_error(labels, scores)
    assert result["metrics"] == pytest.approx(
        {"mae": metrics.mean_absolute_error(labels, scores), "rmse": rmse,
         "bias": float(np.mean(scores - labels))}, rel=1e-9)  # fmt: skip
    assert result["quality_drop"] == pytest.approx(rmse - 1.0)  # relative to 1.0
    assert result["verdict"] == "degraded"
    assert "auc" not in json.loads(done.stdout)


def test_a_degraded_model_is_a_drop_over_the_limit(tmp_path: Path) -> None:
    """The same labels scored by a model that learnt nothing: AUC near 0.5, a drop of
    about 45 % from a registered 0.95, verdict degraded; the printed line carries it."""
    rng = np.random.default_rng(5)
    ids = [f"r{i}" for i in range(2000)]
    truth = rng.integers(0, 2, 2000)
    predictions_table(tmp_path / "table", ids, rng.random(2000), "exec-2")
    labels_file(tmp_path / "labels", ids, truth)
    statistics = {"binary_classification_metrics": {"auc": {"value": 0.95}}}
    (tmp_path / "registered.json").write_text(json.dumps(statistics))
    done = run(tmp_path, "--registered", str(tmp_path / "registered.json"),
               "--max-quality-drop", "0.1")  # fmt: skip
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stdout)
    assert 0.35 < line["quality_drop"] < 0.55
    # the stage's alarm, evaluated as CloudWatch would over the job's line (local mode's
    # declaration, which the Terraform apply test holds to the template's)
    alarm = quality_alarms.quality_drop_alarm(0.1)
    assert alarms.state(alarm, "p", [done.stdout])[0] == "ALARM"
    assert alarms.state(quality_alarms.quality_drop_alarm(0.6), "p", [done.stdout])[0] == "OK"
    assert alarms.state(alarm, "other-pipeline", [done.stdout])[0] == "OK"  # not its line
    assert json.loads((tmp_path / "out" / evaluate.RESULT).read_text())["verdict"] == "degraded"


@pytest.mark.parametrize(
    ("labels", "reason"),
    [
        ("key,label\nr1,1\n", "x.csv: needs the columns 'id' and 'label' in its header"),
        ("id,label\nr1,1\nr2,yes\n", "x.csv: a label that is not a number"),
        ("id,label\nr1,1\nr2,\n", "x.csv: a label that is not a number"),
        ("id,label\nr1,1\nr2,2\n", "labels: 1 label(s) are not 0 or 1 (e.g. 2)"),
        ("id,label\nr1,1\nr2,0\nr1,0\n", "labels: id 'r1' appears more than once"),
        ("id,label\nq1,1\n", "no label's id is among the day's scored predictions"),
    ],
    ids=["no-id-column", "word", "empty", "not-a-class", "duplicate", "no-match"],
)
def test_bad_labels_fail_the_job_with_one_line_and_write_nothing(
    tmp_path: Path, labels: str, reason: str
) -> None:
    predictions_table(tmp_path / "table", ["r1", "r2"], np.array([0.8, 0.3]), "exec-2")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "x.csv").write_text(labels)
    done = run(tmp_path)
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"evaluate failed: {reason}")
    assert (tmp_path / "message").read_text() == line
    assert done.stdout == ""
    assert not (tmp_path / "out").exists()


def test_a_day_without_labels_files_says_where_they_go(tmp_path: Path) -> None:
    predictions_table(tmp_path / "table", ["r1"], np.array([0.8]), "exec-2")
    (tmp_path / "labels").mkdir()
    done = run(tmp_path)
    assert (done.returncode, done.stderr.strip()) == (
        2, f"evaluate failed: no labels file (*.csv) under {tmp_path / 'labels'}: upload the "
        "day's labels",
    )  # fmt: skip
