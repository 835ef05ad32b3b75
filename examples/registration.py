"""Register an example's model in a dev registry as a training pipeline would: trained in the
image's runtime twin, its artifact, baseline and holdout quality uploaded, a package pending
approval, then approved. ``make demo`` does it against the emulator, the acceptance run in a
sandbox dev account.

The holdout's quality, when the example measures one (a binary classifier: the breast-cancer
model), is registered as ``ModelMetrics.ModelQuality.Statistics``: the value a stage's
model-quality job measures each labelled day's drop against. A multi-class model (the
ticket-triage example) registers none: the job measures binary classification and
regression only, so its verdict would be ``unknown`` and no alarm could go off."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from examples.catalog import EXAMPLES, Example
from examples.training import container_environment
from pipelines import sdk
from pipelines.batch_inference import quality

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient


RETRAINED_SEED = 1  # the second version's split / sample (the first one's is seed 0)


@dataclass(frozen=True)
class Registered:
    package_arn: str
    holdout_accuracy: float
    keys: tuple[str, ...]  # what was uploaded to the bucket


def register(
    sagemaker: SageMakerClient,
    s3: S3Client,
    *,
    bucket: str,
    output_prefix: str,
    group: str,
    region: str,
    workdir: Path,
    approval: str | None,
    example: Example = EXAMPLES["breast-cancer"],
    degraded: bool = False,
    retrained: bool = False,
) -> Registered:
    """Train, upload under ``s3://bucket/output_prefix/``, register in ``group`` (pending),
    then approve with ``approval`` as the reason (a data scientist's click; None leaves it
    pending). ``degraded``: the example's deliberately worse model (``--degraded``);
    ``retrained``: its second version (``--retrained``, seed ``RETRAINED_SEED``)."""
    model = example.model()
    # model.tar.gz, baseline.json (and model-quality.json)
    if degraded:
        trained = model.build(workdir, degraded=True)
    elif retrained:
        trained = model.build(workdir, seed=RETRAINED_SEED, retrained=True)
    else:
        trained = model.build(workdir)
    metadata = {
        "holdout_accuracy": f"{trained.holdout_accuracy:.4f}",
        # what each answer column is: the stage's predictions table is named by it
        "output_columns": example.output_columns,
    }
    output = output_prefix.rstrip("/")
    keys: tuple[str, ...] = (f"{output}/model.tar.gz", f"{output}/baseline.json")
    s3.upload_file(str(trained.archive), bucket, keys[0])
    s3.upload_file(str(trained.baseline), bucket, keys[1])
    metrics: dict[str, Any] = {}
    if trained.model_quality is not None:
        keys += (f"{output}/model-quality.json",)
        s3.upload_file(str(trained.model_quality), bucket, keys[2])
        statistics = {"ContentType": "application/json", "S3Uri": f"s3://{bucket}/{keys[2]}"}
        metrics = {"ModelMetrics": {"ModelQuality": {"Statistics": statistics}}}
    image = sdk.image_uris.retrieve(
        framework="sklearn", region=region, version="1.9-0", py_version="py3",
        instance_type="ml.m5.xlarge",
    )  # fmt: skip
    arn = sagemaker.create_model_package(
        ModelPackageGroupName=group,
        ModelPackageDescription=example.description,
        ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={
            "Containers": [
                {
                    "Image": image,
                    "ModelDataUrl": f"s3://{bucket}/{keys[0]}",
                    "Environment": container_environment(),
                    # what it was trained with: build.py warns when the image holds another
                    "Framework": "SKLEARN",
                    "FrameworkVersion": trained.versions["scikit-learn"],
                }
            ],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
            "SupportedTransformInstanceTypes": ["ml.m5.xlarge"],
        },
        CustomerMetadataProperties=metadata,
        DriftCheckBaselines={
            "ModelDataQuality": {
                "Statistics": {
                    "ContentType": quality.CONTENT_TYPE,
                    "S3Uri": f"s3://{bucket}/{keys[1]}",
                }
            }
        },
        **metrics,
    )["ModelPackageArn"]
    if approval is None:
        return Registered(arn, trained.holdout_accuracy, keys)
    # sent again with the approval: AWS keeps the properties an update leaves out, but the
    # emulator (moto 5's update_model_package) sets them to what the call gives, None
    sagemaker.update_model_package(
        ModelPackageArn=arn,
        ModelApprovalStatus="Approved",
        ApprovalDescription=approval,
        CustomerMetadataProperties=metadata,
    )
    return Registered(arn, trained.holdout_accuracy, keys)
