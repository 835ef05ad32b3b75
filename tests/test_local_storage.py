"""How the local executor moves objects through the emulator's S3 (local_mode/storage.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import boto3

from local_mode import sandbox, storage
from local_mode.emulator import Emulator

BUCKET = "storage-bucket"


def test_an_object_is_downloaded_with_one_streamed_get_whole(aws: Emulator, tmp_path: Path) -> None:
    """boto3's default would send 8 MiB ranged GETs, and the emulator reads the whole object
    to serve each one (24 s instead of 1.1 s for the demo's 597 MB input): one GET, no Range,
    and the file arrives byte for byte."""
    sandbox.create_bucket(aws, None, BUCKET)
    s3 = boto3.client("s3")
    body = os.urandom(20 * 1024 * 1024)  # over boto3's 8 MiB multipart threshold
    s3.put_object(Bucket=BUCKET, Key="in/big.bin", Body=body)
    gets: list[dict[str, Any]] = []
    s3.meta.events.register(
        "before-parameter-build.s3.GetObject", lambda params, **_: gets.append(dict(params))
    )
    storage.download(s3, BUCKET, "in/big.bin", tmp_path / "copy" / "big.bin")
    assert (tmp_path / "copy" / "big.bin").read_bytes() == body
    assert len(gets) == 1 and "Range" not in gets[0]
