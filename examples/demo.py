"""The whole flow on this machine: dev registry -> preprod -> approval -> prod, scored locally.

    python -m examples.demo [--rows 100000] [--yes] [--workdir build/demo] [--drift]

1. starts an AWS emulator (moto) on a free loopback port, with dev, preprod and prod accounts;
2. creates each account's base resources (what ``infra/`` creates on AWS);
3. trains the sample model, registers it in the dev registry as PendingManualApproval, then
   approves it (a data scientist's click);
4. ``build.py --stage preprod``: the model, its artifact and the pipeline definition land in
   preprod; the SageMaker Model that Terraform would create is created;
5. runs the smoke run the deployment workflow runs before the prod approval (the stage
   file's ``smoke_input``, scored by the deployed pipeline: ``pipelines/smoke_run.py``),
   then the *deployed* pipeline definition locally on generated input, then yesterday's
   partition as the stage's schedule scores it, twice: scored once, then skipped (its
   marker says it was scored: ``pipelines/partition_runs.py``); checks each day's freshness
   at its deadline, a day whose input never arrived raising its alarm
   (``local_mode/freshness.py``); and serves the stage's model
   on loopback (``local_mode/serve.py``), whose answer for one scored row must equal
   the batch prediction;
6. asks for the manual approval (``--yes`` answers it), then does the same for prod with the
   exact version preprod got;
7. a second, retrained version (``--retrained``) is registered, approved and deployed to
   preprod (build.py, check_model, its model, the smoke run); prod's plan job follows
   (``build.py --plan-only --shadow-candidate``: the candidate's model) and scores prod's last
   scored days with it in the shadow of version 1 (``pipelines.shadow_run --plan-job``,
   ``examples/shadow_demo.py``):
   each day's comparison (rows by both, flips at the threshold, PSI, gates) and its page
   are printed BEFORE the second approval is asked; once approved, it is deployed to prod;
8. deploys both stages again to show the re-deploy is a no-op (same packages, nothing
   copied), prints a summary and stops the emulator.

In each stage, yesterday's day is then measured against its delayed labels, and a degraded
model's run of the same day trips the stage's ``quality_drop`` alarm
(``examples/quality_demo.py``).

Each run's quality (rejected fraction, drift against the model's baseline, the gate's verdict)
is printed from the same JSON line CloudWatch's metric filters read on AWS. ``--drift`` also
scores a batch whose size features grew by half in each stage: preprod's gate (``warn``)
scores it and warns, prod's (``fail``) stops it before scoring and says why.

Any failure prints what failed and exits non-zero.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import math
import shutil
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

import build
import utils
from common.files import write_execution_record
from common.stage_model import STAGE_MODEL_ENVIRONMENT
from examples import quality_demo, registration, shadow_demo
from examples.catalog import DEFAULT, EXAMPLES, Example
from lambdas.start_scheduled_run import handler as schedule
from local_mode import alarms, cost_metrics, executor, sandbox, serve, storage, table
from local_mode import freshness as local_freshness
from local_mode.emulator import Emulator, environment, role_arn, running_emulator
from local_mode.report import RunReport, write_report
from pipelines import check_model, partition_runs, shadow_run, smoke
from promotion.stage import deployment_record_key
from promotion.stage_files import quality_gate
from stage_runtime import freshness, partitions, run_cost, runs

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.type_defs import ModelPackageSummaryTypeDef


class DemoFailed(Exception):
    """A demo stage failed; the message says which and why."""


_Result = TypeVar("_Result")


class Timer:
    """Prints each stage with its duration and keeps them for the summary."""

    def __init__(self) -> None:
        self.durations: dict[str, float] = {}

    def run(self, name: str, action: Callable[[], _Result]) -> _Result:
        print(f"==> {name}", flush=True)
        started = time.perf_counter()
        result = action()
        self.durations[name] = time.perf_counter() - started
        print(f"    done in {self.durations[name]:.1f}s", flush=True)
        return result


def register_model(
    aws: Emulator, example: Example, bucket: str, workdir: Path, retrained: bool = False
) -> tuple[str, float]:
    """Train the example's model in the image's runtime twin, upload and register it
    (pending), then approve it; ``retrained``: its second version (``--retrained``)."""
    run = f"{int(time.time())}{'-retrained' if retrained else ''}"
    registered = registration.register(
        aws.client("sagemaker", "dev"),
        aws.client("s3", "dev"),
        bucket=bucket,
        output_prefix=f"training/{example.project}/{run}/output",
        group=example.group,
        region=aws.region,
        workdir=workdir,
        approval="demo approval",
        example=example,
        retrained=retrained,
    )
    return registered.package_arn, registered.holdout_accuracy


def deploy(
    stage: str,
    example: Example,
    workdir: Path,
    version: int | None = None,
    options: tuple[str, ...] = (),
) -> dict[str, Any]:
    """``build.py`` for one stage, as the workflow calls it, with the example's stage file
    and schema (the template's own for the first example); ``options``: more of its flags
    (the prod plan's ``--plan-only``: its tfvars go to ``<workdir>/plan/``)."""
    folder = workdir / "plan" if "--plan-only" in options else workdir
    folder.mkdir(parents=True, exist_ok=True)
    output = folder / f"{stage}.tfvars.json"
    argv = [
        "--stage", stage,
        "--model-package-group-name", example.group,
        "--project-name", example.project,
        "--config", str(example.stage_files[stage]),
        "--feature-schema", str(example.schema),
        "--source-role-arn", role_arn("dev"),
        "--target-role-arn", role_arn(stage),
        "--output", str(output),
    ]  # fmt: skip
    if version is not None:
        argv += ["--model-version", str(version)]
    code = build.main(argv + list(options))
    if code != 0:
        raise DemoFailed(f"build.py --stage {stage} failed with exit code {code}")
    return json.loads(output.read_text())


def create_sagemaker_model(aws: Emulator, stage: str, tfvars: dict[str, Any]) -> None:
    """The SageMaker Model the stage's Terraform creates from the promoted package."""
    client = aws.client("sagemaker", stage)
    try:
        client.describe_model(ModelName=tfvars["model_name"])
        return
    except client.exceptions.ClientError:
        pass
    client.create_model(
        ModelName=tfvars["model_name"],
        ExecutionRoleArn=tfvars["sagemaker_role_arn"],
        Containers=[
            {
                "ModelPackageName": tfvars["model_package_arn"],
                "Environment": STAGE_MODEL_ENVIRONMENT,
            }
        ],
        EnableNetworkIsolation=True,
    )


def record_deployment(aws: Emulator, stage: str, tfvars: dict[str, Any]) -> None:
    """The deployment record the stage's apply writes (terraform/stage/model.tf's
    ``deployment_record``; the demo has no endpoint): build.py reads it at the next
    promotion, for the model it keeps and the version a shadow candidate is compared with."""
    fields = ("model_name", "model_package_arn", "source_model_package_arn", "model_version")
    current = {name: tfvars[name] for name in fields} | {"endpoint_config": None}
    aws.client("s3", stage).put_object(
        Bucket=tfvars["artifacts_bucket"],
        Key=deployment_record_key(tfvars["project_name"], stage),
        Body=json.dumps({"current": current, "previous": tfvars.get("previous_model")}).encode(),
        ContentType="application/json",
    )


def install(
    aws: Emulator, timer: Timer, stage: str, tfvars: dict[str, Any], workdir: Path
) -> tuple[check_model.CheckResult, smoke.SmokeResult | None]:
    """What the deployment does after build.py: the model checked in its container's runtime
    twin, what the stage's apply makes (its SageMaker Model, shadow pipeline and deployment
    record), then the smoke run (if the stage names one)."""
    checked = timer.run(
        f"{stage}: the promoted model in its container's runtime twin (check_model)",
        partial(check_model.check, tfvars, aws.account(stage), check_model.stage_input(tfvars)),
    )
    print(f"    {checked.line()}", flush=True)
    # where the stage's apply would act: its model, its shadow pipeline, then (last) its record
    create_sagemaker_model(aws, stage, tfvars)
    shadow_demo.apply_shadow_pipeline(aws, stage, tfvars)
    record_deployment(aws, stage, tfvars)
    if not tfvars.get("smoke_input"):
        return checked, None
    smoked = timer.run(
        f"{stage}: smoke run of the deployment ({tfvars['smoke_input']})",
        partial(
            smoke.smoke_run, tfvars, aws.account(stage), local=True,
            work_dir=workdir / f"{stage}-smoke-v{tfvars['model_version']}",
        ),
    )  # fmt: skip
    if not smoked.passed:
        raise DemoFailed(f"the {stage} smoke run failed: {smoked.failure_reason}")
    return checked, smoked


def execute_deployed(
    aws: Emulator, stage: str, tfvars: dict[str, Any], source: Path, name: str, workdir: Path
) -> dict:
    """Upload ``source`` as the stage's input and run the deployed definition locally on it
    (as the schedule would: the stage's parameters); return the execution record."""
    bucket, prefix = utils.parse_s3_uri(tfvars["input_data_url"])
    s3 = aws.client("s3", stage)
    folder = f"{prefix.rstrip('/')}/{name}"
    s3.upload_file(str(source), bucket, f"{folder}/batch-0001.csv")
    definition = executor.load_definition(
        f"s3://{tfvars['artifacts_bucket']}/{tfvars['pipeline_definition_s3_key']}", s3
    )
    record = executor.execute(
        definition,
        runs.schedule_parameters(tfvars, f"s3://{bucket}/{folder}/"),
        pipeline_name=tfvars["pipeline_name"],
        session=aws.account(stage),
        work_dir=workdir / f"{stage}-{name}-run",
        log=lambda line: print(f"    {line}", flush=True),
        price_table=run_cost.table_of(tfvars.get("instance_prices")),
    )
    path = workdir / f"{stage}-{name}-execution.json"
    write_execution_record(path, record)
    record["RecordPath"] = str(path)
    return record


def score(
    aws: Emulator, example: Example, stage: str, tfvars: dict[str, Any], rows: int, workdir: Path
) -> dict:
    """Generate input and run the deployed definition on it; return the record."""
    generated = example.data().generate(workdir / f"{stage}-input.csv", rows)
    record = execute_deployed(aws, stage, tfvars, generated.path, "batch", workdir)
    record["Generated"] = {"rows": generated.rows, "malformed": generated.malformed}
    if record["PipelineExecutionStatus"] != "Succeeded":
        raise DemoFailed(f"the {stage} run failed: {record.get('FailureReason')}")
    record["Counts"] = _counts(aws, stage, record)
    record["Report"] = str(
        run_report(stage, "batch", record, record["Counts"]["summaries"], workdir)
    )
    return record


def same_answer(served: bytes, batch: bytes) -> bool:
    """Whether two answers of one row agree: the same columns, numbers to 1e-12 (relative),
    anything else (a class label) byte for byte."""
    left, right = served.split(b","), batch.split(b",")
    if len(left) != len(right):
        return False
    for one, other in zip(left, right, strict=True):
        try:
            if not math.isclose(float(one), float(other), rel_tol=1e-12):
                return False
        except ValueError:
            if one != other:
                return False
    return True


# rows of the generated input copied into yesterday's partition: the day's run shows the
# exactly-once bookkeeping, not the throughput (the batch above does)
DAY_ROWS = 1000


def serve_one_row(
    aws: Emulator, stage: str, tfvars: dict[str, Any], record: dict, workdir: Path
) -> dict[str, str]:
    """The stage's model served on loopback (``local_mode.serve``, left in
    ``<workdir>/<stage>-model`` for ``make serve``), asked for the first row the batch run
    scored: the two answers must be equal, column for column (numbers to 1e-12, relative).
    Not to the last bit: numpy's matrix product rounds one row and a block of rows
    differently (the sample model gives 0.9151678644432155 for a row alone, ...157 for the
    same row among four or more)."""
    serve.copy_stage_model(
        aws.account(stage), tfvars["model_name"], serve.model_copy(workdir, stage)
    )
    scored = record["Steps"][1]["Outcome"]["Objects"][0]
    with Path(record["Counts"]["local_predictions"][0]).open("rb") as predictions:
        row_id, batch = predictions.readline().rstrip(b"\n").split(b",", 1)
    bucket, key = utils.parse_s3_uri(scored["source"])
    head = aws.client("s3", stage).get_object(Bucket=bucket, Key=key, Range="bytes=0-1048575")
    first_id, features = head["Body"].read().split(b"\n", 1)[0].split(b",", 1)
    if first_id != row_id:
        raise DemoFailed(f"{stage}: the first prediction is for {row_id!r}, not {first_id!r}")
    with serve.running_endpoint(stage, workdir) as port:
        status, _, answer = serve.request(
            port,
            "POST",
            "/invocations",
            features,
            {"Content-Type": "text/csv", "Accept": "text/csv"},
        )
    served = answer.strip()
    if status != 200 or not same_answer(served, batch):
        raise DemoFailed(
            f"{stage}: the served model answered {status} {served!r} for row "
            f"{row_id.decode()}, the batch run {batch!r}"
        )
    return {"id": row_id.decode(), "served": served.decode(), "batch": batch.decode()}


def score_day(
    aws: Emulator, stage: str, tfvars: dict[str, Any], source: Path, workdir: Path
) -> dict:
    """Yesterday's partition (the day the stage's schedule scores tonight), handled twice as
    the schedule and the backfill handle a day: scored once, then skipped."""
    day = datetime.now(UTC).date() - timedelta(days=1)
    layout = runs.layout_of(tfvars)
    bucket, prefix = utils.parse_s3_uri(layout.input_uri(day))
    with source.open("rb") as rows:
        head = b"".join(line for _, line in zip(range(DAY_ROWS + 1), rows, strict=False))
    s3 = aws.client("s3", stage)
    s3.put_object(Bucket=bucket, Key=f"{prefix}batch-0001.csv", Body=head)
    s3.put_object(Bucket=bucket, Key=f"{prefix}_SUCCESS", Body=b"")  # what Spark leaves
    session = aws.account(stage)
    work = workdir / f"{stage}-days"
    (first,) = partition_runs.run_days(tfvars, session, [day], local=True, work_dir=work)
    (again,) = partition_runs.run_days(tfvars, session, [day], local=True, work_dir=work)
    if first.action != "Succeeded" or again.action != "skipped":
        raise DemoFailed(
            f"{stage} day {day}: scored {first.action} ({first.detail}), "
            f"then {again.action} ({again.detail}); expected Succeeded, then skipped"
        )
    marker = partitions.read_marker(s3, layout.marker_uri(day))
    return {"day": day, "first": first, "again": again, "marker": marker,
            "marker_uri": layout.marker_uri(day)}  # fmt: skip


# the days before yesterday that score yesterday's rows again, from another format
FORMAT_DAYS = {"parquet": 2, "jsonl": 3}


def score_formats(
    aws: Emulator, example: Example, stage: str, tfvars: dict[str, Any], workdir: Path
) -> dict[str, Any]:
    """The rows yesterday's partition scored, as Parquet two days ago and as JSON Lines three
    days ago (typed by the schema, nulls as nulls): each day is scored as the schedule scores
    it, and the stage's predictions table must hold the same answers for the same ids on the
    three days."""
    layout = runs.layout_of(tfvars)
    s3 = aws.client("s3", stage)
    today = datetime.now(UTC).date()
    yesterday = today - timedelta(days=1)
    schema = json.loads(example.schema.read_text())
    id_column = schema["id_column"]
    arrow_types = {"float": pa.float64(), "int": pa.int64(), "string": pa.string()}
    table_root = tfvars["predictions_table_url"]
    scored = _table_day(s3, table_root, yesterday, workdir / f"{stage}-formats" / "csv")
    kept = set(scored.column(id_column).to_pylist())
    bucket, prefix = utils.parse_s3_uri(layout.input_uri(yesterday))
    body = s3.get_object(Bucket=bucket, Key=f"{prefix}batch-0001.csv")["Body"].read()
    text = pacsv.read_csv(
        pa.py_buffer(body),
        parse_options=pacsv.ParseOptions(invalid_row_handler=lambda _: "skip"),  # quarantined
        convert_options=pacsv.ConvertOptions(
            column_types={
                name: pa.string() for name in [id_column, *(f["name"] for f in schema["features"])]
            },
            strings_can_be_null=True,
        ),
    )
    rows = text.filter(pc.is_in(text.column(id_column), pa.array(sorted(kept))))
    typed = pa.table(
        {id_column: rows.column(id_column)}
        | {
            f["name"]: pc.cast(rows.column(f["name"]), arrow_types[f.get("type", "float")])
            for f in schema["features"]
        }
    )
    days = {kind: today - timedelta(days=back) for kind, back in FORMAT_DAYS.items()}
    for kind, day in days.items():
        bucket, prefix = utils.parse_s3_uri(layout.input_uri(day))
        if kind == "parquet":
            sink = pa.BufferOutputStream()
            pq.write_table(typed, sink)
            data = sink.getvalue().to_pybytes()
        else:
            data = b"".join(json.dumps(row).encode() + b"\n" for row in typed.to_pylist())
        s3.put_object(Bucket=bucket, Key=f"{prefix}batch-0001.{kind}", Body=data)
    results = partition_runs.run_days(
        tfvars, aws.account(stage), sorted(days.values()), local=True,
        work_dir=workdir / f"{stage}-days",
    )  # fmt: skip
    failed = [f"{r.day} {r.action} ({r.detail})" for r in results if r.action != "Succeeded"]
    if failed:
        raise DemoFailed(f"{stage}: a day in another format was not scored: {failed}")
    answers = {"csv": _answers(scored, id_column)}
    for kind, day in days.items():
        published = _table_day(s3, table_root, day, workdir / f"{stage}-formats" / kind)
        answers[kind] = _answers(published, id_column)
    if not (answers["csv"] == answers["parquet"] == answers["jsonl"]):
        raise DemoFailed(f"{stage}: the same rows got other answers in another format")
    return {"days": {"csv": yesterday, **days}, "rows": len(answers["csv"])}


# the day before the formats' days that the demo makes late: its input never arrives
LATE_DAY = 4


def check_freshness(
    aws: Emulator, stage: str, tfvars: dict[str, Any], workdir: Path
) -> dict[str, Any]:
    """The stage's freshness alarms as they would stand on AWS: the schedule's function run
    in process with the stage's session, as its two rules invoke it. Tonight's schedule
    looks at the last three days (all scored: skipped; its heartbeat feeds the dead-man's
    switch); a day four days back, whose input never arrived, is marked ``Empty`` by the
    schedule's look; then the deadline check runs for yesterday and for that day, each at its
    deadline (``score_by_hours`` after the day's end), and each alarm's state is evaluated
    over the lines the function printed (``local_mode/freshness.py``)."""
    session = aws.account(stage)
    layout = runs.layout_of(tfvars)
    today = datetime.now(UTC).date()
    yesterday, late = today - timedelta(days=1), today - timedelta(days=LATE_DAY)
    (looked,) = partition_runs.run_days(
        tfvars, session, [late], local=True, work_dir=workdir / f"{stage}-days"
    )
    if looked.action != "empty":
        raise DemoFailed(f"{stage} day {late}: {looked.action} ({looked.detail}); expected empty")
    pipeline, hours = tfvars["pipeline_name"], tfvars["score_by_hours"]
    # the function's environment as the template sets it (PIPELINE_PARAMETERS: no partitions)
    parameters = runs.schedule_parameters(tfvars, layout.input_uri(today))
    del parameters["InputDataUrl"], parameters["OutputDataUrl"]
    config = schedule.Config(pipeline, parameters, layout, tfvars.get("kms_key_arn"), 2)
    tonight = _scheduled(datetime.combine(today, datetime.min.time(), UTC) + timedelta(hours=2))
    ran, lines = _printed(lambda: schedule.run_schedule(config, session, tonight))
    if {r["action"] for r in ran.values()} != {"skipped"}:
        raise DemoFailed(f"{stage}: tonight's schedule found days to run: {ran}")
    switch = alarms.state(local_freshness.heartbeat_alarm(), pipeline, lines)
    checked: dict[date, dict[str, Any]] = {}
    check = schedule.FreshnessConfig(pipeline, layout, hours)
    for day in (yesterday, late):
        event = {"check": "freshness", "event": _scheduled(freshness.deadline(day, hours))}
        answer, printed = _printed(partial(schedule.check_freshness, check, session, event))
        checked[day] = {"answer": answer, "alarm": local_freshness.summary(pipeline, printed)}
    if not checked[late]["alarm"].startswith("ALARM") or checked[yesterday]["answer"]["late"]:
        raise DemoFailed(f"{stage}: freshness checks {checked}; expected {late} late only")
    return {"late": late, "yesterday": yesterday, "checked": checked, "switch": switch,
            "score_by_hours": hours}  # fmt: skip


def _scheduled(moment: datetime) -> dict[str, Any]:
    """A schedule rule's event (its documented shape, without ``detail``) for ``moment``."""
    return {
        "source": "aws.events",
        "detail-type": "Scheduled Event",
        "id": f"demo-{moment.isoformat()}",
        "time": moment.isoformat(),
    }


def _printed(action: Callable[[], _Result]) -> tuple[_Result, list[str]]:
    """What ``action`` returns, and the lines it printed (echoed: the demo's log shows them)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = action()
    print(out.getvalue(), end="", flush=True)
    return result, out.getvalue().splitlines()


def _table_day(s3: Any, table_root: str, day: date, folder: Path) -> pa.Table:
    """The predictions table's rows of one day, copied from the stage's bucket."""
    partition = f"day={day.isoformat()}"
    shutil.rmtree(folder, ignore_errors=True)  # the day as the stage's bucket holds it now
    for bucket, key, _ in storage.list_objects(s3, f"{table_root}{partition}/"):
        storage.download(s3, bucket, key, folder / partition / key.rsplit("/", 1)[1])
    return table.read(folder)


def _answers(rows: pa.Table, id_column: str) -> dict[str, tuple]:
    """Each id's answer (every column but the id, the provenance and the day)."""
    skip = {id_column, "model_version", "execution_id", "day"}
    names = [name for name in rows.column_names if name not in skip]
    return {row[id_column]: tuple(row[name] for name in names) for row in rows.to_pylist()}


def score_drifted(
    aws: Emulator, example: Example, stage: str, tfvars: dict[str, Any], rows: int, workdir: Path
) -> dict[str, Any]:
    """``--drift``: a batch drawn from a shifted population (``example.drift``). The stage's
    gate must see it: in ``fail`` mode the run stops before scoring, in ``warn`` mode it
    scores and warns."""
    path = workdir / f"{stage}-drifted-input.csv"
    generated = example.data().generate(path, rows, drifted=True)
    record = execute_deployed(aws, stage, tfvars, generated.path, "drifted", workdir)
    mode = tfvars.get("quality_gate_mode", "warn")
    reason = record.get("FailureReason", "")
    record["Report"] = str(run_report(stage, "drifted", record, local_summaries(record), workdir))
    if mode == "fail":
        if record["PipelineExecutionStatus"] != "Failed" or "quality gate failed" not in reason:
            raise DemoFailed(f"the {stage} gate (fail) did not stop the drifted batch: {reason}")
        ran = [step["StepName"] for step in record["Steps"]]
        if ran != ["Preprocess"]:
            raise DemoFailed(f"the {stage} gate stopped the run after {ran}, not before scoring")
        return {"mode": mode, "verdict": "failed", "reason": reason, "record": record}
    if record["PipelineExecutionStatus"] != "Succeeded":
        raise DemoFailed(f"the {stage} drifted run failed: {reason}")
    # one metric line per instance; the one that read the batch warns, about drift, and the
    # stage's drift alarm (what CloudWatch would make of those lines) goes off
    gate = quality_gate(tfvars)
    lines = record["Steps"][0]["Outcome"]["Metrics"]
    warned = [
        m
        for m in lines
        if m["gate"] == "warned" and m.get("drift_score", 0.0) > gate.max_drift_score
    ]
    _, drift_alarm = alarms.data_quality_alarms(gate.max_rejected_fraction, gate.max_drift_score)
    alarm = alarms.state(drift_alarm, tfvars["pipeline_name"], map(json.dumps, lines))
    if not warned or alarm[0] != "ALARM":
        raise DemoFailed(f"the {stage} gate (warn) did not warn about the drifted batch's drift")
    return {
        "mode": mode,
        "verdict": "warned",
        "metric": warned[0],
        "alarm": alarm,
        "record": record,
    }


def _counts(aws: Emulator, stage: str, record: dict) -> dict[str, Any]:
    """Rows in / rejected / scored, from the Preprocess summaries and the Transform outcome."""
    s3 = aws.client("s3", stage)
    preprocess, transform, published = record["Steps"]
    summaries = [
        json.loads(s3.get_object(Bucket=b, Key=k)["Body"].read())
        for uri in preprocess["Outcome"]["UploadedObjects"]["summary"]
        for b, k in [utils.parse_s3_uri(uri)]
    ]
    local_copies = []
    for index, output in enumerate(transform["Outcome"]["Objects"]):
        bucket, key = utils.parse_s3_uri(output["output"])
        path = Path(record["RecordPath"]).with_name(f"{stage}-predictions-{index + 1}.csv")
        storage.download(s3, bucket, key, path)  # one GET: the emulator's fast path
        local_copies.append(str(path))
    folder = Path(record["RecordPath"]).with_name(f"{stage}-table")
    shutil.rmtree(folder, ignore_errors=True)  # this run's rows only, in a reused workdir
    for uri in published["Outcome"]["UploadedObjects"]["table"]:  # the predictions table's
        bucket, key = utils.parse_s3_uri(uri)
        storage.download(s3, bucket, key, folder / key.split("/table/", 1)[1])
    rows = table.read(folder)
    column = table.first_number_column(rows)
    return {
        "table_by_day": table.by_day(rows, column) if column else [],
        "summaries": summaries,
        "local_predictions": local_copies,
        "table": published["Outcome"]["UploadedObjects"]["table"],
        "local_table": str(folder),
        "rows_in": sum(s["rows_read"] for s in summaries),
        "rows_rejected": sum(s["rows_rejected"] for s in summaries),
        "rows_scored": transform["Outcome"]["RecordsOut"],
        "metrics": preprocess["Outcome"]["Metrics"],
        "prediction_metrics": transform["Outcome"]["Metrics"],
        "predictions": [o["output"] for o in transform["Outcome"]["Objects"]],
        "rejected": preprocess["Outcome"]["UploadedObjects"]["rejected"],
        "seconds": {s["StepName"]: s["DurationSeconds"] for s in record["Steps"]},
    }


def local_summaries(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Preprocess's summaries from the run's work folder (a failed job uploads nothing)."""
    work = Path(record["RecordPath"]).with_name(
        Path(record["RecordPath"]).name.replace("-execution.json", "-run")
    )
    return [
        json.loads(path.read_text())
        for path in sorted((work / "Preprocess").glob("algo-*/opt/ml/processing/output/summary/*"))
    ]


def run_report(
    stage: str, name: str, record: dict[str, Any], summaries: list[dict], workdir: Path
) -> Path:
    """The run's HTML report beside its execution record: funnel, reasons, drift, histogram."""
    baseline_path = workdir / "baseline.json"
    predictions = [
        first_answer_column(Path(path))
        for path in record.get("Counts", {}).get("local_predictions", [])
    ]
    return write_report(
        workdir / f"{stage}-{name}-report.html",
        RunReport(
            title=f"{stage}: {name} run of {record['PipelineArn'].rsplit('/', 1)[-1]}",
            record=record,
            summaries=summaries,
            baseline=json.loads(baseline_path.read_text()) if baseline_path.exists() else None,
            predictions=np.concatenate(predictions) if predictions else None,
        ),
    )


def first_answer_column(path: Path) -> np.ndarray:
    """The model's first answer column of an output file (``id,answer...``): numbers as
    float64 (a score), anything else as strings (a class label), as the baseline counts it."""
    table = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(autogenerate_column_names=True),
        convert_options=pacsv.ConvertOptions(include_columns=["f1"]),
    )
    column = table.column("f1")
    if pa.types.is_floating(column.type) or pa.types.is_integer(column.type):
        return column.to_numpy().astype(np.float64)
    return np.asarray(column.cast(pa.string()).to_pylist(), dtype=object)


def approved_for_prod(assume_yes: bool, version: int | None) -> bool:
    if assume_yes:
        print(f"==> manual approval: version {version} approved for prod (--yes)")
        return True
    if not sys.stdin.isatty():
        print("==> manual approval: no terminal to ask on; run with --yes to deploy prod")
        return False
    answer = input(f"==> manual approval: deploy version {version} to prod? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def run(
    rows: int,
    assume_yes: bool,
    workdir: Path,
    drift: bool = False,
    example: Example = EXAMPLES[DEFAULT],
) -> dict[str, Any]:
    """The whole flow for ``example``; returns what the summary prints (and the tests
    assert)."""
    workdir.mkdir(parents=True, exist_ok=True)
    timer = Timer()
    report: dict[str, Any] = {"stages": {}, "example": example.name}
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with running_emulator() as aws, environment(aws.environment()):
        print(f"==> AWS emulator on {aws.endpoint_url} (accounts dev, preprod, prod)")
        dev_bucket = timer.run(
            "base resources in the three accounts", lambda: _base_resources(aws, example)
        )
        report["source_arn"], report["accuracy"] = timer.run(
            f"train, register and approve the {example.name} model in dev",
            lambda: register_model(aws, example, dev_bucket, workdir),
        )
        report["model_quality"] = timer.run(
            f"model quality: a degraded {example.name} model for the quality alarm (trained, "
            "registered in dev, left pending)",
            partial(quality_demo.prepare, aws, example, report["source_arn"], dev_bucket, workdir),
        )
        stages = ["preprod"]
        version = None
        for stage in ("preprod", "prod"):
            if stage == "prod":
                if not approved_for_prod(assume_yes, version):
                    break
                stages.append(stage)
            tfvars = timer.run(
                f"build.py --stage {stage}", partial(deploy, stage, example, workdir, version)
            )
            version = tfvars["model_version"]
            checked, smoked = install(aws, timer, stage, tfvars, workdir)
            report.setdefault("checked", {})[stage] = checked
            if smoked is not None:
                report.setdefault("smoke", {})[stage] = smoked
            record = timer.run(
                f"{stage}: run the deployed pipeline on {rows} rows",
                partial(score, aws, example, stage, tfvars, rows, workdir),
            )
            report["stages"][stage] = {
                "tfvars": tfvars,
                "record": record,
                "served": timer.run(
                    f"{stage}: the promoted model served on loopback, asked for one scored row",
                    partial(serve_one_row, aws, stage, tfvars, record, workdir),
                ),
                "baseline": promoted_baseline(aws, stage, tfvars, workdir / "baseline.json"),
                "day": timer.run(
                    f"{stage}: yesterday's partition, as the schedule scores it (twice)",
                    partial(score_day, aws, stage, tfvars, workdir / f"{stage}-input.csv", workdir),
                ),
                "formats": timer.run(
                    f"{stage}: the same rows as Parquet and as JSON Lines, on the days before",
                    partial(score_formats, aws, example, stage, tfvars, workdir),
                ),
                "freshness": timer.run(
                    f"{stage}: the freshness check at each day's deadline, a late day among them",
                    partial(check_freshness, aws, stage, tfvars, workdir),
                ),
            }
            degraded = report["model_quality"].get("degraded")
            if degraded is not None:
                day = report["stages"][stage]["day"]["day"]
                report["stages"][stage]["quality"] = timer.run(
                    f"{stage}: {day}'s delayed labels evaluated; the day scored again by the "
                    "degraded model and evaluated",
                    partial(quality_demo.show, aws, example, stage, tfvars, day, degraded, workdir),
                )
            if drift:
                report["stages"][stage]["drifted"] = timer.run(
                    f"{stage}: a drifted batch of {rows} rows ({example.drift}) against the "
                    f"quality gate ({tfvars.get('quality_gate_mode', 'warn')})",
                    partial(score_drifted, aws, example, stage, tfvars, rows, workdir),
                )
        deployed = {s: report["stages"][s]["tfvars"] for s in stages}
        if "prod" in stages:
            report["second"] = second_version(aws, example, dev_bucket, workdir, timer, assume_yes,
                                              report)  # fmt: skip
            for stage in ("preprod", "prod"):
                if stage in report["second"]:
                    deployed[stage] = report["second"][stage]["tfvars"]
        report["redeploy"] = timer.run(
            "deploy again: nothing new is created",
            lambda: {
                s: deploy(s, example, workdir, deployed[s]["model_version"])["model_package_arn"]
                for s in stages
            },
        )
        for stage in stages:
            if report["redeploy"][stage] != deployed[stage]["model_package_arn"]:
                raise DemoFailed(f"re-deploying {stage} created a new package")
            promoted = 1 + (stage in report.get("second", {}))
            if len(_target_packages(aws, example, stage)) != promoted:
                raise DemoFailed(f"{stage} holds other packages than the {promoted} promoted")
    report["durations"] = timer.durations
    return report


def second_version(
    aws: Emulator,
    example: Example,
    bucket: str,
    workdir: Path,
    timer: Timer,
    assume_yes: bool,
    report: dict[str, Any],
) -> dict[str, Any]:
    """The second, retrained version (#33): registered and approved in dev, deployed to
    preprod; then prod's plan job: its candidate model, and the shadow run of prod's last
    scored days beside version 1, whose comparison is printed BEFORE the approval is asked;
    once approved, deployed to prod (``examples/shadow_demo.py``)."""
    second: dict[str, Any] = {}
    second["source_arn"], second["accuracy"] = timer.run(
        f"a second {example.name} model, retrained: registered and approved in dev",
        partial(register_model, aws, example, bucket, workdir / "second", retrained=True),
    )
    tfvars = timer.run(
        "build.py --stage preprod: the second version",
        partial(deploy, "preprod", example, workdir),
    )
    version = second["version"] = tfvars["model_version"]
    checked, smoked = install(aws, timer, "preprod", tfvars, workdir)
    second["preprod"] = {"tfvars": tfvars, "checked": checked, "smoke": smoked}
    # what `make serve STAGE=preprod` serves: the version the stage runs now
    serve.copy_stage_model(aws.account("preprod"), tfvars["model_name"],
                           serve.model_copy(workdir, "preprod"))  # fmt: skip
    champion = report["stages"]["prod"]
    if "quality" in champion:  # the day's marker names the degraded model's run
        day = champion["day"]["day"]
        second["restored"] = timer.run(
            f"prod: {day} scored again by version {champion['tfvars']['model_version']} (the "
            "backfill's force: the quality demo's degraded run was the day's last)",
            partial(shadow_demo.restore_champion_day, aws, champion["tfvars"], day, workdir),
        )
    plan = timer.run(
        f"prod plan job: build.py --stage prod --model-version {version} --plan-only "
        "--shadow-candidate",
        partial(deploy, "prod", example, workdir, version, ("--plan-only", "--shadow-candidate")),
    )
    candidate = shadow_demo.candidate_of(aws, plan)
    shown = second["shadow"] = timer.run(
        f"prod plan job: version {version} in the shadow of version "
        f"{champion['tfvars']['model_version']} on prod's last scored days (shadow_run "
        "--plan-job)",
        partial(shadow_demo.shadow, aws, plan, candidate, workdir),
    )
    second["plan"] = plan
    for day, comparison in shown["days"].items():
        print(f"    shadow {shadow_demo.headline(day, comparison)}", flush=True)
    print(f"    shadow page: {shown['html']}", flush=True)
    if approved_for_prod(assume_yes, version):
        tfvars = timer.run(
            f"build.py --stage prod (version {version})",
            partial(deploy, "prod", example, workdir, version),
        )
        checked, smoked = install(aws, timer, "prod", tfvars, workdir)
        second["prod"] = {"tfvars": tfvars, "checked": checked, "smoke": smoked}
        # the approved deployment removed its candidate (promotion/shadow_candidate.py)
        second["candidate_left"] = shadow_demo.candidate_left(aws, plan, candidate)
        if second["candidate_left"]:
            raise DemoFailed(f"prod: version {version}'s candidate outlived its deployment: "
                             f"{second['candidate_left']}")  # fmt: skip
        serve.copy_stage_model(aws.account("prod"), tfvars["model_name"],
                               serve.model_copy(workdir, "prod"))  # fmt: skip
    return second


def _base_resources(aws: Emulator, example: Example) -> str:
    bucket = sandbox.create_dev_registry(aws, example.group)
    for stage in utils.STAGES:
        sandbox.create_stage(aws, stage, example.project)
    return bucket


def promoted_baseline(aws: Emulator, stage: str, tfvars: dict[str, Any], trained: Path) -> str:
    """The stage package's data-quality baseline: its URI, checked to be the trained one."""
    package = aws.client("sagemaker", stage).describe_model_package(
        ModelPackageName=tfvars["model_package_arn"]
    )
    uri = package["DriftCheckBaselines"]["ModelDataQuality"]["Statistics"]["S3Uri"]
    bucket, key = utils.parse_s3_uri(uri)
    body = aws.client("s3", stage).get_object(Bucket=bucket, Key=key)["Body"].read()
    if body != trained.read_bytes():
        raise DemoFailed(f"the {stage} package's baseline {uri} is not the trained one")
    return uri


def _target_packages(
    aws: Emulator, example: Example, stage: str
) -> list[ModelPackageSummaryTypeDef]:
    sagemaker = aws.client("sagemaker", stage)
    listing = sagemaker.list_model_packages(ModelPackageGroupName=example.group)
    return listing["ModelPackageSummaryList"]


def print_summary(report: dict[str, Any]) -> None:
    print("\n==> summary")
    print(f"model: {report['source_arn']} (holdout accuracy {report['accuracy']:.3f})")
    for stage, result in report["stages"].items():
        tfvars, record, counts = result["tfvars"], result["record"], result["record"]["Counts"]
        print(f"{stage}: version {tfvars['model_version']} -> {tfvars['model_package_arn']}")
        print(
            f"  rows in {counts['rows_in']}, rejected {counts['rows_rejected']}, "
            f"scored {counts['rows_scored']}"
        )
        for metric in counts["metrics"]:  # what the stage's CloudWatch metrics would show
            drift = metric.get("drift_score")
            print(
                f"  quality ({metric['host']}): rejected fraction {metric['rejected_fraction']:.4f}"
                f", drift score {'n/a' if drift is None else f'{drift:.4f}'}, gate "
                f"{tfvars.get('quality_gate_mode', 'warn')}: {metric['gate']}"
            )
        predicted = counts["prediction_metrics"]  # one line per Transform request
        count = sum(m["count"] for m in predicted)
        if count:  # PredictionSum / PredictionCount, the dashboard's prediction mean
            print(
                f"  predictions: {count} in {len(predicted)} requests, mean "
                f"{sum(m['sum'] for m in predicted) / count:.4f}"
            )
        print("  " + ", ".join(f"{k} {v:.1f}s" for k, v in counts["seconds"].items()))
        print(f"  run {run_cost.summary(record.get('Cost'))}")
        for uri, path in zip(counts["predictions"], counts["local_predictions"], strict=True):
            print(f"  predictions: {uri} (copy: {path})")
        print(f"  execution record: {record['RecordPath']}")
        for day in counts["table_by_day"]:  # what Athena answers over the stage's Glue table
            print(
                "  predictions table ("
                + counts["local_table"]
                + "): "
                + ", ".join(f"{key} {value}" for key, value in day.items())
            )
        served = result["served"]
        print(
            f"  served on loopback: row {served['id']} -> {served['served']} (batch prediction "
            f"{served['batch']}, equal to 1e-12); `make serve STAGE={stage}` serves it again"
        )
        print(f"  run report: {record['Report']}")
        formats = result["formats"]
        print(
            f"  the same {formats['rows']} rows scored from "
            + ", ".join(f"{kind} ({day})" for kind, day in formats["days"].items())
            + ": the same answers in the predictions table"
        )
        day = result["day"]
        marker = day["marker"]
        print(
            f"  day {day['day']} (the schedule's): {marker['status']}, rows read "
            f"{marker['rows_read']}, rejected {marker['rows_rejected']}, scored "
            f"{marker['rows_scored']}; again: {day['again'].action} (marker {day['marker_uri']})"
        )
        print(f"  day {day['day']}'s run {run_cost.summary(marker.get('cost'))}")
        if marker.get("cost"):  # the run-cost line through the stage's metric filters
            shown = cost_metrics.dashboard_values(
                tfvars["pipeline_name"], marker["date"], marker["cost"]
            )
            print(
                "  dashboard's cost widget for that run: "
                + ", ".join(f"{name} {value}" for name, value in shown.items())
            )
        print_freshness(result["freshness"])
        for line in quality_demo.summary_lines(result["quality"]) if "quality" in result else []:
            print(f"  {line}")
    for stage, result in report["stages"].items():
        drifted = result.get("drifted")
        if drifted and drifted["verdict"] == "failed":
            print(f"{stage} drifted batch: stopped before scoring. {drifted['reason']}")
            print(f"  run report: {drifted['record']['Report']}")
        elif drifted:
            print(
                f"{stage} drifted batch: scored, gate warn: drift score "
                f"{drifted['metric']['drift_score']:.4f} over the limit; the drift alarm: "
                f"{drifted['alarm'][1]}"
            )
    for stage, checked in report.get("checked", {}).items():
        print(f"{stage} check_model (before the stage's model is created): {checked.line()}")
    for stage, smoked in report.get("smoke", {}).items():
        print(
            f"{stage} smoke run (what the prod reviewer sees): {smoked.execution_arn} "
            f"{smoked.status}, rows in {smoked.rows_in}, rejected {smoked.rows_rejected}, "
            f"scored {smoked.rows_scored}"
        )
    if "second" in report:
        print_second(report["second"])
    if "skipped" in report.get("model_quality", {}):
        print(f"model quality: skipped: {report['model_quality']['skipped']}")
    if "prod" not in report["stages"]:
        print("prod: not deployed (no approval)")
    print("re-deploy: same packages, nothing copied")


def print_second(second: dict[str, Any]) -> None:
    """The second version's way: preprod, the shadow run in prod's plan, prod."""
    version = second["version"]
    print(
        f"second version {version} (retrained): {second['source_arn']} (holdout accuracy "
        f"{second['accuracy']:.3f})"
    )
    preprod = second["preprod"]
    print(f"  preprod: version {version} -> {preprod['tfvars']['model_package_arn']}")
    if preprod["smoke"] is not None:
        smoked = preprod["smoke"]
        print(
            f"  preprod smoke run: {smoked.status}, rows in {smoked.rows_in}, rejected "
            f"{smoked.rows_rejected}, scored {smoked.rows_scored}"
        )
    if "restored" in second:
        restored = second["restored"]
        print(f"  prod {restored.day}: scored again by the champion before the shadow")
    shown = second["shadow"]
    print(
        f"  prod shadow before the approval (candidate model {shown['candidate'].name}), "
        "each day beside the champion's answers:"
    )
    for day, comparison in shown["days"].items():
        print(f"    {shadow_demo.headline(day, comparison)}")
    print(
        f"  shadow page: {shown['html']}; {len(shown['written'])} objects written, all under "
        "_shadow/: the champion's markers, outputs and table unchanged"
    )
    if "prod" in second:
        print(f"  prod: version {version} -> {second['prod']['tfvars']['model_package_arn']}")
    else:
        print(f"  prod: version {version} not deployed (no approval); prod keeps its version")


def print_freshness(fresh: dict[str, Any]) -> None:
    """The freshness alarms' states: the late day's, yesterday's, the dead-man's switch's."""
    late, yesterday = fresh["checked"][fresh["late"]], fresh["checked"][fresh["yesterday"]]
    hours = fresh["score_by_hours"]
    print(f"  freshness alarm: {late['alarm']} (deadline {hours} h after the day's end, UTC)")
    print(f"  freshness of {fresh['yesterday']}: {yesterday['alarm']}")
    verdict, why = fresh["switch"]
    print(f"  dead-man's switch (schedule-silent): {verdict} ({why})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="input rows per stage")
    parser.add_argument("--yes", action="store_true", help="answer the prod approval with yes")
    parser.add_argument("--workdir", type=Path, default=Path("build/demo"))
    parser.add_argument(
        "--drift",
        action="store_true",
        help="also score a drifted batch in each stage, to see its quality gate act",
    )
    parser.add_argument(
        "--example",
        choices=sorted(EXAMPLES),
        default=DEFAULT,
        help="the model taken through the flow (examples/catalog.py)",
    )
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    try:
        report = run(
            args.rows, args.yes, args.workdir, drift=args.drift, example=EXAMPLES[args.example]
        )
    except (
        DemoFailed,
        quality_demo.QualityDemoFailed,
        shadow_demo.ShadowDemoFailed,
        shadow_run.ShadowError,
        utils.PromotionError,
    ) as error:
        print(f"demo failed: {error}", file=sys.stderr)
        return 1
    print_summary(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
