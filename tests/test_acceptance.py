"""The acceptance run (#35, being built): the catalogue of unproven claims, the plan stated
before a run, the report, and the command against the emulator, where no unproven claim is
ever passed and the accounts are given back as they were."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from acceptance import __main__ as acceptance_main
from acceptance import catalogue, plan, report
from examples import registration
from examples.breast_cancer import model
from local_mode.emulator import Emulator
from tests.provider_requests import Request, problems
from tests.registry import (
    DevRegistry,
    bucket_keys,
    create_empty_pipeline,
    create_stage,
    one_line_error,
)
from tests.rollback_proxy import rolled_back_updates
from tests.terraform_cli import terraform  # noqa: F401 - the fixture

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "deploying-to-aws.md"


def test_every_check_is_named_once_and_read_after_a_step_of_the_flow() -> None:
    ids = [check.id for check in catalogue.CHECKS]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", check_id) for check_id in ids)
    with pytest.raises(ValueError, match="unknown step 'deploy'"):
        catalogue.Check("x", "a claim", "deploy", "evidence")


def test_the_guides_unproven_list_links_every_check_and_names_no_other() -> None:
    """Section 8's table is the catalogue: a check the docs do not list, or a listed id
    with no check, fails here."""
    section = GUIDE.read_text().split("## 8. What stays unproven", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| `([a-z0-9-]+)` \|", section, flags=re.MULTILINE)
    assert listed == [check.id for check in catalogue.CHECKS]


def test_the_guides_unproven_claims_link_each_check_and_each_link_lands() -> None:
    section = GUIDE.read_text().split("## 8. What stays unproven", 1)[1].split("\n## ", 1)[0]
    anchors = re.findall(r'<a id="check-([a-z0-9-]+)"></a>', section)
    links = set(re.findall(r"\]\(#check-([a-z0-9-]+)\)", section))
    assert anchors == [check.id for check in catalogue.CHECKS]  # one per row of the table
    assert links == set(anchors)  # every check named where its claim is, no dead link


def test_a_report_holds_every_check_and_passes_none_by_default(tmp_path: Path) -> None:
    verdicts = report.complete(
        [report.Verdict("image-digest-at-registration", "needs-real-account", "moto: none")],
        "the flow is not built yet",
    )
    assert [v.check for v in verdicts] == [c.id for c in catalogue.CHECKS]
    assert {v.status for v in verdicts} == {"needs-real-account", "skipped"}
    json_path, markdown_path = report.write(verdicts, {"project": "acc-x"}, tmp_path)
    document = json.loads(json_path.read_text())
    assert document["counts"] == {
        "passed": 0, "failed": 0, "skipped": len(catalogue.CHECKS) - 1, "needs-real-account": 1,
    }  # fmt: skip
    rows = [line for line in markdown_path.read_text().splitlines() if line.startswith("| ")]
    assert len(rows) == 2 + len(catalogue.CHECKS)  # the header and its rule, a row per check


@pytest.mark.parametrize(
    ("check", "status", "message"),
    [("no-such-check", "passed", "unknown check"), ("start-token", "ok", "is not one of")],
)
def test_a_verdict_names_a_known_check_and_status(check: str, status: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        report.Verdict(check, status, "")


def test_a_table_cell_stays_one_cell() -> None:
    verdict = report.Verdict("start-token", "failed", "two executions | a\nsecond line")
    row = report.to_markdown([verdict], {}).splitlines()[-1]
    assert row.endswith("| failed | two executions \\| a second line |")


def test_the_plan_counts_instance_minutes_of_every_job_and_the_endpoint() -> None:
    prod = json.loads((REPO / "prod-config.tfvars.json").read_text())
    runs = sum(plan.PIPELINE_RUNS.values())
    # two Processing and two Transform instances per run, both ml.m5.xlarge
    assert plan.plan(prod).instance_minutes == {"ml.m5.xlarge": 2 * 2 * runs * plan.JOB_MINUTES}
    with_endpoint = {**prod, "endpoint": {"instance_type": "ml.c5.large", "min_instance_count": 2}}
    planned = plan.plan(with_endpoint)
    assert planned.instance_minutes["ml.c5.large"] == 2 * plan.ENDPOINT_MINUTES * 1.5
    assert planned.minutes == plan.plan(prod).minutes + plan.ENDPOINT_MINUTES
    serverless = {**prod, "endpoint": {"serverless": {"memory_size_in_mb": 2048}}}
    assert set(plan.plan(serverless).instance_minutes) == {"ml.m5.xlarge"}  # billed per use


def test_the_plan_prices_only_what_it_is_told() -> None:
    planned = plan.plan({"transform_instance_type": "ml.c5.xlarge"})
    total, unpriced = planned.cost({"ml.m5.xlarge": 0.6})
    assert (round(total, 2), unpriced) == (0.35, ["ml.c5.xlarge"])  # 35 minutes at 0.6/h
    statement = planned.statement({"ml.m5.xlarge": 0.6})
    assert "no price given for ml.c5.xlarge: pass --price TYPE=USD_PER_HOUR" in statement
    assert statement.startswith(f"expected time: about {planned.minutes} minutes")


@pytest.mark.parametrize("text", ["m5.xlarge=0.2", "ml.m5.xlarge", "ml.m5.xlarge=-1", "ml.x=nan"])
def test_a_bad_price_is_refused_with_the_form_to_use(text: str) -> None:
    with pytest.raises(
        ValueError, match=re.escape("write TYPE=USD_PER_HOUR, e.g. ml.m5.xlarge=0.23")
    ):
        plan.parse_price(text)
    assert plan.parse_price("ml.m5.xlarge=0.23") == ("ml.m5.xlarge", 0.23)


# ------------------------------------------------------- the command, against the emulator


@pytest.fixture
def command(
    aws: Emulator,
    dev: DevRegistry,
    built_model: model.Built,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., int]:
    """``python -m acceptance`` with a profile per account (the emulator's keys in a
    credentials file, as a team's would be), the dev registry's bucket, the stage's base made
    for the project (as infra/target-account would), the session's trained sample;
    ``command(*extra)`` runs it, ``--yes`` unless told otherwise."""
    create_stage(aws, "preprod", "acc-test", kms=True)
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(REPO / "terraform.tfrc"))
    lines = []
    for name in ("dev", "preprod"):
        keys = aws.credential_variables(name)
        lines += [
            f"[{name}]",
            f"aws_access_key_id = {keys['AWS_ACCESS_KEY_ID']}",
            f"aws_secret_access_key = {keys['AWS_SECRET_ACCESS_KEY']}",
            f"aws_session_token = {keys['AWS_SESSION_TOKEN']}",
        ]
    (tmp_path / "credentials").write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setattr(model, "build", lambda _: built_model)
    base = ["--dev-profile", "dev", "--stage-profile", "preprod", "--region", aws.region,
            "--dev-bucket", dev.bucket, "--project-name", "acc-test",
            "--output", str(tmp_path / "out")]  # fmt: skip

    def run(*extra: str, yes: bool = True) -> int:
        return acceptance_main.main([*base, *extra, *(["--yes"] if yes else [])])

    return run


def _left(aws: Emulator, dev: DevRegistry) -> tuple[list[str], list[str]]:
    """The dev account's model package groups and bucket keys."""
    groups = aws.client("sagemaker", "dev").list_model_package_groups()
    return [g["ModelPackageGroupName"] for g in groups["ModelPackageGroupSummaryList"]], sorted(
        bucket_keys(aws, "dev", dev.bucket)
    )


def test_nothing_starts_without_yes_and_the_plan_comes_first(
    aws: Emulator, dev: DevRegistry, command: Callable[..., int], capsys
) -> None:
    before = _left(aws, dev)
    assert command(yes=False) == 2
    out, err = capsys.readouterr()
    assert out.startswith("expected time: about ") and "ml.m5.xlarge: " in out
    assert err == "acceptance: nothing started: read the plan above, then add --yes\n"
    assert _left(aws, dev) == before


def test_a_stage_file_build_py_would_refuse_is_refused_first(
    command: Callable[..., int], tmp_path: Path, capsys
) -> None:
    config = tmp_path / "stage.json"
    config.write_text(json.dumps({"environment": "preprod", "transform_instance_cont": 2}))
    assert command("--config", str(config), yes=False) == 2
    assert "unknown setting 'transform_instance_cont'; did you mean" in one_line_error(capsys)


@pytest.mark.parametrize(
    "case",
    ["name in use", "prefix in use", "no base", "one account twice", "deployer elsewhere",
     "no dev bucket", "no such profile"],
)  # fmt: skip
def test_a_run_that_could_touch_what_it_did_not_make_is_refused(
    aws: Emulator, dev: DevRegistry, command: Callable[..., int], capsys, case: str
) -> None:
    extra: list[str] = []
    if case == "name in use":
        aws.client("sagemaker", "preprod").create_model_package_group(
            ModelPackageGroupName="acc-test-models"
        )
        message = "project name 'acc-test' is in use (model package group acc-test-models in"
    elif case == "prefix in use":  # a kept run's outputs: the teardown would delete them
        bucket = "preprod-artifacts-222222222222"
        aws.client("s3", "preprod").put_object(Bucket=bucket, Key="acc-test/x.csv", Body=b"1")
        message = f"(objects under s3://{bucket}/acc-test/ in the stage account)"
    elif case == "no base":
        extra = ["--project-name", "acc-other"]
        message = (
            "the stage account has no base for project 'acc-other' (SSM /acc-other/preprod/"
            "artifacts-bucket is missing): apply infra/target-account there"
        )
    elif case == "one account twice":
        extra = ["--stage-profile", "dev"]
        message = "--dev-profile and --stage-profile are both account 111111111111"
    elif case == "deployer elsewhere":
        extra = ["--deploy-profile", "dev"]
        message = "--deploy-profile is account 111111111111, not the stage account 222222222222"
    elif case == "no dev bucket":
        extra = ["--dev-bucket", "no-such-bucket"]
        message = "--dev-bucket no-such-bucket cannot be reached in the dev account"
    else:
        extra = ["--dev-profile", "nope"]
        message = "acceptance: --dev-profile nope: no such profile in your AWS config files"
    before = _left(aws, dev)
    assert command(*extra) == 2
    assert message in one_line_error(capsys)
    assert _left(aws, dev) == before


# moto implements neither DeleteModelPackage nor DeleteModelPackageGroup (it answers 500): the
# teardown's SageMaker calls are recorded and held to botocore's model instead, and the run
# says what it could not remove (exit 3), as it would on AWS
NOT_IN_MOTO = ("model package arn:aws:sagemaker:", "model package group acc-test-models")
# what the run reports without trying on the emulator, or cannot try in any account: the
# run has no deploy profile, the sample's image is AWS's, the stage file has no endpoint
SKIPPED = {"permissions-boundary", "ecr-replication", "endpoint-config-key-grant",
           "rolled-back-update", "model-latency-p99", "serverless-without-isolation",
           "data-capture"}  # fmt: skip


def _deletes(monkeypatch: pytest.MonkeyPatch) -> list[Request]:
    """The SageMaker Delete* requests of the command's sessions."""
    sent: list[Request] = []
    real_session = acceptance_main.aws_sessions.session

    def record(params: dict, model: Any, **_: Any) -> None:
        if model.name.startswith("Delete"):
            sent.append(Request("sagemaker", model.name, dict(params)))

    def recording_session(*args: Any, **kwargs: Any) -> Any:
        session = real_session(*args, **kwargs)
        session.events.register("before-parameter-build.sagemaker", record)
        return session

    monkeypatch.setattr(acceptance_main.aws_sessions, "session", recording_session)
    return sent


def _not_removed(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("acceptance: not removed: ")]


def _stage(aws: Emulator) -> dict[str, list[str]]:
    """What the stage's deployment and promotion leave in the stage account."""
    sagemaker = aws.client("sagemaker", "preprod")
    functions = aws.client("lambda", "preprod").list_functions()["Functions"]
    return {
        "pipelines": [p["PipelineName"] for p in sagemaker.list_pipelines()["PipelineSummaries"]],
        "models": sorted(m["ModelName"] for m in sagemaker.list_models()["Models"]),
        "functions": sorted(f["FunctionName"] for f in functions),
        "keys": bucket_keys(aws, "preprod", "preprod-artifacts-222222222222"),
    }


def test_a_run_deploys_twice_reports_every_check_and_gives_the_accounts_back(
    aws: Emulator,
    dev: DevRegistry,
    terraform: str,  # noqa: F811 - the fixture
    command: Callable[..., int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys,
) -> None:
    """Registered, promoted by build.py, applied by Terraform, version 2 over it, destroyed."""
    _, keys_before = _left(aws, dev)
    stage_before = _stage(aws)
    deletes = _deletes(monkeypatch)
    assert command() == 3  # only what moto cannot delete is left
    out, err = capsys.readouterr()
    assert "acceptance: the run stopped" not in err
    steps = [line.split(": ")[1] for line in out.splitlines() if line.startswith("acceptance: ")]
    assert [step.split(" ")[0] for step in steps[1:-1]] == [*catalogue.STEPS[:-1]]
    document = json.loads((tmp_path / "out" / "acceptance.json").read_text())
    verdicts = {c["check"]: c for c in document["checks"]}
    assert list(verdicts) == [check.id for check in catalogue.CHECKS]
    # every step ran; the emulator answered, but no unproven claim is the emulator's to settle
    assert {c for c, v in verdicts.items() if v["status"] == "skipped"} == SKIPPED
    assert {v["status"] for c, v in verdicts.items() if c not in SKIPPED} == {"needs-real-account"}
    assert not any("not settled" in v["evidence"] for v in verdicts.values())
    assert verdicts["image-digest-at-registration"]["evidence"].startswith(
        "DescribeModelPackage arn:aws:sagemaker:"
    )
    assert verdicts["policy-visible-to-create-model"]["evidence"] == (
        "the apply succeeded at its first attempt"
    )
    planned = verdicts["pipeline-definition-ignored"]["evidence"]
    assert planned.startswith("terraform plan after the first apply: ")
    assert "; terraform plan after the re-deploy: " in planned
    assert (
        "no --deploy-profile of the deploy role acc-test-preprod-deploy"
        in (verdicts["permissions-boundary"]["evidence"])
    )
    assert verdicts["alarms-quiet"]["evidence"].startswith("15 alarms named acc-test-preprod-*")
    assert verdicts["job-names-and-search"]["evidence"] == (
        "8 SEARCH expressions on acc-test-preprod-batch-inference"  # 3 of them Publish's
    )
    assert document["run"]["emulator"] is True and document["counts"]["passed"] == 0

    # version 2 was deployed over version 1: build.py's second tfvars name its package
    second = json.loads((tmp_path / "out" / "preprod.tfvars.json").read_text())
    assert second["model_version"] == 2 and second["previous_model"]["model_version"] == 1
    # given back: the stage's deployment destroyed, the bucket prefix and the uploads gone
    assert _stage(aws) == stage_before
    assert _left(aws, dev)[1] == keys_before
    left = [line.split(": ", 2)[2] for line in _not_removed(err)]
    assert [line.startswith(NOT_IN_MOTO) for line in left] == [True] * 4
    assert sum("acc-test-models in the stage account" in line for line in left) == 1
    # each package before its group (AWS deletes only an empty group), each request valid
    assert [r.operation for r in deletes] == [
        "DeleteModelPackage", "DeleteModelPackage", "DeleteModelPackage",
        "DeleteModelPackageGroup",
    ]  # fmt: skip
    assert [p for r in deletes for p in problems(r)] == []


def test_keep_leaves_what_the_run_made_and_lists_it(
    aws: Emulator,
    dev: DevRegistry,
    command: Callable[..., int],
    monkeypatch: pytest.MonkeyPatch,
    capsys,
) -> None:
    """Stopped at build.py (the full flow's teardown is the test above): what the steps
    before made stays, listed, and nothing is removed."""

    def refused(*_: Any) -> None:
        raise RuntimeError("build.py exited 2 (its error is above)")

    monkeypatch.setattr(acceptance_main.deploy, "promote", refused)
    groups_before, keys_before = _left(aws, dev)
    assert command("--keep") == 1
    groups, keys = _left(aws, dev)
    assert sorted(set(groups) - set(groups_before)) == ["acc-test-models"]
    assert sorted(set(keys) - set(keys_before)) == [
        "training/acc-test/v1/output/baseline.json",
        "training/acc-test/v1/output/model-quality.json",  # the registered holdout quality
        "training/acc-test/v1/output/model.tar.gz",
    ]
    err = capsys.readouterr().err
    assert "acceptance: the run stopped: RuntimeError: build.py exited 2" in err
    kept = [line for line in err.splitlines() if line.startswith("acceptance: kept ")]
    assert kept[0] == "acceptance: kept model package group acc-test-models"
    assert any(
        line.startswith("acceptance: kept model package arn:aws:sagemaker:") for line in kept
    )
    # recorded before build.py ran, as it may stop after making them
    assert kept[-2:] == [
        "acceptance: kept stage bucket prefix s3://preprod-artifacts-222222222222/acc-test/ "
        "(every version)",
        "acceptance: kept model package group acc-test-models in the stage account",
    ]
    assert _not_removed(err) == []


@pytest.mark.parametrize(
    ("stop", "said"),
    [("error", "RuntimeError: training in the runtime twin failed: out of memory"),
     ("SIGTERM", "KeyboardInterrupt: signal SIGTERM")],  # a cancelled CI job
)  # fmt: skip
def test_a_run_that_stops_midway_still_removes_what_it_made(
    aws: Emulator,
    dev: DevRegistry,
    command: Callable[..., int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys,
    stop: str,
    said: str,
) -> None:
    """The group is made and one artifact uploaded, then the registration fails or the run
    is sent SIGTERM: what was made is removed, the report written, SIGTERM's handler given
    back."""
    _, keys_before = _left(aws, dev)
    handler = signal.getsignal(signal.SIGTERM)

    def failing(sagemaker: Any, s3: Any, **kwargs: Any) -> Any:
        s3.put_object(Bucket=kwargs["bucket"], Key=kwargs["output_prefix"] + "/model.tar.gz")
        if stop == "SIGTERM":
            os.kill(os.getpid(), signal.SIGTERM)
        raise RuntimeError("training in the runtime twin failed: out of memory")

    monkeypatch.setattr(registration, "register", failing)
    assert command() == 3
    err = capsys.readouterr().err
    assert f"acceptance: the run stopped: {said}" in err
    assert _left(aws, dev)[1] == keys_before
    assert [line.split(": ", 2)[2].startswith(NOT_IN_MOTO[1]) for line in _not_removed(err)] == [
        True
    ]
    document = json.loads((tmp_path / "out" / "acceptance.json").read_text())
    verdicts = [c for c in document["checks"] if c["check"] != "permissions-boundary"]
    assert {c["status"] for c in verdicts} == {"skipped"}
    assert all("the run stopped" in c["evidence"] for c in verdicts)
    assert signal.getsignal(signal.SIGTERM) is handler


def test_as_the_deploy_role_the_boundary_is_tried_and_the_try_undone(
    aws: Emulator,
    command: Callable[..., int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The acceptance workflow passes the base's deploy role as --deploy-profile: the run
    writes, as that role, a policy on it (no boundary), which AWS should deny; moto does not
    evaluate IAM, so it is allowed here, reported as needing a real account, and removed by
    the teardown."""
    iam = aws.client("iam", "preprod")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
             "Principal": {"AWS": "arn:aws:iam::222222222222:root"}}]}  # fmt: skip
    role = iam.create_role(RoleName="acc-test-preprod-deploy",
                           AssumeRolePolicyDocument=json.dumps(trust))["Role"]  # fmt: skip
    keys = aws.client("sts", "preprod").assume_role(
        RoleArn=role["Arn"], RoleSessionName="GitHubActions"
    )["Credentials"]
    with (tmp_path / "credentials").open("a") as credentials:
        credentials.write(
            f"[deploy]\naws_access_key_id = {keys['AccessKeyId']}\n"
            f"aws_secret_access_key = {keys['SecretAccessKey']}\n"
            f"aws_session_token = {keys['SessionToken']}\n"
        )

    def stop(*_: Any) -> None:
        raise RuntimeError("build.py exited 1 (its error is above)")

    monkeypatch.setattr(acceptance_main.deploy, "promote", stop)
    assert command("--deploy-profile", "deploy") == 3  # moto keeps the dev packages
    document = json.loads((tmp_path / "out" / "acceptance.json").read_text())
    (boundary,) = [c for c in document["checks"] if c["check"] == "permissions-boundary"]
    assert boundary == {
        "check": "permissions-boundary",
        "status": "needs-real-account",
        "evidence": "PutRolePolicy on acc-test-preprod-deploy (no boundary) was allowed",
    }
    assert iam.list_role_policies(RoleName="acc-test-preprod-deploy")["PolicyNames"] == []


# ------------------------------------- the real-account steps' requests, against the emulator


def _run(aws: Emulator, tmp_path: Path) -> Any:
    """A run as in a real account (not flagged as the emulator): what each step concludes
    from what it reads, shown on the emulator's answers."""
    from acceptance.flow import Run

    return Run(aws.account("dev"), aws.account("preprod"), "acc-test", "dev-bucket", tmp_path)


def test_the_events_the_run_sends_are_the_ones_the_functions_take(aws: Emulator) -> None:
    from acceptance import runs
    from lambdas.start_scheduled_run import handler as scheduled
    from lambdas.start_upload_run import handler as upload

    day, _ = scheduled.scheduled_day(runs.scheduled_event(runs.SCHEDULED))
    assert scheduled.window(day, lookback_days=2)[-1] == runs.SCHEDULED  # the day scored
    s3, bucket = aws.client("s3", "preprod"), "preprod-artifacts-222222222222"
    create_stage(aws, "preprod", "acc-test")
    key = f"acc-test/batch-inference/input/{runs.UPLOADS[0]}"
    s3.put_object(Bucket=bucket, Key=key, Body=runs.SAMPLE.read_bytes())
    config = upload.Config("p", {"OutputDataUrl": "s3://b/o"}, bucket,
                           "acc-test/batch-inference/input/", 1, "q")  # fmt: skip
    (record,) = runs.redelivery(bucket, key, None)["Records"]
    uri, _ = upload.checked_object(s3, config, record["body"])
    assert uri == f"s3://{bucket}/{key}"  # the space as it is, never encoded


def test_a_volume_key_sagemaker_accepts_on_an_nvme_type_fails_the_check_and_is_stopped(
    aws: Emulator, tmp_path: Path
) -> None:
    """moto accepts the job AWS should refuse: the check fails, and the job is stopped."""
    from acceptance import deploy
    from pipelines import sdk

    assert not sdk.instance_supports_kms(deploy.NVME_TYPE)  # the SDK's table: NVMe
    run = _run(aws, tmp_path)
    found = create_stage(aws, "preprod", "acc-test", kms=True)
    deploy.nvme_volume_key(run, found, "123456789012.dkr.ecr.eu-west-1.amazonaws.com/x:1")
    (verdict,) = run.verdicts
    assert (verdict.check, verdict.status) == ("nvme-volume-key", "failed")
    assert "was accepted (stopped)" in verdict.evidence
    assert run.made.teardown() == []
    job = aws.client("sagemaker", "preprod").describe_processing_job(
        ProcessingJobName="acc-test-nvme-volume-key"
    )
    assert job["ProcessingJobStatus"] in ("Stopping", "Stopped")


def test_the_read_back_finds_the_handlers_line_and_names_a_loud_alarm(
    aws: Emulator, tmp_path: Path
) -> None:
    from acceptance import observe, runs

    run = _run(aws, tmp_path)
    stage = runs.Stage(tmp_path / "t.json", {"pipeline_name": "acc-test-preprod-batch-inference",
                                             "project_name": "acc-test",
                                             "environment": "preprod"})  # fmt: skip
    logs, group = aws.client("logs", "preprod"), "/aws/sagemaker/TransformJobs"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="acc-job/i-0abc-1")
    line = '{"event":"batch-predictions","pipeline":"acc-test-preprod-batch-inference","n":40}'
    logs.put_log_events(logGroupName=group, logStreamName="acc-job/i-0abc-1", logEvents=[
        {"timestamp": int(time.time() * 1000), "message": "other output"},
        {"timestamp": int(time.time() * 1000), "message": line}])  # fmt: skip
    observe.job_logs(run, stage, "acc-job")
    cloudwatch = aws.client("cloudwatch", "preprod")
    for name in ("acc-test-preprod-batch-inference-failed", "acc-test-preprod-x"):
        cloudwatch.put_metric_alarm(AlarmName=name, MetricName="m", Namespace="n", Period=60,
                                    EvaluationPeriods=1, Threshold=1, Statistic="Sum",
                                    ComparisonOperator="GreaterThanThreshold")  # fmt: skip
    cloudwatch.set_alarm_state(AlarmName="acc-test-preprod-x", StateValue="ALARM",
                               StateReason="test")  # fmt: skip
    observe.alarms(run)
    verdicts = {v.check: v for v in run.verdicts}
    assert verdicts["handler-stdout"].status == "passed"
    assert verdicts["handler-stdout"].evidence.startswith("1 batch-predictions line(s)")
    assert verdicts["pipeline-name-in-transform"].status == "passed"
    assert verdicts["alarms-quiet"].status == "failed"
    assert verdicts["alarms-quiet"].evidence.endswith("not quiet: {'acc-test-preprod-x': 'ALARM'}")


def test_the_endpoint_checks_fail_where_the_emulator_does_not_do_what_aws_must(
    aws: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An endpoint as the applies leave it, on the emulator: what the run reads back and
    concludes. moto serves it InService with the key, but publishes no ModelLatency and
    writes no capture; it has no UpdateEndpoint, so the update goes through the proxy that
    answers as AWS does once an update was rolled back, but without the FailureReason AWS
    sets. Each of those fails (as an account behaving so would), and the configuration copy
    is removed."""
    from acceptance import endpoint, runs

    found = create_stage(aws, "preprod", "acc-test", kms=True)
    sagemaker = aws.client("sagemaker", "preprod")
    sagemaker.create_model(ModelName="acc-test-preprod-v2", ExecutionRoleArn=found[
        "sagemaker-role-arn"], PrimaryContainer={"Image": "x"})  # fmt: skip
    capture = "s3://preprod-artifacts-222222222222/acc-test/data-capture/preprod"
    sagemaker.create_endpoint_config(
        EndpointConfigName="acc-test-preprod-v2-abc", KmsKeyId=found["kms-key-arn"],
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "acc-test-preprod-v2",
                             "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}],
        DataCaptureConfig={"EnableCapture": True, "InitialSamplingPercentage": 10,
                           "DestinationS3Uri": capture,
                           "CaptureOptions": [{"CaptureMode": "Input"}]},
    )  # fmt: skip
    sagemaker.create_endpoint(EndpointName="acc-test-preprod-realtime",
                              EndpointConfigName="acc-test-preprod-v2-abc")  # fmt: skip
    stage = runs.Stage(tmp_path / "t.json", {"endpoint": {"instance_type": "ml.m5.large"},
                                             "kms_key_arn": found["kms-key-arn"]})  # fmt: skip
    run = _run(aws, tmp_path)
    with rolled_back_updates(aws.endpoint_url, "222222222222") as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", proxy.url)
        endpoint.endpoint(run, stage, wait=0)
        assert run.made.teardown() == []  # the copy, through the client the run made
    assert proxy.rolled_back == ["acc-test-preprod-realtime"]
    verdicts = {v.check: (v.status, v.evidence) for v in run.verdicts}
    assert verdicts["endpoint-config-key-grant"][0] == "passed"
    assert verdicts["serverless-without-isolation"] == (
        "skipped", "the stage file's endpoint is instance-based"
    )  # fmt: skip
    assert verdicts["model-latency-p99"][0] == "failed"
    assert verdicts["data-capture"] == (
        "failed", f"0 object(s) under {capture} after 50 invocations (sampling 10 %)"
    )  # fmt: skip
    status, evidence = verdicts["rolled-back-update"]
    assert status == "failed"
    assert evidence.endswith("InService on acc-test-preprod-v2-abc, FailureReason ''")
    configs = sagemaker.list_endpoint_configs()["EndpointConfigs"]
    assert [c["EndpointConfigName"] for c in configs] == ["acc-test-preprod-v2-abc"]


def test_the_endpoint_gets_the_rows_without_header_or_id() -> None:
    from acceptance import endpoint, runs

    sample = runs.SAMPLE.read_bytes().decode().splitlines()
    rows = endpoint.features(runs.SAMPLE.read_bytes()).decode().splitlines()
    assert len(rows) == len(sample) - 1
    assert rows[0] == sample[1].split(",", 1)[1]
    assert len(rows[0].split(",")) == len(sample[0].split(",")) - 1


def test_a_start_sent_again_with_the_token_that_starts_a_second_run_fails_and_is_stopped(
    aws: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto keeps no ClientRequestToken: the start the run sends again, as another starter
    would, gets a new execution there, which an account must not do. The run records it to
    be stopped (moto has no StopPipelineExecution: the request is held to botocore's model)."""
    from acceptance import runs

    sagemaker = aws.client("sagemaker", "preprod")
    create_empty_pipeline(sagemaker, "acc-test-preprod-batch-inference")
    stage = runs.Stage(tmp_path / "t.json", {
        "pipeline_name": "acc-test-preprod-batch-inference",
        "input_data_url": "s3://b/acc-test/batch-inference/input",
        "output_data_url": "s3://b/acc-test/batch-inference/output"})  # fmt: skip
    first = sagemaker.start_pipeline_execution(
        PipelineName=stage.pipeline, PipelineExecutionDisplayName="day-dt-2001-01-10",
        PipelineExecutionDescription="Run of partition dt=2001-01-10",
        PipelineParameters=[{"Name": "InputDataUrl",
                             "Value": stage.layout.input_uri(runs.SCHEDULED)}],
        ClientRequestToken="t" * 64,
    )["PipelineExecutionArn"]  # fmt: skip
    run = _run(aws, tmp_path)
    stops: list[Request] = []
    run.stage.events.register(
        "before-parameter-build.sagemaker.StopPipelineExecution",
        lambda params, **_: stops.append(Request("sagemaker", "StopPipelineExecution",
                                                 dict(params))),
    )  # fmt: skip
    again = runs.start_again(run, stage, first)
    assert again != first
    assert set(runs.executions_for(run, stage, stage.layout.input_uri(runs.SCHEDULED))) == {
        again, first
    }  # fmt: skip
    (left,) = run.made.teardown()
    assert left.startswith(f"pipeline execution {again} (a second start of one day)")
    (stop,) = stops
    assert stop.body["PipelineExecutionArn"] == again and problems(stop) == []
