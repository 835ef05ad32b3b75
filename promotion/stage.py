"""The target stage as infra/ made it: the SSM contract, the bucket, what was deployed before."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from promotion.errors import StageNotReady, aws_errors, is_not_found
from promotion.target_package import PROMOTED_DESCRIPTION, SOURCE_METADATA_KEY

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker.type_defs import DescribeModelPackageOutputTypeDef
    from mypy_boto3_ssm import SSMClient


@dataclass(frozen=True)
class StageSettings:
    """What the target account's base infrastructure publishes in SSM for this stage."""

    artifacts_bucket: str
    sagemaker_role_arn: str
    start_pipeline_role_arn: str
    upload_starter_role_arn: str
    kms_key_arn: str | None = None
    # the shadow run's execution role (writes only under <output>/_shadow/); None where the
    # account's infra/target-account predates it: the shadow is then skipped
    shadow_role_arn: str | None = None
    subnet_ids: list[str] = field(default_factory=list)
    security_group_ids: list[str] = field(default_factory=list)
    # the prefixes outside the bucket the stage's roles may read (infra/target-account's
    # external_inputs): {"url", "account_id", "kms_key_arn"} each
    external_inputs: list[dict[str, Any]] = field(default_factory=list)


SSM_REQUIRED = {
    "artifacts-bucket": "artifacts_bucket",
    "sagemaker-role-arn": "sagemaker_role_arn",
    # the schedule's and the upload trigger's roles: made by infra/, so deploys write no IAM
    "start-pipeline-role-arn": "start_pipeline_role_arn",
    "upload-starter-role-arn": "upload_starter_role_arn",
}


SSM_OPTIONAL = {"kms-key-arn": "kms_key_arn", "shadow-role-arn": "shadow_role_arn"}


SSM_LISTS = {"subnet-ids": "subnet_ids", "security-group-ids": "security_group_ids"}


# written only when the base allows inputs outside the stage's bucket
SSM_EXTERNAL_INPUTS = "external-inputs"


def ssm_prefix(project: str, stage: str) -> str:
    return f"/{project}/{stage}/"


def read_stage_settings(ssm: SSMClient, project: str, stage: str) -> StageSettings:
    """Read ``/<project>/<stage>/*`` from SSM (one paginated call)."""
    prefix = ssm_prefix(project, stage)
    values: dict[str, str] = {}
    with aws_errors(f"reading SSM parameters under {prefix}"):
        for page in ssm.get_paginator("get_parameters_by_path").paginate(
            Path=prefix, Recursive=False, WithDecryption=True
        ):
            for parameter in page["Parameters"]:
                values[parameter["Name"][len(prefix) :]] = parameter["Value"]
    missing = [prefix + name for name in SSM_REQUIRED if not values.get(name)]
    if missing:
        raise StageNotReady(
            f"SSM parameter(s) {', '.join(missing)} missing in the target account; "
            "apply the stage's base infrastructure (infra/) first"
        )
    settings: dict[str, Any] = {attr: values[name] for name, attr in SSM_REQUIRED.items()}
    settings |= {attr: values.get(name) or None for name, attr in SSM_OPTIONAL.items()}
    settings |= {
        attr: [v.strip() for v in values.get(name, "").split(",") if v.strip()]
        for name, attr in SSM_LISTS.items()
    }
    settings["external_inputs"] = _external_inputs(values.get(SSM_EXTERNAL_INPUTS), prefix)
    return StageSettings(**settings)


def _external_inputs(value: str | None, prefix: str) -> list[dict[str, Any]]:
    """The parameter as infra/target-account writes it (a JSON list of url, account_id,
    kms_key_arn), or StageNotReady: a hand-edited one must not widen or break the check."""
    if not value:
        return []
    try:
        inputs = json.loads(value)
        if isinstance(inputs, list) and all(
            isinstance(i, dict)
            and isinstance(i.get("url"), str)
            and i["url"].startswith("s3://")
            and i["url"].endswith("/")
            and isinstance(i.get("account_id"), str)
            for i in inputs
        ):
            return [
                {
                    "url": i["url"],
                    "account_id": i["account_id"],
                    "kms_key_arn": i.get("kms_key_arn"),
                }
                for i in inputs
            ]
    except ValueError:
        pass
    raise StageNotReady(
        f"SSM parameter {prefix}{SSM_EXTERNAL_INPUTS} is not what infra/target-account writes "
        "(a JSON list of url, account_id, kms_key_arn); apply the stage's base infrastructure "
        "(infra/) again"
    )


def check_bucket(s3: S3Client, bucket: str) -> None:
    with aws_errors(f"checking the artifacts bucket {bucket!r}"):
        try:
            s3.head_bucket(Bucket=bucket)
        except ClientError as error:
            if is_not_found(error):
                raise StageNotReady(
                    f"artifacts bucket {bucket!r} (from SSM) does not exist in the target "
                    "account; apply the stage's base infrastructure (infra/) first"
                ) from None
            raise


def find_promoted_package(
    sagemaker: SageMakerClient, group: str, source_arn: str
) -> DescribeModelPackageOutputTypeDef | None:
    """The target package already promoted from ``source_arn``, if any.

    Matched on the description (which the listing returns, so no per-package call) and
    confirmed on ``CustomerMetadataProperties``. The list API is consistent, unlike Search,
    so a re-run right after a promotion finds it. Failed packages do not count.
    """
    wanted = PROMOTED_DESCRIPTION.format(arn=source_arn)
    with aws_errors(f"listing model packages of {group!r} in the target account"):
        try:
            pages = sagemaker.get_paginator("list_model_packages").paginate(
                ModelPackageGroupName=group, SortBy="CreationTime", SortOrder="Descending"
            )
            for page in pages:
                for summary in page["ModelPackageSummaryList"]:
                    if summary.get("ModelPackageDescription") != wanted:
                        continue
                    package = sagemaker.describe_model_package(
                        ModelPackageName=summary["ModelPackageArn"]
                    )
                    metadata = package.get("CustomerMetadataProperties") or {}
                    if metadata.get(SOURCE_METADATA_KEY) == source_arn and package.get(
                        "ModelPackageStatus"
                    ) not in ("Failed", "Deleting"):
                        return package
        except ClientError as error:
            if is_not_found(error):
                return None
            raise
    return None


def deployment_record_key(project: str, stage: str) -> str:
    """Where the stage template records the model it deployed (``aws_s3_object``)."""
    return f"{project}/deployments/{stage}/deployed-model.json"


@dataclass(frozen=True)
class DeployedState:
    """What the stage's deployment record says this promotion must keep."""

    # the model the stage ran before this promotion (runs started with it may still need it)
    previous_model: dict | None
    # the endpoint configuration the endpoint serves now, kept until the new one serves
    endpoint_config: dict | None
    # the version the stage runs now (the shadow run's champion), None before the first
    current_version: int | None = None


def deployed_state(
    s3: S3Client, bucket: str, project: str, stage: str, model_name: str
) -> DeployedState:
    """What this promotion must keep of the stage's current deployment.

    A run started before the deploy names the previous model in its ``BatchTransform`` step,
    so the template keeps it until the deployment after next; re-deploying the same version
    keeps the one kept last time. The endpoint's current configuration is kept until the
    endpoint serves the new one (a rolled-back update leaves it there). Nothing on a first
    deployment.
    """
    key = deployment_record_key(project, stage)
    with aws_errors(f"reading the deployment record s3://{bucket}/{key}"):
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as error:
            if is_not_found(error):
                return DeployedState(None, None)
            raise
    try:
        record = json.loads(body)
        current = dict(record["current"])
        endpoint_config = current.pop("endpoint_config", None)
        previous = current if current["model_name"] != model_name else record.get("previous")
        if previous is not None:
            previous = {k: v for k, v in previous.items() if k != "endpoint_config"}
        return DeployedState(previous, endpoint_config, int(current["model_version"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        raise StageNotReady(
            f"the deployment record s3://{bucket}/{key} is not what batch-config-template.tf "
            "writes; restore it from its previous version (the bucket is versioned) or delete it"
        ) from None


def previous_specification(sagemaker: SageMakerClient, previous: dict | None) -> dict | None:
    """The inference specification of the kept model's package (its images stay pullable
    while runs started before this deployment finish), or None."""
    if not previous or not previous.get("model_package_arn"):
        return None
    arn = previous["model_package_arn"]
    with aws_errors(f"reading the kept model's package {arn}"):
        try:
            package = sagemaker.describe_model_package(ModelPackageName=arn)
        except ClientError as error:
            if is_not_found(error):
                return None
            raise
    return dict(package.get("InferenceSpecification") or {})


# what Application Auto Scaling acts as for SageMaker endpoints: one per account, which the
# deploy role may not create (infra/target-account's create_endpoint_scaling_role does)
ENDPOINT_SCALING_ROLE = "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"


def check_endpoint_scaling_role(iam: IAMClient, stage_config: dict[str, Any]) -> None:
    """Refuse an auto-scaled endpoint in an account without the service-linked role it needs.

    Registering the first scalable target would create that role, which the deploy role may
    not (it writes no IAM roles): the apply would fail with AccessDenied after promotion.
    """
    endpoint = stage_config.get("endpoint")
    if not endpoint or not endpoint.get("enabled", True) or endpoint.get("serverless"):
        return  # no endpoint, or one that scales by itself
    if endpoint.get("max_instance_count", 2) <= endpoint.get("min_instance_count", 1):
        return  # a fixed fleet registers no scalable target
    with aws_errors(f"looking for the endpoint scaling role {ENDPOINT_SCALING_ROLE}"):
        try:
            iam.get_role(RoleName=ENDPOINT_SCALING_ROLE)
            return
        except ClientError as error:
            if not is_not_found(error):
                raise
    raise StageNotReady(
        f"the endpoint scales (max_instance_count > min_instance_count), which needs the "
        f"account's service-linked role {ENDPOINT_SCALING_ROLE}; it does not exist: apply "
        "infra/target-account with create_endpoint_scaling_role = true (once per account), or "
        "set endpoint.max_instance_count to min_instance_count"
    )
