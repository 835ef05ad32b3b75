"""S3 URIs and server-side encryption arguments: the one low module both sides share.

The promotion (``utils``/``build.py``), the local executor and the CLIs all name S3 objects
by ``s3://`` URIs and write them encrypted; a bad URI is a ``ValueError`` here, and each
caller turns it into its own one-line error and exit code.
"""

from __future__ import annotations

import hashlib
import re
from typing import Literal, TypedDict


class SseArguments(TypedDict, total=False):
    """The encryption fields of ``PutObject`` (and of managed transfers' ``ExtraArgs``)."""

    ServerSideEncryption: Literal["aws:kms", "AES256"]
    SSEKMSKeyId: str


_S3_URI = re.compile(r"s3://([^/]+)/?(.*)", re.DOTALL)


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key/or/prefix`` -> ``("bucket", "key/or/prefix")`` (the key may be empty)."""
    match = _S3_URI.fullmatch(uri) if isinstance(uri, str) else None
    if not match:
        raise ValueError(f"not an S3 URI: {uri!r} (expected s3://bucket/key)")
    return match.group(1), match.group(2)


def parse_s3_object_uri(uri: str) -> tuple[str, str]:
    """Like :func:`parse_s3_uri`, for a URI that must name one object (a non-empty key)."""
    bucket, key = parse_s3_uri(uri)
    if not key or key.endswith("/"):
        raise ValueError(f"{uri!r} names no object (expected s3://bucket/key)")
    return bucket, key


def transfer_extra_args(kms_key_id: str | None) -> dict[str, str] | None:
    """:func:`sse_arguments` as boto3's managed transfers take them (``ExtraArgs``)."""
    return {name: str(value) for name, value in sse_arguments(kms_key_id).items()} or None


def content_key(prefix: str, filename: str, body: bytes) -> str:
    """``<prefix>/<sha256 of body, 16 hex>/<filename>``: changes exactly when the bytes do."""
    return f"{prefix}/{hashlib.sha256(body).hexdigest()[:16]}/{filename}"


def sse_arguments(kms_key_id: str | None, *, s3_managed_otherwise: bool = False) -> SseArguments:
    """The ``PutObject``/``ExtraArgs`` encryption fields: the stage's KMS key when there is
    one; otherwise SSE-S3 stated explicitly, or nothing (the bucket's default)."""
    if kms_key_id:
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id}
    return {"ServerSideEncryption": "AES256"} if s3_managed_otherwise else SseArguments()
