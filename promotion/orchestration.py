"""``promote``: the steps in an order that never leaves anything half-made."""

from __future__ import annotations

from typing import TYPE_CHECKING

from promotion import shadow_candidate
from promotion.artifacts import (
    METRICS_FIELDS,
    artifact_prefix,
    copy_artifacts,
    package_artifacts,
    plan_copies,
    target_uri,
)
from promotion.errors import NotRunnable, UsageError
from promotion.images import (
    ImagePlan,
    plan_images,
    repository_arns,
    retarget,
    wait_until_replicated,
)
from promotion.names import account_of, candidate_model_name, check_group_name, model_name
from promotion.request import Clients, PromotionRequest, PromotionResult
from promotion.runnable import (
    check_runnable,
    framework_image_refusal,
    framework_version_warnings,
    model_instance_types,
)
from promotion.source import resolve_source_package
from promotion.stage import (
    StageSettings,
    check_bucket,
    check_endpoint_scaling_role,
    deployed_state,
    find_promoted_package,
    previous_specification,
    read_stage_settings,
)
from promotion.stage_files import StageLocations, publish_stage_files, transform_requests
from promotion.target_package import (
    create_target_package,
    ensure_group,
    promotion_metadata,
    rewrite_inference_specification,
    rewrite_s3_uris,
)

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.type_defs import DescribeModelPackageOutputTypeDef, TagTypeDef


def promote(clients: Clients, request: PromotionRequest) -> PromotionResult:
    """Make the newest approved (or the requested) model deployable in the target stage.

    Returns what Terraform needs; in a dry run, only what would be done (nothing is written).
    """
    check_group_name(request.group, request.stage)
    source = resolve_source_package(clients.source_sagemaker, request.group, request.version)
    settings = read_stage_settings(clients.target_ssm, request.project_name, request.stage)
    from pipelines.batch_inference import pipeline as batch_pipeline

    # every volume the stage's jobs and endpoint get is encrypted with its key
    refusal = batch_pipeline.volume_key_refusal(
        settings.kms_key_arn,
        {
            "processing_instance_type": request.stage_config.get("processing_instance_type"),
            **dict(model_instance_types(request.stage_config)),
        },
    )
    if refusal:
        raise UsageError(f"stage config: {refusal}")
    check_runnable(source, request.stage_config)
    locations = StageLocations.of(request, settings.artifacts_bucket)
    on_upload = bool(request.stage_config.get("run_on_upload"))
    refusal = locations.overlap(on_upload) or (
        locations.outside_iam(request.project_name, request.stage, settings, on_upload)
    )
    if refusal:
        raise UsageError(f"stage config: {refusal}")
    check_bucket(clients.target_s3, settings.artifacts_bucket)
    check_endpoint_scaling_role(clients.target_iam, request.stage_config)
    existing = find_promoted_package(
        clients.target_sagemaker, request.group, source["ModelPackageArn"]
    )
    images = [] if existing else locate_images(clients, request, source, settings)
    # after what refuses the package itself, before anything is written
    transform_requests(request.stage_config)
    version = int(source["ModelPackageVersion"])
    # read before any write, so an unreadable deployment record changes nothing
    deployed = deployed_state(
        clients.target_s3,
        settings.artifacts_bucket,
        request.project_name,
        request.stage,
        model_name(request.group, request.stage, version),
    )
    previous = deployed.previous_model
    prefix = artifact_prefix(request.project_name, request.group, version)
    copies = (
        []
        if existing
        else plan_copies(
            clients.source_s3, package_artifacts(source), settings.artifacts_bucket, prefix
        )
    )
    result = PromotionResult(
        source=source,
        settings=settings,
        copies=copies,
        previous_model=previous,
        endpoint_config_in_service=deployed.endpoint_config,
        images=images,
        warnings=framework_version_warnings(source),
    )
    if existing:
        result.target_package_arn, result.reused = existing["ModelPackageArn"], True
    result.image_repository_arns = repository_arns(
        [
            existing["InferenceSpecification"]
            if existing
            else retarget(source["InferenceSpecification"], images),
            previous_specification(clients.target_sagemaker, previous),
        ],
        batch_pipeline.sklearn_image_uri(request.region),  # the Preprocess step's
    )
    if request.dry_run:
        return result
    if request.plan_only:
        if not existing:
            result.target_package_arn = pending_package_arn(request, settings, version)
        result.tfvars = publish_stage_files(
            clients.target_s3, request, settings, result, write=False
        )
        if request.shadow_candidate:
            result.shadow = shadow_candidate.prepare(
                clients, request, result, existing, deployed.current_version
            )
        return result

    if not existing:
        # before any write: an image that never arrives leaves nothing behind
        wait_until_replicated(clients.target_ecr, images, request.image_wait_seconds)
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

        def moved(uri: str) -> str:
            return target_uri(uri, settings.artifacts_bucket, prefix)

        package = create_target_package(
            clients.target_sagemaker,
            request.group,
            source,
            retarget(
                rewrite_inference_specification(source["InferenceSpecification"], moved), images
            ),
            promotion_metadata(source),
            quality={
                field: rewrite_s3_uris(source[field], moved)  # type: ignore[literal-required]
                for field in METRICS_FIELDS
                if source.get(field)
            },
        )
        result.target_package_arn = package["ModelPackageArn"]
    result.tfvars = publish_stage_files(clients.target_s3, request, settings, result)
    # the approved version runs as the stage's own model now: its shadow candidate goes
    shadow_candidate.remove_candidates(
        clients.target_sagemaker,
        clients.target_s3,
        request,
        settings.artifacts_bucket,
        only=candidate_model_name(request.group, request.stage, version),
    )
    return result


def locate_images(
    clients: Clients,
    request: PromotionRequest,
    source: DescribeModelPackageOutputTypeDef,
    settings: StageSettings,
) -> list[ImagePlan]:
    """Where each of the package's images comes from and what the stage will run (reads
    only); refuses a SageMaker framework build the stage's instances cannot run."""
    images = plan_images(
        source["InferenceSpecification"],
        clients.source_ecr,
        clients.target_ecr,
        dev_account=account_of(source["ModelPackageArn"]),
        stage_account=account_of(settings.sagemaker_role_arn),
        region=request.region,
        registered_at=source.get("CreationTime"),
    )
    refusal = framework_image_refusal(
        [plan.source.tag for plan in images if plan.source.is_sagemakers], request.stage_config
    )
    if refusal:
        raise NotRunnable(f"{source['ModelPackageArn']}: {refusal}")
    return images


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


def project_tags(request: PromotionRequest) -> list[TagTypeDef]:
    tags: list[TagTypeDef] = [
        {"Key": "sagemaker:project-name", "Value": request.project_name},
        {"Key": "environment", "Value": request.stage},
    ]
    if request.project_id:
        tags.append({"Key": "sagemaker:project-id", "Value": request.project_id})
    return tags
