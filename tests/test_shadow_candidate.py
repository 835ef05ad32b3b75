"""build.py --plan-only --shadow-candidate: the candidate's Model in the stage before its
approval, and nothing else; superseded candidates and the approved one's are removed."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

import build
import utils
from common.stage_model import STAGE_MODEL_ENVIRONMENT
from local_mode.emulator import Emulator
from promotion.names import candidate_model_name
from promotion.stage import deployment_record_key
from tests.iam_calls import CallRecorder
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


@pytest.fixture
def stage_calls(monkeypatch: pytest.MonkeyPatch) -> CallRecorder:
    """The requests build.py sends the stage (the emulator keeps less of a Model than asked)."""
    recorder = CallRecorder()
    real_clients = build._clients

    def watched(args: argparse.Namespace) -> utils.Clients:
        clients = real_clients(args)
        for name, client in vars(clients).items():
            if name.startswith("target_"):
                recorder.watch(client)
        return clients

    monkeypatch.setattr(build, "_clients", watched)
    return recorder


REPO = Path(__file__).resolve().parents[1]


def record_deployed(aws: Emulator, tfvars: dict[str, Any]) -> None:
    """The deployment record the stage template's apply writes (aws_s3_object)."""
    current = {
        "model_name": tfvars["model_name"],
        "model_package_arn": tfvars["model_package_arn"],
        "source_model_package_arn": tfvars["source_model_package_arn"],
        "model_version": tfvars["model_version"],
        "endpoint_config": None,
    }
    aws.client("s3", "preprod").put_object(
        Bucket=stage_bucket("preprod"),
        Key=deployment_record_key(PROJECT, "preprod"),
        Body=json.dumps({"current": current, "previous": None}).encode(),
    )


def deploy(aws: Emulator, tmp_path: Path, version: int) -> dict[str, Any]:
    assert run_build(tmp_path, "--model-version", str(version)) == 0
    tfvars = json.loads((tmp_path / "preprod.tfvars.json").read_text())
    record_deployed(aws, tfvars)
    return tfvars


def plan(tmp_path: Path, version: int, *more: str) -> int:
    return run_build(tmp_path, "--model-version", str(version), "--plan-only", *more)


def candidates(aws: Emulator) -> list[str]:
    models = aws.client("sagemaker", "preprod").list_models(NameContains=f"{GROUP}-preprod-c")
    return sorted(m["ModelName"] for m in models["Models"])


def shadow_keys(aws: Emulator) -> list[str]:
    return [
        k for k in bucket_keys(aws, "preprod", stage_bucket("preprod")) if "/shadow-models/" in k
    ]


def test_the_plan_makes_the_candidate_model_and_nothing_the_stage_runs(
    aws: Emulator,
    dev: DevRegistry,
    preprod: dict,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    stage_calls: CallRecorder,
) -> None:
    dev.register("Approved")
    deployed = deploy(aws, tmp_path, 1)
    source = dev.register("Approved")
    before = [k for k in bucket_keys(aws, "preprod", stage_bucket("preprod"))]
    packages = [p["ModelPackageArn"] for p in target_packages(aws)]

    assert plan(tmp_path, 2, "--shadow-candidate") == 0

    name = candidate_model_name(GROUP, "preprod", 2)
    assert f"shadow candidate: created {name}" in capsys.readouterr().out
    model = aws.client("sagemaker", "preprod").describe_model(ModelName=name)
    assert model["ExecutionRoleArn"] == preprod["shadow-role-arn"]
    assert model["ExecutionRoleArn"] != deployed["sagemaker_role_arn"]
    (created,) = [p for _, op, p in stage_calls.calls if op == "CreateModel"]
    assert created["EnableNetworkIsolation"] is True  # the template's models are isolated too
    assert "VpcConfig" not in created  # this stage has no subnets
    (container,) = model["Containers"]
    assert container["Image"] == IMAGE
    assert container["Environment"] == {
        "SAGEMAKER_PROGRAM": "inference.py",
        "RUN": "2",
        **STAGE_MODEL_ENVIRONMENT,
    }
    copied = f"{PROJECT}/shadow-models/v2/{DEV_BUCKET}/training/run-2/output/model.tar.gz"
    assert container["ModelDataUrl"] == f"s3://{stage_bucket('preprod')}/{copied}"
    body = aws.client("s3", "preprod").get_object(Bucket=stage_bucket("preprod"), Key=copied)
    original = aws.client("s3", "dev").get_object(
        Bucket=DEV_BUCKET, Key="training/run-2/output/model.tar.gz"
    )
    assert body["Body"].read() == original["Body"].read()
    tags = aws.client("sagemaker", "preprod").list_tags(ResourceArn=model["ModelArn"])["Tags"]
    assert {t["Key"]: t["Value"] for t in tags} == {
        "shadow": "true",
        "model-version": "2",
        "source-model-package": source,
    }
    # nothing a deployment reads: no package, no model artifact, only the candidate's copy
    assert [p["ModelPackageArn"] for p in target_packages(aws)] == packages
    after = bucket_keys(aws, "preprod", stage_bucket("preprod"))
    assert sorted(set(after) - set(before)) == [copied]
    planned = json.loads((tmp_path / "preprod.tfvars.json").read_text())
    assert planned["model_name"] == f"{GROUP}-preprod-v2"  # the stage's, at apply
    assert candidates(aws) == [name]

    # planned again: found, not made twice
    assert plan(tmp_path, 2, "--shadow-candidate") == 0
    assert f"shadow candidate: exists {name}" in capsys.readouterr().out


def test_a_newer_candidate_supersedes_the_older_and_the_approved_one_is_removed(
    aws: Emulator, dev: DevRegistry, preprod: dict, tmp_path: Path, capsys
) -> None:
    dev.register("Approved")
    deploy(aws, tmp_path, 1)
    dev.register("Approved")
    dev.register("Approved")
    assert plan(tmp_path, 2, "--shadow-candidate") == 0  # version 2, then rejected
    assert plan(tmp_path, 3, "--shadow-candidate") == 0
    second, third = (candidate_model_name(GROUP, "preprod", v) for v in (2, 3))
    assert f"removed {second}" in capsys.readouterr().out
    assert candidates(aws) == [third]
    assert all("/shadow-models/v3/" in key for key in shadow_keys(aws))

    deploy(aws, tmp_path, 3)  # approved: the stage runs its own model of version 3 now
    assert candidates(aws) == []
    assert shadow_keys(aws) == []


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("deployed version", "version 1 is the one preprod runs"),
        ("first deployment", "nothing is deployed in preprod yet"),
        ("no shadow role", "the preprod account has no shadow role (SSM shadow-role-arn)"),
        ("shadow_days 0", "shadow_days is 0 in the stage file"),
    ],
)
def test_no_candidate_when_there_is_nothing_to_shadow(
    aws: Emulator, dev: DevRegistry, tmp_path: Path, capsys, case: str, reason: str
) -> None:
    skip = ("shadow-role-arn",) if case == "no shadow role" else ()
    create_stage(aws, "preprod", skip_parameters=skip)
    dev.register("Approved")
    dev.register("Approved")
    if case != "first deployment":
        deploy(aws, tmp_path, 1)
    config: list[str] = []
    if case == "shadow_days 0":
        stage_file = REPO / "pre-prod-config.tfvars.json"
        changed = json.loads(stage_file.read_text()) | {"shadow_days": 0}
        (tmp_path / "stage.json").write_text(json.dumps(changed))
        config = ["--config", str(tmp_path / "stage.json")]
    version = 1 if case == "deployed version" else 2
    assert plan(tmp_path, version, "--shadow-candidate", *config) == 0
    assert f"shadow candidate: skipped: {reason}" in capsys.readouterr().out
    assert candidates(aws) == [] and shadow_keys(aws) == []


def test_a_candidate_belongs_to_the_plan_only(
    aws: Emulator, dev: DevRegistry, preprod: dict, tmp_path: Path, capsys
) -> None:
    dev.register("Approved")
    assert run_build(tmp_path, "--shadow-candidate") == 2
    assert "--shadow-candidate belongs to the plan before the gate" in one_line_error(capsys)
    assert target_packages(aws) == []
