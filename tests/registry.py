"""Seed the emulator: a dev registry with packages and artifacts, and stage base resources.

These helpers stand in for what a data scientist (dev registry) and the ``infra/`` Terraform
(stage buckets, roles and SSM parameters) create on AWS. They use real boto3 clients.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import tarfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import moto.sagemaker.models
import pytest

import build
from local_mode import sandbox
from local_mode.emulator import ACCOUNTS, REGION, Emulator, role_arn

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.literals import ModelApprovalStatusType
    from mypy_boto3_sagemaker.type_defs import ModelPackageSummaryTypeDef

PROJECT = "churn"
GROUP = "churn-models"
IMAGE = "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:1.9-0-cpu-py3"
DEV_BUCKET = sandbox.dev_bucket()
stage_bucket = sandbox.stage_bucket


def model_tarball(content: bytes) -> bytes:
    """A real ``model.tar.gz`` holding ``content`` as ``model.joblib``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("model.joblib")
        info.size = len(content)
        archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


@dataclass
class DevRegistry:
    """The dev account's model registry and artifact bucket."""

    aws: Emulator
    group: str = GROUP
    bucket: str = DEV_BUCKET
    create: bool = True  # False: the registry exists already (a second handle on it)

    def __post_init__(self) -> None:
        self.sagemaker = self.aws.client("sagemaker", "dev")
        self.s3 = self.aws.client("s3", "dev")
        if self.create:
            sandbox.create_dev_registry(self.aws, self.group, self.bucket)

    def put_artifact(self, key: str, body: bytes) -> str:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        return f"s3://{self.bucket}/{key}"

    def register(
        self,
        status: ModelApprovalStatusType = "Approved",
        containers: list[dict] | None = None,
        body: bytes | None = None,
        metadata: dict[str, str] | None = None,
        quality: dict[str, Any] | None = None,
        specification: dict[str, Any] | None = None,
    ) -> str:
        """Register a package; by default one container with a fresh model.tar.gz.

        ``quality``: ``ModelMetrics`` / ``DriftCheckBaselines`` to register as they are;
        ``specification``: fields of the InferenceSpecification to set instead."""
        if containers is None:
            number = len(self.versions()) + 1
            url = self.put_artifact(
                f"training/run-{number}/output/model.tar.gz",
                body if body is not None else model_tarball(f"model {number}".encode()),
            )
            containers = [
                {
                    "Image": IMAGE,
                    "ModelDataUrl": url,
                    "Environment": {"SAGEMAKER_PROGRAM": "inference.py", "RUN": str(number)},
                }
            ]
        arguments: dict[str, Any] = {
            "ModelPackageGroupName": self.group,
            "ModelApprovalStatus": status,
            "InferenceSpecification": {
                "Containers": containers,
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
                "SupportedTransformInstanceTypes": ["ml.m5.xlarge"],
                **(specification or {}),
            },
        }
        if metadata:
            arguments["CustomerMetadataProperties"] = metadata
        arguments.update(quality or {})
        return self.sagemaker.create_model_package(**arguments)["ModelPackageArn"]

    def set_status(self, arn: str, status: ModelApprovalStatusType) -> None:
        self.sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus=status)

    def versions(self) -> list[ModelPackageSummaryTypeDef]:
        pages = self.sagemaker.get_paginator("list_model_packages").paginate(
            ModelPackageGroupName=self.group
        )
        return [s for page in pages for s in page["ModelPackageSummaryList"]]


def push_image(aws: Emulator, account: str, repository: str, tag: str, layer: str) -> str:
    """``docker push`` of a one-layer image to ``account``'s ECR; returns its URI by tag.

    ``layer`` makes the content: ECR names an image by the digest of its manifest."""
    put_manifest(aws, account, repository, tag, image_manifest(layer))
    return f"{ACCOUNTS[account]}.dkr.ecr.{REGION}.amazonaws.com/{repository}:{tag}"


def put_manifest(aws: Emulator, account: str, repository: str, tag: str, manifest: str) -> None:
    """The manifest under ``tag`` in ``account``'s repository, made on the first push."""
    ecr = aws.client("ecr", account)
    with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
        ecr.create_repository(repositoryName=repository)
    ecr.put_image(repositoryName=repository, imageTag=tag, imageManifest=manifest)


def image_manifest(layer: str) -> str:
    digest = "sha256:" + hashlib.sha256(layer.encode()).hexdigest()
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 2,
                "digest": "sha256:" + hashlib.sha256(b"{}").hexdigest(),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": len(layer),
                    "digest": digest,
                }
            ],
        }
    )


def replicate_images_to(
    aws: Emulator, *stages: str, prefixes: tuple[str, ...] = (PROJECT,)
) -> None:
    """The dev registry's replication rule, as infra/dev-account makes it."""
    aws.client("ecr", "dev").put_replication_configuration(
        replicationConfiguration={
            "rules": [
                {
                    "destinations": [
                        {"region": REGION, "registryId": ACCOUNTS[stage]} for stage in stages
                    ],
                    "repositoryFilters": [
                        {"filter": prefix, "filterType": "PREFIX_MATCH"} for prefix in prefixes
                    ],
                }
            ]
        }
    )


def replicate(aws: Emulator, uri: str, stage: str) -> None:
    """What ECR's replication does after a push (moto stores the rule but copies nothing):
    the same manifest, under the same repository and tag, in the stage's registry."""
    source = aws.client("ecr", "dev")
    repository, _, tag = uri.split("/", 1)[1].rpartition(":")
    (image,) = source.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": tag}])[
        "images"
    ]
    put_manifest(aws, stage, repository, tag, image["imageManifest"])


def pulled_images(aws: Emulator, stage: str, package: Any, tfvars: dict[str, Any]) -> list[str]:
    """The images the stage's execution role pulls: the package's containers' (the model)
    and the Processing steps' of the definition build.py uploaded (the jobs)."""
    definition = json.loads(
        aws.client("s3", stage)
        .get_object(Bucket=tfvars["artifacts_bucket"], Key=tfvars["pipeline_definition_s3_key"])[
            "Body"
        ]
        .read()
    )
    jobs = {
        step["Arguments"]["AppSpecification"]["ImageUri"]
        for step in definition["Steps"]
        if step["Type"] == "Processing"
    }
    return sorted(jobs | {c["Image"] for c in package["InferenceSpecification"]["Containers"]})


def create_stage(aws: Emulator, stage: str, project: str = PROJECT, **options) -> dict[str, str]:
    return sandbox.create_stage(aws, stage, project, **options)


def run_build(output_dir: Path, *args: str, stage: str = "preprod") -> int:
    """``build.py`` for ``stage`` as the workflow calls it; writes ``<stage>.tfvars.json``."""
    return build.main(
        [
            "--stage", stage,
            "--model-package-group-name", GROUP,
            "--project-name", PROJECT,
            "--source-role-arn", role_arn("dev"),
            "--target-role-arn", role_arn(stage),
            "--output", str(output_dir / f"{stage}.tfvars.json"),
            *args,
        ]
    )  # fmt: skip


def target_packages(aws: Emulator, stage: str = "preprod") -> list[Any]:
    sagemaker = aws.client("sagemaker", stage)
    try:
        pages = sagemaker.get_paginator("list_model_packages").paginate(ModelPackageGroupName=GROUP)
        summaries = [s for page in pages for s in page["ModelPackageSummaryList"]]
    except sagemaker.exceptions.ClientError:
        return []
    return [
        sagemaker.describe_model_package(ModelPackageName=s["ModelPackageArn"]) for s in summaries
    ]


def bucket_keys(aws: Emulator, account: str, bucket: str) -> list[str]:
    listing = aws.client("s3", account).list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def keep_executions_running(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """moto's pipeline executions succeed at once; from now on a new one stays Executing.
    Returns the undo (executions started after it succeed at once again)."""
    original = moto.sagemaker.models.FakePipelineExecution.__init__

    def still_running(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.pipeline_execution_status = "Executing"

    monkeypatch.setattr(moto.sagemaker.models.FakePipelineExecution, "__init__", still_running)
    return lambda: monkeypatch.setattr(
        moto.sagemaker.models.FakePipelineExecution, "__init__", original
    )


def create_deployed_pipeline(aws: Emulator, tfvars: dict[str, Any], stage: str = "preprod") -> None:
    """The stage's pipeline from build.py's definition, as the apply creates it."""
    aws.client("sagemaker", stage).create_pipeline(
        PipelineName=tfvars["pipeline_name"],
        ClientRequestToken=str(uuid.uuid4()),
        PipelineDefinitionS3Location={
            "Bucket": tfvars["artifacts_bucket"],
            "ObjectKey": tfvars["pipeline_definition_s3_key"],
        },
        RoleArn=tfvars["sagemaker_role_arn"],
    )


def deploy_preprod(aws: Emulator, folder: Path) -> dict[str, Any]:
    """Preprod promoted by build.py (its tfvars in ``folder``) and its pipeline created, as
    the apply leaves them; the tfvars."""
    create_stage(aws, "preprod")
    DevRegistry(aws).register("Approved")
    assert run_build(folder) == 0
    tfvars = json.loads((folder / "preprod.tfvars.json").read_text())
    create_deployed_pipeline(aws, tfvars)
    return tfvars


def create_empty_pipeline(sagemaker: Any, name: str) -> None:
    """A pipeline with no steps: what the stage functions start, where only the requests
    and the executions' records matter (moto runs no step)."""
    sagemaker.create_pipeline(
        PipelineName=name,
        ClientRequestToken=str(uuid.uuid4()),
        PipelineDefinition=json.dumps({"Version": "2020-12-01", "Steps": []}),
        RoleArn="arn:aws:iam::123456789012:role/execution",
    )
