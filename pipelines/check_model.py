"""Run a promoted model in its container's runtime twin before the stage is deployed.

    python -m pipelines.check_model --tfvars build/preprod.tfvars.json [--input rows.csv]
        [--allow-version-skew] [--summary "$GITHUB_STEP_SUMMARY"]

``build.py`` has copied the model into the stage and written the stage's tfvars; before
Terraform creates anything, this takes the stage's package (``model_package_arn``), its
artifact and environment as the stage template will create the model (network isolation,
``STAGE_MODEL_ENVIRONMENT``), starts the image's real serving stack in its runtime twin with no
package index reachable (``local_mode.container``), and sends it the stage file's
``smoke_input`` (or ``--input``) as the pipeline would: through the ``Preprocess`` script with
the stage's schema (bad rows quarantined), the id dropped, ``text/csv`` mini-batches. It
refuses, with the reason, a model that cannot start there (a module install that needs an
index, a broken ``model_fn``), that refuses or fails on the rows, answers another number of
lines, or that was pickled with another scikit-learn than the image's
(``InconsistentVersionWarning``; ``--allow-version-skew`` only warns).

A model of an image local mode has no twin for (another framework, another scikit-learn
version) is not checked: the command says so and exits 0, since only SageMaker can run it.

Exit codes: 0 checked (or not checkable here, said on stderr); 2 bad arguments or inputs;
3 the model cannot start or answer; 1 an AWS error.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from common import aws_sessions
from common.exit_codes import (
    EXECUTION_FAILED,
    REPORTED,
    USAGE_ERROR,
    CommandFailed,
    report_failure,
)
from common.files import check_writable_option
from common.image_uris import local_refusal
from common.s3_locations import parse_s3_uri
from common.stage_model import STAGE_MODEL_ENVIRONMENT
from local_mode import storage, twin
from local_mode.container import Container, ContainerFailed, ContainerRefusal
from local_mode.serving import ModelLoadError, extract_artifact
from pipelines import smoke

REPO = Path(__file__).resolve().parents[1]
PREPROCESS = REPO / "pipelines" / "batch_inference" / "preprocess.py"  # what build.py uploads
CSV = "text/csv"
MAX_PAYLOAD_BYTES = 6 * 2**20  # the pipeline's MaxPayloadInMB
VERSION_WARNING = "InconsistentVersionWarning"


class CheckFailed(CommandFailed):
    """The model cannot be checked or did not pass; ``exit_code`` says which."""


@dataclass
class CheckResult:
    package_arn: str
    image: str
    checked: bool
    reason: str = ""
    start_seconds: float = 0.0
    rows: int = 0
    warnings: list[str] = field(default_factory=list)

    def line(self) -> str:
        if not self.checked:
            return f"model {self.package_arn} not checked: {self.reason}"
        scored = f", scored {self.rows} rows" if self.rows else ", no input to score"
        return (
            f"model {self.package_arn} started in the {self.image} runtime twin in "
            f"{self.start_seconds:.1f} s{scored}"
        )


def load_tfvars(path: Path) -> dict[str, Any]:
    """build.py's output for the stage (the smoke run's checks), naming the promoted package."""
    tfvars = smoke.load_tfvars(path, smoke_input=False)
    if not tfvars.get("model_package_arn"):
        raise CheckFailed(f"{path} lacks model_package_arn: is it build.py's output?", USAGE_ERROR)
    return tfvars


def model_rows(source: Path, schema: Path | None, work: Path) -> list[bytes]:
    """The input's rows as the pipeline hands them to the model: through the stage's
    ``Preprocess`` script (run in the twin: bad rows quarantined, the schema's columns in its
    order, no header), then the Transform's ``InputFilter`` ``$[1:]`` (the id dropped)."""
    (work / "input").mkdir(parents=True)
    shutil.copy(source, work / "input" / source.name)
    command = [
        str(twin.python()), str(PREPROCESS), "--input-dir", str(work / "input"),
        "--output-dir", str(work / "output"),
    ]  # fmt: skip
    if schema is not None:
        command += ["--schema", str(schema)]
    finished = subprocess.run(command, capture_output=True, text=True, check=False)
    if finished.returncode:
        said = finished.stderr.strip().splitlines()[-1:] or ["no message"]
        raise CheckFailed(f"{source} does not pass Preprocess: {said[0]}", USAGE_ERROR)
    rows: list[bytes] = []
    for written in sorted((work / "output" / "inference").rglob("*")):
        if written.is_file():
            rows += [line.partition(b",")[2] for line in written.read_bytes().splitlines()]
    return rows


def payloads(rows: list[bytes]) -> list[bytes]:
    """MultiRecord requests within the pipeline's payload limit."""
    batches: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for row in rows:
        encoded = row + b"\n"
        if current and size + len(encoded) > MAX_PAYLOAD_BYTES:
            batches.append(b"".join(current))
            current, size = [], 0
        current.append(encoded)
        size += len(encoded)
    if current:
        batches.append(b"".join(current))
    return batches


def version_warnings(log: str) -> list[str]:
    """scikit-learn's unpickling warnings, one line each (without the advice that follows)."""
    found = []
    for line in log.splitlines():
        if VERSION_WARNING in line:
            text = line.split(f"{VERSION_WARNING}: ", 1)[-1].strip()
            text = text.split(" This might lead", 1)[0]
            if text not in found:
                found.append(text)
    return found


def check(
    tfvars: dict[str, Any],
    session: boto3.Session,
    source: Path | None,
    allow_version_skew: bool = False,
) -> CheckResult:
    arn = tfvars["model_package_arn"]
    sagemaker, s3 = session.client("sagemaker"), session.client("s3")
    package = sagemaker.describe_model_package(ModelPackageName=arn)
    containers = package.get("InferenceSpecification", {}).get("Containers", [])
    if len(containers) != 1:
        return CheckResult(arn, "", False, "local mode runs single-container packages only")
    container = containers[0]
    image = container.get("Image", "")
    refusal = local_refusal(image)
    if refusal:
        return CheckResult(arn, image, False, refusal)
    if not container.get("ModelDataUrl"):
        raise CheckFailed(f"package {arn} has no ModelDataUrl to serve", EXECUTION_FAILED)
    environment = {**(container.get("Environment") or {}), **STAGE_MODEL_ENVIRONMENT}
    with tempfile.TemporaryDirectory(prefix="check-model-") as scratch:
        work = Path(scratch)
        schema = None
        if tfvars.get("feature_schema_url"):
            bucket, key = parse_s3_uri(tfvars["feature_schema_url"])
            schema = work / "feature-schema.json"
            storage.download(s3, bucket, key, schema)
        rows = model_rows(source, schema, work / "preprocess") if source else []
        bucket, key = parse_s3_uri(container["ModelDataUrl"])
        storage.download(s3, bucket, key, work / "model.tar.gz")
        try:
            model_dir = extract_artifact(work / "model.tar.gz", work / "model")
        except ModelLoadError as error:
            raise CheckFailed(str(error), EXECUTION_FAILED) from None
        started = time.perf_counter()
        try:
            with Container(model_dir, environment, work_dir=work / "container") as served:
                seconds = time.perf_counter() - started
                answered = 0
                for payload in payloads(rows):
                    count = payload.count(b"\n")
                    try:
                        body = served.invoke(payload, CSV, CSV)
                    except ContainerRefusal as refusal:
                        raise CheckFailed(
                            f"the model refused rows {answered + 1}-{answered + count} of "
                            f"{source}: {refusal}",
                            EXECUTION_FAILED,
                        ) from None
                    lines = len(body.splitlines())
                    if lines != count:
                        raise CheckFailed(
                            f"the model answered {lines} lines for {count} rows: Batch "
                            "Transform cannot join them to their records",
                            EXECUTION_FAILED,
                        )
                    answered += lines
                warnings = version_warnings(served.log())
        except ContainerFailed as error:
            raise CheckFailed(
                f"the model cannot start in its container: {error}", EXECUTION_FAILED
            ) from None
        except twin.TwinMissing as error:
            raise CheckFailed(str(error), USAGE_ERROR) from None
    if warnings and not allow_version_skew:
        raise CheckFailed(
            f"the model was pickled with another scikit-learn than its image's: {warnings[0]}; "
            "train it with the image's version (or pass --allow-version-skew)",
            EXECUTION_FAILED,
        )
    return CheckResult(arn, image.rsplit("/", 1)[-1], True, "", seconds, answered, warnings)


def stage_input(tfvars: dict[str, Any]) -> Path | None:
    """The stage file's ``smoke_input`` (a file in this repository), if it names one."""
    return REPO / tfvars["smoke_input"] if tfvars.get("smoke_input") else None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.check_model", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--tfvars", type=Path, required=True, help="build.py's output")
    parser.add_argument(
        "--input", type=Path, help="CSV with a header (default: the stage file's smoke_input)"
    )
    parser.add_argument("--allow-version-skew", action="store_true")
    parser.add_argument("--summary", type=Path, help="append the result here (Markdown)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        aws_sessions.check_environment()  # AWS_MAX_ATTEMPTS, AWS_ENDPOINT_URL: first
        if args.summary:
            check_writable_option("--summary", args.summary)
        tfvars = load_tfvars(args.tfvars)
        source = args.input or stage_input(tfvars)
        if source is not None and not source.is_file():
            raise CheckFailed(f"input {source} is not a file", USAGE_ERROR)
        result = check(tfvars, aws_sessions.session(), source, args.allow_version_skew)
    except aws_sessions.AwsSettingError as error:
        return report_failure("check_model", args.tfvars, CommandFailed(str(error)))
    except REPORTED as error:
        return report_failure("check_model", args.tfvars, error)
    for warning in result.warnings:
        print(f"check_model: warning: {warning}", file=sys.stderr)
    print(f"check_model: {result.line()}", file=sys.stdout if result.checked else sys.stderr)
    if args.summary:
        with args.summary.open("a", encoding="utf-8") as summary:
            summary.write(f"- check_model: {result.line()}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
