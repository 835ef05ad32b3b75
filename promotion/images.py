"""The package's images in the stage: from its own registry, pinned by digest.

An image in the dev account's ECR reaches each stage by ECR replication (the rule is made by
``infra/dev-account``, the stage's registry policy by ``infra/target-account``): the stage
then runs a copy in its own account that no change in dev (a tag pushed again, a lifecycle
rule, a deleted repository) can alter or remove. The target package names that copy by
digest. SageMaker's own framework images stay where they are. Reads only; the one wait is
for replication, before anything is written.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from common.image_uris import ImageUri, NotAnEcrImage
from promotion.errors import ImageNotReady, NotRunnable, aws_errors, error_code, is_not_found

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

# replication usually lands within minutes; an hour covers a large image in a busy region
DEFAULT_WAIT_SECONDS = 1800.0
POLL_SECONDS = 15.0


@dataclass(frozen=True)
class ImagePlan:
    """One image of the package: as registered, and as the target package names it."""

    registered: str  # the URI as the source package has it
    source: ImageUri
    target: ImageUri
    # copied by replication: the stage's registry must hold it before the package is made
    replicated: bool


def container_images(spec: Mapping[str, Any] | None) -> list[str]:
    """The image URIs of an ``InferenceSpecification``, in container order, once each."""
    images = [c["Image"] for c in (spec or {}).get("Containers", []) if c.get("Image")]
    return list(dict.fromkeys(images))


def parse_image(uri: str) -> ImageUri:
    try:
        return ImageUri.parse(uri)
    except NotAnEcrImage as error:
        raise NotRunnable(str(error)) from None


def resolve_digest(
    ecr: ECRClient,
    image: ImageUri,
    registry: str,
    registered_digest: str | None = None,
    registered_at: datetime | None = None,
) -> str:
    """The digest of the image the package was approved with.

    A digest in the URI, or the container's ``ImageDigest``, is that image (seen to exist).
    Otherwise the tag is read now, and refused if what it names was pushed after the package
    was registered: every stage promoted from the package (pre-prod, then prod after its
    gate) must run the same image, whatever is pushed in between.
    """
    if registered_digest and not image.digest:
        image = replace(image, tag=None, digest=registered_digest)
    detail = _describe(ecr, image, f"reading image {image} in the {registry} registry")
    if isinstance(detail, str):
        raise NotRunnable(
            f"image {image} does not exist in the {registry} registry ({detail}); push it, "
            "or register the package with a tag or digest that exists"
        )
    if image.tag and registered_at and tag_moved_since(detail, registered_at):
        raise NotRunnable(
            f"tag {image.tag!r} of {image.repository} was pushed again after the package was "
            f"registered ({registered_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC): it no "
            "longer names the image that was approved; register a new version, or register "
            "the image by digest"
        )
    return detail["imageDigest"]


def tag_moved_since(detail: Mapping[str, Any], registered_at: datetime | None) -> bool:
    """Whether the image a tag names now was pushed after ``registered_at``."""
    pushed = detail.get("imagePushedAt")
    return bool(registered_at and isinstance(pushed, datetime) and pushed > registered_at)


def check_replication(ecr: ECRClient, image: ImageUri, stage_account: str, region: str) -> None:
    """Refuse at once when no rule of the dev registry copies ``image`` to the stage (it
    would never arrive), instead of waiting for it."""
    with aws_errors("reading the dev registry's replication configuration"):
        rules = ecr.describe_registry().get("replicationConfiguration", {}).get("rules", [])
    for rule in rules:
        destinations = {(d["region"], d["registryId"]) for d in rule.get("destinations", [])}
        filters = [f["filter"] for f in rule.get("repositoryFilters", [])]
        covered = not filters or any(image.repository.startswith(f) for f in filters)
        if (region, stage_account) in destinations and covered:
            return
    raise ImageNotReady(
        f"the dev registry does not replicate repository {image.repository!r} to account "
        f"{stage_account} in {region}; in infra/dev-account list the stage's deploy role in "
        "target_deploy_role_arns and the repository under image_repository_prefixes, set "
        "replicate_images = true (and accept_image_replication = true in the stage's "
        "infra/target-account), apply both and push the image again"
    )


def plan_images(
    spec: Mapping[str, Any],
    source_ecr: ECRClient,
    target_ecr: ECRClient,
    *,
    dev_account: str,
    stage_account: str,
    region: str,
    registered_at: datetime | None = None,
) -> list[ImagePlan]:
    """Where each image of the package comes from and what the target package will name.

    ``registered_at``: the package's ``CreationTime`` (a tag pushed after it is refused)."""
    plans = []
    registered = {
        c["Image"]: c["ImageDigest"]
        for c in spec.get("Containers", [])
        if c.get("Image") and c.get("ImageDigest")
    }
    for uri in container_images(spec):
        image = parse_image(uri)
        if image.region != region:
            raise NotRunnable(
                f"image {image} is in {image.region}, but the stage runs in {region}; SageMaker "
                f"pulls a model's image from its own region: register the {region} image"
            )
        if image.is_sagemakers:
            plans.append(ImagePlan(uri, image, image, replicated=False))
        elif image.account == stage_account:
            digest = resolve_digest(target_ecr, image, "stage", registered.get(uri), registered_at)
            plans.append(
                ImagePlan(uri, image, image.pinned(stage_account, digest), replicated=False)
            )
        elif image.account == dev_account:
            check_replication(source_ecr, image, stage_account, region)
            digest = resolve_digest(source_ecr, image, "dev", registered.get(uri), registered_at)
            plans.append(
                ImagePlan(uri, image, image.pinned(stage_account, digest), replicated=True)
            )
        else:
            raise NotRunnable(
                f"image {image} is in account {image.account}, which is neither the dev account "
                f"({dev_account}), the stage's ({stage_account}) nor one of SageMaker's image "
                "accounts; push it to the dev account's ECR, which replicates it to the stages"
            )
    return plans


def wait_until_replicated(
    ecr: ECRClient,
    plans: Iterable[ImagePlan],
    timeout_seconds: float = DEFAULT_WAIT_SECONDS,
    poll_seconds: float | None = None,
) -> None:
    """Return once the stage's registry holds every replicated image at its digest."""
    poll_seconds = POLL_SECONDS if poll_seconds is None else poll_seconds
    waiting = [plan.target for plan in plans if plan.replicated]
    deadline = time.monotonic() + timeout_seconds
    while waiting:
        waiting = [image for image in waiting if not _present(ecr, image)]
        if not waiting:
            return
        if time.monotonic() >= deadline:
            raise ImageNotReady(
                f"image {waiting[0]} has not reached the stage's registry after "
                f"{timeout_seconds / 60:.0f} min; ECR replicates only pushes made after the dev "
                "registry's rule and the stage's registry policy (infra/target-account "
                "accept_image_replication = true) existed: push the image again (or start a "
                "replication backfill) and re-run"
            )
        time.sleep(poll_seconds)


def _present(ecr: ECRClient, image: ImageUri) -> bool:
    # the repository itself appears with the first replicated image
    found = _describe(ecr, image, f"looking for image {image} in the stage's registry")
    return not isinstance(found, str)


def _describe(ecr: ECRClient, image: ImageUri, action: str) -> dict[str, Any] | str:
    """ECR's details of ``image``; when it (or its repository) does not exist, ECR's error
    code saying which."""
    with aws_errors(action):
        try:
            details = ecr.describe_images(
                registryId=image.account,
                repositoryName=image.repository,
                imageIds=[image.image_id],
            )["imageDetails"]
        except ClientError as error:
            if is_not_found(error):
                return error_code(error)
            raise
    return dict(details[0]) if details else "ImageNotFoundException"


def retarget(spec: Mapping[str, Any], plans: Iterable[ImagePlan]) -> dict[str, Any]:
    """``spec`` with each container naming its image's target (a pinned copy)."""
    moved = {plan.registered: str(plan.target) for plan in plans}
    containers = [
        {**c, "Image": moved.get(c["Image"], c["Image"])} if c.get("Image") else dict(c)
        for c in spec.get("Containers", [])
    ]
    return {**spec, "Containers": containers}


def repository_arns(specs: Iterable[Mapping[str, Any] | None], *extra: str) -> list[str]:
    """The ECR repositories the stage's execution role must pull from: every image of the
    given specifications, plus ``extra`` image URIs (the pipeline's processing image)."""
    uris = [uri for spec in specs for uri in container_images(spec)] + list(extra)
    return sorted({parse_image(uri).repository_arn for uri in uris})
