"""The stage template, offline: fmt, validate, tfvars <-> variables, terraform test per stage.

Terraform runs with the project's CLI config (providers from the filesystem mirror only) and
with version checks off, so nothing goes to the network. On a machine without terraform or
the mirror these tests are skipped with the reason; in CI (``CI=true``) they fail instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import hcl2
import pytest

from pipelines.local.emulator import Emulator, environment
from tests.registry import PROJECT, DevRegistry, create_stage, run_build

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "batch-config-template.tf"
TEST_FILES = sorted((REPO / "tests" / "terraform").glob("*.tftest.hcl"))
MIRROR = Path("/opt/tf-plugins/registry.terraform.io/hashicorp/aws")


@pytest.fixture(scope="session")
def terraform() -> str:
    binary = shutil.which("terraform")
    missing = [
        reason
        for reason, absent in (
            ("terraform is not on PATH", binary is None),
            (f"the AWS provider mirror {MIRROR} does not exist", not MIRROR.is_dir()),
        )
        if absent
    ]
    if missing:
        message = "; ".join(missing) + " (install Terraform >= 1.7 and the provider mirror)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return binary


def run_terraform(terraform: str, workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "TF_CLI_CONFIG_FILE": str(REPO / "terraform.tfrc"),
        "TF_DATA_DIR": str(workdir / ".terraform"),
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
        "CHECKPOINT_DISABLE": "1",
    }
    return subprocess.run(
        [terraform, *args, "-no-color"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="session")
def workdir(terraform: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template as a root module, with its tests, initialised from the mirror."""
    root = tmp_path_factory.mktemp("stage-module")
    shutil.copy(TEMPLATE, root / "main.tf")
    (root / "tests").mkdir()
    for test_file in TEST_FILES:
        shutil.copy(test_file, root / "tests" / test_file.name)
    result = run_terraform(terraform, root, "init", "-backend=false")
    assert result.returncode == 0, result.stdout + result.stderr
    return root


def test_formatting(terraform: str) -> None:
    result = run_terraform(
        terraform, REPO, "fmt", "-check", "-diff", str(TEMPLATE), *map(str, TEST_FILES)
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_validate(terraform: str, workdir: Path) -> None:
    result = run_terraform(terraform, workdir, "validate")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "The configuration is valid" in result.stdout


def declared_variables() -> dict[str, dict]:
    with TEMPLATE.open() as handle:
        document = hcl2.load(handle)
    # python-hcl2 keeps the quotes of block labels
    return {name.strip('"'): spec for block in document["variable"] for name, spec in block.items()}


def promoted_tfvars(aws: Emulator, stage: str, tmp_path: Path) -> dict:
    """Real build.py output for ``stage``, against the emulator."""
    dev = DevRegistry(aws)
    dev.register("Approved")
    create_stage(aws, stage, subnets=["subnet-0a"] if stage == "prod" else None)
    output = tmp_path / f"{stage}.tfvars.json"
    code = run_build(tmp_path, stage=stage)
    assert code == 0
    return json.loads(output.read_text())


@pytest.mark.parametrize("stage", ["preprod", "prod"])
def test_tfvars_keys_are_exactly_the_declared_variables(
    aws: Emulator, tmp_path: Path, stage: str
) -> None:
    values = promoted_tfvars(aws, stage, tmp_path)
    variables = declared_variables()
    assert set(values) == set(variables), (
        f"written but not declared: {sorted(set(values) - set(variables))}; "
        f"declared but not written: {sorted(set(variables) - set(values))}"
    )
    required = {name for name, spec in variables.items() if "default" not in spec}
    assert required <= {name for name, value in values.items() if value is not None}


@pytest.mark.parametrize("stage", ["preprod", "prod"])
def test_terraform_test_with_a_mock_provider(
    aws: Emulator, terraform: str, workdir: Path, tmp_path: Path, stage: str
) -> None:
    var_file = tmp_path / f"{stage}.tfvars.json"
    var_file.write_text(json.dumps(promoted_tfvars(aws, stage, tmp_path)))
    result = run_terraform(terraform, workdir, "test", f"-var-file={var_file}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "8 passed, 0 failed" in result.stdout


# moto 5.2.5 does not keep these, so a plan right after apply always wants to change them:
# EnableNetworkIsolation and VpcConfig of a model (the model is then "replaced"), and the
# inline PipelineDefinition it echoes for a pipeline created from an S3 location, and a queue's
# RedrivePolicy, which it re-serialises with spaces (AWS returns the compact JSON it was given).
EMULATOR_DRIFT = {
    "aws_sagemaker_model.batch": {
        "enable_network_isolation",
        "vpc_config",
        "arn",
        "id",
        "container",
        "inference_execution_config",
        "tags_all",
        "primary_container",
    },
    "aws_sagemaker_pipeline.batch": {"pipeline_definition"},
    "aws_sqs_queue.uploads[0]": {"redrive_policy"},
}


def drifting_attributes(change: dict) -> set[str]:
    before, after = change["change"]["before"] or {}, change["change"]["after"] or {}
    unknown = change["change"].get("after_unknown") or {}
    return {
        key
        for key in set(before) | set(after)
        if before.get(key) != after.get(key) or unknown.get(key)
    }


@pytest.mark.parametrize("stage", ["preprod", "prod"])
def test_apply_plan_destroy_against_the_emulator(
    aws: Emulator, terraform: str, tmp_path: Path, stage: str
) -> None:
    """The template applied for real by Terraform's AWS provider, to the stage's account."""
    values = promoted_tfvars(aws, stage, tmp_path)
    module = tmp_path / "module"
    module.mkdir()
    shutil.copy(TEMPLATE, module / "main.tf")
    (module / "backend_override.tf").write_text('terraform {\n  backend "local" {}\n}\n')
    (module / "stage.tfvars.json").write_text(json.dumps(values))
    credentials = aws.account(stage).get_credentials().get_frozen_credentials()
    account_env = {
        "AWS_ACCESS_KEY_ID": credentials.access_key,
        "AWS_SECRET_ACCESS_KEY": credentials.secret_key,
        "AWS_SESSION_TOKEN": credentials.token,
    }

    def tf(*args: str) -> subprocess.CompletedProcess:
        with environment(account_env):
            result = run_terraform(terraform, module, *args)
        assert result.returncode == 0, (
            f"terraform {args[0]}: {result.stdout[-4000:]}{result.stderr}"
        )
        return result

    tf("init")
    tf("apply", "-auto-approve", "-var-file=stage.tfvars.json")

    events, sagemaker = aws.client("events", stage), aws.client("sagemaker", stage)
    rule = f"{PROJECT}-{stage}-batch-inference"
    assert events.describe_rule(Name=rule)["ScheduleExpression"] == values["schedule_expression"]
    (target,) = events.list_targets_by_rule(Rule=rule)["Targets"]
    parameters = {
        p["Name"]: p["Value"]
        for p in target["SageMakerPipelineParameters"]["PipelineParameterList"]
    }
    assert parameters["ModelName"] == values["model_name"]
    assert parameters["TransformInstanceCount"] == str(values["transform_instance_count"])
    pipeline = sagemaker.describe_pipeline(PipelineName=values["pipeline_name"])
    assert target["Arn"] == pipeline["PipelineArn"]
    model = sagemaker.describe_model(ModelName=values["model_name"])
    assert model["PrimaryContainer"]["ModelPackageName"] == values["model_package_arn"]
    pipes = aws.client("pipes", stage).list_pipes()["Pipes"]
    if values["run_on_upload"]:
        (pipe,) = pipes
        described = aws.client("pipes", stage).describe_pipe(Name=pipe["Name"])
        assert described["Target"] == pipeline["PipelineArn"]
        upload_parameters = {
            p["Name"]: p["Value"]
            for p in described["TargetParameters"]["SageMakerPipelineParameters"][
                "PipelineParameterList"
            ]
        }
        assert upload_parameters == {**parameters, "InputDataUrl": "$.body.input_data_url"}
    else:
        assert pipes == []

    tf("plan", "-var-file=stage.tfvars.json", "-out=after-apply.plan")
    plan = json.loads(tf("show", "-json", "after-apply.plan").stdout)
    unexpected = {
        change["address"]: {
            key: (change["change"]["before"] or {}).get(key)
            for key in drifting_attributes(change) - EMULATOR_DRIFT.get(change["address"], set())
        }
        for change in plan.get("resource_changes", [])
        if change["change"]["actions"] != ["no-op"]
    }
    # the message shows what the emulator holds for each drifting attribute
    assert {k: v for k, v in unexpected.items() if v or k not in EMULATOR_DRIFT} == {}

    tf("destroy", "-auto-approve", "-var-file=stage.tfvars.json")
    assert events.list_rules(NamePrefix=rule)["Rules"] == []
    assert sagemaker.list_pipelines()["PipelineSummaries"] == []
