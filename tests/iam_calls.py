"""Which IAM permissions a run of real code needed, checked against a role's real policy.

moto enforces IAM on S3 resources only (elsewhere it sees every resource as ``*``), so a
missing permission in ``infra/`` would first show on AWS. Instead, the tests record every
API call ``build.py`` makes (a botocore event hook on its real clients: the calls still go to
the emulator), turn each into the IAM action and resource ARN AWS authorises, and look for an
``Allow`` statement covering it in the policy Terraform attached to the role.
Conditions are not evaluated, and KMS use by S3 on the caller's behalf is not an API call of
ours, so neither is covered here.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from promotion.stage import ENDPOINT_SCALING_ROLE

# S3 operations -> the IAM action AWS checks (the rest are named like their operation)
S3_ACTIONS = {
    "HeadObject": "s3:GetObject",
    "GetObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "CopyObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "UploadPartCopy": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "ListObjectsV2": "s3:ListBucket",
    "ListObjects": "s3:ListBucket",
    "HeadBucket": "s3:ListBucket",
}
BUCKET_OPERATIONS = {"HeadBucket", "ListObjectsV2", "ListObjects"}  # authorised on the bucket
NEEDS_NO_PERMISSION = {("sts", "GetCallerIdentity")}
# the path of the service-linked roles build.py looks for (IAM authorises on the full ARN)
ROLE_PATHS = {
    ENDPOINT_SCALING_ROLE: "aws-service-role/sagemaker.application-autoscaling.amazonaws.com/",
}


@dataclass
class CallRecorder:
    """Records ``(service, operation, params)`` of every call made by the clients it watches."""

    calls: list[tuple[str, str, dict]] = field(default_factory=list)

    def watch(self, client: Any) -> Any:
        client.meta.events.register("before-parameter-build", self._record)
        return client

    def _record(self, params: dict, model: Any, **_: Any) -> None:
        self.calls.append((model.service_model.signing_name, model.name, dict(params)))


def _s3_arn(bucket: str, key: str | None = None) -> str:
    return f"arn:aws:s3:::{bucket}" + (f"/{key}" if key is not None else "")


def required_permissions(
    service: str, operation: str, params: dict, region: str, account: str
) -> list[tuple[str, str]]:
    """``(action, resource ARN)`` pairs AWS authorises for one call."""
    if (service, operation) in NEEDS_NO_PERMISSION:
        return []
    if service == "s3":
        if operation == "DeleteObjects":  # authorised as DeleteObject on each key
            keys = [item["Key"] for item in params["Delete"]["Objects"]]
            return [("s3:DeleteObject", _s3_arn(params["Bucket"], key)) for key in keys]
        key = None if operation in BUCKET_OPERATIONS else params.get("Key")
        needed = [(S3_ACTIONS.get(operation, f"s3:{operation}"), _s3_arn(params["Bucket"], key))]
        source = params.get("CopySource")
        if isinstance(source, str):  # "bucket/key", as botocore's own handler may have made it
            source_bucket, _, source_key = unquote(source.lstrip("/")).partition("/")
            source = {"Bucket": source_bucket, "Key": source_key.split("?versionId=")[0]}
        if source:
            needed.append(("s3:GetObject", _s3_arn(source["Bucket"], source["Key"])))
        return needed
    if service == "iam" and operation == "GetRole":  # IAM ARNs have no region, roles a path
        name = params["RoleName"]
        return [("iam:GetRole", f"arn:aws:iam::{account}:role/{ROLE_PATHS.get(name, '')}{name}")]
    prefix = f"arn:aws:{service}:{region}:{account}"
    if service == "ecr":
        repository = params.get("repositoryName")
        if not repository:  # GetAuthorizationToken, DescribeRegistry: no resource type
            return [(f"ecr:{operation}", "*")]
        registry = params.get("registryId") or account
        return [
            (f"ecr:{operation}", f"{prefix.rsplit(':', 1)[0]}:{registry}:repository/{repository}")
        ]
    if service == "ssm":
        name = params.get("Path") or params.get("Name") or ""
        return [(f"ssm:{operation}", f"{prefix}:parameter{name}")]
    if service == "sagemaker":
        if operation in ("ListModelPackages", "Search"):
            return [(f"sagemaker:{operation}", "*")]
        if params.get("PipelineExecutionArn"):  # DescribePipelineExecution and the like
            return [(f"sagemaker:{operation}", params["PipelineExecutionArn"])]
        if params.get("PipelineName"):  # Start/ListPipelineExecution(s): the pipeline
            return [(f"sagemaker:{operation}", f"{prefix}:pipeline/{params['PipelineName']}")]
        model = params.get("ModelName")
        if model and operation in ("CreateModel", "DescribeModel", "DeleteModel"):
            needed = [(f"sagemaker:{operation}", f"{prefix}:model/{model}")]
            if operation == "CreateModel":  # the model's role is passed; its tags are added
                needed.append(("iam:PassRole", params["ExecutionRoleArn"]))
                if params.get("Tags"):
                    needed.append(("sagemaker:AddTags", f"{prefix}:model/{model}"))
            return needed
        for field, kind in (
            ("ProcessingJobName", "processing-job"),
            ("TransformJobName", "transform-job"),
        ):
            if params.get(field):  # Describe/Create/Stop...Job: the job
                return [(f"sagemaker:{operation}", f"{prefix}:{kind}/{params[field]}")]
        arn = params.get("ResourceArn") or params.get("ModelPackageArn")
        package = params.get("ModelPackageName")
        group = params.get("ModelPackageGroupName")
        if package and package.startswith("arn:"):
            arn = package
        elif operation == "CreateModelPackage" and group:
            arn = f"{prefix}:model-package/{group.lower()}/1"  # the version it will get
        elif group:
            arn = f"{prefix}:model-package-group/{group}"
        return [(f"sagemaker:{operation}", arn or "*")]
    return [(f"{service}:{operation}", "*")]


def image_pulls(uris: Iterable[str]) -> CallRecorder:
    """The calls a ``docker pull`` of each image makes (SageMaker pulls a job's and a
    model's images as the execution role): the registry token, the manifest, the layers."""
    from common.image_uris import ImageUri

    pulls = CallRecorder()
    for uri in uris:
        image = ImageUri.parse(uri)
        repository = {"registryId": image.account, "repositoryName": image.repository}
        pulls.calls += [
            ("ecr", "GetAuthorizationToken", {}),
            ("ecr", "BatchGetImage", {**repository, "imageIds": [image.image_id]}),
            ("ecr", "BatchCheckLayerAvailability", repository),
            ("ecr", "GetDownloadUrlForLayer", repository),
        ]
    return pulls


def policy_document(document: object) -> dict[str, Any]:
    """An IAM policy as a dict: boto3 decodes the URL-encoded JSON that IAM returns (the
    type stubs also allow the raw string)."""
    if isinstance(document, str):
        return json.loads(unquote(document))
    assert isinstance(document, dict)
    return document


def _matches(patterns: str | list[str], value: str, case_sensitive: bool) -> bool:
    patterns = [patterns] if isinstance(patterns, str) else patterns
    if not case_sensitive:
        value = value.lower()
        patterns = [p.lower() for p in patterns]
    return any(fnmatch.fnmatchcase(value, pattern) for pattern in patterns)


def allowed(policy: dict, action: str, resource: str) -> bool:
    """An ``Allow`` statement of ``policy`` covers ``action`` on ``resource``."""
    return any(
        statement["Effect"] == "Allow"
        and _matches(statement["Action"], action, case_sensitive=False)
        and _matches(statement.get("Resource", "*"), resource, case_sensitive=True)
        for statement in policy["Statement"]
    )


def missing_permissions(
    recorder: CallRecorder, policy: dict, region: str, account: str
) -> list[str]:
    """Every recorded call's permission that ``policy`` does not grant, as readable lines."""
    missing = []
    for service, operation, params in recorder.calls:
        for action, resource in required_permissions(service, operation, params, region, account):
            if not allowed(policy, action, resource):
                missing.append(f"{action} on {resource} ({service}.{operation})")
    return sorted(set(missing))
