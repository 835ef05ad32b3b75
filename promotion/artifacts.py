"""The package's artifacts, copied server-side into the stage's bucket and verified."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from common import s3_locations
from promotion.errors import (
    AccessDenied,
    ArtifactMissing,
    CopyVerificationFailed,
    aws_errors,
    is_not_found,
)
from promotion.names import parse_s3_uri

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker.type_defs import DescribeModelPackageOutputTypeDef

# Server-side copies: one CopyObject call below the threshold; above it, parallel
# UploadPartCopy calls (CopyObject itself stops at 5 GB). No byte passes through this process.
COPY_CONFIG = TransferConfig(
    multipart_threshold=256 * 2**20, multipart_chunksize=128 * 2**20, max_concurrency=8
)


@dataclass(frozen=True)
class Artifact:
    """An S3 location a package references: one object, or every object under a prefix."""

    uri: str
    is_prefix: bool = False
    # The package field of a quality document ("DriftCheckBaselines"); empty for model data.
    quality_field: str = ""


def package_artifacts(package: DescribeModelPackageOutputTypeDef) -> list[Artifact]:
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
    for field in METRICS_FIELDS:  # baselines and reports: one object each
        for uri in s3_uris(package.get(field)):
            found.setdefault(uri, Artifact(uri, quality_field=field))
    return list(found.values())


# What a package says about its quality, each a tree of {"S3Uri": ...} documents
# (MetricsSource, FileSource) that the target package must point at in its own account.
METRICS_FIELDS = ("ModelMetrics", "DriftCheckBaselines")


def s3_uris(document: object) -> list[str]:
    """Every ``S3Uri`` value in a nested document, in order."""
    if isinstance(document, dict):
        found = [document["S3Uri"]] if isinstance(document.get("S3Uri"), str) else []
        return found + [u for k, v in document.items() if k != "S3Uri" for u in s3_uris(v)]
    if isinstance(document, list):
        return [u for item in document for u in s3_uris(item)]
    return []


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
    source_s3: S3Client, artifacts: list[Artifact], bucket: str, prefix: str
) -> list[CopyPlan]:
    """List every object to copy with its size; a missing artifact is an error here."""
    plans = []
    for artifact in artifacts:
        try:
            objects = _source_objects(source_s3, artifact)
        except AccessDenied:
            if not artifact.quality_field:
                raise
            # Check steps often write their reports to SageMaker's default bucket, which the
            # cross-account read grants (model_artifact_prefixes) deliberately do not cover.
            raise AccessDenied(
                f"cannot read the package's {artifact.quality_field} document {artifact.uri} "
                "(access denied): quality documents are copied like the model artifact, so "
                "they must sit under the dev account's model_artifact_prefixes (and the "
                "targets' dev_model_artifact_prefixes); register them there or add their "
                "prefix to both"
            ) from None
        source_bucket = parse_s3_uri(artifact.uri)[0]
        for object_key, size, etag in objects:
            uri = f"s3://{source_bucket}/{object_key}"
            plans.append(CopyPlan(uri, target_uri(uri, bucket, prefix), size, etag))
    return plans


def _source_objects(source_s3: S3Client, artifact: Artifact) -> list[tuple[str, int, str]]:
    """(key, size, ETag) of every object the artifact names; a missing one is an error."""
    source_bucket, key = parse_s3_uri(artifact.uri)
    what = (
        f"the package's {artifact.quality_field} document" if artifact.quality_field else "artifact"
    )
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
                        f"{what} {artifact.uri} does not exist in the source bucket; "
                        "the package references a deleted object: register a new version"
                    ) from None
                raise
            objects = [(key, head["ContentLength"], head["ETag"])]
    return objects


def copy_artifacts(
    source_s3: S3Client,
    target_s3: S3Client,
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


def _already_copied(s3: S3Client, bucket: str, key: str, plan: CopyPlan) -> bool:
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
