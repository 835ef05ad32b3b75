"""The Publish step's script: the Transform's answers as the stage's predictions table."""

from __future__ import annotations

import csv
import subprocess
import sys
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from local_mode import table, twin
from pipelines.batch_inference import publish

SCRIPT = Path(publish.__file__)
COLUMNS = "priority:string,p_low:double,p_normal:double,p_urgent:double"


def answers(folder: Path) -> Path:
    """Two Transform outputs (``<key>.out``), ``id,answer...``: one nested, one with a label
    that needs quoting."""
    (folder / "part").mkdir(parents=True)
    (folder / "batch-0001.csv.out").write_text("t1,normal,0.2,0.7,0.1\nt2,urgent,0.01,0.09,0.9\n")
    (folder / "part" / "batch-0002.csv.out").write_text('t3,"low, sure",0.8,0.15,0.05\n')
    return folder


def run(tmp_path: Path, *extra: str, python: str = sys.executable) -> subprocess.CompletedProcess:
    return subprocess.run(
        [python, str(SCRIPT), "--input-dir", str(tmp_path / "in"), "--output-dir",
         str(tmp_path / "out"), "--id-column", "ticket_id", "--model-version", "7",
         "--execution-id", "exec123", "--exit-message", str(tmp_path / "message"), *extra],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("output_format", ["csv", "parquet"])
def test_every_answer_lands_named_with_its_version_and_execution_in_its_day(
    tmp_path: Path, output_format: str
) -> None:
    answers(tmp_path / "in")
    done = run(
        tmp_path, "--output-columns", COLUMNS, "--day", "2026-12-06", "--format", output_format,
        python=str(twin.python()),  # the image's Python and pyarrow
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "published 3 rows in 2 file(s) to day=2026-12-06" in done.stdout
    files = sorted((tmp_path / "out" / "day=2026-12-06").iterdir())
    assert [f.name for f in files] == [f"exec123-algo-1-0000{n}.{output_format}" for n in (1, 2)]
    rows = table.read(tmp_path / "out").sort_by("ticket_id").to_pylist()
    assert rows[0] == {
        "ticket_id": "t1", "priority": "normal", "p_low": 0.2, "p_normal": 0.7,
        "p_urgent": 0.1, "model_version": 7, "execution_id": "exec123", "day": "2026-12-06",
    }  # fmt: skip
    assert rows[2]["priority"] == "low, sure"  # a quoted answer keeps its comma
    if output_format == "parquet":
        schema = pq.read_schema(files[0])
        assert [str(schema.field(n).type) for n in ("p_low", "model_version")] == [
            "double",
            "int64",
        ]
    else:
        with files[0].open(newline="") as handle:
            assert next(csv.reader(handle)) == [
                "ticket_id", "priority", "p_low", "p_normal", "p_urgent", "model_version",
                "execution_id",
            ]  # fmt: skip
    summary = table.by_day(table.read(tmp_path / "out"), "p_urgent")
    assert summary == [
        {"day": "2026-12-06", "rows": 3, "avg(p_urgent)": pytest.approx(1.05 / 3),
         "model_versions": [7]}
    ]  # fmt: skip


def test_a_model_answering_other_columns_than_declared_fails_the_step_with_the_fix(
    tmp_path: Path,
) -> None:
    answers(tmp_path / "in")
    done = run(tmp_path)  # the default declaration: one prediction column
    assert done.returncode == 2
    reason = (tmp_path / "message").read_text()
    assert reason == (
        "publish failed: batch-0001.csv.out: the model answered 4 column(s), the package "
        "declares 1: declare every answer column in the package's output_columns metadata "
        "(name:type,...)"
    )
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.csv"))


def test_an_answer_of_another_type_than_declared_fails_the_step(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv.out").write_text("t1,high\n")
    done = run(tmp_path, "--output-columns", "score:double")
    assert done.returncode == 2
    assert "a.csv.out: " in done.stderr and "does not have the declared types" in done.stderr


@pytest.mark.parametrize(
    ("declared", "problem"),
    [
        ("Score:double", "use lower-case letters"),
        ("score:float", "type 'float' is not one of"),
        ("a,a", "named twice"),
        ("execution_id", "provenance column"),
    ],
)
def test_declarations_a_table_cannot_carry_are_refused(declared: str, problem: str) -> None:
    with pytest.raises(publish.PublishError, match=problem):
        publish.parse_columns(declared)


def test_a_run_of_no_day_lands_on_the_day_it_started() -> None:
    assert publish.partition_day("", "2026-12-06T23:59:59.5Z") == date(2026, 12, 6)
    assert publish.partition_day("2026-01-31", "2026-12-06T01:00:00Z") == date(2026, 1, 31)


def test_instances_sharing_the_answers_write_files_of_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ShardedByS3Key each instance publishes its share into the same day folder: the
    host in the name keeps one's files from replacing another's."""
    for host, row in (("algo-1", "t1,0.5\n"), ("algo-2", "t2,0.25\n")):
        (tmp_path / host).mkdir()
        (tmp_path / host / "part.csv.out").write_text(row)
        monkeypatch.setenv("SM_CURRENT_HOST", host)
        publish.publish(
            tmp_path / host, tmp_path / "out", "id", publish.parse_columns("score"),
            (1, "exec"), date(2026, 12, 6), "csv",
        )  # fmt: skip
    rows = table.read(tmp_path / "out").sort_by("id").to_pylist()
    assert [(r["id"], r["score"]) for r in rows] == [("t1", 0.5), ("t2", 0.25)]
