"""The post-deploy smoke run against the emulator: on SageMaker's path (moto's pipelines run
no jobs, so what is checked there is the requests, the bounded wait and the verdict) and on
the local executor's (a real run of the deployed definition: tests/test_demo.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from common.exit_codes import EXECUTION_FAILED, USAGE_ERROR
from local_mode import sandbox
from local_mode.emulator import ACCOUNTS, Emulator
from pipelines import smoke, smoke_run
from stage_runtime.runs import schedule_parameters
from tests.provider_requests import Request, problems
from tests.registry import (
    deploy_preprod,
    keep_executions_running,
)


@pytest.fixture
def deployed(aws: Emulator, tmp_path: Path) -> dict[str, Any]:
    """Preprod promoted by build.py and its pipeline created, as the apply leaves them."""
    return deploy_preprod(aws, tmp_path)


def recorded(session: boto3.Session) -> list[Request]:
    """Every SageMaker request the session's clients send, for botocore's model check."""
    sent: list[Request] = []

    def record(params: dict, model: Any, **_: Any) -> None:
        sent.append(Request("sagemaker", model.name, dict(params)))

    session.events.register("before-parameter-build.sagemaker", record)
    return sent


def test_a_run_that_scores_nothing_fails_the_deployment(
    aws: Emulator, deployed: dict[str, Any], tmp_path: Path, capsys
) -> None:
    """moto's execution 'succeeds' at once and writes nothing: exactly a run that scored no
    rows, which must not pass. The start request is the schedule's, on the smoke input."""
    session = aws.account("preprod")
    sent = recorded(session)
    result = smoke.smoke_run(deployed, session, poll_seconds=0.01)
    assert result.status == "Succeeded" and not result.passed
    assert result.failure_reason == "the run succeeded but scored no rows"
    (start,) = [r for r in sent if r.operation == "StartPipelineExecution"]
    assert problems(start) == []
    parameters = {p["Name"]: p["Value"] for p in start.body["PipelineParameters"]}
    assert parameters == {
        "ModelName": deployed["model_name"],
        "ModelVersion": str(deployed["model_version"]),
        "InputDataUrl": result.input_uri,
        "OutputDataUrl": deployed["output_data_url"],
        "FeatureSchemaUrl": deployed["feature_schema_url"],
        "ProcessingInstanceType": deployed["processing_instance_type"],
        "ProcessingInstanceCount": str(deployed["processing_instance_count"]),
        "TransformInstanceType": deployed["transform_instance_type"],
        "TransformInstanceCount": str(deployed["transform_instance_count"]),
        # the stage file's gate (pre-prod-config.tfvars.json)
        "MaxRejectedFraction": str(deployed["max_rejected_fraction"]),
        "MaxDriftScore": str(deployed["max_drift_score"]),
        "QualityGateMode": deployed["quality_gate_mode"],
    }
    # the smoke input, content-addressed under the project's prefix, encrypted with the key
    bucket, _, folder = result.input_uri.removeprefix("s3://").partition("/")
    assert folder.startswith(f"{deployed['project_name']}/batch-inference/smoke/")
    s3 = aws.client("s3", "preprod")
    (item,) = s3.list_objects_v2(Bucket=bucket, Prefix=folder)["Contents"]
    assert item["Key"].endswith("/smoke-input.csv")
    report = result.markdown("preprod")
    assert result.execution_arn in report and "FAILED" in report and "0 / 0 / 0" in report


def test_the_cli_fails_with_the_reason_and_writes_the_job_summary(
    aws: Emulator, deployed: dict[str, Any], tmp_path: Path, capsys, monkeypatch
) -> None:
    for name, value in aws.credential_variables("preprod").items():
        monkeypatch.setenv(name, value)
    tfvars, summary = tmp_path / "preprod.tfvars.json", tmp_path / "summary.md"
    code = smoke_run.main(
        ["--tfvars", str(tfvars), "--summary", str(summary), "--poll-seconds", "0.01"]
    )
    assert code == EXECUTION_FAILED
    error = capsys.readouterr().err.strip()
    assert (
        error == "smoke_run: preprod smoke run did not pass: the run succeeded but scored no rows"
    )
    assert f":{ACCOUNTS['preprod']}:pipeline/" in summary.read_text()


def test_a_run_past_the_timeout_is_stopped_and_fails(
    aws: Emulator, deployed: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run still executing at the deadline: the wait ends and a stop is requested (moto
    has no StopPipelineExecution, so the request itself is checked against botocore)."""
    keep_executions_running(monkeypatch)
    session = aws.account("preprod")
    sent = recorded(session)
    waits: list[float] = []
    arn, status, reason = smoke.run_on_sagemaker(
        session.client("sagemaker"),
        deployed,
        schedule_parameters(deployed, "s3://b/smoke/"),
        timeout_seconds=0,
        poll_seconds=30,
        sleep=waits.append,
    )
    assert status == "TimedOut" and waits == []
    assert reason is not None and reason.startswith("still Executing after 0 min;")
    (stop,) = [r for r in sent if r.operation == "StopPipelineExecution"]
    assert stop.body["PipelineExecutionArn"] == arn and problems(stop) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"smoke_input": None}, "names no smoke_input"),
        ({"smoke_input": "../outside.csv"}, "is not a file in the repository"),
        ({"smoke_input": "examples/missing.csv"}, "is not a file in the repository"),
        ({"pipeline_name": ""}, "lacks pipeline_name"),
    ],
)
def test_bad_stage_inputs_are_usage_errors_before_anything_runs(
    aws: Emulator, deployed: dict[str, Any], tmp_path: Path, capsys, change, message
) -> None:
    path = tmp_path / "bad.tfvars.json"
    path.write_text(json.dumps({**deployed, **change}))
    assert smoke_run.main(["--tfvars", str(path), "--local"]) == USAGE_ERROR
    assert message in capsys.readouterr().err
    listing = aws.client("sagemaker", "preprod").list_pipeline_executions(
        PipelineName=deployed["pipeline_name"]
    )
    assert listing["PipelineExecutionSummaries"] == []


def test_rows_are_counted_from_what_the_run_wrote(aws: Emulator) -> None:
    """Summaries of every Preprocess host, lines of every prediction file; nothing of other
    runs under the same output prefix."""
    s3 = boto3.client("s3")
    sandbox.create_bucket(aws, None, "out")
    for host, (read, rejected) in {"algo-1": (10, 1), "algo-2": (7, 2)}.items():
        body = json.dumps({"rows_read": read, "rows_rejected": rejected, "rows_written": 0})
        s3.put_object(Bucket="out", Key=f"o/e1/preprocess/summary/{host}.json", Body=body)
    s3.put_object(Bucket="out", Key="o/e1/predictions/a.csv.out", Body=b"1,0\n2,1\n3,1\n")
    s3.put_object(Bucket="out", Key="o/e1/predictions/b.csv.out", Body=b"4,0\n\n")
    s3.put_object(Bucket="out", Key="o/e2/predictions/a.csv.out", Body=b"9,9\n")
    assert smoke.count_rows(s3, "s3://out/o", "e1") == (17, 3, 4)
