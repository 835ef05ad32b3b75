"""Execute a pipeline definition locally and keep a record like SageMaker's own.

The record mirrors ``DescribePipelineExecution`` + ``ListPipelineExecutionSteps``: status,
start and end times, and per step its status, job metadata and failure reason; each step
that became a job also keeps what ``DescribeProcessingJob`` / ``DescribeTransformJob`` would
answer of it (``Job``: instances, start and end), and the record the run's ``Cost``
(stage_runtime/run_cost.py, the shipped prices or ``price_table``).

    python -m local_mode.executor --definition build/definition.json \\
        [--parameters '{"ModelName": "m"}'] [--record build/execution.json]

``--definition`` also takes an ``s3://`` URI (the object ``build.py`` uploaded).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import secrets
import shutil
import string
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import botocore.exceptions

from common import aws_sessions
from common.exit_codes import AWS_ERROR, EXECUTION_FAILED, USAGE_ERROR
from common.files import check_writable, write_execution_record
from common.s3_locations import parse_s3_object_uri
from local_mode import expressions
from local_mode.processing import StepFailed, run_processing
from local_mode.transform import run_transform
from stage_runtime import run_cost

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# the account named in ARNs when the session's account cannot be read (no credentials)
UNKNOWN_ACCOUNT = "000000000000"


def _account_of(session: boto3.Session) -> str:
    """The account the jobs act in (the stage's, as on AWS), for the execution's ARNs."""
    try:
        return str(session.client("sts").get_caller_identity()["Account"])
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
        return UNKNOWN_ACCOUNT


def new_execution_id() -> str:
    """Like SageMaker's: 12 lowercase letters and digits."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(12))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def execute(
    definition: dict[str, Any],
    parameters: dict[str, Any] | None = None,
    *,
    pipeline_name: str = "local-pipeline",
    session: boto3.Session | None = None,
    work_dir: Path | None = None,
    execution_id: str | None = None,
    log: Callable[[str], None] = print,
    price_table: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``run`` the definition, and record what the run cost (``Cost``): its jobs'
    instance-seconds at ``price_table``'s prices (default: the shipped table), per 1,000 rows
    the Transform scored, as the stage's run-outcome function computes it on AWS."""
    record = run(
        definition, parameters, pipeline_name=pipeline_name, session=session,
        work_dir=work_dir, execution_id=execution_id, log=log,
    )  # fmt: skip
    table = price_table if price_table is not None else run_cost.table_of(None)
    scored = [
        s["Outcome"]["RecordsOut"]
        for s in record["Steps"]
        if s.get("StepType") == "Transform" and "RecordsOut" in s.get("Outcome", {})
    ]
    record["Cost"] = run_cost.cost(
        run_cost.local_usages(record), table, sum(scored) if scored else None
    )
    log(f"  {run_cost.summary(record['Cost'])}")
    return record


def run(
    definition: dict[str, Any],
    parameters: dict[str, Any] | None = None,
    *,
    pipeline_name: str = "local-pipeline",
    session: boto3.Session | None = None,
    work_dir: Path | None = None,
    execution_id: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run every step in dependency order; return the execution record. Never raises: a bad
    definition, a bad parameter or a failing step ends the record ``Failed`` with the reason.

    ``session`` holds the credentials the jobs act with (SageMaker's execution role on AWS);
    clients honour ``AWS_ENDPOINT_URL``, which points them at the emulator. ``work_dir`` is
    the caller's to keep; without it the jobs work in a temporary folder removed at the end.
    """
    session = session or aws_sessions.session()
    region = session.region_name
    execution_id = execution_id or new_execution_id()
    account = _account_of(session)
    pipeline_arn = f"arn:aws:sagemaker:{region}:{account}:pipeline/{pipeline_name.lower()}"
    record: dict[str, Any] = {
        "PipelineArn": pipeline_arn,
        "PipelineExecutionArn": f"{pipeline_arn}/execution/{execution_id}",
        "PipelineExecutionStatus": "Executing",
        "StartTime": _now(),
        "Parameters": {},
        "Steps": [],
    }
    context = expressions.Context(
        parameters={},
        execution={
            "PipelineExecutionId": execution_id,
            "PipelineExecutionArn": record["PipelineExecutionArn"],
            "PipelineName": pipeline_name,
            "PipelineArn": pipeline_arn,
            "StartDateTime": record["StartTime"],
            "CurrentDateTime": record["StartTime"],
        },
    )
    try:
        _check_definition(definition)
        context.parameters = expressions.resolve_parameters(definition, parameters or {})
        record["Parameters"] = context.parameters
        steps = expressions.execution_order(definition)
    except expressions.DefinitionError as error:
        return _finish(record, "Failed", str(error))
    log(f"execution {execution_id} of {pipeline_name}: {len(steps)} step(s)")
    temporary = work_dir is None
    # absolute: jobs run with their own working directory
    work_dir = Path(work_dir or tempfile.mkdtemp(prefix=f"pipeline-{execution_id}-")).resolve()
    try:
        for step in steps:
            step_dir = work_dir / step["Name"]
            step_record = _run_step(step, context, session, step_dir, execution_id, log)
            record["Steps"].append(step_record)
            if step_record["StepStatus"] != "Succeeded":
                reason = f"Step {step['Name']} failed: {step_record['FailureReason']}"
                return _finish(record, "Failed", reason)
        return _finish(record, "Succeeded")
    except Exception as error:  # a shape no check foresaw: still a record, not a traceback
        return _finish(record, "Failed", f"{type(error).__name__}: {error}")
    finally:
        if temporary:
            shutil.rmtree(work_dir, ignore_errors=True)


def _check_definition(definition: object) -> None:
    """The whole definition's shape, before any step runs (SageMaker refuses it at upsert)."""
    if not isinstance(definition, dict) or not isinstance(definition.get("Steps"), list):
        raise expressions.DefinitionError("the definition must be a JSON object with a Steps list")
    parameters = definition.get("Parameters", [])
    if not isinstance(parameters, list):
        raise expressions.DefinitionError("the definition's Parameters must be a list")
    for index, parameter in enumerate(parameters):
        if not isinstance(parameter, dict) or not isinstance(parameter.get("Name"), str):
            raise expressions.DefinitionError(f"Parameters[{index}] has no Name")
        if parameter.get("Type", "String") not in expressions.PARAMETER_TYPES:
            raise expressions.DefinitionError(
                f"parameter {parameter['Name']!r} has type {parameter.get('Type')!r}; "
                f"SageMaker's are {', '.join(expressions.PARAMETER_TYPES)}"
            )
    names: set[str] = set()
    for index, step in enumerate(definition["Steps"]):
        if not isinstance(step, dict) or not isinstance(step.get("Name"), str):
            raise expressions.DefinitionError(f"Steps[{index}] has no Name")
        name = step["Name"]
        if name in names:
            raise expressions.DefinitionError(f"two steps are named {name!r}; names must differ")
        names.add(name)
        if step.get("Type") not in _RUNNERS:
            raise expressions.DefinitionError(
                f"step {name!r} has type {step.get('Type')!r}, which local mode does not "
                f"run (it runs {' and '.join(_RUNNERS)} steps)"
            )
        if not isinstance(step.get("Arguments", {}), dict):
            raise expressions.DefinitionError(f"step {name!r}: Arguments must be a JSON object")
        depends_on = step.get("DependsOn", [])
        if not isinstance(depends_on, list) or not all(isinstance(d, str) for d in depends_on):
            raise expressions.DefinitionError(f"step {name!r}: DependsOn must list step names")


def _finish(record: dict[str, Any], status: str, reason: str | None = None) -> dict[str, Any]:
    record["PipelineExecutionStatus"] = status
    record["EndTime"] = _now()
    if reason:
        record["FailureReason"] = reason
    return record


_RUNNERS = {"Processing": "ProcessingJob", "Transform": "TransformJob"}


def job_name(step: dict[str, Any], execution_id: str) -> str:
    """The job's name as SageMaker Pipelines forms it.

    With the definition's custom job prefix (``ProcessingJobName``/``TransformJobName``, the
    SDK's ``use_custom_job_prefix``): ``<prefix>-<execution id>-<entity token>-<attempt>``;
    without: ``pipelines-<execution id>-<step>``. The token here is derived from the step
    name (SageMaker's is opaque); job names hold 63 characters.
    """
    arguments = step.get("Arguments", {})
    prefix = arguments.get("ProcessingJobName") or arguments.get("TransformJobName")
    if isinstance(prefix, str) and prefix:
        token = hashlib.sha256(step["Name"].encode()).hexdigest()[:10]
        return f"{prefix}-{execution_id}-{token}-0"[:63].rstrip("-")
    return f"pipelines-{execution_id}-{step['Name']}"[:63]


def _run_step(
    step: dict[str, Any],
    context: expressions.Context,
    session: boto3.Session,
    work_dir: Path,
    execution_id: str,
    log: Callable[[str], None],
) -> dict[str, Any]:
    name, kind = step["Name"], step["Type"]
    given_name = job_name(step, execution_id)
    started = time.perf_counter()
    record: dict[str, Any] = {"StepName": name, "StepType": kind, "StartTime": _now()}
    log(f"  {name} ({kind}) started")
    arguments: dict[str, Any] | None = None
    job_started = datetime.now(UTC)
    try:
        arguments = expressions.resolve(step.get("Arguments", {}), context)
        work_dir.mkdir(parents=True, exist_ok=True)
        job_started = datetime.now(UTC)
        if kind == "Processing":
            outcome = run_processing(arguments, session.client("s3"), work_dir, log)
        else:
            outcome = run_transform(arguments, session, work_dir, log)
    except (StepFailed, expressions.DefinitionError, ValueError) as error:
        # ValueError: a parameter that is not what the step needs (e.g. not an S3 URI)
        record.update(StepStatus="Failed", FailureReason=str(error))
        if isinstance(error, StepFailed) and error.metrics:
            record["Outcome"] = {"Metrics": error.metrics}
    except botocore.exceptions.ClientError as error:
        details = error.response.get("Error", {})
        reason = f"{error.operation_name}: {details.get('Code')}: {details.get('Message')}"
        record.update(StepStatus="Failed", FailureReason=" ".join(reason.split()))
    except Exception as error:  # the last resort: the record, not a traceback, says what failed
        record.update(StepStatus="Failed", FailureReason=f"{type(error).__name__}: {error}")
    else:
        job = _RUNNERS[kind]
        prefix = context.execution["PipelineArn"].rsplit(":pipeline/", 1)[0]
        arn = f"{prefix}:{job.lower().replace('job', '-job')}/{given_name}"
        record.update(StepStatus="Succeeded", Metadata={job: {"Arn": arn}}, Outcome=outcome)
        # what later steps can read: the request as submitted, plus the job's identity
        context.steps[name] = {
            **arguments,
            f"{job}Name": given_name,
            f"{job}Arn": arn,
            f"{job}Status": "Completed",
        }
    if isinstance(arguments, dict):  # it became a job: what SageMaker's Describe would say
        record["Job"] = job_description(kind, given_name, arguments, job_started, record)
    record["EndTime"] = _now()
    record["DurationSeconds"] = round(time.perf_counter() - started, 3)
    status = record["StepStatus"]
    log(f"  {name} {status.lower()} in {record['DurationSeconds']:.1f}s")
    if status == "Failed":
        log(f"    reason: {record['FailureReason']}")
    return record


def job_description(
    kind: str,
    name: str,
    arguments: dict[str, Any],
    started: datetime,
    record: dict[str, Any],
) -> dict[str, Any]:
    """The fields of ``DescribeProcessingJob`` / ``DescribeTransformJob`` a run's cost reads
    (stage_runtime/run_cost.py): the job's name, status, instances and start and end times
    (microseconds: a local job takes seconds). The instances are the ones the definition
    asked for: local mode runs ``InstanceCount`` processes, on this machine."""
    ended = datetime.now(UTC).isoformat()
    status = "Completed" if record.get("StepStatus") == "Succeeded" else "Failed"
    if kind == "Processing":
        return {
            "ProcessingJobName": name,
            "ProcessingJobStatus": status,
            "ProcessingResources": arguments.get("ProcessingResources", {}),
            "ProcessingStartTime": started.isoformat(),
            "ProcessingEndTime": ended,
        }
    return {
        "TransformJobName": name,
        "TransformJobStatus": status,
        "TransformResources": arguments.get("TransformResources", {}),
        "TransformStartTime": started.isoformat(),
        "TransformEndTime": ended,
    }


def load_definition(location: str, s3: S3Client | None = None) -> dict[str, Any]:
    """A definition from a file path or an ``s3://`` URI; ``ValueError`` names what is wrong."""
    try:
        if location.startswith("s3://"):
            bucket, key = parse_s3_object_uri(location)
            body = (s3 or boto3.client("s3")).get_object(Bucket=bucket, Key=key)["Body"].read()
        else:
            body = Path(location).read_bytes()
    except OSError as error:
        raise ValueError(f"{location} cannot be read: {error.strerror}") from None
    try:
        definition = json.loads(body)
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
        raise ValueError(f"{location} is not a JSON pipeline definition: {error}") from None
    if not isinstance(definition, dict):
        raise ValueError(f"{location} holds a JSON {type(definition).__name__}, not a definition")
    return definition


def _failed_before_running(reason: str) -> dict[str, Any]:
    return _finish({"PipelineExecutionStatus": "Executing", "StartTime": _now()}, "Failed", reason)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="local_mode.executor", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--definition", required=True, help="file or s3:// URI")
    parser.add_argument("--parameters", default="{}", help="JSON object of parameter values")
    parser.add_argument("--pipeline-name", default="local-pipeline")
    parser.add_argument("--record", type=Path, help="write the execution record here")
    args = parser.parse_args(argv)
    prog = "local_mode.executor"
    try:
        if args.record:
            check_writable(args.record)  # before the run, whose record it must keep
    except ValueError as error:
        print(f"{prog}: error: --record: {error}", file=sys.stderr)
        return USAGE_ERROR
    code, problem = USAGE_ERROR, None
    try:
        overrides = json.loads(args.parameters)
        if not isinstance(overrides, dict):
            problem = "--parameters: a JSON object of parameter values is required"
    except ValueError as error:
        problem = f"--parameters: not valid JSON: {error}"
    if problem is None:
        try:
            definition = load_definition(args.definition)
        except ValueError as error:
            problem = f"--definition: {error}"
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as error:
            code, problem = AWS_ERROR, f"--definition: reading {args.definition}: {error}"
    if problem is not None:
        print(f"{prog}: error: {problem}", file=sys.stderr)
        if args.record:
            write_execution_record(args.record, _failed_before_running(problem))
        return code
    record = execute(definition, overrides, pipeline_name=args.pipeline_name)
    if args.record:
        write_execution_record(args.record, record)
    print(f"status: {record['PipelineExecutionStatus']}")
    if record["PipelineExecutionStatus"] != "Succeeded":
        print(f"{prog}: {record['FailureReason']}", file=sys.stderr)
        return EXECUTION_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
