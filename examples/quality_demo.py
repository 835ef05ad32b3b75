"""``make demo``'s model quality: a scored day's delayed labels, evaluated as a stage does it.

In each stage, the day the schedule scored (yesterday) gets its labels: each row's true class,
from the generator that made the rows (``examples/breast_cancer/data.py``). The evaluation
takes the schedule function's own path (``stage_runtime.model_quality.run_days``: the day is
scored and labelled, so the model-quality pipeline is started in the emulator and the day's
marker says Executing); the started execution then runs locally (the deployed definition of
the quality pipeline, by ``local_mode.executor``, with the parameters SageMaker holds for it
and its execution id), and the run-outcome function's ``model_quality.record`` writes its
result into the day's marker. The job's printed line goes through the stage's
``quality_drop`` alarm as CloudWatch would evaluate it (``local_mode.quality_alarms``).

Then a degraded model (the example's ``--degraded``: trained on shuffled labels, registered in
dev and left pending) scores the same day again (``force``, ``ModelName`` of a model made from
its artifact, ``ModelVersion`` its version): the day's Succeeded run is a new one, so the same
labels get a new evaluation, whose AUC is chance's against the registered one of the deployed
version, and the alarm goes off.

An example whose package registers no ``ModelQuality`` (ticket-triage: multi-class, which the
job does not measure) is skipped, and the summary says why.
"""

from __future__ import annotations

import filecmp
import json
import time
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import utils
from common.stage_model import STAGE_MODEL_ENVIRONMENT
from examples import registration
from examples.catalog import Example
from local_mode import alarms, executor, quality_alarms
from local_mode.report import RunReport, write_report
from pipelines import partition_runs
from promotion.quality_files import DEFAULT_MAX_QUALITY_DROP
from stage_runtime import model_quality, partitions, runs

if TYPE_CHECKING:
    from local_mode.emulator import Emulator


class QualityDemoFailed(Exception):
    """A model-quality step of the demo failed; the message says which and why."""


@dataclass(frozen=True)
class Degraded:
    """The degraded model, registered in dev (pending): its package, artifact and holdout."""

    package_arn: str
    version: int
    image: str
    environment: dict[str, str]
    archive: Path
    holdout_auc: float


def registered_quality(aws: Emulator, package_arn: str) -> dict[str, Any] | None:
    """The dev package's ``ModelMetrics.ModelQuality.Statistics``, or None."""
    package = aws.client("sagemaker", "dev").describe_model_package(ModelPackageName=package_arn)
    statistics = (package.get("ModelMetrics") or {}).get("ModelQuality", {}).get("Statistics")
    return dict(statistics) if statistics else None


def skip_reason(aws: Emulator, example: Example, package_arn: str) -> str | None:
    """Why the example's stages get no model-quality demo, or None when they do."""
    if registered_quality(aws, package_arn) is None:
        return (
            f"the {example.name} package registers no ModelQuality to measure a drop against "
            "(the model-quality job measures binary classification and regression; a "
            "multi-class model, like ticket-triage's, registers none)"
        )
    return None


def register_degraded(aws: Emulator, example: Example, bucket: str, workdir: Path) -> Degraded:
    """Train the example's ``--degraded`` model in the twin and register it in dev, left
    pending: nothing promotes it, the demo scores a day with it by hand."""
    folder = workdir / "degraded"
    registered = registration.register(
        aws.client("sagemaker", "dev"),
        aws.client("s3", "dev"),
        bucket=bucket,
        output_prefix=f"training/{example.project}/{int(time.time())}-degraded/output",
        group=example.group,
        region=aws.region,
        workdir=folder,
        approval=None,
        example=example,
        degraded=True,
    )
    package = aws.client("sagemaker", "dev").describe_model_package(
        ModelPackageName=registered.package_arn
    )
    (container,) = package["InferenceSpecification"]["Containers"]
    statistics = json.loads((folder / "model-quality.json").read_text())
    return Degraded(
        registered.package_arn,
        int(package["ModelPackageVersion"]),
        container["Image"],
        dict(container.get("Environment", {})),
        folder / "model.tar.gz",
        float(statistics["binary_classification_metrics"]["auc"]["value"]),
    )


def prepare(
    aws: Emulator, example: Example, package_arn: str, bucket: str, workdir: Path
) -> dict[str, Any]:
    """``{"degraded": Degraded}`` when the example's package registers its quality, else
    ``{"skipped": why}``."""
    reason = skip_reason(aws, example, package_arn)
    if reason is not None:
        return {"skipped": reason}
    return {"degraded": register_degraded(aws, example, bucket, workdir)}


def quality_stage(tfvars: dict[str, Any]) -> model_quality.Stage:
    """The stage's model-quality settings, as the template gives them to its functions."""
    return model_quality.Stage(
        runs.layout_of(tfvars),
        labels_url=tfvars["labels_url"],
        predictions_table_url=tfvars["predictions_table_url"],
        quality_pipeline_name=tfvars["quality_pipeline_name"],
        kms_key_arn=tfvars.get("kms_key_arn"),
    )


def create_quality_pipeline(aws: Emulator, stage: str, tfvars: dict[str, Any]) -> None:
    """The model-quality pipeline the stage's Terraform creates from build.py's definition."""
    sagemaker = aws.client("sagemaker", stage)
    name = tfvars["quality_pipeline_name"]
    if sagemaker.list_pipelines(PipelineNamePrefix=name)["PipelineSummaries"]:
        return
    sagemaker.create_pipeline(
        PipelineName=name,
        PipelineDefinitionS3Location={
            "Bucket": tfvars["artifacts_bucket"],
            "ObjectKey": tfvars["quality_pipeline_definition_s3_key"],
        },
        RoleArn=tfvars["sagemaker_role_arn"],
        ClientRequestToken=str(uuid.uuid4()),
    )


def upload_labels(
    aws: Emulator, example: Example, stage: str, tfvars: dict[str, Any], day: date, workdir: Path
) -> str:
    """The day's delayed labels: the true class of each row its input holds (the generator's,
    written again with the same arguments: the same rows, so the same classes), uploaded
    where the stage's labels land (``<labels_url>/<partition>/labels.csv``)."""
    layout = runs.layout_of(tfvars)
    s3 = aws.client("s3", stage)
    bucket, prefix = utils.parse_s3_uri(layout.input_uri(day))
    body = s3.get_object(Bucket=bucket, Key=f"{prefix}batch-0001.csv")["Body"].read()
    ids = {line.split(b",", 1)[0].decode() for line in body.splitlines()[1:] if line}
    source = workdir / f"{stage}-input.csv"
    again = workdir / f"{stage}-labelled-input.csv"
    labels = workdir / f"{stage}-labels.csv"
    with source.open("rb") as generated:
        rows = sum(1 for _ in generated) - 1  # the header
    example.data().generate(again, rows, labels_path=labels)
    if not filecmp.cmp(source, again, shallow=False):
        raise QualityDemoFailed(f"{stage}: the generator did not write the same rows again")
    again.unlink()
    lines = labels.read_text().splitlines()
    day_labels = [lines[0], *(line for line in lines[1:] if line.split(",", 1)[0] in ids)]
    uri = quality_stage(tfvars).labels_uri(day)
    bucket, prefix = utils.parse_s3_uri(uri)
    s3.put_object(Bucket=bucket, Key=f"{prefix}labels.csv", Body="\n".join(day_labels) + "\n")
    return uri


def evaluate_day(
    aws: Emulator, stage: str, tfvars: dict[str, Any], day: date, name: str, workdir: Path
) -> dict[str, Any]:
    """The schedule function's evaluation of ``day`` (started in the emulator), run locally,
    then recorded in the day's marker as the run-outcome function records it; with the
    ``quality_drop`` alarm's state over the job's printed line and the evaluation's report
    (``<workdir>/<stage>-<name>-report.html``)."""
    s3, sagemaker = aws.client("s3", stage), aws.client("sagemaker", stage)
    quality = quality_stage(tfvars)
    started = model_quality.run_days(s3, sagemaker, quality, [day], log=lambda _: None)
    answer = started[str(day)]
    if answer["action"] != "start":
        raise QualityDemoFailed(f"{stage}: {day}'s labels were not evaluated: {answer}")
    arn = answer["execution_arn"]
    pages = sagemaker.get_paginator("list_pipeline_parameters_for_execution").paginate(
        PipelineExecutionArn=arn
    )
    parameters = {p["Name"]: p["Value"] for page in pages for p in page["PipelineParameters"]}
    definition = executor.load_definition(
        f"s3://{tfvars['artifacts_bucket']}/{tfvars['quality_pipeline_definition_s3_key']}", s3
    )
    record = executor.execute(
        definition,
        parameters,
        pipeline_name=quality.quality_pipeline_name,
        session=aws.account(stage),
        work_dir=workdir / f"{stage}-{name}-run",
        execution_id=arn.rsplit("/", 1)[-1],
        log=lambda line: print(f"    {line}", flush=True),
    )
    if record["PipelineExecutionStatus"] != "Succeeded":
        raise QualityDemoFailed(
            f"{stage}: the evaluation of {day} failed: {record.get('FailureReason')}"
        )
    recorded = model_quality.record(s3, sagemaker, quality, arn)
    marker = partitions.read_marker(s3, quality.layout.marker_uri(day))
    if not recorded["recorded"] or marker is None:
        raise QualityDemoFailed(f"{stage}: {day}'s marker did not take the evaluation {arn}")
    lines = [json.dumps(m) for m in record["Steps"][0]["Outcome"]["Metrics"]]
    threshold = float(tfvars.get("max_quality_drop", DEFAULT_MAX_QUALITY_DROP))
    alarm = alarms.state(
        quality_alarms.quality_drop_alarm(threshold), tfvars["pipeline_name"], lines
    )
    quality_report = write_report(
        workdir / f"{stage}-{name}-report.html",
        RunReport(
            title=f"{stage}: model quality of {day}, scored by {marker['execution_arn']}",
            record=record,
            summaries=[],
            model_quality=marker["model_quality"],
            notes=[f"the stage's quality_drop alarm: {alarm[1]}"],
        ),
    )
    return {
        "day": day,
        "execution_arn": arn,
        "report": str(quality_report),
        "record": record,
        "marker": marker,
        "model_quality": marker["model_quality"],
        "lines": lines,
        "alarm": alarm,
        "max_quality_drop": threshold,
    }


def create_degraded_model(
    aws: Emulator, stage: str, tfvars: dict[str, Any], degraded: Degraded
) -> str:
    """A SageMaker Model of the degraded artifact in the stage (uploaded to its bucket), as
    someone could make by hand; the deployed model and its package are left as they are."""
    name = f"{tfvars['model_name'][:50]}-degraded"
    key = f"{tfvars['project_name']}/degraded/v{degraded.version}/model.tar.gz"
    aws.client("s3", stage).upload_file(str(degraded.archive), tfvars["artifacts_bucket"], key)
    client = aws.client("sagemaker", stage)
    try:
        client.describe_model(ModelName=name)
        return name
    except client.exceptions.ClientError:
        pass
    client.create_model(
        ModelName=name,
        ExecutionRoleArn=tfvars["sagemaker_role_arn"],
        Containers=[
            {
                "Image": degraded.image,
                "ModelDataUrl": f"s3://{tfvars['artifacts_bucket']}/{key}",
                "Environment": degraded.environment | STAGE_MODEL_ENVIRONMENT,
            }
        ],
        EnableNetworkIsolation=True,
    )
    return name


def score_day_with(
    aws: Emulator,
    stage: str,
    tfvars: dict[str, Any],
    day: date,
    model_name: str,
    version: int,
    work_dir: Path,
) -> runs.DayResult:
    """Score ``day`` again (``force``) as the backfill does, with another model."""
    parameters = runs.schedule_parameters(tfvars, "") | {
        "ModelName": model_name,
        "ModelVersion": str(version),
    }
    (result,) = partition_runs.run_days(
        tfvars, aws.account(stage), [day], local=True, force=True, work_dir=work_dir,
        parameters=parameters,
    )  # fmt: skip
    if result.action != "Succeeded":
        raise QualityDemoFailed(
            f"{stage}: the degraded model's run of {day} {result.action}: {result.detail}"
        )
    return result


def show(
    aws: Emulator,
    example: Example,
    stage: str,
    tfvars: dict[str, Any],
    day: date,
    degraded: Degraded,
    workdir: Path,
) -> dict[str, Any]:
    """The stage's model-quality demo on ``day`` (scored by the deployed version): its labels,
    their evaluation; then the degraded model's run of the day and its evaluation."""
    create_quality_pipeline(aws, stage, tfvars)
    labels = upload_labels(aws, example, stage, tfvars, day, workdir)
    deployed = evaluate_day(aws, stage, tfvars, day, "quality-deployed", workdir)
    if deployed["alarm"][0] != "OK" or deployed["model_quality"]["verdict"] != "ok":
        raise QualityDemoFailed(
            f"{stage}: the deployed version's day is not of its registered quality: "
            f"{deployed['alarm'][1]}"
        )
    model_name = create_degraded_model(aws, stage, tfvars, degraded)
    rescored = score_day_with(
        aws, stage, tfvars, day, model_name, degraded.version, workdir / f"{stage}-days-degraded"
    )
    worse = evaluate_day(aws, stage, tfvars, day, "quality-degraded", workdir)
    if worse["alarm"][0] != "ALARM":
        raise QualityDemoFailed(
            f"{stage}: the degraded model's day did not trip quality_drop: {worse['alarm'][1]}"
        )
    return {
        "labels": labels,
        "deployed": deployed,
        "degraded": worse | {"model_name": model_name, "run": rescored},
        "version": degraded.version,
        "holdout_auc": degraded.holdout_auc,
    }


def alarm_line(evaluation: dict[str, Any]) -> str:
    """``quality alarm: ALARM (AUC 0.488, registered 0.996, drop 0.51 > 0.05)``: the
    evaluation's numbers as the stage's alarm compares them."""
    quality = evaluation["model_quality"]
    name = quality["headline"]
    drop, limit = quality["quality_drop"], evaluation["max_quality_drop"]
    sign = ">" if drop > limit else "<="
    return (
        f"quality alarm: {evaluation['alarm'][0]} ({name.upper()} "
        f"{quality['metrics'][name]:.3f}, registered {quality['registered']:.3f}, "
        f"drop {drop:.2f} {sign} {limit:g})"
    )


def metrics_line(evaluation: dict[str, Any]) -> str:
    """The day's metrics and the join's coverage, as the marker holds them."""
    quality = evaluation["model_quality"]
    metrics, coverage = quality["metrics"], quality["coverage"]
    shown = ", ".join(
        f"{name.replace('_', ' ')} {metrics[name]:.3f}"
        for name in ("auc", "accuracy", "precision", "recall", "log_loss", "calibration_error")
        if metrics.get(name) is not None
    )
    return (
        f"{shown}; {coverage['matched']} of {coverage['labels']} labels matched a prediction "
        f"({coverage['predictions']} predictions): {quality['verdict']}"
    )


def summary_lines(result: dict[str, Any]) -> list[str]:
    """A stage's model-quality lines of the demo's summary."""
    deployed, degraded = result["deployed"], result["degraded"]
    marker = degraded["marker"]["model_quality"]
    return [
        f"model quality of day {deployed['day']} (labels {result['labels']}): "
        + metrics_line(deployed),
        f"  {alarm_line(deployed)}; report: {deployed['report']}",
        f"degraded model {degraded['model_name']} (dev version {result['version']}, trained on "
        f"shuffled labels, holdout AUC {result['holdout_auc']:.2f}) scored the day again: "
        + metrics_line(degraded),
        f"  {alarm_line(degraded)}; report: {degraded['report']}",
        f"  the day's marker: model_quality {marker['status']}, verdict {marker['verdict']}, "
        f"for execution {marker['scored_execution']} (result {marker['result']})",
    ]
