"""Create or update a pipeline in SageMaker and start an execution, through the SageMaker SDK.

    python -m pipelines.run_pipeline \\
        --module-name pipelines.batch_inference.pipeline \\
        --role-arn arn:aws:iam::111111111111:role/SageMakerPipelineRole \\
        --kwargs '{"region": "eu-west-1", "role": "arn:...", "default_bucket": "my-bucket"}' \\
        [--parameters '{"ModelName": "my-model"}'] [--tags '[{"Key": "k", "Value": "v"}]'] \\
        [--description "..."] [--wait]

    # or score days of a deployed stage's date-partitioned input (pipelines/partition_runs.py):
    python -m pipelines.run_pipeline --stage preprod --date 2026-11-01 [--until ...] [--force]

    # or run it on this machine (local mode), against any S3/SageMaker endpoint:
    python -m pipelines.run_pipeline --local --module-name ... --kwargs '...' \
        [--parameters '{...}'] [--execution-record build/execution.json]

Credentials and endpoint come from the usual boto3 chain (``AWS_ENDPOINT_URL`` points it at
an emulator); every client, the SDK's included, has the project's retry policy
(``common.aws_sessions``), and ``--wait`` polls through a failed status read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import botocore.exceptions

from common import aws_sessions
from common.exit_codes import AWS_ERROR, EXECUTION_FAILED
from common.files import check_writable, write_execution_record
from pipelines._cli import (
    USAGE_ERROR,
    CliError,
    build_pipeline,
    check_environment,
    check_kwargs,
    load_get_pipeline,
    parse_json_option,
)
from stage_runtime import executions

if TYPE_CHECKING:  # imported by main once the environment is checked (see pipelines._cli)
    from pipelines import sdk


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_pipeline", description="Upsert a SageMaker pipeline and start an execution."
    )
    parser.add_argument("-n", "--module-name", required=True)
    parser.add_argument("-role-arn", "--role-arn", help="role the pipeline runs as (not --local)")
    parser.add_argument("-kwargs", "--kwargs", default=None, help="get_pipeline() arguments (JSON)")
    parser.add_argument("-tags", "--tags", default=None, help='[{"Key": ..., "Value": ...}] (JSON)')
    parser.add_argument("-description", "--description", default=None)
    parser.add_argument("--parameters", default=None, help="execution parameters (JSON object)")
    parser.add_argument("--wait", action="store_true", help="wait for the execution to finish")
    parser.add_argument("--poll-seconds", type=float, default=30.0, help=argparse.SUPPRESS)
    parser.add_argument("--local", action="store_true", help="execute here, not in SageMaker")
    parser.add_argument("--execution-record", type=Path, help="--local: save the record here")
    return parser


def _check_tags(tags: list) -> list:
    for tag in tags:
        if not (isinstance(tag, dict) and set(tag) == {"Key", "Value"}):
            raise CliError('--tags must be a JSON list of {"Key": ..., "Value": ...} objects')
    return tags


def _record_writable(path: Path) -> None:
    try:
        check_writable(path)
    except ValueError as error:
        raise CliError(f"--execution-record: {error}") from None


PARTITION_OPTIONS = ("--stage", "--tfvars", "--date")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:  # before any client exists, in every mode: botocore would fail with a traceback
        check_environment()
    except CliError as error:
        print(f"run_pipeline: error: {error}", file=sys.stderr)
        return USAGE_ERROR
    if any(a.split("=", 1)[0] in PARTITION_OPTIONS for a in argv):
        from pipelines import partition_runs  # days of a deployed stage (backfill)

        return partition_runs.main(argv)
    args = _parser().parse_args(argv)
    from pipelines import sdk

    try:
        kwargs = parse_json_option("--kwargs", args.kwargs, dict)
        tags = _check_tags(parse_json_option("--tags", args.tags, list))
        parameters = parse_json_option("--parameters", args.parameters, dict)
        get_pipeline = load_get_pipeline(args.module_name)
        if args.execution_record:
            _record_writable(args.execution_record)  # before the run, whose record it keeps
        if args.local:
            check_kwargs(get_pipeline, kwargs)
            return _run_locally(build_pipeline(get_pipeline, kwargs), parameters, args)
        if not args.role_arn:
            raise CliError("--role-arn is required (unless --local)")
        check_kwargs(get_pipeline, kwargs, provided=("sagemaker_session",))
        region = kwargs.get("region")
        with sdk.quiet_environment(region):
            session = sdk.PipelineSession(  # the policy reaches every client the SDK makes
                boto_session=aws_sessions.session(region),
                default_bucket=kwargs.get("default_bucket"),
            )
        pipeline = build_pipeline(get_pipeline, {**kwargs, "sagemaker_session": session})
    except CliError as error:
        print(f"run_pipeline: error: {error}", file=sys.stderr)
        return USAGE_ERROR

    try:
        response = pipeline.upsert(role_arn=args.role_arn, description=args.description, tags=tags)
        print(f"pipeline: {response['PipelineArn']}")
        execution = pipeline.start(parameters=parameters or None)
        print(f"execution: {execution.arn}")
        if not args.wait:
            return 0
        followed = executions.follow(
            session.sagemaker_client, execution.arn, args.poll_seconds, program="run_pipeline"
        )
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as error:
        print(f"run_pipeline: AWS error: {error}", file=sys.stderr)
        return AWS_ERROR
    except sdk.RoleValidationError as error:
        reason = str(error).strip().splitlines()[0]
        print(
            f"run_pipeline: AWS error: role {args.role_arn} was refused: {reason}", file=sys.stderr
        )
        return AWS_ERROR
    status = followed.described
    if followed.error is not None or status is None:
        print(
            f"run_pipeline: could not read the status of {execution.arn} ({followed.error}); "
            f"{executions.follow_hint(execution.arn)}",
            file=sys.stderr,
        )
        return AWS_ERROR
    print(f"status: {status['PipelineExecutionStatus']}")
    if status["PipelineExecutionStatus"] != "Succeeded":
        reason = status.get("FailureReason", "no failure reason given")
        print(
            f"run_pipeline: execution ended {status['PipelineExecutionStatus']}: {reason}",
            file=sys.stderr,
        )
        return EXECUTION_FAILED
    return 0


def _run_locally(pipeline: sdk.Pipeline, parameters: dict, args: argparse.Namespace) -> int:
    """Local mode: the same definition, executed on this machine."""
    from local_mode import executor

    record = executor.execute(
        json.loads(pipeline.definition()),
        parameters,
        pipeline_name=pipeline.name,
        session=aws_sessions.session(),
    )
    if args.execution_record:
        write_execution_record(args.execution_record, record)
        print(f"execution record: {args.execution_record}")
    print(f"status: {record['PipelineExecutionStatus']}")
    if record["PipelineExecutionStatus"] != "Succeeded":
        print(f"run_pipeline: {record.get('FailureReason')}", file=sys.stderr)
        return EXECUTION_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
