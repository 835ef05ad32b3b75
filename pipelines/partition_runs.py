"""Score days of a stage's input, each exactly once: the backfill command.

    python -m pipelines.run_pipeline --stage preprod --date 2026-11-01 [--until 2026-11-03] \\
        [--force] [--wait] [--local] [--tfvars build/preprod.tfvars.json]

For each day, from its partition marker (``pipelines/partitions.py``): a day already scored
is skipped (``--force`` scores it again), a day whose run is still executing is skipped even
with ``--force``, a day without data is recorded as empty (zero rows, no run), and any other
day gets a run of the deployed pipeline with the schedule's parameters on its partition:
``InputDataUrl`` its input partition, ``OutputDataUrl`` its output partition.

On SageMaker the runs are started (at most 7 days per command, so that many runs do not
start at once against the instance quotas; ``--wait``: one at a time, each awaited and its
marker completed before the next); the next look at a day completes the marker of a run
that has ended since. Starters that read the same marker send the same request token, so
they start one run. ``--local`` runs each day with the local executor against the endpoint
the boto3 chain points at (an emulator), one after the other. A day that cannot be handled
is reported and the others are still handled.

Exit codes: 0 every day skipped, empty, started, or (awaited) succeeded; 3 a run failed;
2 bad arguments or stage inputs, or a day whose marker is not ours; 1 an AWS error.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import botocore.exceptions

from pipelines import aws_sessions, executions, partitions, smoke_run
from pipelines.exit_codes import AWS_ERROR, EXECUTION_FAILED, USAGE_ERROR, CommandFailed

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient


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
    local: bool = False,
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
    ``error`` result and the next day is still handled."""
    s3 = session.client("s3")
    layout = layout_of(tfvars)
    sagemaker = None if local else session.client("sagemaker")
    results = []
    for day in days:
        try:
            result = _run_day(
                tfvars, session, s3, sagemaker, layout, day, force, wait, poll_seconds,
                work_dir, parameters,
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
    sagemaker: SageMakerClient | None,
    layout: partitions.Layout,
    day: date,
    force: bool,
    wait: bool,
    poll_seconds: float,
    work_dir: Path | None,
    parameters: dict[str, str] | None,
) -> DayResult:
    kms = tfvars.get("kms_key_arn")
    status = _local_status if sagemaker is None else executions.status_reader(sagemaker)
    decision = partitions.decide(s3, layout, day, force, status, kms)
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
        else smoke_run.schedule_parameters(tfvars, layout.input_uri(day))
    ) | {"OutputDataUrl": layout.output_uri(day)}
    if sagemaker is None or wait:
        print(f"{day}: {decision.reason}", flush=True)
    if sagemaker is None:
        arn, final, reason = _run_locally(session, s3, tfvars, run_parameters, day, work_dir)
    else:
        token = partitions.start_token(
            tfvars["pipeline_name"], layout.partition(day), decision.state
        )
        arn = _start(sagemaker, tfvars, run_parameters, layout.partition(day), token)
        partitions.write_marker(s3, marker_uri, partitions.started_marker(layout, day, arn), kms)
        if not wait:
            return DayResult(day, "started", decision.reason, arn)
        final, reason = _wait(sagemaker, arn, poll_seconds)
    marker = partitions.outcome_marker(s3, layout, day, arn, final, reason, None)
    partitions.write_marker(s3, marker_uri, marker, kms)
    detail = (
        f"{marker['rows_read']} rows read, {marker['rows_rejected']} rejected, "
        f"{marker['rows_scored']} scored"
        if final == "Succeeded"
        else reason or "no failure reason given"
    )
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


def _run_locally(
    session: boto3.Session,
    s3: Any,
    tfvars: dict[str, Any],
    parameters: dict[str, str],
    day: date,
    work_dir: Path | None,
) -> tuple[str, str, str | None]:
    return smoke_run.run_locally(
        session, s3, tfvars, parameters, work_dir / day.isoformat() if work_dir else None
    )


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-01") from None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        self.exit(USAGE_ERROR, f"run_pipeline: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m pipelines.run_pipeline --stage",
        description="Score days of a stage's input, each exactly once (backfill).",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--stage", help="the stage whose build/<stage>.tfvars.json to use")
    where.add_argument("--tfvars", type=Path, help="build.py's output for the stage")
    parser.add_argument("--date", type=_day, required=True, help="the (first) day, YYYY-MM-DD")
    parser.add_argument("--until", type=_day, help="the last day (inclusive); default --date")
    parser.add_argument("--force", action="store_true", help="score days already scored again")
    parser.add_argument("--wait", action="store_true", help="one run at a time, each awaited")
    parser.add_argument("--local", action="store_true", help="run with the local executor")
    parser.add_argument("--work-dir", type=Path, help="local mode: where jobs run")
    parser.add_argument("--poll-seconds", type=float, default=30.0, help=argparse.SUPPRESS)
    return parser


MAX_DAYS = 366
# without --wait each day to score starts a run at once
MAX_DAYS_AT_ONCE = 7


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    path = args.tfvars or Path("build") / f"{args.stage}.tfvars.json"
    try:
        days = list(partitions.days(args.date, args.until))
        if len(days) > MAX_DAYS:
            raise RunError(f"{len(days)} days asked, at most {MAX_DAYS} per command")
        if len(days) > MAX_DAYS_AT_ONCE and not (args.wait or args.local):
            raise RunError(
                f"{len(days)} days could start {len(days)} runs at once, against the account's "
                f"instance quotas: add --wait (one run at a time) or ask for at most "
                f"{MAX_DAYS_AT_ONCE} days"
            )
        try:
            tfvars = smoke_run.load_tfvars(path, smoke_input=False)
        except smoke_run.SmokeError as error:
            raise RunError(str(error), error.exit_code) from None
        results = run_days(
            tfvars,
            aws_sessions.session(),
            days,
            force=args.force,
            wait=args.wait,
            local=args.local,
            poll_seconds=args.poll_seconds,
            work_dir=args.work_dir,
        )
    except RunError as error:
        print(f"run_pipeline: {error}", file=sys.stderr)
        return error.exit_code
    except ValueError as error:  # --until before --date, a marker that is not ours
        print(f"run_pipeline: {error}", file=sys.stderr)
        return USAGE_ERROR
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as error:
        print(f"run_pipeline: AWS error: {error}", file=sys.stderr)
        return AWS_ERROR
    errors = [r for r in results if r.action == "error"]
    if errors:
        print(
            f"run_pipeline: could not handle {', '.join(str(r.day) for r in errors)} (above); "
            "the other days were handled",
            file=sys.stderr,
        )
        return USAGE_ERROR if all(r.error_kind == "usage" for r in errors) else AWS_ERROR
    failed = [r for r in results if r.failed]
    if failed:
        days_failed = ", ".join(str(r.day) for r in failed)
        print(f"run_pipeline: the run failed for {days_failed}", file=sys.stderr)
        return EXECUTION_FAILED
    return 0
