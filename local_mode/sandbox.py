"""Base resources of the three accounts in the emulator: what ``infra/`` creates on AWS.

Used by the demo and the tests, so both set up accounts the same way: the dev account's
artifact bucket and model package group, and each stage's artifact bucket, SageMaker
execution role and the SSM parameters ``build.py`` reads (the contract in docs/promotion.md).
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, cast

from local_mode.emulator import ACCOUNTS, Emulator

if TYPE_CHECKING:
    from mypy_boto3_s3.literals import BucketLocationConstraintType


def service_trust(service: str) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
        ],
    }


SAGEMAKER_TRUST = service_trust("sagemaker.amazonaws.com")
# the stage's roles (infra/target-account) and the service that assumes each
STAGE_ROLES = {
    "sagemaker-role-arn": ("sagemaker-execution", "sagemaker.amazonaws.com"),
    "start-pipeline-role-arn": ("start-pipeline", "events.amazonaws.com"),
    "upload-starter-role-arn": ("upload-starter", "lambda.amazonaws.com"),
    "shadow-role-arn": ("shadow-execution", "sagemaker.amazonaws.com"),
}


def dev_bucket() -> str:
    return f"dev-models-{ACCOUNTS['dev']}"


# the account's job log groups; the stage's metric filters read the Processing one
JOB_LOG_GROUPS = ("/aws/sagemaker/ProcessingJobs", "/aws/sagemaker/TransformJobs")


def stage_bucket(stage: str) -> str:
    return f"{stage}-artifacts-{ACCOUNTS[stage]}"


def create_bucket(aws: Emulator, account: str | None, bucket: str) -> None:
    """A bucket in the emulator's region, in ``account`` (None: the default account)."""
    region = cast("BucketLocationConstraintType", aws.region)  # a region name, checked by S3
    aws.client("s3", account).create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region}
    )


def create_dev_registry(aws: Emulator, group: str, bucket: str | None = None) -> str:
    """The dev account's artifact bucket and model package group; returns the bucket."""
    bucket = bucket or dev_bucket()
    create_bucket(aws, "dev", bucket)
    aws.client("sagemaker", "dev").create_model_package_group(
        ModelPackageGroupName=group, ModelPackageGroupDescription="models trained in dev"
    )
    return bucket


def create_stage(
    aws: Emulator,
    stage: str,
    project: str,
    kms: bool = False,
    subnets: list[str] | None = None,
    skip_parameters: tuple[str, ...] = (),
    with_bucket: bool = True,
) -> dict[str, str]:
    """A stage account's bucket, roles and SSM parameters; returns the parameters."""
    bucket = stage_bucket(stage)
    if with_bucket:
        create_bucket(aws, stage, bucket)
    iam = aws.client("iam", stage)
    parameters = {"artifacts-bucket": bucket}
    for parameter, (role, service) in STAGE_ROLES.items():
        parameters[parameter] = iam.create_role(
            RoleName=f"{project}-{stage}-{role}",
            AssumeRolePolicyDocument=json.dumps(service_trust(service)),
        )["Role"]["Arn"]
    if kms:
        key = aws.client("kms", stage).create_key(Description=f"{stage} artifacts")
        parameters["kms-key-arn"] = key["KeyMetadata"]["Arn"]
    if subnets:
        parameters["subnet-ids"] = ",".join(subnets)
        parameters["security-group-ids"] = "sg-0123456789abcdef0"
    logs = aws.client("logs", stage)
    for group in JOB_LOG_GROUPS:  # infra/target-account makes them (manage_job_log_groups)
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            logs.create_log_group(logGroupName=group)
    ssm = aws.client("ssm", stage)
    for name, value in parameters.items():
        if name not in skip_parameters:
            ssm.put_parameter(
                Name=f"/{project}/{stage}/{name}",
                Value=value,
                Type="StringList" if name.endswith("-ids") else "String",
            )
    return parameters
