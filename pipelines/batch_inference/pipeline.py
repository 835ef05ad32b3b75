"""The batch-inference pipeline: ``Preprocess`` (Processing) then ``BatchTransform`` (Transform).

``get_pipeline`` only *builds* the SageMaker SDK object: it makes no AWS call, uploads nothing
and creates no bucket, so the definition can be rendered offline and in unit tests. Uploading
the processing script and the definition is ``build.py``'s job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipelines import sdk
from pipelines.batch_inference import processing_settings, publish, transform_settings
from pipelines.batch_inference.transform_settings import TransformRequests

if TYPE_CHECKING:
    import boto3

PROCESSING_ROOT = "/opt/ml/processing"
DATA_DIR = f"{PROCESSING_ROOT}/input/data"
SCHEMA_DIR = f"{PROCESSING_ROOT}/input/schema"
# preprocess.py loads quality.py from here (the code's sibling folder), in the job and locally
LIB_DIR = f"{PROCESSING_ROOT}/input/lib"
BASELINE_DIR = f"{PROCESSING_ROOT}/input/baseline"
# SageMaker shows this file's first KB as the job's ExitMessage: the gate's reason goes there
EXIT_MESSAGE = "/opt/ml/output/message"
OUTPUT_DIR = f"{PROCESSING_ROOT}/output"
PROCESSING_OUTPUTS = ("inference", "rejected", "summary")
PREDICTIONS_DIR = f"{PROCESSING_ROOT}/input/predictions"
TABLE_DIR = f"{OUTPUT_DIR}/table"
OUTPUT_FORMATS = ("csv", "parquet")
SCHEMA_FILE_NAME = "feature-schema.json"
DEFAULT_INSTANCE_TYPE = "ml.m5.xlarge"
DEFAULT_SKLEARN_VERSION = "1.9-0"
# the Transform job's environment variable that asks the handlers for prediction metric lines
PREDICTION_METRICS_ENV = "BATCH_METRICS_PIPELINE"


@dataclass(frozen=True)
class QualityGate:
    """The gate's defaults in the definition (a stage file sets them; a run may override).

    ``warn`` with these limits by default: the run always scores, and the metrics and alarms
    say when a limit was passed; ``fail`` stops the run before scoring instead."""

    max_rejected_fraction: float = 0.05
    max_drift_score: float = 0.25
    mode: str = "warn"


# The Transform reads headerless ``id,feature...`` lines written by preprocess.py: the model
# sees the features only, and each output line is the id, then every column the model returns.
TRANSFORM_INPUT_FILTER = "$[1:]"
ONE_COLUMN_OUTPUT_FILTER = "$[0,-1]"


def transform_output_filter(feature_count: int | None) -> str:
    """``$[0,n+1:]`` for a schema of ``n`` features: over the joined ``id,features,answer``
    record that is the id and the model's whole answer, however many columns it has (class
    probabilities, a label and its score...). Without the count, the id and the last column
    (``$[0,-1]``), which is the whole answer only for a one-column model."""
    if feature_count is None:
        return ONE_COLUMN_OUTPUT_FILTER
    if feature_count < 1:
        raise ValueError("feature_count must be the schema's number of features (at least 1)")
    return f"$[0,{feature_count + 1}:]"


@dataclass(frozen=True)
class _Parameters:
    """The pipeline parameters, in the order they appear in the definition."""

    input_data: sdk.ParameterString
    output_data: sdk.ParameterString
    feature_schema: sdk.ParameterString
    model: sdk.ParameterString
    processing_type: sdk.ParameterString
    processing_count: sdk.ParameterInteger
    processing_volume: sdk.ParameterInteger
    transform_type: sdk.ParameterString
    transform_count: sdk.ParameterInteger
    max_rejected_fraction: sdk.ParameterFloat
    max_drift_score: sdk.ParameterFloat
    gate_mode: sdk.ParameterString
    model_version: sdk.ParameterInteger
    prediction_day: sdk.ParameterString
    predictions_table: sdk.ParameterString

    @classmethod
    def with_defaults(
        cls,
        *,
        model_name: str | None,
        input_data_url: str,
        output_data_url: str,
        feature_schema_url: str,
        gate: QualityGate,
        model_version: int,
        transform_instance_type: str,
        processing_volume_gb: int,
        predictions_table_url: str,
    ) -> _Parameters:
        """Data and model from the stage; one ``ml.m5.xlarge`` per step unless overridden
        (the Transform's type: the stage's, which its concurrency was resolved for; the
        Processing instances' volume: the stage's)."""
        return cls(
            input_data=sdk.ParameterString("InputDataUrl", default_value=input_data_url),
            output_data=sdk.ParameterString("OutputDataUrl", default_value=output_data_url),
            feature_schema=sdk.ParameterString(
                "FeatureSchemaUrl", default_value=feature_schema_url
            ),
            model=sdk.ParameterString("ModelName", default_value=model_name),
            processing_type=sdk.ParameterString(
                "ProcessingInstanceType", default_value=DEFAULT_INSTANCE_TYPE
            ),
            processing_count=sdk.ParameterInteger("ProcessingInstanceCount", default_value=1),
            # a parameter, not a constant: each instance stores its share of the input, so a
            # run given fewer instances than the stage's (a large backfill) may need more
            processing_volume=sdk.ParameterInteger(
                processing_settings.PARAMETER_NAME, default_value=processing_volume_gb
            ),
            transform_type=sdk.ParameterString(
                "TransformInstanceType", default_value=transform_instance_type
            ),
            transform_count=sdk.ParameterInteger("TransformInstanceCount", default_value=1),
            max_rejected_fraction=sdk.ParameterFloat(
                "MaxRejectedFraction", default_value=gate.max_rejected_fraction
            ),
            max_drift_score=sdk.ParameterFloat("MaxDriftScore", default_value=gate.max_drift_score),
            gate_mode=sdk.ParameterString(
                "QualityGateMode", default_value=gate.mode, enum_values=["fail", "warn"]
            ),
            # the package version of ModelName, on every row of the predictions table
            model_version=sdk.ParameterInteger("ModelVersion", default_value=model_version),
            # the day partition a run scores (runs of a day set it); empty: the start date
            prediction_day=sdk.ParameterString("PredictionDay", default_value=""),
            # where Publish writes: the stage's table; a shadow run's own prefix, which no
            # table or reader looks at (pipelines/shadow_run.py)
            predictions_table=sdk.ParameterString(
                "PredictionsTableUrl", default_value=predictions_table_url
            ),
        )

    def all(self) -> list:
        return list(vars(self).values())

    def run_output(self, *parts: str) -> sdk.Join:
        """An S3 URI under ``<OutputDataUrl>/<execution id>/``: runs never overwrite each other."""
        return sdk.Join(
            on="/",
            values=[self.output_data, sdk.ExecutionVariables.PIPELINE_EXECUTION_ID, *parts],
        )


def get_pipeline(
    region: str,
    role: str,
    default_bucket: str,
    pipeline_name: str = "BatchInference",
    base_job_prefix: str = "batch-inference",
    project_name: str | None = None,
    sagemaker_session: sdk.PipelineSession | None = None,
    *,
    model_name: str | None = None,
    input_data_url: str | None = None,
    output_data_url: str | None = None,
    feature_schema_url: str | None = None,
    feature_count: int | None = None,
    id_column: str = "id",
    output_columns: str = publish.DEFAULT_COLUMNS,
    output_format: str = "csv",
    model_version: int = 0,
    predictions_table_url: str | None = None,
    publish_code_url: str | None = None,
    processing_code_url: str | None = None,
    quality_code_url: str | None = None,
    baseline_url: str | None = None,
    quality_gate: QualityGate | None = None,
    transform_instance_type: str = DEFAULT_INSTANCE_TYPE,
    transform_requests: TransformRequests | Mapping[str, int] | None = None,
    processing_volume_size_gb: int = processing_settings.DEFAULT_VOLUME_GB,
    processing_image_uri: str | None = None,
    sklearn_version: str = DEFAULT_SKLEARN_VERSION,
    kms_key_id: str | None = None,
    subnets: list[str] | None = None,
    security_group_ids: list[str] | None = None,
    enable_network_isolation: bool = True,
    encrypt_inter_container_traffic: bool = True,
) -> sdk.Pipeline:
    """Build the batch-inference pipeline (no AWS call).

    ``model_name`` becomes the default of the ``ModelName`` parameter; without it every
    execution must pass ``ModelName`` (the EventBridge schedule does). Data and code locations
    default to fixed keys under ``s3://<default_bucket>/<prefix>/`` where ``<prefix>`` is the
    project name, or ``base_job_prefix`` without one. Network settings apply to the Processing
    job; the Transform job runs in the VPC of its SageMaker Model (set by Terraform).
    ``baseline_url`` is the model's data-quality baseline: without one, Preprocess reports
    "no baseline" and the gate holds only the rejected fraction. ``feature_count`` is the
    schema's number of features: the output keeps the id and every column the model returns
    (see :func:`transform_output_filter`). ``Publish`` then writes those rows, named by
    ``output_columns`` (the package's ``name:type,...``) and with ``model_version`` and the
    execution id on each, as ``output_format`` files under ``predictions_table_url``'s day
    partitions (the stage's table). ``transform_instance_type`` is the ``TransformInstanceType``
    default and the type ``transform_requests`` (how the Transform sends its requests,
    ``transform_settings.py``) are resolved for when not given, or given as a mapping of
    some of ``transform_settings.transform_requests``' keywords (``{"max_concurrent": 8}``,
    as ``--kwargs`` passes it); they stay what they are when a run overrides
    ``TransformInstanceType``. ``processing_volume_size_gb`` is the default of
    ``ProcessingVolumeSizeInGB``, the storage volume of each instance of Preprocess and
    Publish (``processing_settings.py``).
    """
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(f"output_format must be one of {OUTPUT_FORMATS}")
    problem = processing_settings.volume_problem(
        processing_volume_size_gb, "processing_volume_size_gb"
    )
    if problem:
        raise ValueError(problem)
    for name, value in (("region", region), ("role", role), ("default_bucket", default_bucket)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a non-empty string")
    for name, ids, example in (
        ("subnets", subnets, "subnet-0abc"),
        ("security_group_ids", security_group_ids, "sg-0abc"),
    ):
        if ids is not None and not (
            isinstance(ids, list) and all(isinstance(v, str) and v for v in ids)
        ):
            raise ValueError(f'{name} must be a list of ids, e.g. ["{example}"]')
    prefix = f"s3://{default_bucket}/{project_name or base_job_prefix}"
    # resolved once, before the steps: MaxConcurrentTransforms (requests per Transform
    # instance) is also what Preprocess may size its output parts by
    transform = (
        transform_requests
        if isinstance(transform_requests, TransformRequests)
        else transform_settings.transform_requests(
            transform_instance_type, **(transform_requests or {})
        )
    )
    with sdk.quiet_environment(region):
        session = sagemaker_session or sdk.PipelineSession(
            boto_session=offline_boto_session(region), default_bucket=default_bucket
        )
        params = _Parameters.with_defaults(
            model_name=model_name,
            input_data_url=input_data_url or f"{prefix}/input/",
            output_data_url=output_data_url or f"{prefix}/output",
            feature_schema_url=feature_schema_url or f"{prefix}/code/{SCHEMA_FILE_NAME}",
            gate=quality_gate or QualityGate(),
            model_version=model_version,
            transform_instance_type=transform_instance_type,
            processing_volume_gb=int(processing_volume_size_gb),
            predictions_table_url=predictions_table_url or f"{prefix}/predictions-table/",
        )
        processor = sdk.ScriptProcessor(
            role=role,
            image_uri=processing_image_uri or sklearn_image_uri(region, sklearn_version),
            command=["python3"],
            instance_type=params.processing_type,
            instance_count=params.processing_count,
            # Preprocess and Publish alike: Publish's share grows with the day as
            # Preprocess's does, on the same ProcessingInstanceCount
            volume_size_in_gb=params.processing_volume,
            base_job_name=f"{base_job_prefix}-preprocess",
            sagemaker_session=session,
            volume_kms_key=kms_key_id,
            output_kms_key=kms_key_id,
            network_config=sdk.NetworkConfig(
                subnets=subnets or None,
                security_group_ids=security_group_ids or None,
                enable_network_isolation=enable_network_isolation,
                encrypt_inter_container_traffic=encrypt_inter_container_traffic,
            ),
        )
        preprocess = _preprocess_step(
            processor,
            params,
            processing_code_url or f"{prefix}/code/preprocess.py",
            quality_code_url or f"{prefix}/code/quality.py",
            baseline_url,
            transform.max_concurrent,
        )
        batch_transform = _transform_step(
            params,
            preprocess,
            session,
            f"{base_job_prefix}-transform",
            kms_key_id,
            transform_output_filter(feature_count),
            transform,
        )
        published = _publish_step(
            processor,
            params,
            batch_transform,
            publish_code_url or f"{prefix}/code/publish.py",
            [
                "--id-column", id_column,
                "--output-columns", output_columns,
                "--format", output_format,
            ],
        )  # fmt: skip
        return sdk.ParameterizedPipeline(
            name=pipeline_name,
            parameters=params.all(),
            steps=[preprocess, batch_transform, published],
            sagemaker_session=session,
            pipeline_experiment_config=None,
            # jobs named <base_job_name>-<execution id>-..., not pipelines-<execution id>-...:
            # the dashboard finds a stage's job metrics by that prefix
            pipeline_definition_config=sdk.PipelineDefinitionConfig(use_custom_job_prefix=True),
            parameter_overrides={
                ("BatchTransform", "TransformResources", "InstanceCount"): "TransformInstanceCount",
            },
        )


def sklearn_image_uri(region: str, version: str = DEFAULT_SKLEARN_VERSION) -> str:
    """The region's scikit-learn image (its account differs by region: the SDK's table)."""
    return sdk.image_uris.retrieve(
        framework="sklearn",
        region=region,
        version=version,
        py_version="py3",
        instance_type=DEFAULT_INSTANCE_TYPE,
    )


def _transform_step(
    params: _Parameters,
    preprocess: sdk.ProcessingStep,
    session: sdk.PipelineSession,
    job_name_prefix: str,
    kms_key_id: str | None,
    output_filter: str,
    requests: TransformRequests,
) -> sdk.TransformStep:
    """The Transform step: the model scores what Preprocess kept; each line is the id and
    the model's answer (``output_filter``), in ``requests.max_concurrent`` requests at a time
    per instance of ``requests.max_payload_mb`` at most, each with its timeout and retries."""
    transformer = sdk.Transformer(
        model_name=params.model,
        instance_type=params.transform_type,
        instance_count=1,  # replaced by TransformInstanceCount: see parameter_overrides
        strategy="MultiRecord",
        max_concurrent_transforms=requests.max_concurrent,
        max_payload=requests.max_payload_mb,
        assemble_with="Line",
        accept="text/csv",
        output_path=params.run_output("predictions"),
        base_transform_job_name=job_name_prefix,
        sagemaker_session=session,
        volume_kms_key=kms_key_id,
        output_kms_key=kms_key_id,
        # handlers that print prediction metric lines name the pipeline in them (the
        # sample's inference.py does; the stage's log metric filters read them)
        env={PREDICTION_METRICS_ENV: sdk.ExecutionVariables.PIPELINE_NAME},
    )
    return sdk.TransformStep(
        name="BatchTransform",
        step_args=transformer.transform(
            data=preprocess.properties.ProcessingOutputConfig.Outputs["inference"].S3Output.S3Uri,
            data_type="S3Prefix",
            content_type="text/csv",
            split_type="Line",
            input_filter=TRANSFORM_INPUT_FILTER,
            join_source="Input",
            output_filter=output_filter,
            model_client_config=requests.model_client_config(),
        ),
        retry_policies=_retry_policies(),
    )


def _publish_step(
    processor: sdk.ScriptProcessor,
    params: _Parameters,
    transform: sdk.TransformStep,
    code_url: str,
    table_arguments: list[str],
) -> sdk.ProcessingStep:
    """The Processing step that turns the Transform's answers into the stage's predictions
    table: named columns, the model version and the execution id on each row, day
    partitions (``publish.py``)."""
    arguments = [
        "--input-dir", PREDICTIONS_DIR,
        "--output-dir", TABLE_DIR,
        *table_arguments,
        "--model-version", params.model_version.to_string(),
        "--execution-id", sdk.ExecutionVariables.PIPELINE_EXECUTION_ID,
        "--day", params.prediction_day,
        "--started", sdk.ExecutionVariables.START_DATETIME,
        "--exit-message", EXIT_MESSAGE,
    ]  # fmt: skip
    return sdk.ProcessingStep(
        name="Publish",
        step_args=processor.run(
            code=code_url,
            inputs=[
                sdk.ProcessingInput(
                    input_name="predictions",
                    s3_input=sdk.ProcessingS3Input(
                        s3_uri=transform.properties.TransformOutput.S3OutputPath,
                        local_path=PREDICTIONS_DIR,
                        s3_data_type="S3Prefix",
                        s3_input_mode="File",
                        s3_data_distribution_type="ShardedByS3Key",
                    ),
                )
            ],
            outputs=[
                sdk.ProcessingOutput(
                    output_name="table",
                    s3_output=sdk.ProcessingS3Output(
                        s3_uri=params.predictions_table,
                        local_path=TABLE_DIR,
                        s3_upload_mode="EndOfJob",
                    ),
                )
            ],
            arguments=arguments,
        ),
        retry_policies=_retry_policies(),
    )


def _preprocess_step(
    processor: sdk.ScriptProcessor,
    params: _Parameters,
    code_url: str,
    quality_code_url: str,
    baseline_url: str | None,
    transform_concurrency: int = 1,
) -> sdk.ProcessingStep:
    """The Processing step: input sharded by S3 key so instance count scales it out; the
    quality check and its gate run inside it, in the same pass over the rows; its output
    cut into parts for the Transform's instances x the requests each serves at once."""

    def s3_input(name: str, uri: sdk.ParameterString | str, local_path: str, distribution: str):
        return sdk.ProcessingInput(
            input_name=name,
            s3_input=sdk.ProcessingS3Input(
                s3_uri=uri,
                local_path=local_path,
                s3_data_type="S3Prefix",
                s3_input_mode="File",
                s3_data_distribution_type=distribution,
            ),
        )

    outputs = [
        sdk.ProcessingOutput(
            output_name=name,
            s3_output=sdk.ProcessingS3Output(
                s3_uri=params.run_output("preprocess", name),
                local_path=f"{OUTPUT_DIR}/{name}",
                s3_upload_mode="EndOfJob",
            ),
        )
        for name in PROCESSING_OUTPUTS
    ]
    return sdk.ProcessingStep(
        name="Preprocess",
        step_args=processor.run(
            code=code_url,
            inputs=[
                s3_input("data", params.input_data, DATA_DIR, "ShardedByS3Key"),
                s3_input("schema", params.feature_schema, SCHEMA_DIR, "FullyReplicated"),
                s3_input("lib", quality_code_url, LIB_DIR, "FullyReplicated"),
                *(
                    [s3_input("baseline", baseline_url, BASELINE_DIR, "FullyReplicated")]
                    if baseline_url
                    else []
                ),
            ],
            outputs=outputs,
            arguments=[
                "--input-dir",
                DATA_DIR,
                "--output-dir",
                OUTPUT_DIR,
                "--schema",
                SCHEMA_DIR,
                *(["--baseline", BASELINE_DIR] if baseline_url else []),
                "--max-rejected-fraction",
                # ContainerArguments take strings only: SageMaker refuses a Float reference
                params.max_rejected_fraction.to_string(),
                "--max-drift-score",
                params.max_drift_score.to_string(),
                "--quality-gate-mode",
                params.gate_mode,
                "--pipeline-name",
                sdk.ExecutionVariables.PIPELINE_NAME,
                "--exit-message",
                EXIT_MESSAGE,
                # the inference output is cut into parts for every Transform instance
                "--transform-instances",
                params.transform_count.to_string(),
                "--transform-concurrency",
                str(transform_concurrency),
            ],
        ),
        retry_policies=_retry_policies(),
    )


def _retry_policies() -> list:
    """Retry throttling/service faults of the step and transient failures of the job."""
    return [
        sdk.StepRetryPolicy(
            exception_types=[
                sdk.StepExceptionTypeEnum.THROTTLING,
                sdk.StepExceptionTypeEnum.SERVICE_FAULT,
            ],
            interval_seconds=10,
            backoff_rate=2.0,
            max_attempts=5,
        ),
        sdk.SageMakerJobStepRetryPolicy(
            exception_types=[
                sdk.SageMakerJobExceptionTypeEnum.INTERNAL_ERROR,
                sdk.SageMakerJobExceptionTypeEnum.CAPACITY_ERROR,
                sdk.SageMakerJobExceptionTypeEnum.RESOURCE_LIMIT,
            ],
            interval_seconds=60,
            backoff_rate=2.0,
            max_attempts=3,
        ),
    ]


def volume_key_refusal(kms_key_id: str | None, instance_types: Mapping[str, object]) -> str | None:
    """Why SageMaker would refuse these jobs, or None.

    The definition sets ``VolumeKmsKeyId`` whenever the stage has a key, and SageMaker
    refuses a volume key on instance types with local NVMe storage (g4dn, g5, *d, ...),
    which it encrypts in hardware instead. The SDK's own table says which types those are.
    ``instance_types`` maps each setting's name to its value.
    """
    if not kms_key_id:
        return None
    for setting, instance_type in instance_types.items():
        if isinstance(instance_type, str) and not sdk.instance_supports_kms(instance_type):
            return (
                f"{setting} {instance_type} has local NVMe storage, which SageMaker encrypts "
                "itself and refuses a volume KMS key for, and this stage encrypts its volumes "
                "with its key: choose a type without local storage (e.g. ml.m5.xlarge)"
            )
    return None


def job_steps(definition: dict) -> dict[str, dict[str, str]]:
    """Each job step: its type (Processing/Transform) and the prefix of its jobs' names.

    The stage's dashboard finds a step's job metrics by that prefix (the metrics' ``Host``
    dimension is ``<job name>/<host>``).
    """
    fields = {"Processing": "ProcessingJobName", "Transform": "TransformJobName"}
    return {
        step["Name"]: {
            "type": step["Type"],
            "job_name_prefix": step["Arguments"][fields[step["Type"]]],
        }
        for step in definition["Steps"]
        if step["Type"] in fields
        and isinstance(step.get("Arguments", {}).get(fields[step["Type"]]), str)
    }


def offline_boto_session(region: str) -> boto3.Session:
    """A boto3 session that can build clients but never looks for credentials.

    Rendering a definition needs SDK clients but sends nothing; the default credential chain
    would still probe the EC2 metadata service when no credentials are configured. With an
    empty resolver, any accidental request fails with ``NoCredentialsError`` instead.
    """
    import boto3
    import botocore.credentials
    import botocore.session

    core = botocore.session.Session()
    core.register_component("credential_provider", botocore.credentials.CredentialResolver([]))
    return boto3.Session(botocore_session=core, region_name=region)
