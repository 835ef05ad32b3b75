"""Score days of a stage's input, each exactly once: what the schedule function and the
backfill command (``pipelines/partition_runs.py``) both do for a day.

For each day, from its partition marker (``stage_runtime/partitions.py``): a day already scored
is skipped (``force`` scores it again), a day whose run is still executing is skipped even
with ``force``, a day without data is recorded as empty (zero rows, no run), and any other
day gets a run of the deployed pipeline with the schedule's parameters on its partition:
``InputDataUrl`` its input partition, ``OutputDataUrl`` its output partition. Starters that
read the same marker send the same request token, so they start one run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import botocore.exceptions

from common.exit_codes import CommandFailed
from stage_runtime import executions, partitions, run_cost

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient

# (session, s3 client, tfvars, parameters, work dir) -> (execution ARN, status, reason,
# local mode's execution record: its steps' job descriptions give the run's cost)
LocalRunner = Callable[
    [boto3.Session, Any, dict[str, Any], dict[str, str], Path | None],
    tuple[str, str, str | None, dict[str, Any]],
]


def schedule_parameters(tfvars: dict[str, Any], input_uri: str) -> dict[str, str]:
    """The schedule's pipeline parameters (batch-config-template.tf), on ``input_uri``.

    The gate's settings are the stage file's; one it leaves out keeps the definition's
    default, which is the template's default too."""
    gate = {
        parameter: str(tfvars[setting])
        for parameter, setting in (
            ("MaxRejectedFraction", "max_rejected_fraction"),
            ("MaxDriftScore", "max_drift_score"),
            ("QualityGateMode", "quality_gate_mode"),
        )
        if tfvars.get(setting) is not None
    }
    return gate | {
        "ModelName": tfvars["model_name"],
        "ModelVersion": str(tfvars["model_version"]),
        "InputDataUrl": input_uri,
        "OutputDataUrl": tfvars["output_data_url"],
        "FeatureSchemaUrl": tfvars["feature_schema_url"],
        "ProcessingInstanceType": tfvars["processing_instance_type"],
        "ProcessingInstanceCount": str(tfvars["processing_instance_count"]),
        "TransformInstanceType": tfvars["transform_instance_type"],
        "TransformInstanceCount": str(tfvars["transform_instance_count"]),
    }


class RunError(CommandFailed):
    """The days cannot be run as asked; ``exit_code`` says why (usage by default)."""


@dataclass
class DayResult:
    day: date
    action: str  # "skipped", "empty", "started", "error", or the run's final status
    detail: str
    execution_arn: str | None = None
    newly_empty: bool = False  # marked empty now, not already at the last look
    error_kind: str | None = None  # "usage" (its marker or data), "aws"

    @property
    def failed(self) -> bool:
        return self.action in ("Failed", "Stopped", "CompletedWithFailures")


def layout_of(tfvars: dict[str, Any]) -> partitions.Layout:
    try:
        return partitions.Layout(
            tfvars["input_data_url"],
            tfvars["output_data_url"],
            tfvars.get("partition_format") or partitions.DEFAULT_FORMAT,
        )
    except (KeyError, ValueError) as error:
        raise RunError(f"the stage's tfvars: {error}") from None


def _local_status(arn: str) -> tuple[str, str | None]:
    # local runs end before their marker is left; an Executing one is a run that was cut off
    return "Failed", f"the local run {arn} ended without recording an outcome"


def run_days(
    tfvars: dict[str, Any],
    session: boto3.Session,
    days: list[date],
    *,
    force: bool = False,
    wait: bool = False,
    run_locally: LocalRunner | None = None,
    poll_seconds: float = 30.0,
    work_dir: Path | None = None,
    parameters: dict[str, str] | None = None,
    metric_lines: bool = False,
) -> list[DayResult]:
    """Decide and act for each day in order; print one line per day as it goes.

    ``parameters``: the run's pipeline parameters (default: the schedule's, from ``tfvars``),
    each day's partitions set over them; ``metric_lines``: also print one JSON line per day
    (``"event": "partition-run"``), which the stage's log metric filters read. A day that
    cannot be handled (an AWS error, a marker that is not ours, a broken summary) is an
    ``error`` result and the next day is still handled. ``run_locally``: run each day with
    it (local mode's executor, which the CLI passes) instead of starting it on SageMaker."""
    s3 = session.client("s3")
    layout = layout_of(tfvars)
    sagemaker = session.client("sagemaker")
    results = []
    for day in days:
        try:
            result = _run_day(
                tfvars, session, s3, sagemaker, layout, day, force, wait, poll_seconds,
                work_dir, parameters, run_locally,
            )  # fmt: skip
        except (ValueError, KeyError, botocore.exceptions.ClientError,
                botocore.exceptions.BotoCoreError,
                executions.StatusUnreadable) as error:  # fmt: skip
            kind = "usage" if isinstance(error, ValueError) else "aws"
            result = DayResult(day, "error", f"{type(error).__name__}: {error}", error_kind=kind)
        results.append(report(result, tfvars, metric_lines))
    return results


def _run_day(
    tfvars: dict[str, Any],
    session: boto3.Session,
    s3: Any,
    sagemaker: SageMakerClient,
    layout: partitions.Layout,
    day: date,
    force: bool,
    wait: bool,
    poll_seconds: float,
    work_dir: Path | None,
    parameters: dict[str, str] | None,
    run_locally: LocalRunner | None,
) -> DayResult:
    kms = tfvars.get("kms_key_arn")
    status = _local_status if run_locally else executions.status_reader(sagemaker)
    table = run_cost.table_of(tfvars.get("instance_prices"))
    # a run that ended since the last look: its marker gets its cost too (not local runs':
    # theirs end before the marker is left, or were cut off)
    cost: partitions.CostOf | None = (
        None if run_locally else run_cost.sagemaker_cost_of(sagemaker, table)
    )
    decision = partitions.decide(s3, layout, day, force, status, kms, cost=cost)
    marker_uri = layout.marker_uri(day)
    if decision.action == "skip":
        return DayResult(day, "skipped", decision.reason)
    if decision.action == "empty":
        partitions.write_marker(s3, marker_uri, partitions.empty_marker(layout, day), kms)
        first = decision.previous != "Empty"  # counted once, however often it is looked at
        return DayResult(day, "empty", f"{decision.reason}: zero rows, no run", newly_empty=first)
    run_parameters = (
        {**parameters, "InputDataUrl": layout.input_uri(day)}
        if parameters is not None
        else schedule_parameters(tfvars, layout.input_uri(day))
    ) | {"OutputDataUrl": layout.output_uri(day), "PredictionDay": day.isoformat()}
    if run_locally is not None or wait:
        print(f"{day}: {decision.reason}", flush=True)
    if run_locally is not None:
        folder = work_dir / day.isoformat() if work_dir else None
        arn, final, reason, record = run_locally(session, s3, tfvars, run_parameters, folder)
        # the record's own cost (the executor priced it with the stage's table), so the
        # marker and the record say the same
        usages = run_cost.local_usages(record)
        cost = lambda _arn, rows: record.get("Cost") or run_cost.cost(usages, table, rows)  # noqa: E731
    else:
        token = partitions.start_token(
            tfvars["pipeline_name"], layout.partition(day), decision.state
        )
        arn = _start(sagemaker, tfvars, run_parameters, layout.partition(day), token)
        partitions.write_marker(s3, marker_uri, partitions.started_marker(layout, day, arn), kms)
        if not wait:
            return DayResult(day, "started", decision.reason, arn)
        final, reason = _wait(sagemaker, arn, poll_seconds)
    marker = partitions.outcome_marker(s3, layout, day, arn, final, reason, None, cost)
    partitions.write_marker(s3, marker_uri, marker, kms)
    detail = (
        f"{marker['rows_read']} rows read, {marker['rows_rejected']} rejected, "
        f"{marker['rows_scored']} scored"
        if final == "Succeeded"
        else reason or "no failure reason given"
    ) + f"; {run_cost.summary(marker.get('cost'))}"
    return DayResult(day, final, detail, arn)


def report(result: DayResult, tfvars: dict[str, Any], metric_line: bool) -> DayResult:
    """Print the day's line (and, for the stage's metric filters, its JSON line)."""
    arn = f" ({result.execution_arn})" if result.execution_arn else ""
    print(f"{result.day}: {result.action}{arn}: {result.detail}", flush=True)
    if metric_line:
        line = {
            "event": "partition-run",
            "pipeline": tfvars["pipeline_name"],
            "date": result.day.isoformat(),
            "action": result.action,
            "empty": 1 if result.newly_empty else 0,
        }
        print(json.dumps(line, separators=(",", ":")), flush=True)
    return result


def _start(
    sagemaker: SageMakerClient,
    tfvars: dict[str, Any],
    parameters: dict[str, str],
    name: str,
    token: str,
) -> str:
    # PipelineExecutionDisplayName: [a-zA-Z0-9](-*[a-zA-Z0-9]){0,81}
    display = "".join(c if c.isalnum() else "-" for c in name).strip("-")[:70].strip("-")
    return sagemaker.start_pipeline_execution(
        PipelineName=tfvars["pipeline_name"],
        PipelineExecutionDisplayName=f"day-{display}",
        PipelineExecutionDescription=f"Run of partition {name}",
        PipelineParameters=[{"Name": k, "Value": v} for k, v in parameters.items()],
        ClientRequestToken=token,
    )["PipelineExecutionArn"]


def _wait(sagemaker: SageMakerClient, arn: str, poll_seconds: float) -> tuple[str, str | None]:
    """The run's end; ``StatusUnreadable`` when its status could not be read (the run goes
    on, and its marker stays Executing until the run-outcome function or a later trigger
    completes it)."""
    followed = executions.follow(sagemaker, arn, poll_seconds, program="run_pipeline")
    if followed.error is not None or followed.described is None:
        raise executions.StatusUnreadable(
            f"could not read the status of {arn} ({followed.error}); {executions.follow_hint(arn)}"
        )
    return followed.status, followed.described.get("FailureReason")
