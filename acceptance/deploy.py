"""The acceptance run's deployment steps: the stage's base found, the sample promoted by
``build.py``, the stage template applied, and a second version promoted and applied over it.

They run what a team's deploy workflow runs (``build.py``, then Terraform on
``batch-config-template.tf``), with the sandbox profiles' credentials. Each step records how
to undo what it makes before it makes it (``flow.Made``): the stage's deployment is destroyed
by Terraform, the promoted packages and the project's prefix of the stage bucket are deleted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError

import build
from acceptance.flow import STAGE, Run
from acceptance.report import Verdict
from acceptance.terraform import Root, TerraformFailed

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker.type_defs import ProcessingResourcesTypeDef

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "batch-config-template.tf"
# the run exercises the upload path too, one run at a time (the FIFO check needs that)
RUN_SETTINGS = {"run_on_upload": True, "upload_max_running": 1}


def deploy_role(run: Run) -> str:
    """The name of the base's deploy role, which the deploy workflow assumes."""
    return f"{run.project}-{STAGE}-deploy"


def caller_is_deploy_role(run: Run) -> tuple[bool, str]:
    """Whether the deploy profile acts as the base's deploy role (the acceptance workflow's
    OIDC session), and the caller's ARN (the stage profile's without a deploy profile)."""
    arn = (run.deployer or run.stage).client("sts").get_caller_identity()["Arn"]
    return run.deployer is not None and f":assumed-role/{deploy_role(run)}/" in arn, arn


def permissions_boundary(run: Run) -> None:
    """``permissions-boundary``: the deploy role may write a role policy only on roles with
    the base's boundary; its own role has none, so writing one there must be denied."""
    acting, arn = caller_is_deploy_role(run)
    if not acting:
        run.verdicts.append(Verdict(
            "permissions-boundary", "skipped",
            f"no --deploy-profile of the deploy role {deploy_role(run)} (the deploying "
            f"identity is {arn}): the acceptance workflow passes one (OIDC)",
        ))  # fmt: skip
        return
    as_deployer = (run.deployer or run.stage).client("iam")
    iam, role, name = run.stage.client("iam"), deploy_role(run), f"{run.project}-acceptance"
    run.made.add(  # recorded first: if IAM lets it through, it must not stay
        f"role policy {name} of {role}",
        lambda: iam.delete_role_policy(RoleName=role, PolicyName=name),
    )
    document = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "*"}]}  # fmt: skip
    try:
        as_deployer.put_role_policy(
            RoleName=role, PolicyName=name, PolicyDocument=json.dumps(document)
        )
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        run.made.forget(f"role policy {name} of {role}")  # nothing was written
        status = "passed" if code == "AccessDenied" else "failed"
        evidence = f"PutRolePolicy on {role} (no boundary) as itself: {code}"
    else:
        status, evidence = "failed", f"PutRolePolicy on {role} (no boundary) was allowed"
    run.verdicts.append(Verdict("permissions-boundary", run.settle(status), evidence))


def stage_config(run: Run, config: dict[str, Any]) -> Path:
    """The stage file the run promotes with: the user's, with the upload path switched on."""
    path = run.workdir / "stage-config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**config, **RUN_SETTINGS}, indent=2))
    return path


def record_stage_removals(run: Run, found: dict[str, str]) -> None:
    """Before the first promotion: what build.py will make in the stage account, recorded
    for the teardown (the project's bucket prefix was empty at the preflight)."""
    sagemaker, s3 = run.stage.client("sagemaker"), run.stage.client("s3")
    bucket = found["artifacts-bucket"]
    run.made.add(
        f"stage bucket prefix s3://{bucket}/{run.project}/ (every version)",
        lambda: _delete_prefix(s3, bucket, f"{run.project}/"),
    )
    run.made.add(
        f"model package group {run.group} in the stage account",
        lambda: _delete_group(sagemaker, run.group),
    )


def promote(run: Run, config: Path) -> Path:
    """``build.py --stage preprod`` with the dev profile and the deploying one (as the deploy
    workflow runs it): the tfvars it wrote."""
    output = run.workdir / f"{STAGE}.tfvars.json"
    code = build.main([
        "--stage", STAGE, "--project-name", run.project,
        "--model-package-group-name", run.group,
        "--source-profile", run.profiles[0],
        "--target-profile", run.deploy_profile or run.profiles[1],
        "--region", run.dev.region_name, "--config", str(config), "--output", str(output),
    ])  # fmt: skip
    if code != 0:
        raise RuntimeError(f"build.py exited {code} (its error is above)")
    return output


def promotion_checks(run: Run, found: dict[str, str], tfvars: Path) -> None:
    """``ecr-replication`` and ``nvme-volume-key``, after the first promotion."""
    image_replication(run)
    package = json.loads(tfvars.read_text())["model_package_arn"]
    (container,) = run.stage.client("sagemaker").describe_model_package(ModelPackageName=package)[
        "InferenceSpecification"
    ]["Containers"]
    nvme_volume_key(run, found, container["Image"])


def apply(run: Run, tfvars: Path) -> Root:
    """The stage template applied (``policy-visible-to-create-model``), then planned again
    (``pipeline-definition-ignored``)."""
    root = Root.copy(TEMPLATE, run.workdir / "stage", run.stage_environment(deploying=True))
    # the destroy with the stage profile: the deploy role may not delete all it can create
    run.made.add("the stage's deployment (terraform destroy)",
                 lambda: root.destroy(run.stage_environment()))  # fmt: skip
    root.run("init")
    try:
        root.apply(tfvars)
        status, evidence = "passed", "the apply succeeded at its first attempt"
    except TerraformFailed as error:
        if "CreateModel" not in str(error):
            raise
        status, evidence = "failed", f"the apply failed at CreateModel: {error}"
        root.apply(tfvars)  # IAM caught up: the run goes on, the claim stays failed
    run.verdicts.append(Verdict("policy-visible-to-create-model", run.settle(status), evidence))
    _plan_after(run, root, "the first apply")
    return root


def redeploy(run: Run, config: Path, root: Root) -> None:
    """Version 2 registered, promoted and applied over version 1; ``deploy-role-rights`` is
    read from CloudTrail later (observe), when the applies ran as the deploy role."""
    run.register(version=2)
    root.apply(promote(run, config))
    _plan_after(run, root, "the re-deploy")


def _plan_after(run: Run, root: Root, apply: str) -> None:
    """``pipeline-definition-ignored``: a plan right after each apply changes nothing."""
    changes = root.changes()
    check = "pipeline-definition-ignored"
    earlier = [v for v in run.verdicts if v.check == check]
    said = f"terraform plan after {apply}: " + (", ".join(changes) or "no change")
    failed = bool(changes) or any(v.status == "failed" for v in earlier)
    run.verdicts[:] = [v for v in run.verdicts if v.check != check]
    evidence = "; ".join([*(v.evidence for v in earlier), said])
    run.verdicts.append(Verdict(check, run.settle("failed" if failed else "passed"), evidence))


def _versions(s3: S3Client, bucket: str, prefix: str) -> Iterator[list[ObjectIdentifierTypeDef]]:
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        objects: list[ObjectIdentifierTypeDef] = [
            {"Key": item["Key"], "VersionId": item["VersionId"]}
            for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
        ]
        if objects:
            yield objects


def _delete_prefix(s3: S3Client, bucket: str, prefix: str) -> None:
    """Every version of every object under ``prefix``: the bucket is versioned."""
    for objects in _versions(s3, bucket, prefix):
        result = s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
        if result.get("Errors"):
            error = result["Errors"][0]
            raise ClientError(
                {"Error": {"Code": error.get("Code", ""), "Message": error.get("Message", "")}},
                "DeleteObjects",
            )


def _delete_group(sagemaker: SageMakerClient, group: str) -> None:
    """The promoted packages, then their group (SageMaker deletes only an empty group)."""
    try:
        pages = sagemaker.get_paginator("list_model_packages").paginate(ModelPackageGroupName=group)
        arns = [s["ModelPackageArn"] for page in pages for s in page["ModelPackageSummaryList"]]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("ValidationException",
                                                           "ResourceNotFound"):  # fmt: skip
            return  # build.py stopped before it made the group
        raise
    for arn in arns:
        sagemaker.delete_model_package(ModelPackageName=arn)
    sagemaker.delete_model_package_group(ModelPackageGroupName=group)


# local NVMe storage (the SDK's table), a Processing type (botocore's enum), no GPU quota
NVME_TYPE: Final = "ml.r5d.large"


def nvme_volume_key(run: Run, found: dict[str, str], image: str) -> None:
    """``nvme-volume-key``: a Processing job on an NVMe type with the stage's volume key is
    refused by SageMaker itself (build.py refuses such a stage file before it gets there)."""
    key = found.get("kms-key-arn")
    if not key:
        run.verdicts.append(Verdict("nvme-volume-key", "skipped", "the base has no stage key"))
        return
    if run.emulator:  # moto checks no instance type against a volume key
        run.verdicts.append(Verdict("nvme-volume-key", "needs-real-account", "not sent"))
        return
    sagemaker, name = run.stage.client("sagemaker"), f"{run.project}-nvme-volume-key"
    run.made.add(  # recorded first: if SageMaker accepts it, it must not run
        f"processing job {name}", lambda: sagemaker.stop_processing_job(ProcessingJobName=name)
    )
    resources: ProcessingResourcesTypeDef = {"ClusterConfig": {
        "InstanceCount": 1, "InstanceType": NVME_TYPE, "VolumeSizeInGB": 30,
        "VolumeKmsKeyId": key}}  # fmt: skip
    try:
        sagemaker.create_processing_job(
            ProcessingJobName=name,
            RoleArn=found["sagemaker-role-arn"],
            AppSpecification={"ImageUri": image, "ContainerEntrypoint": ["true"]},
            ProcessingResources=resources,
            StoppingCondition={"MaxRuntimeInSeconds": 600},
            NetworkConfig={"EnableNetworkIsolation": True},
        )  # fmt: skip
    except ClientError as error:
        run.made.forget(f"processing job {name}")  # nothing was made
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", "")
        refused = code == "ValidationException" and "kms" in message.lower()
        status = "passed" if refused else "skipped"  # e.g. a GPU quota of 0 answered first
        evidence = f"CreateProcessingJob on {NVME_TYPE} with the stage key: {code}: {message}"
        run.verdicts.append(Verdict("nvme-volume-key", status, evidence))
        return
    run.verdicts.append(Verdict(
        "nvme-volume-key", "failed",
        f"CreateProcessingJob on {NVME_TYPE} with the stage key was accepted (stopped)",
    ))  # fmt: skip


def image_replication(run: Run) -> None:
    """``ecr-replication``: the sample serves AWS's image, which nothing replicates."""
    run.verdicts.append(Verdict(
        "ecr-replication", "skipped",
        "the sample serves AWS's scikit-learn image: no image of the dev account is "
        "replicated (a team's own serving image would be; see section 5 of the guide)",
    ))  # fmt: skip
