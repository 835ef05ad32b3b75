"""``python -m pipelines.check_model``: a promoted package's model in its container's runtime
twin, before the stage is deployed (against the emulator's registries and buckets)."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from examples.breast_cancer import model
from local_mode import twin
from local_mode.emulator import Emulator
from pipelines import check_model
from tests.registry import IMAGE, DevRegistry, create_stage, run_build

SMOKE = Path(__file__).resolve().parents[1] / "examples" / "breast_cancer" / "smoke-input.csv"


@pytest.fixture
def built(built_model: model.Built) -> model.Built:
    return built_model


def rewritten(archive: Path, changes: dict[str, bytes]) -> bytes:
    """The archive with some members replaced or added."""
    out = io.BytesIO()
    with tarfile.open(archive) as source, tarfile.open(fileobj=out, mode="w:gz") as target:
        for member in source.getmembers():
            if member.name not in changes:
                target.addfile(member, source.extractfile(member) if member.isfile() else None)
        for name, data in changes.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            target.addfile(info, io.BytesIO(data))
    return out.getvalue()


def promote(
    aws: Emulator, tmp_path: Path, body: bytes, image: str | None = None, **declared: str
) -> dict[str, Any]:
    """The package registered in dev with the sample's environment (and ``declared``
    container fields), promoted by build.py."""
    create_stage(aws, "preprod")
    registry = DevRegistry(aws)
    url = registry.put_artifact("training/run-1/output/model.tar.gz", body)
    container = {"ModelDataUrl": url, "Environment": model.container_environment(), **declared}
    container["Image"] = image or IMAGE
    registry.register("Approved", containers=[container])
    assert run_build(tmp_path) == 0
    return json.loads((tmp_path / "preprod.tfvars.json").read_text())


def test_the_sample_model_starts_and_scores_the_smoke_input(aws, built, tmp_path) -> None:
    tfvars = promote(aws, tmp_path, built.archive.read_bytes())
    result = check_model.check(tfvars, aws.account("preprod"), SMOKE)
    # the 40 rows but the two Preprocess quarantines ("n/a"), as the pipeline scores them
    assert result.checked and result.rows == 38 and result.warnings == []
    assert result.image == "sagemaker-scikit-learn:1.9-0-cpu-py3"
    args = ["--tfvars", str(tmp_path / "preprod.tfvars.json"), "--input", str(tmp_path / "no.csv")]
    assert check_model.main(args) == 2


def test_a_model_that_needs_a_package_index_is_refused(aws, built, tmp_path, capsys) -> None:
    body = rewritten(built.archive, {"code/requirements.txt": b"not-in-the-image==1.0\n"})
    tfvars = promote(aws, tmp_path, body)
    (tmp_path / "preprod.tfvars.json").write_text(json.dumps(tfvars))
    with pytest.raises(check_model.CheckFailed) as failure:
        check_model.check(tfvars, aws.account("preprod"), SMOKE)
    assert failure.value.exit_code == 3
    assert str(failure.value).startswith("the model cannot start in its container: ")
    assert "InstallModuleError" in str(failure.value)


def test_rows_the_model_refuses_fail_the_check_with_the_reason(aws, built, tmp_path) -> None:
    """A model that takes 29 features: the smoke rows, shaped as the pipeline shapes them,
    are refused with the model's reason."""
    trained = tmp_path / "trained"
    with tarfile.open(built.archive) as archive:
        archive.extractall(trained, filter="data")
    narrower = (
        (trained / "code" / "inference.py")
        .read_text()
        .replace('expected = getattr(model, "n_features_in_", features.shape[1])', "expected = 29")
    )
    assert "expected = 29" in narrower
    body = rewritten(built.archive, {"code/inference.py": narrower.encode()})
    tfvars = promote(aws, tmp_path, body)
    with pytest.raises(check_model.CheckFailed) as failure:
        check_model.check(tfvars, aws.account("preprod"), SMOKE)
    assert failure.value.exit_code == 3
    assert str(failure.value) == (
        f"the model refused rows 1-38 of {SMOKE}: HTTP 400: 30 feature columns, the model takes 29"
    )


def test_a_model_pickled_by_another_scikit_learn_is_refused_unless_allowed(
    aws, built, tmp_path
) -> None:
    """The pickle says scikit-learn 1.8.0 (as a model trained on another version would):
    the image's 1.9.0 warns on every worker; the check refuses it."""
    script = (
        "import joblib, sys, sklearn.base\n"
        "model = joblib.load(sys.argv[1])\n"
        "sklearn.base.__version__ = '1.8.0'\n"
        "joblib.dump(model, sys.argv[1])\n"
    )
    unpacked = tmp_path / "unpacked"
    with tarfile.open(built.archive) as archive:
        archive.extractall(unpacked, filter="data")
    subprocess.run([str(twin.python()), "-c", script, str(unpacked / "model.joblib")], check=True)
    body = rewritten(built.archive, {"model.joblib": (unpacked / "model.joblib").read_bytes()})
    tfvars = promote(aws, tmp_path, body)
    with pytest.raises(check_model.CheckFailed) as failure:
        check_model.check(tfvars, aws.account("preprod"), SMOKE)
    assert failure.value.exit_code == 3
    said = str(failure.value)
    assert "pickled with another scikit-learn than its image's: Trying to unpickle" in said
    assert "from version 1.8.0 when using version 1.9.0" in said
    allowed = check_model.check(tfvars, aws.account("preprod"), SMOKE, allow_version_skew=True)
    assert allowed.checked and allowed.warnings


def test_promotion_says_when_the_declared_scikit_learn_is_not_the_images(
    aws, built, tmp_path, capsys
) -> None:
    """Knowable from the package alone: build.py warns (and promotes); check_model proves."""
    promote(
        aws, tmp_path, built.archive.read_bytes(), Framework="SKLEARN", FrameworkVersion="1.8.2"
    )
    out = capsys.readouterr().out
    assert (
        "warning:  container 1 declares FrameworkVersion 1.8.2, but its image "
        "sagemaker-scikit-learn:1.9-0-cpu-py3 holds scikit-learn 1.9.0"
    ) in out


def test_a_model_of_another_image_is_not_checked_and_says_so(aws, built, tmp_path) -> None:
    image = "763104351884.dkr.ecr.eu-west-1.amazonaws.com/pytorch-inference:2.5-cpu-py311"
    tfvars = promote(aws, tmp_path, built.archive.read_bytes(), image=image)
    result = check_model.check(tfvars, aws.account("preprod"), SMOKE)
    assert not result.checked
    assert result.line().endswith("deploy the stage to AWS to score with it")


def test_cli_usage_errors_exit_2(tmp_path, capsys) -> None:
    assert check_model.main(["--tfvars", str(tmp_path / "none.json")]) == 2
    assert capsys.readouterr().err == (
        f"check_model: {tmp_path / 'none.json'} does not exist: run build.py first\n"
    )
    (tmp_path / "t.json").write_text('{"model_package_arn": "arn"}')
    assert check_model.main(["--tfvars", str(tmp_path / "t.json")]) == 2
    assert "lacks pipeline_name, artifacts_bucket" in capsys.readouterr().err
