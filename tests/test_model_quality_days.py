"""Which scored days get a model-quality evaluation, exactly once per upload of their labels,
and how its end is recorded in the day's marker, against the emulator (moto's executions are
kept Executing, then ended by hand; the job's result is what evaluate.py writes)."""

from __future__ import annotations

import contextlib
import io
from datetime import date
from pathlib import Path
from typing import Any

import boto3
import moto.backends
import pytest

from local_mode import sandbox
from local_mode.emulator import Emulator
from pipelines.batch_inference import evaluate
from stage_runtime import model_quality, partitions
from tests.registry import create_empty_pipeline, keep_executions_running

BUCKET = "stage-artifacts"
ROOT = f"s3://{BUCKET}/churn/batch-inference"
QUALITY = "churn-preprod-batch-inference-quality"
DAY = date(2026, 11, 3)
SCORED = "arn:aws:sagemaker:eu-west-1:123456789012:pipeline/churn/execution/scored0001"
STAGE = model_quality.Stage(
    partitions.Layout(f"{ROOT}/input", f"{ROOT}/output"),
    labels_url=f"{ROOT}/labels",
    predictions_table_url=f"{ROOT}/output/table/",
    quality_pipeline_name=QUALITY,
)


@pytest.fixture
def aws_stage(aws: Emulator, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    sandbox.create_bucket(aws, None, BUCKET)
    sagemaker = boto3.client("sagemaker")
    create_empty_pipeline(sagemaker, QUALITY)
    keep_executions_running(monkeypatch)
    return {"s3": boto3.client("s3"), "sagemaker": sagemaker, "aws": aws}


def scored(s3: Any, day: date = DAY, status: str = "Succeeded") -> None:
    marker = partitions.started_marker(STAGE.layout, day, SCORED) | {"status": status}
    partitions.write_marker(s3, STAGE.layout.marker_uri(day), marker, None)


def labels(s3: Any, body: str = "id,label\nr1,1\nr2,0\n", name: str = "a.csv") -> None:
    bucket, prefix = partitions.parse_s3_uri(STAGE.labels_uri(DAY))
    s3.put_object(Bucket=bucket, Key=f"{prefix}{name}", Body=body.encode())


def marker(s3: Any) -> dict[str, Any]:
    found = partitions.read_marker(s3, STAGE.layout.marker_uri(DAY))
    assert found is not None
    return found


def executions(sagemaker: Any) -> list[str]:
    summaries = sagemaker.list_pipeline_executions(PipelineName=QUALITY)
    return [e["PipelineExecutionArn"] for e in summaries["PipelineExecutionSummaries"]]


def test_only_a_scored_day_with_labels_is_evaluated(aws_stage: dict[str, Any]) -> None:
    s3, sagemaker = aws_stage["s3"], aws_stage["sagemaker"]
    assert model_quality.decide(s3, STAGE, DAY).reason == f"{DAY} is not scored yet (no marker)"
    scored(s3, status="Executing")
    assert model_quality.decide(s3, STAGE, DAY).action == "skip"
    scored(s3)
    decision = model_quality.decide(s3, STAGE, DAY)
    assert (decision.action, decision.reason) == (
        "skip", f"no labels yet under {STAGE.labels_uri(DAY)}",
    )  # fmt: skip
    labels(s3, name="README.txt")  # not a labels file
    assert model_quality.decide(s3, STAGE, DAY).action == "skip"
    labels(s3)
    decision = model_quality.decide(s3, STAGE, DAY)
    assert decision.action == "start"
    assert decision.parameters == {
        "LabelsUrl": f"{ROOT}/labels/dt=2026-11-03/",
        "PredictionsUrl": f"{ROOT}/output/table/day=2026-11-03/",
        "ScoredExecutionId": "scored0001",
        "PredictionDay": "2026-11-03",
        "QualityOutputUrl": f"{ROOT}/output/dt=2026-11-03/quality",
    }
    assert executions(sagemaker) == []  # deciding starts nothing


def test_each_upload_of_labels_is_evaluated_once(aws_stage: dict[str, Any]) -> None:
    """Two starters that look at once send one token; the schedule's next look finds the
    evaluation recorded and starts nothing; labels uploaded again are a new evaluation."""
    s3, sagemaker = aws_stage["s3"], aws_stage["sagemaker"]
    scored(s3)
    labels(s3)
    first, second = (model_quality.decide(s3, STAGE, DAY) for _ in range(2))
    assert first.token == second.token and len(first.token) == 64
    results = model_quality.run_days(s3, sagemaker, STAGE, [DAY])
    (arn,) = executions(sagemaker)
    assert results == {str(DAY): {"action": "start", "execution_arn": arn}}
    recorded = marker(s3)["model_quality"]
    assert (recorded["status"], recorded["execution_arn"]) == ("Executing", arn)
    assert marker(s3)["status"] == "Succeeded"  # the day's own record is kept
    again = model_quality.run_days(s3, sagemaker, STAGE, [DAY, date(2026, 11, 4)])
    assert again[str(DAY)] == {"action": "skip", "execution_arn": ""}
    assert again["2026-11-04"]["action"] == "skip"  # never scored
    assert executions(sagemaker) == [arn]
    labels(s3, "id,label\nr1,1\nr2,1\n")  # corrected labels
    newer = model_quality.decide(s3, STAGE, DAY)
    assert newer.action == "start" and newer.token != first.token


def set_status(aws: Emulator, arn: str, status: str) -> None:
    backend = moto.backends.get_backend("sagemaker")["123456789012"][aws.region]
    backend.pipelines[QUALITY].pipeline_executions[arn].pipeline_execution_status = status


def job_result(tmp_path: Path) -> bytes:
    """What evaluate.py writes for a small day (its own main)."""
    (tmp_path / "l").mkdir()
    (tmp_path / "p").mkdir()
    (tmp_path / "l" / "a.csv").write_text("id,label\nr1,1\nr2,0\nr3,1\n")
    (tmp_path / "p" / "t.csv").write_text(
        "id,prediction,model_version,execution_id\n"
        "r1,0.8,3,scored0001\nr2,0.3,3,scored0001\nr3,0.2,3,scored0001\n"
    )
    (tmp_path / "r.json").write_text('{"binary_classification_metrics": {"auc": {"value": 1}}}')
    with contextlib.redirect_stdout(io.StringIO()):
        code = evaluate.main(
            ["--labels-dir", str(tmp_path / "l"), "--predictions-dir", str(tmp_path / "p"),
             "--output-dir", str(tmp_path / "o"), "--registered", str(tmp_path / "r.json"),
             "--id-column", "id", "--execution-id", "scored0001", "--day", str(DAY)]
        )  # fmt: skip
    assert code == 0
    return (tmp_path / "o" / evaluate.RESULT).read_bytes()


def test_the_evaluations_end_is_written_into_the_days_marker(
    aws_stage: dict[str, Any], tmp_path: Path
) -> None:
    s3, sagemaker, aws = aws_stage["s3"], aws_stage["sagemaker"], aws_stage["aws"]
    assert model_quality.RESULT == evaluate.RESULT
    scored(s3)
    labels(s3)
    model_quality.run_days(s3, sagemaker, STAGE, [DAY])
    (arn,) = executions(sagemaker)
    # still running: nothing to record yet
    assert model_quality.record(s3, sagemaker, STAGE, arn) == {
        "marker": STAGE.layout.marker_uri(DAY),
        "recorded": False,
    }  # fmt: skip
    set_status(aws, arn, "Succeeded")
    bucket, prefix = partitions.parse_s3_uri(STAGE.quality_output_uri(DAY))
    key = f"{prefix}/{arn.rsplit('/', 1)[-1]}/{evaluate.RESULT}"
    s3.put_object(Bucket=bucket, Key=key, Body=job_result(tmp_path))
    assert model_quality.record(s3, sagemaker, STAGE, arn)["recorded"] is True
    recorded = marker(s3)["model_quality"]
    assert recorded["status"] == "Succeeded"
    assert recorded["metrics"]["auc"] == 0.5  # r1 above r2, r3 below it
    assert recorded["coverage"]["matched"] == 3
    assert (recorded["registered"], recorded["quality_drop"], recorded["verdict"]) == (
        1.0, 0.5, "degraded",
    )  # fmt: skip
    assert recorded["result"] == f"s3://{bucket}/{key}"
    # delivered again: already recorded, left alone; the next look starts nothing
    assert model_quality.record(s3, sagemaker, STAGE, arn)["recorded"] is False
    assert model_quality.decide(s3, STAGE, DAY).action == "skip"


@pytest.mark.parametrize("ended", ["Failed", "Stopped"])
def test_a_failed_evaluation_is_recorded_and_retried_with_a_new_token(
    aws_stage: dict[str, Any], ended: str
) -> None:
    s3, sagemaker, aws = aws_stage["s3"], aws_stage["sagemaker"], aws_stage["aws"]
    scored(s3)
    labels(s3)
    first = model_quality.decide(s3, STAGE, DAY)
    model_quality.run_days(s3, sagemaker, STAGE, [DAY])
    (arn,) = executions(sagemaker)
    set_status(aws, arn, ended)
    assert model_quality.record(s3, sagemaker, STAGE, arn, ended)["status"] == ended
    assert marker(s3)["model_quality"]["status"] == ended
    retry = model_quality.decide(s3, STAGE, DAY)
    assert retry.action == "start" and retry.token != first.token
    assert f"again (the last evaluation {ended.lower()})" in retry.reason
    assert marker(s3)["execution_arn"] == SCORED  # the day's own run is kept


def test_an_evaluation_whose_end_was_missed_is_completed_at_the_next_look(
    aws_stage: dict[str, Any],
) -> None:
    """No outcome event (the function failed): the schedule's next look records the failure
    and starts the evaluation again."""
    s3, sagemaker, aws = aws_stage["s3"], aws_stage["sagemaker"], aws_stage["aws"]
    scored(s3)
    labels(s3)
    model_quality.run_days(s3, sagemaker, STAGE, [DAY])
    (arn,) = executions(sagemaker)
    set_status(aws, arn, "Failed")
    results = model_quality.run_days(s3, sagemaker, STAGE, [DAY])
    assert results[str(DAY)]["action"] == "start"
    assert len(executions(sagemaker)) == 2
    assert marker(s3)["model_quality"]["execution_arn"] == results[str(DAY)]["execution_arn"]


def test_the_schedule_starts_and_the_outcome_function_records_an_evaluation(
    aws_stage: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The two functions as the template configures them: the night five days after the
    scored day starts its evaluation (labels landed since), and the evaluation's end event
    writes the result into the day's marker; a scoring run's end is still the day's own."""
    from lambdas.record_run_outcome import handler as outcome
    from lambdas.start_scheduled_run import handler as schedule

    s3, sagemaker, aws = aws_stage["s3"], aws_stage["sagemaker"], aws_stage["aws"]
    create_empty_pipeline(sagemaker, "churn-preprod-batch-inference")
    for name, value in {
        "PIPELINE_NAME": "churn-preprod-batch-inference", "PIPELINE_PARAMETERS": "{}",
        "INPUT_DATA_URL": STAGE.layout.input_data_url, "LOOKBACK_DAYS": "0",
        "OUTPUT_DATA_URL": STAGE.layout.output_data_url,
        "PARTITION_FORMAT": partitions.DEFAULT_FORMAT, "QUALITY_PIPELINE_NAME": QUALITY,
        "LABELS_URL": STAGE.labels_url, "PREDICTIONS_TABLE_URL": STAGE.predictions_table_url,
        "LABEL_LOOKBACK_DAYS": "14",
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    scored(s3)
    labels(s3)
    event = {
        "version": "0", "id": "e1", "detail-type": "Scheduled Event", "source": "aws.events",
        "time": "2026-11-08T02:00:00Z", "region": "eu-west-1", "resources": [], "detail": {},
    }  # fmt: skip
    answer = schedule.handler(event)
    (arn,) = executions(sagemaker)
    assert answer["model_quality"][str(DAY)] == {"action": "start", "execution_arn": arn}
    assert schedule.handler(event)["model_quality"][str(DAY)]["action"] == "skip"
    set_status(aws, arn, "Succeeded")
    bucket, prefix = partitions.parse_s3_uri(STAGE.quality_output_uri(DAY))
    s3.put_object(
        Bucket=bucket, Key=f"{prefix}/{arn.rsplit('/', 1)[-1]}/{evaluate.RESULT}",
        Body=job_result(tmp_path),
    )  # fmt: skip
    ended = {
        "version": "0", "id": "e2", "source": "aws.sagemaker", "region": "eu-west-1",
        "detail-type": "SageMaker Model Building Pipeline Execution Status Change",
        "detail": {"pipelineExecutionArn": arn, "currentPipelineExecutionStatus": "Succeeded"},
    }  # fmt: skip
    assert outcome.handler(ended)["recorded"] is True
    assert marker(s3)["model_quality"]["verdict"] == "degraded"
    assert marker(s3)["status"] == "Succeeded"
