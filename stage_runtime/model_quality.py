"""Measure each scored day against its delayed labels, exactly once per upload of them.

A day's labels land under ``<labels_url>/<partition>/`` (the same ``partition_format`` as the
input) days after the day was scored. ``decide`` looks at one day: its marker must say
Succeeded (the run whose rows count); its labels folder must hold a CSV; and the marker's
``model_quality`` must not already be for these labels (their fingerprint: each object's key,
size and ETag) and this run. Then ``start`` starts the stage's model-quality pipeline
(``pipelines/batch_inference/quality_pipeline.py``) with a ``ClientRequestToken`` made of
the pipeline, the day, the scored execution and the labels' fingerprint, so the schedule and
a retry of its event start one evaluation, and labels uploaded again a new one; the marker
records it as ``model_quality.status = Executing`` (a conditional write: a run of the day
started meanwhile wins). ``record`` completes it when that execution ends (the run-outcome
function, on SageMaker's status change event): the job's ``model-quality.json`` (metrics,
coverage, registered value, drop, verdict), or the failure reason.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError

from common.s3_locations import parse_s3_uri
from stage_runtime import executions, function_environment, partitions

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient

logger = logging.getLogger(__name__)

RESULT = "model-quality.json"  # evaluate.py's RESULT: a test holds the two together
QUALITY_FOLDER = "quality"  # <output>/<partition>/quality/<execution id>/model-quality.json
LABEL_SUFFIXES = (".csv", ".csv.gz")  # what evaluate.py reads
# an evaluation that ended so is started again (new token) at the next look
RETRIED = frozenset({"Failed", "Stopped"})
# what the marker keeps of the job's result (the whole of it stays in S3, named in "result")
RECORDED = ("metrics", "coverage", "headline", "registered", "quality_drop", "verdict")


@dataclass(frozen=True)
class Stage:
    """Where a stage's labels, predictions table and markers are, and its pipelines."""

    layout: partitions.Layout
    labels_url: str
    predictions_table_url: str
    quality_pipeline_name: str
    kms_key_arn: str | None = None

    def labels_uri(self, day: date) -> str:
        return f"{self.labels_url.rstrip('/')}/{self.layout.partition(day)}/"

    def predictions_uri(self, day: date) -> str:
        return f"{self.predictions_table_url.rstrip('/')}/day={day.isoformat()}/"

    def quality_output_uri(self, day: date) -> str:
        return f"{self.layout.output_uri(day)}/{QUALITY_FOLDER}"


MAX_LABEL_LOOKBACK_DAYS = 90


def stage_of(env: Mapping[str, str]) -> Stage | None:
    """The stage's model-quality settings from a function's environment (the template sets
    ``QUALITY_PIPELINE_NAME``, ``LABELS_URL``, ``PREDICTIONS_TABLE_URL``), or None when the
    function was deployed without them (a stage from before model quality)."""
    if not env.get("QUALITY_PIPELINE_NAME"):
        return None
    return Stage(
        function_environment.layout(env),
        labels_url=function_environment.required(env, "LABELS_URL"),
        predictions_table_url=function_environment.required(env, "PREDICTIONS_TABLE_URL"),
        quality_pipeline_name=env["QUALITY_PIPELINE_NAME"],
        kms_key_arn=env.get("KMS_KEY_ARN") or None,
    )


@dataclass(frozen=True)
class Decision:
    day: date
    action: Literal["start", "skip"]
    reason: str
    parameters: dict[str, str] = field(default_factory=dict)
    token: str = ""
    fingerprint: str = ""
    etag: str = ""  # the marker's, for the conditional write


def labels_fingerprint(s3: S3Client, uri: str) -> str | None:
    """A fingerprint of the labels files under ``uri`` (key, size, ETag), or None when it
    holds no labels file (an empty file counts: evaluate.py then says what is wrong)."""
    bucket, prefix = parse_s3_uri(uri)
    lines = [
        f"{item['Key']}\0{item.get('Size', 0)}\0{item.get('ETag', '')}"
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for item in page.get("Contents", [])
        if item["Key"].lower().endswith(LABEL_SUFFIXES)
    ]
    if not lines:
        return None
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()


def decide(s3: S3Client, stage: Stage, day: date) -> Decision:
    """Whether ``day`` needs an evaluation now, and the start's parameters and token."""
    marker, etag = partitions.read_marker_and_state(s3, stage.layout.marker_uri(day))
    if marker is None or marker.get("status") != "Succeeded":
        status = marker.get("status") if marker else "no marker"
        return Decision(day, "skip", f"{day} is not scored yet ({status})")
    fingerprint = labels_fingerprint(s3, stage.labels_uri(day))
    if fingerprint is None:
        return Decision(day, "skip", f"no labels yet under {stage.labels_uri(day)}")
    scored = str(marker["execution_arn"]).rsplit("/", 1)[-1]
    quality = marker.get("model_quality")
    if (
        isinstance(quality, dict)
        and quality.get("labels") == fingerprint
        and quality.get("scored_execution") == scored
    ):
        state = quality.get("status")
        what = "being evaluated" if state in executions.RUNNING else f"evaluated ({state})"
        if state not in RETRIED:
            return Decision(
                day, "skip", f"{day}'s labels are {what}: {quality.get('execution_arn')}"
            )
    parameters = {
        "LabelsUrl": stage.labels_uri(day),
        "PredictionsUrl": stage.predictions_uri(day),
        "ScoredExecutionId": scored,
        "PredictionDay": day.isoformat(),
        "QualityOutputUrl": stage.quality_output_uri(day),
    }
    # a failed evaluation of the same labels is retried with a new token (its ARN in it)
    earlier = quality if isinstance(quality, dict) else {}
    last = str(earlier.get("execution_arn", ""))
    again = f" again (the last evaluation {str(earlier.get('status')).lower()})" if last else ""
    token = partitions.start_token(
        stage.quality_pipeline_name, stage.layout.partition(day), f"{scored}|{fingerprint}|{last}"
    )
    return Decision(
        day, "start", f"evaluating {day} against its labels{again}", parameters, token,
        fingerprint, etag,
    )  # fmt: skip


def start(s3: S3Client, sagemaker: SageMakerClient, stage: Stage, decision: Decision) -> str:
    """Start the evaluation (one execution per token) and record it in the day's marker."""
    arn = sagemaker.start_pipeline_execution(
        PipelineName=stage.quality_pipeline_name,
        PipelineExecutionDisplayName=f"quality-{decision.day.isoformat()}",
        PipelineExecutionDescription=f"Model quality of {decision.day} against its labels",
        PipelineParameters=[{"Name": k, "Value": v} for k, v in decision.parameters.items()],
        ClientRequestToken=decision.token,
    )["PipelineExecutionArn"]
    uri = stage.layout.marker_uri(decision.day)
    marker, _ = partitions.read_marker_and_state(s3, uri)
    if marker is None:  # decide read it; the stage never deletes a marker
        raise ValueError(f"{uri} disappeared while {decision.day} was being evaluated")
    marker = {k: v for k, v in marker.items() if k != "format"}
    marker["model_quality"] = {
        "status": "Executing",
        "execution_arn": arn,
        "scored_execution": decision.parameters["ScoredExecutionId"],
        "labels": decision.fingerprint,
        "started": partitions.now(),
    }
    partitions.write_marker(s3, uri, marker, stage.kms_key_arn, if_match=decision.etag)
    return arn


def run_days(
    s3: S3Client,
    sagemaker: SageMakerClient,
    stage: Stage,
    days: list[date],
    log: Callable[[str], None] = logger.info,
) -> dict[str, dict[str, str]]:
    """Evaluate each day of ``days`` whose labels are due; one day's error does not stop the
    others (it is in the answer, ``action`` error)."""
    results: dict[str, dict[str, str]] = {}
    for day in days:
        try:
            # an evaluation whose end the run-outcome function missed is completed first
            marker = partitions.read_marker(s3, stage.layout.marker_uri(day))
            quality = marker.get("model_quality") if marker else None
            if isinstance(quality, dict) and quality.get("status") in executions.RUNNING:
                record(s3, sagemaker, stage, str(quality.get("execution_arn")))
            decision = decide(s3, stage, day)
            arn = start(s3, sagemaker, stage, decision) if decision.action == "start" else ""
            results[str(day)] = {"action": decision.action, "execution_arn": arn}
            log(f"{day}: {decision.action}: {decision.reason}")
        except (ClientError, ValueError) as error:
            results[str(day)] = {"action": "error", "execution_arn": "", "detail": str(error)}
            log(f"{day}: error: {error}")
    return results


def record(
    s3: S3Client, sagemaker: SageMakerClient, stage: Stage, arn: str, reported: str = ""
) -> dict[str, Any]:
    """Complete the ``model_quality`` of the day whose evaluation ``arn`` is, if it still
    names that execution: the job's result when it succeeded, else the failure reason."""
    pages = sagemaker.get_paginator("list_pipeline_parameters_for_execution").paginate(
        PipelineExecutionArn=arn
    )
    parameters = {p["Name"]: p["Value"] for page in pages for p in page["PipelineParameters"]}
    try:
        day = date.fromisoformat(parameters.get("PredictionDay", ""))
    except ValueError:
        return {"marker": None, "recorded": False}
    uri = stage.layout.marker_uri(day)
    marker, etag = partitions.read_marker_and_state(s3, uri)
    quality = marker.get("model_quality") if marker else None
    if not isinstance(quality, dict) or quality.get("execution_arn") != arn:
        logger.info("%s: the marker %s records another evaluation, left alone", arn, uri)
        return {"marker": uri, "recorded": False}
    if quality.get("status") not in executions.RUNNING:
        return {"marker": uri, "recorded": False}
    status, reason = executions.status_reader(sagemaker)(arn)
    if status in executions.RUNNING and reported in executions.ENDED:
        status = reported  # the event is newer than what Describe shows yet
    if status in executions.RUNNING:
        return {"marker": uri, "recorded": False}
    ended: dict[str, Any] = {**quality, "status": status, "finished": partitions.now()}
    if status == "Succeeded":
        bucket, prefix = parse_s3_uri(parameters["QualityOutputUrl"])
        key = f"{prefix.rstrip('/')}/{arn.rsplit('/', 1)[-1]}/{RESULT}"
        result = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        ended |= {k: result.get(k) for k in RECORDED}
        ended["result"] = f"s3://{bucket}/{key}"
    elif reason:
        ended["failure_reason"] = reason
    written = {k: v for k, v in marker.items() if k != "format"} | {"model_quality": ended}  # type: ignore[union-attr]
    try:
        partitions.write_marker(s3, uri, written, stage.kms_key_arn, if_match=etag)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "PreconditionFailed":
            raise
        return {"marker": uri, "recorded": False}
    return {"marker": uri, "recorded": True, "status": status}
