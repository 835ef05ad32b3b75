"""The package in the stage's registry: created once, found again by its source ARN."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError

from promotion.errors import TargetPackageFailed, aws_errors, is_not_found
from promotion.names import account_of

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker.type_defs import (
        DescribeModelPackageOutputTypeDef,
        InferenceSpecificationTypeDef,
        TagTypeDef,
    )

SOURCE_METADATA_KEY = "SourceModelPackageArn"


PROMOTED_DESCRIPTION = "promoted from {arn}"


def rewrite_inference_specification(
    spec: Mapping[str, Any], mapping: Callable[[str], str]
) -> dict[str, Any]:
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


def ensure_group(
    sagemaker: SageMakerClient, group: str, description: str, tags: Sequence[TagTypeDef]
) -> None:
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


def rewrite_s3_uris(document: Any, mapping: Callable[[str], str]) -> Any:
    """The same nested document with every ``S3Uri`` value moved by ``mapping``."""
    if isinstance(document, dict):
        return {
            k: mapping(v) if k == "S3Uri" and isinstance(v, str) else rewrite_s3_uris(v, mapping)
            for k, v in document.items()
        }
    if isinstance(document, list):
        return [rewrite_s3_uris(item, mapping) for item in document]
    return document


def create_target_package(
    sagemaker: SageMakerClient,
    group: str,
    source: DescribeModelPackageOutputTypeDef,
    inference_specification: Mapping[str, Any],
    metadata: dict[str, str],
    poll_seconds: float = 5.0,
    timeout_seconds: float = 1800.0,
    quality: Mapping[str, Any] | None = None,
) -> DescribeModelPackageOutputTypeDef:
    """Create the Approved target package and wait until it is ``Completed``.

    ``quality`` holds the source's ``ModelMetrics`` / ``DriftCheckBaselines`` with their
    URIs moved to the stage's copies.

    A package that ends ``Failed`` is deleted (nothing half-made stays behind) and its
    failure reason raised.
    """
    with aws_errors(f"creating the model package in {group!r} in the target account"):
        arn = sagemaker.create_model_package(
            ModelPackageGroupName=group,
            ModelPackageDescription=PROMOTED_DESCRIPTION.format(arn=source["ModelPackageArn"]),
            # the source's own specification with moved URIs: the service's shape already
            InferenceSpecification=cast("InferenceSpecificationTypeDef", inference_specification),
            ModelApprovalStatus="Approved",
            CustomerMetadataProperties=metadata,
            # no Tags: a versioned package "uses the tags associated with the model group"
            # and "you cannot supply a tag argument" (CreateModelPackage API reference)
            # one token per promotion attempt: a retried request never makes two packages
            ClientToken=str(uuid.uuid4()),
            **_copied_fields(source),
            **(quality or {}),
        )["ModelPackageArn"]
    return wait_for_package(sagemaker, arn, poll_seconds, timeout_seconds)


def _copied_fields(source: DescribeModelPackageOutputTypeDef) -> dict[str, Any]:
    """The source's Domain, Task and MetadataProperties, where it has them."""
    fields = {
        "Domain": source.get("Domain"),
        "Task": source.get("Task"),
        "MetadataProperties": source.get("MetadataProperties"),
    }
    return {name: value for name, value in fields.items() if value}


def wait_for_package(
    sagemaker: SageMakerClient, arn: str, poll_seconds: float = 5.0, timeout_seconds: float = 1800.0
) -> DescribeModelPackageOutputTypeDef:
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


def _failure_reason(package: DescribeModelPackageOutputTypeDef) -> str:
    details = package.get("ModelPackageStatusDetails")
    statuses = (
        [*details.get("ValidationStatuses", []), *details.get("ImageScanStatuses", [])]
        if details
        else []
    )
    reasons = [
        f"{item.get('Name')}: {item.get('FailureReason') or item.get('Status')}"
        for item in statuses
        if item.get("Status") == "Failed"
    ]
    return "; ".join(reasons) or "no reason given"


def promotion_metadata(
    source: DescribeModelPackageOutputTypeDef, now: datetime | None = None
) -> dict[str, str]:
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
