"""The pipeline CLIs: success paths and one clear line + exit code 2 for each bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.stage_model import STAGE_MODEL_ENVIRONMENT
from local_mode import sandbox
from local_mode.emulator import Emulator
from pipelines import get_pipeline_definition, run_pipeline
from tests.registry import IMAGE

MODULE = "pipelines.batch_inference.pipeline"
ROLE = "arn:aws:iam::123456789012:role/SageMakerPipelineRole"
KWARGS = {"region": "eu-west-1", "role": ROLE, "default_bucket": "artifacts", "model_name": "m-1"}


def definition_cli(*args: str) -> int:
    return get_pipeline_definition.main(["--module-name", MODULE, *args])


def test_definition_written_to_file_with_a_summary(tmp_path: Path, capsys) -> None:
    out = tmp_path / "nested" / "definition.json"
    assert definition_cli("--kwargs", json.dumps(KWARGS), "--file-name", str(out)) == 0
    definition = json.loads(out.read_text())
    assert [s["Name"] for s in definition["Steps"]] == ["Preprocess", "BatchTransform", "Publish"]
    stdout = capsys.readouterr().out
    assert "steps: Preprocess (Processing) -> BatchTransform (Transform)" in stdout
    assert "ModelName=m-1" in stdout
    assert "TransformInstanceCount=1" in stdout


def test_definition_to_stdout_and_template_style_flags(capsys) -> None:
    assert get_pipeline_definition.main(["-n", MODULE, "-kwargs", json.dumps(KWARGS)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["Parameters"][0]["Name"] == "InputDataUrl"
    assert captured.err.startswith("steps: ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kwargs", "{not json"], "--kwargs is not valid JSON"),
        (["--kwargs", "[1, 2]"], "--kwargs must be a JSON dict, got list"),
        (["--kwargs", json.dumps({**KWARGS, "instance": 1})], "unknown key(s) instance"),
        (
            ["--kwargs", json.dumps({"region": "eu-west-1"})],
            "missing required key(s) default_bucket, role",
        ),
        (
            ["--kwargs", json.dumps({**KWARGS, "subnets": "subnet-1"})],
            "subnets must be a list of ids",
        ),
    ],
)
def test_bad_kwargs_one_line_exit_2_nothing_written(
    tmp_path: Path, capsys, args: list[str], message: str
) -> None:
    out = tmp_path / "definition.json"
    assert definition_cli(*args, "--file-name", str(out)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert err.startswith("get_pipeline_definition: error: ")
    assert len(err.splitlines()) == 1
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_unknown_module_is_named(capsys) -> None:
    code = get_pipeline_definition.main(["-n", "pipelines.nope", "--kwargs", "{}"])
    assert code == 2
    assert "cannot import 'pipelines.nope'" in capsys.readouterr().err


def test_module_without_get_pipeline_is_named(capsys) -> None:
    code = get_pipeline_definition.main(["-n", "pipelines.sdk", "--kwargs", "{}"])
    assert code == 2
    assert "has no get_pipeline() function" in capsys.readouterr().err


@pytest.fixture
def pipeline_role(aws: Emulator) -> str:
    """The role the SDK checks exists before it creates a pipeline."""
    return aws.client("iam").create_role(
        RoleName="SageMakerPipelineRole",
        AssumeRolePolicyDocument=json.dumps(sandbox.SAGEMAKER_TRUST),
    )["Role"]["Arn"]


def run_cli(role: str, *args: str) -> int:
    return run_pipeline.main(
        ["--module-name", MODULE, "--role-arn", role, "--kwargs", json.dumps(KWARGS), *args]
    )


def test_run_pipeline_upserts_and_starts_through_the_sdk(
    aws: Emulator, pipeline_role: str, capsys
) -> None:
    tags = [{"Key": "project", "Value": "churn"}]
    code = run_cli(
        pipeline_role,
        "--description",
        "nightly scoring",
        "--tags",
        json.dumps(tags),
        "--parameters",
        json.dumps({"ModelName": "m-2", "TransformInstanceCount": 3}),
        "--wait",
        "--poll-seconds",
        "0",
    )
    assert code == 0, capsys.readouterr().err
    sagemaker = aws.client("sagemaker")
    described = sagemaker.describe_pipeline(PipelineName="BatchInference")
    assert described["RoleArn"] == pipeline_role
    assert described["PipelineDescription"] == "nightly scoring"
    deployed = json.loads(described["PipelineDefinition"])
    transform = deployed["Steps"][1]["Arguments"]
    # the deployed document carries the parameter fix-up, not the SDK's constant
    assert transform["TransformResources"]["InstanceCount"] == {
        "Get": "Parameters.TransformInstanceCount"
    }
    tags_found = sagemaker.list_tags(ResourceArn=described["PipelineArn"])["Tags"]
    assert {"Key": "project", "Value": "churn"} in tags_found
    (execution,) = sagemaker.list_pipeline_executions(PipelineName="BatchInference")[
        "PipelineExecutionSummaries"
    ]
    parameters = sagemaker.list_pipeline_parameters_for_execution(
        PipelineExecutionArn=execution["PipelineExecutionArn"]
    )["PipelineParameters"]
    assert {"Name": "ModelName", "Value": "m-2"} in parameters
    assert {"Name": "TransformInstanceCount", "Value": "3"} in parameters
    stdout = capsys.readouterr().out
    assert f"execution: {execution['PipelineExecutionArn']}" in stdout
    assert "status: Succeeded" in stdout


def test_run_pipeline_twice_updates_instead_of_failing(aws: Emulator, pipeline_role: str) -> None:
    assert run_cli(pipeline_role) == 0
    assert run_cli(pipeline_role, "--description", "second") == 0
    sagemaker = aws.client("sagemaker")
    summaries = sagemaker.list_pipelines()["PipelineSummaries"]
    assert [s["PipelineName"] for s in summaries] == ["BatchInference"]
    executions = sagemaker.list_pipeline_executions(PipelineName="BatchInference")
    assert len(executions["PipelineExecutionSummaries"]) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tags", '{"k": "v"}'], "--tags must be a JSON list"),
        (["--tags", '[{"Name": "k"}]'], '--tags must be a JSON list of {"Key"'),
        (["--parameters", "nope"], "--parameters is not valid JSON"),
    ],
)
def test_run_pipeline_bad_input_sends_nothing(
    aws: Emulator, pipeline_role: str, capsys, args: list[str], message: str
) -> None:
    assert run_cli(pipeline_role, *args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert aws.client("sagemaker").list_pipelines()["PipelineSummaries"] == []


def test_run_pipeline_reports_aws_errors_in_one_line(aws: Emulator, capsys) -> None:
    # the role does not exist: the SDK's IAM check fails before anything is created
    code = run_cli("arn:aws:iam::123456789012:role/Missing")
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err.startswith("run_pipeline: AWS error: ")
    assert aws.client("sagemaker").list_pipelines()["PipelineSummaries"] == []


CUSTOM_IMAGE = "222222222222.dkr.ecr.eu-west-1.amazonaws.com/churn/serving@sha256:" + "0" * 64


@pytest.mark.parametrize("image", [IMAGE, CUSTOM_IMAGE])
def test_run_pipeline_local_executes_the_real_definition(
    aws: Emulator, tmp_path: Path, capsys, image: str, built_model
) -> None:
    """--local: the definition get_pipeline builds, run here against the emulator. A model
    served by another image than the scikit-learn container's: Preprocess still runs, and
    the Transform step says local mode cannot stand in for that container."""
    from examples.breast_cancer import data, model

    s3, sagemaker = aws.client("s3"), aws.client("sagemaker")
    sandbox.create_bucket(aws, None, "artifacts")
    repo = Path(__file__).resolve().parents[1] / "pipelines" / "batch_inference"
    for script in ("preprocess.py", "quality.py", "publish.py"):  # the jobs' code, the lib
        s3.upload_file(str(repo / script), "artifacts", f"batch-inference/code/{script}")
    s3.upload_file(
        str(repo / "feature-schema.json"), "artifacts", "batch-inference/code/feature-schema.json"
    )
    generated = data.generate(tmp_path / "input.csv", rows=500, malformed_fraction=0.02)
    s3.upload_file(str(generated.path), "artifacts", "batch-inference/input/day-1.csv")
    archive = built_model.archive
    s3.upload_file(str(archive), "artifacts", "models/model.tar.gz")
    sagemaker.create_model(
        ModelName="m-1",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={
            "Image": image,
            "ModelDataUrl": "s3://artifacts/models/model.tar.gz",
            "Environment": {**model.container_environment(), **STAGE_MODEL_ENVIRONMENT},
        },
    )
    record_path = tmp_path / "record.json"
    code = run_pipeline.main(
        [
            "--local",
            "--module-name",
            MODULE,
            "--kwargs",
            json.dumps(KWARGS),
            "--execution-record",
            str(record_path),
        ]
    )
    record = json.loads(record_path.read_text())
    if image == CUSTOM_IMAGE:
        assert code == 3
        assert [s["StepStatus"] for s in record["Steps"]] == ["Succeeded", "Failed"]
        assert record["Steps"][1]["FailureReason"] == (
            f"model 'm-1': local mode cannot run image {CUSTOM_IMAGE}: it stands in only for "
            "SageMaker's scikit-learn container (Python handlers in the model's code/); this "
            "model runs on SageMaker, deploy the stage to AWS to score with it"
        )
        assert "local mode cannot run image" in capsys.readouterr().err
        return
    assert code == 0, capsys.readouterr().err
    assert [s["StepStatus"] for s in record["Steps"]] == ["Succeeded"] * 3
    (output,) = record["Steps"][1]["Outcome"]["Objects"]
    execution_id = record["PipelineExecutionArn"].rsplit("/", 1)[-1]
    assert (
        output["output"]
        == f"s3://artifacts/batch-inference/output/{execution_id}/predictions/day-1.csv.out"
    )
    assert output["records_out"] == 500 - generated.malformed
    (published,) = record["Steps"][2]["Outcome"]["UploadedObjects"]["table"]
    assert published.startswith("s3://artifacts/batch-inference/predictions-table/day=")
    assert published.endswith(f"/{execution_id}-algo-1-00001.csv")
    assert "status: Succeeded" in capsys.readouterr().out


def test_run_pipeline_local_reports_a_failed_run(aws: Emulator, tmp_path: Path, capsys) -> None:
    sandbox.create_bucket(aws, None, "artifacts")
    code = run_pipeline.main(["--local", "--module-name", MODULE, "--kwargs", json.dumps(KWARGS)])
    assert code == 3
    assert "no object under s3://artifacts/batch-inference/input/" in capsys.readouterr().err


def test_run_pipeline_needs_a_role_unless_local(capsys) -> None:
    assert run_pipeline.main(["--module-name", MODULE, "--kwargs", json.dumps(KWARGS)]) == 2
    assert "--role-arn is required (unless --local)" in capsys.readouterr().err
