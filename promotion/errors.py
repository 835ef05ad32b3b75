"""Errors build.py reports as one line each (with its exit code), and the AWS-error helpers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from botocore.config import Config
from botocore.exceptions import ClientError

from common import aws_sessions


# One class per exit code (docs/promotion.md, Exit codes), like click's exceptions: a script
# tells the failures apart by the code, a reader by the class name. The repetition is the table.
class PromotionError(Exception):
    """A failure reported as one line; ``exit_code`` tells the kinds apart for scripts."""

    exit_code = 1


class UsageError(PromotionError):
    exit_code = 2


class NoApprovedPackage(PromotionError):
    exit_code = 3


class GroupNotFound(PromotionError):
    exit_code = 4


class VersionNotPromotable(PromotionError):
    exit_code = 5


class AccessDenied(PromotionError):
    exit_code = 6


class ArtifactMissing(PromotionError):
    exit_code = 7


class StageNotReady(PromotionError):
    exit_code = 8


class TargetPackageFailed(PromotionError):
    exit_code = 9


class CopyVerificationFailed(PromotionError):
    exit_code = 10


class AccountMismatch(PromotionError):
    exit_code = 11


class Unreachable(PromotionError):
    exit_code = 12


class NotRunnable(PromotionError):
    exit_code = 13


class ImageNotReady(PromotionError):
    exit_code = 14


_ACCESS_DENIED_CODES = {
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
    "AuthorizationError",
    "KMS.AccessDeniedException",
}


_NOT_FOUND_CODES = {
    "ResourceNotFound",
    "NoSuchKey",
    "NoSuchBucket",
    "404",
    "NotFound",
    "RepositoryNotFoundException",
    "ImageNotFoundException",
    "NoSuchEntity",  # IAM
}


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def is_access_denied(error: ClientError) -> bool:
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return error_code(error) in _ACCESS_DENIED_CODES or status == 403


def is_not_found(error: ClientError) -> bool:
    """True only for "does not exist" answers; access denied is never "not found"."""
    if is_access_denied(error):
        return False
    if error_code(error) in _NOT_FOUND_CODES:
        return True
    message = str(error.response.get("Error", {}).get("Message", "")).lower()
    return error_code(error) == "ValidationException" and (
        "does not exist" in message or "not found" in message
    )


@contextmanager
def aws_errors(action: str) -> Iterator[None]:
    """Turn an unexpected ``ClientError`` into a one-line ``PromotionError`` naming ``action``."""
    try:
        yield
    except ClientError as error:
        message = one_line(error.response.get("Error", {}).get("Message") or str(error))
        if is_access_denied(error):
            raise AccessDenied(
                f"access denied while {action}: {message} "
                "(check the role's permissions and the resource's policy)"
            ) from None
        raise PromotionError(f"AWS error while {action}: {error_code(error)}: {message}") from None


def one_line(message: str) -> str:
    """An AWS error message fit for one line (some emulators send a raw XML body)."""
    embedded = re.search(r"<Message>(.*?)</Message>", message, flags=re.DOTALL)
    return " ".join((embedded.group(1) if embedded else message).split())


def client_config() -> Config:
    """The project's one retry policy (``common.aws_sessions``): adaptive retries, so
    throttling slows a deploy down instead of failing it; ``AWS_MAX_ATTEMPTS`` wins when set
    (tests keep it low against the emulator)."""
    return aws_sessions.client_config()
