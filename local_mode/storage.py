"""S3 access for local jobs: list a prefix, download inputs, upload outputs (boto3 managed)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from boto3.s3.transfer import TransferConfig

from common.s3_locations import parse_s3_uri, transfer_extra_args

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def list_objects(s3: S3Client, uri: str) -> list[tuple[str, str, int]]:
    """``(bucket, key, size)`` of every object an ``S3Prefix`` URI matches, sorted by key."""
    bucket, prefix = parse_s3_uri(uri)
    objects = [
        (bucket, item["Key"], item["Size"])
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for item in page.get("Contents", [])
        if not item["Key"].endswith("/")
    ]
    return sorted(objects, key=lambda o: o[1])


def relative_key(uri: str, key: str) -> str:
    """The part of ``key`` after the URI's prefix: where the object lands below a local path
    (Processing) or an output path (Transform).

    ``s3://b/in`` or ``s3://b/in/`` + ``in/2026/a.csv`` -> ``2026/a.csv``; a URI naming the
    object itself (``s3://b/code/run.py``) -> ``run.py``.
    """
    _, prefix = parse_s3_uri(uri)
    rest = key[len(prefix) :].lstrip("/")
    return rest or key.rsplit("/", 1)[-1]


# One GET per object, streamed to disk: boto3's default splits a download into 8 MiB ranged
# GETs, and the emulator (moto) reads the whole object to serve each range, so a 600 MB input
# took 24 s instead of 1.1 s (measured on the demo's million rows; benchmarks/local_stage.py).
# The managed transfer still streams, retries and writes the file whole or not at all.
SINGLE_GET = TransferConfig(multipart_threshold=1 << 62, use_threads=False)


def download(s3: S3Client, bucket: str, key: str, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    s3.download_file(bucket, key, str(destination), Config=SINGLE_GET)


def upload_tree(s3: S3Client, source: Path, uri: str, kms_key_id: str | None = None) -> list[str]:
    """Upload every file under ``source`` to ``uri`` + its relative path; return the URIs."""
    bucket, prefix = parse_s3_uri(uri)
    prefix = prefix.rstrip("/")
    extra = transfer_extra_args(kms_key_id)
    uploaded = []
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        key = f"{prefix}/{path.relative_to(source).as_posix()}" if prefix else path.name
        s3.upload_file(str(path), bucket, key, ExtraArgs=extra)
        uploaded.append(f"s3://{bucket}/{key}")
    return uploaded
