"""Start the GitHub deploy workflow when a model package version is approved in the dev account.

An EventBridge rule on ``SageMaker Model Package State Change`` invokes ``handler``. It checks
the event again (the rule's pattern is configuration, this is code: a widened pattern or a
hand-sent test event must not deploy anything), reads a GitHub token from Secrets Manager and
calls the REST API's *workflow_dispatch* endpoint,
``POST /repos/{owner}/{repo}/actions/workflows/{workflow}/dispatches``.

Why workflow_dispatch and not repository_dispatch: ``repository_dispatch`` triggers every
workflow listening for it, and a fine-grained token needs ``contents: write`` to send one,
which also lets the token push code. ``workflow_dispatch`` starts exactly one workflow file,
on a ref we choose, with inputs that the workflow declares and GitHub validates, and a
fine-grained token needs only ``actions: write`` on this one repository. If the Lambda's
secret leaks, the worst it can do is re-run workflows, not change what they run.

The event is cross-checked before anything is read or sent: the package ARN's account,
region, group and version must be the event's (``account``, ``region``, ``detail``), else it
is **refused** (one warning line, nothing dispatched). EventBridge delivers at least once,
and an archive can replay old events (they carry ``replay-name``): a replay is refused, and
before dispatching, the workflow's runs are listed (``GET .../workflows/{workflow}/runs``,
``event=workflow_dispatch``, created since the event): a run for this version there means
this approval was dispatched already, so nothing is sent again. No new infrastructure (the
token's ``actions: write`` includes reading runs); what it cannot close is two deliveries
handled at the same moment, before GitHub lists the first run (seconds): that needs a
conditional store (a DynamoDB item per event id, or a FIFO queue deduplicating on it).

Failures raise ``DispatchError`` so the invocation fails: Lambda's asynchronous invocation
retries it and then hands the event to the function's failure destination (dead-letter
queue), where an approval that did not deploy stays visible. The token never appears in a
log line or an error message: messages that quote GitHub are scrubbed of it.

Standard library only (``urllib.request``) for HTTP; boto3, which the Lambda Python runtime
provides, only for Secrets Manager: the deployment zip is this one file.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import logging
import math
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)

SOURCE = "aws.sagemaker"
DETAIL_TYPE = "SageMaker Model Package State Change"
APPROVED = "Approved"
USER_AGENT = "sagemaker-batch-mlops-dispatch"
GITHUB_API_VERSION = "2022-11-28"
MESSAGE_LIMIT = 200  # characters of GitHub's error message kept in ours
BODY_LIMIT = 64 * 1024  # bytes of an error response read, enough for GitHub's JSON
LOOPBACK_HOSTS = frozenset({"localhost"})
DEFAULT_WORKFLOW_FILE = "deploy.yml"
DEFAULT_REF = "main"
DEFAULT_API_URL = "https://api.github.com"
DEFAULT_TIMEOUT_SECONDS = 10.0
# runs created this long before the event still count as its dispatch (clocks differ)
CLOCK_SKEW = timedelta(minutes=5)
# the deploy workflow's run-name for a pinned version (.github/workflows/deploy.yml)
RUN_TITLE = "deploy model version {version} (workflow_dispatch)"
# arn:<partition>:sagemaker:<region>:<account>:model-package/<group>/<version>
_PACKAGE_ARN = re.compile(
    r"arn:aws[a-z-]*:sagemaker:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{12}):"
    r"model-package/(?P<group>[A-Za-z0-9-]{1,63})/(?P<version>[0-9]+)"
)

# GitHub owners are letters, digits and hyphens; repository names add '.' and '_'.
_REPOSITORY = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?/[A-Za-z0-9._-]+")
# A workflow file name (``deploy.yml``) or its numeric id: one URL path segment.
_WORKFLOW = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


class ConfigError(ValueError):
    """An environment variable of the Lambda is missing or invalid: fix the deployment."""


class DispatchError(RuntimeError):
    """The workflow was not dispatched; raised so the invocation fails and is retried."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class IgnoredEvent(Exception):
    """The event is not an approval of this model package group; the reason says why."""


class RefusedEvent(IgnoredEvent):
    """The event claims an approval of this group but does not add up (its ARN names another
    account, region, group or version) or is a replay: refused, logged as a warning."""


@dataclass(frozen=True)
class Config:
    """The Lambda's configuration, from its environment variables."""

    repository: str
    token_secret_id: str
    model_package_group_name: str
    workflow_file: str = DEFAULT_WORKFLOW_FILE
    ref: str = DEFAULT_REF
    api_url: str = DEFAULT_API_URL
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Read and validate the variables now, not at import, so each call sees the current ones.

        Optional variables that are unset or empty take their default.
        """
        env = os.environ if environ is None else environ
        return cls(
            repository=_repository(_required(env, "GITHUB_REPOSITORY")),
            token_secret_id=_required(env, "GITHUB_TOKEN_SECRET_ID"),
            model_package_group_name=_required(env, "MODEL_PACKAGE_GROUP_NAME"),
            workflow_file=_workflow(_optional(env, "GITHUB_WORKFLOW_FILE", DEFAULT_WORKFLOW_FILE)),
            ref=_optional(env, "GITHUB_REF", DEFAULT_REF),
            api_url=_api_url(_optional(env, "GITHUB_API_URL", DEFAULT_API_URL)),
            timeout_seconds=_timeout(_optional(env, "HTTP_TIMEOUT_SECONDS", "")),
        )

    @property
    def dispatch_url(self) -> str:
        """The workflow_dispatch endpoint of the configured workflow."""
        return (
            f"{self.api_url}/repos/{self.repository}/actions/workflows/"
            f"{self.workflow_file}/dispatches"
        )


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"environment variable {name} is required and is not set")
    return value


def _optional(env: Mapping[str, str], name: str, default: str) -> str:
    return env.get(name, "").strip() or default


def _repository(value: str) -> str:
    owner, _, name = value.partition("/")
    if not _REPOSITORY.fullmatch(value) or name in {".", ".."}:
        raise ConfigError(f"GITHUB_REPOSITORY must be owner/name, got {value!r}")
    return f"{owner}/{name}"


def _workflow(value: str) -> str:
    if not _WORKFLOW.fullmatch(value):
        raise ConfigError(
            f"GITHUB_WORKFLOW_FILE must be a workflow file name such as deploy.yml, got {value!r}"
        )
    return value


def _api_url(value: str) -> str:
    """Only https, or http to a loopback host (a local test server): the token travels in it."""
    parts = urllib.parse.urlsplit(value)
    host = parts.hostname or ""
    secure = parts.scheme == "https" and bool(host)
    local = parts.scheme == "http" and _is_loopback(host)
    if not (secure or local):
        raise ConfigError(
            f"GITHUB_API_URL must be an https:// URL (http:// only to a loopback host), "
            f"got {value!r}"
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(f"GITHUB_API_URL must not hold a query, fragment or user, got {value!r}")
    return value.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _timeout(value: str) -> float:
    if not value:
        return DEFAULT_TIMEOUT_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"HTTP_TIMEOUT_SECONDS must be a positive number, got {value!r}")
    return seconds


@dataclass(frozen=True)
class Approval:
    """The approved model package version to deploy."""

    version: int
    package_arn: str
    time: datetime | None = None  # when the event happened: its dispatch is looked for since


def approval_from_event(event: Mapping[str, Any], group_name: str) -> Approval:
    """The approval the event announces, or ``IgnoredEvent`` saying why it announces none.

    Deploying is expensive and visible, so anything but an exact match is ignored.
    """
    if not isinstance(event, Mapping):
        raise IgnoredEvent(f"event is a {type(event).__name__}, not a JSON object")
    if event.get("source") != SOURCE:
        raise IgnoredEvent(f"source is {_short(event.get('source'))}, not {SOURCE!r}")
    if event.get("detail-type") != DETAIL_TYPE:
        raise IgnoredEvent(f"detail-type is {_short(event.get('detail-type'))}")
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        raise IgnoredEvent("the event has no detail object")
    if detail.get("ModelPackageGroupName") != group_name:
        raise IgnoredEvent(
            f"model package group is {_short(detail.get('ModelPackageGroupName'))}, "
            f"not {group_name!r}"
        )
    status = detail.get("ModelApprovalStatus")
    if status != APPROVED:
        raise IgnoredEvent(f"approval status is {_short(status)}, not {APPROVED!r}")
    version = detail.get("ModelPackageVersion")
    # bool is an int in Python; True is not version 1
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise IgnoredEvent(f"model package version {_short(version)} is not a positive integer")
    package_arn = detail.get("ModelPackageArn")
    if not isinstance(package_arn, str) or not package_arn.startswith("arn:"):
        raise IgnoredEvent(f"model package ARN {_short(package_arn)} is not an ARN")
    _cross_check(event, group_name, version, package_arn)
    return Approval(version=version, package_arn=package_arn, time=_event_time(event))


def _cross_check(event: Mapping[str, Any], group: str, version: int, package_arn: str) -> None:
    """``RefusedEvent`` unless the ARN is this event's package: its account and region the
    event's, its group and version the detail's (SageMaker writes the group lower-case in
    ARNs); and unless the event is delivered live, not replayed from an archive."""
    if "replay-name" in event:
        raise RefusedEvent(
            f"a replay ({_short(event['replay-name'])}) of an approval: an approval deploys "
            "once, when it happens; to deploy that version now, run the workflow by hand"
        )
    found = _PACKAGE_ARN.fullmatch(package_arn)
    if found is None:
        raise RefusedEvent(f"model package ARN {_short(package_arn)} is not a package version")
    expected = {
        "account": (found["account"], event.get("account")),
        "region": (found["region"], event.get("region")),
        "group": (found["group"].lower(), group.lower()),
        "version": (found["version"], str(version)),
    }
    for name, (in_arn, in_event) in expected.items():
        if in_arn != in_event:
            raise RefusedEvent(
                f"model package ARN {_short(package_arn)} names {name} {in_arn!r}, the event "
                f"{_short(in_event)}: not dispatched"
            )


def _event_time(event: Mapping[str, Any]) -> datetime:
    """The event's time (UTC): since when its dispatch would be listed."""
    when = event.get("time")
    try:
        moment = datetime.fromisoformat(when.replace("Z", "+00:00"))  # type: ignore[union-attr]
    except (AttributeError, ValueError):  # no string, or no time
        moment = None
    if moment is None or moment.tzinfo is None:
        raise RefusedEvent(f"the event's time {_short(when)} is not an ISO 8601 time")
    return moment.astimezone(UTC)


def _short(value: object) -> str:
    """A value from the event, quoted and bounded, for a log line."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


@contextmanager
def _botocore_bodies_unlogged() -> Iterator[None]:
    """Keep botocore from logging the secret: at DEBUG it logs every response body."""
    parsers = logging.getLogger("botocore.parsers")
    previous = parsers.level
    parsers.setLevel(max(previous, logging.INFO))
    try:
        yield
    finally:
        parsers.setLevel(previous)


def read_token(secret_id: str) -> str:
    """The GitHub token in the secret: its whole SecretString, or the ``token`` of a JSON one."""
    try:
        with _botocore_bodies_unlogged():
            response = boto3.client("secretsmanager").get_secret_value(SecretId=secret_id)
    except (BotoCoreError, ClientError) as err:
        message = f"could not read the GitHub token from secret {secret_id}: {err}"
        raise DispatchError(message) from err
    secret = (response.get("SecretString") or "").strip()
    token = secret
    if secret.startswith("{"):
        try:
            data = json.loads(secret)
        except ValueError:
            data = None  # never quote the parse error: it is about the secret's text
        field = data.get("token") if isinstance(data, dict) else None
        token = field.strip() if isinstance(field, str) else ""
    # A header value with a space or control character makes http.client raise an error that
    # quotes the value, and a token never has one.
    if not token or not all("!" <= char <= "~" for char in token):
        raise DispatchError(
            f"secret {secret_id} must hold a GitHub token, as the whole string or as "
            f'JSON {{"token": "..."}}'
        )
    return token


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Do not follow redirects: urllib would resend the Authorization header to the new host."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def already_dispatched(config: Config, token: str, approval: Approval) -> bool:
    """Whether a run of the workflow for this version was dispatched since the event (less
    ``CLOCK_SKEW``): this event's earlier delivery, or the same version asked by hand. An
    answer that is not GitHub's list of runs is a ``DispatchError`` (never a blind send)."""
    if approval.time is None:
        return False
    since = (approval.time - CLOCK_SKEW).strftime("%Y-%m-%dT%H:%M:%SZ")
    query = urllib.parse.urlencode(
        {"event": "workflow_dispatch", "created": f">={since}", "per_page": "100"}
    )
    url = config.dispatch_url.removesuffix("/dispatches") + f"/runs?{query}"
    target = f"listing runs of workflow {config.workflow_file} in {config.repository}"
    request = urllib.request.Request(url, method="GET")  # noqa: S310 - scheme checked in _api_url
    body = _call(config, token, request, target)
    try:
        runs = json.loads(body)["workflow_runs"]
        titles = {run.get("display_title") for run in runs}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise DispatchError(f"GitHub's answer {target} is not a list of runs") from None
    return RUN_TITLE.format(version=approval.version) in titles


def _call(config: Config, token: str, request: urllib.request.Request, target: str) -> bytes:
    """Send ``request`` with the token; GitHub's answer, or ``DispatchError`` (scrubbed)."""
    for name, value in {
        "Accept": "application/vnd.github+json",
        "Authorization": f"Bearer {token}",
        "X-GitHub-Api-Version": GITHUB_API_VERSION,
        "User-Agent": USER_AGENT,
    }.items():
        request.add_header(name, value)
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=config.timeout_seconds) as response:
            return bytes(response.read())
    except urllib.error.HTTPError as err:
        message = _github_message(err, token)
        detail = f": {message}" if message else ""
        raise DispatchError(
            _scrub(f"GitHub answered HTTP {err.code}{detail} ({target})", token),
            status=err.code,
        ) from None
    except (OSError, http.client.HTTPException) as err:
        reason = err.reason if isinstance(err, urllib.error.URLError) else err
        message = f"could not reach GitHub at {config.api_url} ({reason}) {target}"
        raise DispatchError(_scrub(message, token)) from None


def dispatch_workflow(config: Config, token: str, approval: Approval) -> None:
    """POST the workflow_dispatch; ``DispatchError`` unless GitHub answers 2xx."""
    body = {
        "ref": config.ref,
        "inputs": {
            "model_version": str(approval.version),
            "model_package_arn": approval.package_arn,
        },
    }
    request = urllib.request.Request(  # noqa: S310 - scheme checked in _api_url: https or loopback http
        config.dispatch_url,
        data=json.dumps(body).encode("utf-8"),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    target = f"dispatching workflow {config.workflow_file} in {config.repository}"
    _call(config, token, request, target)


def _github_message(err: urllib.error.HTTPError, token: str) -> str:
    """GitHub's ``message`` from the error's JSON body, scrubbed, then cut to one short line.

    Scrubbed before it is cut, so a cut cannot leave a piece of the token behind.
    """
    try:
        raw = err.read(BODY_LIMIT)
    except (OSError, http.client.HTTPException):
        raw = b""
    finally:
        err.close()
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    message = data.get("message") if isinstance(data, dict) else None
    if not isinstance(message, str):
        message = str(err.reason or "")
    message = " ".join(_scrub(message, token).split())
    return message if len(message) <= MESSAGE_LIMIT else message[: MESSAGE_LIMIT - 3] + "..."


def _scrub(text: str, token: str) -> str:
    return text.replace(token, "***") if token else text


def handler(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    """Lambda entry point: dispatch the deploy workflow for an approved model package version.

    Returns what it did; raises ``ConfigError`` or ``DispatchError`` to fail the invocation.
    """
    config = Config.from_environment()
    try:
        approval = approval_from_event(event, config.model_package_group_name)
    except IgnoredEvent as ignored:
        event_id = event.get("id") if isinstance(event, Mapping) else None
        refused = isinstance(ignored, RefusedEvent)
        logger.log(
            logging.WARNING if refused else logging.INFO,
            "%s event %s: %s",
            "Refused" if refused else "Ignored",
            _short(event_id),
            ignored,
        )
        return {"dispatched": False, "reason": str(ignored)}
    token = read_token(config.token_secret_id)
    if already_dispatched(config, token, approval):
        logger.info(
            "Not dispatched again: %s already has a run for %s version %d since event %s",
            config.workflow_file,
            config.model_package_group_name,
            approval.version,
            _short(event.get("id")),
        )
        return {
            "dispatched": False,
            "reason": "already dispatched",
            "model_version": approval.version,
        }
    dispatch_workflow(config, token, approval)
    logger.info(
        "Dispatched %s on %s in %s for %s version %d",
        config.workflow_file,
        config.ref,
        config.repository,
        config.model_package_group_name,
        approval.version,
    )
    return {
        "dispatched": True,
        "model_version": approval.version,
        "workflow": config.workflow_file,
        "ref": config.ref,
    }
