"""The batch-inference pipeline definition: structure, parameters, wiring, no AWS calls."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from pipelines import sdk
from pipelines.batch_inference import pipeline as batch_pipeline

ROLE = "arn:aws:iam::111111111111:role/SageMakerExecution"
BASE: dict[str, Any] = {"region": "eu-west-1", "role": ROLE, "default_bucket": "artifacts-bucket"}
REPO = Path(__file__).resolve().parents[1]


def render(**overrides: Any) -> dict:
    return json.loads(batch_pipeline.get_pipeline(**{**BASE, **overrides}).definition())


@pytest.fixture(scope="module")
def definition() -> dict:
    return render(project_name="churn", pipeline_name="churn-batch", model_name="churn-model-v3")


def step(definition: dict, name: str) -> dict:
    (found,) = [s for s in definition["Steps"] if s["Name"] == name]
    return found


def run_path(value: dict) -> list:
    """The parts of a ``Std:Join`` on "/"."""
    assert value["Std:Join"]["On"] == "/"
    return value["Std:Join"]["Values"]


EXECUTION_ID = {"Get": "Execution.PipelineExecutionId"}
OUTPUT_URL = {"Get": "Parameters.OutputDataUrl"}


def test_steps_in_order_and_transform_reads_the_processing_output(definition: dict) -> None:
    assert [(s["Name"], s["Type"]) for s in definition["Steps"]] == [
        ("Preprocess", "Processing"),
        ("BatchTransform", "Transform"),
        ("Publish", "Processing"),
    ]
    source = step(definition, "BatchTransform")["Arguments"]["TransformInput"]["DataSource"]
    assert source["S3DataSource"] == {
        "S3DataType": "S3Prefix",
        "S3Uri": {
            "Get": "Steps.Preprocess.ProcessingOutputConfig.Outputs['inference'].S3Output.S3Uri"
        },
    }


def test_parameters_and_defaults(definition: dict) -> None:
    parameters = {p["Name"]: (p["Type"], p.get("DefaultValue")) for p in definition["Parameters"]}
    assert parameters == {
        "InputDataUrl": ("String", "s3://artifacts-bucket/churn/input/"),
        "OutputDataUrl": ("String", "s3://artifacts-bucket/churn/output"),
        "FeatureSchemaUrl": ("String", "s3://artifacts-bucket/churn/code/feature-schema.json"),
        "ModelName": ("String", "churn-model-v3"),
        "ProcessingInstanceType": ("String", "ml.m5.xlarge"),
        "ProcessingInstanceCount": ("Integer", 1),
        "ProcessingVolumeSizeInGB": ("Integer", 30),  # the SDK's default, kept
        "TransformInstanceType": ("String", "ml.m5.xlarge"),
        "TransformInstanceCount": ("Integer", 1),
        "MaxRejectedFraction": ("Float", 0.05),
        "MaxDriftScore": ("Float", 0.25),
        "QualityGateMode": ("String", "warn"),
        "ModelVersion": ("Integer", 0),
        "PredictionDay": ("String", ""),
        "PredictionsTableUrl": ("String", "s3://artifacts-bucket/churn/predictions-table/"),
    }
    (mode,) = [p for p in definition["Parameters"] if p["Name"] == "QualityGateMode"]
    assert mode["EnumValues"] == ["fail", "warn"]


def test_model_name_has_no_default_unless_given() -> None:
    (model,) = [p for p in render()["Parameters"] if p["Name"] == "ModelName"]
    assert "DefaultValue" not in model


def test_transform_uses_parameters_for_model_and_resources(definition: dict) -> None:
    arguments = step(definition, "BatchTransform")["Arguments"]
    assert arguments["ModelName"] == {"Get": "Parameters.ModelName"}
    assert arguments["TransformResources"] == {
        "InstanceType": {"Get": "Parameters.TransformInstanceType"},
        "InstanceCount": {"Get": "Parameters.TransformInstanceCount"},
    }


def test_processing_uses_parameters_for_resources_and_inputs(definition: dict) -> None:
    arguments = step(definition, "Preprocess")["Arguments"]
    assert arguments["ProcessingResources"]["ClusterConfig"]["InstanceType"] == {
        "Get": "Parameters.ProcessingInstanceType"
    }
    assert arguments["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == {
        "Get": "Parameters.ProcessingInstanceCount"
    }
    inputs = {i["InputName"]: i["S3Input"] for i in arguments["ProcessingInputs"]}
    assert inputs["data"]["S3Uri"] == {"Get": "Parameters.InputDataUrl"}
    assert inputs["data"]["S3DataDistributionType"] == "ShardedByS3Key"
    assert inputs["data"]["LocalPath"] == "/opt/ml/processing/input/data"
    assert inputs["schema"]["S3Uri"] == {"Get": "Parameters.FeatureSchemaUrl"}
    assert inputs["schema"]["S3DataDistributionType"] == "FullyReplicated"
    assert inputs["code"]["S3Uri"] == "s3://artifacts-bucket/churn/code/preprocess.py"
    # preprocess.py loads quality.py from ../lib/; no baseline given, so no baseline input
    assert inputs["lib"]["S3Uri"] == "s3://artifacts-bucket/churn/code/quality.py"
    assert inputs["lib"]["LocalPath"] == "/opt/ml/processing/input/lib"
    assert "baseline" not in inputs
    app = arguments["AppSpecification"]
    assert app["ContainerEntrypoint"] == ["python3", "/opt/ml/processing/input/code/preprocess.py"]
    assert app["ContainerArguments"] == [
        "--input-dir", "/opt/ml/processing/input/data",
        "--output-dir", "/opt/ml/processing/output",
        "--schema", "/opt/ml/processing/input/schema",
        # as strings: SageMaker refuses a Float parameter reference in ContainerArguments
        "--max-rejected-fraction",
        {"Std:Join": {"On": "", "Values": [{"Get": "Parameters.MaxRejectedFraction"}]}},
        "--max-drift-score",
        {"Std:Join": {"On": "", "Values": [{"Get": "Parameters.MaxDriftScore"}]}},
        "--quality-gate-mode", {"Get": "Parameters.QualityGateMode"},
        "--pipeline-name", {"Get": "Execution.PipelineName"},
        "--exit-message", "/opt/ml/output/message",
        # the inference output in parts for every Transform instance
        "--transform-instances",
        {"Std:Join": {"On": "", "Values": [{"Get": "Parameters.TransformInstanceCount"}]}},
        "--transform-concurrency", "4",  # the vCPUs of the default ml.m5.xlarge
    ]  # fmt: skip
    assert app["ImageUri"] == (
        "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:1.9-0-cpu-py3"
    )


def test_a_baseline_and_gate_settings_when_given() -> None:
    rendered = render(
        baseline_url="s3://stage/churn/model-artifacts/g/v3/dev/out/baseline.json",
        quality_gate=batch_pipeline.QualityGate(0.1, 0.2, "fail"),
    )
    arguments = step(rendered, "Preprocess")["Arguments"]
    inputs = {i["InputName"]: i["S3Input"] for i in arguments["ProcessingInputs"]}
    assert inputs["baseline"] == {
        "S3Uri": "s3://stage/churn/model-artifacts/g/v3/dev/out/baseline.json",
        "LocalPath": "/opt/ml/processing/input/baseline",
        "S3DataType": "S3Prefix",
        "S3InputMode": "File",
        "S3DataDistributionType": "FullyReplicated",
        "S3CompressionType": "None",
    }
    container_arguments = arguments["AppSpecification"]["ContainerArguments"]
    position = container_arguments.index("--baseline")
    assert container_arguments[position + 1] == "/opt/ml/processing/input/baseline"
    defaults = {p["Name"]: p.get("DefaultValue") for p in rendered["Parameters"]}
    assert (
        defaults["MaxRejectedFraction"],
        defaults["MaxDriftScore"],
        defaults["QualityGateMode"],
    ) == (0.1, 0.2, "fail")


def test_every_output_path_holds_the_execution_id(definition: dict) -> None:
    outputs = step(definition, "Preprocess")["Arguments"]["ProcessingOutputConfig"]["Outputs"]
    assert {o["OutputName"]: run_path(o["S3Output"]["S3Uri"]) for o in outputs} == {
        "inference": [OUTPUT_URL, EXECUTION_ID, "preprocess", "inference"],
        "rejected": [OUTPUT_URL, EXECUTION_ID, "preprocess", "rejected"],
        "summary": [OUTPUT_URL, EXECUTION_ID, "preprocess", "summary"],
    }
    assert {o["S3Output"]["LocalPath"] for o in outputs} == {
        "/opt/ml/processing/output/inference",
        "/opt/ml/processing/output/rejected",
        "/opt/ml/processing/output/summary",
    }
    transform_output = step(definition, "BatchTransform")["Arguments"]["TransformOutput"]
    assert run_path(transform_output["S3OutputPath"]) == [OUTPUT_URL, EXECUTION_ID, "predictions"]


def test_transform_keeps_the_id_and_drops_the_features(definition: dict) -> None:
    arguments = step(definition, "BatchTransform")["Arguments"]
    assert arguments["TransformInput"]["ContentType"] == "text/csv"
    assert arguments["TransformInput"]["SplitType"] == "Line"
    assert arguments["TransformOutput"]["Accept"] == "text/csv"
    assert arguments["TransformOutput"]["AssembleWith"] == "Line"
    # input: id,f1..fn -> model sees f1..fn; joined: id,f1..fn,prediction -> id,prediction
    assert arguments["DataProcessing"] == {
        "InputFilter": "$[1:]",
        "JoinSource": "Input",
        "OutputFilter": "$[0,-1]",
    }


def test_with_the_schemas_feature_count_the_output_keeps_every_column_of_the_answer() -> None:
    """``build.py`` passes the schema's feature count: over ``id,f1..f30,answer...`` the
    filter keeps the id and every answer column (the API reference's ``$[0,5:]`` form), so a
    model that answers a label and class probabilities loses none of them."""
    arguments = step(render(feature_count=30), "BatchTransform")["Arguments"]
    assert arguments["DataProcessing"]["OutputFilter"] == "$[0,31:]"
    with pytest.raises(ValueError, match="feature_count"):
        render(feature_count=0)


def test_the_transform_job_asks_the_handlers_for_prediction_metrics(definition: dict) -> None:
    """CreateTransformJob's Environment: the pipeline's name at run time, which the sample
    handlers print in their metric lines (the stage's log filters select on it)."""
    arguments = step(definition, "BatchTransform")["Arguments"]
    assert arguments["Environment"] == {"BATCH_METRICS_PIPELINE": {"Get": "Execution.PipelineName"}}


def test_both_steps_retry_throttling_service_faults_and_transient_job_errors(
    definition: dict,
) -> None:
    for name in ("Preprocess", "BatchTransform"):
        policies = step(definition, name)["RetryPolicies"]
        kinds = {kind for policy in policies for kind in policy["ExceptionType"]}
        assert {"Step.THROTTLING", "Step.SERVICE_FAULT"} <= kinds
        assert {"SageMaker.JOB_INTERNAL_ERROR", "SageMaker.CAPACITY_ERROR"} <= kinds
        assert all(p["MaxAttempts"] >= 2 and p["BackoffRate"] > 1 for p in policies)


def test_secure_network_defaults(definition: dict) -> None:
    network = step(definition, "Preprocess")["Arguments"]["NetworkConfig"]
    assert network == {
        "EnableNetworkIsolation": True,
        "EnableInterContainerTrafficEncryption": True,
    }


def test_network_and_encryption_settings_when_given() -> None:
    definition = render(
        subnets=["subnet-0a", "subnet-0b"],
        security_group_ids=["sg-01"],
        kms_key_id="arn:aws:kms:eu-west-1:111111111111:key/abc",
        enable_network_isolation=False,
    )
    processing = step(definition, "Preprocess")["Arguments"]
    assert processing["NetworkConfig"] == {
        "EnableNetworkIsolation": False,
        "EnableInterContainerTrafficEncryption": True,
        "VpcConfig": {"Subnets": ["subnet-0a", "subnet-0b"], "SecurityGroupIds": ["sg-01"]},
    }
    key = "arn:aws:kms:eu-west-1:111111111111:key/abc"
    assert processing["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == key
    assert processing["ProcessingOutputConfig"]["KmsKeyId"] == key
    transform = step(definition, "BatchTransform")["Arguments"]
    assert transform["TransformOutput"]["KmsKeyId"] == key
    assert transform["TransformResources"]["VolumeKmsKeyId"] == key


def test_explicit_locations_override_the_defaults() -> None:
    definition = render(
        input_data_url="s3://in/x/",
        output_data_url="s3://out/y",
        feature_schema_url="s3://code/schema.json",
        processing_code_url="s3://code/preprocess-0123abcd.py",
        processing_image_uri="111111111111.dkr.ecr.eu-west-1.amazonaws.com/custom:1",
    )
    defaults = {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}
    assert defaults["InputDataUrl"] == "s3://in/x/"
    assert defaults["OutputDataUrl"] == "s3://out/y"
    assert defaults["FeatureSchemaUrl"] == "s3://code/schema.json"
    processing = step(definition, "Preprocess")["Arguments"]
    code = [i for i in processing["ProcessingInputs"] if i["InputName"] == "code"]
    assert code[0]["S3Input"]["S3Uri"] == "s3://code/preprocess-0123abcd.py"
    assert processing["AppSpecification"]["ImageUri"].endswith("/custom:1")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"default_bucket": ""}, "default_bucket must be a non-empty string"),
        ({"role": None}, "role must be a non-empty string"),
        ({"subnets": "subnet-1"}, "subnets must be a list of ids"),
        ({"security_group_ids": [""]}, "security_group_ids must be a list of ids"),
    ],
)
def test_bad_arguments_are_rejected_by_name(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        batch_pipeline.get_pipeline(**{**BASE, **overrides})


def test_building_makes_no_network_call(no_network: list) -> None:
    """Building and serialising touches neither AWS nor any other host."""
    pipeline = batch_pipeline.get_pipeline(**BASE, model_name="m")
    assert json.loads(pipeline.definition())["Steps"]
    assert no_network == []


def test_cli_renders_offline_from_a_fresh_interpreter(tmp_path: Path) -> None:
    """Import, build and write with no credentials, no region and every socket refused.

    A fresh process also covers what the SDK does at import time.
    """
    guard = textwrap.dedent(
        """
        import runpy, socket, sys, threading
        attempts = []
        def refuse(*args, **kwargs):
            attempts.append(args[1:] or args)
            raise OSError("network disabled by the test")
        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.getaddrinfo = refuse
        sys.argv = ["get_pipeline_definition"] + sys.argv[1:]
        try:
            runpy.run_module("pipelines.get_pipeline_definition", run_name="__main__")
        except SystemExit as done:
            code = done.code
        for thread in threading.enumerate():  # background senders get their chance to try
            if thread is not threading.current_thread():
                thread.join(timeout=5)
        if attempts:
            sys.exit(f"network calls attempted: {attempts!r}")
        sys.exit(code)
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k not in {"HOME"}}
    env["HOME"] = str(tmp_path)  # no ~/.aws config or credentials either
    out = tmp_path / "definition.json"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            guard,
            "--module-name",
            "pipelines.batch_inference.pipeline",
            "--kwargs",
            json.dumps({**BASE, "model_name": "m"}),
            "--file-name",
            str(out),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())["Steps"][1]["Name"] == "BatchTransform"


def test_importing_the_sdk_leaves_the_root_logger_alone() -> None:
    """The SDK's import-time basicConfig(INFO) would print every library's INFO lines."""
    script = (
        "import logging; import pipelines.batch_inference.pipeline; "
        "root = logging.getLogger(); print(root.level, len(root.handlers))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(logging.WARNING), "0"]


def test_parameterize_definition_points_a_field_at_a_parameter() -> None:
    document = {"Steps": [{"Name": "T", "Arguments": {"R": {"InstanceCount": 1}}}]}
    result = sdk.parameterize_definition(document, {("T", "R", "InstanceCount"): "Count"})
    assert result["Steps"][0]["Arguments"]["R"]["InstanceCount"] == {"Get": "Parameters.Count"}


@pytest.mark.parametrize(
    ("path", "message"),
    [(("Missing", "R", "InstanceCount"), "no step"), (("T", "R", "Nope"), "has no field R.Nope")],
)
def test_parameterize_definition_fails_loudly_when_the_sdk_shape_changes(
    path: tuple, message: str
) -> None:
    document = {"Steps": [{"Name": "T", "Arguments": {"R": {"InstanceCount": 1}}}]}
    with pytest.raises(KeyError, match=message):
        sdk.parameterize_definition(document, {path: "Count"})


def test_whole_numbers_in_the_stage_file_become_float_defaults() -> None:
    """1 is a valid stage-file value, but the SDK's ParameterFloat refuses an int default."""
    from promotion.stage_files import quality_gate

    gate = quality_gate({"max_drift_score": 1, "max_rejected_fraction": 0})
    defaults = {p["Name"]: p.get("DefaultValue") for p in render(quality_gate=gate)["Parameters"]}
    assert (defaults["MaxDriftScore"], defaults["MaxRejectedFraction"]) == (1.0, 0.0)


def test_publish_turns_the_answers_into_the_stages_table() -> None:
    """Publish reads what the Transform wrote and writes the table's day partitions under
    the table's location, naming the package's columns and stamping every row with the
    model version (a parameter the schedule sets with ModelName) and the execution."""
    definition = render(
        model_version=4,
        id_column="ticket_id",
        output_columns="priority:string,p_low:double",
        output_format="parquet",
        predictions_table_url="s3://b/p/batch-inference/output/table/",
    )
    arguments = step(definition, "Publish")["Arguments"]
    source, code = arguments["ProcessingInputs"]
    assert code["InputName"] == "code"
    assert source["S3Input"]["S3Uri"] == {
        "Get": "Steps.BatchTransform.TransformOutput.S3OutputPath"
    }
    (table,) = arguments["ProcessingOutputConfig"]["Outputs"]
    # the stage's table by default; a run may write elsewhere (a shadow run's own prefix)
    assert table["S3Output"]["S3Uri"] == {"Get": "Parameters.PredictionsTableUrl"}
    (location,) = [p for p in definition["Parameters"] if p["Name"] == "PredictionsTableUrl"]
    assert location["DefaultValue"] == "s3://b/p/batch-inference/output/table/"
    given = arguments["AppSpecification"]["ContainerArguments"]
    flags = dict(zip(given[::2], given[1::2], strict=True))
    assert flags["--id-column"] == "ticket_id" and flags["--format"] == "parquet"
    assert flags["--output-columns"] == "priority:string,p_low:double"
    assert flags["--execution-id"] == {"Get": "Execution.PipelineExecutionId"}
    assert flags["--day"] == {"Get": "Parameters.PredictionDay"}
    defaults = {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}
    assert defaults["ModelVersion"] == 4 and defaults["PredictionDay"] == ""
    with pytest.raises(ValueError, match="output_format"):
        render(output_format="orc")


# ------------------------------------------- the Processing instances' storage volume


def processing_request(definition: dict, name: str, overrides: dict | None = None) -> dict:
    """A Processing step's CreateProcessingJob request as a run submits it (parameters,
    execution variables and the earlier steps' properties resolved; the job's name)."""
    from local_mode.expressions import Context, resolve, resolve_parameters

    context = Context(
        parameters=resolve_parameters(definition, {"ModelName": "m", **(overrides or {})}),
        execution={"PipelineExecutionId": "abc123", "PipelineName": "churn-batch",
                   "StartDateTime": "2026-12-07T02:00:00Z"},
        steps={
            "Preprocess": {"ProcessingOutputConfig": {"Outputs": [
                {"OutputName": "inference", "S3Output": {"S3Uri": "s3://b/run/inference"}}
            ]}},
            "BatchTransform": {"TransformOutput": {"S3OutputPath": "s3://b/run/predictions"}},
        },
    )  # fmt: skip
    arguments = resolve(step(definition, name)["Arguments"], context)
    return {**arguments, "ProcessingJobName": f"{arguments['ProcessingJobName']}-abc123"}


def assert_processing_accepted(request: dict) -> None:
    from tests.provider_requests import Request, problems

    assert problems(Request("sagemaker", "CreateProcessingJob", request)) == []


@pytest.mark.parametrize("volume_gb", [1, 30, 125, 16384])
def test_both_processing_steps_get_the_stages_volume_as_a_parameter_default(
    volume_gb: int,
) -> None:
    definition = render(processing_volume_size_gb=volume_gb)
    (parameter,) = [p for p in definition["Parameters"] if p["Name"] == "ProcessingVolumeSizeInGB"]
    assert (parameter["Type"], parameter["DefaultValue"]) == ("Integer", volume_gb)
    for name in ("Preprocess", "Publish"):
        cluster = step(definition, name)["Arguments"]["ProcessingResources"]["ClusterConfig"]
        assert cluster["VolumeSizeInGB"] == {"Get": "Parameters.ProcessingVolumeSizeInGB"}
        request = processing_request(definition, name)
        assert request["ProcessingResources"]["ClusterConfig"]["VolumeSizeInGB"] == volume_gb
        assert_processing_accepted(request)


def test_a_run_may_give_its_processing_instances_another_volume() -> None:
    """A large backfill on fewer instances than the stage's needs a larger volume: the
    run's value reaches both jobs; one AWS refuses is refused by botocore's model too."""
    from tests.provider_requests import Request, problems

    definition = render(processing_volume_size_gb=30)
    for name in ("Preprocess", "Publish"):
        request = processing_request(
            definition, name, {"ProcessingInstanceCount": 1, "ProcessingVolumeSizeInGB": 500}
        )
        assert request["ProcessingResources"]["ClusterConfig"]["VolumeSizeInGB"] == 500
        assert_processing_accepted(request)
    over = processing_request(definition, "Preprocess", {"ProcessingVolumeSizeInGB": 16385})
    assert problems(Request("sagemaker", "CreateProcessingJob", over)) == [
        "sagemaker.CreateProcessingJob: CreateProcessingJob.ProcessingResources.ClusterConfig."
        "VolumeSizeInGB=16385 is over the maximum 16384"
    ]


@pytest.mark.parametrize("value", [0, 16385, 2.5, "30", True, None, float("inf")])
def test_a_volume_aws_would_refuse_is_refused_by_name(value: object) -> None:
    with pytest.raises(ValueError) as raised:
        render(processing_volume_size_gb=value)
    assert str(raised.value) == (
        "processing_volume_size_gb must be a whole number from 1 to 16384 (GB of storage per "
        f"Processing instance, AWS's range for VolumeSizeInGB), got {value!r}"
    )


# ------------------------------------------------- how BatchTransform sends its requests


def transform_request(definition: dict) -> dict:
    """BatchTransform's CreateTransformJob request as a run with the defaults submits it
    (parameters, execution variables and Preprocess's output resolved; the job's name)."""
    from local_mode.expressions import Context, resolve, resolve_parameters

    context = Context(
        parameters=resolve_parameters(definition, {"ModelName": "churn-model-v3"}),
        execution={"PipelineExecutionId": "abc123", "PipelineName": "churn-batch"},
        steps={"Preprocess": {"ProcessingOutputConfig": {"Outputs": [
            {"OutputName": "inference", "S3Output": {"S3Uri": "s3://b/run/inference"}}
        ]}}},
    )  # fmt: skip
    arguments = resolve(step(definition, "BatchTransform")["Arguments"], context)
    return {**arguments, "TransformJobName": f"{arguments['TransformJobName']}-abc123"}


def assert_aws_accepts(request: dict) -> None:
    """botocore's model (the maximums too), and the 100 MB in flight per instance that
    AWS's CreateTransformJob documents but the model cannot express."""
    from tests.provider_requests import Request, problems

    assert problems(Request("sagemaker", "CreateTransformJob", request)) == []
    assert 1 <= request["MaxPayloadInMB"] <= 100
    assert request["MaxConcurrentTransforms"] * request["MaxPayloadInMB"] <= 100


@pytest.mark.parametrize(
    ("instance_type", "concurrent", "payload_mb"),
    [
        ("ml.m5.xlarge", 4, 6),  # the default type: 4 vCPUs, 4 gunicorn workers
        ("ml.m5.large", 2, 6),
        ("ml.m5.4xlarge", 16, 6),  # 16 x 6 = 96 MB: the largest type 6 MB fits
        ("ml.c5.9xlarge", 36, 2),  # 36 x 6 would be 216 MB in flight: 100 // 36
        ("ml.m5.12xlarge", 48, 2),
        ("ml.m5.24xlarge", 96, 1),
    ],
)
def test_the_transform_sends_one_request_per_vcpu_of_the_stages_type(
    instance_type: str, concurrent: int, payload_mb: int
) -> None:
    definition = render(model_name="churn-model-v3", transform_instance_type=instance_type)
    request = transform_request(definition)
    assert request["TransformResources"]["InstanceType"] == instance_type  # the default's
    assert (request["MaxConcurrentTransforms"], request["MaxPayloadInMB"]) == (
        concurrent,
        payload_mb,
    )
    assert request["BatchStrategy"] == "MultiRecord"
    assert request["ModelClientConfig"] == {
        "InvocationsTimeoutInSeconds": 60,
        "InvocationsMaxRetries": 3,
    }
    assert_aws_accepts(request)


def test_every_type_of_the_table_gets_requests_aws_accepts() -> None:
    from pipelines.batch_inference.transform_settings import transform_requests
    from pipelines.instance_types import INSTANCE_TYPES

    for name, known in INSTANCE_TYPES.items():
        requests = transform_requests(name)
        assert requests.max_concurrent == known.vcpus, name
        assert requests.max_payload_mb == min(6, 100 // known.vcpus), name
        assert requests.max_concurrent * requests.max_payload_mb <= 100, name


def test_the_stages_settings_override_each_default() -> None:
    from pipelines.batch_inference.transform_settings import transform_requests

    definition = render(
        model_name="churn-model-v3",
        transform_instance_type="ml.m5.4xlarge",
        transform_requests=transform_requests(
            "ml.m5.4xlarge",
            max_concurrent=8,
            max_payload_mb=12,
            timeout_seconds=300,
            max_retries=0,
        ),
    )
    request = transform_request(definition)
    assert (request["MaxConcurrentTransforms"], request["MaxPayloadInMB"]) == (8, 12)
    assert request["ModelClientConfig"] == {
        "InvocationsTimeoutInSeconds": 300,
        "InvocationsMaxRetries": 0,
    }
    assert_aws_accepts(request)
    # Preprocess cuts its output for the same number of requests per Transform instance
    (preprocess,) = [s for s in definition["Steps"] if s["Name"] == "Preprocess"]
    arguments = preprocess["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert arguments[arguments.index("--transform-concurrency") + 1] == "8"
    # as --kwargs gives them: a mapping, resolved and checked for the type
    given = render(
        transform_instance_type="ml.m5.4xlarge", transform_requests={"max_payload_mb": 4}
    )
    assert transform_request(given)["MaxConcurrentTransforms"] == 16
    assert transform_request(given)["MaxPayloadInMB"] == 4
    with pytest.raises(TypeError):
        render(transform_requests={"max_concurrency": 4})
    # one setting alone: the others keep their defaults for the type
    alone = transform_requests("ml.m5.4xlarge", max_payload_mb=4)
    assert (alone.max_concurrent, alone.max_payload_mb, alone.timeout_seconds) == (16, 4, 60)
    assert transform_requests("ml.m5.12xlarge", max_concurrent=10).max_payload_mb == 6


@pytest.mark.parametrize(
    ("instance_type", "settings", "message"),
    [
        (
            "ml.g5.xlarge",
            {},
            "transform_instance_type ml.g5.xlarge: ml.g5.xlarge is not in "
            "pipelines/instance_types.py (known: ml.m5, ml.c5 and ml.r5 sizes); add its vCPUs "
            "and memory there, or set transform_max_concurrent in the stage file to its vCPU "
            "count",
        ),
        (
            "ml.m5.4xlarge",
            {"max_payload_mb": 7},
            "transform_max_payload_mb 7 x transform_instance_type ml.m5.4xlarge's 16 vCPUs = "
            "112 MB in flight per instance, over AWS's 100 MB (MaxConcurrentTransforms x "
            "MaxPayloadInMB): set transform_max_payload_mb to 6 or less, or "
            "transform_max_concurrent to 14 or less",
        ),
        (
            "ml.m5.xlarge",
            {"max_concurrent": 20, "max_payload_mb": 6},
            "transform_max_payload_mb 6 x transform_max_concurrent 20 = 120 MB",
        ),
        (
            "ml.m5.xlarge",
            {"max_concurrent": 101},
            "transform_max_concurrent must be a whole number from 1 to 100, got 101",
        ),
        (
            "ml.m5.xlarge",
            {"timeout_seconds": 3601},
            "transform_timeout_seconds must be a whole number from 1 to 3600, got 3601",
        ),
        (
            "ml.m5.xlarge",
            {"max_retries": 4},
            "transform_max_retries must be a whole number from 0 to 3, got 4",
        ),
    ],
)
def test_settings_aws_would_refuse_are_refused_by_name(
    instance_type: str, settings: dict, message: str
) -> None:
    from pipelines.batch_inference.transform_settings import (
        TransformSettingsError,
        transform_requests,
    )

    with pytest.raises(TransformSettingsError) as raised:
        transform_requests(instance_type, **settings)
    assert message in str(raised.value)
    # and building a definition for that type fails the same way (get_pipeline resolves)
    if not settings:
        with pytest.raises(TransformSettingsError, match="set transform_max_concurrent"):
            render(transform_instance_type=instance_type)
