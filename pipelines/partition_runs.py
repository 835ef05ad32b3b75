"""Score days of a stage's input, each exactly once: the backfill command.

    python -m pipelines.run_pipeline --stage preprod --date 2026-11-01 [--until 2026-11-03] \\
        [--force] [--wait] [--local] [--yes] [--tfvars build/preprod.tfvars.json]

Before any run it prints the days' projected cost (``pipelines/backfill_cost.py``) and
refuses (exit 2) when that is above the stage's ``max_backfill_cost_usd``, unless ``--yes``.

For each day, from its partition marker (``stage_runtime/partitions.py``): a day already scored
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
import sys
from datetime import date
from pathlib import Path
from typing import Any

import botocore.exceptions

from common import aws_sessions
from common.exit_codes import AWS_ERROR, EXECUTION_FAILED, USAGE_ERROR
from pipelines import backfill_cost, smoke
from stage_runtime import partitions, runs
from stage_runtime.runs import DayResult, RunError


def run_days(
    tfvars: dict[str, Any], session: Any, days: list[date], *, local: bool = False, **options: Any
) -> list[DayResult]:
    """``runs.run_days``, with local mode's executor when ``local`` (the CLI's and the
    demo's way to run days against the emulator)."""
    return runs.run_days(
        tfvars, session, days, run_locally=smoke.run_locally_recorded if local else None, **options
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
    parser.add_argument(
        "--yes", action="store_true", help="run even above the stage's max_backfill_cost_usd"
    )
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
            tfvars = smoke.load_tfvars(path, smoke_input=False)
        except smoke.SmokeError as error:
            raise RunError(str(error), error.exit_code) from None
        session = aws_sessions.session()
        # before any run: what the days would cost, refused above the stage's limit
        projection = backfill_cost.project(session.client("s3"), tfvars, days, args.force)
        print(projection.line(), flush=True)
        backfill_cost.check_limit(projection, tfvars, args.yes)
        results = run_days(
            tfvars,
            session,
            days,
            force=args.force,
            wait=args.wait,
            local=args.local,
            poll_seconds=args.poll_seconds,
            work_dir=args.work_dir,
        )
    except (RunError, backfill_cost.CostRefused) as error:
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
