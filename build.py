"""Promote the latest approved model from the dev registry into a stage account.

    python build.py --stage preprod --model-package-group-name churn \\
        [--model-version 7] [--source-role-arn ARN | --source-profile P] \\
        [--target-role-arn ARN | --target-profile P] [--config pre-prod-config.tfvars.json] \\
        [--output build/preprod.tfvars.json] [--project-name P] [--region R] \\
        [--endpoint-url URL] [--dry-run | --plan-only [--shadow-candidate]]

Copies the package's artifacts into the stage's bucket (server-side), registers an Approved
package in the stage's registry (or reuses the one promoted earlier from the same source),
uploads the processing code and the pipeline definition, and writes the stage's Terraform
variables. ``--plan-only`` writes the same variables and changes nothing in AWS (the
package to be promoted appears as ``.../model-package/<group>/promoted-at-apply-from-v<N>``):
the prod plan a reviewer reads before approving. Every failure is one line on stderr with its
own exit code (docs/promotion.md, Exit codes). With ``--shadow-candidate`` the plan also makes
the version's candidate Model for the shadow run, and nothing else
(promotion/shadow_candidate.py). No AWS call happens at import time.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import NoReturn

import boto3
import botocore.exceptions
from botocore.config import Config

import utils
from common import aws_sessions
from common.files import check_writable, write_json_atomically
from lambdas import package

REPO = Path(__file__).resolve().parent
STAGE_CONFIGS = {"preprod": "pre-prod-config.tfvars.json", "prod": "prod-config.tfvars.json"}
STAGE_ACCOUNT_VARIABLES = {
    "preprod": "AWS_PREPROD_ACCOUNT_NUMBER",
    "prod": "AWS_PROD_ACCOUNT_NUMBER",
}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(utils.UsageError.exit_code, f"build.py: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a version number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("versions start at 1")
    return value


def _minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of minutes") from None
    if not 0 <= value <= 720:  # nan fails both comparisons
        raise argparse.ArgumentTypeError("give 0 to 720 minutes")
    return value


# IAM's role ARN: partition, 12-digit account, path and name of IAM's allowed characters
_ROLE_ARN = re.compile(r"arn:aws(-[a-z]+)*:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512}")


def _role_arn(text: str) -> str:
    if not _ROLE_ARN.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an IAM role ARN (arn:aws:iam::<12-digit account>:role/<name>)"
        )
    return text


def _parser() -> argparse.ArgumentParser:
    env = os.environ.get
    parser = _Parser(prog="build.py", description=__doc__.splitlines()[0])
    parser.add_argument("--stage", required=True, choices=sorted(STAGE_CONFIGS))
    parser.add_argument(
        "--model-package-group-name",
        default=env("MODEL_PACKAGE_GROUP_NAME") or env("SAGEMAKER_PROJECT_NAME"),
        help="default: $MODEL_PACKAGE_GROUP_NAME, else $SAGEMAKER_PROJECT_NAME",
    )
    parser.add_argument(
        "--model-version", type=_positive_int, help="pin or roll back; default: newest Approved"
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--source-role-arn", type=_role_arn, help="role in the dev account with registry read"
    )
    source.add_argument("--source-profile", help="AWS profile for the dev account")
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--target-role-arn", type=_role_arn, help="deploy role in the target account"
    )
    target.add_argument("--target-profile", help="AWS profile for the target account")
    parser.add_argument("--config", type=Path, help="stage settings; default by stage")
    parser.add_argument("--output", type=Path, help="default: build/<stage>.tfvars.json")
    parser.add_argument(
        "--feature-schema",
        type=Path,
        default=REPO / "pipelines" / "batch_inference" / "feature-schema.json",
    )
    parser.add_argument(
        "--image-wait-minutes",
        type=_minutes,
        default=30.0,
        help="how long to wait for ECR to replicate the package's dev images to the stage",
    )
    parser.add_argument("--project-name", default=env("SAGEMAKER_PROJECT_NAME"))
    parser.add_argument("--project-id", default=env("SAGEMAKER_PROJECT_ID"))
    parser.add_argument("--region", default=env("AWS_REGION") or env("AWS_DEFAULT_REGION"))
    parser.add_argument("--endpoint-url", default=env("AWS_ENDPOINT_URL"), help=argparse.SUPPRESS)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    mode.add_argument(
        "--plan-only",
        action="store_true",
        help="write the tfvars a deployment would apply, change nothing in AWS (a plan job)",
    )
    parser.add_argument(
        "--shadow-candidate",
        action="store_true",
        help="with --plan-only: also create the version's shadow candidate model "
        "(<group>-<stage>-c<N>) for pipelines.shadow_run, and remove older candidates",
    )
    return parser


# The first call with each set of credentials: two attempts and short timeouts, so an
# endpoint that refuses or never answers is named within seconds. The clients that follow
# keep utils.client_config()'s long retries, which throttling needs.
_FIRST_CONTACT = Config(
    connect_timeout=3, read_timeout=5, retries={"mode": "standard", "max_attempts": 2}
)
_UNREACHABLE = (
    # endpoint, proxy, TLS and connect-timeout failures all derive from ConnectionError
    botocore.exceptions.ConnectionError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectionClosedError,
)


def _account_of(session: boto3.Session, endpoint_url: str | None, role: str) -> str:
    """The account ``session`` acts in (STS GetCallerIdentity needs no permission)."""
    sts = session.client("sts", endpoint_url=endpoint_url, config=_FIRST_CONTACT)
    try:
        with utils.aws_errors(f"identifying the {role} account"):
            return sts.get_caller_identity()["Account"]
    except _UNREACHABLE as error:
        raise utils.Unreachable(
            f"cannot reach AWS STS for the {role} account ({error}); check the network, the "
            "proxy settings or AWS_ENDPOINT_URL"
        ) from None


def _session(
    region: str, endpoint_url: str | None, role_arn: str | None, profile: str | None, name: str
) -> boto3.Session:
    """A session for one account: a profile, an assumed role, or the default chain."""
    base = aws_sessions.session(region, profile)
    _account_of(base, endpoint_url, name.rsplit("-", 1)[-1])  # source or target
    if not role_arn:
        return base
    sts = base.client("sts", endpoint_url=endpoint_url, config=utils.client_config())
    with utils.aws_errors(f"assuming role {role_arn}"):
        return aws_sessions.assumed_session(sts, role_arn, name, region)


def _check_account(
    session: boto3.Session, endpoint_url: str | None, variable: str, role: str
) -> None:
    """Refuse to run against the wrong account when the workflow names the expected one."""
    expected = os.environ.get(variable)
    if not expected:
        return
    actual = _account_of(session, endpoint_url, role)
    if actual != expected:
        raise utils.AccountMismatch(
            f"the {role} credentials are for account {actual}, but {variable} is {expected}; "
            "fix the role or the variable"
        )


def _clients(args: argparse.Namespace) -> utils.Clients:
    endpoint, config = args.endpoint_url, utils.client_config()
    source = _session(
        args.region,
        endpoint,
        args.source_role_arn,
        args.source_profile,
        f"build-{args.stage}-source",
    )
    target = _session(
        args.region,
        endpoint,
        args.target_role_arn,
        args.target_profile,
        f"build-{args.stage}-target",
    )
    _check_account(source, endpoint, "AWS_DEV_ACCOUNT_NUMBER", "source (dev)")
    _check_account(target, endpoint, STAGE_ACCOUNT_VARIABLES[args.stage], f"target ({args.stage})")

    return utils.Clients(
        source_sagemaker=source.client("sagemaker", endpoint_url=endpoint, config=config),
        source_s3=source.client("s3", endpoint_url=endpoint, config=config),
        source_ecr=source.client("ecr", endpoint_url=endpoint, config=config),
        target_sagemaker=target.client("sagemaker", endpoint_url=endpoint, config=config),
        target_s3=target.client("s3", endpoint_url=endpoint, config=config),
        target_ssm=target.client("ssm", endpoint_url=endpoint, config=config),
        target_ecr=target.client("ecr", endpoint_url=endpoint, config=config),
        target_iam=target.client("iam", endpoint_url=endpoint, config=config),
    )


# the stage template's and infra/'s rule for project_name (tests/test_bad_input.py compares):
# it names the SSM parameters /<project>/<stage>/..., S3 prefixes and SageMaker resources
PROJECT_NAME = re.compile(r"[a-z0-9][a-z0-9-]{1,30}[a-z0-9]")


def _check_project_name(name: str) -> None:
    if not PROJECT_NAME.fullmatch(name):
        raise utils.UsageError(
            f"project name {name!r} (--project-name or SAGEMAKER_PROJECT_NAME) must be 3-32 "
            "lowercase letters, digits and hyphens, starting and ending with a letter or digit: "
            "the stage's base infrastructure and template accept no other"
        )


def _check_feature_schema(path: Path) -> None:
    """Refuse a schema Preprocess cannot load (every run of the stage would exit 2), by
    Preprocess's own rules."""
    if path.is_dir():
        raise utils.UsageError(
            f"--feature-schema {path} is a directory: pass the schema's JSON file, e.g. "
            f"{path / 'feature-schema.json'}"
        )
    if not path.is_file():
        raise utils.UsageError(f"--feature-schema {path} does not exist: pass the schema's file")
    from pipelines.batch_inference import preprocess  # pyarrow: only when a schema is checked

    try:
        preprocess.Schema.load(path)
    except preprocess.UsageError as error:
        raise utils.UsageError(
            f"--feature-schema: {error}; Preprocess could not load it, so every run of the "
            "stage would fail"
        ) from None


def _request(args: argparse.Namespace) -> utils.PromotionRequest:
    for value, how in (
        (args.region, "pass --region or set AWS_REGION"),
        (args.project_name, "pass --project-name or set SAGEMAKER_PROJECT_NAME"),
        (args.model_package_group_name, "pass --model-package-group-name"),
    ):
        if not value:
            raise utils.UsageError(f"missing setting: {how}")
    _check_project_name(args.project_name)
    _check_feature_schema(args.feature_schema)
    if args.shadow_candidate and not args.plan_only:
        raise utils.UsageError(
            "--shadow-candidate belongs to the plan before the gate: add --plan-only (an "
            "approved deployment deletes its candidate itself)"
        )
    config_path = args.config or REPO / STAGE_CONFIGS[args.stage]
    return utils.PromotionRequest(
        stage=args.stage,
        group=args.model_package_group_name,
        project_name=args.project_name,
        project_id=args.project_id,
        region=args.region,
        version=args.model_version,
        stage_config=utils.load_stage_config(config_path, args.stage),
        processing_script=REPO / "pipelines" / "batch_inference" / "preprocess.py",
        feature_schema=args.feature_schema,
        dry_run=args.dry_run,
        plan_only=args.plan_only,
        shadow_candidate=args.shadow_candidate,
        image_wait_seconds=args.image_wait_minutes * 60,
    )


def _summary(result: utils.PromotionResult, request: utils.PromotionRequest, output: Path) -> str:
    source = result.source
    size = sum(plan.size for plan in result.copies)
    lines = [
        f"source:   {source['ModelPackageArn']} (version {source['ModelPackageVersion']})",
        *(f"warning:  {warning}" for warning in result.warnings),
    ]
    if request.dry_run:
        if result.reused:
            lines.append(f"target:   {result.target_package_arn} exists: would reuse it")
        else:
            lines.append(
                f"target:   would copy {len(result.copies)} object(s), {size} bytes, to "
                f"s3://{result.settings.artifacts_bucket} and register an Approved package in "
                f"{request.group!r}"
            )
            lines += [f"          {plan.source_uri} -> {plan.target_uri}" for plan in result.copies]
            lines += [f"image:    {plan.registered} -> {plan.target}" for plan in result.images]
        lines.append(f"would write {output} (dry run: nothing changed)")
        return "\n".join(lines)
    if request.plan_only:
        action = "exists" if result.reused else "will be promoted at apply (plan only)"
    else:
        action = "reused (already promoted)" if result.reused else "created"
    lines += [
        f"target:   {result.target_package_arn} {action}",
        f"copied:   {len(result.copied)} object(s)" + ("" if result.reused else f", {size} bytes"),
        *(f"image:    {plan.registered} -> {plan.target}" for plan in result.images),
        f"pipeline: {result.tfvars['pipeline_name']} "
        f"(s3://{result.tfvars['artifacts_bucket']}/{result.tfvars['pipeline_definition_s3_key']})",
        f"model:    {result.tfvars['model_name']}",
        *([result.shadow] if result.shadow else []),
        f"wrote:    {output}"
        + (" (plan only: nothing changed in AWS)" if request.plan_only else ""),
    ]
    return "\n".join(lines)


def with_function_zips(tfvars: dict, output: Path) -> dict:
    """The tfvars plus the stage's functions' zips (schedule, run on upload), built next to
    them.

    Built on every deploy, byte for byte the same from the same sources, so Terraform
    updates a function exactly when its code changed. The paths are absolute: Terraform may
    run from another directory than build.py.
    """
    zips = {}
    for variable, function, source in (
        ("schedule_starter_zip", "start-scheduled-run", package.SCHEDULE_HANDLER),
        ("upload_starter_zip", "start-upload-run", package.UPLOAD_HANDLER),
    ):
        archive = output.with_name(f"{output.name.split('.')[0]}-{function}.zip")
        package.build_zip(archive, source)
        zips[variable] = str(archive.resolve())
    return {**tfvars, **zips}


def _output_writable(output: Path) -> None:
    try:
        check_writable(output)
    except ValueError as error:
        raise utils.UsageError(f"--output: {error}") from None


def _write_output(output: Path, tfvars: dict, plan_only: bool) -> None:
    try:
        write_json_atomically(output, with_function_zips(tfvars, output))
    except (ValueError, OSError) as error:
        done = "nothing was changed in AWS" if plan_only else "the promotion itself is done"
        raise utils.UsageError(f"--output: {error}; {done}, re-run") from None


def _check_aws_settings(endpoint_url: str | None) -> None:
    """What botocore would fail on with a traceback, before any client (the SDK's
    import-time one included) exists."""
    try:
        aws_sessions.check_environment()
        if endpoint_url != os.environ.get("AWS_ENDPOINT_URL"):
            aws_sessions.check_endpoint_url(endpoint_url, "--endpoint-url")
    except aws_sessions.AwsSettingError as error:
        raise utils.UsageError(str(error)) from None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    output = args.output or Path("build") / f"{args.stage}.tfvars.json"
    try:
        _check_aws_settings(args.endpoint_url)
    except utils.UsageError as error:
        print(f"build.py: {error}", file=sys.stderr)
        return error.exit_code
    from pipelines import sdk  # the SDK loads only once the arguments are known to be valid

    sdk.quiet_sdk_logging()
    try:
        if not args.dry_run:  # a dry run writes nothing, so it must not make folders either
            _output_writable(output)  # before any AWS call: a promotion must not end unwritten
        request = _request(args)
        result = utils.promote(_clients(args), request)
        if not request.dry_run:
            _write_output(output, result.tfvars, request.plan_only)
    except utils.PromotionError as error:
        print(f"build.py: {error}", file=sys.stderr)
        return error.exit_code
    except botocore.exceptions.BotoCoreError as error:
        print(f"build.py: AWS client error: {error}", file=sys.stderr)
        return utils.PromotionError.exit_code
    print(_summary(result, request, output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
