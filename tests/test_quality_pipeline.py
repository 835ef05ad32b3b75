"""The model-quality pipeline: its definition, built offline, and a day evaluated by the local
executor against the emulator (the job's script in the image's runtime twin)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn import metrics

from local_mode import executor, sandbox
from local_mode.emulator import REGION, Emulator
from pipelines.batch_inference import evaluate, quality_pipeline

BUCKET = "quality-stage"
ROLE = "arn:aws:iam::111111111111:role/sagemaker-execution"


def definition(registered: bool = True) -> dict[str, Any]:
    pipeline = quality_pipeline.get_quality_pipeline(
        REGION, ROLE, BUCKET, "churn-preprod-batch-inference-quality",
        "churn-preprod-batch-inference", "churn-preprod",
        evaluate_code_url=f"s3://{BUCKET}/code/evaluate.py", id_column="customer_id",
        threshold=0.6, max_quality_drop=0.1, kms_key_id="arn:aws:kms:eu-west-1:1:key/k",
        registered_quality_url=f"s3://{BUCKET}/model/quality.json" if registered else None,
    )  # fmt: skip
    return json.loads(pipeline.definition())


def test_the_definition_evaluates_one_day_network_isolated_named_after_the_scoring_pipeline() -> (
    None
):
    found = definition()
    (step,) = found["Steps"]
    assert (step["Name"], step["Type"]) == ("Evaluate", "Processing")
    arguments = step["Arguments"]
    assert arguments["ProcessingJobName"] == "churn-preprod-evaluate"
    assert arguments["NetworkConfig"]["EnableNetworkIsolation"] is True
    assert arguments["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 1
    assert arguments["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"].endswith("key/k")
    container = arguments["AppSpecification"]["ContainerArguments"]
    flags = dict(zip(container[::2], container[1::2], strict=True))
    # the metric line names the scoring pipeline: the stage's filters and alarm watch it
    assert flags["--pipeline-name"] == "churn-preprod-batch-inference"
    assert (flags["--id-column"], flags["--threshold"], flags["--task"]) == (
        "customer_id", "0.6", "classification",
    )  # fmt: skip
    assert flags["--execution-id"] == {"Get": "Parameters.ScoredExecutionId"}
    assert flags["--registered"] == quality_pipeline.REGISTERED_DIR
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in arguments["ProcessingInputs"]}
    assert inputs == {
        "labels": {"Get": "Parameters.LabelsUrl"},
        "predictions": {"Get": "Parameters.PredictionsUrl"},
        "registered": f"s3://{BUCKET}/model/quality.json",
        "code": f"s3://{BUCKET}/code/evaluate.py",
    }
    parameters = {p["Name"]: p.get("DefaultValue") for p in found["Parameters"]}
    assert parameters["MaxQualityDrop"] == 0.1
    assert (
        "--registered"
        not in definition(registered=False)["Steps"][0]["Arguments"]["AppSpecification"][
            "ContainerArguments"
        ]
    )


def put(s3: Any, key: str, body: bytes | str) -> str:
    s3.put_object(Bucket=BUCKET, Key=key, Body=body.encode() if isinstance(body, str) else body)
    return f"s3://{BUCKET}/{key}"


@pytest.fixture
def stage(aws: Emulator) -> Any:
    """The stage bucket holding the job's code, the package's registered quality and a day's
    predictions table partition (two executions' rows: exec-2 is the day's Succeeded one)."""
    s3 = aws.client("s3")
    sandbox.create_bucket(aws, None, BUCKET)
    put(s3, "code/evaluate.py", Path(evaluate.__file__).read_bytes())
    registered = {"binary_classification_metrics": {"auc": {"value": 0.99}}}
    put(s3, "model/quality.json", json.dumps(registered))
    rng = np.random.default_rng(11)
    truth = rng.integers(0, 2, 600)
    scores = np.round(np.clip(truth * 0.4 + rng.random(600) * 0.6, 0, 1), 3)
    rows = "".join(f"c{i},{s},4,exec-2\nc{i},{1 - s},3,exec-1\n" for i, s in enumerate(scores))
    header = "customer_id,prediction,model_version,execution_id\n"
    put(s3, "output/table/day=2026-11-01/exec-2-algo-1-00001.csv", header + rows)
    labels = "".join(f"c{i},{t}\n" for i, t in enumerate(truth) if i % 10)
    put(s3, "labels/dt=2026-11-01/part-0.csv", "customer_id,label\n" + labels)
    return s3, truth, scores


def day_parameters() -> dict[str, str]:
    return {
        "LabelsUrl": f"s3://{BUCKET}/labels/dt=2026-11-01/",
        "PredictionsUrl": f"s3://{BUCKET}/output/table/day=2026-11-01/",
        "ScoredExecutionId": "exec-2",
        "PredictionDay": "2026-11-01",
        "QualityOutputUrl": f"s3://{BUCKET}/output/dt=2026-11-01/quality",
    }


def test_the_local_executor_evaluates_a_day_against_the_emulator(
    aws: Emulator, stage: Any, tmp_path: Path
) -> None:
    """The deployed definition, run as SageMaker would: the day's labels (every tenth id
    unlabelled) joined with exec-2's rows; the result lands under the execution's folder."""
    s3, truth, scores = stage
    record = executor.execute(
        definition(), day_parameters(), session=aws.session(), work_dir=tmp_path,
        execution_id="quality00001", log=lambda _: None,
    )  # fmt: skip
    assert record["PipelineExecutionStatus"] == "Succeeded", record["Steps"][0].get("FailureReason")
    key = f"output/dt=2026-11-01/quality/quality00001/{evaluate.RESULT}"
    result = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    labelled = np.arange(600) % 10 != 0
    assert result["metrics"]["auc"] == pytest.approx(
        metrics.roc_auc_score(truth[labelled], scores[labelled])
    )
    assert result["metrics"]["accuracy"] == pytest.approx(
        metrics.accuracy_score(truth[labelled], scores[labelled] >= 0.6)
    )
    assert result["coverage"]["matched"] == 540
    assert result["coverage"]["predictions_without_label"] == 60
    assert result["registered"] == 0.99
    assert result["verdict"] == ("degraded" if result["quality_drop"] > 0.1 else "ok")


def test_bad_labels_fail_the_execution_with_the_jobs_reason(
    aws: Emulator, stage: Any, tmp_path: Path
) -> None:
    s3, _, _ = stage
    put(s3, "labels/dt=2026-11-01/part-1.csv", "customer_id,label\nc1,maybe\n")
    record = executor.execute(
        definition(), day_parameters(), session=aws.session(), work_dir=tmp_path,
        execution_id="quality00002", log=lambda _: None,
    )  # fmt: skip
    assert record["PipelineExecutionStatus"] == "Failed"
    assert "part-1.csv: a label that is not a number" in record["Steps"][0]["FailureReason"]
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="output/dt=2026-11-01/quality/")
    assert listed.get("KeyCount", 0) == 0


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"quality_task": "ranking"}, "the package's quality_task 'ranking' is not "),
        ({"quality_threshold": "1.5"}, "the package's quality_threshold '1.5' is not a number "),
        ({"quality_threshold": "half"}, "the package's quality_threshold 'half' is not a number "),
    ],
)
def test_a_package_quality_declaration_build_py_cannot_use_is_refused(
    metadata: dict[str, str], message: str
) -> None:
    from promotion.errors import UsageError
    from promotion.quality_files import package_quality

    with pytest.raises(UsageError, match=f"^{message}"):
        package_quality({"CustomerMetadataProperties": metadata})  # type: ignore[typeddict-item]


def test_a_package_declares_its_task_threshold_and_score_column() -> None:
    from promotion.quality_files import package_quality, quality_pipeline_name

    assert package_quality({}) == {  # type: ignore[typeddict-item]
        "task": "classification", "threshold": 0.5, "score_column": "prediction",
    }  # fmt: skip
    declared = {"quality_task": "regression", "quality_score_column": "eta_minutes"}
    assert package_quality({"CustomerMetadataProperties": declared})["task"] == "regression"  # type: ignore[typeddict-item]
    assert quality_pipeline_name("churn-prod-batch-inference") == (
        "churn-prod-batch-inference-quality"
    )
    assert len(quality_pipeline_name("p" * 256)) == 256
