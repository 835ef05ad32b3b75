"""The dev artifacts bucket's policy with the dev root's statements merged in by Sid: the
bucket is the team's, so its other statements stay; ours are added, or replaced when they
changed (new deploy roles, prefixes)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import botocore.exceptions

from common.exit_codes import USAGE_ERROR, CommandFailed

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def merge(existing: dict[str, Any] | None, ours: dict[str, Any]) -> dict[str, Any]:
    """``existing`` with each of ``ours``'s statements in place of the one of the same Sid
    (in its position), or appended; every other statement as it was."""
    statements = [s for s in ours.get("Statement", []) if isinstance(s, dict)]
    if not statements or any(not s.get("Sid") for s in statements):
        raise CommandFailed(
            "the dev root's model_artifacts_bucket_policy has a statement without a Sid: it "
            "cannot be merged",
            USAGE_ERROR,
        )
    policy = dict(existing or {"Version": ours.get("Version", "2012-10-17")})
    current = policy.get("Statement", [])
    current = [current] if isinstance(current, dict) else list(current)
    by_sid = {s["Sid"]: s for s in statements}
    merged = [
        by_sid.pop(s["Sid"]) if isinstance(s, dict) and s.get("Sid") in by_sid else s
        for s in current
    ]
    merged.extend(s for s in statements if s["Sid"] in by_sid)
    policy["Statement"] = merged
    return policy


def current_policy(s3: S3Client, bucket: str) -> dict[str, Any] | None:
    """The bucket's policy, or None when it has none."""
    try:
        text = s3.get_bucket_policy(Bucket=bucket)["Policy"]
    except botocore.exceptions.ClientError as error:
        if error.response.get("Error", {}).get("Code") == "NoSuchBucketPolicy":
            return None
        raise
    try:
        policy = json.loads(text)
    except json.JSONDecodeError:
        policy = None
    if not isinstance(policy, dict):
        raise CommandFailed(
            f"the policy of s3://{bucket} is not a JSON object: fix it "
            "(aws s3api get-bucket-policy) before the bootstrap merges into it"
        )
    return policy


def _normal(value: Any) -> Any:
    """A statement as IAM compares it: S3 may return a one-item list as its item."""
    if isinstance(value, list):
        items = [_normal(item) for item in value]
        return items[0] if len(items) == 1 else sorted(items, key=json.dumps)
    if isinstance(value, dict):
        return {key: _normal(item) for key, item in value.items()}
    return value


def changed_sids(existing: dict[str, Any] | None, ours: dict[str, Any]) -> list[str]:
    """The Sids of ours the merge adds or replaces (none: the bucket has them already)."""
    current = (existing or {}).get("Statement", [])
    current = [current] if isinstance(current, dict) else current
    before = {s.get("Sid"): s for s in current if isinstance(s, dict)}
    return [
        s["Sid"] for s in ours.get("Statement", []) if _normal(before.get(s["Sid"])) != _normal(s)
    ]
