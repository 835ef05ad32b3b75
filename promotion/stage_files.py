"""What the stage's Terraform reads: code, schema and definition in S3 (content-addressed)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from common import s3_locations
from common.s3_locations import content_key
from pipelines import shadow_settings
from pipelines.batch_inference import processing_settings, transform_settings
from pipelines.batch_inference.transform_settings import TransformRequests
from promotion import quality_files
from promotion.artifacts import artifact_prefix, target_uri
from promotion.errors import UsageError, aws_errors, is_not_found
from promotion.names import account_of, model_name, parse_s3_uri, resource_name
from promotion.stage import StageSettings
from stage_runtime import freshness
from stage_runtime.partitions import DEFAULT_FORMAT

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker.type_defs import DescribeModelPackageOutputTypeDef

    from pipelines.batch_inference import pipeline as batch_pipeline

if TYPE_CHECKING:
    from promotion.request import PromotionRequest, PromotionResult


def upload_if_absent(
    s3: S3Client, bucket: str, key: str, body: bytes, kms_key_arn: str | None, content_type: str
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


@dataclass(frozen=True)
class _ContentStore:
    """Puts bytes under content-addressed keys of the stage bucket, or (a plan) only names them."""

    s3: S3Client
    bucket: str
    kms_key_arn: str | None
    write: bool

    def put(self, prefix: str, name: str, body: bytes, content_type: str) -> str:
        key = content_key(prefix, name, body)
        if self.write:
            upload_if_absent(self.s3, self.bucket, key, body, self.kms_key_arn, content_type)
        return f"s3://{self.bucket}/{key}"


@dataclass(frozen=True)
class StageLocations:
    """Where the stage's pipeline reads and writes, from the stage file or the bucket layout."""

    pipeline_name: str
    input_data_url: str
    output_data_url: str

    @property
    def predictions_table_url(self) -> str:
        """The stage's predictions table: ``day=YYYY-MM-DD/`` folders the Publish step writes
        and the Glue table projects (under the output prefix the execution role may write)."""
        return f"{self.output_data_url.rstrip('/')}/table/"

    @classmethod
    def of(cls, request: PromotionRequest, bucket: str) -> StageLocations:
        config, project = request.stage_config, request.project_name
        data_root = f"s3://{bucket}/{project}/batch-inference"
        return cls(
            pipeline_name=config.get("pipeline_name")
            or resource_name(project, request.stage, "batch-inference", limit=256),
            input_data_url=config.get("input_data_url") or f"{data_root}/input/",
            output_data_url=config.get("output_data_url") or f"{data_root}/output",
        )

    def overlap(self, run_on_upload: bool) -> str | None:
        """Why the input and output locations would feed a run its own outputs, or None (the
        template refuses the same: ``output_data_url``'s validation, the upload rule's
        precondition)."""
        input_folder = f"{self.input_data_url.rstrip('/')}/"
        if f"{self.output_data_url.rstrip('/')}/".startswith(input_folder):
            return (
                f"output_data_url {self.output_data_url} is inside input_data_url "
                f"{self.input_data_url}: a run would read earlier runs' outputs as input; "
                "use separate prefixes"
            )
        if run_on_upload and input_folder.removeprefix("s3://").count("/") < 2:
            return (
                f"run_on_upload needs input_data_url to be a prefix inside its bucket, not "
                f"the bucket root ({self.input_data_url}): every object written to the "
                "bucket would start a run"
            )
        return None

    def external_input(self, inputs: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The base's external input (``StageSettings.external_inputs``) that holds
        ``input_data_url``, or None. Compared as folders: ``s3://lake/churn/`` holds
        ``s3://lake/churn`` and ``s3://lake/churn/day/``, not ``s3://lake/churn-other/``."""
        folder = f"{self.input_data_url.rstrip('/')}/"
        return next((i for i in inputs if folder.startswith(i["url"])), None)

    def outside_iam(
        self, project: str, stage: str, settings: StageSettings, run_on_upload: bool
    ) -> str | None:
        """Why a location the stage file sets is beyond what infra/target-account's roles
        may use (they are scoped to the project's names and prefixes, and to the inputs
        outside the bucket its ``external_inputs`` allow), or None.

        The emulator does not evaluate IAM, and on AWS such a stage would fail with
        AccessDenied only after promotion, at the apply or the first run.
        """
        own = f"s3://{settings.artifacts_bucket}/{project}/"
        outputs = f"{own}batch-inference/output/"
        external = self.external_input(settings.external_inputs)
        if external is None and not f"{self.input_data_url.rstrip('/')}/".startswith(own):
            readable = ", ".join([own, *(i["url"] for i in settings.external_inputs)])
            return (
                f"input_data_url {self.input_data_url} is outside what infra/target-account "
                f"lets the stage's execution role read ({readable}); use a location under it, "
                "have an administrator add its prefix to infra/target-account's "
                "external_inputs, or remove input_data_url for the default"
            )
        if not self.output_data_url.rstrip("/").startswith(outputs.rstrip("/")):
            return (
                f"output_data_url {self.output_data_url} is outside what infra/target-account "
                f"lets the stage's execution role write ({outputs}); use a location under it, "
                "or remove output_data_url for the default"
            )
        account = account_of(settings.sagemaker_role_arn)
        if run_on_upload and external is not None and external["account_id"] != account:
            return (
                f"run_on_upload cannot see uploads to {self.input_data_url}: its bucket belongs "
                f"to account {external['account_id']} (infra/target-account's external_inputs), "
                f"and S3 sends a bucket's events only to its own account's EventBridge bus, not "
                f"to the stage's ({account}); set run_on_upload to false and score day "
                "partitions on the schedule"
            )
        if not self.pipeline_name.startswith(f"{project}-{stage}-"):
            return (
                f"pipeline_name {self.pipeline_name!r} must start with '{project}-{stage}-': "
                "infra/target-account's deploy role may create only those pipelines; rename "
                "it, or remove pipeline_name for the default"
            )
        return None


@dataclass(frozen=True)
class PackageOutputs:
    """The package's version and the columns its model answers (``output_columns`` in its
    ``CustomerMetadataProperties``: ``name:type,...``; a model that declares none answers one
    ``prediction:double``)."""

    version: int
    output_columns: str

    @classmethod
    def of(cls, source: DescribeModelPackageOutputTypeDef) -> PackageOutputs:
        declared = (source.get("CustomerMetadataProperties") or {}).get("output_columns", "")
        from pipelines.batch_inference import publish  # pyarrow: only when a stage is written

        return cls(int(source["ModelPackageVersion"]), declared.strip() or publish.DEFAULT_COLUMNS)

    def columns(self) -> list[dict[str, str]]:
        """The answer's columns: name and Glue type, read as the Publish step reads them
        (``runnable.package_refusal`` has refused a declaration it cannot read)."""
        from pipelines.batch_inference import publish

        return [
            {"name": column.name, "type": column.type}
            for column in publish.parse_columns(self.output_columns)
        ]


def table_columns(id_column: str, package: PackageOutputs) -> list[dict[str, str]]:
    """The predictions table's columns, in the order the Publish step writes them."""
    return [
        {"name": id_column, "type": "string"},
        *package.columns(),
        {"name": "model_version", "type": "bigint"},
        {"name": "execution_id", "type": "string"},
    ]


@dataclass(frozen=True)
class StageCode:
    """The stage's copies of what the Processing job reads besides the data."""

    schema_url: str
    code_url: str
    quality_code_url: str
    publish_code_url: str
    baseline_url: str | None


def render_definition(
    request: PromotionRequest,
    settings: StageSettings,
    locations: StageLocations,
    model: str,
    code: StageCode,
    package: PackageOutputs,
    schema: dict[str, Any],
) -> bytes:
    """The stage's pipeline definition, as stable JSON (sorted keys: same input, same bytes)."""
    from pipelines.batch_inference import pipeline as batch_pipeline  # loads the SDK

    pipeline = batch_pipeline.get_pipeline(
        region=request.region,
        role=settings.sagemaker_role_arn,
        default_bucket=settings.artifacts_bucket,
        pipeline_name=locations.pipeline_name,
        base_job_prefix=resource_name(request.project_name, request.stage, limit=30),
        project_name=request.project_name,
        model_name=model,
        input_data_url=locations.input_data_url,
        output_data_url=locations.output_data_url,
        feature_schema_url=code.schema_url,
        feature_count=len(schema["features"]),
        id_column=schema["id_column"],
        output_columns=package.output_columns,
        output_format=output_format(request.stage_config),
        model_version=package.version,
        predictions_table_url=locations.predictions_table_url,
        publish_code_url=code.publish_code_url,
        processing_code_url=code.code_url,
        quality_code_url=code.quality_code_url,
        baseline_url=code.baseline_url,
        quality_gate=quality_gate(request.stage_config),
        transform_instance_type=transform_instance_type(request.stage_config),
        transform_requests=transform_requests(request.stage_config),
        processing_volume_size_gb=processing_volume_size_gb(request.stage_config),
        kms_key_id=settings.kms_key_arn,
        subnets=settings.subnet_ids or None,
        security_group_ids=settings.security_group_ids or None,
    )
    return json.dumps(json.loads(pipeline.definition()), indent=2, sort_keys=True).encode()


def shadow_definition(definition: bytes, execution_role_arn: str, shadow_role_arn: str) -> bytes:
    """The stage's definition as the shadow pipeline runs it: every ``RoleArn`` that names
    the execution role names the shadow role (which writes only under ``_shadow/``), and
    nothing else changes. Terraform cannot do this at plan time: a plan-only build.py
    uploads no definition for it to read."""
    replaced = 0

    def swap(node: Any) -> Any:
        nonlocal replaced
        if isinstance(node, dict):
            if node.get("RoleArn") == execution_role_arn:
                replaced += 1
                node = {**node, "RoleArn": shadow_role_arn}
            return {key: swap(value) for key, value in node.items()}
        if isinstance(node, list):
            return [swap(value) for value in node]
        return node

    shadow = swap(json.loads(definition))
    if not replaced:  # a definition whose jobs would not run as the shadow role
        raise ValueError(f"the pipeline definition names no RoleArn {execution_role_arn}")
    return json.dumps(shadow, indent=2, sort_keys=True).encode()


def output_format(stage_config: dict[str, Any]) -> str:
    """The predictions table's file format: the stage file's, csv when it says none."""
    return stage_config.get("output_format") or "csv"


def processing_volume_size_gb(stage_config: dict[str, Any]) -> int:
    """Each Processing instance's volume in GB: the stage file's (checked offline), the
    SDK's default of 30 otherwise."""
    value = stage_config.get(processing_settings.SETTING_NAME)
    return processing_settings.DEFAULT_VOLUME_GB if value is None else int(value)


def transform_instance_type(stage_config: dict[str, Any]) -> str:
    """The BatchTransform step's type: the stage file's (the template requires one), the
    pipeline's default when a file given to build.py names none."""
    from pipelines.batch_inference import pipeline as batch_pipeline  # loads the SDK

    return stage_config.get("transform_instance_type") or batch_pipeline.DEFAULT_INSTANCE_TYPE


def transform_requests(stage_config: dict[str, Any]) -> TransformRequests:
    """How BatchTransform sends its requests: the stage file's settings, the defaults for its
    ``transform_instance_type`` otherwise; a ``UsageError`` (exit code 2) naming the setting
    and the fix when they cannot be resolved or AWS would refuse them."""
    try:
        return transform_settings.of_stage(stage_config, transform_instance_type(stage_config))
    except transform_settings.TransformSettingsError as error:
        raise UsageError(f"stage config: {error}") from None


def quality_gate(stage_config: dict[str, Any]) -> batch_pipeline.QualityGate:
    """The stage file's gate settings, the pipeline's defaults for those it leaves out."""
    from pipelines.batch_inference import pipeline as batch_pipeline  # loads the SDK

    defaults = batch_pipeline.QualityGate()
    # float(): a whole number (1) is valid JSON and Terraform, but the SDK's ParameterFloat
    # refuses an int default
    return batch_pipeline.QualityGate(
        max_rejected_fraction=float(
            stage_config.get("max_rejected_fraction", defaults.max_rejected_fraction)
        ),
        max_drift_score=float(stage_config.get("max_drift_score", defaults.max_drift_score)),
        mode=stage_config.get("quality_gate_mode", defaults.mode),
    )


def stage_baseline_url(
    s3: S3Client, request: PromotionRequest, result: PromotionResult, bucket: str, check: bool
) -> str | None:
    """The stage's copy of the package's data-quality baseline, or None (the model has none,
    or a package promoted before baselines were copied is reused: ``check`` looks)."""
    statistics = (
        (result.source.get("DriftCheckBaselines") or {})
        .get("ModelDataQuality", {})
        .get("Statistics", {})
    )
    if not statistics.get("S3Uri"):
        return None
    version = int(result.source["ModelPackageVersion"])
    prefix = artifact_prefix(request.project_name, request.group, version)
    uri = target_uri(statistics["S3Uri"], bucket, prefix)
    if check and result.reused:
        key = parse_s3_uri(uri)[1]
        with aws_errors(f"checking the stage's baseline {uri}"):
            try:
                s3.head_object(Bucket=bucket, Key=key)
            except ClientError as error:
                if not is_not_found(error):
                    raise
                return None
    return uri


def publish_stage_files(
    s3: S3Client,
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
    from pipelines.batch_inference import pipeline as batch_pipeline  # loads the SDK

    project = request.project_name
    store = _ContentStore(s3, settings.artifacts_bucket, settings.kms_key_arn, write)
    schema_bytes = request.feature_schema.read_bytes()
    code = StageCode(
        code_url=store.put(
            f"{project}/code/preprocess",
            "preprocess.py",
            request.processing_script.read_bytes(),
            "text/x-python",
        ),
        # the script's one import from this repository, shipped as the job's lib/ input
        quality_code_url=store.put(
            f"{project}/code/quality",
            "quality.py",
            request.processing_script.with_name("quality.py").read_bytes(),
            "text/x-python",
        ),
        publish_code_url=store.put(
            f"{project}/code/publish",
            "publish.py",
            request.processing_script.with_name("publish.py").read_bytes(),
            "text/x-python",
        ),
        schema_url=store.put(
            f"{project}/code/feature-schema",
            batch_pipeline.SCHEMA_FILE_NAME,
            schema_bytes,
            "application/json",
        ),
        baseline_url=stage_baseline_url(s3, request, result, settings.artifacts_bucket, write),
    )
    package = PackageOutputs.of(result.source)
    schema = json.loads(schema_bytes)
    version = package.version
    name = model_name(request.group, request.stage, version)
    locations = StageLocations.of(request, settings.artifacts_bucket)
    definition = render_definition(request, settings, locations, name, code, package, schema)
    definition_url = store.put(
        f"{project}/pipelines/{request.stage}", "definition.json", definition, "application/json"
    )
    shadow_url = settings.shadow_role_arn and store.put(
        f"{project}/pipelines/{request.stage}",
        "shadow-definition.json",
        shadow_definition(definition, settings.sagemaker_role_arn, settings.shadow_role_arn),
        "application/json",
    )
    return {
        **request.stage_config,
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
        "endpoint_config_in_service": result.endpoint_config_in_service,
        "artifacts_bucket": settings.artifacts_bucket,
        "sagemaker_role_arn": settings.sagemaker_role_arn,
        # the shadow run's role and pipeline (pipelines/shadow_run.py), made by the stage's
        # apply when the account's base has the role
        "shadow_role_arn": settings.shadow_role_arn,
        "shadow_pipeline_name": f"{locations.pipeline_name}-shadow",
        "shadow_pipeline_definition_s3_key": parse_s3_uri(shadow_url)[1] if shadow_url else None,
        "start_pipeline_role_arn": settings.start_pipeline_role_arn,
        "upload_starter_role_arn": settings.upload_starter_role_arn,
        "kms_key_arn": settings.kms_key_arn,
        "subnet_ids": settings.subnet_ids,
        "security_group_ids": settings.security_group_ids,
        "pipeline_name": locations.pipeline_name,
        "pipeline_definition_s3_key": parse_s3_uri(definition_url)[1],
        "job_steps": batch_pipeline.job_steps(json.loads(definition)),
        "input_data_url": locations.input_data_url,
        "external_inputs": settings.external_inputs,
        "output_data_url": locations.output_data_url,
        "partition_format": request.stage_config.get("partition_format") or DEFAULT_FORMAT,
        "feature_schema_url": code.schema_url,
        "baseline_url": code.baseline_url,
        "predictions_table_url": locations.predictions_table_url,
        "predictions_table_columns": table_columns(schema["id_column"], package),
        "output_format": output_format(request.stage_config),
        # the volume the definition gives each Processing instance, resolved
        processing_settings.SETTING_NAME: processing_volume_size_gb(request.stage_config),
        # what the definition's BatchTransform sends, resolved (the stage file's or defaults)
        **transform_requests(request.stage_config).stage_values(),
        "image_repository_arns": result.image_repository_arns,
        # the model-quality pipeline's code, definition and labels (promotion/quality_files.py)
        **quality_files.quality_tfvars(
            request, settings, result, locations.pipeline_name, store.put, schema["id_column"]
        ),
        # a run's cost (stage_runtime/run_cost.py) and the backfill's limit on it
        "instance_prices": request.stage_config.get("instance_prices") or {},
        "max_backfill_cost_usd": request.stage_config.get("max_backfill_cost_usd"),
        **freshness_settings(request.stage_config),
        # the shadow run in prod's plan job (pipelines/shadow_run.py --plan-job), resolved
        **shadow_settings.stage_values(request.stage_config),
    }


def freshness_settings(stage_config: dict[str, Any]) -> dict[str, Any]:
    """The stage's deadline and freshness switch: the stage file's, or the defaults (the
    template's too)."""
    return {
        "score_by_hours": stage_config.get("score_by_hours", freshness.DEFAULT_SCORE_BY_HOURS),
        "freshness_alarms": stage_config.get("freshness_alarms", True),
    }
