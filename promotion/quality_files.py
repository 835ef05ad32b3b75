"""What the stage's model-quality pipeline needs: its code and definition in S3, its tfvars.

Beside the scoring pipeline's (``stage_files.py``): ``evaluate.py`` (content-addressed), the
definition of ``<pipeline_name>-quality`` (``quality_pipeline.py``), and where the day's
labels land (``<project>/batch-inference/labels/<partition>/`` in the stage bucket, which
the stage's roles already read). What the package says about its quality comes from the
package: ``ModelMetrics.ModelQuality.Statistics`` (copied into the stage with its artifacts)
and, in its ``CustomerMetadataProperties``, ``quality_task`` (classification or regression,
classification by default), ``quality_threshold`` (0.5) and ``quality_score_column`` (the
predictions table's column the labels are measured against; ``prediction`` by default).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from promotion.artifacts import artifact_prefix, target_uri
from promotion.errors import UsageError
from promotion.names import resource_name

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.type_defs import DescribeModelPackageOutputTypeDef

    from promotion.request import PromotionRequest, PromotionResult
    from promotion.stage import StageSettings

# stage_files' content store: (prefix, name, body, content type) -> the object's s3:// URI
Put = Callable[[str, str, bytes, str], str]

QUALITY_SUFFIX = "-quality"
DEFAULT_MAX_QUALITY_DROP = 0.05  # batch-config-template.tf's default of max_quality_drop


def quality_pipeline_name(pipeline_name: str) -> str:
    """The model-quality pipeline's name: the scoring pipeline's and ``-quality`` (inside
    the run-starter role's ``<project>-<stage>-*`` pipelines; 256 characters at most)."""
    return f"{pipeline_name[: 256 - len(QUALITY_SUFFIX)]}{QUALITY_SUFFIX}"


def labels_url(request: PromotionRequest, bucket: str) -> str:
    return f"s3://{bucket}/{request.project_name}/batch-inference/labels/"


def package_quality(source: DescribeModelPackageOutputTypeDef) -> dict[str, Any]:
    """The task, threshold and score column the package declares (or the defaults); a
    declaration that cannot be used is a ``UsageError`` (exit 2) naming the fix."""
    metadata = source.get("CustomerMetadataProperties") or {}
    task = metadata.get("quality_task", "classification")
    if task not in ("classification", "regression"):
        raise UsageError(
            f"the package's quality_task {task!r} is not classification or regression: "
            "fix its CustomerMetadataProperties"
        )
    try:
        threshold = float(metadata.get("quality_threshold", "0.5"))
    except ValueError:
        threshold = -1.0
    if not 0 < threshold < 1:
        raise UsageError(
            f"the package's quality_threshold {metadata.get('quality_threshold')!r} is not a "
            "number between 0 and 1: fix its CustomerMetadataProperties"
        )
    column = metadata.get("quality_score_column", "prediction")
    return {"task": task, "threshold": threshold, "score_column": column}


def registered_quality_url(
    request: PromotionRequest, result: PromotionResult, bucket: str
) -> str | None:
    """The stage's copy of the package's ModelQuality statistics, or None without them."""
    statistics = (
        (result.source.get("ModelMetrics") or {}).get("ModelQuality", {}).get("Statistics", {})
    )
    if not statistics.get("S3Uri"):
        return None
    version = int(result.source["ModelPackageVersion"])
    prefix = artifact_prefix(request.project_name, request.group, version)
    return target_uri(statistics["S3Uri"], bucket, prefix)


def quality_tfvars(
    request: PromotionRequest,
    settings: StageSettings,
    result: PromotionResult,
    pipeline_name: str,
    put: Put,
    id_column: str,
) -> dict[str, Any]:
    """Upload evaluate.py and the model-quality pipeline's definition; its tfvars."""
    from pipelines.batch_inference import quality_pipeline  # loads the SDK

    code = request.processing_script.with_name("evaluate.py").read_bytes()
    code_url = put(f"{request.project_name}/code/evaluate", "evaluate.py", code, "text/x-python")
    name = quality_pipeline_name(pipeline_name)
    declared = package_quality(result.source)
    pipeline = quality_pipeline.get_quality_pipeline(
        region=request.region,
        role=settings.sagemaker_role_arn,
        default_bucket=settings.artifacts_bucket,
        pipeline_name=name,
        scored_pipeline_name=pipeline_name,
        base_job_prefix=resource_name(request.project_name, request.stage, limit=30),
        evaluate_code_url=code_url,
        id_column=id_column,
        score_column=declared["score_column"],
        task=declared["task"],
        threshold=declared["threshold"],
        max_quality_drop=float(
            request.stage_config.get("max_quality_drop", DEFAULT_MAX_QUALITY_DROP)
        ),
        registered_quality_url=registered_quality_url(request, result, settings.artifacts_bucket),
        kms_key_id=settings.kms_key_arn,
        subnets=settings.subnet_ids or None,
        security_group_ids=settings.security_group_ids or None,
    )
    definition = json.dumps(json.loads(pipeline.definition()), indent=2, sort_keys=True)
    definition_url = put(
        f"{request.project_name}/pipelines/{request.stage}",
        "quality-definition.json",
        definition.encode(),
        "application/json",
    )
    return {
        "quality_pipeline_name": name,
        "quality_pipeline_definition_s3_key": definition_url.split("/", 3)[3],
        "labels_url": labels_url(request, settings.artifacts_bucket),
    }
