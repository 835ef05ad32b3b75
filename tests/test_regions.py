"""The scikit-learn image: the pipeline (SDK table) and the execution role's ECR permission
(the AWS provider's table, infra/target-account) name the same account in every region.

The account SageMaker's framework images live in differs by region; a definition built for
one region with another's account cannot pull its image, and a role allowing the wrong
registry cannot either. Both tables are offline, so this needs no AWS and no emulator.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines import sdk
from pipelines.batch_inference import pipeline as batch_pipeline
from tests.terraform_cli import run_terraform

REGIONS = ["eu-west-1", "us-east-1", "ap-southeast-2", "sa-east-1"]
# the data source infra/target-account reads, in a root of its own: no resource, no API call
PROVIDER_TABLE = """
variable "region" { type = string }
provider "aws" {
  region                      = var.region
  access_key                  = "unused"
  secret_key                  = "unused"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
}
data "aws_sagemaker_prebuilt_ecr_image" "sklearn" {
  repository_name = "sagemaker-scikit-learn"
}
output "registry_id" {
  value = data.aws_sagemaker_prebuilt_ecr_image.sklearn.registry_id
}
"""


@pytest.fixture(scope="module")
def provider_table(terraform: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("prebuilt-image")
    (root / "main.tf").write_text(PROVIDER_TABLE)
    init = run_terraform(terraform, root, "init", "-input=false")
    assert init.returncode == 0, init.stdout + init.stderr
    return root


def provider_registry(terraform: str, root: Path, region: str) -> str:
    applied = run_terraform(
        terraform, root, "apply", "-auto-approve", "-input=false", f"-var=region={region}"
    )
    assert applied.returncode == 0, applied.stdout + applied.stderr
    output = run_terraform(terraform, root, "output", "-json")
    return json.loads(output.stdout)["registry_id"]["value"]


def definition_image_account(region: str) -> str:
    """The account of the Processing image in a definition built for ``region``."""
    pipeline = batch_pipeline.get_pipeline(
        region=region,
        role="arn:aws:iam::222222222222:role/execution",
        default_bucket="stage-bucket",
        project_name="churn",
        model_name="churn-models-preprod-v1",
    )
    (preprocess,) = [
        s for s in json.loads(pipeline.definition())["Steps"] if s["Type"] == "Processing"
    ]
    image = preprocess["Arguments"]["AppSpecification"]["ImageUri"]
    return image.split(".", 1)[0]


def test_the_regions_differ_so_the_check_means_something() -> None:
    accounts = {definition_image_account(region) for region in REGIONS}
    assert len(accounts) > 1


@pytest.mark.parametrize("region", REGIONS)
def test_pipeline_image_and_role_permission_name_the_same_account(
    terraform: str, provider_table: Path, region: str
) -> None:
    account = definition_image_account(region)
    assert account == provider_registry(terraform, provider_table, region)
    expected = sdk.image_uris.retrieve(
        framework="sklearn",
        region=region,
        version=batch_pipeline.DEFAULT_SKLEARN_VERSION,
        py_version="py3",
        instance_type=batch_pipeline.DEFAULT_INSTANCE_TYPE,
    )
    assert expected.startswith(f"{account}.dkr.ecr.{region}.amazonaws.com/")
