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
        for name in ("sagemaker-execution", "upload-starter")  # the schedule no longer uses
    }  # start-pipeline: its function starts runs as the upload-starter role
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
    writes = [
        action
        for statement in plan_policy["Statement"]
        for action in _list(statement)
        if not action.split(":")[1].startswith(("Get", "Describe", "List"))
        and action != "kms:Decrypt"
    ]
    assert writes == []
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
    assert sorted(readers["Principal"]["AWS"]) == sorted(deploy_roles)
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
    assert sorted(g["GranteePrincipal"] for g in grants) == sorted(deploy_roles)
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
