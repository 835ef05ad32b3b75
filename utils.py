"""Promotion of an approved model package from the dev registry into a stage account.

Small functions over boto3 clients passed in, so each can be tested against the emulator and
the CLI (``build.py``) stays a thin shell. ``promote`` runs them in an order that never leaves
anything half-made: artifacts are copied and verified before the target package exists, the
package is created only once (a re-run finds it by its source ARN) and a package that ends
``Failed`` is deleted before the error is raised.

The code lives in the ``promotion`` package, one module per concern; this module is the
stable façade ``build.py``, the demo and the tests import.
"""

from __future__ import annotations

from promotion.artifacts import (
    COPY_CONFIG,
    Artifact,
    CopyPlan,
    artifact_prefix,
    copy_artifacts,
    package_artifacts,
    plan_copies,
    target_uri,
)
from promotion.errors import (
    AccessDenied,
    AccountMismatch,
    ArtifactMissing,
    CopyVerificationFailed,
    GroupNotFound,
    ImageNotReady,
    NoApprovedPackage,
    NotRunnable,
    PromotionError,
    StageNotReady,
    TargetPackageFailed,
    Unreachable,
    UsageError,
    VersionNotPromotable,
    aws_errors,
    client_config,
    error_code,
    is_access_denied,
    is_not_found,
    one_line,
)
from promotion.names import (
    STAGES,
    account_of,
    check_group_name,
    model_name,
    parse_s3_uri,
    resource_name,
)
from promotion.orchestration import (
    Clients,
    PromotionRequest,
    PromotionResult,
    pending_package_arn,
    project_tags,
    promote,
)
from promotion.source import (
    resolve_source_package,
)
from promotion.stage import (
    ENDPOINT_SCALING_ROLE,
    SSM_LISTS,
    SSM_OPTIONAL,
    SSM_REQUIRED,
    StageSettings,
    check_bucket,
    deployed_state,
    deployment_record_key,
    find_promoted_package,
    read_stage_settings,
    ssm_prefix,
)
from promotion.stage_config import SETTINGS, check_setting, load_stage_config
from promotion.stage_files import (
    content_key,
    publish_stage_files,
    upload_if_absent,
)
from promotion.target_package import (
    PROMOTED_DESCRIPTION,
    SOURCE_METADATA_KEY,
    create_target_package,
    ensure_group,
    promotion_metadata,
    rewrite_inference_specification,
    wait_for_package,
)

__all__ = [
    "COPY_CONFIG",
    "ENDPOINT_SCALING_ROLE",
    "PROMOTED_DESCRIPTION",
    "SETTINGS",
    "SOURCE_METADATA_KEY",
    "SSM_LISTS",
    "SSM_OPTIONAL",
    "SSM_REQUIRED",
    "STAGES",
    "AccessDenied",
    "AccountMismatch",
    "Artifact",
    "ArtifactMissing",
    "Clients",
    "CopyPlan",
    "CopyVerificationFailed",
    "GroupNotFound",
    "ImageNotReady",
    "NoApprovedPackage",
    "NotRunnable",
    "PromotionError",
    "PromotionRequest",
    "PromotionResult",
    "StageNotReady",
    "StageSettings",
    "TargetPackageFailed",
    "Unreachable",
    "UsageError",
    "VersionNotPromotable",
    "account_of",
    "artifact_prefix",
    "aws_errors",
    "check_bucket",
    "check_group_name",
    "check_setting",
    "client_config",
    "content_key",
    "copy_artifacts",
    "create_target_package",
    "deployed_state",
    "deployment_record_key",
    "ensure_group",
    "error_code",
    "find_promoted_package",
    "is_access_denied",
    "is_not_found",
    "load_stage_config",
    "model_name",
    "one_line",
    "package_artifacts",
    "parse_s3_uri",
    "pending_package_arn",
    "plan_copies",
    "project_tags",
    "promote",
    "promotion_metadata",
    "publish_stage_files",
    "read_stage_settings",
    "resolve_source_package",
    "resource_name",
    "rewrite_inference_specification",
    "ssm_prefix",
    "target_uri",
    "upload_if_absent",
    "wait_for_package",
]
