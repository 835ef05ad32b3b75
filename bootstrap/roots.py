"""The two bootstraps: ``infra/target-account`` in a stage's account, ``infra/dev-account``
in dev. Each finds where the root's state is (the S3 state object, a local state left by an
interrupted run, or none) and does only what is missing, so a second run changes nothing
and an interrupted one resumes; ``dry_run`` reads and reports, and changes nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import botocore.exceptions

from bootstrap import bucket_policy, github
from bootstrap.settings import DEV_ROOT, REPO, TARGET_ROOT, RootVariables, dev_tfvars, target_tfvars
from bootstrap.terraform import S3Backend, Terraform
from common.exit_codes import AWS_ERROR, CommandFailed

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

WORK = REPO / "build" / "bootstrap"  # data directories, local state, plans: gitignored


@dataclass
class Report:
    """What a run did (or, dry, would do), one line each; whether anything changed."""

    dry_run: bool
    lines: list[str] = field(default_factory=list)
    changed: bool = False

    def did(self, line: str) -> None:
        self.lines.append(("would " if self.dry_run else "") + line)
        self.changed = True
        print(self.lines[-1], flush=True)

    def note(self, line: str) -> None:
        self.lines.append(line)
        print(line, flush=True)

    def finish(self) -> None:
        if not self.changed:
            self.note("nothing to change: already bootstrapped")


@dataclass
class Options:
    """How a bootstrap reaches its tools: the tests point them at the emulator and a
    stand-in root; an administrator never sets these."""

    session: boto3.Session | None = None
    dev_session: boto3.Session | None = None  # preflight's registry check
    root: Path | None = None
    work: Path = WORK
    terraform: Callable[[Path, Path], Terraform] = Terraform


def account_of(session: boto3.Session, who: str) -> str:
    try:
        return str(session.client("sts").get_caller_identity()["Account"])
    except botocore.exceptions.NoCredentialsError:
        raise CommandFailed(
            f"no AWS credentials: set AWS_PROFILE to the {who} account's admin profile", AWS_ERROR
        ) from None


def state_backend(variables: RootVariables, stage: str, account: str, root: str) -> S3Backend:
    """Where a base root's state lives: the bucket the target root makes (or, for dev, the
    bootstrap), under the key the docs have always named."""
    return S3Backend(
        f"{variables.project}-{stage}-tfstate-{account}",
        f"{variables.project}/infra/{root}.tfstate",
        variables.region,
    )


def state_exists(s3: S3Client, backend: S3Backend) -> bool:
    """Whether the root's state is already in its bucket."""
    try:
        s3.head_object(Bucket=backend.bucket, Key=backend.key)
    except botocore.exceptions.ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NoSuchBucket"):
            return False
        raise
    return True


def apply_root(
    tf: Terraform, variables: RootVariables, backend: S3Backend, s3: S3Client, local: Path,
    report: Report, name: str,
) -> dict[str, Any] | None:  # fmt: skip
    """Apply the root and leave its state in S3; its outputs (None when a dry run has none)."""
    plan_file = local.with_suffix(".tfplan")
    if state_exists(s3, backend):
        tf.init_s3(backend)
        for leftover in (local, local.with_name(local.name + ".backup")):
            leftover.unlink(missing_ok=True)  # an interrupted run's copy, already migrated
        if tf.plan(variables.path, plan_file):
            report.did(f"apply {name} (state s3://{backend.bucket}/{backend.key})")
            if not report.dry_run:
                tf.apply(plan_file)
        else:
            report.note(f"{name}: up to date (state s3://{backend.bucket}/{backend.key})")
        plan_file.unlink(missing_ok=True)
        return tf.outputs()
    resumed = " (resuming the local state of an interrupted run)" if local.exists() else ""
    report.did(f"apply {name} with local state {local}{resumed}")
    report.did(f"move its state to s3://{backend.bucket}/{backend.key}")
    if report.dry_run:
        return None
    with tf.local_backend(local):
        if tf.plan(variables.path, plan_file):
            tf.apply(plan_file)
        outputs = tf.outputs()
    tf.init_s3(backend, migrate=True)
    for leftover in (local, local.with_name(local.name + ".backup")):
        leftover.unlink(missing_ok=True)
    return outputs


def target(
    stage: str, tfvars: Path | None, repository: str | None, dry_run: bool, options: Options
) -> Report:
    """``infra/target-account`` for ``stage`` in the current credentials' account."""
    variables = target_tfvars(stage, tfvars)
    gh = github.client(repository)
    session = options.session or boto3.Session(region_name=variables.region)
    account = account_of(session, stage)
    report = Report(dry_run)
    report.note(f"infra/target-account for {stage} in account {account} ({variables.region})")
    backend = state_backend(variables, stage, account, "target-account")
    work = options.work / f"target-{stage}-{account}"
    tf = options.terraform(options.root or TARGET_ROOT, work / ".terraform")
    s3 = session.client("s3", region_name=variables.region)
    outputs = apply_root(
        tf, variables, backend, s3, work / "terraform.tfstate", report, "infra/target-account"
    )
    wanted = [
        github.Variable("AWS_REGION", variables.region),
        github.Variable("SAGEMAKER_PROJECT_NAME", variables.project),
        github.Variable("MODEL_PACKAGE_GROUP_NAME", variables.group),
        github.Variable(f"AWS_{stage.upper()}_ACCOUNT_NUMBER", account),
    ]
    if outputs is None:
        report.note(
            f"then set environment {stage}: AWS_DEPLOY_ROLE_ARN, TF_STATE_BUCKET from the outputs"
        )
    else:
        wanted += [
            github.Variable("AWS_DEPLOY_ROLE_ARN", str(outputs["deploy_role_arn"]), stage),
            github.Variable("TF_STATE_BUCKET", str(outputs["terraform_state_bucket"]), stage),
        ]
        if outputs.get("plan_role_arn"):
            plan_environment = f"{stage}-plan"
            wanted += [
                github.Variable(
                    "AWS_DEPLOY_ROLE_ARN", str(outputs["plan_role_arn"]), plan_environment
                ),
                github.Variable(
                    "TF_STATE_BUCKET", str(outputs["terraform_state_bucket"]), plan_environment
                ),
            ]
    set_variables(gh, wanted, report)
    report.finish()
    return report


def set_variables(gh: github.GitHub | None, wanted: list[github.Variable], report: Report) -> None:
    if gh is None:
        report.note(
            "GitHub variables (set them, or run again with --github-repository and GITHUB_TOKEN):"
        )
        for variable in wanted:
            report.note(f"  {variable.scope}: {variable.name} = {variable.value}")
        return
    for line in github.sync(gh, wanted, report.dry_run):
        if line.startswith("unchanged"):
            report.note(line)
        else:
            report.changed = True
            report.lines.append(line)
            print(line, flush=True)


def ensure_state_bucket(s3: S3Client, bucket: str, region: str, report: Report) -> None:
    """The dev root's state bucket: versioned, never public (infra/dev-account makes none)."""
    try:
        s3.head_bucket(Bucket=bucket)
    except botocore.exceptions.ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
            raise
        report.did(f"create the state bucket s3://{bucket} (versioned, public access blocked)")
        if report.dry_run:
            return
        location = (
            {}
            if region == "us-east-1"
            else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        )
        s3.create_bucket(Bucket=bucket, **location)  # type: ignore[arg-type]
    if s3.get_bucket_versioning(Bucket=bucket).get("Status") != "Enabled":
        report.did(f"enable versioning on s3://{bucket}")
        if not report.dry_run:
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    blocked = {
        name: True
        for name in (
            "BlockPublicAcls",
            "IgnorePublicAcls",
            "BlockPublicPolicy",
            "RestrictPublicBuckets",
        )
    }
    try:
        current = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    except botocore.exceptions.ClientError:
        current = {}
    if dict(current) != blocked:
        report.did(f"block public access to s3://{bucket}")
        if not report.dry_run:
            s3.put_public_access_block(
                Bucket=bucket,
                PublicAccessBlockConfiguration={
                    "BlockPublicAcls": True,
                    "IgnorePublicAcls": True,
                    "BlockPublicPolicy": True,
                    "RestrictPublicBuckets": True,
                },
            )


def merge_bucket_policy(s3: S3Client, bucket: str, ours: str, report: Report) -> None:
    existing = bucket_policy.current_policy(s3, bucket)
    statements = json.loads(ours)
    merged = bucket_policy.merge(existing, statements)
    sids = bucket_policy.changed_sids(existing, statements)
    if not sids:
        report.note(f"s3://{bucket}'s policy already has the deploy roles' statements")
        return
    report.did(f"merge {', '.join(sids)} into s3://{bucket}'s policy (its other statements kept)")
    if not report.dry_run:
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(merged))


def token_stored(session: boto3.Session, secret_arn: str, region: str) -> bool:
    """Whether the dispatch token's secret has a current value (its value is never read)."""
    versions = session.client("secretsmanager", region_name=region).list_secret_version_ids(
        SecretId=secret_arn
    )
    return any("AWSCURRENT" in v.get("VersionStages", []) for v in versions.get("Versions", []))


def dev(tfvars: Path | None, repository: str | None, dry_run: bool, options: Options) -> Report:
    """``infra/dev-account`` in the current credentials' account (the registry's)."""
    variables = dev_tfvars(tfvars)
    gh = github.client(repository)
    session = options.session or boto3.Session(region_name=variables.region)
    account = account_of(session, "dev")
    report = Report(dry_run)
    report.note(f"infra/dev-account in account {account} ({variables.region})")
    backend = state_backend(variables, "dev", account, "dev-account")
    s3 = session.client("s3", region_name=variables.region)
    ensure_state_bucket(s3, backend.bucket, variables.region, report)
    root = options.root or DEV_ROOT
    if not dry_run:  # byte-identical on every build: no change for Terraform to apply
        from lambdas.package import build_zip

        zip_path = (
            root
            / str(variables.values.get("dispatch_lambda_zip", "../../build/dispatch-deploy.zip"))
        ).resolve()
        zip_path.parent.mkdir(parents=True, exist_ok=True)
        build_zip(zip_path)
    work = options.work / f"dev-{account}"
    tf = options.terraform(root, work / ".terraform")
    if dry_run and not _exists(s3, backend.bucket):
        outputs = None
        report.did(f"apply infra/dev-account (state s3://{backend.bucket}/{backend.key})")
    else:
        tf.init_s3(backend)
        plan_file = work / "dev.tfplan"
        if tf.plan(variables.path, plan_file):
            report.did(f"apply infra/dev-account (state s3://{backend.bucket}/{backend.key})")
            if not dry_run:
                tf.apply(plan_file)
        else:
            report.note(
                f"infra/dev-account: up to date (state s3://{backend.bucket}/{backend.key})"
            )
        plan_file.unlink(missing_ok=True)
        outputs = tf.outputs()
    bucket = str(variables.values["model_artifacts_bucket"])
    if variables.values.get("manage_model_artifacts_bucket_policy") is True:
        report.note(f"s3://{bucket}'s policy is Terraform's (manage_model_artifacts_bucket_policy)")
    elif outputs and outputs.get("model_artifacts_bucket_policy"):
        merge_bucket_policy(s3, bucket, str(outputs["model_artifacts_bucket_policy"]), report)
    else:
        report.note(f"then merge output model_artifacts_bucket_policy into s3://{bucket}'s policy")
    wanted = [
        github.Variable("AWS_REGION", variables.region),
        github.Variable("SAGEMAKER_PROJECT_NAME", variables.project),
        github.Variable("MODEL_PACKAGE_GROUP_NAME", variables.group),
        github.Variable("AWS_DEV_ACCOUNT_NUMBER", account),
    ]
    if outputs:
        wanted.append(
            github.Variable("AWS_REGISTRY_READ_ROLE_ARN", str(outputs["registry_read_role_arn"]))
        )
    set_variables(gh, wanted, report)
    if outputs and not token_stored(
        session, str(outputs["github_token_secret_arn"]), variables.region
    ):
        report.note(
            "to do by hand: store the dispatch token (docs/deploying-to-aws.md, section 2): "
            f"aws secretsmanager put-secret-value --secret-id {outputs['github_token_secret_arn']} "
            "--secret-string file://token && rm token"
        )
    report.finish()
    return report


def _exists(s3: S3Client, bucket: str) -> bool:
    try:
        s3.head_bucket(Bucket=bucket)
    except botocore.exceptions.ClientError:
        return False
    return True
