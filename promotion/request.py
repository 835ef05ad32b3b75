"""What a promotion is asked to do and what it did: the data ``orchestration`` and
``stage_files`` both speak, kept apart so neither imports the other."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promotion.images import DEFAULT_WAIT_SECONDS

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker.type_defs import DescribeModelPackageOutputTypeDef
    from mypy_boto3_ssm import SSMClient

    from promotion.artifacts import CopyPlan
    from promotion.images import ImagePlan
    from promotion.stage import StageSettings


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
    # with plan_only: make the version's shadow candidate Model (promotion/shadow_candidate.py)
    shadow_candidate: bool = False
    # how long to wait for ECR to replicate the package's dev-registry images to the stage
    image_wait_seconds: float = DEFAULT_WAIT_SECONDS


@dataclass
class PromotionResult:
    source: DescribeModelPackageOutputTypeDef
    settings: StageSettings
    copies: list[CopyPlan]
    target_package_arn: str | None = None
    reused: bool = False
    copied: list[str] = field(default_factory=list)
    tfvars: dict[str, Any] = field(default_factory=dict)
    previous_model: dict | None = None
    # the endpoint configuration the stage's endpoint serves (the deployment record's)
    endpoint_config_in_service: dict | None = None
    images: list[ImagePlan] = field(default_factory=list)
    # what may not run as declared, said but not refused (runnable.framework_version_warnings)
    warnings: list[str] = field(default_factory=list)
    # what the stage's execution role may pull: this version's, the kept one's, Preprocess's
    image_repository_arns: list[str] = field(default_factory=list)
    # the shadow candidate's line (shadow_candidate.Candidate.line), when one was asked for
    shadow: str | None = None


@dataclass(frozen=True)
class Clients:
    """boto3 clients: read access in the dev account, deploy access in the target account."""

    source_sagemaker: SageMakerClient
    source_s3: S3Client
    source_ecr: ECRClient
    target_sagemaker: SageMakerClient
    target_s3: S3Client
    target_ssm: SSMClient
    target_ecr: ECRClient
    target_iam: IAMClient
