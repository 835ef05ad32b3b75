"""The package's images reach the stage pinned by digest, and what the stage cannot run is
refused at promotion (build.py against the emulator: ECR in the dev and stage accounts).

moto keeps the dev registry's replication rule but copies nothing, so ``replicate`` does
what ECR does after a push; everything else is the real ECR API.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import build
import utils
from common.image_uris import ImageUri, local_refusal, sagemaker_image_accounts
from local_mode.emulator import ACCOUNTS, REGION, Emulator
from promotion import images
from promotion.images import tag_moved_since
from promotion.runnable import package_refusal
from tests.registry import (
    IMAGE,
    PROJECT,
    DevRegistry,
    bucket_keys,
    create_stage,
    model_tarball,
    one_line_error,
    push_image,
    replicate,
    replicate_images_to,
    run_build,
    stage_bucket,
    target_packages,
)

# no wait for replication: where the copy is there already or the promotion must fail, a
# regression fails at once instead of after 30 minutes
NO_WAIT = ("--image-wait-minutes", "0")
SKLEARN_REPOSITORY = f"arn:aws:ecr:{REGION}:141502667606:repository/sagemaker-scikit-learn"


def tfvars(tmp_path: Path) -> dict[str, Any]:
    return json.loads((tmp_path / "preprod.tfvars.json").read_text())


def register_image(dev: DevRegistry, image: str, digest: str | None = None, **options: Any) -> str:
    """An Approved package served by ``image`` (``digest``: its recorded ImageDigest)."""
    url = dev.put_artifact("training/custom/model.tar.gz", model_tarball(b"custom"))
    container = {"Image": image, "ModelDataUrl": url, **({"ImageDigest": digest} if digest else {})}
    return dev.register("Approved", containers=[container], **options)


def nothing_written(aws: Emulator) -> bool:
    """No package in the stage's registry and no object in its bucket."""
    return target_packages(aws) == [] and bucket_keys(aws, "preprod", stage_bucket("preprod")) == []


def digest_of(aws: Emulator, account: str, uri: str) -> str:
    image = ImageUri.parse(uri)
    (detail,) = aws.client("ecr", account).describe_images(
        repositoryName=image.repository, imageIds=[image.image_id]
    )["imageDetails"]
    return detail["imageDigest"]


# ------------------------------------------------------------------ dev images, replicated


def test_a_dev_image_runs_from_the_stages_registry_pinned_by_digest(
    aws: Emulator, dev: DevRegistry, preprod: dict, tmp_path: Path, capsys
) -> None:
    replicate_images_to(aws, "preprod", "prod")
    uri = push_image(aws, "dev", f"{PROJECT}/serving", "v1", layer="first build")
    register_image(dev, uri)
    replicate(aws, uri, "preprod")
    digest = digest_of(aws, "dev", uri)
    pinned = f"{ACCOUNTS['preprod']}.dkr.ecr.{REGION}.amazonaws.com/{PROJECT}/serving@{digest}"
    assert run_build(tmp_path, "--dry-run") == 0
    assert f"image:    {uri} -> {pinned}" in capsys.readouterr().out
    assert run_build(tmp_path, *NO_WAIT) == 0

    (package,) = target_packages(aws)
    (container,) = package["InferenceSpecification"]["Containers"]
    assert container["Image"] == pinned
    assert digest_of(aws, "preprod", pinned) == digest  # the stage's own copy
    assert tfvars(tmp_path)["image_repository_arns"] == sorted(
        [f"arn:aws:ecr:{REGION}:{ACCOUNTS['preprod']}:repository/{PROJECT}/serving",
         SKLEARN_REPOSITORY]
    )  # fmt: skip
    assert f"image:    {uri} -> {pinned}" in capsys.readouterr().out

    # the tag is pushed again in dev: what the stage runs does not change
    first = tfvars(tmp_path)
    push_image(aws, "dev", f"{PROJECT}/serving", "v1", layer="second build")
    assert digest_of(aws, "dev", uri) != digest
    assert run_build(tmp_path, *NO_WAIT) == 0
    (again,) = target_packages(aws)
    assert again["InferenceSpecification"]["Containers"][0]["Image"] == pinned
    assert tfvars(tmp_path)["image_repository_arns"] == first["image_repository_arns"]


def test_every_stage_runs_the_image_the_package_was_registered_with(
    aws: Emulator, dev: DevRegistry, preprod: dict, tmp_path: Path
) -> None:
    """Pre-prod is promoted, the tag is pushed again in dev, then prod is promoted after
    its gate: prod runs the digest the package recorded (ImageDigest), as pre-prod does."""
    create_stage(aws, "prod")
    replicate_images_to(aws, "preprod", "prod")
    uri = push_image(aws, "dev", f"{PROJECT}/serving", "v1", layer="approved build")
    # a second tag keeps the approved image in moto, which deletes an image whose last tag
    # moves (ECR keeps it, untagged)
    release = push_image(aws, "dev", f"{PROJECT}/serving", "release-1", layer="approved build")
    approved = digest_of(aws, "dev", uri)
    for stage in ("preprod", "prod"):
        replicate(aws, uri, stage)  # ECR copies each push to every destination
        replicate(aws, release, stage)
    register_image(dev, uri, digest=approved)
    assert run_build(tmp_path, *NO_WAIT, stage="preprod") == 0
    push_image(aws, "dev", f"{PROJECT}/serving", "v1", layer="a later build")
    for stage in ("preprod", "prod"):
        replicate(aws, uri, stage)
    assert digest_of(aws, "dev", uri) != approved
    assert run_build(tmp_path, *NO_WAIT, stage="prod") == 0
    for stage in ("preprod", "prod"):
        (package,) = target_packages(aws, stage)
        (container,) = package["InferenceSpecification"]["Containers"]
        assert container["Image"].endswith(f"/{PROJECT}/serving@{approved}")
        assert container["Image"].startswith(ACCOUNTS[stage])


def test_a_registered_digest_that_is_gone_is_refused(
    aws: Emulator, dev: DevRegistry, preprod: dict, tmp_path: Path, capsys
) -> None:
    replicate_images_to(aws, "preprod")
    uri = push_image(aws, "dev", f"{PROJECT}/serving", "v1", layer="build")
    gone = "sha256:" + "f" * 64
    register_image(dev, uri, digest=gone)
    assert run_build(tmp_path, *NO_WAIT) == 13
    assert f"serving@{gone} does not exist in the dev registry" in one_line_error(capsys)
    assert nothing_written(aws)


def test_a_tag_pushed_after_registration_no_longer_names_the_approved_image() -> None:
    """Without a recorded digest, the tag is read at promotion: an image it names that was
    pushed after the package's CreationTime is not the one approved (refused, exit 13)."""
    registered = datetime(2026, 11, 1, 12, 0, 0, 500000, tzinfo=UTC)
    assert tag_moved_since({"imagePushedAt": registered + timedelta(seconds=1)}, registered)
    assert not tag_moved_since({"imagePushedAt": registered - timedelta(hours=2)}, registered)
    assert not tag_moved_since({"imagePushedAt": registered + timedelta(seconds=1)}, None)
    assert not tag_moved_since({}, registered)


def test_promotion_waits_for_replication(
    aws: Emulator,
    dev: DevRegistry,
    preprod: dict,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The image is not in the stage's registry at the first look and arrives while
    build.py polls: the package is made once it is there."""
    replicate_images_to(aws, "preprod")
    uri = push_image(aws, "dev", f"{PROJECT}/serving", "v1", layer="build")
    register_image(dev, uri)
    looks: list[bool] = []
    real_clients = build._clients

    def replicated_after_the_first_look(args: argparse.Namespace) -> utils.Clients:
        clients = real_clients(args)

        def looked(http_response: Any, parsed: dict, **_: Any) -> None:
            looks.append("imageDetails" in parsed)
            if len(looks) == 1:
                replicate(aws, uri, "preprod")  # ECR finishes between two polls

        clients.target_ecr.meta.events.register("after-call.ecr.DescribeImages", looked)
        return clients

    monkeypatch.setattr(build, "_clients", replicated_after_the_first_look)
    monkeypatch.setattr(images, "POLL_SECONDS", 0.0)
    assert run_build(tmp_path, "--image-wait-minutes", "1") == 0  # two looks, no sleep
    assert looks == [False, True]
    (package,) = target_packages(aws)
    assert package["InferenceSpecification"]["Containers"][0]["Image"].startswith(
        f"{ACCOUNTS['preprod']}.dkr.ecr."
    )


def test_an_image_that_never_arrives_leaves_nothing_behind(
    aws: Emulator, dev: DevRegistry, preprod: dict, tmp_path: Path, capsys
) -> None:
    replicate_images_to(aws, "preprod")
    uri = push_image(aws, "dev", f"{PROJECT}/serving", "v1", layer="build")
    register_image(dev, uri)
    assert run_build(tmp_path, *NO_WAIT) == 14
    error = one_line_error(capsys)
    assert "has not reached the stage's registry after 0 min" in error
    assert "push the image again" in error and "accept_image_replication" in error
    assert nothing_written(aws)
    # a plan does not wait: it names the copy the deployment will wait for
    assert run_build(tmp_path, "--plan-only") == 0
    stage_copy = f"arn:aws:ecr:{REGION}:{ACCOUNTS['preprod']}:repository/{PROJECT}/serving"
    assert stage_copy in tfvars(tmp_path)["image_repository_arns"]
    assert nothing_written(aws)


def test_a_repository_the_dev_registry_does_not_replicate_is_refused_at_once(
    aws: Emulator, dev: DevRegistry, preprod: dict, tmp_path: Path, capsys
) -> None:
    replicate_images_to(aws, "prod")  # another stage only
    uri = push_image(aws, "dev", f"{PROJECT}/serving", "v1", layer="build")
    register_image(dev, uri)
    assert run_build(tmp_path, *NO_WAIT) == 14
    error = one_line_error(capsys)
    assert f"does not replicate repository '{PROJECT}/serving' to account" in error
    assert "image_repository_prefixes" in error
    replicate_images_to(aws, "preprod", prefixes=("other/",))
    assert run_build(tmp_path, *NO_WAIT) == 14
    assert nothing_written(aws)


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (f"{PROJECT}/serving:v2", "does not exist in the dev registry (ImageNotFoundException)"),
        (f"{PROJECT}/absent:v1", "does not exist in the dev registry (RepositoryNotFound"),
    ],
)
def test_a_tag_that_does_not_resolve_is_refused(
    aws: Emulator,
    dev: DevRegistry,
    preprod: dict,
    tmp_path: Path,
    capsys,
    image: str,
    expected: str,
) -> None:
    replicate_images_to(aws, "preprod")
    push_image(aws, "dev", f"{PROJECT}/serving", "v1", layer="build")
    register_image(dev, f"{ACCOUNTS['dev']}.dkr.ecr.{REGION}.amazonaws.com/{image}")
    assert run_build(tmp_path, *NO_WAIT) == 13
    assert expected in one_line_error(capsys)
    assert nothing_written(aws)


def test_an_image_already_in_the_stages_registry_is_pinned_there(
    aws: Emulator, dev: DevRegistry, preprod: dict, tmp_path: Path
) -> None:
    uri = push_image(aws, "preprod", f"{PROJECT}/serving", "stable", layer="stage build")
    register_image(dev, uri)
    assert run_build(tmp_path, *NO_WAIT) == 0
    (package,) = target_packages(aws)
    image = package["InferenceSpecification"]["Containers"][0]["Image"]
    assert image == uri.replace(":stable", "@" + digest_of(aws, "preprod", uri))


def test_sagemakers_images_stay_where_they_are(
    aws: Emulator, dev: DevRegistry, preprod: dict, tmp_path: Path
) -> None:
    dev.register("Approved")
    assert run_build(tmp_path, *NO_WAIT) == 0
    (package,) = target_packages(aws)
    assert package["InferenceSpecification"]["Containers"][0]["Image"] == IMAGE
    assert tfvars(tmp_path)["image_repository_arns"] == [SKLEARN_REPOSITORY]


def test_the_kept_models_repositories_stay_pullable(
    aws: Emulator, dev: DevRegistry, preprod: dict, tmp_path: Path
) -> None:
    """Runs started before a deployment still transform with the kept model: its image's
    repository stays in the execution role's grant while the new version's joins it."""
    replicate_images_to(aws, "preprod")
    first = push_image(aws, "dev", f"{PROJECT}/first", "v1", layer="one")
    register_image(dev, first)
    replicate(aws, first, "preprod")
    assert run_build(tmp_path, *NO_WAIT) == 0
    # the deployment's record of what it runs, as the template writes it
    values = tfvars(tmp_path)
    aws.client("s3", "preprod").put_object(
        Bucket=stage_bucket("preprod"),
        Key=f"{PROJECT}/deployments/preprod/deployed-model.json",
        Body=json.dumps(
            {
                "current": {
                    name: values[name]
                    for name in ("model_name", "model_package_arn", "source_model_package_arn")
                }
                | {"model_version": 1},
                "previous": None,
            }
        ).encode(),
    )
    second = push_image(aws, "dev", f"{PROJECT}/second", "v1", layer="two")
    register_image(dev, second)
    replicate(aws, second, "preprod")
    assert run_build(tmp_path, *NO_WAIT) == 0
    stage = ACCOUNTS["preprod"]
    assert tfvars(tmp_path)["image_repository_arns"] == sorted(
        [
            f"arn:aws:ecr:{REGION}:{stage}:repository/{PROJECT}/{name}"
            for name in ("first", "second")
        ]
        + [SKLEARN_REPOSITORY]
    )


# ------------------------------------------------------------------ refused at promotion


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("python:3.11", "is not in a private ECR registry"),
        (
            f"444444444444.dkr.ecr.{REGION}.amazonaws.com/shared/serving:v1",
            "is in account 444444444444, which is neither the dev account",
        ),
        (
            f"{ACCOUNTS['dev']}.dkr.ecr.us-east-1.amazonaws.com/{PROJECT}/serving:v1",
            f"is in us-east-1, but the stage runs in {REGION}",
        ),
    ],
)
def test_an_image_the_stage_cannot_pull_is_refused(
    aws: Emulator, dev: DevRegistry, preprod: dict, tmp_path: Path, capsys, image, expected
) -> None:
    register_image(dev, image)
    assert run_build(tmp_path, *NO_WAIT) == 13
    assert expected in one_line_error(capsys)
    assert nothing_written(aws)


GPU_IMAGE = f"763104351884.dkr.ecr.{REGION}.amazonaws.com/pytorch-inference:2.1.0-gpu-py310"


@pytest.mark.parametrize(
    ("image", "spec", "config", "expected"),
    [
        (GPU_IMAGE, {}, {}, "is a GPU build, but transform_instance_type is ml.m5.xlarge"),
        (
            IMAGE,
            {"SupportedTransformInstanceTypes": ["ml.g5.xlarge"]},
            {},
            "transform_instance_type ml.m5.xlarge is not among the package's "
            "SupportedTransformInstanceTypes (ml.g5.xlarge)",
        ),
        (
            IMAGE,
            {"SupportedContentTypes": ["application/json"]},
            {},
            "SupportedContentTypes are application/json, but the pipeline's BatchTransform "
            "sends text/csv",
        ),
        (
            IMAGE,
            {"SupportedResponseMIMETypes": ["application/json"]},
            {},
            "BatchTransform asks for text/csv",
        ),
        (
            IMAGE,
            {"SupportedRealtimeInferenceInstanceTypes": ["ml.c5.large"]},
            {"endpoint": {"instance_type": "ml.m5.large"}},
            "endpoint.instance_type ml.m5.large is not among the package's "
            "SupportedRealtimeInferenceInstanceTypes",
        ),
        (
            GPU_IMAGE,
            {"SupportedTransformInstanceTypes": ["ml.p3.2xlarge"]},
            {
                "transform_instance_type": "ml.p3.2xlarge",
                "endpoint": {
                    "serverless": {
                        "memory_size_in_mb": 2048,
                        "max_concurrency": 5,
                        "without_network_isolation": True,
                    }
                },
            },
            "needs an accelerator, which a serverless endpoint does not have",
        ),
    ],
)
def test_a_package_batch_transform_cannot_run_is_refused(
    aws: Emulator,
    dev: DevRegistry,
    preprod: dict,
    tmp_path: Path,
    capsys,
    image: str,
    spec: dict,
    config: dict,
    expected: str,
) -> None:
    register_image(dev, image, specification=spec)
    stage_file = json.loads((build.REPO / "pre-prod-config.tfvars.json").read_text())
    (tmp_path / "stage.json").write_text(json.dumps({**stage_file, **config}))
    assert run_build(tmp_path, "--config", str(tmp_path / "stage.json"), *NO_WAIT) == 13
    assert expected in one_line_error(capsys)
    assert nothing_written(aws)


def test_model_data_batch_transform_cannot_read_is_refused() -> None:
    """AWS: "you cannot use ModelDataSource in conjunction with SageMaker batch transform"
    (ContainerDefinition.ModelDataSource); and a package without containers."""
    source = {"S3DataSource": {"S3Uri": "s3://b/model/", "S3DataType": "S3Prefix"}}
    package = {"InferenceSpecification": {"Containers": [{"Image": IMAGE}, {
        "Image": IMAGE, "ModelDataSource": source
    }]}}  # fmt: skip
    refusal = package_refusal(package, {"transform_instance_type": "ml.m5.xlarge"})
    assert refusal and refusal.startswith("container 2 gives its model data as ModelDataSource")
    assert "inference containers" in (package_refusal({}, {}) or "")
    channel = {"ChannelName": "vocab", "S3DataSource": source["S3DataSource"]}
    extra = {"Image": IMAGE, "ModelDataUrl": "s3://b/m.tar.gz"}
    spec = {"InferenceSpecification": {"Containers": [
        {**extra, "AdditionalModelDataSources": [channel]}
    ]}}  # fmt: skip
    assert package_refusal(spec, {}) == (
        "container 1 lists AdditionalModelDataSources, which build.py does not copy into the "
        "stage (the stage could not read them); put that data into the model.tar.gz of "
        "ModelDataUrl and register the model again"
    )
    # AdditionalS3DataSource is copied (tests/test_promotion.py): not refused
    copied: dict[str, Any] = {
        **extra,
        "AdditionalS3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/x/"},
    }
    assert package_refusal({"InferenceSpecification": {"Containers": [copied]}}, {}) is None
    assert (
        package_refusal({"InferenceSpecification": {"Containers": [{"Image": IMAGE}]}}, {}) is None
    )


# ------------------------------------------------------------------ the parts


def test_image_uris_parse_and_print_back() -> None:
    uri = f"{ACCOUNTS['dev']}.dkr.ecr.{REGION}.amazonaws.com/{PROJECT}/serving:v1.2_rc-3"
    image = ImageUri.parse(uri)
    assert (image.account, image.region, image.repository, image.tag) == (
        ACCOUNTS["dev"], REGION, f"{PROJECT}/serving", "v1.2_rc-3",
    )  # fmt: skip
    assert str(image) == uri
    digest = "sha256:" + "ab" * 32
    pinned = image.pinned(ACCOUNTS["prod"], digest)
    assert (
        str(pinned)
        == f"{ACCOUNTS['prod']}.dkr.ecr.{REGION}.amazonaws.com/{PROJECT}/serving@{digest}"
    )
    assert pinned.image_id == {"imageDigest": digest}
    assert ImageUri.parse(str(pinned)) == pinned
    china = ImageUri.parse("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/models/x:1")
    assert china.repository_arn == "arn:aws-cn:ecr:cn-north-1:123456789012:repository/models/x"
    gov = ImageUri.parse("123456789012.dkr.ecr.us-gov-west-1.amazonaws.com/a__b--c/d:1")
    assert (
        gov.repository_arn == "arn:aws-us-gov:ecr:us-gov-west-1:123456789012:repository/a__b--c/d"
    )
    assert ImageUri.parse(f"{ACCOUNTS['dev']}.dkr.ecr.{REGION}.amazonaws.com/x").tag == "latest"
    for bad in ("python:3.11", "public.ecr.aws/x/y:1", "1.dkr.ecr.eu-west-1.amazonaws.com/x:1"):
        with pytest.raises(ValueError, match="not in a private ECR registry"):
            ImageUri.parse(bad)


def test_sagemakers_image_accounts_come_from_the_sdks_tables() -> None:
    accounts = sagemaker_image_accounts()
    # scikit-learn's account differs by region; the DLCs' is one account in most regions
    assert {"141502667606", "683313688378", "763104351884"} <= accounts
    assert ACCOUNTS["dev"] not in accounts and len(accounts) > 100


def test_local_mode_stands_in_only_for_the_scikit_learn_container() -> None:
    assert local_refusal(IMAGE) is None
    for image in (
        GPU_IMAGE,
        f"{ACCOUNTS['preprod']}.dkr.ecr.{REGION}.amazonaws.com/sagemaker-scikit-learn:1",
        "python:3.11",
    ):
        refusal = local_refusal(image)
        assert refusal and refusal.startswith(f"local mode cannot run image {image}:")


@pytest.mark.parametrize("minutes", ["nan", "-1", "721", "soon"])
def test_a_bad_image_wait_is_one_line_and_exit_2(tmp_path: Path, capsys, minutes: str) -> None:
    with pytest.raises(SystemExit) as exited:  # argparse's, before any AWS call
        run_build(tmp_path, "--image-wait-minutes", minutes)
    assert exited.value.code == 2
    assert "--image-wait-minutes" in one_line_error(capsys)


def test_a_package_whose_output_columns_a_table_cannot_carry_is_refused() -> None:
    """Its declaration names the stage's predictions table: refused at promotion, not in the
    first run's Publish step."""
    spec = {"InferenceSpecification": {"Containers": [{"Image": IMAGE}]}}
    declared = {**spec, "CustomerMetadataProperties": {"output_columns": "Label:string"}}
    refusal = package_refusal(declared, {})
    assert refusal == (
        "its output_columns metadata 'Label:string' cannot name the stage's predictions "
        "table: output column 'Label': use lower-case letters, digits and _, starting with a "
        "letter or _ (a name Athena reads as written)"
    )
    fine = {**spec, "CustomerMetadataProperties": {"output_columns": "label:string,p:double"}}
    assert package_refusal(fine, {}) is None
