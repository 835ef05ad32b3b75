"""``python -m pipelines.baseline``: a baseline from real CSV files and the real ``Schema``,
the same document ``quality.compute_baseline`` gives for the values, usable by Preprocess's
drift measures; numeric or class-label predictions; one-line refusals, nothing written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from common.exit_codes import USAGE_ERROR
from pipelines import baseline as baseline_cli
from pipelines.batch_inference import preprocess, quality

REPO = Path(__file__).resolve().parents[1]
SCHEMA = {
    "id_column": "id",
    "features": [
        {"name": "age", "type": "int"},
        {"name": "income", "type": "float", "nullable": True},
        {"name": "zip", "type": "string"},
    ],
}


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "schema.json").write_text(json.dumps(SCHEMA))
    rows = ["id,zip,age,income,unused"]  # another order, a column the schema does not name
    rows += [f"r{i},0{i % 3}, +{20 + i} ,{'' if i % 4 == 0 else i * 1000.5},x" for i in range(40)]
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    labels = ["setosa", "versicolor", "virginica", "setosa", ""]
    (tmp_path / "labels.csv").write_text(
        "id,label\n" + "".join(f"h{i},{labels[i % 5]}\n" for i in range(20))
    )
    (tmp_path / "scores.csv").write_text(
        "id,score\n" + "".join(f"h{i},{i / 20}\n" for i in range(20))
    )
    return tmp_path


def run(files: Path, *extra: str) -> int:
    return baseline_cli.main(
        ["--schema", str(files / "schema.json"), "--features", str(files / "train.csv"),
         "--output", str(files / "out" / "baseline.json"), *extra]
    )  # fmt: skip


def test_the_baseline_is_compute_baselines_over_the_values_the_schema_types(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(files, "--predictions", str(files / "scores.csv"), "--prediction-column", "score")
    assert code == 0, capsys.readouterr().err
    document = json.loads((files / "out" / "baseline.json").read_text())
    expected = quality.compute_baseline(
        {
            "age": [20.0 + i for i in range(40)],
            "income": [np.nan if i % 4 == 0 else i * 1000.5 for i in range(40)],
            "zip": [f"0{i % 3}" for i in range(40)],
        },
        predictions=[i / 20 for i in range(20)],
        categorical={"zip"},
    )
    assert document == json.loads(json.dumps(expected))
    assert document["features"]["zip"]["type"] == "categorical"  # "01" stays a category
    assert document["features"]["income"]["null_share"] == pytest.approx(0.25)
    assert document["predictions"]["type"] == "numeric"
    # Preprocess's drift measures take it and compare every feature of the schema
    drift, note = preprocess.load_baseline(
        files / "out" / "baseline.json", preprocess.Schema.from_dict(SCHEMA)
    )
    assert drift is not None and note.endswith("3 features compared")
    out = capsys.readouterr().out
    uri = "s3://<bucket>/<prefix>/baseline.json"
    assert (
        f"aws s3 cp {files / 'out' / 'baseline.json'} {uri} --content-type application/json" in out
    )
    assert '"ModelDataQuality"' in out and f'"ContentType": "{quality.CONTENT_TYPE}"' in out
    assert f'"S3Uri": "{uri}"' in out and "DriftCheckBaselines" in out


def test_class_label_predictions_get_shares_per_class(files: Path) -> None:
    assert (
        run(files, "--predictions", str(files / "labels.csv"), "--prediction-column", "label") == 0
    )
    predictions = json.loads((files / "out" / "baseline.json").read_text())["predictions"]
    assert predictions["type"] == "categorical" and predictions["null_share"] == 0.2
    assert predictions["frequencies"] == pytest.approx(
        {"setosa": 0.5, "versicolor": 0.25, "virginica": 0.25}
    )


def test_numeric_labels_are_classes_when_told(files: Path) -> None:
    (files / "classes.csv").write_text("id,c\n" + "".join(f"h{i},{i % 3}\n" for i in range(9)))
    extra = ("--predictions", str(files / "classes.csv"), "--prediction-column", "c")
    assert run(files, *extra, "--categorical-predictions") == 0
    predictions = json.loads((files / "out" / "baseline.json").read_text())["predictions"]
    assert predictions["frequencies"] == pytest.approx({"0": 1 / 3, "1": 1 / 3, "2": 1 / 3})
    assert run(files, *extra) == 0
    assert json.loads((files / "out" / "baseline.json").read_text())["predictions"]["type"] == (
        "numeric"
    )


def predictions(name: str, column: str) -> tuple[str, ...]:
    return ("--predictions", "{}/" + name, "--prediction-column", column)


@pytest.mark.parametrize(
    ("change", "extra", "error"),
    [
        (("train.csv", "id,age,income\nr,1,2\n"), (), "lacks the column(s) 'zip'"),
        (("train.csv", "id,age,income,zip\nr,1.5,2,a\n"), (), "'age' holds a value that is not"),
        (("schema.json", '{"id_column": "id"}'), (), "--schema:"),
        (None, predictions("labels.csv", "nope"), "lacks the column(s) 'nope'"),
        (("empty.csv", "id,label\n"), predictions("empty.csv", "label"), "has no rows"),
        (None, predictions("missing.csv", "x"), "does not exist"),
    ],
)
def test_what_does_not_match_is_refused_in_one_line(
    files: Path, capsys: pytest.CaptureFixture[str], change: tuple[str, str] | None,
    extra: tuple[str, ...], error: str,
) -> None:  # fmt: skip
    if change:
        (files / change[0]).write_text(change[1])
    assert run(files, *(e.format(files) for e in extra)) == USAGE_ERROR
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and error in err, err
    assert not (files / "out" / "baseline.json").exists()


def test_the_module_runs(files: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.baseline", "--schema", str(files / "schema.json"),
         "--features", str(files / "train.csv"), "--output", str(files / "b.json")],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads((files / "b.json").read_text())["predictions"] is None
    assert "aws s3 cp" in result.stdout and "40 rows, 3 features" in result.stderr
