"""The run-on-upload function against the emulator: S3, SageMaker and SQS through boto3.

Events are the documented shape of S3's "Object Created" on EventBridge, delivered the way
the stage template routes them (unchanged, as an SQS message body). What the emulator
cannot represent, an execution that is still running, is arranged in moto's own state: its
executions finish the moment they start.
"""

from __future__ import annotations

import gzip
import json
import re
import uuid
import zipfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import moto.backends
import pytest
from botocore.exceptions import ClientError

from lambdas import package
from lambdas.start_upload_run import handler as function
from local_mode import sandbox
from local_mode.emulator import Emulator
from stage_runtime import partitions
from tests.provider_requests import Request, problems
from tests.registry import create_empty_pipeline, keep_executions_running

BUCKET = "stage-artifacts"
PREFIX = "churn/batch-inference/input/"
PIPELINE = "churn-preprod-batch-inference"
PARAMETERS = {"ModelName": "churn-models-preprod-v3", "OutputDataUrl": f"s3://{BUCKET}/churn/out"}


@pytest.fixture
def stage(aws: Emulator, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The bucket, the pipeline, the refused-uploads queue and the function's environment."""
    s3 = boto3.client("s3")
    sandbox.create_bucket(aws, None, BUCKET)
    # the stage bucket keeps versions (infra/target-account): an upload is its VersionId
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    sagemaker = boto3.client("sagemaker")
    create_empty_pipeline(sagemaker, PIPELINE)
    sqs = boto3.client("sqs")
    refused = sqs.create_queue(QueueName="refused-uploads.fifo", Attributes={"FifoQueue": "true"})[
        "QueueUrl"
    ]
    for name, value in {
        "PIPELINE_NAME": PIPELINE,
        "PIPELINE_PARAMETERS": json.dumps(PARAMETERS),
        "INPUT_BUCKET": BUCKET,
        "INPUT_PREFIX": PREFIX,
        "MAX_RUNNING": "2",
        "REFUSED_QUEUE_URL": refused,
        "PARTITION_FORMAT": "dt=%Y-%m-%d",
    }.items():
        monkeypatch.setenv(name, value)
    return {"s3": s3, "sagemaker": sagemaker, "sqs": sqs, "refused": refused}


def uploaded(key: str, bucket: str = BUCKET, message_id: str = "") -> dict[str, Any]:
    """The SQS event the function gets for one upload: the EventBridge event as the body."""
    event = {
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2026-11-28T12:00:00Z",
        "region": "eu-west-1",
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {"key": key, "size": 5, "etag": "b1946ac92492d2347c6235b4d2611184"},
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": "123456789012",
            "reason": "PutObject",
        },
    }
    return {
        "Records": [
            {
                "messageId": message_id or str(uuid.uuid5(uuid.NAMESPACE_URL, key)),
                "body": json.dumps(event),
                "attributes": {"MessageGroupId": "uploads"},
                "eventSource": "aws:sqs",
            }
        ]
    }


def executions(stage: dict[str, Any]) -> list[dict[str, str]]:
    """Each execution's parameters, as SageMaker recorded them."""
    sagemaker = stage["sagemaker"]
    found = []
    for summary in sagemaker.list_pipeline_executions(PipelineName=PIPELINE)[
        "PipelineExecutionSummaries"
    ]:
        listed = sagemaker.list_pipeline_parameters_for_execution(
            PipelineExecutionArn=summary["PipelineExecutionArn"]
        )["PipelineParameters"]
        found.append({p["Name"]: p["Value"] for p in listed})
    return found


def refusals(stage: dict[str, Any]) -> list[tuple[dict, str]]:
    """(event, reason) of every message in the refused-uploads queue."""
    messages = (
        stage["sqs"]
        .receive_message(
            QueueUrl=stage["refused"], MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        )
        .get("Messages", [])
    )
    return [
        (json.loads(m["Body"]), m["MessageAttributes"]["reason"]["StringValue"]) for m in messages
    ]


@pytest.mark.parametrize(
    "name",
    [
        "plain.csv",
        'quote"and\\backslash.csv',
        "with space and ünïcödé.csv",
        "nested/day=2026-11-28/part-0.csv",
    ],
)
def test_each_upload_starts_one_run_on_exactly_that_object(
    stage: dict[str, Any], name: str
) -> None:
    key = PREFIX + name
    stage["s3"].put_object(Bucket=BUCKET, Key=key, Body=b"id,a\n1,2\n")
    result = function.handler(uploaded(key))
    assert len(result["started"]) == 1
    assert executions(stage) == [{**PARAMETERS, "InputDataUrl": f"s3://{BUCKET}/{key}"}]
    assert refusals(stage) == []


@pytest.mark.parametrize(
    ("name", "left_to_the_schedule"),
    [
        ("dt=2026-11-01/batch.csv", True),
        ("dt=2026-11-01/nested/part-0.csv", True),
        ("dt=2026-11-1/batch.csv", False),  # not a day partition of this format
        ("archive/dt=2026-11-01/batch.csv", False),  # under the input, not a partition
    ],
)
def test_an_upload_into_a_day_partition_is_left_to_the_schedule(
    stage: dict[str, Any], name: str, left_to_the_schedule: bool
) -> None:
    """The schedule scores a day whole, once, with its marker: a run on the object as
    well would score its rows twice. Nothing is refused (no alarm), nothing starts."""
    key = PREFIX + name
    stage["s3"].put_object(Bucket=BUCKET, Key=key, Body=b"id,a\n1,2\n")
    result = function.handler(uploaded(key))
    assert len(result["started"]) == (0 if left_to_the_schedule else 1)
    assert len(executions(stage)) == (0 if left_to_the_schedule else 1)
    assert refusals(stage) == []


@pytest.mark.parametrize(
    "name",
    ["dt=2026-02-30/batch.csv", "dt=2026-13-45/batch.csv", "dt=0000-01-01/nested/part-0.csv"],
)
def test_an_upload_into_a_folder_shaped_like_an_impossible_day_is_refused(
    stage: dict[str, Any], name: str
) -> None:
    """No schedule or backfill ever builds dt=2026-02-30/: left to the schedule, the file
    would never be scored and nobody told. Refused, with why, as other refusals are."""
    key = PREFIX + name
    stage["s3"].put_object(Bucket=BUCKET, Key=key, Body=b"id,a\n1,2\n")
    assert function.handler(uploaded(key)) == {"started": [], "skipped": []}
    assert executions(stage) == []
    ((_, why),) = refusals(stage)
    folder = name.split("/")[0]
    assert why.startswith(f"{folder}/ is shaped like a day partition but ")
    assert why.endswith("move the file to a real day's folder")


def delivered(stage: dict[str, Any], names: list[str]) -> dict[str, dict[str, Any]]:
    """Each object uploaded and its event as the emulator's S3 sends it to EventBridge and a
    rule on the default bus puts it on a FIFO queue (the template's route): name -> the SQS
    event the function gets for it."""
    s3, sqs, events = stage["s3"], stage["sqs"], boto3.client("events")
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    queue = sqs.create_queue(
        QueueName="uploads.fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]
    pattern = {"source": ["aws.s3"], "detail-type": ["Object Created"]}
    events.put_rule(Name="uploads", EventPattern=json.dumps(pattern))
    events.put_targets(
        Rule="uploads",
        Targets=[{"Id": "q", "Arn": arn["QueueArn"], "SqsParameters": {"MessageGroupId": "u"}}],
    )
    found = {}
    for name in names:
        s3.put_object(Bucket=BUCKET, Key=PREFIX + name, Body=b"id,a\n1,2\n")
        (message,) = sqs.receive_message(QueueUrl=queue)["Messages"]
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        record = {"messageId": message["MessageId"], "body": message["Body"]}
        found[name] = {"Records": [record]}
    return found


def test_each_spelling_of_a_key_scores_exactly_its_own_object(stage: dict[str, Any]) -> None:
    """With a b.csv and a+b.csv both present, as S3 sends their events to EventBridge."""
    events = delivered(stage, ["a b.csv", "a+b.csv"])
    for event in events.values():
        function.handler(event)
    inputs = sorted(e["InputDataUrl"] for e in executions(stage))
    assert inputs == [f"s3://{BUCKET}/{PREFIX}a b.csv", f"s3://{BUCKET}/{PREFIX}a+b.csv"]
    assert refusals(stage) == []


@pytest.mark.parametrize(
    ("present", "announced", "reason"),
    [
        (["a b.csv", "a+b.csv"], "a+b.csv", "does not exist or is not readable"),
        (["xA.csv", "x%41.csv"], "x%41.csv", "xA.csv (the key URL-decoded) exists, but"),
        (["y z.csv", "y%20z.csv"], "y%20z.csv", "y z.csv (the key URL-decoded) exists, but"),
    ],
    ids=["plus", "percent", "percent-space"],
)
def test_an_event_is_never_taken_for_the_key_url_decoded(
    stage: dict[str, Any], present: list[str], announced: str, reason: str
) -> None:
    """S3's notifications to SQS/SNS/Lambda URL-encode keys (a b.csv as a+b.csv); its
    EventBridge events carry the key itself. The object an event names deleted before its
    run: refused, never a run on the object its key decodes to (which the old guess did: that
    object scored twice, or its own event then skipped as already scored)."""
    events = delivered(stage, present)
    stage["s3"].delete_object(Bucket=BUCKET, Key=PREFIX + announced)
    function.handler(events[announced])
    assert executions(stage) == []
    ((_, why),) = refusals(stage)
    assert f"s3://{BUCKET}/{PREFIX}{announced} " in why and reason in why


@pytest.mark.parametrize(
    ("key", "bucket", "reason"),
    [
        (PREFIX + "2026-11-28/", BUCKET, "is a folder marker"),
        ("churn/elsewhere/x.csv", BUCKET, "is not under"),
        (PREFIX + "x.csv", "other-bucket", "is not under"),
        (PREFIX + "deleted.csv", BUCKET, "does not exist"),
    ],
)
def test_uploads_that_must_not_run_are_refused_with_a_reason(
    stage: dict[str, Any], key: str, bucket: str, reason: str
) -> None:
    stage["s3"].put_object(Bucket=BUCKET, Key=PREFIX + "x.csv", Body=b"id,a\n1,2\n")
    event = uploaded(key, bucket)
    assert function.handler(event) == {"started": [], "skipped": []}
    assert executions(stage) == []
    ((body, why),) = refusals(stage)
    assert body == json.loads(event["Records"][0]["body"])  # the event kept whole, for a redrive
    assert reason in why


def test_a_key_other_objects_extend_is_refused_not_run_over_them(stage: dict[str, Any]) -> None:
    """The Processing input is an S3 prefix: a run on a.csv would also read a.csv.bak."""
    for key in (PREFIX + "a.csv", PREFIX + "a.csv.bak"):
        stage["s3"].put_object(Bucket=BUCKET, Key=key, Body=b"id,a\n1,2\n")
    function.handler(uploaded(PREFIX + "a.csv"))
    assert executions(stage) == []
    ((_, why),) = refusals(stage)
    assert f"s3://{BUCKET}/{PREFIX}a.csv.bak starts with the uploaded key" in why


@pytest.mark.parametrize(
    ("body", "kept"),
    [
        ("{}", {}),
        ({"detail": {"bucket": {"name": BUCKET}}}, {"detail": {"bucket": {"name": BUCKET}}}),
        (["a list"], ["a list"]),
    ],
    ids=["empty-object", "body-not-a-string", "list-body"],
)
def test_an_event_that_is_not_an_upload_is_refused(
    stage: dict[str, Any], body: Any, kept: Any
) -> None:
    """A message whose body is no S3 event (or no string at all) goes to the refused queue,
    kept as JSON, instead of a send that botocore rejects."""
    event = {"Records": [{"messageId": "5c0f8ef2-2a8a-4d2a-9a4c-2a1b3c4d5e6f", "body": body}]}
    assert function.handler(event) == {"started": [], "skipped": []}
    ((refused, why),) = refusals(stage)
    assert refused == kept and "not an S3 Object Created event" in why


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ([], "not an SQS event (a JSON object with a Records list), got list: nothing started"),
        ("text", "got str: nothing started"),
        (None, "got NoneType: nothing started"),
        ({}, "got an object without Records: nothing started"),
        ({"Records": "x"}, "got Records as a str: nothing started"),
        ({"Records": ["x"]}, "record 0 of the event is not an SQS message (no messageId)"),
        ({"Records": [{"body": "{}"}]}, "record 0 of the event is not an SQS message"),
        ({"Records": [{"messageId": 7, "body": "{}"}]}, "record 0 of the event is not"),
    ],
)
def test_an_invocation_that_is_not_an_sqs_event_is_one_line(
    stage: dict[str, Any], event: Any, message: str
) -> None:
    """Nothing to move to the refused queue (there is no message): one line, nothing done."""
    with pytest.raises(function.NotAnSqsEvent, match=re.escape(message)) as raised:
        function.handler(event)
    assert "\n" not in str(raised.value)
    assert executions(stage) == [] and refusals(stage) == []


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("header.csv", b"id,a\n"),
        ("header-and-blank-lines.csv", b"id,a\r\n\r\n   \n\t\n"),
        ("large-header.csv", b"id," + b"c" * 70 * 1024 + b"\n"),
        ("large-blank.csv", b"id,a\n" + b"\n" * 70 * 1024),
        ("not-read.txt", b"id,a\n1,2\n"),  # a file Preprocess does not read
        ("header.csv.gz", gzip.compress(b"id,a\n", mtime=0)),  # no clock in the test id
        ("blank.jsonl", b"\n  \n"),
        ("empty.parquet", b""),
    ],
)
def test_an_upload_without_a_row_is_recorded_empty_and_starts_no_run(
    stage: dict[str, Any], name: str, body: bytes
) -> None:
    """A run on it could only fail (Preprocess reads no row, the Transform gets no input):
    as a day without data, its marker says Empty (zero rows), no run, nothing refused; its
    event delivered again changes nothing."""
    stage["s3"].put_object(Bucket=BUCKET, Key=PREFIX + name, Body=body)
    assert function.handler(uploaded(PREFIX + name)) == {
        "started": [],
        "skipped": [f"s3://{BUCKET}/{PREFIX}{name}"],
    }
    marker = upload_marker(stage, name)
    assert marker is not None
    assert (marker["status"], marker["execution_arn"], marker["rows_read"]) == ("Empty", None, 0)
    again = function.handler(uploaded(PREFIX + name, message_id=str(uuid.uuid4())))
    assert again["started"] == [] and upload_marker(stage, name) == marker
    assert executions(stage) == [] and refusals(stage) == []


def test_an_error_retrying_cannot_cure_is_refused_not_retried_for_hours(
    stage: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One FIFO group: a message failing again and again would hold every upload behind it.
    A pipeline that is gone answers ValidationException: refused at once, with AWS's words."""
    stage["s3"].put_object(Bucket=BUCKET, Key=PREFIX + "x.csv", Body=b"id,a\n1,2\n")
    monkeypatch.setenv("PIPELINE_NAME", "deleted-pipeline")
    assert function.handler(uploaded(PREFIX + "x.csv")) == {"started": [], "skipped": []}
    ((_, why),) = refusals(stage)
    assert why.startswith("ListPipelineExecutions failed: ")


@pytest.mark.parametrize(
    ("status", "code", "transient"),
    [(503, "ServiceUnavailable", True), (400, "ThrottlingException", True),
     (400, "ValidationException", False), (403, "AccessDenied", False)],
)  # fmt: skip
def test_only_throttling_and_faults_are_retried(status: int, code: str, transient: bool) -> None:
    error = ClientError(
        {
            "Error": {"Code": code, "Message": "m"},
            "ResponseMetadata": {
                "HTTPStatusCode": status,
                "RequestId": "r",
                "HostId": "",
                "HTTPHeaders": {},
                "RetryAttempts": 0,
            },
        },
        "StartPipelineExecution",
    )
    assert function.is_transient(error) is transient


def _set_status(aws: Emulator, arn: str, status: str) -> None:
    """Arrange a still-running execution: moto's finish the moment they start."""
    backend = moto.backends.get_backend("sagemaker")["123456789012"][aws.region]
    backend.pipelines[PIPELINE].pipeline_executions[arn].pipeline_execution_status = status


def test_uploads_wait_while_the_cap_of_runs_is_executing(
    stage: dict[str, Any], aws: Emulator
) -> None:
    for name in ("a.csv", "b.csv", "c.csv"):
        stage["s3"].put_object(Bucket=BUCKET, Key=PREFIX + name, Body=b"id,a\n1,2\n")
    first = function.handler(uploaded(PREFIX + "a.csv"))["started"][0]
    second = function.handler(uploaded(PREFIX + "b.csv"))["started"][0]
    for arn in (first, second):
        _set_status(aws, arn, "Executing")
    held = uploaded(PREFIX + "c.csv")
    with pytest.raises(function.RunLimitReached, match=r"2 runs of .* are executing"):
        function.handler(held)  # the message goes back to the queue, nothing started
    assert len(executions(stage)) == 2 and refusals(stage) == []
    _set_status(aws, first, "Succeeded")
    function.handler(held)  # its next delivery, once a run has finished
    assert len(executions(stage)) == 3


def _recording_sessions(monkeypatch: pytest.MonkeyPatch) -> list[Request]:
    """StartPipelineExecution requests the handler's clients send (its sessions are the
    project's, ``aws_sessions.session``: the hook is registered on each one it makes)."""
    sent: list[Request] = []
    real_session = function.aws_sessions.session

    def record(params: dict, model: Any, **_: Any) -> None:
        if model.name == "StartPipelineExecution":
            sent.append(Request("sagemaker", model.name, dict(params)))

    def recording_session(*args: Any, **kwargs: Any) -> boto3.Session:
        session = real_session(*args, **kwargs)
        session.events.register("before-parameter-build.sagemaker", record)
        return session

    monkeypatch.setattr(function.aws_sessions, "session", recording_session)
    return sent


def test_the_start_request_is_one_aws_accepts_and_one_per_upload(
    stage: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One upload delivered twice (two messages: EventBridge and SQS are at-least-once)
    starts one run: the second finds the object's marker naming the running execution. The
    token is made of the key, the upload's version and the marker's state (checked against
    botocore's model here; two deliveries that read no marker: the next test)."""
    name = ("k" * 900) + ".csv"  # long keys still fit a parameter value
    stage["s3"].put_object(Bucket=BUCKET, Key=PREFIX + name, Body=b"id,a\n1,2\n")
    version = stage["s3"].head_object(Bucket=BUCKET, Key=PREFIX + name)["VersionId"]
    keep_executions_running(monkeypatch)
    sent = _recording_sessions(monkeypatch)
    first = function.handler(uploaded(PREFIX + name, message_id=str(uuid.uuid4())))
    again = function.handler(uploaded(PREFIX + name, message_id=str(uuid.uuid4())))
    assert len(first["started"]) == 1 and again == {
        "started": [],
        "skipped": [f"s3://{BUCKET}/{PREFIX}{name}"],
    }
    (request,) = sent
    assert request.body["ClientRequestToken"] == partitions.start_token(
        PIPELINE, name, f"{partitions.no_marker_state()}|{version}"
    )
    assert problems(request) == []


def test_deliveries_that_read_no_marker_send_the_same_token(
    stage: dict[str, Any], aws: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two deliveries of one upload that both read the object's marker before either wrote
    it (here: the first's write is lost) send one token, so SageMaker starts one execution
    (moto ignores tokens: the two requests are what is compared). A new upload of the key
    then sends another."""
    stage["s3"].put_object(Bucket=BUCKET, Key=PREFIX + "a.csv", Body=b"id,a\n1,2\n")
    keep_executions_running(monkeypatch)
    sent = _recording_sessions(monkeypatch)
    real_write = partitions.write_marker
    monkeypatch.setattr(partitions, "write_marker", lambda *_, **__: None)  # lost
    function.handler(uploaded(PREFIX + "a.csv", message_id=str(uuid.uuid4())))
    monkeypatch.setattr(partitions, "write_marker", real_write)
    (second,) = function.handler(uploaded(PREFIX + "a.csv", message_id=str(uuid.uuid4())))[
        "started"
    ]
    _set_status(aws, second, "Succeeded")
    stage["s3"].put_object(Bucket=BUCKET, Key=PREFIX + "a.csv", Body=b"id,a\n1,2\n")
    function.handler(uploaded(PREFIX + "a.csv", message_id=str(uuid.uuid4())))
    tokens = [r.body["ClientRequestToken"] for r in sent]
    assert len(tokens) == 3 and tokens[0] == tokens[1] != tokens[2]


def upload_marker(stage: dict[str, Any], name: str) -> dict[str, Any] | None:
    uri = partitions.upload_marker_uri(PARAMETERS["OutputDataUrl"], name)
    return partitions.read_marker(stage["s3"], uri)


def put_summary(stage: dict[str, Any], arn: str, read: int, rejected: int) -> None:
    """What the run's Preprocess writes: the rows it read, rejected and wrote."""
    key = f"churn/out/{arn.rsplit('/', 1)[-1]}/preprocess/summary/part-0.json"
    body = {"rows_read": read, "rows_rejected": rejected, "rows_written": read - rejected}
    stage["s3"].put_object(Bucket=BUCKET, Key=key, Body=json.dumps(body).encode())


def test_an_upload_is_scored_once_and_each_new_upload_again(
    stage: dict[str, Any], aws: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upload is its S3 version: its event delivered again starts nothing; the same file
    uploaded again is a new upload (under SSE-KMS an ETag is no content hash, so equal
    bytes cannot be told from the ETag) and is scored again."""
    keep_executions_running(monkeypatch)
    stage["s3"].put_object(Bucket=BUCKET, Key=PREFIX + "a.csv", Body=b"id,a\n1,2\n")
    (first,) = function.handler(uploaded(PREFIX + "a.csv"))["started"]
    started = upload_marker(stage, "a.csv")
    assert started is not None
    assert (started["status"], started["execution_arn"], started["object"]) == (
        "Executing", first, f"s3://{BUCKET}/{PREFIX}a.csv",
    )  # fmt: skip
    put_summary(stage, first, read=3, rejected=1)
    _set_status(aws, first, "Succeeded")
    # the event delivered again: the run that ended is recorded on the way, nothing starts
    again = function.handler(uploaded(PREFIX + "a.csv", message_id=str(uuid.uuid4())))
    assert again["started"] == [] and len(executions(stage)) == 1
    scored = upload_marker(stage, "a.csv")
    assert scored is not None
    assert (scored["status"], scored["rows_read"], scored["rows_rejected"]) == ("Succeeded", 3, 1)
    assert scored["rows_scored"] == 2 and scored["version"] == started["version"]
    # the same bytes uploaded again: a new upload, scored again, its own marker state
    stage["s3"].put_object(Bucket=BUCKET, Key=PREFIX + "a.csv", Body=b"id,a\n1,2\n")
    (second,) = function.handler(uploaded(PREFIX + "a.csv", message_id=str(uuid.uuid4())))[
        "started"
    ]
    latest = upload_marker(stage, "a.csv")
    assert latest is not None and second != first and len(executions(stage)) == 2
    assert (latest["status"], latest["execution_arn"]) == ("Executing", second)
    assert latest["version"] != started["version"]


def test_an_unusable_marker_refuses_the_upload_instead_of_holding_the_queue(
    stage: dict[str, Any],
) -> None:
    """A marker at the object's key that is not this template's is never overwritten; the
    upload is refused with why (retrying would hold every upload behind it for hours)."""
    bucket, key = partitions.parse_s3_uri(
        partitions.upload_marker_uri(PARAMETERS["OutputDataUrl"], "a.csv")
    )
    stage["s3"].put_object(Bucket=bucket, Key=key, Body=b'{"someone": "else"}')
    stage["s3"].put_object(Bucket=BUCKET, Key=PREFIX + "a.csv", Body=b"id,a\n1,2\n")
    assert function.handler(uploaded(PREFIX + "a.csv")) == {"started": [], "skipped": []}
    ((_, why),) = refusals(stage)
    assert why.startswith("the object's marker cannot be used: ValueError: ")
    assert executions(stage) == []


def test_a_new_version_waits_while_the_run_on_the_earlier_one_is_going(
    stage: dict[str, Any], aws: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs on one object at once would race for its marker (and read whichever bytes
    are there): the new version is held in the queue, in order, until the run has ended."""
    keep_executions_running(monkeypatch)
    stage["s3"].put_object(Bucket=BUCKET, Key=PREFIX + "a.csv", Body=b"id,a\n1,2\n")
    (first,) = function.handler(uploaded(PREFIX + "a.csv"))["started"]
    stage["s3"].put_object(Bucket=BUCKET, Key=PREFIX + "a.csv", Body=b"id,a\n7,8\n")
    newer = uploaded(PREFIX + "a.csv", message_id=str(uuid.uuid4()))
    with pytest.raises(function.EarlierRunGoing, match="the new version waits in the queue"):
        function.handler(newer)
    assert len(executions(stage)) == 1 and refusals(stage) == []
    _set_status(aws, first, "Succeeded")
    (second,) = function.handler(newer)["started"]  # its next delivery
    assert second != first and len(executions(stage)) == 2


def test_a_failed_run_is_retried_by_the_next_upload_of_the_object(
    stage: dict[str, Any], aws: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    keep_executions_running(monkeypatch)
    stage["s3"].put_object(Bucket=BUCKET, Key=PREFIX + "a.csv", Body=b"id,a\n1,2\n")
    (first,) = function.handler(uploaded(PREFIX + "a.csv"))["started"]
    _set_status(aws, first, "Failed")
    (second,) = function.handler(uploaded(PREFIX + "a.csv", message_id=str(uuid.uuid4())))[
        "started"
    ]
    assert second != first
    marker = upload_marker(stage, "a.csv")
    assert marker is not None and (marker["status"], marker["execution_arn"]) == (
        "Executing", second,
    )  # fmt: skip


def test_an_object_whose_marker_key_would_be_too_long_is_refused(
    stage: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    output = f"s3://{BUCKET}/" + "o" * 200
    monkeypatch.setenv("PIPELINE_PARAMETERS", json.dumps({**PARAMETERS, "OutputDataUrl": output}))
    key = PREFIX + ("k" * 900) + ".csv"
    stage["s3"].put_object(Bucket=BUCKET, Key=key, Body=b"id,a\n1,2\n")
    function.handler(uploaded(key))
    ((_, why),) = refusals(stage)
    assert "the key is too long for the object's marker" in why and executions(stage) == []


def test_a_uri_longer_than_a_parameter_value_is_refused(stage: dict[str, Any]) -> None:
    key = PREFIX + ("k" * 1000) + ".csv"
    stage["s3"].put_object(Bucket=BUCKET, Key=key, Body=b"id,a\n1,2\n")
    function.handler(uploaded(key))
    ((_, why),) = refusals(stage)
    assert "a pipeline parameter holds 1024" in why


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PIPELINE_NAME", "", "PIPELINE_NAME is required"),
        ("MAX_RUNNING", "0", "MAX_RUNNING must be a whole number >= 1"),
        ("MAX_RUNNING", "\u00b2", "MAX_RUNNING must be a whole number >= 1, got '\u00b2'"),
        ("MAX_RUNNING", "1\u00b2", "MAX_RUNNING must be a whole number >= 1"),
        ("MAX_RUNNING", "\u0663", "MAX_RUNNING must be a whole number >= 1"),  # Arabic-Indic 3
        ("MAX_RUNNING", "9" * 5000, "MAX_RUNNING must be a whole number >= 1"),
        ("PIPELINE_PARAMETERS", "[1]", "PIPELINE_PARAMETERS must be a JSON object of strings"),
        ("INPUT_PREFIX", "churn/input", "INPUT_PREFIX must end with '/'"),
        ("PARTITION_FORMAT", "dt=%Y", "partition_format: 'dt=%Y' must hold each of"),
        (
            "PIPELINE_PARAMETERS",
            '{"ModelName": "m"}',
            "PIPELINE_PARAMETERS must hold OutputDataUrl",
        ),
    ],
)
def test_a_misconfigured_function_names_the_variable(
    stage: dict[str, Any], monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(function.ConfigError, match=message):
        function.handler(uploaded(PREFIX + "x.csv"))


@pytest.fixture
def built_zip(tmp_path: Path) -> Iterator[Path]:
    archive = tmp_path / "start-upload-run.zip"
    package.build_zip(archive, package.UPLOAD_HANDLER)
    yield archive


def test_the_zip_holds_exactly_the_handler_and_what_it_imports(built_zip: Path) -> None:
    with zipfile.ZipFile(built_zip) as archive:
        shipped = [*package.runtime_modules(), *package.RUNTIME_DATA]
        assert archive.namelist() == ["handler.py", *shipped]
        assert archive.read("handler.py") == package.UPLOAD_HANDLER.read_bytes()
        for name in shipped:
            assert archive.read(name) == (package.REPO / name).read_bytes()


def test_an_object_scored_again_after_its_marker_expired_gets_a_new_token(
    stage: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Markers live under the output prefix and expire with it. The same bytes uploaded
    again a month later read no marker, as the first upload did: the token must differ
    (SageMaker could answer the first token with the first, long-gone execution)."""
    stage["s3"].put_object(Bucket=BUCKET, Key=PREFIX + "a.csv", Body=b"id,a\n1,2\n")
    sent = _recording_sessions(monkeypatch)
    function.handler(uploaded(PREFIX + "a.csv"))
    bucket, key = partitions.parse_s3_uri(
        partitions.upload_marker_uri(PARAMETERS["OutputDataUrl"], "a.csv")
    )
    stage["s3"].delete_object(Bucket=bucket, Key=key)  # expired

    class Later(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Later:
            return cls(2027, 1, 5, 3, 0, tzinfo=tz)

    monkeypatch.setattr(partitions, "datetime", Later)
    function.handler(uploaded(PREFIX + "a.csv", message_id=str(uuid.uuid4())))
    first, second = (r.body["ClientRequestToken"] for r in sent)
    assert first != second and len(executions(stage)) == 2


def test_a_run_that_ended_before_its_marker_was_written_is_recorded_by_the_starter(
    stage: dict[str, Any],
) -> None:
    """A retried message whose run had already ended (its end event came while there was no
    marker): the starter records the outcome right after writing the marker."""
    stage["s3"].put_object(Bucket=BUCKET, Key=PREFIX + "a.csv", Body=b"id,a\n1,2\n")
    (arn,) = function.handler(uploaded(PREFIX + "a.csv"))["started"]  # moto: ended at once
    marker = upload_marker(stage, "a.csv")
    assert marker is not None and (marker["status"], marker["execution_arn"]) == (
        "Succeeded", arn,
    )  # fmt: skip


def test_a_marker_that_cannot_be_written_says_the_run_started(
    stage: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A marker write that retrying cannot cure (the role or the key refuses it) after the
    start: the refusal (and its alarm) names the running execution, not just the error."""

    answer: Any = {  # what S3 answers a role without kms:GenerateDataKey
        "Error": {"Code": "AccessDenied", "Message": "not authorized"},
        "ResponseMetadata": {"HTTPStatusCode": 403},
    }

    def denied(*_: Any, **__: Any) -> None:
        raise ClientError(answer, "PutObject")

    monkeypatch.setattr(partitions, "write_marker", denied)
    stage["s3"].put_object(Bucket=BUCKET, Key=PREFIX + "a.csv", Body=b"id,a\n1,2\n")
    assert function.handler(uploaded(PREFIX + "a.csv")) == {"started": [], "skipped": []}
    ((_, why),) = refusals(stage)
    (execution,) = stage["sagemaker"].list_pipeline_executions(PipelineName=PIPELINE)[
        "PipelineExecutionSummaries"
    ]
    assert why.startswith(f"the run {execution['PipelineExecutionArn']} started, but its marker")
