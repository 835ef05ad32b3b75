"""The acceptance run's flow: preflight, each step, and the teardown that always runs.

Every resource a step makes is recorded with how to remove it *before* the next call, so the
teardown (in reverse order, also after a failure or Ctrl-C; skipped with ``--keep``, which
prints what is left) gives the accounts back as they were, apart from the stage's base
(``infra/target-account`` applied for the project beforehand, as the docs say). The preflight
refuses two profiles of one account, a stage without that base, a project name with a
group, pipeline or bucket prefix already there, and an unreachable dev bucket. The steps are
in ``deploy``, ``runs``, ``observe`` and ``endpoint``; ``__main__`` runs them in
``catalogue.STEPS``'s order.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from acceptance.report import Verdict

if TYPE_CHECKING:
    import boto3

STAGE = "preprod"  # the stage account plays preprod (its base is applied as preprod)
# infra/target-account writes these for build.py; without them there is no base to run on
BASE_PARAMETERS = ("artifacts-bucket", "sagemaker-role-arn", "upload-starter-role-arn")
CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
MISSING = ("ValidationException", "ResourceNotFound")


class Refused(Exception):
    """The run must not start (exit 2): nothing was made."""


@dataclass
class Made:
    """What a step made, newest last, each with the call that removes it."""

    items: list[tuple[str, Callable[[], object]]] = field(default_factory=list)

    def add(self, what: str, remove: Callable[[], object]) -> None:
        self.items.append((what, remove))

    def forget(self, what: str) -> None:
        """``what`` was not made after all (its call was refused): nothing to remove."""
        self.items = [(w, remove) for w, remove in self.items if w != what]

    def teardown(self) -> list[str]:
        """Remove everything, newest first; what could not be removed, with why."""
        left = []
        while self.items:
            what, remove = self.items.pop()
            try:
                remove()
            except Exception as error:  # any: the teardown goes on, and says what it left
                left.append(f"{what}: {error}")
        return left


@dataclass
class Run:
    """One acceptance run: the two accounts' sessions and what it has made."""

    dev: boto3.Session
    stage: boto3.Session
    project: str
    dev_bucket: str
    workdir: Path
    emulator: bool = False  # moto answers: the unproven claims are not its to settle
    profiles: tuple[str, str] = ("", "")  # dev's and stage's, for build.py
    # the base's deploy role (--deploy-profile): build.py and the applies run as it, as in
    # the deploy workflow; without it they run with the stage profile
    deployer: boto3.Session | None = None
    deploy_profile: str | None = None
    made: Made = field(default_factory=Made)
    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def group(self) -> str:
        return f"{self.project}-models"

    def settle(self, status: str) -> str:
        """A verdict's status: what the run observed, unless the emulator answered."""
        return "needs-real-account" if self.emulator else status

    def stage_environment(self, deploying: bool = False) -> dict[str, str]:
        """The environment of a process acting in the stage account (Terraform, a CLI): the
        stage profile (the deploy profile when ``deploying`` and one is given), and no
        credential variables, which would win over it."""
        inherited = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARIABLES}
        profile = (deploying and self.deploy_profile) or self.profiles[1]
        return {**inherited, "AWS_PROFILE": profile, "AWS_REGION": self.stage.region_name}

    def accounts(self) -> tuple[str, str]:
        """The dev and stage account ids; ``Refused`` when they are the same account."""
        dev, stage = (
            session.client("sts").get_caller_identity()["Account"]
            for session in (self.dev, self.stage)
        )
        if dev == stage:
            raise Refused(
                f"--dev-profile and --stage-profile are both account {dev}: the run needs two "
                "sandbox accounts, as the template deploys across accounts"
            )
        if self.deployer is not None:
            deploying = self.deployer.client("sts").get_caller_identity()["Account"]
            if deploying != stage:
                raise Refused(
                    f"--deploy-profile is account {deploying}, not the stage account {stage}: "
                    "pass the profile of the stage base's deploy role"
                )
        return dev, stage

    def base(self) -> dict[str, str]:
        """The stage account's base as ``build.py`` reads it; ``Refused`` when missing."""
        ssm = self.stage.client("ssm")
        prefix = f"/{self.project}/{STAGE}/"
        found = {
            parameter["Name"].removeprefix(prefix): parameter["Value"]
            for page in ssm.get_paginator("get_parameters_by_path").paginate(Path=prefix)
            for parameter in page["Parameters"]
        }
        missing = [name for name in BASE_PARAMETERS if name not in found]
        if missing:
            raise Refused(
                f"the stage account has no base for project {self.project!r} (SSM {prefix}"
                f"{missing[0]} is missing): apply infra/target-account there with "
                f'project_name = "{self.project}" and environment = "{STAGE}" first '
                "(docs/deploying-to-aws.md, section 8)"
            )
        return found

    def in_use(self, bucket: str) -> list[str]:
        """What of another run or project with this name exists (read-only calls): the
        teardown removes the project's group, pipelines and bucket prefix whole."""
        found = []
        for where, session in (("dev", self.dev), ("stage", self.stage)):
            try:
                session.client("sagemaker").describe_model_package_group(
                    ModelPackageGroupName=self.group
                )
                found.append(f"model package group {self.group} in the {where} account")
            except ClientError as error:
                # a group that does not exist: ValidationException (SageMaker's, and moto's)
                if error.response.get("Error", {}).get("Code") not in MISSING:
                    raise
        pipelines = self.stage.client("sagemaker").list_pipelines(
            PipelineNamePrefix=f"{self.project}-"
        )["PipelineSummaries"]
        found += [f"pipeline {p['PipelineName']} in the stage account" for p in pipelines]
        listed = self.stage.client("s3").list_object_versions(
            Bucket=bucket, Prefix=f"{self.project}/", MaxKeys=1
        )
        if listed.get("Versions") or listed.get("DeleteMarkers"):
            found.append(f"objects under s3://{bucket}/{self.project}/ in the stage account")
        return found

    def preflight(self) -> tuple[tuple[str, str], dict[str, str]]:
        """``Refused`` unless the run can start without touching anything it did not make:
        the two account ids and the stage's base."""
        accounts = self.accounts()
        found = self.base()
        taken = self.in_use(found["artifacts-bucket"])
        if taken:
            raise Refused(
                f"project name {self.project!r} is in use ({'; '.join(taken)}): pass another "
                "--project-name with its own base (the run removes the project's group, "
                "pipelines and bucket prefix whole)"
            )
        try:
            self.dev.client("s3").head_bucket(Bucket=self.dev_bucket)
        except ClientError as error:
            raise Refused(
                f"--dev-bucket {self.dev_bucket} cannot be reached in the dev account "
                f"({error.response.get('Error', {}).get('Code')}): pass infra/dev-account's "
                "artifacts bucket"
            ) from None
        return accounts, found

    def register(self, version: int = 1) -> None:
        """The sample registered and approved in dev (a second time for the re-deploy); the
        first reads ``ImageDigest`` back."""
        from examples import registration  # trains: only when the run starts

        sagemaker, s3 = self.dev.client("sagemaker"), self.dev.client("s3")
        if version == 1:
            sagemaker.create_model_package_group(
                ModelPackageGroupName=self.group,
                ModelPackageGroupDescription=f"acceptance run {self.project} (removed after it)",
            )
            self.made.add(
                f"model package group {self.group}",
                lambda: sagemaker.delete_model_package_group(ModelPackageGroupName=self.group),
            )
        prefix = f"training/{self.project}/v{version}/output"
        # recorded before the upload (model-quality.json: the holdout's registered quality)
        for name in ("model.tar.gz", "baseline.json", "model-quality.json"):
            key = f"{prefix}/{name}"
            self.made.add(
                f"s3://{self.dev_bucket}/{key}",
                partial(s3.delete_object, Bucket=self.dev_bucket, Key=key),
            )
        registered = registration.register(
            sagemaker,
            s3,
            bucket=self.dev_bucket,
            output_prefix=prefix,
            group=self.group,
            region=self.dev.region_name,
            workdir=self.workdir / f"model-v{version}",
            approval=f"acceptance run {self.project}",
        )
        arn = registered.package_arn
        self.made.add(
            f"model package {arn}", lambda: sagemaker.delete_model_package(ModelPackageName=arn)
        )
        if version != 1:
            return
        containers = sagemaker.describe_model_package(ModelPackageName=arn)[
            "InferenceSpecification"
        ]["Containers"]
        digests = [c.get("ImageDigest") for c in containers]
        passed = all(d and d.startswith("sha256:") for d in digests)
        self.verdicts.append(Verdict(
            "image-digest-at-registration", self.settle("passed" if passed else "failed"),
            f"DescribeModelPackage {arn}: ImageDigest {digests}",
        ))  # fmt: skip
