"""The runtime twin stays the image's: versions, the stage's model environment, the loopback
bind, which images local mode runs, and the framework-version warning at promotion."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from common.image_uris import LOCAL_IMAGE_VERSION, local_refusal
from common.stage_model import STAGE_MODEL_ENVIRONMENT
from local_mode import twin
from local_mode.sklearn_image.serve import loopback_popen
from pipelines.batch_inference.pipeline import DEFAULT_SKLEARN_VERSION, sklearn_image_uri
from promotion.runnable import framework_version_warnings
from tests.terraform_cli import MODULES, blocks

REPO = Path(__file__).resolve().parents[1]


def test_the_twin_follows_the_pipelines_scikit_learn_image() -> None:
    """Moving DEFAULT_SKLEARN_VERSION without a new twin (or the reverse) fails here."""
    assert twin.IMAGE_VERSION == DEFAULT_SKLEARN_VERSION == LOCAL_IMAGE_VERSION
    assert twin.LOCK.name == f"requirements-sklearn-{DEFAULT_SKLEARN_VERSION}.lock"
    version = re.fullmatch(r"(\d+)\.(\d+)-(\d+)", DEFAULT_SKLEARN_VERSION)
    assert version is not None
    assert twin.lock_pins()["scikit-learn"] == ".".join(version.groups())


def normal(name: str) -> str:
    """A distribution name as PEP 503 compares them (zope.event = zope-event)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_installed_twin_is_the_lock_on_the_images_python() -> None:
    probe = (
        "import json, sys, importlib.metadata as m\n"
        "print(json.dumps({'python': list(sys.version_info[:2]), 'packages': "
        "{d.metadata['Name'].lower(): d.version for d in m.distributions()}}))"
    )
    found = json.loads(
        subprocess.run(
            [str(twin.python()), "-c", probe], capture_output=True, text=True, check=True
        ).stdout
    )
    assert tuple(found["python"]) == twin.PYTHON_VERSION
    installed = {normal(name): version for name, version in found["packages"].items()}
    pins = {normal(name): version for name, version in twin.lock_pins().items()}
    assert {name: installed.get(name) for name in pins} == pins
    # the image's own edit, made by make twin
    mapping = twin.site_packages(twin.python()) / "sagemaker_containers" / "_mapping.py"
    assert "collections.Mapping" not in mapping.read_text().replace("collections.abc.Mapping", "")


def test_the_stage_template_gives_its_models_the_stage_model_environment() -> None:
    # the template's resources: its module, terraform/stage
    template = blocks(sorted((MODULES / "stage").glob("*.tf")))
    models = {
        name.strip('"'): spec
        for block in template["resource"]
        for name, spec in block.get('"aws_sagemaker_model"', {}).items()
    }
    assert set(models) == {"batch", "serverless"}
    assert models["batch"]["enable_network_isolation"] is True
    for model in models.values():  # the serverless model's container is the batch model's
        (container,) = model["primary_container"]
        assert container["environment"] == "${local.stage_model_environment}"
    (environment,) = [
        block["stage_model_environment"]
        for block in template["locals"]
        if "stage_model_environment" in block
    ]
    assert {k: v.strip('"') for k, v in environment.items()} == STAGE_MODEL_ENVIRONMENT


def test_the_launcher_binds_gunicorn_to_loopback_and_leaves_other_commands() -> None:
    seen: list[list[str]] = []
    start = loopback_popen(lambda command, *a, **k: seen.append(command))
    start(["gunicorn", "--timeout", "60", "-b", "0.0.0.0:8080", "sklearn_serving:main"])
    start(["python", "-m", "pip", "install", "."])
    assert seen == [
        ["gunicorn", "--timeout", "60", "-b", "127.0.0.1:8080", "sklearn_serving:main"],
        ["python", "-m", "pip", "install", "."],
    ]


def test_local_mode_runs_only_the_twins_scikit_learn_version() -> None:
    assert local_refusal(sklearn_image_uri("eu-west-1")) is None
    other = "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:1.4-2-cpu-py3"
    refusal = local_refusal(other)
    assert refusal == (
        f"local mode cannot run image {other}: its runtime twin is the scikit-learn 1.9-0 "
        "image's (make twin); score this model on SageMaker, or move it to 1.9-0"
    )


IMAGE = "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:1.9-0-cpu-py3"


@pytest.mark.parametrize(
    ("container", "warned"),
    [
        ({"Image": IMAGE, "FrameworkVersion": "1.9.0"}, False),
        ({"Image": IMAGE, "FrameworkVersion": "1.9-0", "Framework": "SKLEARN"}, False),
        ({"Image": IMAGE, "FrameworkVersion": "1.9.1", "Framework": "SKLEARN"}, True),
        ({"Image": IMAGE, "FrameworkVersion": "1.8.0"}, True),
        ({"Image": IMAGE}, False),  # nothing declared: not knowable
        ({"Image": IMAGE, "FrameworkVersion": "2.1.0", "Framework": "PYTORCH"}, False),
        (
            {"Image": IMAGE.replace("1.9-0-cpu-py3", "1.4-2-cpu-py3"), "FrameworkVersion": "1.9.0"},
            True,
        ),
        (
            {
                "Image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mine:1",
                "FrameworkVersion": "1.2",
            },
            False,
        ),
    ],
)
def test_promotion_warns_when_the_declared_version_is_not_the_images(container, warned) -> None:
    warnings = framework_version_warnings({"InferenceSpecification": {"Containers": [container]}})
    assert bool(warnings) is warned
    if warned:
        assert warnings[0].startswith(
            f"container 1 declares FrameworkVersion {container['FrameworkVersion']}"
        )
        assert "python -m pipelines.check_model" in warnings[0]
