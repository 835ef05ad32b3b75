"""Date partitions scored exactly once: the markers, the backfill command on the local executor
(real runs of the deployed definition) and on SageMaker's path against the emulator (moto's
pipelines run no jobs: what is checked there is the requests and the marker lifecycle)."""

from __future__ import annotations

import gzip
import json
from datetime import date
from pathlib import Path
from typing import Any

import moto.sagemaker.models
import pytest
from botocore.response import StreamingBody

from common.stage_model import STAGE_MODEL_ENVIRONMENT
from examples.breast_cancer import data, model
from local_mode import sandbox
from local_mode.emulator import ACCOUNTS, Emulator
from pipelines import run_pipeline
from stage_runtime import partitions
from tests.provider_requests import problems
from tests.registry import (
    IMAGE,
    DevRegistry,
    create_deployed_pipeline,
    create_stage,
    keep_executions_running,
    run_build,
)
from tests.test_smoke_run import recorded


@pytest.fixture(autouse=True)
def in_process_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """What is tested here is days and their markers, not serving: the sample model is served
    in process (LOCAL_SERVING's option, which tests/test_container_contract.py holds to the
    image's real stack request kind by request kind), which saves a container start (about 4
    s) per day run. The smoke run, the demo and the executor's tests use the real stack."""
    monkeypatch.setenv("LOCAL_SERVING", "in-process")


DAY_1, DAY_2, DAY_3 = date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)


# ----------------------------------------------------------------------- offline


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("dt=%Y-%m-%d", None),
        ("year=%Y/month=%m/day=%d", None),
        ("%Y%m%d", None),
        ("dt=%Y-%m", "exactly once"),
        ("dt=%Y-%m-%d-%d", "exactly once"),
        ("dt=%Y-%m-%d %H", "a strftime pattern of folder names"),
        ("/dt=%Y-%m-%d", "a strftime pattern of folder names"),
        ("dt=%Y//%m-%d", "a strftime pattern of folder names"),
        ("dt=%y-%m-%d", "a strftime pattern of folder names"),
        ("", "a strftime pattern of folder names"),
    ],
)
def test_a_partition_format_names_one_folder_path_per_day(pattern: str, problem) -> None:
    found = partitions.check_format(pattern)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_a_day_has_its_input_and_output_partition_and_a_marker() -> None:
    layout = partitions.Layout("s3://b/in/", "s3://b/out", "year=%Y/month=%m/day=%d")
    assert layout.input_uri(DAY_1) == "s3://b/in/year=2026/month=11/day=01/"
    assert layout.output_uri(DAY_1) == "s3://b/out/year=2026/month=11/day=01"
    assert layout.marker_uri(DAY_1) == "s3://b/out/_runs/year=2026/month=11/day=01.json"
    assert list(partitions.days(DAY_1, DAY_3)) == [DAY_1, DAY_2, DAY_3]
    assert list(partitions.days(DAY_2, None)) == [DAY_2]
    with pytest.raises(ValueError, match="--until 2026-11-01 is before --date 2026-11-02"):
        partitions.days(DAY_2, DAY_1)


# ----------------------------------------------------------------------- a deployed stage


@pytest.fixture
def stage(aws: Emulator, tmp_path: Path, built_model: model.Built) -> dict[str, Any]:
    """Preprod promoted by build.py with the sample model, its Model and pipeline created
    as the apply creates them (the local executor resolves the Model to its package)."""
    create_stage(aws, "preprod")
    artifact = built_model.archive
    registry = DevRegistry(aws)
    url = registry.put_artifact("training/run-1/output/model.tar.gz", artifact.read_bytes())
    registry.register(
        "Approved",
        containers=[
            {
                "Image": IMAGE,
                "ModelDataUrl": url,
                "Environment": model.container_environment(),
            }
        ],
    )
    assert run_build(tmp_path) == 0
    path = tmp_path / "preprod.tfvars.json"
    tfvars = json.loads(path.read_text())
    sagemaker = aws.client("sagemaker", "preprod")
    sagemaker.create_model(
        ModelName=tfvars["model_name"],
        ExecutionRoleArn=tfvars["sagemaker_role_arn"],
        PrimaryContainer={
            "ModelPackageName": tfvars["model_package_arn"],
            "Environment": STAGE_MODEL_ENVIRONMENT,
        },
    )
    create_deployed_pipeline(aws, tfvars)
    return {"tfvars": tfvars, "path": path}


def layout(tfvars: dict[str, Any]) -> partitions.Layout:
    return partitions.Layout(tfvars["input_data_url"], tfvars["output_data_url"])


def put_day(aws: Emulator, tfvars: dict, day: date, name: str, body: bytes) -> None:
    bucket, prefix = partitions.parse_s3_uri(layout(tfvars).input_uri(day))
    aws.client("s3", "preprod").put_object(Bucket=bucket, Key=f"{prefix}{name}", Body=body)


def marker(aws: Emulator, tfvars: dict, day: date) -> dict[str, Any]:
    found = partitions.read_marker(aws.client("s3", "preprod"), layout(tfvars).marker_uri(day))
    assert found is not None, f"no marker for {day}"
    return found


def in_preprod(aws: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's boto3 chain: the emulator, as the preprod deploy role."""
    for name, value in {**aws.environment(), **aws.credential_variables("preprod")}.items():
        monkeypatch.setenv(name, value)


def backfill(stage: dict, *options: str, first: date = DAY_1, last: date | None = None) -> int:
    until = ["--until", last.isoformat()] if last else []
    return run_pipeline.main(
        ["--tfvars", str(stage["path"]), "--date", first.isoformat(), *until, *options]
    )


def test_a_backfill_scores_each_day_once_and_records_empty_days(
    aws: Emulator, stage: dict, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three days locally: two with data, one holding only Spark's _SUCCESS, an empty CSV
    and a CSV with only its header. Then the same
    backfill again (nothing runs), a forced day, and the empty day once its data arrives."""
    in_preprod(aws, monkeypatch)
    tfvars = stage["tfvars"]
    generated = {}
    for day in (DAY_1, DAY_3):
        generated[day] = data.generate(tmp_path / f"{day}.csv", rows=200, seed=day.day)
        put_day(aws, tfvars, day, "batch.csv", generated[day].path.read_bytes())
    put_day(aws, tfvars, DAY_2, "_SUCCESS", b"")
    put_day(aws, tfvars, DAY_2, "empty.csv", b"")
    put_day(aws, tfvars, DAY_2, "header-only.csv", b"record_id,mean_radius\r\n\r\n")
    local = ["--local", "--work-dir", str(tmp_path / "runs")]

    assert backfill(stage, *local, last=DAY_3) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    for day in (DAY_1, DAY_3):
        found = marker(aws, tfvars, day)
        assert found is not None and found["status"] == "Succeeded", found
        rows = generated[day]
        assert (found["rows_read"], found["rows_rejected"], found["rows_scored"]) == (
            rows.rows,
            rows.malformed,
            rows.rows - rows.malformed,
        )
        assert found["input"] == layout(tfvars).input_uri(day)
        # predictions under the day's own output partition
        execution_id = found["execution_arn"].rsplit("/", 1)[-1]
        bucket, prefix = partitions.parse_s3_uri(layout(tfvars).output_uri(day))
        listing = aws.client("s3", "preprod").list_objects_v2(
            Bucket=bucket, Prefix=f"{prefix}/{execution_id}/predictions/"
        )
        assert [o["Key"].rsplit("/", 1)[-1] for o in listing["Contents"]] == ["batch.csv.out"]
        assert f"{day}: Succeeded (" in out
    empty = marker(aws, tfvars, DAY_2)
    assert empty is not None and empty["status"] == "Empty" and empty["execution_arn"] is None
    assert (empty["rows_read"], empty["rows_scored"]) == (0, 0)
    assert f"{DAY_2}: empty: no CSV object with data under" in out

    # the same backfill again: the scored days are skipped, the empty day looked at again
    before = {day: marker(aws, tfvars, day) for day in (DAY_1, DAY_3)}
    assert backfill(stage, *local, last=DAY_3) == 0
    out = capsys.readouterr().out
    assert f"{DAY_1}: skipped: already scored ({before[DAY_1]['rows_scored']} rows) by" in out
    assert f"{DAY_2}: empty:" in out
    assert {day: marker(aws, tfvars, day) for day in (DAY_1, DAY_3)} == before

    # --force scores a day again, in a run of its own
    assert backfill(stage, *local, "--force", first=DAY_3) == 0
    again = marker(aws, tfvars, DAY_3)
    assert again is not None and again["status"] == "Succeeded"
    assert again["execution_arn"] != before[DAY_3]["execution_arn"]
    assert again["rows_scored"] == before[DAY_3]["rows_scored"]

    # data that arrives late for an empty day is scored by the next look
    late = data.generate(tmp_path / "late.csv", rows=50, seed=7)
    put_day(aws, tfvars, DAY_2, "late.csv", late.path.read_bytes())
    assert backfill(stage, *local, first=DAY_2) == 0
    scored = marker(aws, tfvars, DAY_2)
    assert scored is not None and scored["status"] == "Succeeded"
    assert scored["rows_read"] == late.rows


def test_a_failed_day_is_retried_by_the_next_run(
    aws: Emulator, stage: dict, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_preprod(aws, monkeypatch)
    tfvars = stage["tfvars"]
    # every row malformed: the single Preprocess instance fails the run (nothing to score)
    put_day(aws, tfvars, DAY_1, "bad.csv", b"record_id,mean_radius\nr1,wide\n")
    local = ["--local", "--work-dir", str(tmp_path / "runs")]
    assert backfill(stage, *local) == 3
    failed = marker(aws, tfvars, DAY_1)
    assert failed is not None and failed["status"] == "Failed"
    assert "rows was rejected" in failed["failure_reason"]
    assert "run_pipeline: the run failed for 2026-11-01" in capsys.readouterr().err
    # fixed data: the next run scores the day (no --force needed after a failure)
    good = data.generate(tmp_path / "good.csv", rows=30, seed=3)
    put_day(aws, tfvars, DAY_1, "bad.csv", good.path.read_bytes())
    assert backfill(stage, *local) == 0
    assert marker(aws, tfvars, DAY_1)["status"] == "Succeeded"
    assert "(the last run failed)" in capsys.readouterr().out


# ------------------------------------------------------------ on SageMaker's path (moto)


def test_on_sagemaker_a_day_is_started_once_and_its_marker_completed_later(
    aws: Emulator, stage: dict, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """A started day is not started again while its run executes, even forced; once the run
    has ended the next look records its outcome and skips the day. moto's executions write
    nothing, so the succeeded run counts zero rows."""
    from pipelines import partition_runs

    tfvars = stage["tfvars"]
    put_day(aws, tfvars, DAY_1, "batch.csv", b"record_id\nr1\n")
    keep_executions_running(monkeypatch)
    session = aws.account("preprod")
    sent = recorded(session)
    (started,) = partition_runs.run_days(tfvars, session, [DAY_1])
    assert started.action == "started" and started.execution_arn
    (start,) = [r for r in sent if r.operation == "StartPipelineExecution"]
    assert problems(start) == []
    parameters = {p["Name"]: p["Value"] for p in start.body["PipelineParameters"]}
    assert parameters["InputDataUrl"] == layout(tfvars).input_uri(DAY_1)
    assert parameters["OutputDataUrl"] == layout(tfvars).output_uri(DAY_1)
    assert parameters["ModelName"] == tfvars["model_name"]
    assert marker(aws, tfvars, DAY_1)["status"] == "Executing"

    (again,) = partition_runs.run_days(tfvars, session, [DAY_1], force=True)
    assert again.action == "skipped" and "a run is still executing" in again.detail
    assert len([r for r in sent if r.operation == "StartPipelineExecution"]) == 1

    # the run ends (moto runs no job that would end it: set its status as SageMaker would)
    backend = moto.sagemaker.models.sagemaker_backends[ACCOUNTS["preprod"]][aws.region]
    execution = backend.pipelines[tfvars["pipeline_name"]].pipeline_executions[
        started.execution_arn
    ]
    execution.pipeline_execution_status = "Succeeded"
    (done,) = partition_runs.run_days(tfvars, session, [DAY_1])
    assert done.action == "skipped" and "already scored (0 rows) by" in done.detail
    completed = marker(aws, tfvars, DAY_1)
    assert completed["status"] == "Succeeded" and completed["finished"]
    assert completed["execution_arn"] == started.execution_arn
    assert len([r for r in sent if r.operation == "StartPipelineExecution"]) == 1
    # a run that failed is started again by the next look
    execution.pipeline_execution_status = "Failed"
    partitions.write_marker(
        aws.client("s3", "preprod"),
        layout(tfvars).marker_uri(DAY_1),
        partitions.started_marker(layout(tfvars), DAY_1, started.execution_arn),
        None,
    )
    (retried,) = partition_runs.run_days(tfvars, session, [DAY_1])
    assert retried.action == "started" and retried.execution_arn != started.execution_arn
    assert "(the last run failed)" in retried.detail


def test_with_wait_each_day_is_awaited_and_recorded(aws: Emulator, stage: dict) -> None:
    from pipelines import partition_runs

    tfvars = stage["tfvars"]
    put_day(aws, tfvars, DAY_1, "batch.csv", b"record_id\nr1\n")
    results = partition_runs.run_days(
        tfvars, aws.account("preprod"), [DAY_1, DAY_2], wait=True, poll_seconds=0.01
    )
    assert [r.action for r in results] == ["Succeeded", "empty"]
    assert marker(aws, tfvars, DAY_1)["status"] == "Succeeded"
    assert marker(aws, tfvars, DAY_2)["status"] == "Empty"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--date", "2026-13-01"], "argument --date: '2026-13-01' is not a date like 2026-11-01"),
        (["--date", "2026-11-02", "--until", "2026-11-01"], "--until 2026-11-01 is before"),
        (["--date", "2025-01-01", "--until", "2026-11-01"], "days asked, at most 366"),
    ],
)
def test_bad_days_are_one_line_usage_errors(
    aws: Emulator, stage: dict, capsys, arguments: list[str], message: str
) -> None:
    code: int | str | None
    try:
        code = run_pipeline.main(["--tfvars", str(stage["path"]), *arguments])
    except SystemExit as exited:  # argparse's own errors
        code = exited.code
    assert code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("run_pipeline: ") and message in line
    listing = aws.client("sagemaker", "preprod").list_pipeline_executions(
        PipelineName=stage["tfvars"]["pipeline_name"]
    )
    assert listing["PipelineExecutionSummaries"] == []


def test_a_marker_that_is_not_ours_is_not_overwritten(
    aws: Emulator, stage: dict, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_preprod(aws, monkeypatch)
    tfvars = stage["tfvars"]
    bucket, key = partitions.parse_s3_uri(layout(tfvars).marker_uri(DAY_1))
    s3 = aws.client("s3", "preprod")
    s3.put_object(Bucket=bucket, Key=key, Body=b"someone else's")
    put_day(aws, tfvars, DAY_2, "batch.csv", b"record_id\nr1\n")
    code = run_pipeline.main(
        ["--tfvars", str(stage["path"]), "--date", "2026-11-01", "--until", "2026-11-02"]
    )
    out, err = capsys.readouterr()
    assert code == 2
    assert "2026-11-01: error: ValueError: " in out
    assert "is not a sagemaker-batch-mlops/partition-run/1 marker" in out
    assert f"{DAY_2}: started (" in out  # the next day is still handled
    assert err.strip() == (
        "run_pipeline: could not handle 2026-11-01 (above); the other days were handled"
    )
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"someone else's"


def test_starters_that_saw_the_same_day_state_send_the_same_token(
    aws: Emulator, stage: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A start whose marker write was lost, then another look: the same day state, so the
    same ClientRequestToken, and SageMaker hands back the first execution (moto ignores
    tokens: the requests are what is checked). Once the marker changed, a new token."""
    from pipelines import partition_runs

    tfvars = stage["tfvars"]
    put_day(aws, tfvars, DAY_1, "batch.csv", b"record_id\nr1\n")
    session = aws.account("preprod")
    sent = recorded(session)
    keep_executions_running(monkeypatch)
    partition_runs.run_days(tfvars, session, [DAY_1])
    bucket, key = partitions.parse_s3_uri(layout(tfvars).marker_uri(DAY_1))
    aws.client("s3", "preprod").delete_object(Bucket=bucket, Key=key)  # the write "lost"
    partition_runs.run_days(tfvars, session, [DAY_1])
    first, second = (
        r.body["ClientRequestToken"] for r in sent if r.operation == "StartPipelineExecution"
    )
    s3 = aws.client("s3", "preprod")
    _, fingerprint = partitions.inspect_input(s3, layout(tfvars).input_uri(DAY_1))
    assert (
        first
        == second
        == partitions.start_token(
            tfvars["pipeline_name"],
            "dt=2026-11-01",
            f"{partitions.no_marker_state()}|{fingerprint}",
        )
    )
    backend = moto.sagemaker.models.sagemaker_backends[ACCOUNTS["preprod"]][aws.region]
    for execution in backend.pipelines[tfvars["pipeline_name"]].pipeline_executions.values():
        execution.pipeline_execution_status = "Failed"
    (retried,) = partition_runs.run_days(tfvars, session, [DAY_1])
    assert retried.action == "started"
    tokens = [r.body["ClientRequestToken"] for r in sent if r.operation == "StartPipelineExecution"]
    assert len(tokens) == 3 and tokens[2] != first and len(tokens[2]) == 64
    # no marker again (expired with the outputs, say) but the day's input changed: a new
    # token, not the first run handed back
    s3.delete_object(Bucket=bucket, Key=key)
    put_day(aws, tfvars, DAY_1, "late.csv", b"record_id\nr2\n")
    partition_runs.run_days(tfvars, session, [DAY_1])
    tokens = [r.body["ClientRequestToken"] for r in sent if r.operation == "StartPipelineExecution"]
    assert len(tokens) == 4 and tokens[3] not in tokens[:3]


def test_a_forced_day_whose_input_is_gone_keeps_its_record(aws: Emulator, stage: dict) -> None:
    from pipelines import partition_runs

    tfvars = stage["tfvars"]
    put_day(aws, tfvars, DAY_1, "batch.csv", b"record_id\nr1\n")
    session = aws.account("preprod")
    partition_runs.run_days(tfvars, session, [DAY_1], wait=True, poll_seconds=0.01)
    scored = marker(aws, tfvars, DAY_1)
    bucket, prefix = partitions.parse_s3_uri(layout(tfvars).input_uri(DAY_1))
    aws.client("s3", "preprod").delete_object(Bucket=bucket, Key=f"{prefix}batch.csv")
    (forced,) = partition_runs.run_days(tfvars, session, [DAY_1], force=True)
    assert forced.action == "skipped" and "its input holds no data now" in forced.detail
    assert marker(aws, tfvars, DAY_1) == scored


def test_a_long_range_without_wait_is_refused_before_anything_starts(
    aws: Emulator, stage: dict, capsys
) -> None:
    code = run_pipeline.main(
        ["--tfvars", str(stage["path"]), "--date", "2026-11-01", "--until", "2026-11-08"]
    )
    assert code == 2
    assert "8 days could start 8 runs at once" in capsys.readouterr().err
    listing = aws.client("sagemaker", "preprod").list_pipeline_executions(
        PipelineName=stage["tfvars"]["pipeline_name"]
    )
    assert listing["PipelineExecutionSummaries"] == []


@pytest.mark.parametrize(
    ("key", "body", "expected"),
    [
        ("part.csv", b"id,x\n", False),
        ("part.csv", b"id,x\nr1,2\n", True),
        ("part.txt", b"id,x\nr1,2\n", False),  # Preprocess does not read .txt
        ("part.csv", b"id,x\n" + b"\n" * 70 * 1024 + b"r1,2", True),  # a row after blanks
        ("part.csv", b"\n\nid,x\rr1,2", True),  # blank lines first, a lone \r ends the header
        ("part.jsonl", b'{"id": "r1"}\n', True),  # JSON Lines: no header, a line is a row
        ("part.NDJSON", b"\n \n", False),
        ("part.csv.gz", gzip.compress(b"id,x\nr1,2\n"), True),  # read through gzip
        ("part.csv.gz", gzip.compress(b"id,x\n"), False),
        ("part.jsonl.gz", gzip.compress(b"") + gzip.compress(b'{"id": 1}\n'), True),  # members
        ("part.parquet", b"PAR1" + b"\0" * 64 + b"PAR1", True),  # its rows are in its footer
        ("part.json", b'[{"id": "r1"}]', False),  # one JSON document: not read unless forced
    ],
    ids=[
        "header",
        "row",
        "not-read",
        "late-row",
        "cr",
        "jsonl",
        "jsonl-blank",
        "csv-gz",
        "csv-gz-header",
        "jsonl-gz-members",
        "parquet",
        "json",
    ],
)
def test_an_object_has_data_when_preprocess_would_find_a_row_in_it(
    aws: Emulator, key: str, body: bytes, expected: bool
) -> None:
    s3 = aws.client("s3")
    sandbox.create_bucket(aws, None, "days")
    s3.put_object(Bucket="days", Key=f"day/{key}", Body=body)
    assert partitions.has_data(s3, "s3://days/day/") is expected


@pytest.mark.parametrize(
    "body",
    [
        b"id," + b"c" * 70 * 1024 + b"\n",  # a 70 KiB header
        b"id,x\n" + b"\n" * 70 * 1024,  # blank lines
        b"id,x\r\n" + b" \t\r\n" * 20 * 1024,  # whitespace lines
    ],
    ids=["large-header", "large-blank", "large-whitespace"],
)
def test_a_large_csv_object_without_a_row_is_no_data(aws: Emulator, body: bytes) -> None:
    """Size is no row: the day is Empty, not a nightly run that can only fail."""
    s3 = aws.client("s3")
    sandbox.create_bucket(aws, None, "days")
    s3.put_object(Bucket="days", Key="day/part.csv", Body=body)
    assert partitions.has_data(s3, "s3://days/day/") is False


def test_a_csv_object_is_not_read_beyond_its_first_row(
    aws: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 10 MiB day costs one chunk, not a download; a file that is not CSV costs nothing."""
    s3 = aws.client("s3")
    sandbox.create_bucket(aws, None, "days")
    s3.put_object(Bucket="days", Key="day/big.csv", Body=b"id,x\n" + b"r1,2\n" * 2_000_000)
    s3.put_object(Bucket="days", Key="day/other.parquet", Body=b"\0" * 1024)
    read: list[int] = []
    real_read = StreamingBody.read

    def counted(self: StreamingBody, amt: int | None = None) -> bytes:
        chunk = real_read(self, amt)
        read.append(len(chunk))
        return chunk

    monkeypatch.setattr(StreamingBody, "read", counted)
    assert partitions.has_data(s3, "s3://days/day/") is True
    assert sum(read) <= partitions.READ_CHUNK


@pytest.mark.parametrize(
    "pattern", ["dt=%Y-%m-%d", "year=%Y/month=%m/day=%d", "%Y%m%d", "%d.%m.%Y"]
)
@pytest.mark.parametrize("day", [date(999, 1, 2), date(1, 1, 1), date(45, 12, 31)])
def test_years_before_1000_are_four_digits_and_their_runs_are_recognised(
    pattern: str, day: date
) -> None:
    """strftime writes year 999 as 999 (glibc), which no partition pattern recognised: the
    run-outcome function never completed that day's marker. One rule: four digits."""
    layout = partitions.Layout("s3://b/in/", "s3://b/out", pattern)
    assert f"{day.year:04d}" in layout.partition(day)
    found = partitions.partition_day(
        partitions.partition_pattern(pattern), layout.partition(day) + "/"
    )
    assert found == day
    run = {"InputDataUrl": layout.input_uri(day), "OutputDataUrl": layout.output_uri(day)}
    assert partitions.marker_of_run(layout, run) == layout.marker_uri(day)


def test_the_stage_functions_look_for_what_preprocess_reads() -> None:
    """A day of Parquet or JSON Lines is data to the schedule and to run on upload exactly
    when Preprocess reads it: the two lists of endings are one."""
    from pipelines.batch_inference import preprocess

    assert partitions.DATA_FORMATS == preprocess.EXTENSIONS
