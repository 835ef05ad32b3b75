"""A run's cost: each job's instance-seconds at the price table's prices, in the day's marker,
the run-outcome function's metric line, the local record and report, the backfill's
projection and its limit.

moto 5.2.5 does not implement ``ListPipelineExecutionSteps`` (HTTP 500), answers
``DescribeProcessingJob`` without ``ProcessingResources`` or ``ProcessingStartTime``, and
``DescribeTransformJob`` with start = end: what the emulator can answer is asked of it (and
the cost says what is missing); SageMaker's full answers are botocore's ``Stubber`` on a real
client, which checks every request against the API model and every answer against its
output shape (a field name or type the model does not have fails the test).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from lambdas.record_run_outcome import handler as outcome
from local_mode import sandbox
from local_mode.emulator import Emulator
from local_mode.report import RunReport, render
from pipelines import backfill_cost
from stage_runtime import partitions, prices, run_cost
from stage_runtime.function_environment import ConfigError
from tests.registry import create_empty_pipeline
from tests.test_partitions import (  # noqa: F401 - the fixtures: a promoted preprod stage
    DAY_1,
    backfill,
    in_preprod,
    in_process_model,
    layout,
    marker,
    put_day,
    stage,
)

REGION = "eu-west-1"
ACCOUNT = "123456789012"
EXECUTION = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/churn-preprod/execution/k3x9q2m7w1z4"
START = datetime(2026, 11, 4, 2, 0, tzinfo=UTC)


def job_arn(kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:{kind}/{name}"


def steps_answer() -> dict[str, Any]:
    """ListPipelineExecutionSteps of a run of the stage's three steps."""

    def step(name: str, kind: str, job: str, minutes: int) -> dict[str, Any]:
        metadata_key = "ProcessingJob" if kind == "processing-job" else "TransformJob"
        return {
            "StepName": name,
            "StepStatus": "Succeeded",
            "StartTime": START,
            "EndTime": START + timedelta(minutes=minutes),
            "Metadata": {metadata_key: {"Arn": job_arn(kind, job)}},
        }

    return {
        "PipelineExecutionSteps": [
            step("Preprocess", "processing-job", "churn-preprod-preprocess-k3x9-a1-0", 10),
            step("BatchTransform", "transform-job", "churn-preprod-transform-k3x9-b2-0", 20),
            step("Publish", "processing-job", "churn-preprod-preprocess-k3x9-c3-0", 5),
        ]
    }


def processing_answer(name: str, kind: str, count: int, seconds: float) -> dict[str, Any]:
    """DescribeProcessingJob's answer (the fields its output shape requires, and the cost's)."""
    return {
        "ProcessingJobName": name,
        "ProcessingJobArn": job_arn("processing-job", name),
        "ProcessingJobStatus": "Completed",
        "CreationTime": START,
        "AppSpecification": {"ImageUri": "1.dkr.ecr.eu-west-1.amazonaws.com/sklearn:1.2-1"},
        "ProcessingResources": {
            "ClusterConfig": {"InstanceCount": count, "InstanceType": kind, "VolumeSizeInGB": 30}
        },
        "ProcessingStartTime": START + timedelta(minutes=3),
        "ProcessingEndTime": START + timedelta(minutes=3, seconds=seconds),
    }


def transform_answer(name: str, kind: str, count: int, seconds: float) -> dict[str, Any]:
    return {
        "TransformJobName": name,
        "TransformJobArn": job_arn("transform-job", name),
        "TransformJobStatus": "Completed",
        "ModelName": "churn-models-preprod-v3",
        "CreationTime": START,
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                                           "S3Uri": "s3://b/in/"}}},
        "TransformResources": {"InstanceType": kind, "InstanceCount": count},
        "TransformStartTime": START + timedelta(minutes=12),
        "TransformEndTime": START + timedelta(minutes=12, seconds=seconds),
    }  # fmt: skip


def stub_jobs(stubber: Stubber, preprocess: str = "ml.m5.xlarge") -> None:
    """The answers to a cost's calls, each request checked against the model: the steps, then
    each step's job, in the steps' order."""
    stubber.add_response(
        "list_pipeline_execution_steps",
        steps_answer(),
        {"PipelineExecutionArn": EXECUTION, "SortOrder": "Ascending"},
    )
    stubber.add_response(
        "describe_processing_job",
        processing_answer("churn-preprod-preprocess-k3x9-a1-0", preprocess, 2, 412.5),
        {"ProcessingJobName": "churn-preprod-preprocess-k3x9-a1-0"},
    )
    stubber.add_response(
        "describe_transform_job",
        transform_answer("churn-preprod-transform-k3x9-b2-0", "ml.c5.xlarge", 3, 900),
        {"TransformJobName": "churn-preprod-transform-k3x9-b2-0"},
    )
    stubber.add_response(
        "describe_processing_job",
        processing_answer("churn-preprod-preprocess-k3x9-c3-0", preprocess, 2, 61),
        {"ProcessingJobName": "churn-preprod-preprocess-k3x9-c3-0"},
    )


def offline_sagemaker() -> Any:
    return boto3.client(
        "sagemaker", region_name=REGION, aws_access_key_id="a", aws_secret_access_key="b"
    )


def test_a_runs_cost_is_its_jobs_instance_seconds_at_the_tables_prices() -> None:
    sagemaker = offline_sagemaker()
    table = prices.load_table()
    with Stubber(sagemaker) as stubber:
        stub_jobs(stubber)
        result = run_cost.sagemaker_cost_of(sagemaker, table)(EXECUTION, 50_000)
        stubber.assert_no_pending_responses()
    processing = prices.price_per_hour("ml.m5.xlarge", "processing", table)
    transform = prices.price_per_hour("ml.c5.xlarge", "transform", table)
    expected = [
        ("Preprocess", "processing", 2, 412.5, 825.0, processing),
        ("BatchTransform", "transform", 3, 900.0, 2700.0, transform),
        ("Publish", "processing", 2, 61.0, 122.0, processing),
    ]
    assert [
        (s["step"], s["job"], s["instance_count"], s["seconds"], s["instance_seconds"],
         s["usd_per_hour"]) for s in result["steps"]
    ] == expected  # fmt: skip
    usd = [
        round(instance_seconds * per_hour / 3600, 6) for *_, instance_seconds, per_hour in expected
    ]
    assert [s["usd"] for s in result["steps"]] == usd
    assert result["total_usd"] == pytest.approx(sum(usd), abs=1e-6)
    assert result["cost_per_1000_rows"] == pytest.approx(result["total_usd"] / 50, abs=1e-6)
    assert result["currency"] == "USD" and "unknown" not in result
    shipped = json.loads(prices.PRICES.read_text())
    assert result["prices"] == {
        "table": "stage_runtime/sagemaker_prices.json",
        "region": shipped["region"],
        "retrieved": shipped["retrieved"],
        "source": shipped["source"],
        "verified": False,
        "stage_prices": [],
    }
    assert all(s["price_verified"] is False for s in result["steps"])
    assert "unverified" in run_cost.summary(result)


def test_a_price_the_table_lacks_is_a_null_cost_with_the_fix_and_a_stage_price_gives_it() -> None:
    """ml.r5 is a Processing type the shipped table has no price for: the cost says so and
    how to give one; the stage's instance_prices then price it (and are said to)."""
    sagemaker = offline_sagemaker()
    with Stubber(sagemaker) as stubber:
        stub_jobs(stubber, preprocess="ml.r5.large")
        unknown = run_cost.sagemaker_cost_of(sagemaker, prices.load_table())(EXECUTION, 10)
    assert unknown["total_usd"] is None and unknown["cost_per_1000_rows"] is None
    assert [s["usd"] is None for s in unknown["steps"]] == [True, False, True]
    assert unknown["steps"][0]["problem"] == (
        "no processing price for ml.r5.large in stage_runtime/sagemaker_prices.json: set it in "
        'the stage file\'s instance_prices (e.g. {"ml.r5.large": 0.5}, USD per hour)'
    )
    assert unknown["unknown"].startswith("Preprocess: no processing price for ml.r5.large")
    assert run_cost.summary(unknown).startswith("cost unknown (Preprocess: no processing price")
    own = run_cost.table_of({"ml.r5.large": 0.151})
    with Stubber(sagemaker) as stubber:
        stub_jobs(stubber, preprocess="ml.r5.large")
        priced = run_cost.sagemaker_cost_of(sagemaker, own)(EXECUTION, 10)
    assert [s["usd_per_hour"] for s in priced["steps"]][::2] == [0.151, 0.151]
    assert priced["steps"][0]["usd"] == round(825 * 0.151 / 3600, 6)
    assert priced["prices"]["stage_prices"] == ["ml.r5.large"]
    assert priced["steps"][0]["price_verified"] is True  # the stage vouches for its own
    assert "the stage's own for ml.r5.large" in run_cost.summary(priced)


def test_against_the_emulator_what_moto_lacks_is_a_cost_unknown_not_an_error(
    aws: Emulator,
) -> None:
    """Real calls to moto: ListPipelineExecutionSteps is not implemented there (the cost is
    unknown, with the error); its DescribeTransformJob gives the instances (and 0 s: moto's
    jobs start and end at once); its DescribeProcessingJob has no ProcessingResources."""
    sagemaker = boto3.client("sagemaker")
    table = prices.load_table()
    unknown = run_cost.sagemaker_cost_of(sagemaker, table)(EXECUTION, 5)
    assert unknown["total_usd"] is None and unknown["steps"] == []
    assert unknown["unknown"].startswith("the run's jobs could not be read: ")
    assert "ListPipelineExecutionSteps" in unknown["unknown"]
    sagemaker.create_transform_job(
        TransformJobName="churn-preprod-transform-1",
        ModelName="m",
        TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                                        "S3Uri": "s3://b/in/"}}},
        TransformOutput={"S3OutputPath": "s3://b/out/"},
        TransformResources={"InstanceType": "ml.m5.xlarge", "InstanceCount": 2},
    )  # fmt: skip
    described = sagemaker.describe_transform_job(TransformJobName="churn-preprod-transform-1")
    usage = run_cost.transform_usage("BatchTransform", described)
    assert (usage.instance_type, usage.instance_count, usage.seconds) == ("ml.m5.xlarge", 2, 0)
    assert run_cost.cost([usage], table, 5)["total_usd"] == 0
    sagemaker.create_processing_job(
        ProcessingJobName="churn-preprod-preprocess-1",
        ProcessingResources={"ClusterConfig": {"InstanceCount": 1,
                                               "InstanceType": "ml.m5.xlarge",
                                               "VolumeSizeInGB": 30}},
        AppSpecification={"ImageUri": "img"},
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/r",
    )  # fmt: skip
    processing = sagemaker.describe_processing_job(ProcessingJobName="churn-preprod-preprocess-1")
    assert "ProcessingResources" not in processing  # what moto lacks
    usage = run_cost.processing_usage("Preprocess", processing)
    assert usage.problem == "the job's description names no instance type and count"


BUCKET = "stage-artifacts"
OUTPUT = f"s3://{BUCKET}/churn/batch-inference/output"
LAYOUT = partitions.Layout(f"s3://{BUCKET}/churn/batch-inference/input", OUTPUT)
DAY = date(2026, 11, 3)


def test_the_outcome_function_puts_the_cost_in_the_marker_and_prints_its_metric_line(
    aws: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """The marker (the emulator's S3) of a run that ended: completed with its rows and its
    cost; the function prints the run-cost line the stage's metric filters read. SageMaker's
    answers are stubbed (moto implements no ListPipelineExecutionSteps), in the order the
    function asks."""
    sandbox.create_bucket(aws, None, BUCKET)
    s3 = boto3.client("s3")
    partitions.write_marker(
        s3, LAYOUT.marker_uri(DAY), partitions.started_marker(LAYOUT, DAY, EXECUTION), None
    )
    bucket, prefix = partitions.parse_s3_uri(LAYOUT.output_uri(DAY))
    summary = {"rows_read": 1200, "rows_rejected": 200, "rows_written": 1000}
    s3.put_object(
        Bucket=bucket,
        Key=f"{prefix}/{EXECUTION.rsplit('/', 1)[-1]}/preprocess/summary/algo-1.json",
        Body=json.dumps(summary).encode(),
    )
    sagemaker = offline_sagemaker()
    environ = {
        "INPUT_DATA_URL": LAYOUT.input_data_url,
        "OUTPUT_DATA_URL": OUTPUT,
        "PARTITION_FORMAT": partitions.DEFAULT_FORMAT,
        "INSTANCE_PRICES": json.dumps({"ml.c5.xlarge": 0.25}),
        "PIPELINE_NAME": "Churn-Preprod",  # as the template names it (its ARN: lower case)
    }
    config = outcome.Config.from_environment(environ)
    with Stubber(sagemaker) as stubber:
        parameters = [
            {"Name": "InputDataUrl", "Value": LAYOUT.input_uri(DAY)},
            {"Name": "OutputDataUrl", "Value": LAYOUT.output_uri(DAY)},
        ]
        stubber.add_response(
            "list_pipeline_parameters_for_execution",
            {"PipelineParameters": parameters},
            {"PipelineExecutionArn": EXECUTION},
        )
        stubber.add_response(
            "describe_pipeline_execution",
            {"PipelineExecutionArn": EXECUTION, "PipelineExecutionStatus": "Succeeded"},
            {"PipelineExecutionArn": EXECUTION},
        )
        stub_jobs(stubber)
        answer = outcome.record_outcome(s3, sagemaker, config, EXECUTION, "Succeeded")
        stubber.assert_no_pending_responses()
    recorded = partitions.read_marker(s3, LAYOUT.marker_uri(DAY))
    assert recorded is not None and recorded["status"] == "Succeeded"
    cost = recorded["cost"]
    assert cost["rows_scored"] == recorded["rows_scored"] == 1000
    transform = [s for s in cost["steps"] if s["job"] == "transform"]
    assert transform[0]["usd_per_hour"] == 0.25  # the stage's price over the table's
    assert cost["total_usd"] == pytest.approx(sum(s["usd"] for s in cost["steps"]), abs=1e-6)
    assert cost["cost_per_1000_rows"] == pytest.approx(cost["total_usd"], abs=1e-6)
    assert answer == {"marker": LAYOUT.marker_uri(DAY), "recorded": True, "status": "Succeeded"}
    (line,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert json.loads(line) == {
        "event": "run-cost",
        "pipeline": "Churn-Preprod",
        "date": DAY.isoformat(),
        "cost_usd": cost["total_usd"],
        "cost_per_1000_rows": cost["cost_per_1000_rows"],
    }
    # the event again: the marker is complete, nothing is recorded or printed twice
    with Stubber(sagemaker) as stubber:
        stubber.add_response(
            "list_pipeline_parameters_for_execution",
            {"PipelineParameters": parameters},
            {"PipelineExecutionArn": EXECUTION},
        )
        assert outcome.record_outcome(s3, sagemaker, config, EXECUTION)["recorded"] is False
    assert capsys.readouterr().out == ""


def test_against_the_emulator_a_completed_marker_says_why_its_cost_is_unknown(
    aws: Emulator,
) -> None:
    """The function's own clients against moto: the marker is completed all the same, its
    cost null with moto's missing ListPipelineExecutionSteps named; no cost line."""
    sandbox.create_bucket(aws, None, BUCKET)
    sagemaker = boto3.client("sagemaker")
    create_empty_pipeline(sagemaker, "churn-preprod")
    arn = sagemaker.start_pipeline_execution(
        PipelineName="churn-preprod",
        ClientRequestToken="a-start-token-of-32-characters-at-least",
        PipelineParameters=[{"Name": "InputDataUrl", "Value": LAYOUT.input_uri(DAY)}],
    )["PipelineExecutionArn"]
    s3 = boto3.client("s3")
    partitions.write_marker(
        s3, LAYOUT.marker_uri(DAY), partitions.started_marker(LAYOUT, DAY, arn), None
    )
    config = outcome.Config(LAYOUT, None, prices.load_table())
    assert outcome.record_outcome(s3, sagemaker, config, arn)["recorded"] is True
    recorded = partitions.read_marker(s3, LAYOUT.marker_uri(DAY))
    assert recorded is not None and recorded["status"] == "Succeeded"
    assert recorded["cost"]["total_usd"] is None
    assert "ListPipelineExecutionSteps" in recorded["cost"]["unknown"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{", "INSTANCE_PRICES is not JSON"),
        ('["ml.m5.xlarge"]', "INSTANCE_PRICES: instance_prices must be an object like"),
        ('{"m5.xlarge": 0.2}', "'m5.xlarge' is not an instance type like ml.m5.xlarge"),
        ('{"ml.m5.xlarge": 0}', "ml.m5.xlarge must be a price in USD per instance-hour, more"),
        ('{"ml.m5.xlarge": "0.2"}', "ml.m5.xlarge must be a price in USD per instance-hour"),
    ],
)
def test_the_functions_refuse_bad_instance_prices(value: str, message: str) -> None:
    environ = {
        "INPUT_DATA_URL": LAYOUT.input_data_url,
        "OUTPUT_DATA_URL": OUTPUT,
        "PARTITION_FORMAT": partitions.DEFAULT_FORMAT,
        "INSTANCE_PRICES": value,
    }
    with pytest.raises(ConfigError, match=message):
        outcome.Config.from_environment(environ)


def test_a_local_backfill_records_each_days_cost_and_projects_the_next_from_it(
    aws: Emulator,
    stage: dict,  # noqa: F811 - the fixture
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One day scored locally: its marker's cost is its record's (the executor's jobs, the
    stage's instance types and counts, the table's prices), per 1,000 of its rows. The next
    backfill is projected from that day and refused above max_backfill_cost_usd (exit 2,
    nothing started) unless --yes."""
    in_preprod(aws, monkeypatch)
    tfvars = stage["tfvars"]
    put_day(aws, tfvars, DAY_1, "batch.csv", _rows(tmp_path, 60))
    local = ["--local", "--work-dir", str(tmp_path / "runs")]
    assert backfill(stage, *local) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "projected cost: " in out and "the capacity plan's estimate" in out
    scored = marker(aws, tfvars, DAY_1)
    cost = scored["cost"]
    assert [s["step"] for s in cost["steps"]] == ["Preprocess", "BatchTransform", "Publish"]
    kinds = {s["step"]: (s["instance_type"], s["instance_count"]) for s in cost["steps"]}
    assert kinds["Preprocess"] == (
        tfvars["processing_instance_type"],
        tfvars["processing_instance_count"],
    )
    assert kinds["BatchTransform"] == (
        tfvars["transform_instance_type"],
        tfvars["transform_instance_count"],
    )
    table = prices.load_table()
    for step in cost["steps"]:
        assert step["seconds"] > 0
        assert step["usd"] == round(
            step["instance_seconds"] * prices.price_per_hour(step["instance_type"], step["job"],
                                                             table) / 3600, 6
        )  # fmt: skip
    assert cost["total_usd"] > 0 and cost["rows_scored"] == scored["rows_scored"]
    assert cost["cost_per_1000_rows"] == round(cost["total_usd"] * 1000 / scored["rows_scored"], 6)
    assert f"{DAY_1}: Succeeded (" in out and "cost USD " in out and "unverified" in out

    # the next days: projected at the scored day's cost, refused above the stage's limit
    days = [DAY_1 + timedelta(days=n) for n in (1, 2)]
    for day in days:
        put_day(aws, tfvars, day, "batch.csv", _rows(tmp_path, 20))
    limited = {**tfvars, "max_backfill_cost_usd": cost["total_usd"]}
    stage["path"].write_text(json.dumps(limited))
    last = days[-1]
    assert backfill(stage, *local, first=days[0], last=last) == 2
    captured = capsys.readouterr()
    projected = f"USD {2 * cost['total_usd']:.4f} for 2 day(s)"
    assert f"projected cost: {projected} to score" in captured.out
    assert "the mean of the stage's 1 newest scored day(s) with a cost" in captured.out
    assert captured.err == (
        f"run_pipeline: the backfill's projected cost, {projected}, is above the stage's "
        f"max_backfill_cost_usd (USD {cost['total_usd']:g}): add --yes to run it anyway, or "
        "ask for fewer days\n"
    )
    s3 = aws.client("s3", "preprod")
    assert [partitions.read_marker(s3, layout(tfvars).marker_uri(d)) for d in days] == [None] * 2
    # one day fits the limit; --yes runs above it
    assert backfill(stage, *local, first=days[0]) == 0
    assert backfill(stage, *local, "--yes", first=days[1]) == 0
    assert [marker(aws, tfvars, d)["status"] for d in days] == ["Succeeded"] * 2


def _rows(tmp_path: Path, rows: int) -> bytes:
    from examples.breast_cancer import data

    return data.generate(tmp_path / f"rows-{rows}.csv", rows=rows, seed=rows).path.read_bytes()


def test_a_backfill_with_no_scored_day_is_projected_by_the_capacity_plan(
    aws: Emulator,
    stage: dict,  # noqa: F811 - the fixture
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No marker has a cost yet: each day's input bytes, the capacity plan's rates and the
    stage's types and counts; a limit of 0 refuses it before any run or marker."""
    in_preprod(aws, monkeypatch)
    tfvars = stage["tfvars"]
    body = _rows(tmp_path, 200)
    days = [DAY_1, DAY_1 + timedelta(days=1)]
    for day in days:
        put_day(aws, tfvars, day, "batch.csv", body)
    s3 = aws.client("s3", "preprod")
    projection = backfill_cost.project(s3, tfvars, days, force=False)
    per_day = backfill_cost.planned_day_cost(s3, tfvars, layout(tfvars).input_uri(DAY_1))
    assert per_day is not None and per_day > 0
    assert (projection.days, projection.usd) == (2, pytest.approx(2 * per_day))
    stage["path"].write_text(json.dumps({**tfvars, "max_backfill_cost_usd": 0}))
    assert backfill(stage, "--local", first=days[0], last=days[1]) == 2
    captured = capsys.readouterr()
    assert "no scored day has a cost yet: the capacity plan's estimate" in captured.out
    assert "is above the stage's max_backfill_cost_usd (USD 0)" in captured.err
    assert [partitions.read_marker(s3, layout(tfvars).marker_uri(d)) for d in days] == [None] * 2
    # an unknown price with a limit set: not projected, refused all the same
    unpriced = {**tfvars, "processing_instance_type": "ml.r5.large", "max_backfill_cost_usd": 5}
    refused = backfill_cost.project(s3, unpriced, days, force=False)
    assert refused.usd is None and "set instance_prices" in refused.basis
    with pytest.raises(backfill_cost.CostRefused, match="cannot be projected"):
        backfill_cost.check_limit(refused, unpriced, assume_yes=False)
    backfill_cost.check_limit(refused, unpriced, assume_yes=True)


def test_the_report_shows_the_runs_cost() -> None:
    usages = [
        run_cost.JobUsage("Preprocess", "processing", "j1", "ml.m5.xlarge", 2, 30.0),
        run_cost.JobUsage("BatchTransform", "transform", "j2", "ml.r5.large", 1, 10.0),
    ]
    cost = run_cost.cost(usages, prices.load_table(), 1000)
    page = render(RunReport("run", {"Steps": [], "Cost": cost}, summaries=[]))
    assert "<h2>Cost</h2>" in page
    assert "<td>2 x ml.m5.xlarge</td><td>30.000</td><td>60.0</td>" in page
    assert f"<td>{cost['steps'][0]['usd']:.6f}</td>" in page
    assert "no transform price for ml.r5.large" in page  # the unknown step, and why
    assert "(unverified) from https://aws.amazon.com/sagemaker/pricing/" in page
    assert "<th>total</th><td colspan=5>unknown USD</td>" in page
    assert "<h2>Cost</h2>" not in render(RunReport("run", {"Steps": []}, summaries=[]))
