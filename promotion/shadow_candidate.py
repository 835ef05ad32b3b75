"""The candidate's SageMaker Model in the stage before its approval, for the shadow run.

The prod plan job runs before anyone approves the version, so its package is not in the
stage's registry yet (that is the approved deployment's first write). The shadow run
(``pipelines/shadow_run.py``) still needs the version as a Model in the stage, so this
creates ``<group>-<stage>-c<N>`` from the dev package's containers: its artifacts copied under
``<project>/shadow-models/v<N>/`` (never the ``model-artifacts/`` prefix the deployed models
read), its images pinned by digest in the stage's registry, run as the shadow role (which may
write only under the output's ``_shadow/`` prefix), isolated from the network and in the
stage's subnets as the template's models are. Nothing the schedule or Terraform reads
changes. A version already promoted (a rollback) uses its stage package instead of copies.

A candidate lives until it is superseded: the next plan deletes every other candidate and its
copies (a rejected one among them), and the approved deployment deletes its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from common.stage_model import STAGE_MODEL_ENVIRONMENT
from pipelines import shadow_settings
from promotion.artifacts import copy_artifacts, package_artifacts, plan_copies, target_uri
from promotion.errors import aws_errors, is_not_found
from promotion.images import retarget, wait_until_replicated
from promotion.names import candidate_model_name
from promotion.target_package import rewrite_inference_specification

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker.type_defs import DescribeModelPackageOutputTypeDef

    from promotion.request import Clients, PromotionRequest, PromotionResult

# what CreateModel's ContainerDefinition takes of a package's container (botocore's model)
CONTAINER_FIELDS = ("ContainerHostname", "Image", "ModelDataUrl", "ModelDataSource", "Environment")


@dataclass(frozen=True)
class Candidate:
    """What happened to the stage's candidate: ``action`` is created, exists or skipped."""

    action: str
    name: str
    detail: str = ""
    deleted: tuple[str, ...] = ()

    def line(self) -> str:
        if self.action == "skipped":
            return f"shadow candidate: skipped: {self.detail}"
        removed = f"; removed {', '.join(self.deleted)}" if self.deleted else ""
        return f"shadow candidate: {self.action} {self.name}{self.detail}{removed}"


def shadow_prefix(project: str, version: int) -> str:
    return f"{project}/shadow-models/v{version}"


def skip_reason(
    request: PromotionRequest, result: PromotionResult, deployed_version: int | None
) -> str | None:
    """Why no candidate is made (None: make it)."""
    version = int(result.source["ModelPackageVersion"])
    if not result.settings.shadow_role_arn:
        return (
            f"the {request.stage} account has no shadow role (SSM shadow-role-arn): apply "
            "infra/target-account again to add it"
        )
    if shadow_settings.stage_values(request.stage_config)[shadow_settings.DAYS] == 0:
        return "shadow_days is 0 in the stage file"
    if deployed_version is None:
        return f"nothing is deployed in {request.stage} yet: no scored day to compare with"
    if deployed_version == version:
        return f"version {version} is the one {request.stage} runs"
    return None


def prepare(
    clients: Clients,
    request: PromotionRequest,
    result: PromotionResult,
    existing: DescribeModelPackageOutputTypeDef | None,
    deployed_version: int | None,
) -> str:
    """The plan job's step: the candidate made, found or skipped, as one line."""
    reason = skip_reason(request, result, deployed_version)
    if reason:
        return Candidate("skipped", "", reason).line()
    return create(clients, request, result, existing).line()


def create(
    clients: Clients,
    request: PromotionRequest,
    result: PromotionResult,
    existing: DescribeModelPackageOutputTypeDef | None,
) -> Candidate:
    """Make (or find) the candidate Model and delete the stage's other candidates."""
    settings, source = result.settings, result.source
    version = int(source["ModelPackageVersion"])
    name = candidate_model_name(request.group, request.stage, version)
    deleted = remove_candidates(
        clients.target_sagemaker, clients.target_s3, request, settings.artifacts_bucket, keep=name
    )
    if _model_exists(clients.target_sagemaker, name):
        return Candidate("exists", name, deleted=deleted)
    if existing:  # promoted before (a rollback): the stage's own package, nothing to copy
        containers: list[dict[str, Any]] = [{"ModelPackageName": existing["ModelPackageArn"]}]
        detail = f" from {existing['ModelPackageArn']}"
    else:
        wait_until_replicated(clients.target_ecr, result.images, request.image_wait_seconds)
        prefix = shadow_prefix(request.project_name, version)
        copies = plan_copies(
            clients.source_s3, package_artifacts(source), settings.artifacts_bucket, prefix
        )
        copy_artifacts(clients.source_s3, clients.target_s3, copies, settings.kms_key_arn)
        spec = retarget(
            rewrite_inference_specification(
                source["InferenceSpecification"],
                lambda uri: target_uri(uri, settings.artifacts_bucket, prefix),
            ),
            result.images,
        )
        containers = [{k: c[k] for k in CONTAINER_FIELDS if k in c} for c in spec["Containers"]]
        detail = f" (artifacts under s3://{settings.artifacts_bucket}/{prefix}/)"
    for container in containers:
        container["Environment"] = {**container.get("Environment", {}), **STAGE_MODEL_ENVIRONMENT}
    request_args: dict[str, Any] = {
        "ModelName": name,
        "ExecutionRoleArn": settings.shadow_role_arn,
        "Containers": containers,
        "EnableNetworkIsolation": True,
        "Tags": [
            {"Key": "shadow", "Value": "true"},
            {"Key": "model-version", "Value": str(version)},
            {"Key": "source-model-package", "Value": source["ModelPackageArn"]},
        ],
    }
    if settings.subnet_ids:
        request_args["VpcConfig"] = {
            "Subnets": settings.subnet_ids,
            "SecurityGroupIds": settings.security_group_ids,
        }
    with aws_errors(f"creating the shadow candidate's model {name}"):
        clients.target_sagemaker.create_model(**request_args)
    return Candidate("created", name, detail, deleted)


def _model_exists(sagemaker: SageMakerClient, name: str) -> bool:
    with aws_errors(f"looking for the model {name}"):
        try:
            sagemaker.describe_model(ModelName=name)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ValidationException":
                return False  # SageMaker's answer for a model that does not exist
            raise
    return True


def remove_candidates(
    sagemaker: SageMakerClient,
    s3: S3Client,
    request: PromotionRequest,
    bucket: str,
    *,
    keep: str | None = None,
    only: str | None = None,
) -> tuple[str, ...]:
    """Delete the stage's candidates (all but ``keep``, or just ``only``) with their copies."""
    base = candidate_model_name(request.group, request.stage, 1)[:-1]  # "<group>-<stage>-c"
    pattern = re.compile(rf"{re.escape(base)}(\d+)")
    if only is not None:
        names = [only] if _model_exists(sagemaker, only) else []
    else:
        with aws_errors("listing the stage's shadow candidates"):
            pages = sagemaker.get_paginator("list_models").paginate(NameContains=base)
            names = [m["ModelName"] for page in pages for m in page["Models"]]
    removed = []
    for name in names:
        found = pattern.fullmatch(name)
        if not found or name == keep:
            continue
        with aws_errors(f"deleting the shadow candidate {name}"):
            try:
                sagemaker.delete_model(ModelName=name)
            except ClientError as error:
                if not is_not_found(error) and "Could not find" not in str(error):
                    raise
        _delete_prefix(s3, bucket, shadow_prefix(request.project_name, int(found.group(1))))
        removed.append(name)
    return tuple(removed)


def _delete_prefix(s3: S3Client, bucket: str, prefix: str) -> None:
    with aws_errors(f"deleting s3://{bucket}/{prefix}/"):
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=f"{prefix}/"
        ):
            keys: list[ObjectIdentifierTypeDef] = [
                {"Key": item["Key"]} for item in page.get("Contents", [])
            ]
            if keys:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
