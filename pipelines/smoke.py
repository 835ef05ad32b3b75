"""The smoke run's library: run the deployed pipeline once on the stage's smoke input and
count what it scored (``pipelines/smoke_run.py`` is its CLI; the deployment, the demo and the
acceptance run call it)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import botocore.exceptions

from common.exit_codes import (
    USAGE_ERROR,
    CommandFailed,
)
from common.s3_locations import content_key, parse_s3_uri, sse_arguments
from stage_runtime import executions, partitions, run_cost
from stage_runtime.runs import schedule_parameters

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
    *,
    display_name: str | None = None,
    description: str | None = None,
    program: str = "smoke run",
) -> tuple[str, str, str | None]:
    """Start the deployed pipeline and wait for it, at most ``timeout_seconds`` (the smoke
    run's, and a shadow run's day: ``pipelines/shadow_run.py``).

    A run still executing at the deadline is stopped (it would cost instance hours for a
    verdict nobody waits for); a run whose status cannot be read is never stopped."""
    arn = sagemaker.start_pipeline_execution(
        PipelineName=tfvars["pipeline_name"],
        PipelineExecutionDisplayName=display_name or f"smoke-v{tfvars.get('model_version', 0)}",
        PipelineExecutionDescription=description
        or f"Smoke run of {tfvars['model_name']} after its deployment",
        PipelineParameters=[{"Name": k, "Value": v} for k, v in parameters.items()],
        ClientRequestToken=str(uuid.uuid4()),
    )["PipelineExecutionArn"]
    print(f"{program}: started {arn}", flush=True)
    followed = executions.follow(
        sagemaker, arn, poll_seconds, timeout_seconds, sleep, program=program
    )
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
    definition: dict[str, Any] | None = None,
) -> tuple[str, str, str | None]:
    """The deployed definition (or ``definition``: a pipeline's own, as SageMaker holds it),
    run by the local executor with ``session``'s credentials."""
    arn, status, reason, _ = run_locally_recorded(
        session, s3, tfvars, parameters, work_dir, definition
    )
    return arn, status, reason


def run_locally_recorded(
    session: boto3.Session,
    s3: S3Client,
    tfvars: dict[str, Any],
    parameters: dict[str, str],
    work_dir: Path | None,
    definition: dict[str, Any] | None = None,
) -> tuple[str, str, str | None, dict[str, Any]]:
    """``run_locally``, and the execution record (a backfill's marker takes its cost)."""
    from local_mode import executor

    if definition is None:
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
        price_table=run_cost.table_of(tfvars.get("instance_prices")),
    )
    return (
        record["PipelineExecutionArn"],
        record["PipelineExecutionStatus"],
        record.get("FailureReason"),
        record,
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
