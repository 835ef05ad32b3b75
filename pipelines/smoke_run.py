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
project's retry policy (``pipelines.aws_sessions``); a poll that still fails is polled
through until the deadline, never a reason to stop the run.

``--local`` runs the deployed definition with the local executor instead of SageMaker (the
emulator's SageMaker does not run jobs): ``make demo`` and the tests use it.

Exit codes: 0 the run succeeded with scored rows; 2 bad arguments or stage inputs; 3 the
run failed, scored nothing, or timed out; 1 an AWS error (or the run's status could not
be read: it was left running, and the line says how to follow it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import botocore.exceptions

from pipelines import executions, partitions
from pipelines.exit_codes import (
    AWS_ERROR,
    EXECUTION_FAILED,
    REPORTED,
    USAGE_ERROR,
    CommandFailed,
    report_failure,
)
from pipelines.s3_locations import content_key, parse_s3_uri, sse_arguments

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient

REPO = Path(__file__).resolve().parents[1]


class SmokeError(CommandFailed):
    """The smoke run cannot start or did not pass; ``exit_code`` says which."""


@dataclass
class SmokeResult:
    execution_arn: str
    status: str
    input_uri: str
    rows_in: int = 0
    rows_rejected: int = 0
    rows_scored: int = 0
    failure_reason: str | None = None
    seconds: float = 0.0

    def markdown(self, stage: str) -> str:
        lines = [
            f"### {stage}: smoke run {'passed' if self.passed else 'FAILED'}",
            "",
            "| | |",
            "| --- | --- |",
            f"| execution | `{self.execution_arn}` |",
            f"| status | {self.status} |",
            f"| input | `{self.input_uri}` |",
            f"| rows in / rejected / scored | {self.rows_in} / {self.rows_rejected} / "
            f"{self.rows_scored} |",
            f"| duration | {self.seconds:.0f} s |",
        ]
        if self.failure_reason:
            lines.append(f"| failure | {self.failure_reason} |")
        return "\n".join(lines) + "\n"

    @property
    def passed(self) -> bool:
        return self.status == "Succeeded" and self.rows_scored > 0


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
        "InputDataUrl": input_uri,
        "OutputDataUrl": tfvars["output_data_url"],
        "FeatureSchemaUrl": tfvars["feature_schema_url"],
        "ProcessingInstanceType": tfvars["processing_instance_type"],
        "ProcessingInstanceCount": str(tfvars["processing_instance_count"]),
        "TransformInstanceType": tfvars["transform_instance_type"],
        "TransformInstanceCount": str(tfvars["transform_instance_count"]),
    }


def load_tfvars(path: Path, smoke_input: bool = True) -> dict[str, Any]:
    """build.py's output for a stage, checked for what a run needs (and the smoke input)."""
    try:
        tfvars = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SmokeError(f"{path} does not exist: run build.py first", USAGE_ERROR) from None
    except IsADirectoryError:
        raise SmokeError(
            f"{path} is a directory: pass build.py's output file, e.g. "
            f"{path / 'preprod.tfvars.json'}",
            USAGE_ERROR,
        ) from None
    except UnicodeDecodeError as error:
        raise SmokeError(f"{path} is not UTF-8 text ({error.reason})", USAGE_ERROR) from None
    except OSError as error:
        raise SmokeError(f"{path} cannot be read: {error.strerror}", USAGE_ERROR) from None
    except json.JSONDecodeError as error:
        raise SmokeError(f"{path} is not JSON: {error.msg}", USAGE_ERROR) from None
    if not isinstance(tfvars, dict):
        raise SmokeError(f"{path} must hold a JSON object", USAGE_ERROR)
    required = (
        "pipeline_name", "artifacts_bucket", "project_name", "model_name", "output_data_url",
        "feature_schema_url", "processing_instance_type", "processing_instance_count",
        "transform_instance_type", "transform_instance_count", "pipeline_definition_s3_key",
    )  # fmt: skip
    missing = [name for name in required if tfvars.get(name) in (None, "")]
    if missing:
        raise SmokeError(
            f"{path} lacks {', '.join(missing)}: is it build.py's output?", USAGE_ERROR
        )
    if smoke_input and not tfvars.get("smoke_input"):
        raise SmokeError(
            f"the stage file behind {path} names no smoke_input (a CSV in the repository)",
            USAGE_ERROR,
        )
    return tfvars


def upload_smoke_input(s3: S3Client, tfvars: dict[str, Any], repo: Path = REPO) -> str:
    """Put the smoke input under a content-addressed key; return its folder's URI."""
    source = (repo / tfvars["smoke_input"]).resolve()
    if not source.is_file() or repo.resolve() not in source.parents:
        raise SmokeError(
            f"smoke_input {tfvars['smoke_input']!r} is not a file in the repository", USAGE_ERROR
        )
    body = source.read_bytes()
    key = content_key(f"{tfvars['project_name']}/batch-inference/smoke", source.name, body)
    s3.put_object(
        Bucket=tfvars["artifacts_bucket"],
        Key=key,
        Body=body,
        ContentType="text/csv",
        **sse_arguments(tfvars.get("kms_key_arn")),
    )
    return f"s3://{tfvars['artifacts_bucket']}/{key.rsplit('/', 1)[0]}/"


def run_on_sagemaker(
    sagemaker: SageMakerClient,
    tfvars: dict[str, Any],
    parameters: dict[str, str],
    timeout_seconds: float,
    poll_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[str, str, str | None]:
    """Start the deployed pipeline and wait for it, at most ``timeout_seconds``.

    A run still executing at the deadline is stopped (it would cost instance hours for a
    verdict nobody waits for); a run whose status cannot be read is never stopped."""
    arn = sagemaker.start_pipeline_execution(
        PipelineName=tfvars["pipeline_name"],
        PipelineExecutionDisplayName=f"smoke-v{tfvars.get('model_version', 0)}",
        PipelineExecutionDescription=f"Smoke run of {tfvars['model_name']} after its deployment",
        PipelineParameters=[{"Name": k, "Value": v} for k, v in parameters.items()],
        ClientRequestToken=str(uuid.uuid4()),
    )["PipelineExecutionArn"]
    print(f"smoke run: started {arn}", flush=True)
    followed = executions.follow(sagemaker, arn, poll_seconds, timeout_seconds, sleep)
    status, described = followed.status, followed.described
    if described is not None and status in executions.ENDED:
        return arn, status, described.get("FailureReason")
    if followed.error is not None:
        reason = (
            f"could not read the run's status ({followed.error}); {executions.follow_hint(arn)}"
        )
        return arn, executions.UNKNOWN, reason
    minutes = timeout_seconds / 60
    return arn, "TimedOut", f"still {status} after {minutes:g} min; {_stop(sagemaker, arn)}"


def _stop(sagemaker: SageMakerClient, arn: str) -> str:
    """Ask SageMaker to stop a run we stop waiting for; say what happened."""
    try:
        sagemaker.stop_pipeline_execution(
            PipelineExecutionArn=arn, ClientRequestToken=str(uuid.uuid4())
        )
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as error:
        return f"could not stop it ({error}): stop {arn} by hand"
    return "stop requested"


def run_locally(
    session: boto3.Session,
    s3: S3Client,
    tfvars: dict[str, Any],
    parameters: dict[str, str],
    work_dir: Path | None,
) -> tuple[str, str, str | None]:
    """The deployed definition, run by the local executor with ``session``'s credentials."""
    from pipelines.local import executor

    definition = executor.load_definition(
        f"s3://{tfvars['artifacts_bucket']}/{tfvars['pipeline_definition_s3_key']}", s3
    )
    record = executor.execute(
        definition,
        parameters,
        pipeline_name=tfvars["pipeline_name"],
        session=session,
        work_dir=work_dir,
        log=lambda line: print(f"    {line}", flush=True),
    )
    return (
        record["PipelineExecutionArn"],
        record["PipelineExecutionStatus"],
        record.get("FailureReason"),
    )


def count_rows(s3: S3Client, output_data_url: str, execution_id: str) -> tuple[int, int, int]:
    """(rows in, rows rejected, rows scored), from what the run wrote under its own prefix:
    the Preprocess summaries, and the prediction lines themselves (what the reviewer needs
    is what was written, not what Preprocess kept)."""
    counts = partitions.run_counts(s3, output_data_url, execution_id)
    # the pipeline joins OutputDataUrl, the execution id and the step's folder with "/", as
    # given: s3://b/out/ writes under out//<id>/
    bucket, prefix = parse_s3_uri(output_data_url)
    run = f"{prefix}/{execution_id}/" if prefix else f"{execution_id}/"
    scored = 0
    pages = s3.get_paginator("list_objects_v2")
    for page in pages.paginate(Bucket=bucket, Prefix=f"{run}predictions/"):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            scored += sum(1 for line in body.splitlines() if line.strip())
    return counts["rows_read"], counts["rows_rejected"], scored


def smoke_run(
    tfvars: dict[str, Any],
    session: boto3.Session,
    *,
    local: bool = False,
    timeout_seconds: float = 3600,
    poll_seconds: float = 30,
    work_dir: Path | None = None,
    repo: Path = REPO,
) -> SmokeResult:
    s3 = session.client("s3")
    started = time.monotonic()
    input_uri = upload_smoke_input(s3, tfvars, repo)
    parameters = schedule_parameters(tfvars, input_uri)
    if local:
        arn, status, reason = run_locally(session, s3, tfvars, parameters, work_dir)
    else:
        arn, status, reason = run_on_sagemaker(
            session.client("sagemaker"), tfvars, parameters, timeout_seconds, poll_seconds
        )
    result = SmokeResult(arn, status, input_uri, failure_reason=reason)
    if status == "Succeeded":
        execution_id = arn.rsplit("/", 1)[-1]
        result.rows_in, result.rows_rejected, result.rows_scored = count_rows(
            s3, tfvars["output_data_url"], execution_id
        )
        if result.rows_scored == 0:
            result.failure_reason = "the run succeeded but scored no rows"
    result.seconds = time.monotonic() - started
    return result


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
    # the CLI's own modules (the stage functions' zips import this module, not these)
    from pipelines import aws_sessions
    from pipelines.files import check_writable_option

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
