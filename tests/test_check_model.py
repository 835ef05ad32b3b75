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


# ------------------------------------------------------------------ --model: a team's own model

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = {
    # the breast-cancer smoke input carries two bad rows on purpose (the pipeline quarantines
    # them), so its check allows the share its pre-prod stage file allows
    "breast_cancer": (REPO / "pipelines" / "batch_inference" / "feature-schema.json", SMOKE, "0.1"),
    "ticket_triage": (
        REPO / "examples" / "ticket_triage" / "feature-schema.json",
        REPO / "examples" / "ticket_triage" / "smoke-input.csv",
        "0",
    ),
}


@pytest.fixture(scope="module")
def triage(tmp_path_factory: pytest.TempPathFactory) -> model.Built:
    """The ticket-triage model trained and packaged once, in the runtime twin (read only)."""
    from examples.ticket_triage import model as triage_model

    return triage_model.build(tmp_path_factory.mktemp("triage"))


def unpacked(archive: Path, destination: Path) -> Path:
    with tarfile.open(archive) as bundle:
        bundle.extractall(destination, filter="data")
    return destination


def own(model_arg: str, example: str, *extra: str) -> list[str]:
    schema, smoke, allowed = EXAMPLES[example]
    return [
        "--model", model_arg, "--schema", str(schema), "--input", str(smoke),
        "--max-rejected-fraction", allowed, *extra,
    ]  # fmt: skip


@pytest.mark.parametrize("form", ["tarball", "directory"])
@pytest.mark.parametrize("example", ["breast_cancer", "ticket_triage"])
def test_a_teams_model_meets_the_contract(
    example, form, built_model, triage, tmp_path, capsys
) -> None:
    archive = (built_model if example == "breast_cancer" else triage).archive
    given = archive if form == "tarball" else unpacked(archive, tmp_path / "model")
    summary = tmp_path / "summary.md"
    assert check_model.main(own(str(given), example, "--summary", str(summary))) == 0
    out = capsys.readouterr().out.splitlines()
    checks = [line.split(": ", 2)[1] for line in out[:-1]]
    assert checks == [
        "ok  artifact", "ok  content types", "ok  schema", "ok  input", "ok  container",
        "ok  answers", "ok  columns", "ok  scikit-learn version",
    ]  # fmt: skip
    assert "a .tar.gz holding code/inference.py, the handler named" in out[0]
    if example == "breast_cancer":
        assert "2 of 40 rows of smoke-input.csv rejected by the schema (r000000009: " in out[3]
        assert "within --max-rejected-fraction 0.1" in out[3]
        assert "1 mini-batch of 38 rows answered 200 with text/csv" in out[5]
        assert "1 answer column on every line, all kept (OutputFilter $[0,31:]" in out[6]
    else:  # multi-class: the label and three probabilities, nulls and all
        assert "all 40 rows of smoke-input.csv pass the schema" in out[3]
        assert "4 answer columns on every line, all kept (OutputFilter $[0,8:]" in out[6]
    assert out[-1] == f"check_model: model {given} meets the pipeline's contract"
    assert summary.read_text().count("\n") == 9


def test_a_package_arn_is_read_with_the_current_credentials(
    aws, triage, tmp_path, monkeypatch, capsys
) -> None:
    """Its artifact, environment, image and declared types from the registry: here it
    answers text/csv but declares JSON, the one violation."""
    registry = DevRegistry(aws)
    url = registry.put_artifact("training/run-1/output/model.tar.gz", triage.archive.read_bytes())
    container = {"Image": IMAGE, "ModelDataUrl": url, "Environment": model.container_environment()}
    arn = registry.register(
        containers=[{**container, "Framework": "SKLEARN", "FrameworkVersion": "1.9.0"}],
        specification={"SupportedResponseMIMETypes": ["text/csv", "application/json"]},
    )
    credentials = aws.account("dev").get_credentials().get_frozen_credentials()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", credentials.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", credentials.secret_key)
    monkeypatch.setenv("AWS_SESSION_TOKEN", credentials.token)
    assert check_model.main(own(arn, "ticket_triage")) == 3
    captured = capsys.readouterr()
    violations = [line for line in captured.out.splitlines() if "VIOLATION" in line]
    assert violations == [
        "check_model: VIOLATION  content types: the package declares SupportedResponseMIMETypes "
        "['text/csv', 'application/json']: the pipeline sends and asks for text/csv only; "
        "register it with ['text/csv'] in and out"
    ]
    assert "ok  columns: 4 answer columns" in captured.out
    assert "no InconsistentVersionWarning (the package declares FrameworkVersion 1.9.0)" in (
        captured.out
    )
    assert (
        captured.err == f"check_model: model {arn}: 1 contract violation: fix each VIOLATION line\n"
    )
    missing = arn.replace("/1", "/99")
    assert check_model.main(own(missing, "ticket_triage")) == 1


def test_a_broken_model_is_reported_with_every_violation_at_once(triage, tmp_path, capsys) -> None:
    """A handler that answers JSON's type and one line too few, and a smoke row the schema
    rejects: three lines, each naming what to fix; the checks it meets still say so."""
    directory = unpacked(triage.archive, tmp_path / "model")
    handler = directory / "code" / "inference.py"
    text = handler.read_text()
    broken = text.replace(
        'return container_worker.Response(response=body, headers={"Content-Type": CSV})',
        'body = body[: body.rstrip(b"\\n").rfind(b"\\n") + 1]\n'
        '    return container_worker.Response(response=body, headers={"Content-Type": '
        '"application/json"})',
    )
    assert broken != text
    handler.write_text(broken)
    smoke = tmp_path / "smoke.csv"
    lines = EXAMPLES["ticket_triage"][1].read_text().splitlines()
    smoke.write_text("\n".join([*lines, "t999999999,web,api,pro,12,1,20.5,very happy"]) + "\n")
    argv = ["--model", str(directory), "--schema", str(EXAMPLES["ticket_triage"][0])]
    assert check_model.main([*argv, "--input", str(smoke)]) == 3
    captured = capsys.readouterr()
    violations = [line for line in captured.out.splitlines() if "VIOLATION" in line]
    assert violations == [
        "check_model: VIOLATION  input: 1 of 41 rows of smoke.csv rejected by the schema "
        "(t999999999: 'sentiment': 'very happy' is not a float): fix the rows or the schema "
        "(or allow a share with --max-rejected-fraction)",
        "check_model: VIOLATION  answers: rows 1-40 answered with Content-Type "
        "application/json: answer text/csv, the pipeline's Accept",
        "check_model: VIOLATION  lines: 39 lines answered for rows 1-40: Batch Transform joins "
        "the answer to the records line by line, answer one line per row",
    ]
    assert "ok  container: started in the sagemaker-scikit-learn:1.9-0-cpu-py3" in captured.out
    assert captured.err.endswith("3 contract violations: fix each VIOLATION line\n")


def test_model_usage_errors_exit_2(tmp_path, capsys) -> None:
    schema, smoke, _ = EXAMPLES["ticket_triage"]
    base = ["--schema", str(schema), "--input", str(smoke)]
    assert check_model.main(["--model", str(tmp_path / "none"), *base]) == 2
    assert capsys.readouterr().err.endswith("no such file or directory\n")
    assert check_model.main(["--model", str(tmp_path), *base, "--environment", "NOPE"]) == 2
    assert capsys.readouterr().err == "check_model: --environment 'NOPE' is not KEY=VALUE\n"
    with pytest.raises(SystemExit) as usage:
        check_model.main(["--model", str(tmp_path), "--input", str(smoke)])
    assert usage.value.code == 2
