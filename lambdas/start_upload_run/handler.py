"""Start the stage's pipeline on one uploaded input object, at most N runs at a time.

The stage template routes S3 "Object Created" events under the input prefix, unchanged, to a
FIFO queue with a single message group; this function consumes it one message at a time.

Why a function and not an EventBridge Pipe straight to the pipeline: a pipe to SageMaker
cannot batch, has no concurrency setting, and can only copy whole JSON values into pipeline
parameters, so it cannot build an S3 URI from bucket and key without an input transformer,
which does not escape what it inserts (a key with ``"`` breaks the JSON). Here the URI is
built in code, and:

- the object is checked before a run starts: folder markers (``key/``), objects outside the
  input prefix, objects that no longer exist, keys that other objects extend (the
  Processing input is an S3 *prefix*: ``a.csv`` would also read ``a.csv.bak``) and folders
  shaped like a day partition that name no date (``dt=2026-02-30/``: no schedule ever reads
  them) are **refused**: the message goes to the refused-uploads queue, whose alarm tells a
  human; so is a message that is not an S3 event;
- the key is read exactly as S3's EventBridge events spell it: the key itself, unencoded
  (S3's *notifications* to SQS, SNS and Lambda URL-encode it, ``a b.csv`` as ``a+b.csv``;
  its EventBridge events do not). Never also its URL-decoded form: with ``a b.csv`` and
  ``a+b.csv`` both present, a guess would score one object twice and the other never;
- an object without a row (a CSV header alone, or a file Preprocess does not read) starts no
  run, which could only fail: its marker records it ``Empty``, as a day without data;
- while ``MAX_RUNNING`` executions of the pipeline are Executing, the message is **held**:
  the invocation fails, the message becomes visible again after the queue's visibility
  timeout and, the queue being FIFO with one group, nothing behind it overtakes it. A burst
  of uploads drains at the pipeline's pace instead of starting hundreds of jobs;
- each object has a marker (``<OutputDataUrl>/_runs/uploads/<key>.json``,
  ``stage_runtime/partitions.py``) with the upload's version and run: one upload is scored
  once however often its event is delivered, each new upload of the key again (the
  version is S3's VersionId, as the stage bucket keeps versions; the ETag otherwise, which
  under SSE-KMS is no content hash, so it is never used to call two uploads "the same
  bytes"), and a failed run is retried by the next upload of the object. While a run on
  an earlier upload is going, the new one is held as above. The stage's run-outcome
  function completes the marker when the run ends;
- ``StartPipelineExecution``'s ``ClientRequestToken`` is made of the object's key, the
  upload's version and its marker as read: deliveries of one upload start one execution.

An object uploaded into a day partition (``PARTITION_FORMAT``, e.g. ``dt=2026-11-01/``)
starts nothing: the stage's schedule scores that day whole, once, with its marker, and a
run on the object as well would score its rows twice.

Standard library, boto3 (which the Lambda Python runtime provides) and the ``common`` and
``stage_runtime`` packages the zip carries beside this file (``lambdas/package.py``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from common import aws_sessions
from common.s3_locations import parse_s3_uri
from stage_runtime import executions, function_environment, partitions
from stage_runtime.function_environment import ConfigError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sqs import SQSClient

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)

# StartPipelineExecution: a ParameterValue is at most 1024 characters (botocore model).
PARAMETER_VALUE_LIMIT = 1024
KEY_LIMIT = 1024  # an S3 key, in UTF-8 bytes
# Executions started longer ago than this are not counted as running: a run of this
# pipeline never lasts that long (its jobs stop at 24 h), and the listing stays short.
RUNNING_LOOKBACK = timedelta(hours=48)
REFUSED_GROUP = "refused"
MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound", "403", "AccessDenied", "Forbidden"})
TRANSIENT_CODES = frozenset(
    {
        "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled",
        "TooManyRequestsException", "SlowDown", "RequestTimeout", "RequestTimeoutException",
        "ServiceUnavailable", "InternalError", "InternalFailure",
    }
)  # fmt: skip


class RunLimitReached(RuntimeError):
    """MAX_RUNNING executions are running: raised so the message is retried later."""


class EarlierRunGoing(RuntimeError):
    """A run on an earlier version of the object is going: retried later, in order."""


class Refused(Exception):
    """This upload must not start a run; the reason names what is wrong with it."""


class NotAnSqsEvent(ValueError):
    """The invocation is not an SQS event of messages (a hand-sent or broken event): nothing
    is started, and nothing can be moved to the refused queue (there is no message)."""


@dataclass(frozen=True)
class Config:
    """The function's configuration, from the environment the stage template sets."""

    pipeline_name: str
    parameters: dict[str, str]
    input_bucket: str
    input_prefix: str
    max_running: int
    refused_queue_url: str
    kms_key_arn: str | None = None  # the markers' encryption (the stage key)
    # day partitions under the input prefix (PARTITION_FORMAT): the schedule scores those
    partition: re.Pattern[str] | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Config:
        env = os.environ if environ is None else environ

        def required(name: str) -> str:
            return function_environment.required(env, name)

        parameters = function_environment.pipeline_parameters(env)
        if not parameters.get("OutputDataUrl", "").startswith("s3://"):
            raise ConfigError("PIPELINE_PARAMETERS must hold OutputDataUrl (s3://...)")
        max_running = function_environment.whole_number(
            env, "MAX_RUNNING", 1, function_environment.UNBOUNDED
        )
        prefix = required("INPUT_PREFIX")
        if not prefix.endswith("/"):
            raise ConfigError(f"INPUT_PREFIX must end with '/', got {prefix!r}")
        return cls(
            pipeline_name=required("PIPELINE_NAME"),
            parameters=parameters,
            input_bucket=required("INPUT_BUCKET"),
            input_prefix=prefix,
            max_running=max_running,
            refused_queue_url=required("REFUSED_QUEUE_URL"),
            kms_key_arn=env.get("KMS_KEY_ARN") or None,
            partition=_partition(env.get("PARTITION_FORMAT")),
        )


def _partition(pattern: str | None) -> re.Pattern[str] | None:
    if not pattern:
        return None
    try:
        return partitions.partition_pattern(pattern)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def handler(event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
    """SQS event source entry point: one record per invocation (batch size 1)."""
    config = Config.from_environment()
    records = sqs_messages(event)
    session = aws_sessions.session()  # the project's one retry policy
    s3 = session.client("s3")
    sagemaker = session.client("sagemaker")
    sqs = session.client("sqs")
    started: list[str] = []
    skipped: list[str] = []
    for record in records:
        try:
            with permanent_errors_refused():
                uri, version = checked_object(s3, config, record.get("body"))
                relative = uri[len(f"s3://{config.input_bucket}/{config.input_prefix}") :]
                if in_day_partition(config, relative):
                    # the schedule scores the whole day once (its marker): a run on this
                    # object too would score its rows twice
                    logger.info("left to the schedule: %s is in a day partition", uri)
                    continue
                arn = score_once(s3, sagemaker, config, uri, relative, version)
                (started if arn else skipped).append(arn or uri)
        except Refused as refusal:
            refuse(sqs, config, record, str(refusal))
    return {"started": started, "skipped": skipped}


def sqs_messages(event: Any) -> list[Mapping[str, Any]]:
    """The event's SQS messages, or ``NotAnSqsEvent`` (one line) when it holds anything else:
    every record must be an object with a ``messageId`` (what a refusal is keyed by)."""
    records = event.get("Records") if isinstance(event, Mapping) else None
    if not isinstance(records, list):
        got = (
            type(event).__name__
            if not isinstance(event, Mapping)
            else "an object without Records"
            if records is None
            else f"Records as a {type(records).__name__}"
        )
        raise NotAnSqsEvent(
            f"not an SQS event (a JSON object with a Records list), got {got}: nothing started"
        )
    for index, record in enumerate(records):
        message_id = record.get("messageId") if isinstance(record, Mapping) else None
        if not isinstance(message_id, str) or not message_id:
            raise NotAnSqsEvent(
                f"record {index} of the event is not an SQS message (no messageId): nothing started"
            )
    return records


def in_day_partition(config: Config, relative: str) -> bool:
    """Whether the object is in a day partition (left to the schedule); ``Refused`` when its
    folder is shaped like one but names no date: nothing would ever score it."""
    if config.partition is None:
        return False
    try:
        return partitions.partition_day(config.partition, relative) is not None
    except ValueError as error:
        raise Refused(str(error)) from None


def score_once(
    s3: S3Client,
    sagemaker: SageMakerClient,
    config: Config,
    uri: str,
    relative: str,
    version: str,
) -> str | None:
    """Start a run on this upload unless it was scored (None); its marker records it."""
    output = config.parameters["OutputDataUrl"]
    marker_uri = partitions.upload_marker_uri(output, relative)
    marker_key = parse_s3_uri(marker_uri)[1].encode()
    if len(marker_key) > KEY_LIMIT:
        raise Refused(
            f"the key is too long for the object's marker under {output}/{partitions.MARKERS}/: "
            f"{len(marker_key)} bytes, an S3 key holds {KEY_LIMIT}; shorten the object's key"
        )
    status = executions.status_reader(sagemaker)
    decision = partitions.decide_upload(s3, marker_uri, uri, version, status, config.kms_key_arn)
    logger.info("%s: %s", decision.action, decision.reason)
    if decision.action == "skip":
        return None
    if decision.action == "wait":
        raise EarlierRunGoing(f"{decision.reason}; the new version waits in the queue")
    bucket, key = parse_s3_uri(uri)
    if not partitions.holds_rows(s3, bucket, key):
        # a run could only fail (Preprocess reads no row, the Transform gets no input)
        empty = partitions.upload_empty_marker(uri, version, output)
        partitions.write_marker(s3, marker_uri, empty, config.kms_key_arn)
        logger.info("empty: %s holds no CSV row below a header; no run", uri)
        return None
    token = partitions.start_token(config.pipeline_name, relative, decision.state)
    arn = start_run(sagemaker, config, uri, token)
    marker = partitions.upload_started_marker(uri, version, output, arn)
    try:
        partitions.write_marker(s3, marker_uri, marker, config.kms_key_arn)
    except ClientError as error:
        if is_transient(error):
            raise  # retried: the same token gets the same execution back, then the marker
        info = error.response.get("Error", {})
        raise Refused(
            f"the run {arn} started, but its marker {marker_uri} could not be written: "
            f"{info.get('Code')}: {info.get('Message')}"
        ) from None
    # a run that ended before its marker was written (a retried message) has had its end
    # event already: record the outcome now, nobody else would
    partitions.complete(s3, marker_uri, marker, status, config.kms_key_arn)
    return arn


@contextmanager
def permanent_errors_refused() -> Iterator[None]:
    """An AWS error that retrying cannot cure becomes a refusal, with AWS's message.

    The queue is one FIFO group: a message that failed over and over would hold every upload
    behind it for upload_max_wait_hours and then reach the refused queue with no reason.
    Throttling and 5xx faults are raised, so the message is simply retried. A marker that
    cannot be read or used (not this template's, broken) is refused too, with why.
    """
    try:
        yield
    except (ValueError, KeyError) as error:  # a marker that is not ours, or broken
        reason = f"the object's marker cannot be used: {type(error).__name__}: {error}"
        raise Refused(reason) from None
    except ClientError as error:
        if is_transient(error):
            raise
        info = error.response.get("Error", {})
        operation = getattr(error, "operation_name", "the AWS call")
        raise Refused(f"{operation} failed: {info.get('Code')}: {info.get('Message')}") from None


def is_transient(error: ClientError) -> bool:
    code = error.response.get("Error", {}).get("Code", "")
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return status >= 500 or code in TRANSIENT_CODES


def checked_object(s3: S3Client, config: Config, body: Any) -> tuple[str, str]:
    """The ``s3://`` URI and version of the one object this event announces, or
    ``Refused``."""
    try:
        detail = json.loads(body)["detail"]
        bucket, key = detail["bucket"]["name"], detail["object"]["key"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise Refused("not an S3 Object Created event (no detail.bucket.name/object.key)") from None
    if not isinstance(bucket, str) or not isinstance(key, str):
        raise Refused("detail.bucket.name and detail.object.key must be strings")
    if bucket != config.input_bucket or not key.startswith(config.input_prefix):
        raise Refused(
            f"s3://{bucket}/{key} is not under s3://{config.input_bucket}/{config.input_prefix}"
        )
    if key.endswith("/"):
        raise Refused(f"s3://{bucket}/{key} is a folder marker, not a file to score")
    version = _existing_version(s3, bucket, key)
    others = s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=2).get("Contents", [])
    extending = [o["Key"] for o in others if o["Key"] != key]
    if extending:
        raise Refused(
            f"s3://{bucket}/{extending[0]} starts with the uploaded key, and a run reads every "
            f"object under s3://{bucket}/{key}: rename one of them"
        )
    uri = f"s3://{bucket}/{key}"
    if len(uri) > PARAMETER_VALUE_LIMIT:
        raise Refused(
            f"the object's URI is {len(uri)} characters; "
            f"a pipeline parameter holds {PARAMETER_VALUE_LIMIT}"
        )
    return uri, version


def _existing_version(s3: S3Client, bucket: str, key: str) -> str:
    """The upload's version of ``key``, spelled as S3's EventBridge event spells it (the key
    itself, never URL-decoded): its VersionId, or its ETag where the bucket keeps no
    versions. ``Refused`` when it does not exist, saying so if its URL-decoded form does
    (which would mean S3 encoded the key after all: unproven until a real account runs)."""
    head = _head(s3, bucket, key)
    if head is None:
        decoded = urllib.parse.unquote_plus(key)
        hint = (
            f"; s3://{bucket}/{decoded} (the key URL-decoded) exists, but EventBridge events "
            "carry keys unencoded, so this event is not that object's"
            if decoded != key and _head(s3, bucket, decoded) is not None
            else ""
        )
        raise Refused(
            f"s3://{bucket}/{key} does not exist or is not readable (deleted before its run?){hint}"
        )
    version_id = head.get("VersionId")
    if version_id and version_id != "null":
        return version_id
    return "etag:" + str(head.get("ETag", "")).strip('"')


def _head(s3: S3Client, bucket: str, key: str) -> Mapping[str, Any] | None:
    """HeadObject's answer, or None when the object is missing."""
    try:
        return s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        # without s3:ListBucket on the key itself, S3 answers a missing object with 403
        if error.response.get("Error", {}).get("Code") in MISSING_CODES:
            return None
        raise


def running_executions(
    sagemaker: SageMakerClient, pipeline_name: str, now: datetime | None = None
) -> int:
    """How many executions of the pipeline started in the lookback window are Executing."""
    since = (now or datetime.now(UTC)) - RUNNING_LOOKBACK
    pages = sagemaker.get_paginator("list_pipeline_executions").paginate(
        PipelineName=pipeline_name,
        CreatedAfter=since,
        SortBy="CreationTime",
        SortOrder="Descending",
    )
    return sum(
        1
        for page in pages
        for summary in page.get("PipelineExecutionSummaries", [])
        if summary.get("PipelineExecutionStatus") == "Executing"
    )


def start_run(sagemaker: SageMakerClient, config: Config, uri: str, token: str) -> str:
    """Start one execution on ``uri``, or raise ``RunLimitReached`` to retry later."""
    running = running_executions(sagemaker, config.pipeline_name)
    if running >= config.max_running:
        raise RunLimitReached(
            f"{running} runs of {config.pipeline_name} are executing (limit {config.max_running}); "
            f"{uri} waits in the queue"
        )
    parameters = {**config.parameters, "InputDataUrl": uri}
    response = sagemaker.start_pipeline_execution(
        PipelineName=config.pipeline_name,
        PipelineParameters=[{"Name": k, "Value": v} for k, v in sorted(parameters.items())],
        PipelineExecutionDescription=f"Run on upload of {uri}"[:3072],
        ClientRequestToken=token,
    )
    arn = response["PipelineExecutionArn"]
    logger.info("started %s on %s", arn, uri)
    return arn


def refuse(sqs: SQSClient, config: Config, record: Mapping[str, Any], reason: str) -> None:
    """Move the message to the refused-uploads queue, the reason as an attribute."""
    logger.warning("refused upload: %s", reason)
    body = record.get("body")
    sqs.send_message(
        QueueUrl=config.refused_queue_url,
        # kept whole for a redrive; a body that is no string (a hand-sent event) as JSON
        MessageBody=body if isinstance(body, str) and body else json.dumps(body or {}, default=str),
        MessageGroupId=REFUSED_GROUP,
        MessageDeduplicationId=record["messageId"],
        MessageAttributes={"reason": {"DataType": "String", "StringValue": reason[:1024]}},
    )
