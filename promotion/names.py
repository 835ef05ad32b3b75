"""The names promotion derives: stages, SageMaker-safe resource names, model names."""

from __future__ import annotations

import hashlib
import re

from common import s3_locations
from promotion.errors import UsageError

STAGES = ("preprod", "prod")


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """An S3 URI of the promotion's inputs; a bad one is the user's to fix (``UsageError``)."""
    try:
        return s3_locations.parse_s3_uri(uri)
    except ValueError as error:
        raise UsageError(str(error)) from None


def account_of(arn: str) -> str:
    return arn.split(":")[4]


def resource_name(*parts: str, limit: int = 63) -> str:
    """A SageMaker-safe name (letters, digits, hyphens), shortened with a hash if too long."""
    name = re.sub(r"[^a-zA-Z0-9-]+", "-", "-".join(parts)).strip("-")
    name = re.sub(r"-{2,}", "-", name)
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9].rstrip('-')}-{digest}"


def model_name(group: str, stage: str, version: int) -> str:
    """The stage's SageMaker model for one version (the template keys models by it)."""
    return resource_name(group, stage, f"v{version}")


def candidate_model_name(group: str, stage: str, version: int) -> str:
    """A version's shadow candidate in the stage (promotion/shadow_candidate.py): as long as
    ``model_name``'s, so the group-name check below covers it too."""
    return resource_name(group, stage, f"c{version}")


def check_group_name(group: str, stage: str) -> None:
    """Refuse a group whose model names would be shortened with a hash.

    The stage's models are ``<group>-<stage>-v<version>`` (63 characters at most), and the
    roles in infra/ allow exactly ``model/<group>-<stage>-*``: a hashed name falls outside it,
    and the first deploy would fail on AWS (the emulator does not evaluate IAM).
    """
    longest = model_name(group, stage, 99999)
    if not longest.startswith(f"{group}-{stage}-"):
        limit = 63 - len(f"-{stage}-v99999")
        raise UsageError(
            f"model package group name {group!r} is {len(group)} characters: the stage's model "
            f"names <group>-{stage}-v<version> need it to be {limit} or fewer letters, digits "
            "and hyphens; register the models in a group with a shorter name"
        )
