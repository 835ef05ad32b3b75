"""preprocess.py on Parquet, JSON Lines and gzip-compressed input: the same rows give the same
output as CSV, and each format's bad input is rejected row by row or kept whole, never lost."""

from __future__ import annotations

import csv
import gzip
import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from local_mode import twin
from pipelines.batch_inference import preprocess, quality
from tests.test_preprocess import SCHEMA, SCRIPT

FIELDS = ["id", "age", "income", "segment"]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "in").mkdir()
    (tmp_path / "schema").mkdir()
    (tmp_path / "schema" / "feature-schema.json").write_text(json.dumps(SCHEMA))
    return tmp_path


def run(workdir: Path, *extra: str) -> int:
    return preprocess.main(
        ["--input-dir", str(workdir / "in"), "--output-dir", str(workdir / "out"),
         "--schema", str(workdir / "schema"), *extra]
    )  # fmt: skip


def summary(workdir: Path) -> dict:
    return json.loads((workdir / "out" / "summary" / "algo-1.json").read_text())


def rejected(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def write_parquet(path: Path, rows: list[dict[str, Any]], row_group_size: int = 1000) -> None:
    types = pa.schema(
        [("id", pa.string()), ("age", pa.int64()), ("income", pa.float64()),
         ("segment", pa.string())]
    )  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows, types), path, row_group_size=row_group_size)


def sample_rows(count: int, seed: int = 5) -> list[dict[str, Any]]:
    """Typed rows as a model's input would hold them: a few nulls, floats that need all their
    digits, strings with spaces and commas, negative numbers."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        rows.append(
            {
                "id": f"r-{i}",
                "age": int(rng.integers(-5, 90)),
                "income": float(rng.normal(3.0, 1.0)) * (1e-7 if i % 50 == 0 else 1.0),
                "segment": [None, "a", "b", "c, d", " e "][i % 5],
            }
        )
    return rows


def test_the_same_rows_give_the_same_bytes_and_drift_in_every_format(tmp_path: Path) -> None:
    """What the Transform reads does not depend on the input's format: the same rows as CSV,
    CSV.gz, Parquet, JSON Lines and JSON Lines.gz give byte-identical ``inference/`` files
    (headerless CSV, schema order) and equal drift measures."""
    rows = sample_rows(3_000)
    rng = np.random.default_rng(7)
    baseline = tmp_path / "baseline.json"
    baseline.write_text(
        json.dumps(
            quality.compute_baseline(
                {
                    "age": rng.integers(0, 90, 2_000),
                    "income": rng.normal(3.0, 1.0, 2_000),
                    "segment": list(rng.choice(["a", "b", "c, d"], 2_000)),
                }
            )
        )
    )
    writers = {
        "batch.csv": write_csv,
        "batch.parquet": write_parquet,
        "batch.jsonl": write_jsonl,
    }
    outputs, drifts = {}, {}
    for name in ("batch.csv", "batch.csv.gz", "batch.parquet", "batch.jsonl", "batch.jsonl.gz"):
        folder = tmp_path / name
        (folder / "in").mkdir(parents=True)
        (folder / "schema").mkdir()
        (folder / "schema" / "s.json").write_text(json.dumps(SCHEMA))
        plain = folder / "in" / name.removesuffix(".gz")
        writers[plain.name](plain, rows)
        if name.endswith(".gz"):
            (folder / "in" / name).write_bytes(gzip.compress(plain.read_bytes()))
            plain.unlink()
        # small blocks: many batches per file, as a large file would be read
        assert run(folder, "--baseline", str(baseline), "--block-size", "8192") == 0
        document = summary(folder)
        (entry,) = document["files"]
        counts = (entry["rows_read"], entry["rows_written"], entry["rows_rejected"])
        assert counts == (3_000, 3_000, 0)
        assert entry["format"] == ("parquet" if "parquet" in name else name.split(".")[1])
        (written,) = (folder / "out" / "inference").iterdir()
        assert written.name == (name if name == "batch.csv" else f"{name}.csv")
        outputs[name] = written.read_bytes()
        drifts[name] = document["quality"]["drift"]
    # and it is the rows themselves: strings trimmed, nulls empty, every float's exact value
    parsed = list(csv.reader(outputs["batch.csv"].decode().splitlines()))
    assert [(i, int(a), float(f), s) for i, a, f, s in parsed] == [
        (r["id"], r["age"], r["income"], (r["segment"] or "").strip()) for r in rows
    ]
    assert len(set(outputs.values())) == 1, {k: v[:200] for k, v in outputs.items()}
    assert all(drift == drifts["batch.csv"] for drift in drifts.values())
    assert drifts["batch.csv"]["features"]["segment"]["rows"] == 3000


def test_a_bad_json_line_is_one_rejected_row_with_its_reason_and_the_line_as_read(
    workdir: Path,
) -> None:
    lines = [
        '{"id": "ok", "age": 30, "income": 1.5, "segment": "x"}',
        "not json",
        "42",
        '{"id": "s", "age": "30", "income": 1.5}',
        '{"id": 5, "age": 30, "income": 1.5, "segment": ["x"]}',
        '{"id": "b", "age": false, "income": 1.5}',
        '{"id": true, "age": 30, "income": 1.5}',
        '{"age": 30, "income": 1.5}',
        '{"id": "m", "age": 30}',
        '{"id": "f", "age": 30.0, "income": 1.5}',
        '{"id": "n", "age": 30, "income": -Infinity}',
        '{"id": "ok2", "age": 31, "income": 2, "segment": null, "other": {}}',
    ]
    (workdir / "in" / "b.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert run(workdir) == 0
    assert (workdir / "out" / "inference" / "b.jsonl.csv").read_text() == "ok,30,1.5,x\nok2,31,2,\n"
    rows = rejected(workdir / "out" / "rejected" / "b.jsonl.csv")
    assert [(r["id"], r["reason"], r["record"]) for r in rows] == [
        ("", "line 2: not JSON (Expecting value at column 1)", "not json"),
        ("", "line 3: a JSON number, not an object", "42"),
        ("s", "'age': \"30\" is a JSON string, not an int", lines[3]),
        ("5", "'segment': is a JSON array, not a string", lines[4]),
        ("b", "'age': false is a JSON boolean, not an int", lines[5]),
        ("", "id column 'id': true is a JSON boolean, not a string or an integer", lines[6]),
        ("", "missing value for id column 'id'", lines[7]),
        ("m", "missing value for 'income'", lines[8]),
        ("f", "'age': '30.0' is not an int", lines[9]),
        ("n", "'income': '-Infinity' is not a float", lines[10]),
    ]
    (entry,) = summary(workdir)["files"]
    assert (entry["rows_read"], entry["rows_written"], entry["rows_rejected"]) == (12, 2, 10)
    assert entry["rejected_by_reason"] == {
        "malformed_record": 2, "wrong_type": 6, "missing_id": 1, "missing_value": 1,
    }  # fmt: skip
    assert entry["ignored_columns"] == ["other"]


def test_a_bad_parquet_row_is_rejected_with_its_values_as_a_csv_record(workdir: Path) -> None:
    write_parquet(
        workdir / "in" / "p.parquet",
        [
            {"id": "a", "age": 30, "income": 1.5, "segment": " x "},
            {"id": "b", "age": None, "income": 1.5, "segment": "x"},
            {"id": "c", "age": 30, "income": float("nan"), "segment": None},
            {"id": " ", "age": 30, "income": 2.5, "segment": "y"},
        ],
    )
    assert run(workdir) == 0
    assert (workdir / "out" / "inference" / "p.parquet.csv").read_text() == "a,30,1.5,x\n"
    rows = rejected(workdir / "out" / "rejected" / "p.parquet.csv")
    assert [(r["id"], r["reason"], r["record"]) for r in rows] == [
        ("b", "missing value for 'age'", "b,,1.5,x"),
        ("c", "'income': 'nan' is not a float", "c,30,nan,"),
        (" ", "missing value for id column 'id'", " ,30,2.5,y"),
    ]


_ROWS = b"".join(b"r%d,%d,%d.25,s%d\n" % (i, i % 90, i, i % 7) for i in range(5000))
_LINES = b"".join(
    b'{"id": "r%d", "age": %d, "income": %d.5}\n' % (i, i % 90, i) for i in range(5000)
)


@pytest.mark.parametrize(
    ("name", "body", "reason", "read"),
    [
        ("t.csv.gz", gzip.compress(b"id,age,income,segment\n" + _ROWS, mtime=0)[:2000],
         "not readable gzip data (", None),
        ("n.csv.gz", b"id,age,income,segment\na,30,1.5,x\n", "not readable gzip data (Not a "
         "gzipped file (b'id'))", 1),
        ("t.jsonl.gz", gzip.compress(_LINES, mtime=0)[:2000], "not readable gzip data (", None),
    ],
)  # fmt: skip
def test_a_damaged_gzip_file_goes_whole_to_quarantine(
    workdir: Path, name: str, body: bytes, reason: str, read: int | None
) -> None:
    """Its rows are counted as far as the stream can be read; nothing of it is scored."""
    (workdir / "in" / name).write_bytes(body)
    (workdir / "in" / "good.csv.gz").write_bytes(
        gzip.compress(b"id,age,income,segment\nb,31,2.5,\n")
    )
    assert run(workdir) == 0
    by_file = {f["file"]: f for f in summary(workdir)["files"]}
    entry = by_file[name]
    assert entry["note"].startswith(f"rejected whole: {reason}"), entry["note"]
    assert entry["quarantined_to"] == f"rejected/whole-files/{name}"
    assert (workdir / "out" / "rejected" / "whole-files" / name).read_bytes() == body
    assert entry["rows_written"] == 0 and entry["rows_read"] == entry["rows_rejected"]
    assert entry["rows_read"] == read if read is not None else entry["rows_read"] > 0
    assert not (workdir / "out" / "inference" / f"{name}.csv").exists()
    assert by_file["good.csv.gz"]["rows_written"] == 1


def test_other_names_are_ignored_unless_a_format_is_forced(workdir: Path) -> None:
    """``.json`` is not read by default (one JSON document as often as JSON Lines);
    ``--input-format`` reads every file, whatever its name, in the one format."""
    (workdir / "in" / "a.json").write_text('{"id": "a", "age": 30, "income": 1.5}\n')
    (workdir / "in" / "part-0000").write_text('{"id": "b", "age": 31, "income": 2.5}\n')
    (workdir / "in" / "notes.txt.gz").write_bytes(gzip.compress(b"hello\n"))
    assert run(workdir) == 0
    document = summary(workdir)
    assert (document["input_format"], document["files"]) == ("auto", [])
    assert document["ignored_files"] == ["a.json", "notes.txt.gz", "part-0000"]
    (workdir / "in" / "notes.txt.gz").unlink()
    assert run(workdir, "--input-format", "jsonl") == 0
    document = summary(workdir)
    assert [(f["file"], f["format"], f["rows_written"]) for f in document["files"]] == [
        ("a.json", "jsonl", 1), ("part-0000", "jsonl", 1),
    ]  # fmt: skip
    assert (document["input_format"], document["ignored_files"]) == ("jsonl", [])
    assert (workdir / "out" / "inference" / "part-0000.csv").read_text() == "b,31,2.5,\n"


def test_an_unknown_input_format_is_one_line_and_exit_2(workdir: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        run(workdir, "--input-format", "xml")
    assert exited.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    # (Python 3.12 quotes the choices, 3.11 does not)
    assert line.startswith("preprocess: error: argument --input-format: invalid choice: 'xml'")
    assert all(kind in line for kind in ("auto", "csv", "parquet", "jsonl"))


def test_every_format_runs_in_the_processing_images_runtime(workdir: Path) -> None:
    """The script as the Processing container runs it (the image's Python, pyarrow and no
    pandas of its own), over one file of each format, nested."""
    rows = sample_rows(40)
    write_parquet(workdir / "in" / "p.parquet", rows)
    (workdir / "in" / "day").mkdir()
    write_jsonl(workdir / "in" / "day" / "j.jsonl", rows)
    (workdir / "in" / "day" / "j.jsonl.gz").write_bytes(
        gzip.compress((workdir / "in" / "day" / "j.jsonl").read_bytes() + b"[]\n")
    )
    write_csv(workdir / "in" / "c.csv", rows)
    (workdir / "in" / "c.csv.gz").write_bytes(
        gzip.compress((workdir / "in" / "c.csv").read_bytes())
    )
    result = subprocess.run(
        [str(twin.python()), str(SCRIPT), "--input-dir", str(workdir / "in"),
         "--output-dir", str(workdir / "out"), "--schema", str(workdir / "schema")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "5 file(s), 201 rows read, 200 written, 1 rejected" in result.stdout
    outputs = sorted((workdir / "out" / "inference").rglob("*.csv"))
    assert [p.relative_to(workdir / "out" / "inference").as_posix() for p in outputs] == [
        "c.csv", "c.csv.gz.csv", "day/j.jsonl.csv", "day/j.jsonl.gz.csv", "p.parquet.csv",
    ]  # fmt: skip
    assert len({p.read_bytes() for p in outputs}) == 1
    (row,) = rejected(workdir / "out" / "rejected" / "day" / "j.jsonl.gz.csv")
    assert row == {"id": "", "reason": "line 41: a JSON array, not an object", "record": "[]"}
