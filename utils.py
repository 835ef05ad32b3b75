"""Promotion of an approved model package from the dev registry into a stage account.

Small functions over boto3 clients passed in, so each can be tested against the emulator and
the CLI (``build.py``) stays a thin shell. ``promote`` runs them in an order that never leaves
anything half-made: artifacts are copied and verified before the target package exists, the
package is created only once (a re-run finds it by its source ARN) and a package that ends
``Failed`` is deleted before the error is raised.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from pipelines import s3_locations

STAGES = ("preprod", "prod")
SOURCE_METADATA_KEY = "SourceModelPackageArn"
PROMOTED_DESCRIPTION = "promoted from {arn}"
# Server-side copies: one CopyObject call below the threshold; above it, parallel
# UploadPartCopy calls (CopyObject itself stops at 5 GB). No byte passes through this process.
COPY_CONFIG = TransferConfig(
    multipart_threshold=256 * 2**20, multipart_chunksize=128 * 2**20, max_concurrency=8
)
TERMINAL_PACKAGE_STATES = {"Completed", "Failed"}


# --------------------------------------------------------------------------- errors


class PromotionError(Exception):
    """A failure reported as one line; ``exit_code`` tells the kinds apart for scripts."""

    exit_code = 1


class UsageError(PromotionError):
    exit_code = 2


class NoApprovedPackage(PromotionError):
    exit_code = 3


class GroupNotFound(PromotionError):
    exit_code = 4


class VersionNotPromotable(PromotionError):
    exit_code = 5


class AccessDenied(PromotionError):
    exit_code = 6


class ArtifactMissing(PromotionError):
    exit_code = 7


class StageNotReady(PromotionError):
    exit_code = 8


class TargetPackageFailed(PromotionError):
    exit_code = 9


class CopyVerificationFailed(PromotionError):
    exit_code = 10


class AccountMismatch(PromotionError):
    exit_code = 11


_ACCESS_DENIED_CODES = {
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
    "AuthorizationError",
    "KMS.AccessDeniedException",
}
_NOT_FOUND_CODES = {"ResourceNotFound", "NoSuchKey", "NoSuchBucket", "404", "NotFound"}


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def is_access_denied(error: ClientError) -> bool:
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return error_code(error) in _ACCESS_DENIED_CODES or status == 403


def is_not_found(error: ClientError) -> bool:
    """True only for "does not exist" answers; access denied is never "not found"."""
    if is_access_denied(error):
        return False
    if error_code(error) in _NOT_FOUND_CODES:
        return True
    message = str(error.response.get("Error", {}).get("Message", "")).lower()
    return error_code(error) == "ValidationException" and (
        "does not exist" in message or "not found" in message
    )


@contextmanager
def aws_errors(action: str) -> Iterator[None]:
    """Turn an unexpected ``ClientError`` into a one-line ``PromotionError`` naming ``action``."""
    try:
        yield
    except ClientError as error:
        message = one_line(error.response.get("Error", {}).get("Message") or str(error))
        if is_access_denied(error):
            raise AccessDenied(
                f"access denied while {action}: {message} "
                "(check the role's permissions and the resource's policy)"
            ) from None
        raise PromotionError(f"AWS error while {action}: {error_code(error)}: {message}") from None


def one_line(message: str) -> str:
    """An AWS error message fit for one line (some emulators send a raw XML body)."""
    embedded = re.search(r"<Message>(.*?)</Message>", message, flags=re.DOTALL)
    return " ".join((embedded.group(1) if embedded else message).split())


def client_config() -> Config:
    """Adaptive retries, so throttling slows a deploy down instead of failing it.

    ``AWS_MAX_ATTEMPTS`` still wins when set (tests keep it low against the emulator).
    """
    return Config(
        retries={"mode": "adaptive", "max_attempts": int(os.environ.get("AWS_MAX_ATTEMPTS", "10"))},
        user_agent_extra="sagemaker-batch-mlops",
    )


# --------------------------------------------------------------------------- source


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """An S3 URI of the promotion's inputs; a bad one is the user's to fix (``UsageError``)."""
    try:
        return s3_locations.parse_s3_uri(uri)
    except ValueError as error:
        raise UsageError(str(error)) from None


def resolve_source_package(sagemaker: Any, group: str, version: int | None = None) -> dict:
    """Describe the package to promote: ``version``, or the newest Approved one.

    One ``list_model_packages`` call (filtered to Approved, newest first, one result) whatever
    the group's size; approving an old version after a newer one does not change which is
    newest, and newer Rejected or Pending versions are ignored.
    """
    with aws_errors(f"reading model package group {group!r}"):
        try:
            group_arn = sagemaker.describe_model_package_group(ModelPackageGroupName=group)[
                "ModelPackageGroupArn"
            ]
        except ClientError as error:
            if is_not_found(error):
                raise GroupNotFound(
                    f"model package group {group!r} does not exist in the source account; "
                    "check --model-package-group-name and the source credentials"
                ) from None
            raise
        if version is None:
            summaries = sagemaker.list_model_packages(
                ModelPackageGroupName=group,
                ModelApprovalStatus="Approved",
                SortBy="CreationTime",
                SortOrder="Descending",
                MaxResults=1,
            )["ModelPackageSummaryList"]
            if not summaries:
                raise NoApprovedPackage(
                    f"model package group {group!r} has no Approved package; "
                    "approve a version in the registry first"
                )
            arn = summaries[0]["ModelPackageArn"]
        else:
            arn = group_arn.replace(":model-package-group/", ":model-package/", 1) + f"/{version}"
        try:
            package = sagemaker.describe_model_package(ModelPackageName=arn)
        except ClientError as error:
            if version is not None and is_not_found(error):
                raise VersionNotPromotable(
                    f"model package group {group!r} has no version {version}; "
                    "list the versions in the registry and pick an existing one"
                ) from None
            raise
    status = package.get("ModelApprovalStatus")
    if version is not None and status != "Approved":
        raise VersionNotPromotable(
            f"version {version} of {group!r} is {status}, not Approved; "
            "approve it in the registry before deploying it"
        )
    if package.get("ModelPackageStatus") != "Completed":
        raise VersionNotPromotable(
            f"package {package['ModelPackageArn']} is {package.get('ModelPackageStatus')}, "
            "not Completed; it cannot be deployed"
        )
    return package


def account_of(arn: str) -> str:
    return arn.split(":")[4]


# --------------------------------------------------------------------------- target stage


@dataclass(frozen=True)
class StageSettings:
    """What the target account's base infrastructure publishes in SSM for this stage."""

    artifacts_bucket: str
    sagemaker_role_arn: str
    start_pipeline_role_arn: str
    upload_starter_role_arn: str
    kms_key_arn: str | None = None
    subnet_ids: list[str] = field(default_factory=list)
    security_group_ids: list[str] = field(default_factory=list)


SSM_REQUIRED = {
    "artifacts-bucket": "artifacts_bucket",
    "sagemaker-role-arn": "sagemaker_role_arn",
    # the schedule's and the upload trigger's roles: made by infra/, so deploys write no IAM
    "start-pipeline-role-arn": "start_pipeline_role_arn",
    "upload-starter-role-arn": "upload_starter_role_arn",
}
SSM_OPTIONAL = {"kms-key-arn": "kms_key_arn"}
SSM_LISTS = {"subnet-ids": "subnet_ids", "security-group-ids": "security_group_ids"}


def ssm_prefix(project: str, stage: str) -> str:
    return f"/{project}/{stage}/"


def read_stage_settings(ssm: Any, project: str, stage: str) -> StageSettings:
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
    return StageSettings(**settings)


def check_bucket(s3: Any, bucket: str) -> None:
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


def find_promoted_package(sagemaker: Any, group: str, source_arn: str) -> dict | None:
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


# --------------------------------------------------------------------------- artifacts


@dataclass(frozen=True)
class Artifact:
    """An S3 location a package references: one object, or every object under a prefix."""

    uri: str
    is_prefix: bool = False


def package_artifacts(package: dict) -> list[Artifact]:
    """Every S3 location the package's containers read, in order, without duplicates."""
    found: dict[str, Artifact] = {}
    for container in package.get("InferenceSpecification", {}).get("Containers", []):
        if container.get("ModelDataUrl"):
            found.setdefault(container["ModelDataUrl"], Artifact(container["ModelDataUrl"]))
        source = (container.get("ModelDataSource") or {}).get("S3DataSource")
        if source and source.get("S3Uri"):
            prefix = source.get("S3DataType", "S3Prefix") == "S3Prefix"
            found.setdefault(source["S3Uri"], Artifact(source["S3Uri"], prefix))
        extra = container.get("AdditionalS3DataSource")
        if extra and extra.get("S3Uri"):
            prefix = extra.get("S3DataType") == "S3Prefix"
            found.setdefault(extra["S3Uri"], Artifact(extra["S3Uri"], prefix))
    return list(found.values())


def artifact_prefix(project: str, group: str, version: int) -> str:
    return f"{project}/model-artifacts/{group}/v{version}"


def target_uri(uri: str, bucket: str, prefix: str) -> str:
    """Where a source URI lands: ``s3://<bucket>/<prefix>/<source bucket>/<source key>``."""
    source_bucket, key = parse_s3_uri(uri)
    return f"s3://{bucket}/{prefix}/{source_bucket}/{key}"


@dataclass(frozen=True)
class CopyPlan:
    source_uri: str
    target_uri: str
    size: int
    etag: str


def plan_copies(
    source_s3: Any, artifacts: list[Artifact], bucket: str, prefix: str
) -> list[CopyPlan]:
    """List every object to copy with its size; a missing artifact is an error here."""
    plans = []
    for artifact in artifacts:
        source_bucket, key = parse_s3_uri(artifact.uri)
        with aws_errors(f"reading the source artifact {artifact.uri}"):
            if artifact.is_prefix:
                objects = [
                    (item["Key"], item["Size"], item["ETag"])
                    for page in source_s3.get_paginator("list_objects_v2").paginate(
                        Bucket=source_bucket, Prefix=key
                    )
                    for item in page.get("Contents", [])
                ]
                if not objects:
                    raise ArtifactMissing(
                        f"artifact prefix {artifact.uri} holds no object in the source account"
                    )
            else:
                try:
                    head = source_s3.head_object(Bucket=source_bucket, Key=key)
                except ClientError as error:
                    if is_not_found(error):
                        raise ArtifactMissing(
                            f"artifact {artifact.uri} does not exist in the source bucket; "
                            "the package references a deleted object: register a new version"
                        ) from None
                    raise
                objects = [(key, head["ContentLength"], head["ETag"])]
        for object_key, size, etag in objects:
            uri = f"s3://{source_bucket}/{object_key}"
            plans.append(CopyPlan(uri, target_uri(uri, bucket, prefix), size, etag))
    return plans


def copy_artifacts(
    source_s3: Any,
    target_s3: Any,
    plans: list[CopyPlan],
    kms_key_arn: str | None,
    transfer_config: TransferConfig = COPY_CONFIG,
) -> list[str]:
    """Copy server-side (never through this machine) and verify; return the URIs copied.

    An object already at the target with the same source ETag and size is skipped, so a
    re-run after an interruption copies only what is missing. The target request reads the
    source object directly: the target role needs read access to the dev bucket.
    """
    copied = []
    for plan in plans:
        bucket, key = parse_s3_uri(plan.target_uri)
        if _already_copied(target_s3, bucket, key, plan):
            continue
        source_bucket, source_key = parse_s3_uri(plan.source_uri)
        with aws_errors(f"copying {plan.source_uri} to {plan.target_uri}"):
            target_s3.copy(
                CopySource={"Bucket": source_bucket, "Key": source_key},
                Bucket=bucket,
                Key=key,
                ExtraArgs={
                    **s3_locations.sse_arguments(kms_key_arn, s3_managed_otherwise=True),
                    "Metadata": {"source-uri": plan.source_uri, "source-etag": plan.etag},
                    "MetadataDirective": "REPLACE",
                },
                SourceClient=source_s3,
                Config=transfer_config,
            )
        if not _already_copied(target_s3, bucket, key, plan):
            raise CopyVerificationFailed(
                f"copy of {plan.source_uri} to {plan.target_uri} does not match the source "
                "(size or ETag differs); re-run the deployment"
            )
        copied.append(plan.target_uri)
    return copied


def _already_copied(s3: Any, bucket: str, key: str, plan: CopyPlan) -> bool:
    with aws_errors(f"checking s3://{bucket}/{key}"):
        try:
            head = s3.head_object(Bucket=bucket, Key=key)
        except ClientError as error:
            if is_not_found(error):
                return False
            raise
    return (
        head["ContentLength"] == plan.size
        and head.get("Metadata", {}).get("source-etag") == plan.etag
    )


# --------------------------------------------------------------------------- target package


def rewrite_inference_specification(spec: dict, mapping: Callable[[str], str]) -> dict:
    """The same specification with every S3 URI moved by ``mapping``; all else kept.

    Images, Environment, Framework, content types and instance types are unchanged.
    ``ModelDataETag`` describes the source object and is dropped.
    """
    containers = []
    for container in spec.get("Containers", []):
        copy = {k: v for k, v in container.items() if k != "ModelDataETag"}
        if copy.get("ModelDataUrl"):
            copy["ModelDataUrl"] = mapping(copy["ModelDataUrl"])
        if (copy.get("ModelDataSource") or {}).get("S3DataSource"):
            source = dict(copy["ModelDataSource"]["S3DataSource"])
            source["S3Uri"] = mapping(source["S3Uri"])
            copy["ModelDataSource"] = {**copy["ModelDataSource"], "S3DataSource": source}
        if copy.get("AdditionalS3DataSource"):
            extra = dict(copy["AdditionalS3DataSource"])
            extra["S3Uri"] = mapping(extra["S3Uri"])
            copy["AdditionalS3DataSource"] = extra
        containers.append(copy)
    return {**spec, "Containers": containers}


def ensure_group(sagemaker: Any, group: str, description: str, tags: list[dict]) -> None:
    with aws_errors(f"creating model package group {group!r} in the target account"):
        try:
            sagemaker.describe_model_package_group(ModelPackageGroupName=group)
            return
        except ClientError as error:
            if not is_not_found(error):
                raise
        sagemaker.create_model_package_group(
            ModelPackageGroupName=group, ModelPackageGroupDescription=description, Tags=tags
        )


def create_target_package(
    sagemaker: Any,
    group: str,
    source: dict,
    inference_specification: dict,
    metadata: dict[str, str],
    tags: list[dict],
    poll_seconds: float = 5.0,
    timeout_seconds: float = 1800.0,
) -> dict:
    """Create the Approved target package and wait until it is ``Completed``.

    A package that ends ``Failed`` is deleted (nothing half-made stays behind) and its
    failure reason raised.
    """
    with aws_errors(f"creating the model package in {group!r} in the target account"):
        arn = sagemaker.create_model_package(
            ModelPackageGroupName=group,
            ModelPackageDescription=PROMOTED_DESCRIPTION.format(arn=source["ModelPackageArn"]),
            InferenceSpecification=inference_specification,
            ModelApprovalStatus="Approved",
            CustomerMetadataProperties=metadata,
            Tags=tags,
            # one token per promotion attempt: a retried request never makes two packages
            ClientToken=str(uuid.uuid4()),
            **{k: source[k] for k in ("Domain", "Task", "MetadataProperties") if source.get(k)},
        )["ModelPackageArn"]
    return wait_for_package(sagemaker, arn, poll_seconds, timeout_seconds)


def wait_for_package(
    sagemaker: Any, arn: str, poll_seconds: float = 5.0, timeout_seconds: float = 1800.0
) -> dict:
    deadline = time.monotonic() + timeout_seconds
    with aws_errors(f"waiting for model package {arn}"):
        while True:
            package = sagemaker.describe_model_package(ModelPackageName=arn)
            status = package.get("ModelPackageStatus")
            if status == "Completed":
                return package
            if status == "Failed":
                reason = _failure_reason(package)
                sagemaker.delete_model_package(ModelPackageName=arn)
                raise TargetPackageFailed(
                    f"target model package {arn} ended Failed ({reason}); it was deleted, "
                    "fix the cause and re-run"
                )
            if time.monotonic() > deadline:
                raise TargetPackageFailed(
                    f"target model package {arn} still {status} after {timeout_seconds:.0f} s; "
                    "re-run to keep waiting"
                )
            time.sleep(poll_seconds)


def _failure_reason(package: dict) -> str:
    details = package.get("ModelPackageStatusDetails") or {}
    reasons = [
        f"{item.get('Name')}: {item.get('FailureReason') or item.get('Status')}"
        for kind in ("ValidationStatuses", "ImageScanStatuses")
        for item in details.get(kind, [])
        if item.get("Status") == "Failed"
    ]
    return "; ".join(reasons) or "no reason given"


# --------------------------------------------------------------------------- stage files


def content_key(prefix: str, filename: str, body: bytes) -> str:
    """``<prefix>/<sha256 of body, 16 hex>/<filename>``: changes exactly when the bytes do."""
    return f"{prefix}/{hashlib.sha256(body).hexdigest()[:16]}/{filename}"


def upload_if_absent(
    s3: Any, bucket: str, key: str, body: bytes, kms_key_arn: str | None, content_type: str
) -> str:
    """Upload ``body`` unless an object of that content-addressed key already exists."""
    with aws_errors(f"uploading s3://{bucket}/{key}"):
        try:
            s3.head_object(Bucket=bucket, Key=key)
        except ClientError as error:
            if not is_not_found(error):
                raise
            s3.put_object(
                Bucket=bucket,
                Key=key,
                Body=body,
                ContentType=content_type,
                **s3_locations.sse_arguments(kms_key_arn, s3_managed_otherwise=True),
            )
    return f"s3://{bucket}/{key}"


def deployment_record_key(project: str, stage: str) -> str:
    """Where the stage template records the model it deployed (``aws_s3_object``)."""
    return f"{project}/deployments/{stage}/deployed-model.json"


def previous_model(s3: Any, bucket: str, project: str, stage: str, model_name: str) -> dict | None:
    """The model the stage ran before this promotion, which the next deploy must keep.

    A run started before the deploy names that model in its ``BatchTransform`` step, so the
    template keeps it until the deployment after next. Re-deploying the same version keeps
    the one kept last time. None on a first deployment.
    """
    key = deployment_record_key(project, stage)
    with aws_errors(f"reading the deployment record s3://{bucket}/{key}"):
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as error:
            if is_not_found(error):
                return None
            raise
    try:
        record = json.loads(body)
        current = record["current"]
        return current if current["model_name"] != model_name else record.get("previous")
    except (ValueError, KeyError, TypeError):
        raise StageNotReady(
            f"the deployment record s3://{bucket}/{key} is not what batch-config-template.tf "
            "writes; restore it from its previous version (the bucket is versioned) or delete it"
        ) from None


def load_stage_config(path: Path, stage: str) -> dict[str, Any]:
    """The stage file's settings (``pre-prod-config.tfvars.json`` / ``prod-...``)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"stage config {path} does not exist; pass --config") from None
    except json.JSONDecodeError as error:
        raise UsageError(
            f"stage config {path} is not valid JSON: {error.msg} at line {error.lineno}"
        ) from None
    if not isinstance(document, dict):
        raise UsageError(f"stage config {path} must hold a JSON object")
    if document.get("environment", stage) != stage:
        raise UsageError(
            f"stage config {path} is for environment {document['environment']!r}, "
            f"not {stage!r}; pass the matching --config"
        )
    return document


def resource_name(*parts: str, limit: int = 63) -> str:
    """A SageMaker-safe name (letters, digits, hyphens), shortened with a hash if too long."""
    name = re.sub(r"[^a-zA-Z0-9-]+", "-", "-".join(parts)).strip("-")
    name = re.sub(r"-{2,}", "-", name)
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9].rstrip('-')}-{digest}"


def promotion_metadata(source: dict, now: datetime | None = None) -> dict[str, str]:
    """What the target package records about where it came from."""
    source_arn = source["ModelPackageArn"]
    inherited = dict(source.get("CustomerMetadataProperties") or {})
    return {
        **inherited,
        SOURCE_METADATA_KEY: source_arn,
        "SourceAccount": account_of(source_arn),
        "SourceModelPackageVersion": str(source.get("ModelPackageVersion", "")),
        "PromotedAt": (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


# --------------------------------------------------------------------------- the promotion


@dataclass(frozen=True)
class Clients:
    """boto3 clients: read access in the dev account, deploy access in the target account."""

    source_sagemaker: Any
    source_s3: Any
    target_sagemaker: Any
    target_s3: Any
    target_ssm: Any


@dataclass(frozen=True)
class PromotionRequest:
    stage: str
    group: str
    project_name: str
    region: str
    stage_config: dict[str, Any]
    processing_script: Path
    feature_schema: Path
    project_id: str | None = None
    version: int | None = None
    dry_run: bool = False
    # write the tfvars a deployment would apply, but nothing to AWS (the plan before a gate)
    plan_only: bool = False


@dataclass
class PromotionResult:
    source: dict
    settings: StageSettings
    copies: list[CopyPlan]
    target_package_arn: str | None = None
    reused: bool = False
    copied: list[str] = field(default_factory=list)
    tfvars: dict[str, Any] = field(default_factory=dict)
    previous_model: dict | None = None


def model_name(group: str, stage: str, version: int) -> str:
    """The stage's SageMaker model for one version (the template keys models by it)."""
    return resource_name(group, stage, f"v{version}")


def check_group_name(group: str, stage: str) -> None:
    """Refuse a group whose model names would be shortened with a hash.

    The stage's models are ``<group>-<stage>-v<version>`` (63 characters at most), and the
    roles in infra/ allow exactly ``model/<group>-<stage>-*``: a hashed name falls outside it,
    and the first deploy would fail on AWS (the emulator does not evaluate IAM).
    """
    longest = model_name(group, stage, 99999)
    if not longest.startswith(f"{group}-{stage}-"):
        limit = 63 - len(f"-{stage}-v99999")
        raise UsageError(
            f"model package group name {group!r} is {len(group)} characters: the stage's model "
            f"names <group>-{stage}-v<version> need it to be {limit} or fewer letters, digits "
            "and hyphens; register the models in a group with a shorter name"
        )


def promote(clients: Clients, request: PromotionRequest) -> PromotionResult:
    """Make the newest approved (or the requested) model deployable in the target stage.

    Returns what Terraform needs; in a dry run, only what would be done (nothing is written).
    """
    check_group_name(request.group, request.stage)
    source = resolve_source_package(clients.source_sagemaker, request.group, request.version)
    settings = read_stage_settings(clients.target_ssm, request.project_name, request.stage)
    from pipelines.batch_inference import pipeline as batch_pipeline

    refusal = batch_pipeline.volume_key_refusal(
        settings.kms_key_arn,
        {
            name: request.stage_config.get(name)
            for name in ("processing_instance_type", "transform_instance_type")
        },
    )
    if refusal:
        raise UsageError(f"stage config: {refusal}")
    check_bucket(clients.target_s3, settings.artifacts_bucket)
    existing = find_promoted_package(
        clients.target_sagemaker, request.group, source["ModelPackageArn"]
    )
    version = int(source["ModelPackageVersion"])
    # read before any write, so an unreadable deployment record changes nothing
    previous = previous_model(
        clients.target_s3,
        settings.artifacts_bucket,
        request.project_name,
        request.stage,
        model_name(request.group, request.stage, version),
    )
    prefix = artifact_prefix(request.project_name, request.group, version)
    copies = (
        []
        if existing
        else plan_copies(
            clients.source_s3, package_artifacts(source), settings.artifacts_bucket, prefix
        )
    )
    result = PromotionResult(
        source=source, settings=settings, copies=copies, previous_model=previous
    )
    if existing:
        result.target_package_arn, result.reused = existing["ModelPackageArn"], True
    if request.dry_run:
        return result
    if request.plan_only:
        if not existing:
            result.target_package_arn = pending_package_arn(request, settings, version)
        result.tfvars = publish_stage_files(
            clients.target_s3, request, settings, result, write=False
        )
        return result

    if not existing:
        result.copied = copy_artifacts(
            clients.source_s3, clients.target_s3, copies, settings.kms_key_arn
        )
        tags = project_tags(request)
        ensure_group(
            clients.target_sagemaker,
            request.group,
            f"Models promoted from {account_of(source['ModelPackageArn'])} for {request.stage}",
            tags,
        )
        package = create_target_package(
            clients.target_sagemaker,
            request.group,
            source,
            rewrite_inference_specification(
                source["InferenceSpecification"],
                lambda uri: target_uri(uri, settings.artifacts_bucket, prefix),
            ),
            promotion_metadata(source),
            tags,
        )
        result.target_package_arn = package["ModelPackageArn"]
    result.tfvars = publish_stage_files(clients.target_s3, request, settings, result)
    return result


def pending_package_arn(request: PromotionRequest, settings: StageSettings, version: int) -> str:
    """What a plan shows for a package the deployment will promote (its version is only
    known once the target registry assigns it): a model-package ARN that names its source."""
    partition, account = (
        settings.sagemaker_role_arn.split(":")[1],
        account_of(settings.sagemaker_role_arn),
    )
    return (
        f"arn:{partition}:sagemaker:{request.region}:{account}:model-package/"
        f"{request.group.lower()}/promoted-at-apply-from-v{version}"
    )


def project_tags(request: PromotionRequest) -> list[dict[str, str]]:
    tags = [
        {"Key": "sagemaker:project-name", "Value": request.project_name},
        {"Key": "environment", "Value": request.stage},
    ]
    if request.project_id:
        tags.append({"Key": "sagemaker:project-id", "Value": request.project_id})
    return tags


def publish_stage_files(
    s3: Any,
    request: PromotionRequest,
    settings: StageSettings,
    result: PromotionResult,
    *,
    write: bool = True,
) -> dict[str, Any]:
    """Upload the processing code, schema and pipeline definition; return the tfvars.

    Every upload is content-addressed, so the definition's key (and with it the Terraform
    pipeline resource) changes exactly when the definition does. ``write=False`` computes
    the same keys and uploads nothing (a plan).
    """

    from pipelines.batch_inference import pipeline as batch_pipeline

    config = request.stage_config
    bucket, project, kms = settings.artifacts_bucket, request.project_name, settings.kms_key_arn

    def store(prefix: str, name: str, body: bytes, content_type: str) -> str:
        key = content_key(prefix, name, body)
        if write:
            upload_if_absent(s3, bucket, key, body, kms, content_type)
        return f"s3://{bucket}/{key}"

    code_url = store(
        f"{project}/code/preprocess",
        "preprocess.py",
        request.processing_script.read_bytes(),
        "text/x-python",
    )
    schema_url = store(
        f"{project}/code/feature-schema",
        batch_pipeline.SCHEMA_FILE_NAME,
        request.feature_schema.read_bytes(),
        "application/json",
    )
    version = int(result.source["ModelPackageVersion"])
    name = model_name(request.group, request.stage, version)
    pipeline_name = config.get("pipeline_name") or resource_name(
        project, request.stage, "batch-inference", limit=256
    )
    data_root = f"s3://{bucket}/{project}/batch-inference"
    input_url = config.get("input_data_url") or f"{data_root}/input/"
    output_url = config.get("output_data_url") or f"{data_root}/output"
    pipeline = batch_pipeline.get_pipeline(
        region=request.region,
        role=settings.sagemaker_role_arn,
        default_bucket=bucket,
        pipeline_name=pipeline_name,
        base_job_prefix=resource_name(project, request.stage, limit=30),
        project_name=project,
        model_name=name,
        input_data_url=input_url,
        output_data_url=output_url,
        feature_schema_url=schema_url,
        processing_code_url=code_url,
        kms_key_id=kms,
        subnets=settings.subnet_ids or None,
        security_group_ids=settings.security_group_ids or None,
    )
    definition = json.dumps(json.loads(pipeline.definition()), indent=2, sort_keys=True).encode()
    definition_url = store(
        f"{project}/pipelines/{request.stage}", "definition.json", definition, "application/json"
    )
    definition_key = parse_s3_uri(definition_url)[1]
    return {
        **config,
        "environment": request.stage,
        "region": request.region,
        "project_name": project,
        "project_id": request.project_id or "",
        "model_package_group_name": request.group,
        "model_package_arn": result.target_package_arn,
        "source_model_package_arn": result.source["ModelPackageArn"],
        "model_version": version,
        "model_name": name,
        "previous_model": result.previous_model,
        "artifacts_bucket": bucket,
        "sagemaker_role_arn": settings.sagemaker_role_arn,
        "start_pipeline_role_arn": settings.start_pipeline_role_arn,
        "upload_starter_role_arn": settings.upload_starter_role_arn,
        "kms_key_arn": kms,
        "subnet_ids": settings.subnet_ids,
        "security_group_ids": settings.security_group_ids,
        "pipeline_name": pipeline_name,
        "pipeline_definition_s3_key": definition_key,
        "job_steps": batch_pipeline.job_steps(json.loads(definition)),
        "input_data_url": input_url,
        "output_data_url": output_url,
        "feature_schema_url": schema_url,
    }
