"""The low modules every side shares: S3 URIs and encryption fields, atomic file writes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import botocore.session
import pytest
from botocore.model import StringShape

from common.files import write_execution_record, write_json_atomically
from common.s3_locations import parse_s3_object_uri, parse_s3_uri, sse_arguments
from stage_runtime import executions


@pytest.mark.parametrize(
    ("uri", "parsed"),
    [
        ("s3://b/k/x.csv", ("b", "k/x.csv")),
        ("s3://b/prefix/", ("b", "prefix/")),
        ("s3://b", ("b", "")),
        ("s3://b/line\nbreak", ("b", "line\nbreak")),
    ],
)
def test_s3_uris_parse_into_bucket_and_key(uri: str, parsed: tuple[str, str]) -> None:
    assert parse_s3_uri(uri) == parsed


@pytest.mark.parametrize("uri", ["", "s3://", "s3:///k", "https://b/k", "b/k", None])
def test_anything_else_is_a_value_error_naming_it(uri) -> None:
    with pytest.raises(ValueError, match=r"not an S3 URI: .*\(expected s3://bucket/key\)"):
        parse_s3_uri(uri)


@pytest.mark.parametrize("uri", ["s3://b", "s3://b/", "s3://b/folder/"])
def test_an_object_uri_needs_a_key(uri: str) -> None:
    with pytest.raises(ValueError, match="names no object"):
        parse_s3_object_uri(uri)


def test_encryption_fields() -> None:
    key = "arn:aws:kms:eu-west-1:222222222222:key/k"
    assert sse_arguments(key) == {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key}
    assert sse_arguments(None) == {}
    assert sse_arguments(None, s3_managed_otherwise=True) == {"ServerSideEncryption": "AES256"}


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "out" / "stage.tfvars.json"
    write_json_atomically(path, {"b": 1, "a": 2})
    assert path.read_text() == '{\n  "a": 2,\n  "b": 1\n}\n'
    with pytest.raises(TypeError):
        write_json_atomically(path, {"not serialisable": object()})
    assert json.loads(path.read_text()) == {"a": 2, "b": 1}
    assert [p.name for p in path.parent.iterdir()] == ["stage.tfvars.json"]
    assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_execution_records_keep_their_order_and_write_times_as_text(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    path = tmp_path / "record.json"
    write_execution_record(
        path, {"Status": "Succeeded", "Start": datetime(2026, 11, 28, tzinfo=UTC)}
    )
    assert list(json.loads(path.read_text())) == ["Status", "Start"]
    assert json.loads(path.read_text())["Start"] == "2026-11-28 00:00:00+00:00"


def test_execution_statuses_are_exactly_botocores() -> None:
    """A status AWS never sends would match no event; one it sends and we lack would leave a
    run forever unfinished. (The second AWS review took CompletedWithFailures for the first:
    botocore 1.43's model lacks it, the pinned 1.44's has it.)"""
    model = botocore.session.get_session().get_service_model("sagemaker")
    shape = model.shape_for("PipelineExecutionStatus")
    assert isinstance(shape, StringShape)
    statuses = set(shape.enum)
    assert statuses == executions.ENDED | executions.RUNNING
    assert not executions.ENDED & executions.RUNNING
    stage = Path(__file__).resolve().parents[1] / "terraform" / "stage"  # the template's module
    template = "".join(path.read_text() for path in sorted(stage.glob("*.tf")))
    (pattern,) = re.findall(r"currentPipelineExecutionStatus = (\[[^\]]*\])", template)
    assert set(json.loads(pattern)) == executions.ENDED
