"""The one retry policy of every AWS client the project makes, and the sessions that carry it.

Throttling, 5xx answers and connection resets are normal on AWS at a deployment's call
rates; botocore's default (standard mode, 3 attempts) lets them fail a CLI that ``build.py``
(adaptive, 10 attempts) in the same workflow survives. Every session made here carries
:func:`client_config` as its botocore session's default client config, so each client built
from it gets the policy, the SageMaker SDK's included (``PipelineSession(boto_session=...)``).
A client built with its own ``Config`` keeps the policy for what that config leaves unset.

Standard library, botocore and boto3 only: the stage functions' zips can carry it.
"""

from __future__ import annotations

import functools
import os
import urllib.parse
from typing import TYPE_CHECKING, Final

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mypy_boto3_sts import STSClient

# adaptive: besides retrying, a client slows its own sending rate while it is throttled
RETRY_MODE: Final = "adaptive"
DEFAULT_MAX_ATTEMPTS = 10  # attempts in all, the first included; AWS_MAX_ATTEMPTS overrides
CONNECT_TIMEOUT = 10
READ_TIMEOUT = 60
USER_AGENT_EXTRA = "sagemaker-batch-mlops"


class AwsSettingError(ValueError):
    """An AWS setting of the environment or the command line botocore would fail on."""


def max_attempts(environ: Mapping[str, str] = os.environ) -> int:
    """``AWS_MAX_ATTEMPTS`` (a whole number >= 1) when set, else :data:`DEFAULT_MAX_ATTEMPTS`."""
    text = environ.get("AWS_MAX_ATTEMPTS")
    if text is None or not text.strip():
        return DEFAULT_MAX_ATTEMPTS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise AwsSettingError(
            f"AWS_MAX_ATTEMPTS is {text!r}: give a whole number of attempts >= 1 "
            f"(or unset it for {DEFAULT_MAX_ATTEMPTS})"
        )
    return value


def check_endpoint_url(url: str | None, source: str) -> str | None:
    """``url`` if botocore can use it as an endpoint (``http(s)://host[:port]``), else an
    ``AwsSettingError`` naming ``source`` (the variable or the option it came from)."""
    if url is None or url == "":
        return url or None
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise AwsSettingError(
            f"{source} is {url!r}: an endpoint URL needs a scheme and a host, "
            f"e.g. http://{url.split('://')[-1] or 'localhost:5000'}"
        )
    return url


def check_environment(environ: Mapping[str, str] = os.environ) -> None:
    """Refuse, before any client exists, the AWS variables botocore would raise a traceback
    on: ``AWS_MAX_ATTEMPTS`` and every ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>``."""
    max_attempts(environ)
    for name in sorted(environ):
        if name == "AWS_ENDPOINT_URL" or name.startswith("AWS_ENDPOINT_URL_"):
            check_endpoint_url(environ[name], name)


def client_config() -> Config:
    """The policy: adaptive retries, :func:`max_attempts` attempts, bounded timeouts."""
    return Config(
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        retries={"mode": RETRY_MODE, "total_max_attempts": max_attempts()},
        user_agent_extra=USER_AGENT_EXTRA,
    )


def session(
    region: str | None = None,
    profile: str | None = None,
    *,
    aws_access_key_id: str | None = None,
    aws_secret_access_key: str | None = None,
    aws_session_token: str | None = None,
) -> boto3.Session:
    """A boto3 session whose every client gets :func:`client_config` (the environment is
    checked first: a bad setting is an ``AwsSettingError``, not a traceback)."""
    check_environment()
    core = botocore.session.Session()
    # the service models, read once per process (a function makes sessions per invocation)
    core.register_component("data_loader", shared_loader())
    core.set_default_client_config(client_config())
    return boto3.Session(
        profile_name=profile,
        aws_access_key_id=aws_access_key_id,
        aws_secret_access_key=aws_secret_access_key,
        aws_session_token=aws_session_token,
        region_name=region,
        botocore_session=core,
    )


@functools.cache
def shared_loader() -> botocore.loaders.Loader:
    """One loader of botocore's data for every session: read-only, it caches what it reads
    (from the same places a session's own loader reads, ``AWS_DATA_PATH`` included)."""
    return botocore.loaders.create_loader(os.environ.get("AWS_DATA_PATH"))


def assumed_session(
    sts: STSClient, role_arn: str, session_name: str, region: str | None
) -> boto3.Session:
    """``sts:AssumeRole`` into ``role_arn``; a session (with the policy) holding those
    temporary credentials: how build.py reaches the dev and target accounts, and how the
    emulator stands in for them."""
    credentials = sts.assume_role(RoleArn=role_arn, RoleSessionName=session_name)["Credentials"]
    return session(
        region,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
