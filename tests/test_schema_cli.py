"""``python -m pipelines.schema infer``: the schema it writes from a sample loads with
``Schema.load`` and the sample then passes the real Preprocess with nothing rejected; what
the template cannot carry is refused in one line with exit code 2 and nothing written."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from common.exit_codes import USAGE_ERROR
from pipelines import schema as schema_cli
from pipelines.batch_inference import preprocess

REPO = Path(__file__).resolve().parents[1]


def infer(tmp_path: Path, sample: str, *extra: str) -> tuple[int, Path]:
    path = tmp_path / "sample.csv"
    path.write_text(sample, encoding="utf-8")
    output = tmp_path / "out" / "feature-schema.json"
    code = schema_cli.main(["infer", "--sample", str(path), "--output", str(output), *extra])
    return code, output


def preprocessed(tmp_path: Path, schema: preprocess.Schema) -> preprocess.FileSummary:
    """The sample through the real Preprocess with the inferred schema."""
    return preprocess.process_file(
        tmp_path / "sample.csv", Path("sample.csv"), schema, tmp_path / "preprocessed"
    )


SAMPLE = (
    "customer_id,age,income,segment,score,code,notes\n"
    "c1,34,52000.5,gold,-1,007,\n"
    " c2 ,+41, 61000 ,silver,2.5e3,123456789012345678,late payer\n"
    "c3,29,,gold,0.25,9,\n"
    "c4,-3,1e2,,7,1234567890123456789,x\n"
)


def test_the_inferred_schema_loads_and_the_sample_passes_preprocess(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = infer(tmp_path, SAMPLE)
    assert code == 0, capsys.readouterr().err
    schema = preprocess.Schema.load(output)
    assert schema.id_column == "customer_id"
    assert {f.name: (f.type, f.nullable) for f in schema.features} == {
        "age": ("int", False),  # "+41" and "-3" are ints for Preprocess
        "income": ("float", True),  # whitespace trimmed as Preprocess does; one empty
        "segment": ("string", True),
        "score": ("float", False),  # "2.5e3" is a number, not an int
        "code": ("float", False),  # 19 digits: more than Preprocess's int takes
        "notes": ("string", True),
    }
    summary = preprocessed(tmp_path, schema)
    assert (summary.rows_read, summary.rows_written, summary.rows_rejected) == (4, 4, 0)
    review = capsys.readouterr().err
    assert "4 rows; id column 'customer_id'" in review
    assert re.search(r"\n  income +float +1 empty of 4, nullable\n", review), review
    assert re.search(r"\n  age +int +never empty\n", review), review


def test_a_large_sample_is_streamed_in_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Types narrow across blocks: a float only in the last block makes the column float,
    an id repeated across blocks is found."""
    monkeypatch.setattr(schema_cli, "BLOCK_SIZE", 4096)
    rows = "".join(f"r{i},{i},{i % 7}\n" for i in range(20_000))
    code, output = infer(tmp_path, "id,n,m\n" + rows + "last,1.5,3\n")
    assert code == 0
    schema = preprocess.Schema.load(output)
    assert [(f.name, f.type) for f in schema.features] == [("n", "float"), ("m", "int")]
    assert preprocessed(tmp_path, schema).rows_written == 20_001

    output.unlink()
    code, output = infer(tmp_path, "id,n\n" + rows + "r3,1\n")
    assert code == USAGE_ERROR and not output.exists()


@pytest.mark.parametrize(
    ("sample", "extra", "error"),
    [
        ("", (), "is empty"),
        ("id,a\n", (), "no rows"),
        ("a,b\n1,2\n", (), "pass --id-column"),
        ("user_id,item_id,a\nu,i,1\n", (), "found ['user_id', 'item_id']); pass --id-column"),
        ("key,a\nk,1\n", ("--id-column", "nope"), "'nope' is not in the sample's header"),
        ("id,a,a\nk,1,2\n", (), "names 'a' more than once"),
        ("id,,b\nk,1,2\n", (), "column(s) 2 have no name"),
        ("id,a,2\nk,1,2\n", (), "holds a number"),
        ("id;a;b\nk;1;2\n", (), "not comma-separated"),
        ("id,a,b\nk,1,\nl,2,\n", (), "column 'b' has no value in the sample"),
        ("id,a\nk,1\n,2\n", (), "id column 'id' has an empty value"),
        ("id,a\nk,1\nk,2\n", (), "id column 'id' repeats 'k'"),
        ("id,a\nk,1\nl,2,3\n", (), "line 3: 3 fields, the header has 2"),
        ('id,a\nk,"two\nlines"\n', (), "column 'a' holds a line break"),
        ("id\nk\n", (), "only the id column"),
    ],
)
def test_what_the_template_cannot_carry_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sample: str, extra: tuple[str, ...],
    error: str,
) -> None:  # fmt: skip
    code, output = infer(tmp_path, sample, *extra)
    err = capsys.readouterr().err
    assert code == USAGE_ERROR and not output.exists()
    assert len(err.splitlines()) == 1 and error in err, err


def test_a_file_that_is_not_utf8_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes("id,städt\nk,1\n".encode("latin-1"))
    assert schema_cli.main(["infer", "--sample", str(path)]) == USAGE_ERROR
    assert "is not UTF-8" in capsys.readouterr().err


def test_the_module_runs_with_its_default_output(tmp_path: Path) -> None:
    (tmp_path / "s.csv").write_text("record_id,x,label\nr1,0.5,a\nr2,1,b\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.schema", "infer", "--sample", str(tmp_path / "s.csv")],
        cwd=tmp_path, env={"PYTHONPATH": str(REPO)}, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    written = json.loads((tmp_path / "feature-schema.json").read_text())
    assert written == {
        "id_column": "record_id",
        "features": [
            {"name": "x", "type": "float", "nullable": False},
            {"name": "label", "type": "string", "nullable": False},
        ],
    }
    assert "wrote feature-schema.json" in result.stderr


def test_the_second_examples_schema_is_what_infer_reads_from_its_data(tmp_path: Path) -> None:
    """The ticket-triage schema a team would have written by hand is what ``infer`` gives
    for a clean sample of its data (types, the nullable columns, the id), byte for byte in
    meaning: the tool replaces the hand work for a real shape (strings, nulls, ints)."""
    from examples.ticket_triage import data

    sample = data.generate(tmp_path / "sample.csv", 5000, malformed_fraction=0.0).path
    output = tmp_path / "s.json"
    assert schema_cli.main(["infer", "--sample", str(sample), "--output", str(output)]) == 0
    written = json.loads(output.read_text())
    shipped = json.loads((REPO / "examples" / "ticket_triage" / "feature-schema.json").read_text())
    assert _meaning(written) == _meaning(shipped)


def _meaning(document: dict) -> tuple:
    """What a schema says, whatever its keys' order and defaults."""
    return document["id_column"], [
        (f["name"], f.get("type", "float"), bool(f.get("nullable", False)))
        for f in document["features"]
    ]
