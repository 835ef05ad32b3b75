"""A pipeline execution's statuses, and waiting until one has ended.

Standard library and botocore only (and a SageMaker client passed in): the stage functions'
zips carry it beside ``partitions.py``, so the CLIs, the smoke run and the functions share
one loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker.type_defs import DescribePipelineExecutionResponseTypeDef

# DescribePipelineExecution's PipelineExecutionStatus values (botocore's model, 1.44:
# CompletedWithFailures is one, for a pipeline whose steps may fail without failing it;
# tests/test_shared_helpers.py compares them)
ENDED = frozenset({"Succeeded", "Failed", "Stopped", "CompletedWithFailures"})
RUNNING = frozenset({"Executing", "Stopping"})


# what DescribePipelineExecution answers for an execution it does not know: ResourceNotFound
# (its documented error), ValidationException (an ARN it cannot read; moto's answer too)
UNKNOWN_EXECUTION_CODES = frozenset({"ResourceNotFound", "ValidationException"})


def status_reader(sagemaker: SageMakerClient) -> Callable[[str], tuple[str, str | None]]:
    """``arn`` -> (status, failure reason) from DescribePipelineExecution: what a day's or an
    upload's marker is completed from (``partitions.complete``).

    An execution SageMaker does not know (deleted with its pipeline, or never one) is
    ``Failed`` with why: it will never end, and its marker would hold the day forever."""

    def status(arn: str) -> tuple[str, str | None]:
        try:
            described = sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)
        except ClientError as error:
            info = error.response.get("Error", {})
            if info.get("Code") not in UNKNOWN_EXECUTION_CODES:
                raise
            return "Failed", (
                f"SageMaker does not know the execution {arn} ({info.get('Code')}: "
                f"{info.get('Message')}); recorded as failed so that it can be started again"
            )
        return described["PipelineExecutionStatus"], described.get("FailureReason")

    return status


def wait_until_ended(
    sagemaker: SageMakerClient,
    arn: str,
    poll_seconds: float,
    *,
    timeout_seconds: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DescribePipelineExecutionResponseTypeDef:
    """DescribePipelineExecution's answer once the execution has ended; with
    ``timeout_seconds``, the last answer when that has passed (its status still running)."""
    deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
    while True:
        described = sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)
        if described["PipelineExecutionStatus"] in ENDED:
            return described
        if deadline is not None and time.monotonic() >= deadline:
            return described
        sleep(poll_seconds)
