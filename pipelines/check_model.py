"""Run a model in its container's runtime twin before it is deployed, or registered.

    python -m pipelines.check_model --tfvars build/preprod.tfvars.json [--input rows.csv]
        [--allow-version-skew] [--summary "$GITHUB_STEP_SUMMARY"]
    python -m pipelines.check_model --model (ARN | DIR | model.tar.gz) --schema schema.json
        --input smoke.csv [--environment KEY=VALUE ...] [--max-rejected-fraction F]
        [--allow-version-skew] [--summary FILE]

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

``--model`` checks a team's model against the pipeline's contract and reports every
violation at once, one line each (a team fixes them together, not one run each): a package
ARN (read with the current credentials: its artifact, environment, image, declared content
types), a model directory or a ``model.tar.gz`` (the environment ``container_environment()``'s,
``code/inference.py``), the stage template's variables over either and ``--environment``
over those. The checks: the artifact is a ``.tar.gz`` holding the handler the environment
names; a package declares ``text/csv`` in and out, nothing else; the schema loads and the
input passes it (rejected rows named with their reasons; ``--max-rejected-fraction``
allows a share); the container starts with no index; every mini-batch is answered 200 with
``text/csv``, one line per row (a refusal named with the handler's reason); every line has
the same number of columns (the pipeline keeps them all); no ``InconsistentVersionWarning``.

Exit codes: 0 checked (or not checkable here, said on stderr), or every contract check met;
2 bad arguments or inputs; 3 the model cannot start or answer, or a contract violation
(``--model``); 1 an AWS error.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Callable
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
from common.stage_model import STAGE_MODEL_ENVIRONMENT, container_environment
from local_mode import storage, twin
from local_mode.container import Container, ContainerFailed, ContainerRefusal
from local_mode.serving import ModelLoadError, extract_artifact
from pipelines import smoke
from pipelines.batch_inference import preprocess
from pipelines.batch_inference.preprocess import WHOLE_FILES

REPO = Path(__file__).resolve().parents[1]
PREPROCESS = REPO / "pipelines" / "batch_inference" / "preprocess.py"  # what build.py uploads
CSV = "text/csv"
MAX_PAYLOAD_BYTES = 6 * 2**20  # the pipeline's MaxPayloadInMB
VERSION_WARNING = "InconsistentVersionWarning"
MODEL_ROOT = "/opt/ml/model/"  # SAGEMAKER_SUBMIT_DIRECTORY inside the artifact


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


# ------------------------------------------------------------------ a team's own model


@dataclass(frozen=True)
class Finding:
    """One contract check's outcome: one line of the report, naming the fix when it failed."""

    check: str
    passed: bool
    text: str

    def line(self) -> str:
        return f"{'ok' if self.passed else 'VIOLATION'}  {self.check}: {self.text}"


@dataclass
class Report:
    """Every contract check of a team's model, collected (none stops the others)."""

    model: str
    findings: list[Finding] = field(default_factory=list)

    def add(self, check: str, passed: bool, text: str) -> None:
        self.findings.append(Finding(check, passed, text))

    @property
    def violations(self) -> list[Finding]:
        return [finding for finding in self.findings if not finding.passed]

    def verdict(self) -> str:
        count = len(self.violations)
        if not count:
            return f"model {self.model} meets the pipeline's contract"
        return f"model {self.model}: {count} contract violation{'s' * (count != 1)}"


@dataclass
class OwnModel:
    """What ``--model`` names, resolved: its artifact here and how its container runs it."""

    name: str
    artifact: Path | None  # a model.tar.gz or a model directory; None: the package has none
    environment: dict[str, str]
    image: str = ""  # the package's; a directory or tarball runs in the twin's image
    declared: tuple[list[str], list[str]] | None = None  # a package's content types (in, out)
    framework_version: str = ""


@dataclass
class Preprocessed:
    """The input as Preprocess left it: the rows the model gets, and what it rejected."""

    rows: list[bytes]
    read: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (id, reason)
    whole_file: str = ""  # why Preprocess rejected the file whole


def parse_environment(pairs: list[str]) -> dict[str, str]:
    """``--environment KEY=VALUE`` options as a map (the last of a key wins)."""
    environment = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key.strip():
            raise CheckFailed(f"--environment {pair!r} is not KEY=VALUE", USAGE_ERROR)
        environment[key.strip()] = value
    return environment


def resolve_model(
    spec: str, overrides: dict[str, str], session: Callable[[], boto3.Session], work: Path
) -> OwnModel:
    """A package ARN (read with the current credentials, its artifact downloaded into
    ``work``), or a model directory or ``model.tar.gz`` with the examples' handler environment;
    the stage template's variables over either, then ``overrides``."""
    if not spec.startswith("arn:"):
        path = Path(spec)
        if not path.exists():
            raise CheckFailed(f"--model {spec}: no such file or directory", USAGE_ERROR)
        environment = {**container_environment(), **STAGE_MODEL_ENVIRONMENT, **overrides}
        return OwnModel(spec, path, environment)
    client = session()
    package = client.client("sagemaker").describe_model_package(ModelPackageName=spec)
    specification = package.get("InferenceSpecification") or {}
    containers = specification.get("Containers") or []
    if len(containers) != 1:
        raise CheckFailed(
            f"package {spec} has {len(containers)} containers: the pipeline's Transform "
            "serves single-container packages",
            USAGE_ERROR,
        )
    container = containers[0]
    environment = {**(container.get("Environment") or {}), **STAGE_MODEL_ENVIRONMENT, **overrides}
    artifact = None
    if container.get("ModelDataUrl"):
        bucket, key = parse_s3_uri(container["ModelDataUrl"])
        artifact = work / "package" / key.rsplit("/", 1)[-1]
        storage.download(client.client("s3"), bucket, key, artifact)
    declared = (
        list(specification.get("SupportedContentTypes") or []),
        list(specification.get("SupportedResponseMIMETypes") or []),
    )
    return OwnModel(
        spec, artifact, environment, container.get("Image", ""), declared,
        str(container.get("FrameworkVersion") or ""),
    )  # fmt: skip


def packed(directory: Path, archive: Path) -> Path:
    """``directory``'s files as a ``model.tar.gz`` (its contents at the root, as SageMaker
    unpacks them into ``/opt/ml/model``): what the team would upload."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as bundle:
        for path in sorted(directory.iterdir()):
            bundle.add(path, arcname=path.name)
    return archive


def check_artifact(model: OwnModel, report: Report, work: Path) -> Path | None:
    """The artifact is a gzip-compressed tar holding the handler the environment names;
    returns it unpacked (None when it cannot be)."""
    program = model.environment.get("SAGEMAKER_PROGRAM", "")
    submit = model.environment.get("SAGEMAKER_SUBMIT_DIRECTORY", "/opt/ml/model/code")
    if model.artifact is None:
        report.add("artifact", False, "the package has no ModelDataUrl: register its model.tar.gz")
        return None
    archive = model.artifact
    if archive.is_dir():
        archive = packed(archive, work / "packed" / "model.tar.gz")
    try:
        with tarfile.open(archive, "r:gz"):
            pass
    except (tarfile.TarError, OSError):
        report.add(
            "artifact", False,
            f"{model.artifact.name} is not a gzip-compressed tar: SageMaker unpacks the model "
            "from a model.tar.gz (tar czf model.tar.gz -C DIR .)",
        )  # fmt: skip
        return None
    try:
        model_dir = extract_artifact(archive, work / "model")
    except ModelLoadError as error:
        report.add("artifact", False, f"{error}: pack it again with tar czf")
        return None
    if not program:
        report.add(
            "artifact", False,
            "the environment names no handler: set SAGEMAKER_PROGRAM (--environment "
            "SAGEMAKER_PROGRAM=inference.py)",
        )  # fmt: skip
    elif not submit.startswith(MODEL_ROOT):
        report.add(
            "artifact", True,
            f"a .tar.gz; its handler {program} comes from {submit} (not checked here)",
        )  # fmt: skip
    else:
        handler = Path(submit[len(MODEL_ROOT) :]) / program
        if (model_dir / handler).is_file():
            report.add("artifact", True, f"a .tar.gz holding {handler}, the handler named")
        else:
            report.add(
                "artifact", False,
                f"the .tar.gz has no {handler}, the handler SAGEMAKER_PROGRAM and "
                "SAGEMAKER_SUBMIT_DIRECTORY name: put it there, or name yours with --environment",
            )  # fmt: skip
    return model_dir


def check_content_types(model: OwnModel, report: Report) -> None:
    """A package must declare ``text/csv`` in and out, and nothing else: the pipeline's
    Transform sends and asks for ``text/csv`` only."""
    if model.declared is None:
        report.add(
            "content types", True,
            f"no package yet: register it with SupportedContentTypes and "
            f"SupportedResponseMIMETypes [{CSV!r}], what the pipeline sends and asks for",
        )  # fmt: skip
        return
    problems = [
        f"{field_name} {declared or 'none'}"
        for field_name, declared in zip(
            ("SupportedContentTypes", "SupportedResponseMIMETypes"), model.declared, strict=True
        )
        if declared != [CSV]
    ]
    if problems:
        report.add(
            "content types", False,
            f"the package declares {' and '.join(problems)}: the pipeline sends and asks for "
            f"{CSV} only; register it with [{CSV!r}] in and out",
        )  # fmt: skip
    else:
        report.add("content types", True, f"{CSV} in and out, as the pipeline sends and asks")


def preprocessed(source: Path, schema: Path, work: Path) -> Preprocessed:
    """``source`` through the Preprocess script in the twin (as :func:`model_rows`), with
    what it rejected: each row's id and reason, or why it rejected the file whole."""
    (work / "input").mkdir(parents=True)
    shutil.copy(source, work / "input" / source.name)
    command = [
        str(twin.python()), str(PREPROCESS), "--input-dir", str(work / "input"),
        "--output-dir", str(work / "output"), "--schema", str(schema),
        "--quality-gate-mode", "warn",
    ]  # fmt: skip
    finished = subprocess.run(command, capture_output=True, text=True, check=False)
    summaries = sorted((work / "output" / "summary").glob("*.json"))
    if not summaries:
        said = finished.stderr.strip().splitlines()[-1:] or ["no message"]
        raise CheckFailed(f"{source} does not pass Preprocess: {said[0]}", USAGE_ERROR)
    summary = json.loads(summaries[0].read_text())
    result = Preprocessed([], int(summary["rows_read"]))
    notes = [f["note"] for f in summary["files"] if f.get("quarantined_to")]
    result.whole_file = notes[0].removeprefix("rejected whole: ") if notes else ""
    for written in sorted((work / "output" / "inference").rglob("*")):
        if written.is_file():
            result.rows += [line.partition(b",")[2] for line in written.read_bytes().splitlines()]
    for rejected in sorted((work / "output" / "rejected").rglob("*.csv")):
        if WHOLE_FILES not in rejected.relative_to(work / "output" / "rejected").parts:
            with rejected.open(newline="", encoding="utf-8") as handle:
                result.rejected += [(row["id"], row["reason"]) for row in csv.DictReader(handle)]
    return result


def check_input(
    schema_path: Path, source: Path, max_rejected: float, report: Report, work: Path
) -> list[bytes]:
    """The schema loads and the input passes it; the rows the model gets."""
    try:
        schema = preprocess.Schema.load(schema_path)
    except preprocess.UsageError as error:
        report.add("schema", False, f"{error}: fix the schema (docs/schema.md)")
        return []
    features = len(schema.features)
    report.add("schema", True, f"{features} features, id column {schema.id_column!r}")
    result = preprocessed(source, schema_path, work)
    if result.whole_file:
        report.add("input", False, f"Preprocess rejects {source.name} whole: {result.whole_file}")
        return []
    if not result.read:
        report.add("input", False, f"{source.name} has no rows: give the smoke input some")
        return []
    count = len(result.rejected)
    if not count:
        report.add("input", True, f"all {result.read} rows of {source.name} pass the schema")
        return result.rows
    named = "; ".join(f"{identifier}: {reason}" for identifier, reason in result.rejected[:10])
    more = f"; and {count - 10} more" if count > 10 else ""
    within = 0 < count / result.read <= max_rejected and count < result.read
    advice = (
        f"within --max-rejected-fraction {max_rejected:g}"
        if within
        else "fix the rows or the schema (or allow a share with --max-rejected-fraction)"
    )
    report.add(
        "input", within,
        f"{count} of {result.read} rows of {source.name} rejected by the schema ({named}{more}): "
        f"{advice}",
    )  # fmt: skip
    return result.rows


def check_answers(
    served: Container, rows: list[bytes], features: int | None, report: Report
) -> None:
    """Every mini-batch answered 200 with ``text/csv``, one line per row, the same columns on
    every line (the pipeline keeps them all); refusals named with the handler's reason."""
    from pipelines.batch_inference.pipeline import transform_output_filter  # the SDK: slow

    answered: list[bytes] = []
    first, sent, problems = 1, 0, 0
    for payload in payloads(rows):
        count = payload.count(b"\n")
        span = f"rows {first}-{first + count - 1}"
        first += count
        try:
            body, returned = served.respond(payload, CSV, CSV)
        except ContainerRefusal as refusal:
            kind = "refused" if refusal.status < 500 else "failed on"
            report.add(
                "answers", False,
                f"the handler {kind} {span} ({refusal}): score every row the schema passes, "
                "or refuse it in Preprocess's schema",
            )  # fmt: skip
            problems += 1
            continue
        except ContainerFailed as error:
            report.add("answers", False, f"the container stopped at {span}: {error}")
            return
        if returned.split(";")[0].strip() != CSV:
            report.add(
                "answers", False,
                f"{span} answered with Content-Type {returned or 'none'}: answer {CSV}, "
                "the pipeline's Accept",
            )  # fmt: skip
            problems += 1
        lines = body.splitlines()
        if len(lines) != count:
            report.add(
                "lines", False,
                f"{len(lines)} lines answered for {span}: Batch Transform joins the answer "
                "to the records line by line, answer one line per row",
            )  # fmt: skip
            problems += 1
        sent += count
        answered += lines
    batches = len(payloads(rows))
    if not problems:
        report.add(
            "answers", True,
            f"{batches} mini-batch{'es' * (batches != 1)} of {sent} rows answered 200 with {CSV}, "
            "one line per row",
        )  # fmt: skip
    widths = Counter(len(row) for row in csv.reader(line.decode() for line in answered))
    if len(widths) > 1:
        shown = ", ".join(f"{n} columns on {k} lines" for n, k in sorted(widths.items()))
        report.add(
            "columns", False,
            f"the answer lines differ ({shown}): every line needs the same columns, the "
            "output's columns are the same for every record",
        )  # fmt: skip
    elif widths:
        width = next(iter(widths))
        kept = f"OutputFilter {transform_output_filter(features)}" if features else "all"
        report.add(
            "columns", True,
            f"{width} answer column{'s' * (width != 1)} on every line, all kept ({kept}: the id "
            "and the answer)",
        )  # fmt: skip


def check_own(
    model: OwnModel,
    schema: Path,
    source: Path,
    work: Path,
    allow_version_skew: bool = False,
    max_rejected_fraction: float = 0.0,
) -> Report:
    """Every contract check of a team's model before it is registered or promoted, each a
    finding in the report: a model's problems come in several, and a team fixes them at once."""
    report = Report(model.name)
    model_dir = check_artifact(model, report, work)
    check_content_types(model, report)
    rows = check_input(schema, source, max_rejected_fraction, report, work / "preprocess")
    try:
        features: int | None = len(preprocess.Schema.load(schema).features)
    except preprocess.UsageError:
        features = None
    refusal = local_refusal(model.image)
    if refusal:
        report.add("container", True, f"not checked here: {refusal}")
        return report
    if model_dir is None:
        report.add("container", True, "not started: the artifact cannot be unpacked")
        return report
    image = (model.image or f"sagemaker-scikit-learn:{twin.IMAGE_VERSION}-cpu-py3").rsplit("/")
    started = time.perf_counter()
    try:
        with Container(model_dir, model.environment, work_dir=work / "container") as served:
            report.add(
                "container", True,
                f"started in the {image[-1]} runtime twin with no package index in "
                f"{time.perf_counter() - started:.1f} s",
            )  # fmt: skip
            if rows:
                check_answers(served, rows, features, report)
            warnings = version_warnings(served.log())
    except ContainerFailed as error:
        report.add(
            "container", False,
            f"cannot start with no package index: {error}; vendor what code/ installs, or "
            "fix model_fn",
        )  # fmt: skip
        return report
    except twin.TwinMissing as error:
        raise CheckFailed(str(error), USAGE_ERROR) from None
    declared = f" (the package declares FrameworkVersion {model.framework_version})"
    declared = declared if model.framework_version else ""
    if warnings:
        report.add(
            "scikit-learn version", allow_version_skew,
            f"pickled with another scikit-learn than the image's{declared}: {warnings[0]}; "
            "train it with the image's version"
            + (" (allowed by --allow-version-skew)" if allow_version_skew else ""),
        )  # fmt: skip
    else:
        report.add("scikit-learn version", True, f"no {VERSION_WARNING}{declared}")
    return report


def stage_input(tfvars: dict[str, Any]) -> Path | None:
    """The stage file's ``smoke_input`` (a file in this repository), if it names one."""
    return REPO / tfvars["smoke_input"] if tfvars.get("smoke_input") else None


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a share from 0 to 1, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.check_model", description=__doc__.splitlines()[0]
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--tfvars", type=Path, help="build.py's output: the promoted package")
    which.add_argument(
        "--model", help="a team's model: a package ARN, a model directory or a model.tar.gz"
    )
    parser.add_argument(
        "--input", type=Path, help="CSV with a header (default: the stage file's smoke_input)"
    )
    parser.add_argument("--schema", type=Path, help="the feature schema (with --model)")
    parser.add_argument(
        "--environment", action="append", default=[], metavar="KEY=VALUE",
        help="a container variable over the model's (with --model; repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--max-rejected-fraction", type=_share, default=0.0,
        help="the share of input rows the schema may reject (with --model; default 0)",
    )  # fmt: skip
    parser.add_argument("--allow-version-skew", action="store_true")
    parser.add_argument("--summary", type=Path, help="append the result here (Markdown)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.model is None and (args.schema or args.environment):
        parser.error("--schema and --environment go with --model")
    if args.model is not None and not (args.schema and args.input):
        parser.error("--model needs --schema and --input")
    if args.model is not None:
        return main_own(args)
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


def main_own(args: argparse.Namespace) -> int:
    """``--model``: every finding on standard output, the verdict last; exit 3 on any
    violation."""
    try:
        aws_sessions.check_environment()
        if args.summary:
            check_writable_option("--summary", args.summary)
        for option, path in (("--schema", args.schema), ("--input", args.input)):
            if not path.is_file():
                raise CheckFailed(f"{option} {path} is not a file", USAGE_ERROR)
        overrides = parse_environment(args.environment)
        with tempfile.TemporaryDirectory(prefix="check-model-") as scratch:
            work = Path(scratch)
            model = resolve_model(args.model, overrides, aws_sessions.session, work)
            report = check_own(
                model, args.schema, args.input, work, args.allow_version_skew,
                args.max_rejected_fraction,
            )  # fmt: skip
    except aws_sessions.AwsSettingError as error:
        return report_failure("check_model", Path(args.model), CommandFailed(str(error)))
    except REPORTED as error:
        return report_failure("check_model", Path(args.model), error)
    for finding in report.findings:
        print(f"check_model: {finding.line()}")
    verdict = report.verdict()
    if report.violations:
        verdict += ": fix each VIOLATION line"
    print(f"check_model: {verdict}", file=sys.stderr if report.violations else sys.stdout)
    if args.summary:
        with args.summary.open("a", encoding="utf-8") as summary:
            summary.write(f"- check_model: {verdict}\n")
            summary.writelines(f"  - {finding.line()}\n" for finding in report.findings)
    return EXECUTION_FAILED if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
