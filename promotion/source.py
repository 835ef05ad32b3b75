"""The dev side: which package to promote."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from promotion.errors import (
    GroupNotFound,
    NoApprovedPackage,
    VersionNotPromotable,
    aws_errors,
    is_not_found,
)

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker.type_defs import DescribeModelPackageOutputTypeDef


def resolve_source_package(
    sagemaker: SageMakerClient, group: str, version: int | None = None
) -> DescribeModelPackageOutputTypeDef:
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
