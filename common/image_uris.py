"""Container image URIs: what an ECR URI names, and which registries are SageMaker's own.

Promotion (which images to replicate and pin) and local mode (which images it can stand in
for) ask the same two questions, so they read one parser and one table.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_ecr.type_defs import ImageIdentifierTypeDef

# <account>.dkr.ecr.<region>.amazonaws.com[.cn]/<repository>(:<tag>|@sha256:<digest>), the
# forms SageMaker accepts for a model's image (ECR's own name rules for repository and tag)
_ECR_URI = re.compile(
    r"(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.(?P<domain>amazonaws\.com(?:\.cn)?)/"
    r"(?P<repository>[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})|@(?P<digest>sha256:[0-9a-f]{64}))?"
)

# The images local mode stands in for: SageMaker's scikit-learn container at the version of
# its runtime twin (local_mode/twin.py: the image's packages, its serving stack). Other
# framework images share the handler names but not the defaults nor the libraries, and
# another scikit-learn version has other libraries: neither is guessed at.
LOCAL_REPOSITORIES = frozenset({"sagemaker-scikit-learn"})
LOCAL_IMAGE_VERSION = "1.9-0"  # twin.IMAGE_VERSION (a test holds them equal)


class NotAnEcrImage(ValueError):
    """The URI is not an image in a private ECR registry."""


@dataclass(frozen=True)
class ImageUri:
    """One image in a private ECR registry, by tag or by digest."""

    account: str
    region: str
    domain: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, uri: str) -> ImageUri:
        match = _ECR_URI.fullmatch(uri)
        if not match:
            raise NotAnEcrImage(
                f"image {uri!r} is not in a private ECR registry "
                "(<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>); SageMaker runs "
                "only such images: push it to the dev account's ECR"
            )
        fields = match.groupdict()
        if not fields["tag"] and not fields["digest"]:
            fields["tag"] = "latest"  # what docker and SageMaker pull for a bare repository
        return cls(**fields)

    def __str__(self) -> str:
        host = f"{self.account}.dkr.ecr.{self.region}.{self.domain}/{self.repository}"
        return f"{host}@{self.digest}" if self.digest else f"{host}:{self.tag}"

    @property
    def partition(self) -> str:
        """The region's partition (``aws-cn``, ``aws-us-gov``, ...), from botocore's table."""
        return _partition(self.region)

    @property
    def repository_arn(self) -> str:
        return f"arn:{self.partition}:ecr:{self.region}:{self.account}:repository/{self.repository}"

    @property
    def image_id(self) -> ImageIdentifierTypeDef:
        """The ECR ``ImageIdentifier`` naming this image."""
        return {"imageDigest": self.digest} if self.digest else {"imageTag": self.tag or ""}

    def pinned(self, account: str, digest: str) -> ImageUri:
        """The same repository in ``account``'s registry, by ``digest``."""
        return replace(self, account=account, tag=None, digest=digest)

    @property
    def is_sagemakers(self) -> bool:
        """In one of the accounts SageMaker publishes its framework images from."""
        return self.account in sagemaker_image_accounts()


@cache
def _partition(region: str) -> str:
    import botocore.exceptions
    import botocore.session

    try:
        return botocore.session.get_session().get_partition_for_region(region)
    except botocore.exceptions.UnknownRegionError:  # newer than botocore: the commercial one
        return "aws"


def _walk(node: Any, repository: str | None = None) -> Iterator[tuple[str, dict[str, str]]]:
    if isinstance(node, dict):
        repository = node.get("repository", repository)
        if isinstance(node.get("registries"), dict) and repository:
            yield repository, node["registries"]
        for value in node.values():
            yield from _walk(value, repository)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value, repository)


@cache
def sagemaker_image_accounts() -> frozenset[str]:
    """Every account SageMaker's image tables name, in any region (the SDK's own JSON files,
    read without importing the SDK: the accounts differ by region and framework)."""
    spec = importlib.util.find_spec("sagemaker")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the SageMaker Python SDK is not installed (make install)")
    tables = Path(next(iter(spec.submodule_search_locations))) / "core" / "image_uri_config"
    accounts: set[str] = set()
    for table in sorted(tables.glob("*.json")):
        for _, registries in _walk(json.loads(table.read_text())):
            accounts.update(registries.values())
    if not accounts:
        raise RuntimeError(f"no image tables under {tables}; reinstall the SageMaker SDK")
    return frozenset(accounts)


def local_refusal(uri: str | None) -> str | None:
    """Why local mode cannot stand in for the container of ``uri``, or None."""
    if not uri:
        return None  # a model without an image: the executor's own checks speak
    try:
        image = ImageUri.parse(uri)
    except NotAnEcrImage:
        image = None
    if image and image.is_sagemakers and image.repository in LOCAL_REPOSITORIES:
        if image.tag is None or image.tag.startswith(f"{LOCAL_IMAGE_VERSION}-"):
            return None  # (by digest: the version cannot be read from the URI)
        return (
            f"local mode cannot run image {uri}: its runtime twin is the scikit-learn "
            f"{LOCAL_IMAGE_VERSION} image's (make twin); score this model on SageMaker, or "
            f"move it to {LOCAL_IMAGE_VERSION}"
        )
    return (
        f"local mode cannot run image {uri}: it stands in only for SageMaker's scikit-learn "
        "container (Python handlers in the model's code/); this model runs on SageMaker, "
        "deploy the stage to AWS to score with it"
    )
