"""Complete the marker of a day's or an uploaded object's run the moment the run ends.

The stage's rule on SageMaker's "SageMaker Model Building Pipeline Execution Status Change"
events (this stage's pipeline, ended: Succeeded, Failed or Stopped) invokes ``handler``. The
run's parameters say which marker it belongs to (``stage_runtime/partitions.py``): a day's when
its ``InputDataUrl`` is a day partition, an object's when it is an object under the input
prefix. If that marker still says ``Executing`` with this run, it is rewritten with the
outcome: the rows read, rejected and scored (from the run's Preprocess summaries), or the
failure reason. Without this function a marker is completed at the next look at its day
(the schedule, a backfill) or object (its next upload); uploads are not looked at again,
so their markers would stay ``Executing``.

SageMaker may send an event more than once, and a day may have been started again since:
a marker already completed, or naming another run, is left alone; so is a run started by
hand (no marker records it). The marker is written only if it is still the one read (S3's
conditional write): a starter that wrote it meanwhile (a newer run) wins. The outcome is
DescribePipelineExecution's; where that still says running, the event's status. An AWS
error fails the invocation: Lambda retries it twice, then sends the event to the stage's
alarmed dead-letter queue.

The end of a model-quality execution (the stage's second pipeline, which its rule matches
too) is written into its day's marker as ``model_quality`` (``stage_runtime/model_quality.py``).

Standard library, boto3 (the Lambda runtime's) and the ``common`` and ``stage_runtime``
packages the deployment zip carries (``lambdas/package.py``: it ships in the schedule
function's zip).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from common import aws_sessions
from stage_runtime import executions, function_environment, model_quality, partitions, run_cost

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)

EVENT_SOURCE = "aws.sagemaker"
EVENT_TYPE = "SageMaker Model Building Pipeline Execution Status Change"


class NotARunThatEnded(ValueError):
    """The event is not a pipeline execution's status change: nothing is recorded."""


@dataclass(frozen=True)
class Config:
    """The function's configuration, from the environment the stage template sets."""

    layout: partitions.Layout
    kms_key_arn: str | None
    # the shipped price table with the stage's INSTANCE_PRICES over it: each run's cost
    prices: dict[str, Any] = field(default_factory=run_cost.stage_table)
    pipeline_name: str = ""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Config:
        env = os.environ if environ is None else environ
        try:
            table = run_cost.stage_table(env)
        except ValueError as error:
            raise function_environment.ConfigError(str(error)) from None
        return cls(
            function_environment.layout(env),
            env.get("KMS_KEY_ARN") or None,
            table,
            env.get("PIPELINE_NAME", ""),
        )


def execution_of(event: Any) -> tuple[str, str]:
    """The ARN of the execution the event is about and the status it reports, or
    ``NotARunThatEnded``."""
    if not isinstance(event, Mapping):
        raise NotARunThatEnded(
            f"not a pipeline execution status change: a {type(event).__name__}, no object"
        )
    if event.get("source") != EVENT_SOURCE or event.get("detail-type") != EVENT_TYPE:
        raise NotARunThatEnded(
            f"not a pipeline execution status change (source {event.get('source')!r}, "
            f"detail-type {event.get('detail-type')!r})"
        )
    detail = event.get("detail")
    arn = detail.get("pipelineExecutionArn") if isinstance(detail, Mapping) else None
    if not isinstance(arn, str) or ":pipeline/" not in arn or "/execution/" not in arn:
        raise NotARunThatEnded(f"detail.pipelineExecutionArn is not an execution ARN: {arn!r}")
    status = detail.get("currentPipelineExecutionStatus")  # type: ignore[union-attr]
    return arn, status if isinstance(status, str) else ""


def handler(event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
    """EventBridge entry point: one execution's status change."""
    config = Config.from_environment()
    arn, reported = execution_of(event)
    session = aws_sessions.session()  # the project's one retry policy
    s3 = session.client("s3")
    sagemaker = session.client("sagemaker")
    quality = model_quality.stage_of(os.environ)
    # compared in lower case: SageMaker may write a pipeline's name in lower case in its ARNs
    if quality is not None and f":pipeline/{quality.quality_pipeline_name}/".lower() in arn.lower():
        # an evaluation of a day's delayed labels: its result goes into the day's marker
        return model_quality.record(s3, sagemaker, quality, arn, reported)
    return record_outcome(s3, sagemaker, config, arn, reported)


def record_outcome(
    s3: S3Client, sagemaker: SageMakerClient, config: Config, arn: str, reported: str = ""
) -> dict[str, Any]:
    """Complete the marker that names ``arn`` as its running execution, if there is one."""
    pages = sagemaker.get_paginator("list_pipeline_parameters_for_execution").paginate(
        PipelineExecutionArn=arn
    )
    parameters = {p["Name"]: p["Value"] for page in pages for p in page["PipelineParameters"]}
    uri = partitions.marker_of_run(config.layout, parameters)
    if uri is None:
        logger.info("%s: no marker records it (input %s)", arn, parameters.get("InputDataUrl"))
        return {"marker": None, "recorded": False}
    marker, etag = partitions.read_marker_and_state(s3, uri)
    if marker is None or marker.get("execution_arn") != arn:
        named = marker.get("execution_arn") if marker else None
        logger.info("%s: the marker %s names another run (%s), left alone", arn, uri, named)
        return {"marker": uri, "recorded": False}

    described = executions.status_reader(sagemaker)

    def status(execution: str) -> tuple[str, str | None]:
        current, reason = described(execution)
        if current in executions.RUNNING and reported in executions.ENDED:
            current = reported  # the event is newer than what Describe shows yet
        return current, reason

    cost = run_cost.sagemaker_cost_of(sagemaker, config.prices)
    try:
        marker, recorded = partitions.complete(
            s3, uri, marker, status, config.kms_key_arn, if_match=etag, cost=cost
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "PreconditionFailed":
            raise
        logger.info("%s: the marker %s changed since it was read, left alone", arn, uri)
        return {"marker": uri, "recorded": False}
    logger.info("%s: %s is %s", arn, uri, marker["status"])
    answer = {"marker": uri, "recorded": recorded, "status": marker["status"]}
    if recorded and "cost" in marker:
        # the stage's RunCost / CostPer1000Rows metric filters read this line
        # as the filter matches it: the pipeline's name (its ARN holds it in lower case)
        pipeline = config.pipeline_name or arn.split(":pipeline/", 1)[1].split("/", 1)[0]
        print(run_cost.metric_line(pipeline, marker.get("date"), marker["cost"]), flush=True)
        logger.info("%s: %s", arn, run_cost.summary(marker["cost"]))
    return answer
