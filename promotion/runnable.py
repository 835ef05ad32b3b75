"""Whether the stage can run a package: refused at promotion, not at the first scheduled run.

Each rule is a fact of SageMaker's Batch Transform (or the endpoint) that the package itself
declares, so a package that breaks one would promote cleanly and fail hours later in a run
nobody watches. Checked before anything is written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from promotion.errors import NotRunnable

# what the pipeline's BatchTransform step sends and asks for (pipelines/batch_inference)
PIPELINE_CONTENT_TYPE = "text/csv"

# SageMaker's framework images name their device in the tag: "2.1.0-gpu-py310",
# "...-cu121-ubuntu20.04" (CUDA), "...-neuronx-..." (Inferentia / Trainium)
_GPU_TAG = re.compile(r"(?:^|[-_.])(?:gpu|cu\d{2,3})(?:[-_.]|$)")
_NEURON_TAG = re.compile(r"(?:^|[-_.])neuronx?(?:[-_.\d]|$)")
_GPU_FAMILIES = re.compile(r"ml\.[gp]\d")
_NEURON_FAMILIES = re.compile(r"ml\.(?:inf|trn)\d")


def device_refusal(tag: str | None, instance_type: str, where: str) -> str | None:
    """Why a framework image tagged ``tag`` cannot run on ``instance_type``, or None.

    Only the images' own naming is read: a custom image's needs are its package's
    ``Supported*InstanceTypes`` (``package_refusal``)."""
    if not tag:
        return None
    if _GPU_TAG.search(tag) and not _GPU_FAMILIES.match(instance_type):
        return (
            f"image tag {tag!r} is a GPU build, but {where} is {instance_type}, which has no "
            "GPU; use a GPU type (ml.p3.*: the others have local NVMe, which a stage with a "
            "volume key refuses) or the image's CPU build"
        )
    if _NEURON_TAG.search(tag) and not _NEURON_FAMILIES.match(instance_type):
        return (
            f"image tag {tag!r} is built for AWS Neuron, but {where} is {instance_type}; "
            "use an ml.inf*/ml.trn* instance type or the image's CPU build"
        )
    return None


def model_instance_types(stage_config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(setting, instance type)`` of what runs the model: the BatchTransform step and an
    instance-backed endpoint (the template's default type when the block names none)."""
    settings = [("transform_instance_type", stage_config.get("transform_instance_type"))]
    endpoint = stage_config.get("endpoint") or {}
    if endpoint and endpoint.get("enabled", True) and not endpoint.get("serverless"):
        settings.append(("endpoint.instance_type", endpoint.get("instance_type", "ml.m5.large")))
    return [(name, value) for name, value in settings if isinstance(value, str)]


def framework_image_refusal(tags: list[str | None], stage_config: Mapping[str, Any]) -> str | None:
    """Why SageMaker framework images of these tags cannot run where the stage runs them."""
    endpoint = stage_config.get("endpoint") or {}
    serverless = endpoint.get("enabled", True) and endpoint.get("serverless")
    for tag in tags:
        for setting, instance_type in model_instance_types(stage_config):
            refusal = device_refusal(tag, instance_type, setting)
            if refusal:
                return refusal
        if serverless and tag and (_GPU_TAG.search(tag) or _NEURON_TAG.search(tag)):
            return (
                f"image tag {tag!r} needs an accelerator, which a serverless endpoint does not "
                "have; use an instance endpoint (endpoint.instance_type) or the CPU build"
            )
    return None


# a package container's data sources build.py does not copy into the stage (it copies
# ModelDataUrl, ModelDataSource's S3 source and AdditionalS3DataSource: promotion/artifacts.py)
_UNCOPIED_DATA = ("AdditionalModelDataSources",)


def package_refusal(package: Mapping[str, Any], stage_config: Mapping[str, Any]) -> str | None:
    """Why the stage cannot run ``package`` (a DescribeModelPackage answer), or None."""
    spec = package.get("InferenceSpecification")
    if not spec or not spec.get("Containers"):
        return (
            "the package has no inference containers (an algorithm package?); register it "
            "with an InferenceSpecification naming its image and model data"
        )
    for number, container in enumerate(spec["Containers"], start=1):
        if container.get("ModelDataSource"):
            # AWS: "Currently you cannot use ModelDataSource in conjunction with SageMaker
            # batch transform" (ContainerDefinition.ModelDataSource, SageMaker API reference)
            return (
                f"container {number} gives its model data as ModelDataSource, which SageMaker "
                "Batch Transform cannot use; register the model as a model.tar.gz in "
                "ModelDataUrl"
            )
        extra = [f for f in _UNCOPIED_DATA if container.get(f)]
        if extra:
            # build.py copies ModelDataUrl into the stage; these would still name the dev
            # account's S3, which the stage's roles cannot read
            return (
                f"container {number} lists {' and '.join(extra)}, which build.py does not copy "
                "into the stage (the stage could not read them); put that data into the "
                "model.tar.gz of ModelDataUrl and register the model again"
            )
    for field, direction in (
        ("SupportedContentTypes", "sends"),
        ("SupportedResponseMIMETypes", "asks for"),
    ):
        declared = spec.get(field) or []
        if declared and PIPELINE_CONTENT_TYPE not in declared:
            return (
                f"the package's {field} are {', '.join(declared)}, but the pipeline's "
                f"BatchTransform {direction} {PIPELINE_CONTENT_TYPE}; add {PIPELINE_CONTENT_TYPE} "
                "if the container handles it, or adapt the pipeline"
            )
    declared_outputs = (package.get("CustomerMetadataProperties") or {}).get("output_columns")
    if declared_outputs is not None:
        from pipelines.batch_inference import publish  # pyarrow: only for a declaration

        try:
            publish.parse_columns(declared_outputs)
        except publish.PublishError as error:
            return (
                f"its output_columns metadata {declared_outputs!r} cannot name the stage's "
                f"predictions table: {error}"
            )
    fields = {
        "transform_instance_type": "SupportedTransformInstanceTypes",
        "endpoint.instance_type": "SupportedRealtimeInferenceInstanceTypes",
    }
    for setting, instance_type in model_instance_types(stage_config):
        field = fields[setting]
        declared = spec.get(field) or []
        if declared and instance_type not in declared:
            return (
                f"the stage's {setting} {instance_type} is not among the package's {field} "
                f"({', '.join(declared)}); set one of those in the stage file"
            )
    return None


# SageMaker's scikit-learn image "<major>.<minor>-<n>-cpu-py3" holds scikit-learn
# <major>.<minor>.<n> (1.9-0: 1.9.0; aws/deep-learning-containers docker/sklearn/1.9-0)
_SKLEARN_TAG = re.compile(r"(\d+)\.(\d+)-(\d+)(?:-|$)")


def framework_version_warnings(package: Mapping[str, Any]) -> list[str]:
    """Where a container's declared ``FrameworkVersion`` and the scikit-learn its SageMaker
    image holds disagree: a model pickled by one scikit-learn and unpickled by another warns
    on every worker and may not load at all. Knowable only for SageMaker's scikit-learn
    image by tag and a package that declares its version; a warning, since the declaration
    is free text (``python -m pipelines.check_model`` runs the model to be sure)."""
    found = []
    containers = (package.get("InferenceSpecification") or {}).get("Containers") or []
    for number, container in enumerate(containers, start=1):
        declared = str(container.get("FrameworkVersion") or "")
        framework = str(container.get("Framework") or "SKLEARN").upper()
        image = str(container.get("Image") or "")
        repository, _, tag = image.rpartition("/")[2].partition(":")
        match = _SKLEARN_TAG.match(tag) if repository == "sagemaker-scikit-learn" else None
        if not (declared and match and framework in ("SKLEARN", "SCIKIT-LEARN")):
            continue
        holds = ".".join(match.groups())
        if declared.replace("-", ".") != holds:
            found.append(
                f"container {number} declares FrameworkVersion {declared}, but its image "
                f"{image.rpartition('/')[2]} holds scikit-learn {holds}: a model pickled by "
                f"another scikit-learn may not load there; train it with {holds} (check with "
                "python -m pipelines.check_model before deploying)"
            )
    return found


def check_runnable(package: Mapping[str, Any], stage_config: Mapping[str, Any]) -> None:
    """``package_refusal`` as the promotion's one-line error."""
    refusal = package_refusal(package, stage_config)
    if refusal:
        raise NotRunnable(f"{package.get('ModelPackageArn', 'the package')}: {refusal}")
