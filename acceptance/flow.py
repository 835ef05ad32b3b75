"""The acceptance run's flow: preflight, each step, and the teardown that always runs.

Every resource a step makes is recorded with how to remove it *before* the next call, so the
teardown (in reverse order, also after a failure or Ctrl-C; skipped with ``--keep``, which
prints what is left) gives the accounts back as they were. Built so far: the preflight (two
distinct accounts, the project name unused in both, the dev bucket there) and the ``register``
step; the next steps of #35 add to ``STEPS_BUILT``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from acceptance.report import Verdict

if TYPE_CHECKING:
    import boto3

STEPS_BUILT = ("register", "teardown")
MISSING = ("ValidationException", "ResourceNotFound")


class Refused(Exception):
    """The run must not start (exit 2): nothing was made."""


@dataclass
class Made:
    """What a step made, newest last, each with the call that removes it."""

    items: list[tuple[str, Callable[[], object]]] = field(default_factory=list)

    def add(self, what: str, remove: Callable[[], object]) -> None:
        self.items.append((what, remove))

    def teardown(self) -> list[str]:
        """Remove everything, newest first; what could not be removed, with why."""
        left = []
        while self.items:
            what, remove = self.items.pop()
            try:
                remove()
            except (ClientError, BotoCoreError) as error:
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
    made: Made = field(default_factory=Made)
    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def group(self) -> str:
        return f"{self.project}-models"

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
        return dev, stage

    def in_use(self) -> list[str]:
        """What of another project with this name already exists (read-only calls)."""
        found = []
        sagemaker = self.dev.client("sagemaker")
        try:
            sagemaker.describe_model_package_group(ModelPackageGroupName=self.group)
            found.append(f"model package group {self.group} in the dev account")
        except ClientError as error:
            # a group that does not exist: ValidationException (SageMaker's, and moto's)
            if error.response.get("Error", {}).get("Code") not in MISSING:
                raise
        pipelines = self.stage.client("sagemaker").list_pipelines(
            PipelineNamePrefix=f"{self.project}-"
        )["PipelineSummaries"]
        found += [f"pipeline {p['PipelineName']} in the stage account" for p in pipelines]
        parameters = self.stage.client("ssm").get_parameters_by_path(
            Path=f"/{self.project}/", Recursive=True, MaxResults=1
        )["Parameters"]
        found += [f"SSM parameters under /{self.project}/ in the stage account"] * bool(parameters)
        return found

    def preflight(self) -> tuple[str, str]:
        """``Refused`` unless the run can start without touching anything it did not make."""
        accounts = self.accounts()
        taken = self.in_use()
        if taken:
            raise Refused(
                f"project name {self.project!r} is in use ({'; '.join(taken)}): pass another "
                "--project-name (the run makes and removes only its own resources)"
            )
        try:
            self.dev.client("s3").head_bucket(Bucket=self.dev_bucket)
        except ClientError as error:
            raise Refused(
                f"--dev-bucket {self.dev_bucket} cannot be reached in the dev account "
                f"({error.response.get('Error', {}).get('Code')}): pass infra/dev-account's "
                "artifacts bucket"
            ) from None
        return accounts

    def register(self) -> None:
        """The sample model registered and approved in dev; reads ``ImageDigest`` back."""
        from examples.breast_cancer import registration  # trains: only when the run starts

        sagemaker, s3 = self.dev.client("sagemaker"), self.dev.client("s3")
        sagemaker.create_model_package_group(
            ModelPackageGroupName=self.group,
            ModelPackageGroupDescription=f"acceptance run {self.project} (removed after it)",
        )
        self.made.add(
            f"model package group {self.group}",
            lambda: sagemaker.delete_model_package_group(ModelPackageGroupName=self.group),
        )
        prefix = f"training/{self.project}/output"
        for name in ("model.tar.gz", "baseline.json"):  # recorded before the upload
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
            workdir=self.workdir / "model",
            approval=f"acceptance run {self.project}",
        )
        arn = registered.package_arn
        self.made.add(
            f"model package {arn}", lambda: sagemaker.delete_model_package(ModelPackageName=arn)
        )
        containers = sagemaker.describe_model_package(ModelPackageName=arn)[
            "InferenceSpecification"
        ]["Containers"]
        digests = [c.get("ImageDigest") for c in containers]
        evidence = f"DescribeModelPackage {arn}: ImageDigest {digests}"
        if self.emulator:
            self.verdicts.append(
                Verdict("image-digest-at-registration", "needs-real-account", evidence)
            )
        else:
            passed = all(d and d.startswith("sha256:") for d in digests)
            self.verdicts.append(
                Verdict("image-digest-at-registration", "passed" if passed else "failed", evidence)
            )
