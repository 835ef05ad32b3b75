"""The bootstrap commands (``python -m bootstrap``) against the emulator and a loopback GitHub.

Terraform runs for real: ``terraform init`` on local state, ``plan``, ``apply``, and the
migration into the S3 backend (the emulator's S3), but in a stand-in root with the real
roots' partial ``backend "s3" {}`` and output names and one ``terraform_data`` resource:
applying the real roots against the emulator takes minutes and is ``tests/test_infra.py``'s
job. So these tests prove the command's steps, its idempotence, resuming and the migration,
and the bucket-policy merge and GitHub calls on real S3/STS/IAM/SSM/SageMaker calls."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import botocore.exceptions
import pytest

from bootstrap import __main__ as cli
from bootstrap import bucket_policy, preflight, roots
from bootstrap.terraform import OVERRIDE, Terraform
from common.exit_codes import AWS_ERROR, EXECUTION_FAILED, SUCCESS, USAGE_ERROR
from local_mode.emulator import ACCOUNTS, Emulator
from tests.bootstrap_github import REPOSITORY, TOKEN, GitHubState, github_server

PROJECT = "churn"
REGION: Final = "eu-west-1"
STAND_IN = """terraform {
  backend "s3" {}
}
variable "project_name" {}
variable "environment" {
  default = "dev"
}
resource "terraform_data" "base" {
  input = "${var.project_name}-${var.environment}"
}
output "deploy_role_arn" {
  value = "arn:aws:iam::%(account)s:role/${terraform_data.base.output}-deploy"
}
output "plan_role_arn" {
  value = (var.environment == "prod"
    ? "arn:aws:iam::%(account)s:role/${terraform_data.base.output}-plan" : null)
}
output "terraform_state_bucket" {
  value = "${terraform_data.base.output}-tfstate-%(account)s"
}
output "registry_read_role_arn" {
  value = "arn:aws:iam::%(account)s:role/${var.project_name}-registry-read"
}
output "github_token_secret_arn" {
  value = "%(secret)s"
}
output "model_artifacts_bucket_policy" {
  value = jsonencode({Version = "2012-10-17", Statement = [
    {Sid = "DenyPlainHttp", Effect = "Deny", Principal = "*", Action = "s3:*",
     Resource = "arn:aws:s3:::my-dev-ml-bucket/*",
     Condition = {Bool = {"aws:SecureTransport" = "false"}}},
    {Sid = "TargetDeployRolesReadModelArtifacts", Effect = "Allow",
     Principal = {AWS = "arn:aws:iam::222222222222:role/churn-preprod-deploy"},
     Action = "s3:GetObject", Resource = "arn:aws:s3:::my-dev-ml-bucket/training/*"},
  ]})
}
"""
TARGET_TFVARS = f"""region                   = "{REGION}"
project_name             = "{PROJECT}"
environment              = "%s"
model_package_group_name = "churn-model"
github_repository        = "{REPOSITORY}"
"""
DEV_TFVARS = f"""region                   = "{REGION}"
project_name             = "{PROJECT}"
model_package_group_name = "churn-model"
github_repository        = "{REPOSITORY}"
model_artifacts_bucket   = "my-dev-ml-bucket"
dispatch_lambda_zip      = "build/dispatch-deploy.zip"
"""


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> Iterator[GitHubState]:
    with github_server() as state:
        monkeypatch.setenv("GITHUB_API_URL", state.url)
        monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
        yield state


def options(
    terraform: str, aws: Emulator, account: str, tmp_path: Path, secret: str = ""
) -> roots.Options:
    """The bootstrap in ``account`` on the emulator, with the stand-in root."""
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    (root / "main.tf").write_text(STAND_IN % {"account": ACCOUNTS[account], "secret": secret})
    variables = {
        **aws.credential_variables(account),
        "AWS_ENDPOINT_URL_S3": aws.endpoint_url,
        "AWS_ENDPOINT_URL_STS": aws.endpoint_url,
    }

    def terraform_in(folder: Path, data: Path) -> Terraform:
        return Terraform(folder, data, terraform, ("use_path_style=true",), variables)

    return roots.Options(
        aws.account(account), root=root, work=tmp_path / "work", terraform=terraform_in
    )


def tfvars(tmp_path: Path, stage: str) -> Path:
    path = tmp_path / f"{stage}.tfvars"
    path.write_text(TARGET_TFVARS % stage if stage != "dev" else DEV_TFVARS)
    return path


def test_target_applies_moves_state_to_s3_sets_github_then_changes_nothing(
    terraform: str,
    aws: Emulator,
    github: GitHubState,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bucket = f"{PROJECT}-prod-tfstate-{ACCOUNTS['prod']}"
    s3 = aws.client("s3", "prod")
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    run = options(terraform, aws, "prod", tmp_path)
    path = tfvars(tmp_path, "prod")

    dry = roots.target("prod", path, REPOSITORY, True, run)
    assert (
        dry.changed
        and github.writes == []
        and s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    )
    assert not list((tmp_path / "work").glob("*/terraform.tfstate*"))

    first = roots.target("prod", path, REPOSITORY, False, run)
    assert first.changed
    state = json.loads(
        s3.get_object(Bucket=bucket, Key=f"{PROJECT}/infra/target-account.tfstate")["Body"].read()
    )
    assert (
        state["outputs"]["deploy_role_arn"]["value"]
        == "arn:aws:iam::333333333333:role/churn-prod-deploy"
    )
    assert not list((tmp_path / "work").glob("*/terraform.tfstate*")), "the local state is left"
    assert not (run.root / OVERRIDE).exists()  # type: ignore[operator]
    assert github.variables == {
        (None, "AWS_REGION"): REGION,
        (None, "SAGEMAKER_PROJECT_NAME"): PROJECT,
        (None, "MODEL_PACKAGE_GROUP_NAME"): "churn-model",
        (None, "AWS_PROD_ACCOUNT_NUMBER"): "333333333333",
        ("prod", "AWS_DEPLOY_ROLE_ARN"): "arn:aws:iam::333333333333:role/churn-prod-deploy",
        ("prod", "TF_STATE_BUCKET"): bucket,
        ("prod-plan", "AWS_DEPLOY_ROLE_ARN"): "arn:aws:iam::333333333333:role/churn-prod-plan",
        ("prod-plan", "TF_STATE_BUCKET"): bucket,
    }
    assert set(github.environments) == {"prod", "prod-plan"}
    assert all(
        e["branches"] == [{"name": "main", "type": "branch"}] for e in github.environments.values()
    )

    writes = len(github.writes)
    capsys.readouterr()
    second = roots.target("prod", path, REPOSITORY, False, run)
    assert not second.changed and len(github.writes) == writes
    out = capsys.readouterr().out
    assert "up to date" in out and out.rstrip().endswith("nothing to change: already bootstrapped")
    versions = s3.list_object_versions(Bucket=bucket, Prefix=f"{PROJECT}/infra/")["Versions"]
    assert len(versions) == 1, "the second run wrote the state again"


def test_an_interrupted_target_run_resumes_from_its_local_state(
    terraform: str, aws: Emulator, tmp_path: Path
) -> None:
    """A run stopped after the apply (here: no state bucket yet, so the migration fails)
    keeps its local state; the next run applies nothing new and migrates it."""
    run = options(terraform, aws, "preprod", tmp_path)
    path = tfvars(tmp_path, "preprod")
    with pytest.raises(cli.CommandFailed) as failed:
        roots.target("preprod", path, None, False, run)
    assert failed.value.exit_code == EXECUTION_FAILED and "terraform init failed" in str(
        failed.value
    )
    local = tmp_path / "work" / f"target-preprod-{ACCOUNTS['preprod']}" / "terraform.tfstate"
    resources = json.loads(local.read_text())["resources"]
    bucket = f"{PROJECT}-preprod-tfstate-{ACCOUNTS['preprod']}"
    aws.client("s3", "preprod").create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
    )

    report = roots.target("preprod", path, None, False, run)
    assert any("resuming the local state" in line for line in report.lines)
    state = aws.client("s3", "preprod").get_object(
        Bucket=bucket, Key=f"{PROJECT}/infra/target-account.tfstate"
    )
    assert json.loads(state["Body"].read())["resources"] == resources  # the same apply, moved
    assert not local.exists()


def test_dev_creates_its_state_bucket_merges_the_policy_and_changes_nothing_twice(
    terraform: str,
    aws: Emulator,
    github: GitHubState,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    secretsmanager = aws.client("secretsmanager", "dev")
    secret = secretsmanager.create_secret(Name="churn-github-token")["ARN"]
    s3 = aws.client("s3", "dev")
    s3.create_bucket(
        Bucket="my-dev-ml-bucket", CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    theirs = {
        "Sid": "TeamReads",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::111111111111:root"},
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::my-dev-ml-bucket/*",
    }
    stale = {
        "Sid": "TargetDeployRolesReadModelArtifacts",
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::my-dev-ml-bucket/old/*",
    }
    s3.put_bucket_policy(
        Bucket="my-dev-ml-bucket",
        Policy=json.dumps({"Version": "2012-10-17", "Statement": [theirs, stale]}),
    )
    run = options(terraform, aws, "dev", tmp_path, secret)
    path = tfvars(tmp_path, "dev")
    (run.root / "build").mkdir()  # type: ignore[operator]

    first = roots.dev(path, REPOSITORY, False, run)
    assert first.changed
    bucket = f"{PROJECT}-dev-tfstate-{ACCOUNTS['dev']}"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    assert all(s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"].values())
    s3.head_object(Bucket=bucket, Key=f"{PROJECT}/infra/dev-account.tfstate")
    policy = json.loads(s3.get_bucket_policy(Bucket="my-dev-ml-bucket")["Policy"])
    assert [s["Sid"] for s in policy["Statement"]] == [
        "TeamReads",
        "TargetDeployRolesReadModelArtifacts",
        "DenyPlainHttp",
    ]
    assert policy["Statement"][0] == theirs and policy["Statement"][1]["Resource"].endswith(
        "/training/*"
    )
    assert (
        github.variables[(None, "AWS_REGISTRY_READ_ROLE_ARN")]
        == "arn:aws:iam::111111111111:role/churn-registry-read"
    )
    assert github.variables[(None, "AWS_DEV_ACCOUNT_NUMBER")] == "111111111111"
    assert "put-secret-value --secret-id " + secret in capsys.readouterr().out

    secretsmanager.put_secret_value(SecretId=secret, SecretString="not read by the bootstrap")
    writes = len(github.writes)
    second = roots.dev(path, REPOSITORY, False, run)
    assert not second.changed and len(github.writes) == writes
    assert json.loads(s3.get_bucket_policy(Bucket="my-dev-ml-bucket")["Policy"]) == policy
    assert "put-secret-value" not in capsys.readouterr().out


def test_the_merge_replaces_ours_by_sid_and_keeps_every_other_statement() -> None:
    others = [{"Sid": "A", "Effect": "Allow"}, {"Effect": "Deny", "Action": "s3:*"}]
    existing = {
        "Version": "2012-10-17",
        "Id": "team",
        "Statement": [*others, {"Sid": "Ours", "Action": "old"}],
    }
    ours = {"Statement": [{"Sid": "Ours", "Action": ["new"]}, {"Sid": "Added", "Action": "x"}]}
    merged = bucket_policy.merge(existing, ours)
    assert merged == {
        "Version": "2012-10-17",
        "Id": "team",
        "Statement": [*others, *ours["Statement"]],
    }
    assert bucket_policy.changed_sids(existing, ours) == ["Ours", "Added"]
    # S3 answers a one-item list as its item: not a change
    assert (
        bucket_policy.changed_sids(
            {"Statement": [{"Sid": "Ours", "Action": "new"}, ours["Statement"][1]]}, ours
        )
        == []
    )
    assert bucket_policy.merge(None, ours)["Statement"] == ours["Statement"]
    with pytest.raises(cli.CommandFailed, match="without a Sid"):
        bucket_policy.merge(existing, {"Statement": [{"Action": "x"}]})


def test_bad_inputs_are_one_line_and_change_nothing(
    aws: Emulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    preprod = tfvars(tmp_path, "preprod")
    broken = tmp_path / "broken.tfvars"
    broken.write_text('region = "eu-west-1"\nproject_name = \n')
    cases = [
        (["target", "--stage", "staging"], USAGE_ERROR, "unknown stage 'staging'"),
        (
            ["target", "--stage", "prod", "--tfvars", str(tmp_path / "none.tfvars")],
            USAGE_ERROR,
            "no such file",
        ),
        (
            ["target", "--stage", "prod", "--tfvars", str(preprod)],
            USAGE_ERROR,
            "environment = 'preprod', not 'prod'",
        ),
        (
            ["target", "--stage", "preprod", "--tfvars", str(broken)],
            USAGE_ERROR,
            "not a valid tfvars file",
        ),
        (["dev", "--tfvars", str(preprod)], USAGE_ERROR, "model_artifacts_bucket not set"),
        (
            [
                "target",
                "--stage",
                "preprod",
                "--tfvars",
                str(preprod),
                "--github-repository",
                REPOSITORY,
            ],
            USAGE_ERROR,
            "needs GITHUB_TOKEN",
        ),
        (
            [
                "preflight",
                "--stage",
                "preprod",
                "--tfvars",
                str(preprod),
                "--stage-file",
                str(broken),
            ],
            USAGE_ERROR,
            "not JSON",
        ),
    ]
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    for argv, code, message in cases:
        assert cli.main(argv) == code, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (argv, err)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    argv = ["target", "--stage", "preprod", "--tfvars", str(preprod), "--dry-run"]
    assert cli.main(argv) == AWS_ERROR
    assert "no AWS credentials: set AWS_PROFILE to the preprod account" in capsys.readouterr().err
    assert not (tmp_path / "work").exists()


def test_preflight_reports_every_missing_item_at_once_and_passes_when_they_exist(
    aws: Emulator, github: GitHubState, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stage_file = tmp_path / "prod-config.tfvars.json"
    settings = {
        "processing_instance_type": "ml.c5.xlarge",
        "processing_instance_count": 2,
        "transform_instance_type": "ml.m5.xlarge",
        "transform_instance_count": 3,
        "alarm_email": None,
        "endpoint": {"instance_type": "ml.m5.large", "max_instance_count": 4},
    }
    stage_file.write_text(json.dumps(settings))
    argv = [
        "preflight",
        "--stage",
        "prod",
        "--tfvars",
        str(tfvars(tmp_path, "prod")),
        "--stage-file",
        str(stage_file),
        "--github-repository",
        REPOSITORY,
    ]
    run = roots.Options(aws.account("prod"), dev_session=aws.account("dev"))

    assert cli.main(argv, run) == EXECUTION_FAILED
    missing = [line for line in capsys.readouterr().out.splitlines() if line.startswith("MISSING")]
    assert [line.split(":")[0] for line in missing] == [
        "MISSING  service quotas",  # the emulator has no SageMaker quotas: see the quota tests
        "MISSING  endpoint auto scaling role",
        "MISSING  GitHub OIDC provider",
        "MISSING  SSM parameters",
        "MISSING  approved model version",
        "MISSING  alarm_email",
        "MISSING  prod reviewers",
    ]
    assert "NoSuchResourceException" in missing[0]
    required = (
        "artifacts-bucket, sagemaker-role-arn, start-pipeline-role-arn, upload-starter-role-arn"
    )
    assert required in missing[3]

    iam = aws.client("iam", "prod")
    # the role as AWS names it (moto 5 derives another name from the service name)
    iam.create_role(
        RoleName=preflight.SCALING_ROLE,
        Path=f"/aws-service-role/{preflight.SCALING_SERVICE}/",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )
    iam.create_open_id_connect_provider(
        Url=f"https://{preflight.GITHUB_OIDC}", ClientIDList=["sts.amazonaws.com"]
    )
    for name in preflight.SSM_REQUIRED:
        aws.client("ssm", "prod").put_parameter(
            Name=f"/{PROJECT}/prod/{name}", Value="x", Type="String"
        )
    sagemaker = aws.client("sagemaker", "dev")
    sagemaker.create_model_package_group(ModelPackageGroupName="churn-model")
    sagemaker.create_model_package(
        ModelPackageGroupName="churn-model",
        ModelApprovalStatus="Approved",
        InferenceSpecification={
            "Containers": [{"Image": "i"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    )
    stage_file.write_text(json.dumps({**settings, "alarm_email": "team@example.com"}))
    github.environments["prod"] = {
        "protection_rules": [{"type": "required_reviewers", "reviewers": [{"type": "User"}]}]
    }

    assert cli.main(argv, run) == EXECUTION_FAILED
    out = capsys.readouterr().out
    assert [line.split(":")[0] for line in out.splitlines() if line.startswith("MISSING")] == [
        "MISSING  service quotas"
    ]
    assert out.count("\nok ") == 6 and github.writes == []


def test_preflight_needs_each_instance_use_once_at_its_largest_count() -> None:
    settings = {
        "processing_instance_type": "ml.m5.xlarge",
        "processing_instance_count": 2,
        "transform_instance_type": "ml.c5.xlarge",
        "transform_instance_count": 3,
        "endpoint": {"instance_type": "ml.m5.large", "serverless": None},
    }
    assert preflight.instance_needs(settings, "ml.m5.xlarge") == {
        ("processing", "ml.m5.xlarge"): 2,
        ("transform", "ml.c5.xlarge"): 3,
        ("transform", "ml.m5.xlarge"): 1,  # a run started by hand
        ("endpoint", "ml.m5.large"): 2,  # the template's default maximum
    }
    serverless = {**settings, "endpoint": {"serverless": {"memory_size_in_mb": 2048}}}
    assert ("endpoint", "ml.m5.large") not in preflight.instance_needs(serverless, "ml.m5.xlarge")
    assert preflight.instance_endpoint({"endpoint": {"enabled": False}}) is None


def test_quota_values_find_codes_by_name_and_read_the_applied_value(aws: Emulator) -> None:
    """The lookup on the emulator's one service with quotas (vpc; moto 5 has none for
    SageMaker): names to codes from the defaults, values from GetServiceQuota."""
    client = aws.account("preprod").client("service-quotas")
    defaults = client.list_aws_default_service_quotas(ServiceCode="vpc")["Quotas"]
    wanted = {defaults[0]["QuotaName"], defaults[1]["QuotaName"], "no such quota"}
    values = preflight.quota_values(client, "vpc", wanted)
    assert values == {q["QuotaName"]: float(q["Value"]) for q in defaults[:2]}


def test_the_sagemaker_quota_requests_are_valid_for_the_service_model(aws: Emulator) -> None:
    """What the emulator cannot answer, botocore's model of Service Quotas still checks: the
    requests the preflight sends for SageMaker pass its validation (a bad one raises before
    sending) and reach the service, which here has no SageMaker quotas."""
    client = aws.account("preprod").client("service-quotas")
    sent: list[dict] = []
    client.meta.events.register(
        "before-call.service-quotas.*", lambda params, **_: sent.append(params)
    )
    with pytest.raises(client.exceptions.NoSuchResourceException):
        preflight.quota_values(client, "sagemaker", {"ml.m5.xlarge for processing job usage"})
    assert json.loads(sent[0]["body"]) == {"ServiceCode": "sagemaker"}
    with pytest.raises(botocore.exceptions.ParamValidationError):
        client.get_service_quota(ServiceCode="sagemaker")


def test_the_exit_code_table_is_the_codes_the_commands_use() -> None:
    from tests.test_docs import DOCS, table_codes

    table = table_codes(DOCS / "deploying-to-aws.md", "### Exit codes of the bootstrap commands")
    assert set(table) == {SUCCESS, AWS_ERROR, USAGE_ERROR, EXECUTION_FAILED}
