"""infra/: each account's base Terraform applied for real against the emulator.

The target-account root is applied into the pre-prod account and then build.py promotes a
model with nothing else set up: the SSM contract, bucket, key and role it reads are the ones
Terraform created. The dev-account root is applied with the real dispatch Lambda zip.
Both are planned again after apply (no unexpected drift) and destroyed.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.events.models import EventPattern
from moto.events.utils import EventMessageType

import build
import utils
from common import aws_sessions
from lambdas.package import build_zip
from local_mode import sandbox
from local_mode.emulator import ACCOUNTS, REGION, Emulator, role_arn
from tests import iam_review
from tests.iam_calls import CallRecorder, image_pulls, missing_permissions, policy_document
from tests.provider_requests import refused_requests
from tests.registry import (
    GROUP,
    PROJECT,
    DevRegistry,
    create_stage,
    model_tarball,
    pulled_images,
    push_image,
    replicate,
    replicate_images_to,
    run_build,
    target_packages,
)
from tests.terraform_cli import (
    in_account,
    local_root,
    unexpected_drift,
)

REPOSITORY = "acme/churn-batch"
PROJECT_SESSION = aws_sessions.session  # before any test replaces it
# moto 5.2.5 leaves a bucket's EventBridge notification out of
# GetBucketNotificationConfiguration, and does not keep a function's DeadLetterConfig, so the
# plan after apply wants to set them again (and this test cannot read the latter back).
EMULATOR_DRIFT = {
    "aws_s3_bucket_notification.artifacts": {"eventbridge"},
    "aws_lambda_function.dispatch": {"dead_letter_config"},
}


@pytest.fixture
def build_calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, CallRecorder]:
    """Every API call build.py makes, by side: ``source`` (dev) and ``target`` (the stage)."""
    recorders = {"source": CallRecorder(), "target": CallRecorder()}
    real_clients = build._clients

    def watched(args: argparse.Namespace) -> utils.Clients:
        clients = real_clients(args)
        for name, client in vars(clients).items():
            recorders[name.split("_")[0]].watch(client)
        return clients

    monkeypatch.setattr(build, "_clients", watched)
    return recorders


def write_vars(module: Path, values: dict) -> None:
    (module / "terraform.tfvars.json").write_text(json.dumps(values))


def empty_bucket(aws: Emulator, account: str, bucket: str) -> None:
    """Every version and delete marker, so destroy can remove a versioned bucket."""
    s3 = aws.client("s3", account)
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for entry in page.get("Versions", []) + page.get("DeleteMarkers", []):
            s3.delete_object(Bucket=bucket, Key=entry["Key"], VersionId=entry["VersionId"])


def assert_the_day_is_evaluated_and_recorded(
    aws: Emulator, tfvars: dict, monkeypatch: pytest.MonkeyPatch, schedule: Any, outcome: Any
) -> None:
    """The functions' model-quality calls, as the template configures them (their policy is
    checked with the rest of their calls)."""
    from stage_runtime import model_quality, partitions

    admin = aws.client("sagemaker", "preprod")
    admin.create_pipeline(
        PipelineName=tfvars["quality_pipeline_name"],
        ClientRequestToken=str(uuid.uuid4()),
        PipelineDefinitionS3Location={
            "Bucket": tfvars["artifacts_bucket"],
            "ObjectKey": tfvars["quality_pipeline_definition_s3_key"],
        },
        RoleArn=tfvars["sagemaker_role_arn"],
    )
    for name, value in {
        "QUALITY_PIPELINE_NAME": tfvars["quality_pipeline_name"],
        "LABELS_URL": tfvars["labels_url"],
        "PREDICTIONS_TABLE_URL": tfvars["predictions_table_url"],
        "LABEL_LOOKBACK_DAYS": "14",
    }.items():
        monkeypatch.setenv(name, value)
    s3 = aws.client("s3", "preprod")
    bucket, prefix = partitions.parse_s3_uri(f"{tfvars['labels_url']}dt=2026-11-01/")
    s3.put_object(Bucket=bucket, Key=f"{prefix}labels.csv", Body=b"record_id,label\nr1,1\n")
    event = {"source": "aws.events", "detail-type": "Scheduled Event", "id": str(uuid.uuid4())}
    night = schedule.handler({**event, "time": "2026-11-06T01:00:00Z"})
    evaluation = night["model_quality"]["2026-11-01"]
    assert evaluation["action"] == "start"
    arn = evaluation["execution_arn"]
    output = f"{tfvars['output_data_url']}/dt=2026-11-01/{model_quality.QUALITY_FOLDER}"
    bucket, prefix = partitions.parse_s3_uri(output)
    result = {"metrics": {"auc": 0.5}, "coverage": {"matched": 1}, "verdict": "unknown"}
    s3.put_object(  # what the job writes (moto runs no step; its execution ended at once)
        Bucket=bucket, Key=f"{prefix}/{arn.rsplit('/', 1)[-1]}/{model_quality.RESULT}",
        Body=json.dumps(result).encode(),
    )  # fmt: skip
    ended = {"source": outcome.EVENT_SOURCE, "detail-type": outcome.EVENT_TYPE}
    recorded = outcome.handler({**ended, "detail": {"pipelineExecutionArn": arn}})
    assert recorded["recorded"] is True and recorded["status"] == "Succeeded"


def assert_the_schedule_function_may_do_what_it_does(
    aws: Emulator, iam: Any, tfvars: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The schedule's function, run against the stage as build.py promoted it (a day with
    data, a day without, the same event again once the run ended), the run-outcome function
    on the run's end and the upload function on an uploaded object: every call they made is
    granted by the run-starter role's policy, the role the template gives them."""
    from common import aws_sessions
    from lambdas.record_run_outcome import handler as outcome
    from lambdas.start_scheduled_run import handler as schedule
    from lambdas.start_upload_run import handler as upload
    from stage_runtime import partitions
    from tests.registry import create_deployed_pipeline

    create_deployed_pipeline(aws, tfvars)
    layout = partitions.Layout(tfvars["input_data_url"], tfvars["output_data_url"])
    bucket, prefix = partitions.parse_s3_uri(layout.input_uri(date(2026, 11, 1)))
    s3 = aws.client("s3", "preprod")
    s3.put_object(Bucket=bucket, Key=f"{prefix}a.csv", Body=b"record_id\nr1\n")
    recorder = CallRecorder()
    keys = aws.credential_variables("preprod")  # the function's own session, as the role
    session = boto3.Session(
        aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=keys["AWS_SESSION_TOKEN"],
        region_name=REGION,
    )
    real_client: Any = session.client  # (boto3's overloads type one service per call)

    def watched_client(service: str, **kwargs: Any) -> Any:
        return recorder.watch(real_client(service, endpoint_url=aws.endpoint_url, **kwargs))

    monkeypatch.setattr(session, "client", watched_client)
    # the three functions' sessions are the project's (one retry policy): this one, watched
    monkeypatch.setattr(aws_sessions, "session", lambda *_, **__: session)
    input_bucket, input_prefix = partitions.parse_s3_uri(tfvars["input_data_url"])
    for name, value in {
        "PIPELINE_NAME": tfvars["pipeline_name"],
        "PIPELINE_PARAMETERS": json.dumps({"ModelName": tfvars["model_name"]}),
        "INPUT_DATA_URL": tfvars["input_data_url"],
        "OUTPUT_DATA_URL": tfvars["output_data_url"],
        "PARTITION_FORMAT": tfvars["partition_format"],
        "KMS_KEY_ARN": tfvars["kms_key_arn"],
        "LOOKBACK_DAYS": "1",
        "INPUT_BUCKET": input_bucket,
        "INPUT_PREFIX": input_prefix.rstrip("/") + "/",
        "MAX_RUNNING": "2",
        "REFUSED_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/1/refused.fifo",  # unused
    }.items():
        monkeypatch.setenv(name, value)
    event = {"source": "aws.events", "detail-type": "Scheduled Event", "id": str(uuid.uuid4())}
    first = schedule.handler({**event, "time": "2026-11-02T01:00:00Z"})
    assert [a["action"] for a in first.values()] == ["empty", "started"]
    arn = first["2026-11-01"]["execution_arn"]
    ended = {"source": outcome.EVENT_SOURCE, "detail-type": outcome.EVENT_TYPE}
    recorded = outcome.handler({**ended, "detail": {"pipelineExecutionArn": arn}})
    assert recorded["recorded"] is True  # moto's run ended at once
    again = schedule.handler({**event, "time": "2026-11-02T01:00:00Z"})
    assert [a["action"] for a in again.values()] == ["empty", "skipped"]
    # the freshness check (the deadline rule's event): a day scored, a day never looked at
    monkeypatch.setenv("SCORE_BY_HOURS", "6")
    checks = {"2026-11-02T06:00:00Z": "scored", "2026-10-30T06:00:00Z": "schedule-did-not-fire"}
    for fired, reason in checks.items():
        wrapped = {"check": "freshness", "event": {**event, "time": fired}}
        assert schedule.handler(wrapped)["reason"] == reason
    key = f"{input_prefix.rstrip('/')}/adhoc/b.csv"
    s3.put_object(Bucket=input_bucket, Key=key, Body=b"record_id\nr1\n")
    parameters = {"ModelName": tfvars["model_name"], "OutputDataUrl": tfvars["output_data_url"]}
    monkeypatch.setenv("PIPELINE_PARAMETERS", json.dumps(parameters))
    body = json.dumps({"detail": {"bucket": {"name": input_bucket}, "object": {"key": key}}})
    started = upload.handler({"Records": [{"messageId": "m1", "body": body}]})["started"]
    assert len(started) == 1
    # model quality (#32): the scored day's labels land; the next night's schedule starts its
    # evaluation and the run-outcome function records its end in the day's marker
    assert_the_day_is_evaluated_and_recorded(aws, tfvars, monkeypatch, schedule, outcome)
    operations = {operation for _, operation, _ in recorder.calls}
    assert operations >= {
        "ListObjectsV2", "GetObject", "HeadObject", "PutObject", "StartPipelineExecution",
        "DescribePipelineExecution", "ListPipelineParametersForExecution",
        "ListPipelineExecutions", "ListPipelineExecutionSteps",
    }  # fmt: skip
    starter = policy_document(
        iam.get_role_policy(
            RoleName=f"{PROJECT}-preprod-upload-starter", PolicyName="read-uploads-start-pipeline"
        )["PolicyDocument"]
    )
    region, account = REGION, ACCOUNTS["preprod"]
    assert missing_permissions(recorder, starter, region, account) == []
    assert missing_permissions(recorder, {"Statement": []}, region, account)
    # a run's cost describes each step's job (moto lists no steps, so no job was described
    # above): the jobs as the stage's pipeline names them are granted, another project's not
    from local_mode.executor import job_name

    definition = json.loads(
        s3.get_object(Bucket=tfvars["artifacts_bucket"], Key=tfvars["pipeline_definition_s3_key"])[
            "Body"
        ].read()
    )
    described = CallRecorder([
        ("sagemaker", f"Describe{step['Type']}Job",
         {f"{step['Type']}JobName": job_name(step, "k3x9q2m7w1z4")})
        for step in definition["Steps"]
    ])  # fmt: skip
    assert len(described.calls) == 3
    assert missing_permissions(described, starter, region, account) == []
    others = CallRecorder([
        ("sagemaker", "DescribeProcessingJob", {"ProcessingJobName": "other-preprod-preprocess-x"}),
        ("sagemaker", "DescribeTransformJob", {"TransformJobName": "pipelines-k3x9-Transform"}),
    ])  # fmt: skip
    assert len(missing_permissions(others, starter, region, account)) == 2


def test_target_account_infra_is_what_build_py_reads(
    aws: Emulator,
    terraform: str,
    tmp_path: Path,
    build_calls: dict[str, CallRecorder],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dev = DevRegistry(aws)
    # served by the team's own image: in the dev registry, replicated to the stage
    replicate_images_to(aws, "preprod")
    image = push_image(aws, "dev", f"{PROJECT}/serving", "v1", layer="serving image")
    url = dev.put_artifact("training/run-1/output/model.tar.gz", model_tarball(b"model"))
    source = dev.register("Approved", [{"Image": image, "ModelDataUrl": url}])
    module = local_root("target-account", tmp_path / "target")
    write_vars(
        module,
        {
            "region": REGION,
            "project_name": PROJECT,
            "environment": "preprod",
            "model_package_group_name": GROUP,
            "github_repository": REPOSITORY,
            "dev_account_id": ACCOUNTS["dev"],
            "accept_image_replication": True,  # the team's own image below
            "plan_role": True,  # prod's by default: the same role, checked here in preprod
            "dev_artifacts_bucket": dev.bucket,
            "dev_model_artifact_prefixes": ["training/"],
            "subnet_ids": ["subnet-0a", "subnet-0b"],
            "security_group_ids": ["sg-0a"],
            "output_retention_days": 30,
            "log_retention_days": 90,
            # a data lake of the dev account: its grants judged below with the others
            "external_inputs": [
                {
                    "url": "s3://data-lake/churn/scoring/",
                    "account_id": ACCOUNTS["dev"],
                    "kms_key_arn": f"arn:aws:kms:{REGION}:{ACCOUNTS['dev']}:key/lake",
                }
            ],
        },
    )
    tf = in_account(terraform, aws, "preprod", module)
    tf("init")
    tf("apply", "-auto-approve")
    iam_review.check(tf, "target-account", "preprod")  # parliament's and cloudsplaining's view
    outputs = {k: v["value"] for k, v in json.loads(tf("output", "-json").stdout).items()}

    # The emulator speaks plain HTTP, which the TLS-only bucket policy refuses, as it should;
    # with that shown, the policy is lifted so build.py can run (the plan below puts it back).
    s3, bucket = aws.client("s3", "preprod"), outputs["artifacts_bucket"]
    with pytest.raises(ClientError, match="Forbidden"):
        s3.put_object(Bucket=bucket, Key=f"{PROJECT}/batch-inference/input/x.csv", Body=b"1")
    s3.delete_bucket_policy(Bucket=bucket)

    # the registry lets the dev account replicate the project's repositories, no others
    registry = json.loads(aws.client("ecr", "preprod").get_registry_policy()["policyText"])
    (replication,) = registry["Statement"]
    assert replication["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNTS['dev']}:root"}
    assert sorted(_list(replication)) == ["ecr:CreateRepository", "ecr:ReplicateImage"]
    stage_repositories = f"arn:aws:ecr:{REGION}:{ACCOUNTS['preprod']}:repository/{PROJECT}*"
    assert _resources(replication) == [stage_repositories]
    replicate(aws, image, "preprod")  # what ECR does once that policy lets it

    # build.py runs against exactly what Terraform made
    assert run_build(tmp_path, stage="preprod") == 0
    tfvars = json.loads((tmp_path / "preprod.tfvars.json").read_text())
    assert tfvars["artifacts_bucket"] == outputs["artifacts_bucket"]
    assert tfvars["sagemaker_role_arn"] == outputs["sagemaker_role_arn"]
    assert tfvars["kms_key_arn"] == outputs["kms_key_arn"]
    assert tfvars["subnet_ids"] == ["subnet-0a", "subnet-0b"]
    assert tfvars["security_group_ids"] == ["sg-0a"]
    assert tfvars["external_inputs"] == [
        {"url": "s3://data-lake/churn/scoring/", "account_id": ACCOUNTS["dev"],
         "kms_key_arn": f"arn:aws:kms:{REGION}:{ACCOUNTS['dev']}:key/lake"},
    ]  # fmt: skip
    assert tfvars["source_model_package_arn"] == source

    head = s3.head_object(Bucket=bucket, Key=tfvars["pipeline_definition_s3_key"])
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == outputs["kms_key_arn"]
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    assert all(s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"].values())
    rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert rules["expire-old-outputs"]["Filter"]["Prefix"] == f"{PROJECT}/batch-inference/output/"
    assert rules["expire-old-outputs"]["Expiration"]["Days"] == 30

    iam = aws.client("iam", "preprod")
    deploy_policy = policy_document(
        iam.get_role_policy(RoleName=f"{PROJECT}-preprod-deploy", PolicyName="deploy-preprod")[
            "PolicyDocument"
        ]
    )
    assert build_calls["target"].calls
    region, account = REGION, ACCOUNTS["preprod"]
    assert missing_permissions(build_calls["target"], deploy_policy, region, account) == []
    assert missing_permissions(build_calls["target"], {"Statement": []}, region, account)
    assert_the_execution_role_is_capped_by_its_boundary(aws, deploy_policy, tfvars)
    assert event_stream_exits(deploy_policy) == []
    passed = {
        r for s in deploy_policy["Statement"] if "iam:PassRole" in _list(s) for r in _resources(s)
    }
    assert passed == {
        role_arn("preprod", f"{PROJECT}-preprod-{name}")
        # the schedule no longer uses start-pipeline: its function starts runs as the
        # upload-starter role; the shadow pipeline (#33) runs as shadow-execution
        for name in ("sagemaker-execution", "upload-starter", "shadow-execution")
    }
    assert tfvars["shadow_role_arn"] == outputs["shadow_role_arn"]
    assert tfvars["shadow_role_arn"] == role_arn("preprod", f"{PROJECT}-preprod-shadow-execution")
    assert tfvars["start_pipeline_role_arn"] == role_arn(
        "preprod", f"{PROJECT}-preprod-start-pipeline"
    )
    assert tfvars["upload_starter_role_arn"] == role_arn(
        "preprod", f"{PROJECT}-preprod-upload-starter"
    )
    trust = policy_document(
        iam.get_role(RoleName=f"{PROJECT}-preprod-deploy")["Role"]["AssumeRolePolicyDocument"]
    )
    (statement,) = trust["Statement"]
    assert statement["Condition"]["StringEquals"] == {
        "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
        "token.actions.githubusercontent.com:sub": f"repo:{REPOSITORY}:environment:preprod",
    }
    # the plan before the gate: a read-only role, trusted by the "<stage>-plan" environment
    # only, that covers every call build.py --plan-only makes
    plan_policy = policy_document(
        iam.get_role_policy(RoleName=f"{PROJECT}-preprod-plan", PolicyName="plan-preprod")[
            "PolicyDocument"
        ]
    )
    assert plan_writes(plan_policy) == shadow_writes(bucket, outputs)
    build_calls["target"].calls.clear()
    assert run_build(tmp_path, "--plan-only", stage="preprod") == 0
    assert build_calls["target"].calls
    assert missing_permissions(build_calls["target"], plan_policy, region, account) == []
    # with an auto-scaled endpoint, build.py also looks for the account's scaling role
    scaling = CallRecorder([("iam", "GetRole", {"RoleName": utils.ENDPOINT_SCALING_ROLE})])
    for checked in (deploy_policy, plan_policy):
        assert missing_permissions(scaling, checked, region, account) == []
    plan_trust = policy_document(
        iam.get_role(RoleName=f"{PROJECT}-preprod-plan")["Role"]["AssumeRolePolicyDocument"]
    )
    assert (
        plan_trust["Statement"][0]["Condition"]["StringEquals"][
            "token.actions.githubusercontent.com:sub"
        ]
        == f"repo:{REPOSITORY}:environment:preprod-plan"
    )
    assert_the_schedule_function_may_do_what_it_does(aws, iam, tfvars, monkeypatch)
    policies = {"plan": plan_policy, "deploy": deploy_policy}
    assert_the_shadow_run_may_do_what_it_does(
        aws, tmp_path, tfvars, policies, build_calls, image, monkeypatch
    )
    assert_the_shadow_role_writes_only_shadow_outputs(aws, tfvars)
    execution = execution_base_policy(aws)
    granted = {s["Sid"]: s for s in execution["Statement"]}
    # the pipeline's Processing job only isolated and in the stage's subnets (issue #27 L2)
    (starts,) = [s for s in granted.values() if "sagemaker:CreateProcessingJob" in _list(s)]
    assert starts["Condition"]["Bool"] == {"sagemaker:NetworkIsolation": "true"}
    assert sorted(starts["Condition"]["ForAllValues:StringEquals"]["sagemaker:VpcSubnets"]) == [
        "subnet-0a", "subnet-0b",
    ]  # fmt: skip
    assert granted["WriteRunOutputs"]["Resource"].endswith(f"/{PROJECT}/batch-inference/output/*")
    # subnets given -> network interfaces, in those subnets and security groups only
    ec2 = f"arn:aws:ec2:{REGION}:{ACCOUNTS['preprod']}"
    assert sorted(_resources(granted["CreateInterfacesInTheStageSubnets"])) == [
        f"{ec2}:network-interface/*",
        f"{ec2}:security-group/sg-0a",
        f"{ec2}:subnet/subnet-0a",
        f"{ec2}:subnet/subnet-0b",
    ]
    assert granted["ManageInterfacesInTheStageSubnets"]["Condition"]["ArnEquals"] == {
        "ec2:Subnet": [f"{ec2}:subnet/subnet-0a", f"{ec2}:subnet/subnet-0b"]
    }
    unscoped = [s for s in granted.values() if "*" in _resources(s)]
    assert {a for s in unscoped for a in _list(s)} <= {
        "cloudwatch:PutMetricData",
        "ecr:GetAuthorizationToken",
        *(f"ec2:Describe{n}" for n in ("NetworkInterfaces", "Vpcs", "DhcpOptions", "Subnets")),
        "ec2:DescribeSecurityGroups",
    }
    assert not any(a == "*" or a.endswith(":*") for s in granted.values() for a in _list(s))
    logs = aws.client("logs", "preprod").describe_log_groups(logGroupNamePrefix="/aws/sagemaker/")
    assert {g["logGroupName"]: g["retentionInDays"] for g in logs["logGroups"]} == {
        "/aws/sagemaker/ProcessingJobs": 90,
        "/aws/sagemaker/TransformJobs": 90,
    }

    tf("plan", "-out=after-apply.plan")
    plan = json.loads(tf("show", "-json", "after-apply.plan").stdout)
    lifted = 'aws_s3_bucket_policy.this["artifacts"]'
    assert [c["change"]["actions"] for c in plan["resource_changes"] if c["address"] == lifted] == [
        ["create"]
    ]
    assert unexpected_drift(plan, {**EMULATOR_DRIFT, lifted: {"bucket", "id", "policy"}}) == {}

    empty_bucket(aws, "preprod", bucket)
    tf("destroy", "-auto-approve")
    # what the provider sent, checked against AWS's model (moto accepts more)
    assert refused_requests(module / "provider.log") == []
    assert (
        aws.client("ssm", "preprod").get_parameters_by_path(Path=f"/{PROJECT}/preprod")[
            "Parameters"
        ]
        == []
    )


def plan_writes(policy: dict) -> dict[str, set[str]]:
    """The plan role's grants other than reads, by action: the resources of each."""
    writes: dict[str, set[str]] = {}
    for statement in policy["Statement"]:
        for action in _list(statement):
            if action.split(":")[1].startswith(("Get", "Describe", "List")):
                continue
            if action != "kms:Decrypt":
                writes.setdefault(action, set()).update(_resources(statement))
    return writes


def shadow_writes(bucket: str, outputs: dict[str, Any]) -> dict[str, set[str]]:
    """What the shadow run (#33) may change, and nothing else: the candidate's artifacts and
    model, passing the shadow role to it, and runs of the stage's shadow pipeline."""
    sagemaker = f"arn:aws:sagemaker:{REGION}:{ACCOUNTS['preprod']}"
    artifacts = {f"arn:aws:s3:::{bucket}/{PROJECT}/shadow-models/*"}
    candidates = {f"{sagemaker}:model/{g}-preprod-c*" for g in (GROUP, GROUP.lower())}
    pipelines = f"{sagemaker}:pipeline/{PROJECT}-preprod-*-shadow"
    return {
        **dict.fromkeys(["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"], artifacts),
        "kms:GenerateDataKey": {outputs["kms_key_arn"]},
        **dict.fromkeys(
            ["sagemaker:CreateModel", "sagemaker:DeleteModel", "sagemaker:AddTags"], candidates
        ),
        "iam:PassRole": {outputs["shadow_role_arn"]},
        "sagemaker:StartPipelineExecution": {pipelines},
        "sagemaker:StopPipelineExecution": {f"{pipelines}/execution/*"},
    }


def watched_session(aws: Emulator, recorder: CallRecorder) -> boto3.Session:
    """The preprod account's session whose every client's calls ``recorder`` records."""
    keys = aws.credential_variables("preprod")
    session = boto3.Session(
        aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=keys["AWS_SESSION_TOKEN"],
        region_name=REGION,
    )
    real_client: Any = session.client

    def watched_client(service: str, **kwargs: Any) -> Any:
        return recorder.watch(real_client(service, endpoint_url=aws.endpoint_url, **kwargs))

    session.client = watched_client  # type: ignore[method-assign,assignment]
    return session


def assert_the_shadow_run_may_do_what_it_does(
    aws: Emulator,
    tmp_path: Path,
    tfvars: dict,
    policies: dict[str, dict],
    build_calls: dict[str, CallRecorder],
    image: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Prod's plan job before the gate (#33), over the day the schedule's run scored, with
    version 1 deployed and version 2 approved: build.py --plan-only --shadow-candidate
    makes the candidate model, then pipelines/shadow_run.py runs it on SageMaker. Every
    call of both is the plan role's, and the shadow run writes nothing; the approved
    deployment of version 2 then deletes its candidate, as the deploy role."""
    from pipelines import shadow_run
    from promotion.names import candidate_model_name
    from promotion.stage import deployment_record_key
    from stage_runtime import partitions

    # build.py's sessions as in the workflow again (the functions' checks above replaced them)
    monkeypatch.setattr(aws_sessions, "session", PROJECT_SESSION)
    region, account = REGION, ACCOUNTS["preprod"]
    s3, admin = aws.client("s3", "preprod"), aws.client("sagemaker", "preprod")
    deployed = {
        k: tfvars[k]
        for k in ("model_name", "model_package_arn", "source_model_package_arn", "model_version")
    }
    s3.put_object(  # the record the stage's apply writes (terraform/stage/model.tf)
        Bucket=tfvars["artifacts_bucket"], Key=deployment_record_key(PROJECT, "preprod"),
        Body=json.dumps({"current": {**deployed, "endpoint_config": None}, "previous": None}),
    )  # fmt: skip
    dev = DevRegistry(aws, create=False)
    url = dev.put_artifact("training/run-2/output/model.tar.gz", model_tarball(b"model 2"))
    dev.register("Approved", [{"Image": image, "ModelDataUrl": url}])
    build_calls["target"].calls.clear()
    assert run_build(tmp_path, "--plan-only", "--shadow-candidate", stage="preprod") == 0
    planned = json.loads((tmp_path / "preprod.tfvars.json").read_text())
    candidate, version = candidate_model_name(GROUP, "preprod", 2), 2
    assert planned["model_version"] == version
    assert (
        admin.describe_model(ModelName=candidate)["ExecutionRoleArn"] == tfvars["shadow_role_arn"]
    )
    made = {op for _, op, _ in build_calls["target"].calls}
    assert made >= {"CreateModel", "CopyObject", "ListModels"}, made
    plan_policy = policies["plan"]
    assert missing_permissions(build_calls["target"], plan_policy, region, account) == []
    # the shadow pipeline as the stage's apply makes it (terraform/stage/shadow.tf), but
    # with the definition inline: moto describes an S3-made one in Python's form, not JSON
    definition = s3.get_object(
        Bucket=tfvars["artifacts_bucket"], Key=tfvars["shadow_pipeline_definition_s3_key"]
    )["Body"].read()
    admin.create_pipeline(
        PipelineName=tfvars["shadow_pipeline_name"],
        ClientRequestToken=str(uuid.uuid4()),
        PipelineDefinition=definition.decode(),
        RoleArn=tfvars["shadow_role_arn"],
    )
    layout = partitions.Layout(tfvars["input_data_url"], tfvars["output_data_url"])
    marker = partitions.read_marker(s3, layout.marker_uri(date(2026, 11, 1)))
    assert marker is not None and marker["status"] == "Succeeded"
    champion = marker["execution_arn"].rsplit("/", 1)[-1]
    bucket, table = partitions.parse_s3_uri(tfvars["predictions_table_url"])
    id_column = tfvars["predictions_table_columns"][0]["name"]
    s3.put_object(
        Bucket=bucket, Key=f"{table}day=2026-11-01/{champion}-part-0.csv",
        Body=f"{id_column},score\nr1,0.9\n".encode(),
    )  # fmt: skip
    _, output = partitions.parse_s3_uri(marker["output"])
    summary = {"quality": {"gate": {"verdict": "passed"}}}
    s3.put_object(
        Bucket=bucket, Key=f"{output}/{champion}/preprocess/summary/0.json",
        Body=json.dumps(summary).encode(),
    )  # fmt: skip
    before = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    recorder = CallRecorder()
    session = watched_session(aws, recorder)
    result = shadow_run.shadow_run(
        planned, session, "preprod", candidate, version, days=3, poll_seconds=0
    )
    # moto ends the run at once with no output: the day is not compared, its calls are made
    assert [f.split(":")[0] for f in result.failures] == ["2026-11-01"]
    # the comparison's reads of a day both runs scored: the gate verdicts it shows
    gate = shadow_run._gate(session.client("s3"), marker["output"], champion)
    assert gate == "passed"
    started = [p for _, op, p in recorder.calls if op == "StartPipelineExecution"]
    assert [p["PipelineName"] for p in started] == [tfvars["shadow_pipeline_name"]]
    assert {op for _, op, _ in recorder.calls} >= {
        "DescribeModel", "DescribePipeline", "ListObjectsV2", "GetObject",
        "StartPipelineExecution", "DescribePipelineExecution",
    }  # fmt: skip
    assert not [op for _, op, _ in recorder.calls if op.startswith(("Put", "Delete", "Copy"))]
    assert {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]} == before
    assert missing_permissions(recorder, plan_policy, region, account) == []
    assert missing_permissions(recorder, {"Statement": []}, region, account)
    # following a run that goes on, and stopping it at the deadline (moto has neither)
    execution = f"arn:aws:sagemaker:{region}:{account}:pipeline/{tfvars['shadow_pipeline_name']}"
    follows = CallRecorder([
        (service, operation, {"PipelineExecutionArn": f"{execution}/execution/k3x9q2m7w1z4"})
        for service, operation in (
            ("sagemaker", "ListPipelineExecutionSteps"), ("sagemaker", "StopPipelineExecution")
        )
    ])  # fmt: skip
    assert missing_permissions(follows, plan_policy, region, account) == []
    # never the stage's own pipeline, its runs or its models
    stage = f"arn:aws:sagemaker:{region}:{account}:pipeline/{tfvars['pipeline_name']}"
    champions = CallRecorder([
        ("sagemaker", "StartPipelineExecution", {"PipelineName": tfvars["pipeline_name"]}),
        ("sagemaker", "StopPipelineExecution", {"PipelineExecutionArn": f"{stage}/execution/x"}),
        ("sagemaker", "DeleteModel", {"ModelName": tfvars["model_name"]}),
        ("sagemaker", "CreateModel", {
            "ModelName": planned["model_name"], "ExecutionRoleArn": tfvars["shadow_role_arn"],
        }),
    ])  # fmt: skip
    assert len(missing_permissions(champions, plan_policy, region, account)) == 4
    # version 2 approved and deployed: its candidate and the candidate's copies go
    build_calls["target"].calls.clear()
    assert run_build(tmp_path, stage="preprod") == 0
    assert candidate not in {m["ModelName"] for m in admin.list_models()["Models"]}
    removed = {op for _, op, _ in build_calls["target"].calls}
    assert removed >= {"DeleteModel", "DeleteObjects"}, removed
    assert missing_permissions(build_calls["target"], policies["deploy"], region, account) == []


def assert_the_shadow_role_writes_only_shadow_outputs(aws: Emulator, tfvars: dict) -> None:
    """The shadow role (#33): capped by its own policy; writes under ``_shadow/`` only,
    never a marker, the predictions table or a champion run's outputs; transforms with
    candidate models only; no endpoint; pulls the candidate's and Preprocess's images."""
    iam = aws.client("iam", "preprod")
    name = f"{PROJECT}-preprod-shadow-execution"
    role = iam.get_role(RoleName=name)["Role"]
    (attached,) = iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
    assert role["PermissionsBoundary"]["PermissionsBoundaryArn"] == attached["PolicyArn"]
    assert iam.list_role_policies(RoleName=name)["PolicyNames"] == []
    policy = managed_policy(aws, attached["PolicyArn"])
    region, account = REGION, ACCOUNTS["preprod"]
    bucket, output = tfvars["artifacts_bucket"], tfvars["output_data_url"].split("/", 3)[3]
    champion = [
        f"{output}/_runs/dt=2026-11-01.json",  # a day's marker
        f"{output}/table/day=2026-11-01/x-part-0.csv",  # the predictions table
        f"{output}/dt=2026-11-01/x/preprocess/inference/part-0.csv",  # a run's outputs
        f"{PROJECT}/model-artifacts/churn-models/v2/model.tar.gz",
    ]
    puts = CallRecorder([("s3", "PutObject", {"Bucket": bucket, "Key": k}) for k in champion])
    assert len(missing_permissions(puts, policy, region, account)) == len(champion)
    shadow = f"{output}/_shadow/v2/dt=2026-11-01/x/preprocess/inference/part-0.csv"
    ours = CallRecorder([("s3", "PutObject", {"Bucket": bucket, "Key": shadow})])
    assert missing_permissions(ours, policy, region, account) == []
    granted = {s["Sid"]: s for s in policy["Statement"]}
    sagemaker = f"arn:aws:sagemaker:{region}:{account}"
    candidates = sorted({f"{sagemaker}:model/{g}-preprod-c*" for g in (GROUP, GROUP.lower())})
    (transforms,) = [s for s in granted.values() if "sagemaker:CreateTransformJob" in _list(s)]
    models = transforms["Condition"]["ArnLike"]["sagemaker:ModelArn"]
    assert sorted([models] if isinstance(models, str) else models) == candidates
    assert sorted(_resources(granted["UseTheCandidateModels"])) == candidates
    (processing,) = [s for s in granted.values() if "sagemaker:CreateProcessingJob" in _list(s)]
    assert processing["Condition"]["Bool"] == {"sagemaker:NetworkIsolation": "true"}
    actions = {a for s in granted.values() for a in _list(s)}
    assert not [a for a in actions if "Endpoint" in a or a.startswith("logs:CreateLogGroup")]
    (passes,) = [s for s in granted.values() if "iam:PassRole" in _list(s)]
    assert _resources(passes) == [role["Arn"]]
    for package in target_packages(aws):  # versions 1 and 2
        pulls = image_pulls(pulled_images(aws, "preprod", package, tfvars))
        assert missing_permissions(pulls, policy, region, account) == []


def managed_policy(aws: Emulator, arn: str) -> dict[str, Any]:
    iam = aws.client("iam", "preprod")
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    return policy_document(
        iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
    )


def execution_base_policy(aws: Emulator) -> dict[str, Any]:
    """The execution role's own rights: its one attached managed policy."""
    iam = aws.client("iam", "preprod")
    (attached,) = iam.list_attached_role_policies(
        RoleName=f"{PROJECT}-preprod-sagemaker-execution"
    )["AttachedPolicies"]
    assert attached["PolicyName"] == f"{PROJECT}-preprod-batch-inference"
    return managed_policy(aws, attached["PolicyArn"])


def assert_the_execution_role_is_capped_by_its_boundary(
    aws: Emulator, deploy_policy: dict, tfvars: dict
) -> None:
    """The deploy role's one IAM write: the execution role's inline policies, only while the
    role's permissions boundary holds; the boundary is the role's own policy plus image
    pulls, fits IAM's size limit, and allows every pull the stage's jobs and model make."""
    iam = aws.client("iam", "preprod")
    execution = f"{PROJECT}-preprod-sagemaker-execution"
    boundary_arn = iam.get_role(RoleName=execution)["Role"]["PermissionsBoundary"][
        "PermissionsBoundaryArn"
    ]
    assert sorted(iam_writes(deploy_policy)) == ["iam:DeleteRolePolicy", "iam:PutRolePolicy"]
    (writes,) = [s for s in deploy_policy["Statement"] if "iam:PutRolePolicy" in _list(s)]
    assert _resources(writes) == [role_arn("preprod", execution)]
    assert writes["Condition"] == {"StringEquals": {"iam:PermissionsBoundary": boundary_arn}}
    boundary = managed_policy(aws, boundary_arn)
    base = execution_base_policy(aws)
    # no inline policy from base infra: the deploy role's PutRolePolicy could overwrite it
    assert iam.list_role_policies(RoleName=execution)["PolicyNames"] == []
    extra = [s for s in boundary["Statement"] if s not in base["Statement"]]
    assert len(boundary["Statement"]) == len(base["Statement"]) + len(extra)
    assert [(s["Sid"], sorted(_list(s)), _resources(s)) for s in extra] == [
        (
            "PullImagesInTheRegion",
            ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            [f"arn:aws:ecr:{REGION}:*:repository/*"],
        )
    ]
    # IAM's limit for a managed policy: 6,144 characters, white space not counted
    assert len(json.dumps(boundary, separators=(",", ":"))) <= 6144
    # what the jobs and the model pull: the boundary lets them, the base has the token call
    (package,) = target_packages(aws)
    (model,) = {c["Image"] for c in package["InferenceSpecification"]["Containers"]}
    assert model.startswith(f"{ACCOUNTS['preprod']}.dkr.ecr")
    pulls = image_pulls(pulled_images(aws, "preprod", package, tfvars))
    assert missing_permissions(pulls, boundary, REGION, ACCOUNTS["preprod"]) == []
    assert missing_permissions(pulls, base, REGION, ACCOUNTS["preprod"]) == sorted(
        f"ecr:{action} on {repository} (ecr.{action})"
        for repository in tfvars["image_repository_arns"]
        for action in ("BatchCheckLayerAvailability", "BatchGetImage", "GetDownloadUrlForLayer")
    )  # the stage template grants those (tests/terraform/stage.tftest.hcl)


def _list(statement: dict) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else actions


def _resources(statement: dict) -> list[str]:
    resources = statement["Resource"]
    return [resources] if isinstance(resources, str) else resources


def iam_writes(policy: dict) -> list[str]:
    """Allowed actions that could change what some principal may do: ``*``, and every IAM
    action but PassRole and exact reads (a principal that may write a role's trust and
    policies can make it trust itself and assume it; a wildcard may cover such a write)."""

    def is_write(action: str) -> bool:
        service, _, name = action.partition(":")
        if action == "*" or service.lower() != "iam" or action == "iam:PassRole":
            return action == "*"
        return "*" in name or not name.startswith(("Get", "List"))

    return [
        action
        for statement in policy["Statement"]
        if statement.get("Effect", "Allow") == "Allow"
        for action in _list(statement)
        if is_write(action)
    ]


# what a rule or subscription the deploy role makes may carry out of the stage, by action:
# the condition key that must bound it and the values it may take (fnmatch patterns)
EVENT_EXITS = {
    "events:PutRule": ("events:source", {"aws.sagemaker", "aws.s3"}),
    "events:PutTargets": ("events:TargetArn", {"arn:aws:lambda:*:function:*", "arn:aws:sqs:*"}),
    "sns:Subscribe": ("sns:Protocol", {"email"}),
}


def event_stream_exits(policy: dict) -> list[str]:
    """Grants through which the account's events could leave the stage: a rule on any source,
    a target outside the stage's functions and queues, a subscription other than email."""
    exits = []
    for statement in policy["Statement"]:
        if statement.get("Effect", "Allow") != "Allow":
            continue
        for action in _list(statement):
            for guarded, (key, allowed) in EVENT_EXITS.items():
                if not fnmatch.fnmatchcase(guarded, action):
                    continue
                values = [
                    value
                    for test, keys in statement.get("Condition", {}).items()
                    if not test.startswith("Null")
                    for name, given in keys.items()
                    if name == key
                    for value in ([given] if isinstance(given, str) else given)
                ]
                if not values or not all(
                    any(fnmatch.fnmatchcase(v, pattern) for pattern in allowed) for v in values
                ):
                    exits.append(f"{statement.get('Sid', '?')}: {guarded} without {key} bound")
    return exits


def test_the_event_exit_check_is_not_vacuous() -> None:
    """What the deploy role had before the second AWS review: rules, targets and
    subscriptions on the stage's names, any source, any target, any protocol."""
    before = {
        "Statement": [
            {
                "Sid": "ManageTheStage",
                "Effect": "Allow",
                "Action": ["events:PutRule", "events:PutTargets", "sns:Subscribe"],
                "Resource": "*",
            }
        ]
    }
    assert len(event_stream_exits(before)) == 3
    wildcard = {"Statement": [{"Sid": "W", "Action": "events:Put*", "Resource": "*"}]}
    assert len(event_stream_exits(wildcard)) == 2
    outside = {
        "Statement": [
            {
                "Sid": "T",
                "Action": "events:PutTargets",
                "Resource": "*",
                "Condition": {"ForAllValues:ArnLike": {"events:TargetArn": "arn:aws:sns:*"}},
            }
        ]
    }
    assert event_stream_exits(outside) == ["T: events:PutTargets without events:TargetArn bound"]


def test_the_iam_write_check_is_not_vacuous() -> None:
    """What the template's deploy role once had (iam:PutRolePolicy on its service roles)."""
    granted = {"Statement": [{"Effect": "Allow", "Action": ["iam:GetRole", "iam:PutRolePolicy"]}]}
    assert iam_writes(granted) == ["iam:PutRolePolicy"]
    assert iam_writes({"Statement": [{"Effect": "Allow", "Action": "iam:Update*"}]})
    assert iam_writes({"Statement": [{"Effect": "Allow", "Action": ["*", "iam:*"]}]}) == [
        "*",
        "iam:*",
    ]
    assert iam_writes({"Statement": [{"Effect": "Allow", "Action": "iam:PassRole"}]}) == []


def test_a_model_is_authorised_on_its_name_its_role_and_its_tags() -> None:
    """CreateModel as IAM authorises it (the shadow's candidate): on the model, with
    iam:PassRole of its execution role and, with tags, sagemaker:AddTags on the model."""
    region, account = "eu-west-1", "222222222222"
    role = f"arn:aws:iam::{account}:role/churn-prod-shadow-execution"
    models = f"arn:aws:sagemaker:{region}:{account}:model/churn-models-prod-c"
    created = CallRecorder([
        ("sagemaker", "CreateModel", {
            "ModelName": "churn-models-prod-c2", "ExecutionRoleArn": role,
            "Tags": [{"Key": "shadow", "Value": "true"}],
        }),
    ])  # fmt: skip
    granted: dict[str, list[dict[str, Any]]] = {
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["sagemaker:CreateModel", "sagemaker:AddTags"],
                "Resource": f"{models}*",
            }
        ]
    }
    assert missing_permissions(created, granted, region, account) == [
        f"iam:PassRole on {role} (sagemaker.CreateModel)"
    ]
    granted["Statement"].append({"Effect": "Allow", "Action": "iam:PassRole", "Resource": role})
    assert missing_permissions(created, granted, region, account) == []
    deployed = CallRecorder([("sagemaker", "DeleteModel", {"ModelName": "churn-models-prod-v2"})])
    assert missing_permissions(deployed, granted, region, account) == [
        f"sagemaker:DeleteModel on {models[:-1]}v2 (sagemaker.DeleteModel)"
    ]


def approval_event(status: str, group: str = GROUP) -> EventMessageType:
    return {
        "source": "aws.sagemaker",
        "detail-type": "SageMaker Model Package State Change",
        "account": ACCOUNTS["dev"],
        "region": REGION,
        "detail": {
            "ModelPackageGroupName": group,
            "ModelPackageVersion": 3,
            "ModelApprovalStatus": status,
        },
    }


def test_dev_account_infra_dispatches_only_approvals_of_the_group(
    aws: Emulator, terraform: str, tmp_path: Path, build_calls: dict[str, CallRecorder]
) -> None:
    dev = DevRegistry(aws)
    dev.register("Approved")
    key = aws.client("kms", "dev").create_key(Description="dev artifacts")["KeyMetadata"]["Arn"]
    module = local_root("dev-account", tmp_path / "dev")
    package = tmp_path / "dispatch-deploy.zip"
    build_zip(package)
    deploy_roles = [
        role_arn("preprod", "churn-preprod-deploy"),
        role_arn("prod", "churn-prod-deploy"),
    ]
    plan_role = role_arn("prod", "churn-prod-plan")
    write_vars(
        module,
        {
            "region": REGION,
            "project_name": PROJECT,
            "model_package_group_name": GROUP,
            "github_repository": REPOSITORY,
            "model_artifacts_bucket": dev.bucket,
            "model_artifact_prefixes": ["training/"],
            "model_artifacts_kms_key_arn": key,
            "manage_model_artifacts_bucket_policy": True,
            "target_deploy_role_arns": deploy_roles,
            "target_plan_role_arns": [plan_role],  # copies a candidate for its shadow run
            "replicate_images": True,  # the team's own image below
            "dispatch_lambda_zip": str(package),
        },
    )
    tf = in_account(terraform, aws, "dev", module)
    tf("init")
    tf("apply", "-auto-approve")
    iam_review.check(tf, "dev-account", "dev")  # parliament's and cloudsplaining's view
    outputs = {k: v["value"] for k, v in json.loads(tf("output", "-json").stdout).items()}

    events = aws.client("events", "dev")
    rule = events.describe_rule(Name=f"{PROJECT}-model-approved")
    pattern = EventPattern.load(rule["EventPattern"])  # moto's EventBridge matcher
    assert pattern.matches_event(approval_event("Approved"))
    assert not pattern.matches_event(approval_event("Rejected"))
    assert not pattern.matches_event(approval_event("PendingManualApproval"))
    assert not pattern.matches_event(approval_event("Approved", group="other-models"))

    function = aws.client("lambda", "dev").get_function_configuration(
        FunctionName=f"{PROJECT}-dispatch-deploy"
    )
    (target,) = events.list_targets_by_rule(Rule=f"{PROJECT}-model-approved")["Targets"]
    assert target["Arn"] == function["FunctionArn"]
    dlq = aws.client("sqs", "dev").get_queue_attributes(
        QueueUrl=outputs["dead_letter_queue_url"], AttributeNames=["QueueArn", "KmsMasterKeyId"]
    )["Attributes"]
    assert target["DeadLetterConfig"]["Arn"] == dlq["QueueArn"]
    assert dlq["KmsMasterKeyId"]
    assert function["Environment"]["Variables"] == {
        "GITHUB_REPOSITORY": REPOSITORY,
        "GITHUB_REF": "main",
        "GITHUB_WORKFLOW_FILE": "deploy.yml",
        "GITHUB_TOKEN_SECRET_ID": outputs["github_token_secret_arn"],
        "MODEL_PACKAGE_GROUP_NAME": GROUP,
    }
    assert function["Handler"] == "handler.handler"

    policy = json.loads(aws.client("s3", "dev").get_bucket_policy(Bucket=dev.bucket)["Policy"])
    readers = next(
        s for s in policy["Statement"] if s["Sid"] == "TargetDeployRolesReadModelArtifacts"
    )
    assert sorted(readers["Principal"]["AWS"]) == sorted([*deploy_roles, plan_role])
    listers = next(
        s for s in policy["Statement"] if s["Sid"] == "TargetDeployRolesListModelArtifacts"
    )
    assert sorted(listers["Principal"]["AWS"]) == sorted(deploy_roles)  # the copy only reads
    trust = aws.client("iam", "dev").get_role(RoleName=f"{PROJECT}-registry-read")["Role"]
    trust_policy = policy_document(trust["AssumeRolePolicyDocument"])
    by_sid = {s.get("Sid"): s for s in trust_policy["Statement"]}
    assert sorted(by_sid["TargetDeployRoles"]["Principal"]["AWS"]) == sorted(deploy_roles)
    # only environments the workflows use (and the docs protect): GitHub would create any
    # other on first reference, without branch rules, open to every branch
    github = [s for s in trust_policy["Statement"] if "Federated" in s.get("Principal", {})]
    subjects = [
        subject
        for s in github
        for keys in s["Condition"].values()
        for k, v in keys.items()
        if k.endswith(":sub")
        for subject in ([v] if isinstance(v, str) else v)
    ]
    assert sorted(subjects) == [
        f"repo:{REPOSITORY}:environment:{e}" for e in ("preprod", "prod", "prod-plan")
    ]
    grants = aws.client("kms", "dev").list_grants(KeyId=key)["Grants"]
    assert sorted(g["GranteePrincipal"] for g in grants) == sorted([*deploy_roles, plan_role])
    assert all(sorted(g["Operations"]) == ["Decrypt", "DescribeKey"] for g in grants)

    # the registry-read role covers every call build.py makes in the dev account (the
    # TLS-only bucket policy is lifted first: the emulator speaks plain HTTP)
    aws.client("s3", "dev").delete_bucket_policy(Bucket=dev.bucket)
    create_stage(aws, "preprod")
    # a model served by the team's image: the registry replicates its repository to both
    # stages, and build.py reads the rule and the image's digest with this role
    (replication,) = aws.client("ecr", "dev").describe_registry()["replicationConfiguration"][
        "rules"
    ]
    assert replication == {
        "destinations": [
            {"region": REGION, "registryId": ACCOUNTS[stage]} for stage in ("preprod", "prod")
        ],
        "repositoryFilters": [{"filter": PROJECT, "filterType": "PREFIX_MATCH"}],
    }
    image = push_image(aws, "dev", f"{PROJECT}/serving", "v1", layer="serving image")
    url = dev.put_artifact("training/run-2/output/model.tar.gz", model_tarball(b"model 2"))
    dev.register("Approved", [{"Image": image, "ModelDataUrl": url}])
    replicate(aws, image, "preprod")
    assert run_build(tmp_path, stage="preprod") == 0
    operations = {operation for _, operation, _ in build_calls["source"].calls}
    assert {"DescribeRegistry", "DescribeImages"} <= operations
    read_policy = policy_document(
        aws.client("iam", "dev").get_role_policy(
            RoleName=f"{PROJECT}-registry-read", PolicyName="registry-read"
        )["PolicyDocument"]
    )
    assert build_calls["source"].calls
    assert missing_permissions(build_calls["source"], read_policy, REGION, ACCOUNTS["dev"]) == []

    tf("plan", "-out=after-apply.plan")
    plan = json.loads(tf("show", "-json", "after-apply.plan").stdout)
    lifted = "aws_s3_bucket_policy.model_artifacts[0]"
    assert unexpected_drift(plan, {**EMULATOR_DRIFT, lifted: {"bucket", "id", "policy"}}) == {}

    tf("destroy", "-auto-approve")
    # what the provider sent, checked against AWS's model (moto accepts more)
    assert refused_requests(module / "provider.log") == []
    assert events.list_rules(NamePrefix=PROJECT)["Rules"] == []
    assert sandbox.dev_bucket() == dev.bucket  # the dev bucket itself is not Terraform's
