"""Local Transform: the columnar path (Arrow) gives the record path's bytes, requests and errors.

Both paths run the same object through the same model, once each, through the emulator's S3;
the model prints a digest of every request it receives, so equal outputs cannot hide
different requests. Small read chunks make one object many batches.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from local_mode import columnar, records, sandbox, transform
from local_mode.emulator import Emulator
from local_mode.processing import StepFailed
from local_mode.serving import ModelServer

BUCKET = "columnar"

SCRIPT = """
import hashlib, json

def model_fn(model_dir):
    return None

def input_fn(data, content_type):
    digest = hashlib.sha256(data.encode()).hexdigest()
    print(json.dumps({"event": "request", "sha256": digest}))
    return [line.split(",") for line in data.split("\\n") if line]

def predict_fn(rows, model):
    return [sum(float(value) for value in row) for row in rows]

def output_fn(scores, accept):
    return "".join(f"{score:.6g},{-score:.6g}\\n" for score in scores)  # two columns
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> ModelServer:
    model_dir = tmp_path_factory.mktemp("model")
    (model_dir / "code").mkdir()
    (model_dir / "code" / "inference.py").write_text(SCRIPT)
    return ModelServer(model_dir, {"SAGEMAKER_PROGRAM": "inference.py"})


@pytest.fixture
def s3(aws: Emulator):
    sandbox.create_bucket(aws, None, BUCKET)
    return aws.client("s3")


def rows(count: int, seed: int, fields: int = 6) -> list[bytes]:
    rng = random.Random(seed)
    return [
        b",".join(
            [f"id{i:05d}".encode()]
            + [f"{rng.uniform(-9, 9):.{rng.randint(0, 5)}f}".encode()]
            + [str(rng.randint(-50, 50)).encode() for _ in range(fields - 2)]
        )
        for i in range(count)
    ]


PLAIN = b"\n".join(rows(3000, 1)) + b"\n"
# a batch of each kind the table refuses, between plain ones: the record path serves them
MIXED = (
    b"\n".join(rows(800, 2))
    + b'\n"id,quoted",1,2,3,4,5\n'
    + b"\n".join(rows(800, 3)).replace(b"\n", b"\r\n", 40)
    + b"\n\n\n"
    + b"\n".join(rows(800, 4))
    + b"\nid-wide,1,2,3,4,5,6\n"  # a record wider than the others
    + b"\nid-no-newline,1,2,3,4,5"
)

OPTIONS = {
    "drop id, keep id and score": ("$[1:]", "Input", "$[0,-1]", "MultiRecord", "Line"),
    "drop id, keep id and the whole answer": ("$[1:]", "Input", "$[0,6:]", "MultiRecord", "Line"),
    "drop two, keep the score": ("$[2:]", "Input", "$[-1]", "MultiRecord", "Line"),
    "drop id, whole joined record": ("$[1:]", "Input", "$", "MultiRecord", "Line"),
    "drop id, fields of both": ("$[1:]", "Input", "$[0,2,-1]", "MultiRecord", "None"),
    "drop id, no join": ("$[1:]", "None", "$", "MultiRecord", "Line"),
    "one record per request": ("$[1:]", "Input", "$[0,-1]", "SingleRecord", "Line"),
}


def options(input_filter: str, join: str, output_filter: str, strategy: str, assemble: str):
    return transform.TransformOptions.from_arguments(
        {
            "TransformInput": {
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/in/"}
                },
                "ContentType": "text/csv",
                "SplitType": "Line",
            },
            "TransformOutput": {
                "S3OutputPath": f"s3://{BUCKET}/out",
                "Accept": "text/csv",
                "AssembleWith": assemble,
            },
            "BatchStrategy": strategy,
            "MaxPayloadInMB": 1,
            "DataProcessing": {
                "InputFilter": input_filter,
                "JoinSource": join,
                "OutputFilter": output_filter,
            },
        }
    )


def both_paths(s3, server, chosen, data: bytes, tmp_path: Path) -> list[tuple[bytes, list[str]]]:
    """(output bytes, request digests) of the columnar path, then of the record path."""
    s3.put_object(Bucket=BUCKET, Key="in/part.csv", Body=data)
    results = []
    for columnar_on in (True, False):
        transformer = transform.RecordTransformer(server, chosen, columnar=columnar_on)
        result = transform.transform_object(s3, transformer, BUCKET, "in/part.csv", tmp_path)
        output = s3.get_object(Bucket=BUCKET, Key="out/part.csv.out")["Body"].read()
        assert result.records_in == result.records_out == len(records.split_lines(data))
        results.append((output, [line["sha256"] for line in result.metrics]))
    return results


@pytest.mark.parametrize("case", OPTIONS, ids=list(OPTIONS))
@pytest.mark.parametrize("data", [PLAIN, MIXED], ids=["plain", "mixed"])
def test_columnar_gives_the_record_paths_bytes_and_requests(
    s3, server, case, data, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(transform, "READ_CHUNK", 20_000)  # many batches, lines cut across reads
    columnar_result, record_result = both_paths(s3, server, options(*OPTIONS[case]), data, tmp_path)
    assert columnar_result == record_result
    assert len(columnar_result[1]) > 1


def test_the_demo_pipelines_options_take_the_columnar_path(server) -> None:
    """Not vacuous: the pipeline's filters on plain CSV are served from a LineTable."""
    transformer = transform.RecordTransformer(
        server, options(*OPTIONS["drop id, keep id and score"])
    )
    assert isinstance(transformer.prepare(PLAIN), columnar.LineTable)
    off = transform.RecordTransformer(
        server, options(*OPTIONS["drop id, keep id and score"]), columnar=False
    )
    assert isinstance(off.prepare(PLAIN), transform.RecordBatch)


@pytest.mark.parametrize(
    "batch",
    [b'a,"1",2\n', b"a,1,2\r\nb,3,4\r\n", b"a,1,2\n\nb,3,4\n", b"\na,1,2\n", b"a,1\nb\n", b""],
    ids=["quote", "crlf", "blank line", "leading blank", "too few fields", "empty"],
)
def test_batches_that_are_not_plain_go_to_the_record_path(batch: bytes) -> None:
    assert columnar.LineTable.of(batch, 1) is None


def test_table_parts_match_the_record_split() -> None:
    data = b"a,1,2\nbb,,3\nc,4,\n"
    table = columnar.LineTable.of(data, 1)
    assert table is not None and len(table) == 3
    ids, features = records.split_first_field(records.split_lines(data))
    assert table.first_fields(0, 3) == ids
    assert table.model_records(0, 3) == features
    assert table.payload(1, 3) == records.to_payload(features[1:])
    assert table.lines(0, 3) == records.split_lines(data)
    assert list(table.payload_sizes()) == [len(f) + 1 for f in features]
    three_dropped = columnar.LineTable.of(b"a,b,c,d\n", 3)
    assert three_dropped is not None and three_dropped.model_records(0, 1) == [b"d"]


@pytest.mark.parametrize("bad_row", [7, 2500])
def test_a_record_the_model_rejects_is_named_alike_on_both_paths(
    s3, server, bad_row, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(transform, "READ_CHUNK", 20_000)
    lines = rows(3000, 5)
    lines[bad_row - 1] = lines[bad_row - 1].rsplit(b",", 1)[0] + b",not-a-number"
    s3.put_object(Bucket=BUCKET, Key="in/part.csv", Body=b"\n".join(lines) + b"\n")
    messages = []
    for columnar_on in (True, False):
        transformer = transform.RecordTransformer(
            server, options(*OPTIONS["drop id, keep id and score"]), columnar=columnar_on
        )
        with pytest.raises(StepFailed) as failure:
            transform.transform_object(s3, transformer, BUCKET, "in/part.csv", tmp_path)
        messages.append(str(failure.value))
    assert messages[0] == messages[1]
    assert messages[0].startswith(f"record {bad_row} of s3://{BUCKET}/in/part.csv: ValueError")


def test_a_short_record_fails_alike_on_both_paths(s3, server, tmp_path) -> None:
    """``$[2:]`` over a record with one field: an empty record (a slice past the end is
    empty), which this model skips; the batch leaves the table and both paths fail the join."""
    data = b"a,1,2\nb\nc,3,4\n"
    s3.put_object(Bucket=BUCKET, Key="in/part.csv", Body=data)
    messages = []
    for columnar_on in (True, False):
        transformer = transform.RecordTransformer(
            server, options("$[2:]", "Input", "$[0,-1]", "MultiRecord", "Line"), columnar_on
        )
        with pytest.raises(StepFailed) as failure:
            transform.transform_object(s3, transformer, BUCKET, "in/part.csv", tmp_path)
        messages.append(str(failure.value))
    assert messages[0] == messages[1]
    assert "the model returned 2 record(s) for 3" in messages[0]


def test_a_record_the_input_filter_cannot_take_is_named_with_its_position(
    s3, server, tmp_path, monkeypatch
) -> None:
    """The next batch is prepared ahead, in a thread: its failure still names the record by
    its position in the object."""
    monkeypatch.setattr(transform, "READ_CHUNK", 20_000)
    lines = rows(3000, 6)
    lines[2499] = b"id02499,1"
    s3.put_object(Bucket=BUCKET, Key="in/part.csv", Body=b"\n".join(lines) + b"\n")
    transformer = transform.RecordTransformer(
        server, options("$[1,3]", "Input", "$[0,-1]", "MultiRecord", "Line")
    )
    with pytest.raises(StepFailed) as failure:
        transform.transform_object(s3, transformer, BUCKET, "in/part.csv", tmp_path)
    assert str(failure.value) == (
        f"record 2500 of s3://{BUCKET}/in/part.csv: RecordError: filter $[1,3] needs more "
        "fields than the record's 2"
    )
