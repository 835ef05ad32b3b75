"""What the stage's Terraform reads: code, schema and definition in S3 (content-addressed)."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from pipelines import s3_locations
from promotion.errors import aws_errors, is_not_found
from promotion.names import model_name, parse_s3_uri, resource_name
from promotion.stage import StageSettings

if TYPE_CHECKING:  # orchestration imports this module
    from promotion.orchestration import PromotionRequest, PromotionResult


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
