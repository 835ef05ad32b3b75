"""Local mode: Processing and Transform semantics, one option at a time, against the emulator."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path
from typing import Any

import pytest

from common.stage_model import STAGE_MODEL_ENVIRONMENT
from local_mode import executor, sandbox
from local_mode.emulator import Emulator
from tests.registry import IMAGE

BUCKET = "local-mode"
# what a model of the scikit-learn image needs to find its handlers in the artifact's code/
HANDLERS = {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"}

MODEL_SCRIPT = textwrap.dedent(
    """
    import json, os

    def model_fn(model_dir):
        with open(os.path.join(model_dir, "model.json")) as handle:
            return json.load(handle)

    def input_fn(data, content_type):
        if content_type == "application/json":
            return [json.loads(line) for line in data.splitlines() if line]
        return [[float(v) for v in line.split(",")] for line in data.splitlines() if line]

    def predict_fn(rows, model):
        print(f"scoring {len(rows)} rows")  # a handler's log line: the job's log, not stdout
        if os.environ.get("METRICS_TAG"):
            tag = os.environ["METRICS_TAG"]
            print(json.dumps({"event": "scored", "tag": tag, "rows": len(rows)}))
        scores = []
        for row in rows:
            if model.get("fail_on") in row:
                raise ValueError(f"cannot score {row}")
            scores.append(sum(w * v for w, v in zip(model["weights"], row)))
        return {"scores": scores, "batch": len(rows)}

    def output_fn(prediction, accept):
        if accept == "application/json":
            return "".join(json.dumps([s]) + "\\n" for s in prediction["scores"])
        if accept == "text/x-batch-size":
            return "".join(f"{prediction['batch']}\\n" for _ in prediction["scores"])
        return "".join(f"{s:g}\\n" for s in prediction["scores"])
    """
)


@pytest.fixture
def s3(aws: Emulator):
    client = aws.client("s3")
    sandbox.create_bucket(aws, None, BUCKET)
    return client


def put(s3, key: str, body: bytes) -> str:
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    return f"s3://{BUCKET}/{key}"


def get(s3, uri: str) -> bytes:
    bucket, key = uri[5:].split("/", 1)
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def keys(s3, prefix: str) -> list[str]:
    listing = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def model_artifact(s3, weights: list[float], fail_on: float | None = None, name: str = "m") -> str:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path, text in (
            ("model.json", json.dumps({"weights": weights, "fail_on": fail_on})),
            ("code/inference.py", MODEL_SCRIPT),
        ):
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return put(s3, f"models/{name}/model.tar.gz", buffer.getvalue())


@pytest.fixture
def model(aws: Emulator, s3) -> str:
    """A SageMaker Model whose prediction is ``2*x1 + 10*x2`` of the (filtered) record."""
    url = model_artifact(s3, [2.0, 10.0], fail_on=-999.0)
    aws.client("sagemaker").create_model(
        ModelName="scorer",
        ExecutionRoleArn="arn:aws:iam::123456789012:role/exec",
        PrimaryContainer={
            "Image": IMAGE,
            "ModelDataUrl": url,
            "Environment": {**HANDLERS, **STAGE_MODEL_ENVIRONMENT},
        },
    )
    return "scorer"


def transform_definition(**changes) -> dict:
    arguments = {
        "ModelName": "scorer",
        "TransformInput": {
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/in/"}
            },
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        "TransformOutput": {
            "S3OutputPath": {
                "Std:Join": {
                    "On": "/",
                    "Values": [f"s3://{BUCKET}/out", {"Get": "Execution.PipelineExecutionId"}],
                }
            },
            "Accept": "text/csv",
            "AssembleWith": "Line",
        },
        "TransformResources": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": 6,
    }
    for path, value in changes.items():
        node: dict[str, Any] = arguments
        *parents, leaf = path.split(".")
        for name in parents:
            node = node.setdefault(name, {})
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return {
        "Version": "2020-12-01",
        "Parameters": [],
        "Steps": [{"Name": "Score", "Type": "Transform", "Arguments": arguments}],
    }


def run(aws: Emulator, definition: dict, tmp_path: Path, parameters: dict | None = None) -> dict:
    return executor.execute(
        definition,
        parameters or {},
        session=aws.session(),
        work_dir=tmp_path,
        execution_id="exec00000001",
        log=lambda _: None,
    )


CSV_INPUT = b"a,1,2\nb,3,4\nc,5,6\n"


def test_csv_join_and_filters_keep_the_id_with_its_prediction(aws, s3, model, tmp_path) -> None:
    put(s3, "in/part-1.csv", CSV_INPUT)
    put(s3, "in/nested/part-2.csv", b"d,0.5,0\n")
    definition = transform_definition(
        DataProcessing={"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-1]"}
    )
    record = run(aws, definition, tmp_path)
    assert record["PipelineExecutionStatus"] == "Succeeded", record["Steps"][0].get("FailureReason")
    assert keys(s3, "out/") == [
        "out/exec00000001/nested/part-2.csv.out",
        "out/exec00000001/part-1.csv.out",
    ]
    assert get(s3, f"s3://{BUCKET}/out/exec00000001/part-1.csv.out") == b"a,22\nb,46\nc,70\n"
    assert get(s3, f"s3://{BUCKET}/out/exec00000001/nested/part-2.csv.out") == b"d,1\n"
    (step,) = record["Steps"]
    assert step["StepStatus"] == "Succeeded"
    assert step["Outcome"]["RecordsIn"] == 4 and step["Outcome"]["RecordsOut"] == 4
    assert step["Metadata"]["TransformJob"]["Arn"].endswith(
        "transform-job/pipelines-exec00000001-Score"
    )


def test_join_without_output_filter_appends_the_prediction(aws, s3, model, tmp_path) -> None:
    put(s3, "in/x.csv", CSV_INPUT)
    definition = transform_definition(
        DataProcessing={"InputFilter": "$[1:]", "JoinSource": "Input"}
    )
    assert run(aws, definition, tmp_path)["PipelineExecutionStatus"] == "Succeeded"
    assert get(s3, f"s3://{BUCKET}/out/exec00000001/x.csv.out") == b"a,1,2,22\nb,3,4,46\nc,5,6,70\n"


def test_multi_record_batches_respect_the_payload_limit(aws, s3, model, tmp_path) -> None:
    row = b"1.000000000," + b"2" * 60 + b"\n"  # ~72 bytes per record
    put(s3, "in/big.csv", row * 40_000)  # ~2.9 MB
    definition = transform_definition(
        MaxPayloadInMB=1, **{"TransformOutput.Accept": "text/x-batch-size"}
    )
    assert run(aws, definition, tmp_path)["PipelineExecutionStatus"] == "Succeeded"
    sizes = [int(v) for v in get(s3, f"s3://{BUCKET}/out/exec00000001/big.csv.out").split()]
    assert len(sizes) == 40_000
    per_request = 2**20 // len(row)
    assert max(sizes) == per_request  # as many records as fit in 1 MB, never more
    assert sum(1 for _ in set(sizes)) <= 2


def test_single_record_strategy_sends_one_record_per_request(aws, s3, model, tmp_path) -> None:
    put(s3, "in/x.csv", b"1,1\n2,2\n3,3\n")
    definition = transform_definition(
        BatchStrategy="SingleRecord", **{"TransformOutput.Accept": "text/x-batch-size"}
    )
    assert run(aws, definition, tmp_path)["PipelineExecutionStatus"] == "Succeeded"
    assert get(s3, f"s3://{BUCKET}/out/exec00000001/x.csv.out") == b"1\n1\n1\n"


def test_split_none_sends_the_whole_object_and_assemble_none_concatenates(
    aws, s3, model, tmp_path
) -> None:
    put(s3, "in/x.csv", b"1,1\n2,2\n")
    definition = transform_definition(
        **{
            "TransformInput.SplitType": "None",
            "TransformOutput.AssembleWith": "None",
            "TransformOutput.Accept": "text/x-batch-size",
        }
    )
    assert run(aws, definition, tmp_path)["PipelineExecutionStatus"] == "Succeeded"
    assert get(s3, f"s3://{BUCKET}/out/exec00000001/x.csv.out") == b"2\n2\n"


def test_json_records_and_accept(aws, s3, model, tmp_path) -> None:
    put(s3, "in/x.jsonl", b"[1, 2]\n[3, 4]\n")
    definition = transform_definition(
        DataProcessing={"JoinSource": "Input"},
        **{
            "TransformInput.ContentType": "application/json",
            "TransformOutput.Accept": "application/json",
        },
    )
    assert run(aws, definition, tmp_path)["PipelineExecutionStatus"] == "Succeeded"
    assert get(s3, f"s3://{BUCKET}/out/exec00000001/x.jsonl.out") == b"[1, 2, 22.0]\n[3, 4, 46.0]\n"


def test_gzip_input(aws, s3, model, tmp_path) -> None:
    put(s3, "in/x.csv.gz", gzip.compress(b"1,1\n2,0\n"))
    definition = transform_definition(**{"TransformInput.CompressionType": "Gzip"})
    assert run(aws, definition, tmp_path)["PipelineExecutionStatus"] == "Succeeded"
    assert get(s3, f"s3://{BUCKET}/out/exec00000001/x.csv.gz.out") == b"12\n4\n"


def test_a_record_the_model_rejects_fails_the_step_with_its_position(
    aws, s3, model, tmp_path
) -> None:
    put(s3, "in/x.csv", b"1,1\n2,2\n-999,3\n4,4\n")
    record = run(aws, transform_definition(), tmp_path)
    assert record["PipelineExecutionStatus"] == "Failed"
    reason = record["Steps"][0]["FailureReason"]
    assert f"record 3 of s3://{BUCKET}/in/x.csv: ValueError: cannot score [-999.0, 3.0]" == reason
    assert keys(s3, "out/") == []


def test_a_record_too_large_for_the_payload_fails(aws, s3, model, tmp_path) -> None:
    put(s3, "in/x.csv", b"1," + b"1" * (2 * 2**20) + b"\n")
    record = run(aws, transform_definition(MaxPayloadInMB=1), tmp_path)
    assert "record 1 of" in record["Steps"][0]["FailureReason"]
    assert "over MaxPayloadInMB (1)" in record["Steps"][0]["FailureReason"]


def test_model_from_a_model_package(aws, s3, tmp_path) -> None:
    """ModelName -> the model's package -> ModelDataUrl, with the package's Environment."""
    url = model_artifact(s3, [1.0, 1.0], name="pkg")
    sagemaker = aws.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName="g")
    arn = sagemaker.create_model_package(
        ModelPackageGroupName="g",
        ModelApprovalStatus="Approved",
        InferenceSpecification={
            "Containers": [
                {
                    "Image": IMAGE,
                    "ModelDataUrl": url,
                    "Environment": HANDLERS,
                }
            ],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    )["ModelPackageArn"]
    sagemaker.create_model(
        ModelName="scorer",
        ExecutionRoleArn="arn:aws:iam::123456789012:role/exec",
        Containers=[{"ModelPackageName": arn, "Environment": STAGE_MODEL_ENVIRONMENT}],
    )
    put(s3, "in/x.csv", b"1,2\n")
    assert run(aws, transform_definition(), tmp_path)["PipelineExecutionStatus"] == "Succeeded"
    assert get(s3, f"s3://{BUCKET}/out/exec00000001/x.csv.out") == b"3\n"


def test_several_instances_share_the_objects(aws, s3, model, tmp_path) -> None:
    for i in range(3):
        put(s3, f"in/part-{i}.csv", f"{i},1\n".encode())
    record = run(aws, transform_definition(**{"TransformResources.InstanceCount": 2}), tmp_path)
    assert record["PipelineExecutionStatus"] == "Succeeded", record["Steps"][0].get("FailureReason")
    assert [get(s3, f"s3://{BUCKET}/out/exec00000001/part-{i}.csv.out") for i in range(3)] == [
        b"10\n",
        b"12\n",
        b"14\n",
    ]
    assert sorted(
        p.name for p in tmp_path.joinpath("Score").iterdir() if p.name.startswith("algo")
    ) == ["algo-1", "algo-2"]
    # objects dealt in turn (ShardedByS3Key's way): 0 and 2 to the first, 1 to the second
    outcome = record["Steps"][0]["Outcome"]
    assert outcome["Instances"] == {
        "algo-1": {"Objects": 2, "RecordsIn": 2},
        "algo-2": {"Objects": 1, "RecordsIn": 1},
    }
    assert [(o["source"].rsplit("/", 1)[1], o["instance"]) for o in outcome["Objects"]] == [
        ("part-0.csv", "algo-1"), ("part-2.csv", "algo-1"), ("part-1.csv", "algo-2"),
    ]  # fmt: skip


@pytest.mark.parametrize("instances", [1, 2])
def test_the_handlers_see_the_jobs_environment_and_their_metric_lines_are_kept(
    aws, s3, model, tmp_path, capsys, monkeypatch, instances: int
) -> None:
    """CreateTransformJob's Environment reaches the handlers (over the model's), as in the
    container; the metric lines they print are the step's Outcome.Metrics, and nothing they
    print leaks into the executor's output or environment."""
    monkeypatch.delenv("METRICS_TAG", raising=False)
    for i in range(3):
        put(s3, f"in/part-{i}.csv", f"{i},1\n{i},2\n".encode())
    definition = transform_definition(
        **{"Environment": {"METRICS_TAG": "t-1"}, "TransformResources.InstanceCount": instances}
    )
    record = run(aws, definition, tmp_path)
    assert record["PipelineExecutionStatus"] == "Succeeded", record["Steps"][0].get("FailureReason")
    metrics = record["Steps"][0]["Outcome"]["Metrics"]
    assert [(m["event"], m["tag"]) for m in metrics] == [("scored", "t-1")] * 3  # per request
    assert sum(m["rows"] for m in metrics) == 6
    assert "METRICS_TAG" not in os.environ
    assert "scoring" not in capsys.readouterr().out
    # without the variable the handlers print no metric line
    record = run(aws, transform_definition(), tmp_path / "plain")
    assert record["Steps"][0]["Outcome"]["Metrics"] == []


# ------------------------------------ MaxConcurrentTransforms, timeout and retries (#34)

# A model that reports, on each record, how many requests were in the container at once while
# it served it (a file per request in flight), after PROBE_SLEEP seconds; it counts its calls
# and fails the first PROBE_FAILURES of them, as a transient fault would.
PROBE_SCRIPT = textwrap.dedent(
    """
    import os, time, uuid

    def model_fn(model_dir):
        return None

    def input_fn(data, content_type):
        return [line for line in data.splitlines() if line]

    def predict_fn(rows, model):
        probe = os.environ["PROBE_DIR"]
        with open(os.path.join(probe, "calls"), "a") as calls:
            calls.write("x")
        mine = os.path.join(probe, "inflight", uuid.uuid4().hex)
        open(mine, "w").close()
        try:
            time.sleep(float(os.environ.get("PROBE_SLEEP", "0.2")))
            seen = len(os.listdir(os.path.join(probe, "inflight")))
        finally:
            os.remove(mine)
        failures = int(os.environ.get("PROBE_FAILURES", "0"))
        if os.path.getsize(os.path.join(probe, "calls")) <= failures:
            raise ValueError("a transient fault")
        return seen, rows

    def output_fn(prediction, accept):
        seen, rows = prediction
        return "".join(f"{seen}\\n" for _ in rows)
    """
)


@pytest.fixture
def probe(aws: Emulator, s3, tmp_path: Path) -> Path:
    """The ``prober`` model (PROBE_SCRIPT) and the folder it reports in."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        data = PROBE_SCRIPT.encode()
        info = tarfile.TarInfo("code/inference.py")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    aws.client("sagemaker").create_model(
        ModelName="prober",
        ExecutionRoleArn="arn:aws:iam::123456789012:role/exec",
        PrimaryContainer={
            "Image": IMAGE,
            "ModelDataUrl": put(s3, "models/prober/model.tar.gz", buffer.getvalue()),
            "Environment": {**HANDLERS, **STAGE_MODEL_ENVIRONMENT},
        },
    )
    folder = tmp_path / "probe"
    (folder / "inflight").mkdir(parents=True)
    return folder


def probe_definition(probe: Path, settings: dict[str, str], **changes: Any) -> dict:
    """A Transform of the prober, every request checked against botocore's model."""
    from local_mode.expressions import Context, resolve
    from tests.provider_requests import Request, problems

    definition = transform_definition(
        ModelName="prober", Environment={"PROBE_DIR": str(probe), **settings}, **changes
    )
    (step,) = definition["Steps"]
    context = Context(parameters={}, execution={"PipelineExecutionId": "exec00000001"})
    request = {**resolve(step["Arguments"], context), "TransformJobName": "score-exec00000001"}
    assert problems(Request("sagemaker", "CreateTransformJob", request)) == []
    return definition


def calls(probe: Path) -> int:
    return (probe / "calls").stat().st_size


@pytest.mark.parametrize(("concurrent", "in_flight"), [(None, 1), (1, 1), (3, 3)])
def test_an_instance_keeps_max_concurrent_transforms_requests_in_flight(
    aws, s3, probe: Path, tmp_path: Path, concurrent: int | None, in_flight: int
) -> None:
    """Never more than MaxConcurrentTransforms requests at once per instance, and that
    many whenever there is work (1 when unset, as for a container without
    /execution-parameters), from one object or several; answers stay in record order."""
    for name in ("a", "b"):
        put(s3, f"in/{name}.csv", b"".join(f"{name}{i},1\n".encode() for i in range(6)))
    definition = probe_definition(
        probe, {}, BatchStrategy="SingleRecord", MaxConcurrentTransforms=concurrent
    )
    record = run(aws, definition, tmp_path / "run")
    assert record["PipelineExecutionStatus"] == "Succeeded", record["Steps"][0].get("FailureReason")
    seen = [
        [int(v) for v in get(s3, f"s3://{BUCKET}/out/exec00000001/{name}.csv.out").split()]
        for name in ("a", "b")
    ]
    assert [len(answers) for answers in seen] == [6, 6]  # one answer per record
    assert max(max(answers) for answers in seen) == in_flight
    assert calls(probe) == 12


def test_the_answers_keep_their_records_order_with_requests_in_flight(
    aws, s3, model, tmp_path
) -> None:
    put(s3, "in/x.csv", b"".join(f"{i},1\n".encode() for i in range(40)))
    definition = transform_definition(
        BatchStrategy="SingleRecord",
        MaxConcurrentTransforms=4,
        DataProcessing={"JoinSource": "Input"},
    )
    assert run(aws, definition, tmp_path)["PipelineExecutionStatus"] == "Succeeded"
    expected = b"".join(f"{i},1,{2 * i + 10}\n".encode() for i in range(40))
    assert get(s3, f"s3://{BUCKET}/out/exec00000001/x.csv.out") == expected


@pytest.mark.parametrize("serving", ["container", "in-process"])
def test_a_request_over_the_invocation_timeout_fails_the_step_naming_the_setting(
    aws, s3, probe: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, serving: str
) -> None:
    """The container's answer is given up at the timeout; a handler in this process cannot
    be interrupted, so its late answer is dropped instead: the same failure either way."""
    monkeypatch.setenv("LOCAL_SERVING", serving)
    put(s3, "in/x.csv", b"a,1\nb,2\n")
    definition = probe_definition(
        probe,
        {"PROBE_SLEEP": "3" if serving == "container" else "1.2"},
        ModelClientConfig={"InvocationsTimeoutInSeconds": 1, "InvocationsMaxRetries": 1},
    )
    record = run(aws, definition, tmp_path / "run")
    assert record["PipelineExecutionStatus"] == "Failed"
    assert record["Steps"][0]["FailureReason"] == (
        f"records 1-2 of s3://{BUCKET}/in/x.csv: no answer within 1 s "
        "(ModelClientConfig.InvocationsTimeoutInSeconds) in 2 attempt(s) (InvocationsMaxRetries "
        "+ 1): send fewer records per request (MaxPayloadInMB) or allow more time"
    )
    assert calls(probe) == 2  # the request, then its one retry
    assert keys(s3, "out/") == []


@pytest.mark.parametrize(
    ("retries", "outcome", "sent"),
    [
        (2, "Succeeded", 3),  # two faults, then the answer: within the retries
        # one fault too many: the retries are spent, and each record alone then answers
        (1, f"records 1-2 of s3://{BUCKET}/in/x.csv fail together: ", 4),
    ],
)
def test_a_failed_request_is_sent_again_up_to_the_max_retries(
    aws, s3, probe: Path, tmp_path: Path, retries: int, outcome: str, sent: int
) -> None:
    put(s3, "in/x.csv", b"a,1\nb,2\n")
    definition = probe_definition(
        probe,
        {"PROBE_FAILURES": "2", "PROBE_SLEEP": "0"},
        ModelClientConfig={"InvocationsMaxRetries": retries},
    )
    record = run(aws, definition, tmp_path / "run")
    if outcome == "Succeeded":
        assert record["PipelineExecutionStatus"] == "Succeeded"
        assert get(s3, f"s3://{BUCKET}/out/exec00000001/x.csv.out") == b"1\n1\n"
    else:
        assert record["Steps"][0]["FailureReason"].startswith(outcome)
        assert "a transient fault" in record["Steps"][0]["FailureReason"]
    assert calls(probe) == sent


def test_a_job_environment_that_is_not_names_to_strings_fails_the_step(
    aws, s3, model, tmp_path
) -> None:
    put(s3, "in/part-1.csv", CSV_INPUT)
    record = run(aws, transform_definition(**{"Environment": {"N": 5}}), tmp_path)
    assert record["PipelineExecutionStatus"] == "Failed"
    assert "Environment must map variable names to strings" in record["FailureReason"]


def test_missing_model_handler_and_unsupported_options_fail_clearly(aws, s3, tmp_path) -> None:
    url = put(s3, "models/bad/model.tar.gz", gzip.compress(b""))
    aws.client("sagemaker").create_model(
        ModelName="scorer",
        ExecutionRoleArn="arn:aws:iam::123456789012:role/exec",
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": url},
    )
    put(s3, "in/x.csv", b"1,2\n")
    record = run(aws, transform_definition(), tmp_path)
    assert "cannot unpack the model artifact" in record["Steps"][0]["FailureReason"]
    record = run(
        aws, transform_definition(**{"TransformInput.SplitType": "RecordIO"}), tmp_path / "2"
    )
    assert (
        record["Steps"][0]["FailureReason"] == "SplitType RecordIO is not supported in local mode"
    )


# ------------------------------------------------------------------ Processing

PROCESSING_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
    data, out = Path(args["--data"]), Path(args["--out"])
    if (data / "fail.txt").exists():
        print("bad input: fail.txt present", file=sys.stderr)
        sys.exit(4)
    if (data / "big.txt").exists():  # an output of that many bytes, sparse: no disk used
        with open(out / "big.bin", "wb") as handle:
            handle.truncate(int((data / "big.txt").read_text()))
    host = json.loads(Path(args["--config"]).read_text())["current_host"]
    files = sorted(p.relative_to(data).as_posix() for p in data.rglob("*") if p.is_file())
    schema = Path(args["--schema"]).read_text()
    (out / f"{host}.json").write_text(json.dumps({"files": files, "schema": schema}))
    """
)


def processing_definition(count: int = 2) -> dict:
    return {
        "Version": "2020-12-01",
        "Parameters": [
            {"Name": "Count", "Type": "Integer", "DefaultValue": count},
            {"Name": "Volume", "Type": "Integer", "DefaultValue": 30},
        ],
        "Steps": [
            {
                "Name": "Prep",
                "Type": "Processing",
                "Arguments": {
                    "ProcessingResources": {
                        "ClusterConfig": {
                            "InstanceType": "ml.m5.xlarge",
                            "InstanceCount": {"Get": "Parameters.Count"},
                            "VolumeSizeInGB": {"Get": "Parameters.Volume"},
                        }
                    },
                    "AppSpecification": {
                        "ImageUri": IMAGE,
                        "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/prep.py"],
                        "ContainerArguments": [
                            "--data",
                            "/opt/ml/processing/input/data",
                            "--out",
                            "/opt/ml/processing/output/report",
                            "--schema",
                            "/opt/ml/processing/input/schema/schema.json",
                            "--config",
                            "/opt/ml/config/resourceconfig.json",
                        ],
                    },
                    "RoleArn": "arn:aws:iam::123456789012:role/exec",
                    "ProcessingInputs": [
                        {
                            "InputName": "data",
                            "S3Input": {
                                "S3Uri": f"s3://{BUCKET}/raw",
                                "LocalPath": "/opt/ml/processing/input/data",
                                "S3DataType": "S3Prefix",
                                "S3InputMode": "File",
                                "S3DataDistributionType": "ShardedByS3Key",
                            },
                        },
                        {
                            "InputName": "schema",
                            "S3Input": {
                                "S3Uri": f"s3://{BUCKET}/code/schema.json",
                                "LocalPath": "/opt/ml/processing/input/schema",
                                "S3DataType": "S3Prefix",
                                "S3InputMode": "File",
                                "S3DataDistributionType": "FullyReplicated",
                            },
                        },
                        {
                            "InputName": "code",
                            "S3Input": {
                                "S3Uri": f"s3://{BUCKET}/code/prep.py",
                                "LocalPath": "/opt/ml/processing/input/code",
                                "S3DataType": "S3Prefix",
                                "S3InputMode": "File",
                                "S3DataDistributionType": "FullyReplicated",
                            },
                        },
                    ],
                    "ProcessingOutputConfig": {
                        "Outputs": [
                            {
                                "OutputName": "report",
                                "S3Output": {
                                    "S3Uri": {
                                        "Std:Join": {
                                            "On": "/",
                                            "Values": [
                                                f"s3://{BUCKET}/reports",
                                                {"Get": "Execution.PipelineExecutionId"},
                                            ],
                                        }
                                    },
                                    "LocalPath": "/opt/ml/processing/output/report",
                                    "S3UploadMode": "EndOfJob",
                                },
                            }
                        ]
                    },
                },
            },
            {
                "Name": "After",
                "Type": "Transform",
                "DependsOn": ["Prep"],
                "Arguments": transform_definition()["Steps"][0]["Arguments"],
            },
        ],
    }


@pytest.fixture
def processing_inputs(s3) -> None:
    put(s3, "code/prep.py", PROCESSING_SCRIPT.encode())
    put(s3, "code/schema.json", b'{"id_column": "id"}')
    for name in ("a.csv", "b.csv", "c.csv", "sub/d.csv", "sub/e.csv"):
        put(s3, f"raw/{name}", b"x\n")


def test_sharded_by_s3_key_deals_objects_to_instances(
    aws, s3, model, processing_inputs, tmp_path
) -> None:
    put(s3, "in/x.csv", b"1,1\n")
    record = run(aws, processing_definition(2), tmp_path)
    assert record["PipelineExecutionStatus"] == "Succeeded", record["Steps"][0].get("FailureReason")
    reports = {
        host: json.loads(get(s3, f"s3://{BUCKET}/reports/exec00000001/{host}.json"))
        for host in ("algo-1", "algo-2")
    }
    assert reports["algo-1"]["files"] == ["a.csv", "c.csv", "sub/e.csv"]
    assert reports["algo-2"]["files"] == ["b.csv", "sub/d.csv"]
    # FullyReplicated: every instance gets the schema
    assert {r["schema"] for r in reports.values()} == {'{"id_column": "id"}'}
    assert [s["StepName"] for s in record["Steps"]] == ["Prep", "After"]


def test_instance_count_parameter_override(aws, s3, model, processing_inputs, tmp_path) -> None:
    put(s3, "in/x.csv", b"1,1\n")
    record = run(aws, processing_definition(2), tmp_path, {"Count": 1})
    assert record["PipelineExecutionStatus"] == "Succeeded"
    report = json.loads(get(s3, f"s3://{BUCKET}/reports/exec00000001/algo-1.json"))
    assert len(report["files"]) == 5
    assert record["Steps"][0]["Outcome"]["Hosts"] == ["algo-1"]


def test_failing_script_fails_the_step_with_its_stderr_and_stops(
    aws, s3, model, processing_inputs, tmp_path
) -> None:
    put(s3, "raw/fail.txt", b"!")
    record = run(aws, processing_definition(1), tmp_path)
    assert record["PipelineExecutionStatus"] == "Failed"
    assert [s["StepName"] for s in record["Steps"]] == ["Prep"]  # the Transform never started
    reason = record["Steps"][0]["FailureReason"]
    assert reason == "algo-1 exited with code 4: bad input: fail.txt present"
    assert record["FailureReason"].startswith("Step Prep failed: algo-1 exited with code 4")
    assert keys(s3, "reports/") == []


def prep_request(definition: dict, parameters: dict[str, Any]) -> dict:
    """The Prep step's CreateProcessingJob request as the run submits it."""
    from local_mode.expressions import Context, resolve, resolve_parameters

    context = Context(
        parameters=resolve_parameters(definition, parameters),
        execution={"PipelineExecutionId": "exec00000001"},
    )
    arguments = resolve(definition["Steps"][0]["Arguments"], context)
    return {**arguments, "ProcessingJobName": "prep-exec00000001"}


GIB = 2**30
VOLUME_FIX = (
    "on SageMaker the job would fail with no space left on the device; raise VolumeSizeInGB "
    "(the stage file's processing_volume_size_gb, a run's ProcessingVolumeSizeInGB) or spread "
    "the input over more instances (ProcessingInstanceCount)"
)


def test_an_instance_that_writes_more_than_its_volume_fails_before_the_upload(
    aws, s3, model, processing_inputs, tmp_path
) -> None:
    """A request AWS accepts (1 GB is in its range) whose job cannot hold what it writes: the
    step fails naming the setting, nothing is uploaded, the next step never starts."""
    from tests.provider_requests import Request, problems

    big = int(1.25 * GIB)
    put(s3, "raw/big.txt", str(big).encode())
    definition = processing_definition(1)
    request = prep_request(definition, {"Volume": 1})
    assert request["ProcessingResources"]["ClusterConfig"]["VolumeSizeInGB"] == 1
    assert problems(Request("sagemaker", "CreateProcessingJob", request)) == []
    record = run(aws, definition, tmp_path, {"Volume": 1})
    assert record["PipelineExecutionStatus"] == "Failed"
    assert [s["StepName"] for s in record["Steps"]] == ["Prep"]
    # big.bin and the script's report written; a few hundred bytes downloaded
    assert record["Steps"][0]["FailureReason"] == (
        f"algo-1 stores 1.25 GiB on its 1 GiB volume (0.00 GiB of inputs, 1.25 GiB of outputs): "
        f"{VOLUME_FIX}"
    )
    assert keys(s3, "reports/") == []


def test_a_volume_aws_refuses_fails_the_step_naming_the_setting(
    aws, s3, model, processing_inputs, tmp_path
) -> None:
    from tests.provider_requests import Request, problems

    definition = processing_definition(1)
    assert problems(Request("sagemaker", "CreateProcessingJob", prep_request(definition, {
        "Volume": 16385
    })))  # fmt: skip
    record = run(aws, definition, tmp_path, {"Volume": 16385})
    assert record["PipelineExecutionStatus"] == "Failed"
    assert record["Steps"][0]["FailureReason"] == (
        "VolumeSizeInGB (the stage file's processing_volume_size_gb, a run's "
        "ProcessingVolumeSizeInGB) must be a whole number from 1 to 16384 (GB of storage per "
        "Processing instance, AWS's range for VolumeSizeInGB), got 16385"
    )
    del definition["Steps"][0]["Arguments"]["ProcessingResources"]["ClusterConfig"][
        "VolumeSizeInGB"
    ]
    record = run(aws, definition, tmp_path / "2")
    assert record["Steps"][0]["FailureReason"] == (
        "ProcessingResources.ClusterConfig.VolumeSizeInGB is required (AWS refuses a "
        "Processing job without it)"
    )
    assert keys(s3, "reports/") == []


def sparse(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        handle.truncate(size)


def test_an_instance_is_refused_when_its_inputs_alone_pass_its_volume(tmp_path) -> None:
    """Checked right after the download (before the script would start); each instance on
    its own, at the volume's exact size; inputs and outputs counted once each."""
    from local_mode import processing

    arguments = {
        "ProcessingInputs": [
            {"InputName": "data", "S3Input": {"LocalPath": "/opt/ml/processing/input/data"}},
            {"InputName": "code", "S3Input": {"LocalPath": "/opt/ml/processing/input/code"}},
        ],
        "ProcessingOutputConfig": {
            "Outputs": [{"OutputName": "out", "S3Output": {"LocalPath": "/opt/ml/processing/out"}}]
        },
    }
    roots = {host: tmp_path / host for host in ("algo-1", "algo-2")}
    sparse(roots["algo-1"] / "opt/ml/processing/input/data/a.csv", GIB - 10)
    sparse(roots["algo-1"] / "opt/ml/processing/input/code/run.py", 10)  # exactly 1 GiB
    sparse(roots["algo-2"] / "opt/ml/processing/input/data/b.csv", GIB // 2)
    sparse(roots["algo-2"] / "opt/ml/processing/out/part-0.csv", GIB // 2 + 1)
    logged: list[str] = []
    processing.check_volume(roots, arguments, 1, logged.append, written=False)
    assert logged == ["    algo-1: 1.00 GiB stored on its 1 GiB volume"]  # nearly full
    with pytest.raises(processing.StepFailed) as raised:
        processing.check_volume(roots, arguments, 1, logged.append, written=True)
    assert str(raised.value) == (
        "algo-2 stores 1.00 GiB on its 1 GiB volume (0.50 GiB of inputs, 0.50 GiB of outputs): "
        + VOLUME_FIX
    )
    sparse(roots["algo-1"] / "opt/ml/processing/input/data/more.csv", 1)
    with pytest.raises(processing.StepFailed) as raised:
        processing.check_volume(roots, arguments, 1, logged.append, written=False)
    assert str(raised.value) == (
        "algo-1 stores 1.00 GiB on its 1 GiB volume (its inputs, before the script started): "
        + VOLUME_FIX
    )
    processing.check_volume(roots, arguments, 2, logged.append, written=True)  # room enough


def test_the_execution_names_the_account_its_jobs_act_in(aws, s3, model, tmp_path) -> None:
    """As on AWS: the stage's account in the pipeline's and the execution's ARNs."""
    put(s3, "in/part-1.csv", CSV_INPUT)
    account = aws.session().client("sts").get_caller_identity()["Account"]
    record = run(aws, transform_definition(), tmp_path)
    assert record["PipelineArn"].split(":")[4] == account
    assert record["PipelineExecutionArn"].startswith(record["PipelineArn"] + "/execution/")
    assert account != executor.UNKNOWN_ACCOUNT


def test_a_relative_work_dir_works(
    aws, s3, model, processing_inputs, tmp_path, monkeypatch
) -> None:
    """The demo passes build/demo/...: container paths must not be resolved twice."""
    put(s3, "in/x.csv", b"1,1\n")
    monkeypatch.chdir(tmp_path)
    record = executor.execute(
        processing_definition(1), {}, session=aws.session(), work_dir=Path("runs/relative"),
        execution_id="exec00000001", log=lambda _: None,
    )  # fmt: skip
    assert record["PipelineExecutionStatus"] == "Succeeded", record["Steps"][0].get("FailureReason")


@pytest.mark.parametrize(
    ("location", "message"),
    [("s3://", "not an S3 URI: 's3://'"), ("s3://bucket", "'s3://bucket' names no object")],
)
def test_a_bad_definition_uri_is_one_line_and_exit_2_not_a_traceback(location, message) -> None:
    """It once raised build.py's UsageError out of the executor's CLI (a traceback)."""
    result = subprocess.run(
        [sys.executable, "-m", "local_mode.executor", "--definition", location],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"local_mode.executor: error: --definition: {message} (expected s3://bucket/key)"
    ]


def test_a_parameter_that_is_not_an_s3_uri_fails_the_run_instead_of_raising(
    aws, s3, model, tmp_path
) -> None:
    """execute() never raises for a failing step: a bad InputDataUrl is the step's failure."""
    definition = transform_definition(
        **{"TransformInput.DataSource.S3DataSource.S3Uri": {"Get": "Parameters.InputDataUrl"}}
    )
    definition["Parameters"] = [
        {"Name": "InputDataUrl", "Type": "String", "DefaultValue": f"s3://{BUCKET}/in/"}
    ]
    record = run(aws, definition, tmp_path, {"InputDataUrl": "not-a-uri"})
    assert record["PipelineExecutionStatus"] == "Failed"
    assert "not an S3 URI: 'not-a-uri'" in record["FailureReason"]
