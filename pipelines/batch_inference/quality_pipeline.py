"""The model-quality pipeline: one ``Evaluate`` Processing step per day whose labels landed.

A second pipeline beside the scoring one (docs/operations.md, "Model quality with delayed
labels", says why: a day's labels arrive days after its run, and a day's join needs a
Processing instance's memory). Each execution measures one scored day: ``LabelsUrl`` (the
day's labels folder), ``PredictionsUrl`` (the day's partition of the predictions table),
``ScoredExecutionId`` (the execution whose rows count) and ``PredictionDay``; it writes
``model-quality.json`` under ``<QualityOutputUrl>/<its execution id>/`` and prints the line
the stage's metric filters read, named after the scoring pipeline (their dimension).

Like ``pipeline.get_pipeline``, it only builds the SDK object: no AWS call, nothing uploaded.
"""

from __future__ import annotations

from pipelines import sdk
from pipelines.batch_inference import evaluate
from pipelines.batch_inference.pipeline import (
    DEFAULT_INSTANCE_TYPE,
    DEFAULT_SKLEARN_VERSION,
    EXIT_MESSAGE,
    PROCESSING_ROOT,
    _retry_policies,
    offline_boto_session,
    sklearn_image_uri,
)

STEP = "Evaluate"
LABELS_DIR = f"{PROCESSING_ROOT}/input/labels"
PREDICTIONS_DIR = f"{PROCESSING_ROOT}/input/predictions"
REGISTERED_DIR = f"{PROCESSING_ROOT}/input/registered"
OUTPUT_DIR = f"{PROCESSING_ROOT}/output/quality"


def get_quality_pipeline(
    region: str,
    role: str,
    default_bucket: str,
    pipeline_name: str,
    scored_pipeline_name: str,
    base_job_prefix: str = "batch-inference",
    *,
    evaluate_code_url: str,
    id_column: str = "id",
    score_column: str = "prediction",
    task: str = "classification",
    threshold: float = 0.5,
    max_quality_drop: float = 0.05,
    registered_quality_url: str | None = None,
    processing_image_uri: str | None = None,
    sklearn_version: str = DEFAULT_SKLEARN_VERSION,
    kms_key_id: str | None = None,
    subnets: list[str] | None = None,
    security_group_ids: list[str] | None = None,
) -> sdk.Pipeline:
    """Build the model-quality pipeline (no AWS call). ``scored_pipeline_name`` is the stage's
    scoring pipeline: the metric line names it, so the stage's filters and alarm (whose
    dimension is that pipeline) read it. ``registered_quality_url``: the stage's copy of the
    package's ``ModelQuality`` statistics; without it the drop is unknown (no alarm)."""
    if task not in evaluate.TASKS:
        raise ValueError(f"task must be one of {evaluate.TASKS}")
    if not 0 < threshold < 1:
        raise ValueError("threshold must be between 0 and 1")
    with sdk.quiet_environment(region):
        session = sdk.PipelineSession(
            boto_session=offline_boto_session(region), default_bucket=default_bucket
        )
        labels = sdk.ParameterString("LabelsUrl")
        predictions = sdk.ParameterString("PredictionsUrl")
        scored = sdk.ParameterString("ScoredExecutionId")
        day = sdk.ParameterString("PredictionDay")
        output = sdk.ParameterString("QualityOutputUrl")
        max_drop = sdk.ParameterFloat("MaxQualityDrop", default_value=max_quality_drop)
        instance_type = sdk.ParameterString(
            "ProcessingInstanceType", default_value=DEFAULT_INSTANCE_TYPE
        )
        processor = sdk.ScriptProcessor(
            role=role,
            image_uri=processing_image_uri or sklearn_image_uri(region, sklearn_version),
            command=["python3"],
            instance_type=instance_type,
            instance_count=1,  # one join per day: the day's ids must meet on one instance
            base_job_name=f"{base_job_prefix}-evaluate",
            sagemaker_session=session,
            volume_kms_key=kms_key_id,
            output_kms_key=kms_key_id,
            network_config=sdk.NetworkConfig(
                subnets=subnets or None,
                security_group_ids=security_group_ids or None,
                enable_network_isolation=True,
                encrypt_inter_container_traffic=True,
            ),
        )

        def replicated(name: str, uri: sdk.ParameterString | str, path: str) -> object:
            return sdk.ProcessingInput(
                input_name=name,
                s3_input=sdk.ProcessingS3Input(
                    s3_uri=uri,
                    local_path=path,
                    s3_data_type="S3Prefix",
                    s3_input_mode="File",
                    s3_data_distribution_type="FullyReplicated",
                ),
            )

        inputs = [
            replicated("labels", labels, LABELS_DIR),
            replicated("predictions", predictions, PREDICTIONS_DIR),
        ]
        registered: list[str] = []
        if registered_quality_url:
            inputs.append(replicated("registered", registered_quality_url, REGISTERED_DIR))
            registered = ["--registered", REGISTERED_DIR]  # the file keeps its name there
        arguments = [
            "--labels-dir", LABELS_DIR,
            "--predictions-dir", PREDICTIONS_DIR,
            "--output-dir", OUTPUT_DIR,
            *registered,
            "--id-column", id_column,
            "--score-column", score_column,
            "--task", task,
            "--threshold", repr(float(threshold)),
            # ContainerArguments take strings only: SageMaker refuses a Float reference
            "--max-quality-drop", max_drop.to_string(),
            "--execution-id", scored,
            "--day", day,
            "--pipeline-name", scored_pipeline_name,
            "--exit-message", EXIT_MESSAGE,
        ]  # fmt: skip
        step = sdk.ProcessingStep(
            name=STEP,
            step_args=processor.run(
                code=evaluate_code_url,
                inputs=inputs,
                outputs=[
                    sdk.ProcessingOutput(
                        output_name="quality",
                        s3_output=sdk.ProcessingS3Output(
                            s3_uri=sdk.Join(
                                on="/",
                                values=[output, sdk.ExecutionVariables.PIPELINE_EXECUTION_ID],
                            ),
                            local_path=OUTPUT_DIR,
                            s3_upload_mode="EndOfJob",
                        ),
                    )
                ],
                arguments=arguments,
            ),
            retry_policies=_retry_policies(),
        )
        return sdk.Pipeline(
            name=pipeline_name,
            parameters=[labels, predictions, scored, day, output, max_drop, instance_type],
            steps=[step],
            sagemaker_session=session,
            pipeline_experiment_config=None,
            pipeline_definition_config=sdk.PipelineDefinitionConfig(use_custom_job_prefix=True),
        )
