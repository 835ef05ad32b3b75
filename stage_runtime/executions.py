"""A pipeline execution's statuses, and following one until it ends (a failed poll is not
its end).

Standard library and botocore only (and a SageMaker client passed in): the stage functions'
zips carry it beside ``partitions.py``, so the CLIs, the smoke run and the functions share
one loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import botocore.exceptions
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


class StatusUnreadable(Exception):
    """A run's status could not be read (its watch gave up); the run was not stopped."""


# a poll that failed for one of these may succeed at the next one: keep polling
_TRANSIENT = (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError)
_THROTTLING = ("Throttl", "SlowDown", "TooManyRequests", "RequestLimitExceeded")
UNKNOWN = "StatusUnknown"  # the run's status could not be read: it was left running
MAX_FAILED_POLLS = 10  # without a deadline, polls failing in a row before giving up


def transient(error: Exception) -> bool:
    """Whether a failed AWS call may succeed when made again: throttling, a 5xx, the
    network; not a refusal (access denied, an unknown execution, bad credentials)."""
    if isinstance(error, botocore.exceptions.ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        code = str(error.response.get("Error", {}).get("Code", ""))
        return status >= 500 or any(word in code for word in _THROTTLING)
    return isinstance(error, _TRANSIENT)


@dataclass
class Followed:
    """What watching a run saw: its last answer, and why the watch gave up if it did."""

    described: DescribePipelineExecutionResponseTypeDef | None
    error: Exception | None = None  # the poll failure the watch gave up on

    @property
    def status(self) -> str:
        return self.described["PipelineExecutionStatus"] if self.described else UNKNOWN


def follow_hint(arn: str) -> str:
    return (
        f"it was not stopped and may still be running: follow it with `aws sagemaker "
        f"describe-pipeline-execution --pipeline-execution-arn {arn}` or in SageMaker Studio"
    )


def follow(
    sagemaker: SageMakerClient,
    arn: str,
    poll_seconds: float,
    timeout_seconds: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    program: str = "smoke run",
) -> Followed:
    """Poll DescribePipelineExecution until the run ends or ``timeout_seconds`` pass.

    A failed poll (each already retried by the client's policy) is never the run's end: a
    transient one is polled through until the deadline (or, without one,
    ``MAX_FAILED_POLLS`` in a row); a refusal ends the watch at once. Either way the
    caller gets the error and the last answer, and the run goes on."""
    deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
    followed, failed = Followed(None), 0
    while True:
        try:
            described = sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as error:
            failed += 1
            followed.error = error
            if not transient(error) or (deadline is None and failed >= MAX_FAILED_POLLS):
                return followed
            print(f"{program}: could not read {arn}'s status ({error}); polling on", flush=True)
        else:
            followed, failed = Followed(described), 0
            if described["PipelineExecutionStatus"] in ENDED:
                return followed
        if deadline is not None and time.monotonic() >= deadline:
            return followed
        sleep(poll_seconds)
