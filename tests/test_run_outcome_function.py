"""The run-outcome function against the emulator: the markers the schedule's and the upload's
functions leave are completed when their runs end.

Events are the documented shape of SageMaker's "SageMaker Model Building Pipeline Execution
Status Change" on EventBridge. Runs are started by the real starter functions; moto's
executions are kept Executing and then ended by hand (its own state), and what a run's
Preprocess writes (its summary) is put where the pipeline writes it.
"""

from __future__ import annotations

import json
import uuid
from datetime import date
from typing import Any

import boto3
import moto.backends
import pytest

from lambdas.record_run_outcome import handler as function
from lambdas.start_scheduled_run import handler as schedule
from lambdas.start_upload_run import handler as upload
from local_mode import sandbox
from local_mode.emulator import Emulator
from stage_runtime import partitions
from tests.registry import create_empty_pipeline, keep_executions_running

BUCKET = "stage-artifacts"
INPUT = f"s3://{BUCKET}/churn/batch-inference/input"
OUTPUT = f"s3://{BUCKET}/churn/batch-inference/output"
PIPELINE = "churn-preprod-batch-inference"
LAYOUT = partitions.Layout(INPUT, OUTPUT)
DAY = date(2026, 11, 3)


@pytest.fixture
def stage(aws: Emulator, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The bucket, the pipeline, and the three functions' environment (as the template
    sets it; each reads its own variables)."""
    sandbox.create_bucket(aws, None, BUCKET)
    sagemaker = boto3.client("sagemaker")
    create_empty_pipeline(sagemaker, PIPELINE)
    refused = boto3.client("sqs").create_queue(
        QueueName="refused.fifo", Attributes={"FifoQueue": "true"}
    )["QueueUrl"]
    for name, value in {
        "PIPELINE_NAME": PIPELINE,
        "INPUT_DATA_URL": INPUT,
        "OUTPUT_DATA_URL": OUTPUT,
        "PARTITION_FORMAT": partitions.DEFAULT_FORMAT,
        "LOOKBACK_DAYS": "0",
        "INPUT_BUCKET": BUCKET,
        "INPUT_PREFIX": "churn/batch-inference/input/",
        "MAX_RUNNING": "5",
        "REFUSED_QUEUE_URL": refused,
    }.items():
        monkeypatch.setenv(name, value)
    # the schedule's parameters leave out the data URLs (it sets each day's); the upload's
    # hold OutputDataUrl, the same stage output
    monkeypatch.setenv("PIPELINE_PARAMETERS", json.dumps({"ModelName": "churn-models-v3"}))
    keep_executions_running(monkeypatch)
    return {"s3": boto3.client("s3"), "sagemaker": sagemaker, "aws": aws}


def ended(arn: str, status: str = "Succeeded") -> dict[str, Any]:
    """SageMaker's event for an execution's status change (documented shape)."""
    pipeline_arn = arn.split("/execution/")[0]
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "SageMaker Model Building Pipeline Execution Status Change",
        "source": "aws.sagemaker",
        "account": "123456789012",
        "time": "2026-11-04T02:10:00Z",
        "region": "eu-west-1",
        "resources": [pipeline_arn, arn],
        "detail": {
            "pipelineExecutionDisplayName": "day-dt-2026-11-03",
            "currentPipelineExecutionStatus": status,
            "previousPipelineExecutionStatus": "Executing",
            "executionStartTime": "2026-11-04T02:00:00Z",
            "executionEndTime": "2026-11-04T02:10:00Z",
            "pipelineArn": pipeline_arn,
            "pipelineExecutionArn": arn,
        },
    }


def set_status(stage: dict[str, Any], arn: str, status: str) -> None:
    backend = moto.backends.get_backend("sagemaker")["123456789012"][stage["aws"].region]
    backend.pipelines[PIPELINE].pipeline_executions[arn].pipeline_execution_status = status


def put_summary(stage: dict[str, Any], output: str, arn: str, read: int, rejected: int) -> None:
    """What the run's Preprocess writes under its output: rows read, rejected, written."""
    bucket, prefix = partitions.parse_s3_uri(output)
    key = f"{prefix}/{arn.rsplit('/', 1)[-1]}/preprocess/summary/part-0.json"
    body = {"rows_read": read, "rows_rejected": rejected, "rows_written": read - rejected}
    stage["s3"].put_object(Bucket=bucket, Key=key, Body=json.dumps(body).encode())


def scheduled_day_run(stage: dict[str, Any]) -> str:
    bucket, prefix = partitions.parse_s3_uri(LAYOUT.input_uri(DAY))
    stage["s3"].put_object(Bucket=bucket, Key=f"{prefix}a.csv", Body=b"record_id\nr1\nr2\n")
    answer = schedule.handler(
        {"source": "aws.events", "detail-type": "Scheduled Event", "id": "e1",
         "time": "2026-11-04T02:00:00Z"}
    )  # fmt: skip
    arn = answer[DAY.isoformat()]["execution_arn"]
    assert isinstance(arn, str)
    return arn


def test_a_days_marker_is_completed_when_its_run_ends_and_only_once(
    stage: dict[str, Any],
) -> None:
    arn = scheduled_day_run(stage)
    uri = LAYOUT.marker_uri(DAY)
    assert partitions.read_marker(stage["s3"], uri)["status"] == "Executing"  # type: ignore[index]
    set_status(stage, arn, "Succeeded")
    put_summary(stage, LAYOUT.output_uri(DAY), arn, read=2, rejected=0)
    answer = function.handler(ended(arn))
    assert answer == {"marker": uri, "recorded": True, "status": "Succeeded"}
    marker = partitions.read_marker(stage["s3"], uri)
    assert marker is not None
    assert (marker["status"], marker["execution_arn"], marker["date"]) == (
        "Succeeded", arn, DAY.isoformat(),
    )  # fmt: skip
    assert (marker["rows_read"], marker["rows_rejected"], marker["rows_scored"]) == (2, 0, 2)
    # SageMaker may send the event again: the completed marker is left as it is
    assert function.handler(ended(arn))["recorded"] is False
    assert partitions.read_marker(stage["s3"], uri) == marker


def test_an_uploaded_objects_marker_is_completed_with_the_failure(
    stage: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Uploads are not looked at again: without this function their markers would stay
    Executing. A failed run's marker says so; the next upload of the object retries it."""
    monkeypatch.setenv(
        "PIPELINE_PARAMETERS", json.dumps({"ModelName": "churn-models-v3", "OutputDataUrl": OUTPUT})
    )
    key = "churn/batch-inference/input/adhoc/b.csv"
    stage["s3"].put_object(Bucket=BUCKET, Key=key, Body=b"record_id\nr1\n")
    body = {"detail": {"bucket": {"name": BUCKET}, "object": {"key": key}}}
    started = upload.handler({"Records": [{"messageId": "m1", "body": json.dumps(body)}]})
    (arn,) = started["started"]
    set_status(stage, arn, "Failed")
    answer = function.handler(ended(arn, "Failed"))
    uri = partitions.upload_marker_uri(OUTPUT, "adhoc/b.csv")
    assert answer == {"marker": uri, "recorded": True, "status": "Failed"}
    marker = partitions.read_marker(stage["s3"], uri)
    assert marker is not None
    assert (marker["status"], marker["object"], marker["execution_arn"]) == (
        "Failed", f"s3://{BUCKET}/{key}", arn,
    )  # fmt: skip
    assert "rows_read" not in marker


def test_an_event_newer_than_describe_records_the_events_status(stage: dict[str, Any]) -> None:
    """DescribePipelineExecution may still say Executing when the end event arrives: the
    event's status is recorded (nobody would look at an upload's marker again)."""
    arn = scheduled_day_run(stage)  # moto's execution stays Executing
    put_summary(stage, LAYOUT.output_uri(DAY), arn, read=2, rejected=1)
    answer = function.handler(ended(arn))
    assert answer == {"marker": LAYOUT.marker_uri(DAY), "recorded": True, "status": "Succeeded"}
    marker = partitions.read_marker(stage["s3"], LAYOUT.marker_uri(DAY))
    assert marker is not None and (marker["status"], marker["rows_scored"]) == ("Succeeded", 1)


def test_a_marker_written_since_it_was_read_is_not_overwritten(
    stage: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The end event of run 1 and a starter that completes run 1 and starts run 2 race: if
    the starter writes between the function's read and its write, run 2's marker stands
    (S3's conditional write), rather than run 1's outcome hiding run 2 for good."""
    arn = scheduled_day_run(stage)
    set_status(stage, arn, "Failed")
    uri = LAYOUT.marker_uri(DAY)
    newer = {**partitions.read_marker(stage["s3"], uri), "execution_arn": arn + "-2"}  # type: ignore[dict-item]
    real_ended = partitions.ended_marker

    def a_starter_writes_meanwhile(*args: Any, **kwargs: Any) -> dict[str, Any]:
        partitions.write_marker(stage["s3"], uri, newer, None)
        return real_ended(*args, **kwargs)

    monkeypatch.setattr(partitions, "ended_marker", a_starter_writes_meanwhile)
    assert function.handler(ended(arn, "Failed")) == {"marker": uri, "recorded": False}
    marker = partitions.read_marker(stage["s3"], uri)
    assert marker is not None and (marker["status"], marker["execution_arn"]) == (
        "Executing", arn + "-2",
    )  # fmt: skip


def test_runs_no_marker_names_are_left_alone(stage: dict[str, Any]) -> None:
    """A run started by hand on another prefix, and a day's earlier run after the day was
    started again (its marker names the new run)."""
    sagemaker = stage["sagemaker"]
    by_hand = sagemaker.start_pipeline_execution(
        PipelineName=PIPELINE,
        PipelineParameters=[{"Name": "InputDataUrl", "Value": f"s3://{BUCKET}/elsewhere/"}],
    )["PipelineExecutionArn"]
    set_status(stage, by_hand, "Succeeded")
    assert function.handler(ended(by_hand)) == {"marker": None, "recorded": False}
    earlier = scheduled_day_run(stage)
    set_status(stage, earlier, "Failed")
    later = schedule.handler(
        {"source": "aws.events", "detail-type": "Scheduled Event", "id": "e2",
         "time": "2026-11-04T03:00:00Z"}
    )[DAY.isoformat()]["execution_arn"]  # fmt: skip
    assert later not in (None, earlier)
    assert function.handler(ended(earlier, "Failed"))["recorded"] is False
    marker = partitions.read_marker(stage["s3"], LAYOUT.marker_uri(DAY))
    assert marker is not None and (marker["status"], marker["execution_arn"]) == (
        "Executing", later,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ([], "not a pipeline execution status change: a list, no object"),
        ("text", "not a pipeline execution status change: a str, no object"),
        (None, "not a pipeline execution status change: a NoneType, no object"),
        ({"source": "aws.events", "detail-type": "Scheduled Event"}, "not a pipeline execution"),
        (
            {"source": function.EVENT_SOURCE, "detail-type": function.EVENT_TYPE, "detail": {}},
            "detail.pipelineExecutionArn is not an execution ARN",
        ),
        (
            {"source": function.EVENT_SOURCE, "detail-type": function.EVENT_TYPE,
             "detail": {"pipelineExecutionArn": "arn:aws:sagemaker:eu-west-1:1:pipeline/p"}},
            "is not an execution ARN",
        ),
    ],
)  # fmt: skip
def test_an_event_that_is_not_a_runs_end_is_refused(
    stage: dict[str, Any], event: dict, message: str
) -> None:
    with pytest.raises(function.NotARunThatEnded, match=message):
        function.handler(event)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("OUTPUT_DATA_URL", "", "OUTPUT_DATA_URL is required"),
        ("INPUT_DATA_URL", "bucket/input", "s3://"),
        ("PARTITION_FORMAT", "uploads/%Y/%m/%d", "cannot start with the folder 'uploads'"),
    ],
)
def test_a_misconfigured_function_names_the_variable(
    stage: dict[str, Any], monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(function.function_environment.ConfigError, match=message):
        function.handler(ended("arn:aws:sagemaker:eu-west-1:123456789012:pipeline/p/execution/x"))


def test_a_shadow_run_of_a_scored_day_leaves_the_days_marker_alone(
    stage: dict[str, Any],
) -> None:
    """A shadow run (pipelines/shadow_run.py) reads a scored day's input partition, so its
    end event leads the function to that day's marker, which names the champion's run: it
    is left as it is, whatever the shadow's outcome."""
    from pipelines import shadow_run

    arn = scheduled_day_run(stage)
    set_status(stage, arn, "Succeeded")
    put_summary(stage, LAYOUT.output_uri(DAY), arn, read=2, rejected=0)
    function.handler(ended(arn))
    uri = LAYOUT.marker_uri(DAY)
    scored = partitions.read_marker(stage["s3"], uri)
    assert scored is not None and scored["status"] == "Succeeded"
    tfvars = {
        "model_name": "churn-models-v3", "model_version": 3, "output_data_url": OUTPUT,
        "feature_schema_url": f"s3://{BUCKET}/schema.json",
        "processing_instance_type": "ml.m5.xlarge", "processing_instance_count": 1,
        "transform_instance_type": "ml.m5.xlarge", "transform_instance_count": 1,
    }  # fmt: skip
    parameters = shadow_run.shadow_parameters(tfvars, scored, "churn-models-v4", 4)
    assert parameters["InputDataUrl"] == LAYOUT.input_uri(DAY)
    assert parameters["OutputDataUrl"].startswith(f"{OUTPUT}/_shadow/v4/")
    assert parameters["PredictionsTableUrl"] == f"{OUTPUT}/_shadow/v4/table/"
    shadow = stage["sagemaker"].start_pipeline_execution(
        PipelineName=PIPELINE,
        PipelineParameters=[{"Name": k, "Value": v} for k, v in parameters.items()],
    )["PipelineExecutionArn"]
    for status in ("Failed", "Succeeded"):
        set_status(stage, shadow, status)
        assert function.handler(ended(shadow, status)) == {"marker": uri, "recorded": False}
        assert partitions.read_marker(stage["s3"], uri) == scored
