"""build.py + utils.py against a three-account emulator, through real boto3 clients."""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.client import BaseClient
from botocore.stub import Stubber

import build
import utils
from local_mode.emulator import ACCOUNTS, CLIENT_CONFIG, Emulator, environment, role_arn
from promotion import orchestration
from tests.registry import (
    DEV_BUCKET,
    GROUP,
    IMAGE,
    PROJECT,
    DevRegistry,
    bucket_keys,
    create_stage,
    one_line_error,
    run_build,
    stage_bucket,
    target_packages,
)

REPO = Path(__file__).resolve().parents[1]


def tfvars(tmp_path: Path, stage: str = "preprod") -> dict:
    return json.loads((tmp_path / f"{stage}.tfvars.json").read_text())


def object_bytes(aws: Emulator, account: str, uri: str) -> bytes:
    bucket, key = utils.parse_s3_uri(uri)
    return aws.client("s3", account).get_object(Bucket=bucket, Key=key)["Body"].read()


# ------------------------------------------------------------------ the happy path


def test_promotes_the_newest_approved_package_into_preprod(
    aws: Emulator, dev: DevRegistry, preprod: dict, tmp_path: Path, capsys
) -> None:
    dev.register("Approved")
    newest_approved = dev.register("Approved", metadata={"git-sha": "abc123"})
    dev.register("PendingManualApproval")

    assert run_build(tmp_path) == 0, capsys.readouterr().err

    (package,) = target_packages(aws)
    source = aws.client("sagemaker", "dev").describe_model_package(ModelPackageName=newest_approved)
    assert package["ModelApprovalStatus"] == "Approved"
    assert utils.account_of(package["ModelPackageArn"]) == ACCOUNTS["preprod"]
    metadata = package["CustomerMetadataProperties"]
    assert metadata["SourceModelPackageArn"] == newest_approved
    assert metadata["SourceAccount"] == ACCOUNTS["dev"]
    assert metadata["SourceModelPackageVersion"] == "2"
    assert metadata["git-sha"] == "abc123"  # the source's own metadata travels along
    assert "PromotedAt" in metadata

    (container,) = package["InferenceSpecification"]["Containers"]
    (source_container,) = source["InferenceSpecification"]["Containers"]
    assert container["Image"] == IMAGE
    assert container["Environment"] == {"SAGEMAKER_PROGRAM": "inference.py", "RUN": "2"}
    expected_key = (
        f"{PROJECT}/model-artifacts/{GROUP}/v2/{DEV_BUCKET}/training/run-2/output/model.tar.gz"
    )
    assert container["ModelDataUrl"] == f"s3://{stage_bucket('preprod')}/{expected_key}"
    # byte-identical artifact, now in the preprod account's bucket
    assert object_bytes(aws, "preprod", container["ModelDataUrl"]) == object_bytes(
        aws, "dev", source_container["ModelDataUrl"]
    )

    values = tfvars(tmp_path)
    assert values["model_package_arn"] == package["ModelPackageArn"]
    assert values["source_model_package_arn"] == newest_approved
    assert values["model_version"] == 2
    assert values["model_name"] == "churn-models-preprod-v2"
    assert values["environment"] == "preprod"
    assert values["artifacts_bucket"] == stage_bucket("preprod")
    assert values["sagemaker_role_arn"] == preprod["sagemaker-role-arn"]
    assert values["kms_key_arn"] is None
    assert values["subnet_ids"] == [] and values["security_group_ids"] == []
    assert values["schedule_expression"] == "rate(1 day)"  # from pre-prod-config.tfvars.json
    assert values["pipeline_name"] == "churn-preprod-batch-inference"

    stdout = capsys.readouterr().out
    assert f"source:   {newest_approved} (version 2)" in stdout
    assert "created" in stdout


def test_baselines_and_metrics_travel_with_the_package(
    aws: Emulator, dev: DevRegistry, preprod: dict, tmp_path: Path, capsys
) -> None:
    """The package's DriftCheckBaselines and ModelMetrics point at objects in dev; the stage's
    package must point at copies in its own bucket (a role there cannot read dev's)."""
    baseline = json.dumps({"format": "sagemaker-batch-mlops/baseline/1", "features": {}})
    uris = {
        name: dev.put_artifact(f"training/run-1/output/{name}", body.encode())
        for name, body in (
            ("baseline.json", baseline),
            ("constraints.json", "{}"),
            ("evaluation.json", '{"accuracy": 0.97}'),
            ("bias-config.json", "{}"),
        )
    }
    source_quality = {
        "DriftCheckBaselines": {
            "ModelDataQuality": {
                "Statistics": {"ContentType": "application/json", "S3Uri": uris["baseline.json"]},
                "Constraints": {
                    "ContentType": "application/json",
                    "S3Uri": uris["constraints.json"],
                },
            },
            "Bias": {"ConfigFile": {"S3Uri": uris["bias-config.json"]}},
        },
        "ModelMetrics": {
            "ModelQuality": {
                "Statistics": {"ContentType": "application/json", "S3Uri": uris["evaluation.json"]}
            }
        },
    }
    dev.register("Approved", quality=source_quality)
    assert run_build(tmp_path, "--dry-run") == 0
    planned = capsys.readouterr().out
    assert all(uri in planned for uri in uris.values())  # the plan lists them as copies

    assert run_build(tmp_path) == 0
    (package,) = target_packages(aws)
    prefix = f"s3://{stage_bucket('preprod')}/{PROJECT}/model-artifacts/{GROUP}/v1/{DEV_BUCKET}/"
    moved = {uri: prefix + uri.split(f"s3://{DEV_BUCKET}/", 1)[1] for uri in uris.values()}
    text = json.dumps(source_quality)
    for source_uri, target in moved.items():
        text = text.replace(f'"{source_uri}"', f'"{target}"')
    expected = json.loads(text)  # the same documents, every URI in the stage's bucket
    assert package["DriftCheckBaselines"] == expected["DriftCheckBaselines"]
    assert package["ModelMetrics"] == expected["ModelMetrics"]
    for source_uri, target in moved.items():
        assert object_bytes(aws, "preprod", target) == object_bytes(aws, "dev", source_uri)


def test_pipeline_definition_and_code_are_uploaded_content_addressed(
    aws: Emulator, dev: DevRegistry, preprod: dict, tmp_path: Path
) -> None:
    dev.register("Approved")
    assert run_build(tmp_path) == 0
    values = tfvars(tmp_path)
    bucket = values["artifacts_bucket"]
    definition_bytes = object_bytes(
        aws, "preprod", f"s3://{bucket}/{values['pipeline_definition_s3_key']}"
    )
    digest = hashlib.sha256(definition_bytes).hexdigest()[:16]
    assert (
        values["pipeline_definition_s3_key"]
        == f"{PROJECT}/pipelines/preprod/{digest}/definition.json"
    )
    definition = json.loads(definition_bytes)
    defaults = {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}
    assert defaults["ModelName"] == values["model_name"]
    assert defaults["FeatureSchemaUrl"] == values["feature_schema_url"]
    assert defaults["InputDataUrl"] == values["input_data_url"]
    code_input = next(
        i
        for i in definition["Steps"][0]["Arguments"]["ProcessingInputs"]
        if i["InputName"] == "code"
    )["S3Input"]["S3Uri"]
    script = (REPO / "pipelines" / "batch_inference" / "preprocess.py").read_bytes()
    assert object_bytes(aws, "preprod", code_input) == script
    assert hashlib.sha256(script).hexdigest()[:16] in code_input
    schema = (REPO / "pipelines" / "batch_inference" / "feature-schema.json").read_bytes()
    assert object_bytes(aws, "preprod", values["feature_schema_url"]) == schema
    # the output keeps the id and every answer column: the filter counts the schema's features
    transform = definition["Steps"][1]["Arguments"]["DataProcessing"]
    assert transform["OutputFilter"] == f"$[0,{len(json.loads(schema)['features']) + 1}:]"

    # same inputs: same key; a new model version changes the definition, hence the key
    assert run_build(tmp_path) == 0
    assert tfvars(tmp_path)["pipeline_definition_s3_key"] == values["pipeline_definition_s3_key"]
    dev.register("Approved")
    assert run_build(tmp_path) == 0
    assert tfvars(tmp_path)["pipeline_definition_s3_key"] != values["pipeline_definition_s3_key"]


def test_approval_order_is_not_creation_order(
    aws: Emulator, dev: DevRegistry, preprod: dict, tmp_path: Path
) -> None:
    v1 = dev.register("PendingManualApproval")
    v2 = dev.register("PendingManualApproval")
    v3 = dev.register("PendingManualApproval")
    dev.register("Rejected")
    dev.set_status(v2, "Approved")
    dev.set_status(v1, "Approved")  # approved last, but older
    dev.set_status(v3, "Rejected")
    assert run_build(tmp_path) == 0
    assert tfvars(tmp_path)["source_model_package_arn"] == v2


def test_more_than_a_page_of_packages(
    aws: Emulator, dev: DevRegistry, preprod: dict, tmp_path: Path
) -> None:
    approved = dev.register("Approved")
    for _ in range(110):
        dev.register("PendingManualApproval", containers=[{"Image": IMAGE}])
    assert len(dev.versions()) == 111
    assert run_build(tmp_path) == 0
    assert tfvars(tmp_path)["source_model_package_arn"] == approved


def test_multi_container_package_with_prefix_sources(
    aws: Emulator, dev: DevRegistry, preprod: dict, tmp_path: Path
) -> None:
    first = dev.put_artifact("pipeline/preprocessor/model.tar.gz", b"preprocessor bytes")
    second = dev.put_artifact("pipeline/estimator/model.tar.gz", b"estimator bytes")
    dev.put_artifact("pipeline/estimator/extra/vocabulary.txt", b"words")
    dev.put_artifact("pipeline/estimator/extra/code/inference.py", b"def model_fn(d): ...")
    containers = [
        {"Image": IMAGE, "ModelDataUrl": first, "Environment": {"STEP": "1"}},
        {
            "Image": IMAGE + "-two",
            "ModelDataUrl": second,
            "AdditionalS3DataSource": {
                "S3Uri": f"s3://{DEV_BUCKET}/pipeline/estimator/extra/",
                "S3DataType": "S3Prefix",
            },
            "Environment": {"STEP": "2"},
        },
    ]
    dev.register("Approved", containers=containers)
    assert run_build(tmp_path) == 0
    (package,) = target_packages(aws)
    one, two = package["InferenceSpecification"]["Containers"]
    assert (one["Environment"], two["Environment"]) == ({"STEP": "1"}, {"STEP": "2"})
    assert two["Image"] == IMAGE + "-two"
    assert object_bytes(aws, "preprod", one["ModelDataUrl"]) == b"preprocessor bytes"
    assert object_bytes(aws, "preprod", two["ModelDataUrl"]) == b"estimator bytes"
    prefix = two["AdditionalS3DataSource"]["S3Uri"]
    assert prefix.startswith(
        f"s3://{stage_bucket('preprod')}/{PROJECT}/model-artifacts/{GROUP}/v1/"
    )
    assert object_bytes(aws, "preprod", prefix + "vocabulary.txt") == b"words"
    assert object_bytes(aws, "preprod", prefix + "code/inference.py") == b"def model_fn(d): ..."


def test_rerun_is_a_no_op_with_the_same_arn(
    aws: Emulator, dev: DevRegistry, preprod: dict, tmp_path: Path, capsys
) -> None:
    dev.register("Approved")
    assert run_build(tmp_path) == 0
    first = tfvars(tmp_path)
    objects = bucket_keys(aws, "preprod", stage_bucket("preprod"))
    capsys.readouterr()
    assert run_build(tmp_path) == 0
    assert tfvars(tmp_path) == first
    assert len(target_packages(aws)) == 1
    assert bucket_keys(aws, "preprod", stage_bucket("preprod")) == objects
    assert "reused (already promoted)" in capsys.readouterr().out


def test_model_version_pins_and_rolls_back(
    aws: Emulator, dev: DevRegistry, preprod: dict, tmp_path: Path
) -> None:
    v1 = dev.register("Approved")
    v2 = dev.register("Approved")
    assert run_build(tmp_path) == 0
    assert tfvars(tmp_path)["source_model_package_arn"] == v2
    assert run_build(tmp_path, "--model-version", "1") == 0
    values = tfvars(tmp_path)
    assert values["source_model_package_arn"] == v1
    assert values["model_name"] == "churn-models-preprod-v1"
    sources = {
        p["CustomerMetadataProperties"]["SourceModelPackageArn"] for p in target_packages(aws)
    }
    assert sources == {v1, v2}


def test_prod_gets_its_own_copy_and_kms_encryption(
    aws: Emulator, dev: DevRegistry, tmp_path: Path
) -> None:
    settings = create_stage(aws, "prod", kms=True, subnets=["subnet-0a", "subnet-0b"])
    dev.register("Approved")
    assert run_build(tmp_path, stage="prod") == 0
    values = tfvars(tmp_path, "prod")
    assert values["kms_key_arn"] == settings["kms-key-arn"]
    assert values["subnet_ids"] == ["subnet-0a", "subnet-0b"]
    assert values["security_group_ids"] == ["sg-0123456789abcdef0"]
    assert values["environment"] == "prod"
    (package,) = target_packages(aws, "prod")
    bucket, key = utils.parse_s3_uri(
        package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    )
    head = aws.client("s3", "prod").head_object(Bucket=bucket, Key=key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == settings["kms-key-arn"]
    # prod and preprod registries stay apart: preprod has nothing
    assert target_packages(aws, "preprod") == []


def test_environment_variables_from_the_workflow_are_defaults(
    aws: Emulator, dev: DevRegistry, preprod: dict, tmp_path: Path, monkeypatch
) -> None:
    dev.register("Approved")
    variables = {
        "SAGEMAKER_PROJECT_NAME": PROJECT,
        "SAGEMAKER_PROJECT_ID": "p-12345",
        "MODEL_PACKAGE_GROUP_NAME": GROUP,
        "AWS_DEV_ACCOUNT_NUMBER": ACCOUNTS["dev"],
        "AWS_PREPROD_ACCOUNT_NUMBER": ACCOUNTS["preprod"],
    }
    sent: list[tuple[str, dict]] = []  # every request build.py makes, as botocore sends it
    make_api_call = BaseClient._make_api_call  # type: ignore[attr-defined]

    def recorded(client: BaseClient, name: str, params: dict) -> Any:
        sent.append((name, params))
        return make_api_call(client, name, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", recorded)
    with environment(variables):
        code = build.main(
            [
                "--stage",
                "preprod",
                "--source-role-arn",
                role_arn("dev"),
                "--target-role-arn",
                role_arn("preprod"),
                "--output",
                str(tmp_path / "preprod.tfvars.json"),
            ]
        )
    assert code == 0
    values = tfvars(tmp_path)
    assert values["project_id"] == "p-12345"
    (package,) = target_packages(aws)
    sagemaker = aws.client("sagemaker", "preprod")
    group = sagemaker.describe_model_package_group(ModelPackageGroupName=GROUP)
    tags = sagemaker.list_tags(ResourceArn=group["ModelPackageGroupArn"])["Tags"]
    assert {"Key": "sagemaker:project-id", "Value": "p-12345"} in tags
    # the versioned package takes the group's tags and may carry none of its own (AWS's
    # CreateModelPackage reference: "you cannot supply a tag argument")
    (created,) = [params for name, params in sent if name == "CreateModelPackage"]
    assert created["ModelPackageGroupName"] == GROUP and "Tags" not in created
    assert package["ModelPackageArn"]


def test_dry_run_changes_nothing(
    aws: Emulator, dev: DevRegistry, preprod: dict, tmp_path: Path, capsys
) -> None:
    dev.register("Approved")
    before = bucket_keys(aws, "preprod", stage_bucket("preprod"))
    assert run_build(tmp_path, "--dry-run") == 0
    assert target_packages(aws) == []
    assert bucket_keys(aws, "preprod", stage_bucket("preprod")) == before == []
    assert not (tmp_path / "preprod.tfvars.json").exists()
    out = capsys.readouterr().out
    assert "would copy 1 object(s)" in out and "nothing changed" in out


# ------------------------------------------------------------------ interrupted runs


def test_plan_only_writes_the_tfvars_and_nothing_in_aws(
    aws: Emulator, dev: DevRegistry, preprod: dict, tmp_path: Path, capsys
) -> None:
    """The prod plan before the gate: the variables a deployment would apply, from reads
    only; the same definition key the deployment then uploads."""
    dev.register("Approved")
    objects = bucket_keys(aws, "preprod", stage_bucket("preprod"))
    assert run_build(tmp_path, "--plan-only") == 0
    planned = tfvars(tmp_path)
    assert "plan only: nothing changed in AWS" in capsys.readouterr().out
    assert target_packages(aws) == []
    assert bucket_keys(aws, "preprod", stage_bucket("preprod")) == objects
    assert planned["model_package_arn"].endswith(
        f"model-package/{GROUP.lower()}/promoted-at-apply-from-v1"
    )
    assert run_build(tmp_path) == 0  # the deployment
    deployed = tfvars(tmp_path)
    assert deployed["pipeline_definition_s3_key"] == planned["pipeline_definition_s3_key"]
    assert {k: v for k, v in planned.items() if k != "model_package_arn"} == {
        k: v for k, v in deployed.items() if k != "model_package_arn"
    }
    # once promoted, a plan names the real package
    assert run_build(tmp_path, "--plan-only") == 0
    assert tfvars(tmp_path)["model_package_arn"] == deployed["model_package_arn"]


def test_interrupted_after_the_copy_leaves_no_package_and_rerun_completes(
    aws: Emulator, dev: DevRegistry, preprod: dict, tmp_path: Path, monkeypatch
) -> None:
    dev.register("Approved")

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("runner killed")

    with monkeypatch.context() as patched:
        patched.setattr(orchestration, "ensure_group", crash)
        with pytest.raises(KeyboardInterrupt):
            run_build(tmp_path)
    assert target_packages(aws) == []
    copied = bucket_keys(aws, "preprod", stage_bucket("preprod"))
    assert len(copied) == 1  # the complete artifact, nothing partial

    assert run_build(tmp_path) == 0
    assert len(target_packages(aws)) == 1
    # the artifact was not copied twice: only the stage files were added
    new_keys = set(bucket_keys(aws, "preprod", stage_bucket("preprod"))) - set(copied)
    assert all("/code/" in key or "/pipelines/" in key for key in new_keys)


def test_interrupted_after_the_package_rerun_reuses_it(
    aws: Emulator, dev: DevRegistry, preprod: dict, tmp_path: Path, monkeypatch
) -> None:
    dev.register("Approved")
    with monkeypatch.context() as patched:
        patched.setattr(
            orchestration,
            "publish_stage_files",
            lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt),
        )
        with pytest.raises(KeyboardInterrupt):
            run_build(tmp_path)
    (created,) = target_packages(aws)
    assert run_build(tmp_path) == 0
    (reused,) = target_packages(aws)
    assert reused["ModelPackageArn"] == created["ModelPackageArn"]
    assert tfvars(tmp_path)["model_package_arn"] == created["ModelPackageArn"]


# ------------------------------------------------------------------ errors


def write_deployment_record(aws: Emulator, body: bytes) -> None:
    aws.client("s3", "preprod").put_object(
        Bucket=stage_bucket("preprod"),
        Key=utils.deployment_record_key(PROJECT, "preprod"),
        Body=body,
    )


def deployed(version: int) -> dict:
    package = "arn:aws:sagemaker:eu-west-1:{}:model-package/churn-models/" + str(version)
    return {
        "model_name": f"churn-models-preprod-v{version}",
        "model_package_arn": package.format(ACCOUNTS["preprod"]),
        "source_model_package_arn": package.format(ACCOUNTS["dev"]),
        "model_version": version,
    }


def test_previous_model_is_the_deployed_one_and_survives_a_redeploy(
    aws: Emulator, dev: DevRegistry, preprod: dict, tmp_path: Path
) -> None:
    dev.register("Approved")
    dev.register("Approved")
    # v1 deployed (v0 kept): promoting v2 keeps v1
    write_deployment_record(aws, json.dumps({"current": deployed(1), "previous": None}).encode())
    assert run_build(tmp_path) == 0
    assert tfvars(tmp_path)["previous_model"] == deployed(1)
    # v2 deployed, v1 kept: deploying v2 again keeps v1, not v2 itself
    write_deployment_record(
        aws, json.dumps({"current": deployed(2), "previous": deployed(1)}).encode()
    )
    assert run_build(tmp_path) == 0
    assert tfvars(tmp_path)["previous_model"] == deployed(1)


@pytest.mark.parametrize(
    ("setup", "args", "code", "message"),
    [
        ("empty", (), 3, "has no Approved package"),
        ("pending-only", (), 3, "has no Approved package"),
        ("no-group", (), 4, "model package group 'churn-models' does not exist"),
        ("approved", ("--model-version", "9"), 5, "has no version 9"),
        (
            "pending-only",
            ("--model-version", "1"),
            5,
            "version 1 of 'churn-models' is PendingManualApproval",
        ),
        ("missing-artifact", (), 7, "does not exist in the source bucket"),
    ],
)
def test_source_errors(
    aws: Emulator,
    preprod: dict,
    tmp_path: Path,
    capsys,
    setup: str,
    args: tuple,
    code: int,
    message: str,
) -> None:
    if setup != "no-group":
        dev = DevRegistry(aws)
        if setup == "pending-only":
            dev.register("PendingManualApproval")
        elif setup == "approved":
            dev.register("Approved")
        elif setup == "missing-artifact":
            dev.register(
                "Approved",
                containers=[
                    {"Image": IMAGE, "ModelDataUrl": f"s3://{DEV_BUCKET}/gone/model.tar.gz"}
                ],
            )
    assert run_build(tmp_path, *args) == code
    assert message in one_line_error(capsys)
    assert target_packages(aws) == []
    assert bucket_keys(aws, "preprod", stage_bucket("preprod")) == []
    assert not (tmp_path / "preprod.tfvars.json").exists()


@pytest.mark.parametrize(
    ("skip", "create_bucket", "message"),
    [
        (("artifacts-bucket",), True, "/churn/preprod/artifacts-bucket missing"),
        (
            ("sagemaker-role-arn", "artifacts-bucket"),
            True,
            "/churn/preprod/artifacts-bucket, /churn/preprod/sagemaker-role-arn",
        ),
        ((), False, "artifacts bucket 'preprod-artifacts-222222222222' (from SSM) does not exist"),
    ],
)
def test_stage_not_ready(
    aws: Emulator,
    dev: DevRegistry,
    tmp_path: Path,
    capsys,
    skip: tuple,
    create_bucket: bool,
    message: str,
) -> None:
    dev.register("Approved")
    create_stage(aws, "preprod", skip_parameters=skip, with_bucket=create_bucket)
    assert run_build(tmp_path) == 8
    assert message in one_line_error(capsys)
    assert target_packages(aws) == []


@pytest.mark.parametrize("record", [b"{broken", b"[]", b'{"previous": null}'])
def test_unreadable_deployment_record_changes_nothing(
    aws: Emulator, dev: DevRegistry, preprod: dict, tmp_path: Path, capsys, record: bytes
) -> None:
    dev.register("Approved")
    write_deployment_record(aws, record)
    objects = bucket_keys(aws, "preprod", stage_bucket("preprod"))
    assert run_build(tmp_path) == 8
    assert "deployment record" in one_line_error(capsys)
    assert target_packages(aws) == []
    assert bucket_keys(aws, "preprod", stage_bucket("preprod")) == objects


@pytest.mark.parametrize(
    ("config_text", "extra", "message"),
    [
        ("{broken", (), "is not valid JSON"),
        ("[1]", (), "must hold a JSON object"),
        ('{"environment": "prod"}', (), "is for environment 'prod', not 'preprod'"),
    ],
)
def test_bad_stage_config(
    aws: Emulator,
    dev: DevRegistry,
    preprod: dict,
    tmp_path: Path,
    capsys,
    config_text,
    extra,
    message,
) -> None:
    dev.register("Approved")
    config = tmp_path / "config.json"
    config.write_text(config_text)
    assert run_build(tmp_path, "--config", str(config), *extra) == 2
    assert message in one_line_error(capsys)
    assert target_packages(aws) == []


@pytest.mark.parametrize(
    ("setting", "instance_type"),
    [
        ("processing_instance_type", "ml.g5.xlarge"),
        ("transform_instance_type", "ml.g4dn.2xlarge"),  # (Batch Transform takes no r5d)
        ("endpoint.instance_type", "ml.g4dn.xlarge"),  # the endpoint's volume has the key too
    ],
)
def test_local_nvme_instance_types_are_refused_when_volumes_are_encrypted(
    aws: Emulator, dev: DevRegistry, tmp_path: Path, capsys, setting: str, instance_type: str
) -> None:
    """SageMaker refuses a VolumeKmsKeyId on types with local NVMe storage: caught before
    anything is copied, with the setting named, instead of at the first scheduled run."""
    create_stage(aws, "prod", kms=True)
    dev.register("Approved")
    config = json.loads((REPO / "prod-config.tfvars.json").read_text())
    path = tmp_path / "config.json"
    change: dict[str, object] = {setting: instance_type}
    if setting.startswith("endpoint."):
        change = {"endpoint": {"instance_type": instance_type}}
    path.write_text(json.dumps({**config, **change}))
    objects = bucket_keys(aws, "prod", stage_bucket("prod"))
    assert run_build(tmp_path, "--config", str(path), stage="prod") == 2
    error = one_line_error(capsys)
    assert f"{setting} {instance_type} has local NVMe storage" in error
    assert target_packages(aws, "prod") == []
    assert bucket_keys(aws, "prod", stage_bucket("prod")) == objects


def test_a_group_name_too_long_for_the_model_names_is_refused(
    aws: Emulator, preprod: dict, tmp_path: Path, capsys
) -> None:
    """A hashed model name would fall outside the roles' model/<group>-<stage>-* rights."""
    group = "g" * 49
    argv = ["--stage", "preprod", "--model-package-group-name", group, "--project-name", PROJECT]
    code = build.main([*argv, "--target-role-arn", role_arn("preprod"),
                       "--source-role-arn", role_arn("dev"),
                       "--output", str(tmp_path / "preprod.tfvars.json")])  # fmt: skip
    assert code == 2
    error = one_line_error(capsys)
    assert "is 49 characters" in error and "48 or fewer" in error
    assert not (tmp_path / "preprod.tfvars.json").exists()
    assert utils.model_name("g" * 48, "preprod", 99999) == f"{'g' * 48}-preprod-v99999"


def test_unknown_stage_and_bad_version_are_usage_errors(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        build.main(["--stage", "staging", "--project-name", PROJECT])
    assert stopped.value.code == 2
    assert "invalid choice: 'staging'" in one_line_error(capsys)
    with pytest.raises(SystemExit) as stopped:
        build.main(["--stage", "prod", "--model-version", "zero"])
    assert stopped.value.code == 2
    assert "'zero' is not a version number" in one_line_error(capsys)


def test_missing_project_name_is_named(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("SAGEMAKER_PROJECT_NAME", raising=False)
    code = build.main(
        ["--stage", "prod", "--model-package-group-name", GROUP, "--region", "eu-west-1"]
    )
    assert code == 2
    assert "pass --project-name or set SAGEMAKER_PROJECT_NAME" in one_line_error(capsys)


def test_wrong_target_account_is_refused_before_any_change(
    aws: Emulator, dev: DevRegistry, preprod: dict, tmp_path: Path, capsys
) -> None:
    dev.register("Approved")
    with environment({"AWS_PREPROD_ACCOUNT_NUMBER": ACCOUNTS["prod"]}):
        assert run_build(tmp_path) == 11
    assert (
        "credentials are for account 222222222222, but AWS_PREPROD_ACCOUNT_NUMBER is 333333333333"
        in (one_line_error(capsys))
    )
    assert target_packages(aws) == []


@pytest.fixture
def iam_enforced(aws: Emulator):
    """Turn on moto's IAM enforcement for one test, with an admin CI user as the caller."""
    iam = aws.client("iam")
    iam.create_user(UserName="ci")
    admin = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    }
    iam.put_user_policy(UserName="ci", PolicyName="admin", PolicyDocument=json.dumps(admin))
    key = iam.create_access_key(UserName="ci")["AccessKey"]
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
    for account in ("dev", "preprod"):
        account_iam = aws.client("iam", account)
        account_iam.create_role(RoleName="no-access", AssumeRolePolicyDocument=json.dumps(trust))
        account_iam.create_role(RoleName="admin", AssumeRolePolicyDocument=json.dumps(trust))
        account_iam.put_role_policy(
            RoleName="admin", PolicyName="admin", PolicyDocument=json.dumps(admin)
        )

    def set_enforcement(count: str) -> None:
        request = urllib.request.Request(  # noqa: S310 - the emulator's loopback URL
            f"{aws.endpoint_url}/moto-api/reset-auth",
            data=count.encode(),
            headers={"Content-Type": "text/plain"},
            method="POST",
        )
        urllib.request.urlopen(request, timeout=10).close()  # noqa: S310

    credentials = {
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
    }
    set_enforcement("0")
    try:
        with environment(credentials):
            yield lambda: set_enforcement("inf")  # to look at the result as the admin again
    finally:
        set_enforcement("inf")


def build_as_admin_in_preprod(source_role_arn: str, tmp_path: Path) -> int:
    """build.py for preprod with the enforced-IAM fixture's roles: ``source_role_arn`` in
    dev, the admin role in preprod."""
    return build.main(
        ["--stage", "preprod", "--model-package-group-name", GROUP, "--project-name", PROJECT,
         "--source-role-arn", source_role_arn, "--target-role-arn", role_arn("preprod", "admin"),
         "--output", str(tmp_path / "out.json")]
    )  # fmt: skip


@pytest.fixture
def approved_model(dev: DevRegistry) -> str:
    return dev.register("Approved")


def test_access_denied_is_reported_as_access_denied(
    aws: Emulator, approved_model: str, preprod: dict, tmp_path: Path, capsys, iam_enforced
) -> None:
    code = build_as_admin_in_preprod(role_arn("dev", "no-access"), tmp_path)
    err = one_line_error(capsys)
    assert code == 6, err
    assert "access denied while reading model package group 'churn-models'" in err
    assert "does not exist" not in err


@pytest.fixture
def baseline_outside_prefixes(aws: Emulator, dev: DevRegistry) -> str:
    """A package whose baseline a check step wrote outside the model-artifact prefixes, and a
    dev role that, like infra/'s registry-read role, may read only those prefixes."""
    reads_artifacts_only = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["sagemaker:*", "sts:*"], "Resource": "*"},
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject*", "s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{DEV_BUCKET}", f"arn:aws:s3:::{DEV_BUCKET}/training/*"],
            },
        ],
    }
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
    iam = aws.client("iam", "dev")
    iam.create_role(RoleName="registry-read", AssumeRolePolicyDocument=json.dumps(trust))
    iam.put_role_policy(
        RoleName="registry-read", PolicyName="read", PolicyDocument=json.dumps(reads_artifacts_only)
    )
    report = dev.put_artifact("sagemaker-checks/run-1/statistics.json", b"{}")
    statistics = {"ContentType": "application/json", "S3Uri": report}
    dev.register(
        "Approved",
        quality={"DriftCheckBaselines": {"ModelDataQuality": {"Statistics": statistics}}},
    )
    return report


def test_quality_document_outside_the_artifact_prefixes_is_refused_by_name(
    aws: Emulator,
    preprod: dict,
    baseline_outside_prefixes: str,
    tmp_path: Path,
    capsys,
    iam_enforced,
) -> None:
    """A baseline the dev read grants do not cover is named, with the fix; nothing is made."""
    report = baseline_outside_prefixes
    code = build_as_admin_in_preprod(role_arn("dev", "registry-read"), tmp_path)
    err = one_line_error(capsys)
    assert code == 6, err
    assert (
        f"cannot read the package's DriftCheckBaselines document {report} (access denied): "
        "quality documents are copied like the model artifact, so they must sit under the dev "
        "account's model_artifact_prefixes"
    ) in err
    iam_enforced()  # as the admin again
    assert target_packages(aws) == []
    assert [k for k in bucket_keys(aws, "preprod", stage_bucket("preprod")) if GROUP in k] == []


def test_failed_target_package_is_deleted_and_reported() -> None:
    """moto completes every package at once, so the Failed answer comes from botocore's Stubber."""
    import boto3

    client = boto3.client(
        "sagemaker", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    arn = "arn:aws:sagemaker:eu-west-1:222222222222:model-package/churn-models/1"
    failed = {
        "ModelPackageName": "churn-models",
        "ModelPackageArn": arn,
        "CreationTime": "2026-01-01T00:00:00Z",
        "ModelPackageStatus": "Failed",
        "ModelPackageStatusDetails": {
            "ValidationStatuses": [
                {"Name": "image", "Status": "Failed", "FailureReason": "image not found"}
            ]
        },
    }
    with Stubber(client) as stub:
        stub.add_response("describe_model_package", {**failed, "ModelPackageStatus": "InProgress"})
        stub.add_response("describe_model_package", failed, {"ModelPackageName": arn})
        stub.add_response("delete_model_package", {}, {"ModelPackageName": arn})
        with pytest.raises(
            utils.TargetPackageFailed,
            match="ended Failed \\(image: image not found\\); it was deleted",
        ):
            utils.wait_for_package(client, arn, poll_seconds=0)
        stub.assert_no_pending_responses()


# ------------------------------------------------------------------ copies and call counts


def counting_clients(aws: Emulator) -> tuple[utils.Clients, Counter]:
    calls: Counter = Counter()

    def counted(account: str, service: Literal["ecr", "iam", "s3", "sagemaker", "ssm"]) -> Any:
        made = aws.account(account).client(
            service, endpoint_url=aws.endpoint_url, config=CLIENT_CONFIG
        )

        def count(model, params, **_):
            # the one small object build.py reads: the stage's deployment record
            record = params.get("Key", "").endswith("/deployed-model.json")
            calls.update([f"{account}:{service}:{model.name}{':record' if record else ''}"])

        made.meta.events.register("before-parameter-build", count)
        return made

    clients = utils.Clients(
        source_sagemaker=counted("dev", "sagemaker"),
        source_s3=counted("dev", "s3"),
        source_ecr=counted("dev", "ecr"),
        target_sagemaker=counted("preprod", "sagemaker"),
        target_s3=counted("preprod", "s3"),
        target_ssm=counted("preprod", "ssm"),
        target_ecr=counted("preprod", "ecr"),
        target_iam=counted("preprod", "iam"),
    )
    return clients, calls


def promotion_request(**overrides) -> utils.PromotionRequest:
    return utils.PromotionRequest(
        **{
            "stage": "preprod",
            "group": GROUP,
            "project_name": PROJECT,
            "region": "eu-west-1",
            "stage_config": {"environment": "preprod"},
            "processing_script": REPO / "pipelines" / "batch_inference" / "preprocess.py",
            "feature_schema": REPO / "pipelines" / "batch_inference" / "feature-schema.json",
            **overrides,
        }
    )


def test_aws_calls_do_not_grow_with_the_group(
    aws: Emulator, dev: DevRegistry, preprod: dict
) -> None:
    def promote_with(pending: int) -> Counter:
        aws.reset()
        registry = DevRegistry(aws)
        create_stage(aws, "preprod")
        registry.register("Approved")
        for _ in range(pending):
            registry.register("PendingManualApproval", containers=[{"Image": IMAGE}])
        clients, calls = counting_clients(aws)
        utils.promote(clients, promotion_request())
        return calls

    small, large = promote_with(2), promote_with(150)
    assert small == large
    assert small["dev:sagemaker:ListModelPackages"] == 1
    # 25 before the Publish step's script became the fourth uploaded file (a HeadObject and a
    # PutObject each, as the other three), then the model-quality pipeline's script and
    # definition (#32: two more uploads), then the deployed version's shadow candidate looked
    # for, to delete it (#33: one DescribeModel), and the shadow pipeline's definition (#33:
    # one more upload)
    assert sum(small.values()) < 34, small


def test_large_artifact_is_copied_server_side_byte_for_byte(
    aws: Emulator, dev: DevRegistry, preprod: dict
) -> None:
    body = os.urandom(65 * 2**20)
    dev.register("Approved", body=body)
    clients, calls = counting_clients(aws)
    result = utils.promote(clients, promotion_request())
    assert result.target_package_arn
    (container,) = aws.client("sagemaker", "preprod").describe_model_package(
        ModelPackageName=result.target_package_arn
    )["InferenceSpecification"]["Containers"]
    assert hashlib.sha256(object_bytes(aws, "preprod", container["ModelDataUrl"])).digest() == (
        hashlib.sha256(body).digest()
    )
    # the bytes never came through this process: no download, one server-side copy
    assert not any(name.endswith(("GetObject", "PutObject:model")) for name in calls), calls
    assert calls["preprod:s3:CopyObject"] == 1
    assert calls["dev:s3:GetObject"] == 0 and calls["preprod:s3:GetObject"] == 0
    assert calls["preprod:s3:GetObject:record"] == 1  # the deployment record, not the model


def test_multipart_server_side_copy(aws: Emulator, dev: DevRegistry, preprod: dict) -> None:
    body = os.urandom(20 * 2**20 + 123)
    uri = dev.put_artifact("big/model.tar.gz", body)
    clients, calls = counting_clients(aws)
    plans = utils.plan_copies(
        clients.source_s3, [utils.Artifact(uri)], stage_bucket("preprod"), "p"
    )
    config = TransferConfig(multipart_threshold=8 * 2**20, multipart_chunksize=8 * 2**20)
    (copied,) = utils.copy_artifacts(clients.source_s3, clients.target_s3, plans, None, config)
    assert object_bytes(aws, "preprod", copied) == body
    assert calls["preprod:s3:UploadPartCopy"] == 3
    assert calls["dev:s3:GetObject"] == 0
    # a second pass finds the verified copy and does nothing
    assert utils.copy_artifacts(clients.source_s3, clients.target_s3, plans, None, config) == []


def test_the_shadow_definition_changes_only_the_jobs_execution_role() -> None:
    """The shadow pipeline's definition (promotion/stage_files.py): each RoleArn naming the
    execution role names the shadow role, nested steps too; any other value stays, another
    role included; a definition with no such RoleArn is refused, not passed on unchanged."""
    from promotion.stage_files import shadow_definition

    execution, shadow = role_arn("preprod", "x-sagemaker-execution"), role_arn("preprod", "x-s")
    other = role_arn("preprod", "x-other")
    definition = {
        "Version": "2020-12-01",
        "Steps": [
            {"Name": "Preprocess", "Arguments": {"RoleArn": execution, "Env": {"R": execution}}},
            {"Name": "Check", "Arguments": {"IfSteps": [{"Arguments": {"RoleArn": execution}}]}},
            {"Name": "Other", "Arguments": {"RoleArn": other}},
        ],
    }
    text = json.dumps(definition, indent=2, sort_keys=True).encode()
    result = json.loads(shadow_definition(text, execution, shadow))
    first, nested = result["Steps"][0], result["Steps"][1]["Arguments"]["IfSteps"][0]
    assert [first["Arguments"]["RoleArn"], nested["Arguments"]["RoleArn"]] == [shadow, shadow]
    assert first["Arguments"]["Env"] == {"R": execution}  # not a job's role: kept
    assert result["Steps"][2]["Arguments"]["RoleArn"] == other
    first["Arguments"]["RoleArn"] = nested["Arguments"]["RoleArn"] = execution
    assert result == definition
    with pytest.raises(ValueError, match="names no RoleArn"):
        shadow_definition(text, other.replace("x-other", "y"), shadow)
