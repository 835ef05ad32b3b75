"""Run the deployed pipeline once on the stage's smoke input and fail unless it scored rows.

    python -m pipelines.smoke_run --tfvars build/preprod.tfvars.json \\
        [--summary "$GITHUB_STEP_SUMMARY"] [--timeout-minutes 60] [--local]

The deployment runs this after the pre-prod apply, so the reviewer who approves prod sees a
run of exactly what was deployed: the same pipeline, model and parameters as the schedule,
on the small input the stage file names (``smoke_input``, a file in this repository). The
input is uploaded under ``<project>/batch-inference/smoke/<sha256>/`` (content-addressed,
so a re-run reuses it), the execution is started and polled until it ends or the timeout
passes (then it is stopped), and the rows in / rejected / scored are read back from what
the run wrote: the Preprocess summaries and the prediction files. Every client has the
project's retry policy (``common.aws_sessions``); a poll that still fails is polled
through until the deadline, never a reason to stop the run.

``--local`` runs the deployed definition with the local executor instead of SageMaker (the
emulator's SageMaker does not run jobs): ``make demo`` and the tests use it.

Exit codes: 0 the run succeeded with scored rows; 2 bad arguments or stage inputs; 3 the
run failed, scored nothing, or timed out; 1 an AWS error (or the run's status could not
be read: it was left running, and the line says how to follow it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common import aws_sessions
from common.exit_codes import (
    AWS_ERROR,
    EXECUTION_FAILED,
    REPORTED,
    USAGE_ERROR,
    CommandFailed,
    report_failure,
)
from common.files import check_writable_option
from pipelines.smoke import SmokeError, load_tfvars, smoke_run
from stage_runtime import executions


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.smoke_run", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--tfvars", type=Path, required=True, help="build.py's output")
    parser.add_argument("--summary", type=Path, help="append a Markdown report (job summary)")
    parser.add_argument("--timeout-minutes", type=float, default=60.0)
    parser.add_argument("--poll-seconds", type=float, default=30.0)
    parser.add_argument("--local", action="store_true", help="run with the local executor")
    parser.add_argument("--work-dir", type=Path, help="local mode: where jobs run")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        aws_sessions.check_environment()  # AWS_MAX_ATTEMPTS, AWS_ENDPOINT_URL: first
        if args.summary:
            check_writable_option("--summary", args.summary)
        if args.timeout_minutes <= 0 or args.poll_seconds <= 0:
            raise SmokeError("--timeout-minutes and --poll-seconds must be positive", USAGE_ERROR)
        tfvars = load_tfvars(args.tfvars)
        result = smoke_run(
            tfvars,
            aws_sessions.session(),
            local=args.local,
            timeout_seconds=args.timeout_minutes * 60,
            poll_seconds=args.poll_seconds,
            work_dir=args.work_dir,
        )
    except aws_sessions.AwsSettingError as error:
        return report_failure("smoke_run", args.tfvars, CommandFailed(str(error)))
    except REPORTED as error:
        return report_failure("smoke_run", args.tfvars, error)
    stage = tfvars.get("environment", "stage")
    report = result.markdown(stage)
    print(report)
    if args.summary:
        with args.summary.open("a", encoding="utf-8") as summary:
            summary.write(report + "\n")
    if result.status == executions.UNKNOWN:
        print(f"smoke_run: {stage} smoke run: {result.failure_reason}", file=sys.stderr)
        return AWS_ERROR
    if not result.passed:
        reason = result.failure_reason or f"the run ended {result.status}"
        print(f"smoke_run: {stage} smoke run did not pass: {reason}", file=sys.stderr)
        return EXECUTION_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
