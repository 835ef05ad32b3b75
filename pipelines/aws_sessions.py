"""A boto3 session acting as an assumed role: how build.py reaches the dev and target accounts,
and how the emulator stands in for them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3

if TYPE_CHECKING:
    from mypy_boto3_sts import STSClient


def assumed_session(
    sts: STSClient, role_arn: str, session_name: str, region: str | None
) -> boto3.Session:
    """``sts:AssumeRole`` into ``role_arn``; a session holding those temporary credentials."""
    credentials = sts.assume_role(RoleArn=role_arn, RoleSessionName=session_name)["Credentials"]
    return boto3.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=region,
    )
