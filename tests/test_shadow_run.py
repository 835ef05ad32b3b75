"""The shadow run (pipelines/shadow_run.py) in local mode against the emulator: a candidate
scores the stage's last scored days with the deployed definition, into its own prefix, and
leaves no trace in the champion's markers, table or runs."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from examples.breast_cancer import data, model
from local_mode.emulator import Emulator
from pipelines import shadow_run
from stage_runtime import partitions
from tests.registry import IMAGE
from tests.test_partitions import (  # noqa: F401 (fixtures)
    DAY_1,
    DAY_2,
    DAY_3,
    backfill,
    in_preprod,
    in_process_model,
    layout,
    put_day,
    stage,
)


def snapshot(aws: Emulator, tfvars: dict[str, Any]) -> dict[str, str]:
    """Every object of the stage's outputs but the shadow's: key -> ETag."""
    bucket, prefix = partitions.parse_s3_uri(tfvars["output_data_url"])
    s3 = aws.client("s3", "preprod")
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if f"/{shadow_run.SHADOW}/" not in item["Key"]:
                found[item["Key"]] = item["ETag"]
    table_bucket, table_prefix = partitions.parse_s3_uri(tfvars["predictions_table_url"])
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=table_bucket, Prefix=table_prefix
    ):
        for item in page.get("Contents", []):
            found[item["Key"]] = item["ETag"]
    return found


def candidate_model(aws: Emulator, tfvars: dict[str, Any], folder: Path) -> str:
    """Version 2: the sample model trained on another split (answers that differ a little),
    its artifact in the stage's bucket and its SageMaker Model created."""
    built = model.build(folder, seed=1)
    key = f"{tfvars['project_name']}/candidate/model.tar.gz"
    aws.client("s3", "preprod").put_object(
        Bucket=tfvars["artifacts_bucket"], Key=key, Body=built.archive.read_bytes()
    )
    name = f"{tfvars['model_name']}-candidate"
    aws.client("sagemaker", "preprod").create_model(
        ModelName=name,
        ExecutionRoleArn=tfvars["sagemaker_role_arn"],
        PrimaryContainer={
            "Image": IMAGE,
            "ModelDataUrl": f"s3://{tfvars['artifacts_bucket']}/{key}",
            "Environment": model.container_environment(),
        },
    )
    return name


def create_shadow_pipeline(aws: Emulator, tfvars: dict[str, Any]) -> None:
    """The stage's shadow pipeline, as the apply creates it: build.py's shadow definition (the
    stage's, its jobs run as the shadow role), run as the shadow role. Given as text: moto
    describes a pipeline made from an S3 location with the Python repr of its definition
    (``str(dict)``), where SageMaker returns the JSON."""
    s3 = aws.client("s3", "preprod")
    key = tfvars["shadow_pipeline_definition_s3_key"]
    body = s3.get_object(Bucket=tfvars["artifacts_bucket"], Key=key)
    aws.client("sagemaker", "preprod").create_pipeline(
        PipelineName=tfvars["shadow_pipeline_name"],
        ClientRequestToken=str(uuid.uuid4()),
        PipelineDefinition=body["Body"].read().decode(),
        RoleArn=tfvars["shadow_role_arn"],
    )


def table_rows(aws: Emulator, url: str, day: str, execution_id: str) -> pa.Table:
    return shadow_run.read_day(aws.client("s3", "preprod"), url, day, execution_id, "record_id")


def test_the_candidate_scores_the_last_scored_days_beside_the_champion_and_touches_nothing(
    aws: Emulator,
    stage: dict,  # noqa: F811 (test_partitions' fixture)
    tmp_path: Path,
    capsys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    in_preprod(aws, monkeypatch)
    tfvars = stage["tfvars"]
    create_shadow_pipeline(aws, tfvars)
    for day in (DAY_1, DAY_2, DAY_3):
        rows = data.generate(tmp_path / f"{day}.csv", rows=300, seed=day.day)
        put_day(aws, tfvars, day, "batch.csv", rows.path.read_bytes())
    local = ["--local", "--work-dir", str(tmp_path / "runs")]
    assert backfill(stage, *local, last=DAY_3) == 0, capsys.readouterr().err
    name = candidate_model(aws, tfvars, tmp_path / "candidate")
    before = snapshot(aws, tfvars)
    markers = {
        day: partitions.read_marker(aws.client("s3", "preprod"), layout(tfvars).marker_uri(day))
        for day in (DAY_2, DAY_3)
    }
    out, summary = tmp_path / "shadow", tmp_path / "summary.md"
    summary.write_text("earlier steps' summary\n")

    code = shadow_run.main(
        ["--tfvars", str(stage["path"]), "--candidate-model", name, "--candidate-version", "2",
         "--days", "2", "--out", str(out), "--summary", str(summary), *local]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    # nothing of the champion's changed: markers, runs, table (the shadow wrote only its own)
    assert snapshot(aws, tfvars) == before
    document = json.loads((out / "shadow.json").read_text())
    assert sorted(document["days"]) == [str(DAY_2), str(DAY_3)]  # the last 2 scored days
    assert document["candidate"] == {"model": name, "version": 2}
    for day, marker in markers.items():
        assert marker is not None
        compared = document["days"][str(day)]
        assert compared["executions"]["champion"] == marker["execution_arn"]
        candidate_arn = compared["executions"]["candidate"]
        assert candidate_arn != marker["execution_arn"]
        champion = table_rows(
            aws,
            tfvars["predictions_table_url"],
            str(day),
            marker["execution_arn"].rsplit("/", 1)[-1],
        )
        shadow_table = f"{shadow_run.shadow_root(tfvars, 2)}/table/"
        candidate = table_rows(aws, shadow_table, str(day), candidate_arn.rsplit("/", 1)[-1])
        assert candidate.column("model_version").to_pylist() == [2] * candidate.num_rows
        assert (
            compared["rows"]["both"]
            == champion.num_rows
            == candidate.num_rows
            == marker["rows_scored"]
        )
        # flips recomputed here from the two tables' own rows
        old = dict(
            zip(
                champion.column("record_id").to_pylist(),
                champion.column("prediction").to_pylist(),
                strict=True,
            )
        )
        new = dict(
            zip(
                candidate.column("record_id").to_pylist(),
                candidate.column("prediction").to_pylist(),
                strict=True,
            )
        )
        flips = sum((old[k] >= 0.5) != (new[k] >= 0.5) for k in old)
        assert compared["decision"]["flips"] == flips
        assert compared["gates"] == {"champion": "passed", "candidate": "passed"}
        differs = sum(old[k] != new[k] for k in old)
        assert len(compared["largest_disagreements"]) == min(differs, 20) > 0
    text = summary.read_text()
    assert text.startswith("earlier steps' summary\n### preprod: version 2 in the shadow")
    assert (out / "shadow.html").read_text().count("<section>") == 2

    # the limit: a threshold between the two answers of the largest disagreement flips it
    top = document["days"][str(DAY_3)]["largest_disagreements"][0]
    threshold = (top["champion"] + top["candidate"]) / 2
    again = ["--tfvars", str(stage["path"]), "--candidate-model", name, "--candidate-version",
             "2", "--days", "1", "--threshold", repr(threshold), *local]  # fmt: skip
    capsys.readouterr()
    assert shadow_run.main([*again, "--out", str(tmp_path / "over"), "--max-flip-rate", "0"]) == 3
    err = capsys.readouterr().err
    (over,) = json.loads((tmp_path / "over" / "shadow.json").read_text())["days"].values()
    rate = over["decision"]["flip_rate"]
    assert over["decision"]["flips"] >= 1
    assert f"changes {rate:.2%} of a day's decisions, over the limit of 0.00%" in err
    assert "raise --max-flip-rate" in err
    assert (
        shadow_run.main([*again, "--out", str(tmp_path / "at"), "--max-flip-rate", repr(rate)]) == 0
    )
    assert snapshot(aws, tfvars) == before


def test_a_candidate_model_that_does_not_exist_is_refused_before_anything_runs(
    aws: Emulator,
    stage: dict,  # noqa: F811 (test_partitions' fixture)
    tmp_path: Path,
    capsys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    in_preprod(aws, monkeypatch)
    create_shadow_pipeline(aws, stage["tfvars"])
    arguments = ["--tfvars", str(stage["path"]), "--candidate-version", "2", "--local",
                 "--out", str(tmp_path / "out")]  # fmt: skip
    assert shadow_run.main([*arguments, "--candidate-model", "nope"]) == 2
    assert (
        "the candidate's SageMaker Model 'nope' does not exist in the stage"
        in capsys.readouterr().err
    )
    # a real model but no scored day yet: nothing to shadow
    assert shadow_run.main([*arguments, "--candidate-model", stage["tfvars"]["model_name"]]) == 2
    assert "is scored yet (no Succeeded marker" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    for bad, message in ((["--days", "0"], "--days"), (["--max-flip-rate", "2"], "not a share")):
        with pytest.raises(SystemExit) as exited:
            shadow_run.main([*arguments, "--candidate-model", "m", *bad])
        assert exited.value.code == 2
        assert message in capsys.readouterr().err


def test_on_sagemaker_each_day_is_started_as_the_model_of_the_api_says(
    aws: Emulator,
    stage: dict,  # noqa: F811 (test_partitions' fixture)
    tmp_path: Path,
    capsys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without --local the deployed pipeline is started per day with the shadow's parameters
    (checked against botocore's model) and followed to its end. moto's executions end at
    once and write nothing: the missing rows are the run's failure, said per day, exit 3."""
    from tests.provider_requests import problems
    from tests.test_smoke_run import recorded

    in_preprod(aws, monkeypatch)
    tfvars = stage["tfvars"]
    rows = data.generate(tmp_path / "day.csv", rows=50, seed=1)
    put_day(aws, tfvars, DAY_1, "batch.csv", rows.path.read_bytes())
    assert backfill(stage, "--local", "--work-dir", str(tmp_path / "runs")) == 0
    session = aws.account("preprod")
    # the shadow pipeline (the stage's definition, run as the shadow role) comes with the
    # stage's apply; before it, there is nothing to start
    with pytest.raises(shadow_run.NothingToShadow, match="the stage's next apply creates it"):
        shadow_run.shadow_run(tfvars, session, "preprod", tfvars["model_name"], 2)
    create_shadow_pipeline(aws, tfvars)
    sent = recorded(session)
    result = shadow_run.shadow_run(
        tfvars, session, "preprod", tfvars["model_name"], 2, poll_seconds=0.01
    )
    (failure,) = result.failures
    assert failure.startswith(f"{DAY_1}: no rows of execution ")
    assert "was the day published (its Publish step)" in failure
    assert result.days == {}
    (start,) = [r for r in sent if r.operation == "StartPipelineExecution"]
    assert problems(start) == []
    assert start.body["PipelineName"] == tfvars["shadow_pipeline_name"] != tfvars["pipeline_name"]
    assert start.body["PipelineExecutionDisplayName"] == f"shadow-v2-{DAY_1.isoformat()}"
    parameters = {p["Name"]: p["Value"] for p in start.body["PipelineParameters"]}
    root = shadow_run.shadow_root(tfvars, 2)
    assert parameters["ModelName"] == tfvars["model_name"]
    assert parameters["OutputDataUrl"] == f"{root}/{layout(tfvars).partition(DAY_1)}"
    assert parameters["PredictionsTableUrl"] == f"{root}/table/"
    assert parameters["InputDataUrl"] == layout(tfvars).input_uri(DAY_1)


def test_the_plan_job_shadows_the_tfvars_version_with_its_candidate_and_the_stage_settings(
    aws: Emulator,
    stage: dict,  # noqa: F811 (test_partitions' fixture)
    tmp_path: Path,
    capsys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The prod plan job's form: build.py --plan-only --shadow-candidate makes version 2's
    candidate, and --plan-job shadows it with the stage's days, limit and id setting; the
    ids stay out of what leaves the account; the override turns the limit into a warning."""
    from tests.registry import DevRegistry, run_build
    from tests.test_shadow_candidate import record_deployed

    in_preprod(aws, monkeypatch)
    tfvars = stage["tfvars"]
    create_shadow_pipeline(aws, tfvars)
    record_deployed(aws, tfvars)  # version 1 runs
    for day in (DAY_1, DAY_2):
        rows = data.generate(tmp_path / f"{day}.csv", rows=200, seed=day.day)
        put_day(aws, tfvars, day, "batch.csv", rows.path.read_bytes())
    local = ["--local", "--work-dir", str(tmp_path / "runs")]
    assert backfill(stage, *local, last=DAY_2) == 0, capsys.readouterr().err
    before = snapshot(aws, tfvars)
    registry = DevRegistry(aws, create=False)
    built = model.build(tmp_path / "v2", seed=1)
    url = registry.put_artifact("training/run-2/output/model.tar.gz", built.archive.read_bytes())
    registry.register(
        "Approved",
        containers=[
            {"Image": IMAGE, "ModelDataUrl": url, "Environment": model.container_environment()}
        ],
    )
    plan_dir = tmp_path / "plan"
    assert run_build(plan_dir, "--model-version", "2", "--plan-only", "--shadow-candidate") == 0
    planned_path = plan_dir / "preprod.tfvars.json"
    planned = json.loads(planned_path.read_text())
    assert f"shadow candidate: created {shadow_run.candidate_of(planned)}" in (
        capsys.readouterr().out
    )

    out, summary = tmp_path / "shadow", tmp_path / "summary.md"
    job = ["--tfvars", str(planned_path), "--plan-job", "--summary", str(summary), *local]
    assert shadow_run.main([*job, "--out", str(out)]) == 0, capsys.readouterr().err
    document = json.loads((out / "shadow.json").read_text())
    assert document["candidate"] == {"model": shadow_run.candidate_of(planned), "version": 2}
    assert sorted(document["days"]) == [str(DAY_1), str(DAY_2)]  # shadow_days' default, 3
    ids = {row["id"] for day in document["days"].values() for row in day["largest_disagreements"]}
    assert ids == {"(withheld)"}  # shadow_show_ids defaults to false
    text = summary.read_text()
    assert "### preprod: version 2 in the shadow of the champion" in text
    assert "ids withheld: shadow_show_ids is false" in text
    champion_ids = {str(i) for i in range(1000)}  # the generated ids are small integers
    assert not any(f"`{i}`" in text for i in champion_ids)
    assert snapshot(aws, tfvars) == before

    # the stage's limit, below the candidate's flips at a threshold between two answers
    top = json.loads((out / "shadow.json").read_text())  # ids withheld, answers kept
    row = next(r for d in top["days"].values() for r in d["largest_disagreements"])
    threshold = repr((row["champion"] + row["candidate"]) / 2)
    planned_path.write_text(json.dumps({**planned, "shadow_max_flip_rate": 0.0}))
    capsys.readouterr()
    limited = [*job, "--threshold", threshold]
    assert shadow_run.main([*limited, "--out", str(tmp_path / "over")]) == 3
    err = capsys.readouterr().err
    assert "over the limit of 0.00%" in err and "accept_shadow_flips (the override)" in err
    assert "over the limit of 0.00% (shadow_max_flip_rate)" in summary.read_text()
    assert shadow_run.main([*limited, "--out", str(tmp_path / "accepted"), "--accept-flips"]) == 0
    assert "**warning**: over the limit, accepted by the run's accept_shadow_flips" in (
        summary.read_text()
    )
    assert snapshot(aws, tfvars) == before


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"shadow_days": 0}, "shadow_days is 0 in the preprod stage file"),
        ({"shadow_role_arn": None}, "the preprod account has no shadow role"),
        ({}, "the candidate's SageMaker Model"),  # version 1 runs: build.py made none
    ],
)
def test_the_plan_job_says_why_it_shadows_nothing_and_passes(
    aws: Emulator,
    stage: dict,  # noqa: F811 (test_partitions' fixture)
    tmp_path: Path,
    capsys,
    monkeypatch: pytest.MonkeyPatch,
    change: dict[str, Any],
    reason: str,
) -> None:
    in_preprod(aws, monkeypatch)
    path = tmp_path / "planned.tfvars.json"
    path.write_text(json.dumps({**stage["tfvars"], **change}))
    summary = tmp_path / "summary.md"
    out = tmp_path / "out"
    code = shadow_run.main(
        ["--tfvars", str(path), "--plan-job", "--summary", str(summary), "--out", str(out)]
    )
    assert code == 0
    (line,) = [line for line in summary.read_text().splitlines() if line]
    assert line.startswith("**shadow run skipped:** ") and reason in line
    assert not out.exists()


def test_the_plan_job_takes_the_candidate_and_limits_from_the_stage_only(
    stage: dict,  # noqa: F811 (test_partitions' fixture)
    capsys,
) -> None:
    base = ["--tfvars", str(stage["path"])]
    assert shadow_run.main([*base, "--plan-job", "--days", "2", "--max-flip-rate", "0.1"]) == 2
    assert "--days, --max-flip-rate: --plan-job takes these from the stage's tfvars" in (
        capsys.readouterr().err
    )
    assert shadow_run.main([*base, "--accept-flips", "--candidate-model", "m"]) == 2
    assert "--accept-flips belongs to --plan-job" in capsys.readouterr().err
    assert shadow_run.main(base) == 2
    assert "name the candidate: --candidate-model M --candidate-version N" in (
        capsys.readouterr().err
    )


def test_on_sagemaker_the_days_run_at_once_and_each_is_stopped_at_the_deadline(
    aws: Emulator,
    stage: dict,  # noqa: F811 (test_partitions' fixture)
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The plan role's session lasts an hour: the days' runs are started together, not one
    after another's end (both starts come before the first stop), and each still running
    at the deadline is asked to stop and said."""
    from tests.provider_requests import problems
    from tests.registry import keep_executions_running
    from tests.test_smoke_run import recorded

    in_preprod(aws, monkeypatch)
    tfvars = stage["tfvars"]
    create_shadow_pipeline(aws, tfvars)
    for day in (DAY_1, DAY_2):
        rows = data.generate(tmp_path / f"{day}.csv", rows=40, seed=day.day)
        put_day(aws, tfvars, day, "batch.csv", rows.path.read_bytes())
    assert backfill(stage, "--local", "--work-dir", str(tmp_path / "runs"), last=DAY_2) == 0
    keep_executions_running(monkeypatch)
    session = aws.account("preprod")
    sent = recorded(session)
    result = shadow_run.shadow_run(
        tfvars, session, "preprod", tfvars["model_name"], 2, timeout_seconds=0.5,
        poll_seconds=0.05,
    )  # fmt: skip
    assert result.days == {}
    assert sorted(f.split(":", 1)[0] for f in result.failures) == [str(DAY_1), str(DAY_2)]
    # moto has no StopPipelineExecution: the stop is asked (and checked against botocore)
    assert all("TimedOut: still Executing after" in f for f in result.failures)
    stops = [r for r in sent if r.operation == "StopPipelineExecution"]
    assert [problems(stop) for stop in stops] == [[], []]
    order = [r.operation for r in sent if r.operation.endswith("PipelineExecution")]
    assert order.count("StartPipelineExecution") == 2 == order.count("StopPipelineExecution")
    assert order.index("StopPipelineExecution") > max(
        i for i, op in enumerate(order) if op == "StartPipelineExecution"
    )
