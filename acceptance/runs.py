"""The acceptance run's pipeline runs on the deployed stage: a scheduled day, two uploads, a
backfill of two days and the smoke run, each read back from its marker and its jobs.

The days are in 2001, far from any day the stage's own schedule handles (yesterday and its
look-back), so the run and the schedule never meet; every input is the sample's smoke file.
The scheduled day and the uploads need the stage's functions and SageMaker's jobs to run,
which an emulator does not do (moto runs no Lambda function and no job): there their checks
are reported as needing a real account without being tried, and the backfill and the smoke
run use the local executor (``--local``), so the commands and the data layout are still
exercised. Everything is written under the project's prefix, which the teardown removes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any

from acceptance.flow import Run
from acceptance.report import Verdict
from common.s3_locations import parse_s3_uri, sse_arguments
from stage_runtime import partitions
from stage_runtime.executions import RUNNING

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "examples" / "breast_cancer" / "smoke-input.csv"
SCHEDULED = date(2001, 1, 10)
BACKFILL = (date(2001, 1, 20), date(2001, 1, 21))
# under the input prefix, outside any day partition; the first has a space (the key spelling)
UPLOADS = ("acceptance/a b.csv", "acceptance/second.csv")
WAIT_SECONDS = 45 * 60  # a run of the sample: two jobs of about 7 minutes, with slack
POLL_SECONDS = 30.0
NOT_ON_EMULATOR = "moto runs no Lambda function and no SageMaker job"


class RunFailed(RuntimeError):
    """A step's run did not end as it must for the next steps to mean anything."""


@dataclass(frozen=True)
class Stage:
    """What the runs need of the deployed stage: build.py's tfvars."""

    tfvars: Path
    values: dict[str, Any]

    @classmethod
    def read(cls, tfvars: Path) -> Stage:
        return cls(tfvars, json.loads(tfvars.read_text()))

    @property
    def layout(self) -> partitions.Layout:
        return partitions.Layout(
            self.values["input_data_url"],
            self.values["output_data_url"],
            self.values.get("partition_format") or partitions.DEFAULT_FORMAT,
        )

    def function(self, role: str) -> str:
        """A stage function's name, as the template names it."""
        return f"{self.values['project_name']}-{self.values['environment']}-{role}"

    @property
    def pipeline(self) -> str:
        return str(self.values["pipeline_name"])


def put_sample(run: Run, stage: Stage, uri: str) -> None:
    """The sample's rows at ``uri`` (an object key), encrypted as the bucket requires."""
    bucket, key = parse_s3_uri(uri)
    run.stage.client("s3").put_object(
        Bucket=bucket, Key=key, Body=SAMPLE.read_bytes(),
        **sse_arguments(stage.values.get("kms_key_arn")),
    )  # fmt: skip


def wait_for_marker(
    run: Run, uri: str, seconds: float = WAIT_SECONDS, poll: float = POLL_SECONDS
) -> dict[str, Any]:
    """The marker at ``uri`` once it says the run ended (``RunFailed`` after ``seconds``):
    only the stage's run-outcome function writes it meanwhile."""
    s3 = run.stage.client("s3")
    deadline = time.monotonic() + seconds
    while True:
        marker = partitions.read_marker(s3, uri)
        if marker and marker.get("status") not in RUNNING:
            return marker
        if time.monotonic() > deadline:
            raise RunFailed(f"{uri} still says {marker and marker.get('status')} after "
                            f"{seconds / 60:g} minutes")  # fmt: skip
        time.sleep(poll)


def executions_for(run: Run, stage: Stage, input_uri: str) -> list[str]:
    """The pipeline's executions whose ``InputDataUrl`` is ``input_uri``."""
    sagemaker = run.stage.client("sagemaker")
    found = []
    pages = sagemaker.get_paginator("list_pipeline_executions").paginate(
        PipelineName=stage.pipeline
    )
    for page in pages:
        for summary in page["PipelineExecutionSummaries"]:
            arn = summary["PipelineExecutionArn"]
            parameters = sagemaker.list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)[
                "PipelineParameters"
            ]
            if {"Name": "InputDataUrl", "Value": input_uri} in parameters:
                found.append(arn)
    return found


def invoke(run: Run, function: str, event: dict[str, Any]) -> dict[str, Any]:
    """A stage function invoked as its trigger would, synchronously: its answer."""
    response = run.stage.client("lambda").invoke(
        FunctionName=function, InvocationType="RequestResponse", Payload=json.dumps(event)
    )
    payload = json.loads(response["Payload"].read() or b"null")
    if response.get("FunctionError"):
        raise RunFailed(f"{function} failed: {payload}")
    return payload if isinstance(payload, dict) else {"answer": payload}


def scheduled_event(day: date) -> dict[str, Any]:
    """EventBridge's "Scheduled Event" for a schedule that fired early on the day after
    ``day`` (the function scores the day before the event's time)."""
    fired = datetime.combine(day + timedelta(days=1), clock(2), tzinfo=UTC)
    return {
        "version": "0",
        "id": "acceptance-scheduled-event",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "time": fired.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "",
        "resources": [],
        "detail": {},
    }


def job_arns(run: Run, execution_arn: str) -> dict[str, str]:
    """The execution's jobs: ``{"ProcessingJob": arn, "TransformJob": arn}``."""
    steps = run.stage.client("sagemaker").list_pipeline_execution_steps(
        PipelineExecutionArn=execution_arn
    )["PipelineExecutionSteps"]
    found = {}
    for step in steps:
        metadata = step.get("Metadata", {})
        if "ProcessingJob" in metadata:
            found["ProcessingJob"] = metadata["ProcessingJob"]["Arn"]
        if "TransformJob" in metadata:
            found["TransformJob"] = metadata["TransformJob"]["Arn"]
    return found


def schedule(run: Run, stage: Stage) -> str | None:
    """A day scored by the schedule function: ``start-token``, ``status-event-fields``,
    ``digest-pull``, ``float-parameters``; the day's execution ARN."""
    checks = ("start-token", "status-event-fields", "digest-pull", "float-parameters")
    if run.emulator:
        run.verdicts += [Verdict(c, "needs-real-account", NOT_ON_EMULATOR) for c in checks]
        return None
    layout = stage.layout
    put_sample(run, stage, layout.input_uri(SCHEDULED) + "part-0.csv")
    event = scheduled_event(SCHEDULED)
    answers = [invoke(run, stage.function("start-scheduled-run"), event) for _ in range(2)]
    started = executions_for(run, stage, layout.input_uri(SCHEDULED))
    if not started:
        raise RunFailed(f"the schedule function started no run for {SCHEDULED}: {answers}")
    arn = started[0]
    again = start_again(run, stage, arn)
    run.verdicts.append(Verdict(
        "start-token", "passed" if len(started) == 1 and again == arn else "failed",
        f"the schedule function invoked twice for {SCHEDULED}: {len(started)} execution(s) "
        f"on its partition (answers {answers}); its start sent again with its token: {again}",
    ))  # fmt: skip
    marker = wait_for_marker(run, layout.marker_uri(SCHEDULED))
    ended = run.stage.client("sagemaker").describe_pipeline_execution(PipelineExecutionArn=arn)
    run.verdicts.append(Verdict(
        "status-event-fields",
        "passed" if marker.get("status") == ended["PipelineExecutionStatus"] else "failed",
        f"marker {layout.marker_uri(SCHEDULED)}: {marker.get('status')} (finished "
        f"{marker.get('finished')}; rows read {marker.get('rows_read')}, scored "
        f"{marker.get('rows_scored')}), completed while nothing else looked at the day; the "
        f"execution: {ended['PipelineExecutionStatus']}",
    ))  # fmt: skip
    read_jobs(run, arn)
    return arn


def start_again(run: Run, stage: Stage, arn: str) -> str:
    """The scheduled day's start sent again as another starter would send it (the same
    request and ``ClientRequestToken``: the marker was absent when the function read it):
    the ARN SageMaker answers, which must be ``arn``. A new execution is stopped."""
    sagemaker = run.stage.client("sagemaker")
    described = sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)
    parameters = sagemaker.list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)
    token = partitions.start_token(
        stage.pipeline, stage.layout.partition(SCHEDULED), partitions.no_marker_state()
    )
    again = sagemaker.start_pipeline_execution(
        PipelineName=stage.pipeline,
        PipelineExecutionDisplayName=described["PipelineExecutionDisplayName"],
        PipelineExecutionDescription=described["PipelineExecutionDescription"],
        PipelineParameters=parameters["PipelineParameters"],
        ClientRequestToken=token,
    )["PipelineExecutionArn"]
    if again != arn:
        run.made.add(f"pipeline execution {again} (a second start of one day)", lambda: (
            sagemaker.stop_pipeline_execution(PipelineExecutionArn=again,
                                              ClientRequestToken=str(uuid.uuid4()))))  # fmt: skip
    return again


def read_jobs(run: Run, execution_arn: str) -> None:
    """``digest-pull`` from the Transform job, ``float-parameters`` from Preprocess's."""
    sagemaker, jobs = run.stage.client("sagemaker"), job_arns(run, execution_arn)
    transform = jobs.get("TransformJob")
    if transform:
        job = sagemaker.describe_transform_job(TransformJobName=transform.rsplit("/", 1)[1])
        status, reason = job["TransformJobStatus"], job.get("FailureReason", "")
        run.verdicts.append(Verdict(
            "digest-pull", "passed" if status == "Completed" else "failed",
            f"{transform}: {status} {reason}".strip(),
        ))  # fmt: skip
    else:
        run.verdicts.append(Verdict("digest-pull", "failed", f"{execution_arn}: no Transform job"))
    processing = jobs.get("ProcessingJob")
    if processing:
        described = sagemaker.describe_processing_job(
            ProcessingJobName=processing.rsplit("/", 1)[1]
        )
        arguments = list(described["AppSpecification"].get("ContainerArguments", []))
        gate = _argument(arguments, "--max-drift-score")
        passed = gate is not None and _is_number(gate)
        run.verdicts.append(Verdict(
            "float-parameters", "passed" if passed else "failed",
            f"{processing}: ContainerArguments {arguments}",
        ))  # fmt: skip
    else:
        run.verdicts.append(
            Verdict("float-parameters", "failed", f"{execution_arn}: no Processing job")
        )


def _argument(arguments: list[str], name: str) -> str | None:
    return next((arguments[i + 1] for i, a in enumerate(arguments[:-1]) if a == name), None)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def upload(run: Run, stage: Stage) -> None:
    """Two uploads scored one at a time by the run-on-upload function (upload_max_running =
    1): ``s3-eventbridge-key-spelling``, ``fifo-event-source``, ``marker-listing-condition``."""
    checks = ("s3-eventbridge-key-spelling", "fifo-event-source", "marker-listing-condition")
    if run.emulator:
        run.verdicts += [Verdict(c, "needs-real-account", NOT_ON_EMULATOR) for c in checks]
        return
    base = stage.values["input_data_url"].rstrip("/")
    output = stage.values["output_data_url"]
    for key in UPLOADS:
        put_sample(run, stage, f"{base}/{key}")
    markers = [wait_for_marker(run, partitions.upload_marker_uri(output, k)) for k in UPLOADS]
    first = markers[0]
    run.verdicts.append(Verdict(
        "s3-eventbridge-key-spelling", "passed" if first.get("status") == "Succeeded" else
        "failed", f"the upload {UPLOADS[0]!r}: marker {first.get('status')}",
    ))  # fmt: skip
    # with one run at a time, the second execution was created after the first one ended
    sagemaker = run.stage.client("sagemaker")
    first_run, second_run = (
        sagemaker.describe_pipeline_execution(PipelineExecutionArn=m["execution_arn"])
        for m in markers
    )
    ended, began = first_run["LastModifiedTime"], second_run["CreationTime"]
    run.verdicts.append(Verdict(
        "fifo-event-source", "passed" if began >= ended else "failed",
        f"{UPLOADS[0]!r}'s execution ended {ended.isoformat()}; {UPLOADS[1]!r}'s was created "
        f"{began.isoformat()}",
    ))  # fmt: skip
    # the first upload's event delivered again: the function reads the marker and skips it
    bucket, key = parse_s3_uri(f"{base}/{UPLOADS[0]}")
    version = run.stage.client("s3").head_object(Bucket=bucket, Key=key).get("VersionId")
    answer = invoke(run, stage.function("start-upload-run"), redelivery(bucket, key, version))
    skipped = answer.get("skipped") == [f"s3://{bucket}/{key}"] and not answer.get("started")
    run.verdicts.append(Verdict(
        "marker-listing-condition", "passed" if skipped else "failed",
        f"{UPLOADS[0]!r} delivered again to the function: {answer}",
    ))  # fmt: skip


def redelivery(bucket: str, key: str, version: str | None) -> dict[str, Any]:
    """The SQS event the run-on-upload function gets for an upload, delivered once more: the
    body is S3's EventBridge "Object Created" event as AWS documents it (the key unencoded)."""
    body = {"version": "0", "id": "acceptance-redelivery", "detail-type": "Object Created",
            "source": "aws.s3", "time": partitions.now(),
            "detail": {"bucket": {"name": bucket},
                       "object": {"key": key, "version-id": version}}}  # fmt: skip
    return {"Records": [{"messageId": "acceptance-redelivery", "body": json.dumps(body)}]}


def command(run: Run, module: str, *args: str) -> Callable[[], subprocess.CompletedProcess]:
    """``python -m <module> <args>`` in the stage account, from the repository root."""
    argv = [sys.executable, "-m", module, *args]
    return lambda: subprocess.run(
        argv, cwd=REPO, env=run.stage_environment(), capture_output=True, text=True,
        timeout=2 * WAIT_SECONDS, check=False,
    )  # fmt: skip


def backfill(run: Run, stage: Stage) -> None:
    """Two days scored by ``run_pipeline --date --until --wait``, each marker Succeeded."""
    layout = stage.layout
    for day in BACKFILL:
        put_sample(run, stage, layout.input_uri(day) + "part-0.csv")
    local = ["--local", "--work-dir", str(run.workdir / "local")] if run.emulator else []
    result = command(run, "pipelines.run_pipeline", "--tfvars", str(stage.tfvars),
                     "--date", BACKFILL[0].isoformat(), "--until", BACKFILL[1].isoformat(),
                     "--wait", *local)()  # fmt: skip
    if result.returncode != 0:
        raise RunFailed(f"the backfill exited {result.returncode}: {_tail(result)}")
    s3 = run.stage.client("s3")
    statuses = {d: (partitions.read_marker(s3, layout.marker_uri(d)) or {}).get("status")
                for d in BACKFILL}  # fmt: skip
    if set(statuses.values()) != {"Succeeded"}:
        raise RunFailed(f"the backfill's markers: {statuses}")


def smoke(run: Run, stage: Stage) -> None:
    """The deploy workflow's smoke run of what was deployed."""
    local = ["--local", "--work-dir", str(run.workdir / "local")] if run.emulator else []
    result = command(run, "pipelines.smoke_run", "--tfvars", str(stage.tfvars), *local)()
    if result.returncode != 0:
        raise RunFailed(f"the smoke run exited {result.returncode}: {_tail(result)}")


def _tail(result: subprocess.CompletedProcess) -> str:
    return " ".join((result.stdout[-800:] + result.stderr[-800:]).split())
