"""The dispatch-on-approval Lambda against real servers: moto's Secrets Manager and a local
HTTP server standing in for the GitHub API, plus the deterministic zip it is deployed from."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import subprocess
import sys
import threading
import urllib.parse
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import boto3
import pytest

from lambdas import package
from lambdas.dispatch_deploy.handler import (
    Config,
    ConfigError,
    DispatchError,
    handler,
)
from local_mode.emulator import Emulator
from tests.loopback import serving

REPO = Path(__file__).resolve().parents[1]
TOKEN = "github_pat_11ABCDEFG0123456789_TestTokenValueThatMustNeverBeLogged"
SECRET_ID = "batch-mlops/github-dispatch-token"
REPOSITORY = "acme/churn-mlops"
GROUP = "churn-models"
ARN = "arn:aws:sagemaker:eu-west-1:111111111111:model-package/churn-models/3"
DISPATCH_PATH = f"/repos/{REPOSITORY}/actions/workflows/deploy.yml/dispatches"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")
LOGGER = "lambdas.dispatch_deploy.handler"


def approved_event(**detail: Any) -> dict[str, Any]:
    """An EventBridge event as SageMaker sends it when version 3 of the group is approved."""
    return {
        "version": "0",
        "id": "5b4a3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d",
        "detail-type": "SageMaker Model Package State Change",
        "source": "aws.sagemaker",
        "account": "111111111111",
        "time": "2026-11-27T10:00:00Z",
        "region": "eu-west-1",
        "resources": [ARN],
        "detail": {
            "ModelPackageGroupName": GROUP,
            "ModelPackageVersion": 3,
            "ModelPackageArn": ARN,
            "ModelApprovalStatus": "Approved",
            "ModelPackageStatus": "Completed",
            **detail,
        },
    }


# --- a local stand-in for the GitHub API -------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    headers: Message
    body: Any


@dataclass
class GitHub:
    """What the server received, and what it answers next: ``respond`` sets the answer to a
    dispatch (POST); a GET of a workflow's runs lists ``runs``, to which each accepted
    dispatch adds one, titled as deploy.yml's run-name renders it for a pinned version."""

    url: str = ""
    requests: list[Request] = field(default_factory=list)
    status: int = 204
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    release: threading.Event = field(default_factory=threading.Event)
    runs: list[dict[str, Any]] = field(default_factory=list)

    def respond(self, status: int, body: Any = b"", **headers: str) -> None:
        self.status = status
        self.body = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.headers = headers

    @property
    def dispatches(self) -> list[Request]:
        return [r for r in self.requests if r.method == "POST"]


def _request_handler(github: GitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            github.requests.append(
                Request(self.command, self.path, self.headers, json.loads(raw) if raw else None)
            )
            if github.delay:
                github.release.wait(github.delay)
            status, headers, body = github.status, github.headers, github.body
            if self.command == "GET" and urllib.parse.urlsplit(self.path).path.endswith("/runs"):
                listed = {"total_count": len(github.runs), "workflow_runs": github.runs}
                status, headers, body = 200, {}, json.dumps(listed).encode()
            elif status < 300:
                version = json.loads(raw)["inputs"]["model_version"]
                github.runs.append(
                    {"display_title": f"deploy model version {version} (workflow_dispatch)"}
                )
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if body:
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (the timeout test): nobody to answer

        do_POST = do_GET = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep the server's access log out of the captured output

    return Handler


@pytest.fixture
def github() -> Iterator[GitHub]:
    state = GitHub()
    with serving(_request_handler(state)) as state.url:
        try:
            yield state
        finally:
            state.release.set()  # a request still held answers before the server stops


# --- the Lambda's environment -------------------------------------------------------------


@pytest.fixture
def lambda_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The required variables, pointing at the real GitHub API (ignored events never call it)."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name in ("GITHUB_WORKFLOW_FILE", "GITHUB_REF", "GITHUB_API_URL", "HTTP_TIMEOUT_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GITHUB_REPOSITORY", REPOSITORY)
    monkeypatch.setenv("GITHUB_TOKEN_SECRET_ID", SECRET_ID)
    monkeypatch.setenv("MODEL_PACKAGE_GROUP_NAME", GROUP)
    return monkeypatch


@pytest.fixture
def configured(lambda_env: pytest.MonkeyPatch, aws: Emulator, github: GitHub) -> GitHub:
    """Secrets Manager on the emulator, GitHub on the local server."""
    lambda_env.setenv("GITHUB_API_URL", github.url)
    lambda_env.setenv("HTTP_TIMEOUT_SECONDS", "2")
    return github


def store_secret(value: str) -> None:
    boto3.client("secretsmanager").create_secret(Name=SECRET_ID, SecretString=value)


def record_everything(caplog: pytest.LogCaptureFixture) -> None:
    """Capture every log record, botocore's DEBUG ones (which hold response bodies) included."""
    caplog.clear()
    caplog.set_level(logging.DEBUG)


def assert_token_hidden(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture) -> None:
    debug_from_botocore = [
        r for r in caplog.records if r.name.startswith("botocore") and r.levelno == logging.DEBUG
    ]
    assert debug_from_botocore, "botocore's DEBUG logging was not captured: the check is void"
    assert TOKEN not in caplog.text
    assert all(TOKEN not in record.getMessage() for record in caplog.records)
    captured = capsys.readouterr()
    assert TOKEN not in captured.out and TOKEN not in captured.err


def handler_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


# --- dispatching --------------------------------------------------------------------------


def test_approved_event_dispatches_the_deploy_workflow_once(
    configured: GitHub, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture
) -> None:
    store_secret(TOKEN)
    record_everything(caplog)

    result = handler(approved_event(), None)

    assert result == {
        "dispatched": True,
        "model_version": 3,
        "workflow": "deploy.yml",
        "ref": "main",
    }
    [request] = configured.dispatches
    assert request.method == "POST"
    assert request.path == DISPATCH_PATH
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Accept"] == "application/vnd.github+json"
    assert request.headers["X-GitHub-Api-Version"] == "2022-11-28"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == "sagemaker-batch-mlops-dispatch"
    assert request.body == {
        "ref": "main",
        "inputs": {"model_version": "3", "model_package_arn": ARN},
    }
    assert handler_lines(caplog) == [
        f"Dispatched deploy.yml on main in {REPOSITORY} for {GROUP} version 3"
    ]
    assert_token_hidden(caplog, capsys)


def test_workflow_ref_and_api_path_come_from_the_environment(
    configured: GitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_secret(TOKEN)
    monkeypatch.setenv("GITHUB_API_URL", configured.url + "/api/v3/")  # GitHub Enterprise style
    monkeypatch.setenv("GITHUB_WORKFLOW_FILE", "promote.yaml")
    monkeypatch.setenv("GITHUB_REF", "release/2026-11")
    event = approved_event(
        ModelPackageVersion=12, ModelPackageArn=ARN.replace("/3", "/12"), ModelPackageStatus=None
    )

    result = handler(event, None)

    assert result == {
        "dispatched": True,
        "model_version": 12,
        "workflow": "promote.yaml",
        "ref": "release/2026-11",
    }
    [request] = configured.dispatches
    assert request.path == f"/api/v3/repos/{REPOSITORY}/actions/workflows/promote.yaml/dispatches"
    assert request.body["ref"] == "release/2026-11"
    assert request.body["inputs"]["model_version"] == "12"


@pytest.mark.parametrize(
    "secret",
    [
        TOKEN + "\n",
        json.dumps({"token": TOKEN}),
        json.dumps({"token": TOKEN, "owner": "platform-team", "expires": "2027-01-01"}),
    ],
    ids=["raw-with-newline", "json", "json-with-more-keys"],
)
def test_token_as_the_whole_secret_or_in_a_json_object(configured: GitHub, secret: str) -> None:
    store_secret(secret)

    assert handler(approved_event(), None)["dispatched"] is True

    [request] = configured.dispatches
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"


# --- events that must not deploy ----------------------------------------------------------


def _without_detail() -> dict[str, Any]:
    event = approved_event()
    del event["detail"]
    return event


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (approved_event(ModelApprovalStatus="Rejected"), "approval status is 'Rejected'"),
        (
            approved_event(ModelApprovalStatus="PendingManualApproval"),
            "approval status is 'PendingManualApproval'",
        ),
        (approved_event(ModelPackageGroupName="fraud-models"), "group is 'fraud-models'"),
        ({**approved_event(), "source": "aws.s3"}, "source is 'aws.s3'"),
        (
            {**approved_event(), "detail-type": "SageMaker Model Package Group State Change"},
            "detail-type is 'SageMaker Model Package Group State Change'",
        ),
        (_without_detail(), "no detail object"),
        (approved_event(ModelPackageVersion=0), "version 0 is not a positive integer"),
        (approved_event(ModelPackageVersion="3"), "version '3' is not a positive integer"),
        (approved_event(ModelPackageVersion=True), "version True is not a positive integer"),
        (approved_event(ModelPackageArn=None), "ARN None is not an ARN"),
    ],
    ids=[
        "rejected",
        "pending",
        "other-group",
        "other-source",
        "other-detail-type",
        "no-detail",
        "version-0",
        "version-string",
        "version-bool",
        "no-arn",
    ],
)
def test_other_events_are_ignored_without_reading_the_secret_or_calling_github(
    lambda_env: pytest.MonkeyPatch,
    no_network: list,
    caplog: pytest.LogCaptureFixture,
    event: dict[str, Any],
    reason: str,
) -> None:
    caplog.set_level(logging.DEBUG)

    result = handler(event, None)

    assert result["dispatched"] is False
    assert reason in result["reason"]
    assert no_network == []  # neither Secrets Manager nor GitHub was contacted
    [line] = handler_lines(caplog)
    assert line == f"Ignored event '{event['id']}': {result['reason']}"
    assert [r.levelno for r in caplog.records if r.name == LOGGER] == [logging.INFO]


def _replayed() -> dict[str, Any]:
    return {**approved_event(), "replay-name": "approvals-archive-replay-1"}


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (_replayed(), "a replay ('approvals-archive-replay-1') of an approval"),
        ({**approved_event(), "account": "222222222222"}, "names account '111111111111'"),
        ({**approved_event(), "region": "us-east-1"}, "names region 'eu-west-1', the event "),
        (
            approved_event(ModelPackageArn=ARN.replace("/churn-models/", "/fraud-models/")),
            "names group 'fraud-models', the event 'churn-models'",
        ),
        (approved_event(ModelPackageArn=ARN.replace("/3", "/4")), "names version '4'"),
        (
            approved_event(ModelPackageArn=ARN.replace("model-package/", "model-package-group/")),
            "is not a package version",
        ),
        ({**approved_event(), "time": "yesterday"}, "time 'yesterday' is not an ISO 8601"),
    ],
    ids=["replay", "account", "region", "group", "version", "group-arn", "time"],
)
def test_an_approval_that_does_not_add_up_is_refused_with_one_warning(
    lambda_env: pytest.MonkeyPatch,
    no_network: list,
    caplog: pytest.LogCaptureFixture,
    event: dict[str, Any],
    reason: str,
) -> None:
    """The ARN is what gets deployed: one naming another account, region, group or version
    than its event, or an archived event replayed, deploys nothing."""
    caplog.set_level(logging.DEBUG)

    result = handler(event, None)

    assert result["dispatched"] is False and reason in result["reason"]
    assert no_network == []  # neither Secrets Manager nor GitHub was contacted
    [record] = [r for r in caplog.records if r.name == LOGGER]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == f"Refused event '{event['id']}': {result['reason']}"


@pytest.mark.parametrize(
    ("earlier", "deliveries", "dispatched"),
    [
        ([], 2, 1),  # EventBridge delivered the approval twice
        ([], 3, 1),
        (["deploy model version 3 (workflow_dispatch)"], 1, 0),  # already asked by hand
        (["deploy model version 2 (workflow_dispatch)"], 2, 1),  # another version's run
    ],
    ids=["twice", "three-times", "by-hand-already", "other-version"],
)
def test_an_approval_delivered_again_is_not_dispatched_again(
    configured: GitHub, earlier: list[str], deliveries: int, dispatched: int
) -> None:
    """Before dispatching, the workflow's runs since the event are listed: a run for this
    version means it was dispatched already (GitHub lists a run as its run-name renders)."""
    store_secret(TOKEN)
    configured.runs.extend({"display_title": title} for title in earlier)

    results = [handler(approved_event(), None) for _ in range(deliveries)]

    assert len(configured.dispatches) == dispatched
    assert [r["dispatched"] for r in results] == [True] * dispatched + [False] * (
        deliveries - dispatched
    )
    assert all(r["reason"] == "already dispatched" for r in results if not r["dispatched"])
    listing = [r for r in configured.requests if r.method == "GET"]
    assert len(listing) == deliveries
    path, _, query = listing[0].path.partition("?")
    assert path == DISPATCH_PATH.replace("/dispatches", "/runs")
    assert urllib.parse.parse_qs(query) == {
        "event": ["workflow_dispatch"],
        "created": [">=2026-11-27T09:55:00Z"],  # the event's time, less clock skew
        "per_page": ["100"],
    }
    assert listing[0].headers["Authorization"] == f"Bearer {TOKEN}"


def test_the_run_title_looked_for_is_the_deploy_workflows_run_name() -> None:
    """deploy.yml's run-name renders a pinned workflow_dispatch as the handler's RUN_TITLE."""
    import lambdas.dispatch_deploy.handler as dispatch

    workflow = (REPO / ".github" / "workflows" / "deploy.yml").read_text()
    run_name = workflow.split("run-name:", 1)[1].split("\non:", 1)[0]
    assert run_name.split()[:2] == [">-", "deploy"]
    assert "format('model version {0}', inputs.model_version" in run_name
    assert run_name.strip().endswith("(${{ github.event_name }})")
    assert dispatch.RUN_TITLE == "deploy model version {version} (workflow_dispatch)"


# --- failures fail the invocation ---------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, {"message": "Bad credentials", "status": "401"}, "HTTP 401: Bad credentials"),
        (404, {"message": "Not Found"}, "HTTP 404: Not Found"),
        (
            422,
            {"message": 'Unexpected inputs provided: ["model_package_arn"]'},
            'HTTP 422: Unexpected inputs provided: ["model_package_arn"]',
        ),
        (500, b"<html>oops</html>", "HTTP 500: Internal Server Error"),
    ],
    ids=["401", "404", "422", "500-not-json"],
)
def test_github_error_raises_one_line_dispatch_error_without_the_token(
    configured: GitHub,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture,
    status: int,
    body: Any,
    expected: str,
) -> None:
    store_secret(TOKEN)
    configured.respond(status, body)
    record_everything(caplog)

    with pytest.raises(DispatchError) as raised:
        handler(approved_event(), None)

    message = str(raised.value)
    assert raised.value.status == status
    assert expected in message
    assert f"workflow deploy.yml in {REPOSITORY}" in message
    assert "\n" not in message
    assert TOKEN not in message
    assert len(configured.dispatches) == 1  # the retry is Lambda's, not a loop in the handler
    assert handler_lines(caplog) == []  # no "Dispatched" line for a failure
    assert_token_hidden(caplog, capsys)


@pytest.mark.parametrize(
    "github_message",
    [
        f"Bad credentials: Bearer {TOKEN}",
        "x" * 190 + TOKEN,  # a cut at 200 characters must not leave the token's start behind
        f"{TOKEN}\n{TOKEN}",
    ],
    ids=["echoed", "echoed-at-the-cut", "echoed-twice-multiline"],
)
def test_token_echoed_by_github_is_scrubbed_from_the_error(
    configured: GitHub,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture,
    github_message: str,
) -> None:
    store_secret(TOKEN)
    configured.respond(401, {"message": github_message})
    record_everything(caplog)

    with pytest.raises(DispatchError) as raised:
        handler(approved_event(), None)

    message = str(raised.value)
    assert message.startswith("GitHub answered HTTP 401: ")
    assert "***" in message
    assert not any(TOKEN[i : i + 8] in message for i in range(len(TOKEN) - 7))
    assert len(message) < 300
    assert_token_hidden(caplog, capsys)


def test_redirect_is_not_followed_with_the_token(configured: GitHub) -> None:
    store_secret(TOKEN)
    configured.respond(302, Location=f"{configured.url}/elsewhere")

    with pytest.raises(DispatchError, match="HTTP 302") as raised:
        handler(approved_event(), None)

    assert raised.value.status == 302
    assert [r.path for r in configured.dispatches] == [DISPATCH_PATH]


def test_unreachable_api_raises_dispatch_error(
    configured: GitHub,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture,
    refused_port: int,
) -> None:
    store_secret(TOKEN)
    url = f"http://127.0.0.1:{refused_port}"
    monkeypatch.setenv("GITHUB_API_URL", url)
    record_everything(caplog)

    with pytest.raises(
        DispatchError, match=re.escape(f"could not reach GitHub at {url} (")
    ) as raised:
        handler(approved_event(), None)

    assert raised.value.status is None
    assert f"workflow deploy.yml in {REPOSITORY}" in str(raised.value)
    assert_token_hidden(caplog, capsys)


def test_slow_api_times_out_as_dispatch_error(
    configured: GitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_secret(TOKEN)
    monkeypatch.setenv("HTTP_TIMEOUT_SECONDS", "0.2")
    configured.delay = 5  # released at teardown

    with pytest.raises(DispatchError, match="timed out"):
        handler(approved_event(), None)

    assert len(configured.requests) == 1


@pytest.mark.parametrize(
    "secret",
    [json.dumps({"github_token": TOKEN}), json.dumps({"token": ""}), "{" + TOKEN, "two words"],
    ids=["json-without-token", "json-empty-token", "broken-json", "whitespace"],
)
def test_secret_without_a_usable_token_fails_before_calling_github(
    configured: GitHub, secret: str
) -> None:
    store_secret(secret)

    with pytest.raises(DispatchError, match=f"secret {SECRET_ID} must hold a GitHub token") as e:
        handler(approved_event(), None)

    assert TOKEN not in str(e.value) and "two" not in str(e.value)
    assert configured.requests == []


def test_missing_secret_fails_naming_it(configured: GitHub) -> None:
    with pytest.raises(DispatchError, match=f"from secret {SECRET_ID}: .*ResourceNotFound"):
        handler(approved_event(), None)

    assert configured.requests == []


# --- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["GITHUB_REPOSITORY", "GITHUB_TOKEN_SECRET_ID", "MODEL_PACKAGE_GROUP_NAME"]
)
@pytest.mark.parametrize("unset", [True, False], ids=["unset", "blank"])
def test_missing_required_variable_is_named(
    lambda_env: pytest.MonkeyPatch, no_network: list, name: str, unset: bool
) -> None:
    if unset:
        lambda_env.delenv(name)
    else:
        lambda_env.setenv(name, "  ")

    with pytest.raises(ConfigError, match=f"^environment variable {name} is required"):
        handler(approved_event(), None)

    assert no_network == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GITHUB_REPOSITORY", "churn-mlops"),
        ("GITHUB_REPOSITORY", "acme/churn-mlops/extra"),
        ("GITHUB_REPOSITORY", "acme/.."),
        ("GITHUB_REPOSITORY", "https://github.com/acme/churn-mlops"),
        ("GITHUB_WORKFLOW_FILE", "../../pulls"),
        ("GITHUB_WORKFLOW_FILE", "deploy.yml?x=1"),
        ("GITHUB_API_URL", "http://api.github.com"),
        ("GITHUB_API_URL", "ftp://127.0.0.1"),
        ("GITHUB_API_URL", "api.github.com"),
        ("GITHUB_API_URL", "https://api.github.com/?token=1"),
        ("GITHUB_API_URL", "https://user:pass@api.github.com"),
        ("HTTP_TIMEOUT_SECONDS", "0"),
        ("HTTP_TIMEOUT_SECONDS", "soon"),
        ("HTTP_TIMEOUT_SECONDS", "nan"),
    ],
)
def test_invalid_variable_is_named_with_its_value(
    lambda_env: pytest.MonkeyPatch, no_network: list, name: str, value: str
) -> None:
    lambda_env.setenv(name, value)

    with pytest.raises(ConfigError, match=f"^{name} must ") as raised:
        handler(approved_event(), None)

    assert repr(value) in str(raised.value)
    assert no_network == []


def test_config_defaults_and_accepted_forms() -> None:
    required = {
        "GITHUB_REPOSITORY": REPOSITORY,
        "GITHUB_TOKEN_SECRET_ID": SECRET_ID,
        "MODEL_PACKAGE_GROUP_NAME": GROUP,
    }
    assert Config.from_environment(required) == Config(
        repository=REPOSITORY,
        token_secret_id=SECRET_ID,
        model_package_group_name=GROUP,
        workflow_file="deploy.yml",
        ref="main",
        api_url="https://api.github.com",
        timeout_seconds=10.0,
    )
    blank_optionals = {
        name: ""
        for name in ("GITHUB_WORKFLOW_FILE", "GITHUB_REF", "GITHUB_API_URL", "HTTP_TIMEOUT_SECONDS")
    }
    assert Config.from_environment({**required, **blank_optionals}) == Config.from_environment(
        required
    )
    for url in ("http://localhost:8080", "http://[::1]:9000/", "https://ghe.example.com/api/v3/"):
        assert Config.from_environment({**required, "GITHUB_API_URL": url}).api_url == url.rstrip(
            "/"
        )
    assert Config.from_environment({**required, "GITHUB_WORKFLOW_FILE": "161335"}).dispatch_url == (
        f"https://api.github.com/repos/{REPOSITORY}/actions/workflows/161335/dispatches"
    )


# --- the deployment zip ---------------------------------------------------------------------


def test_zip_is_byte_identical_whatever_the_source_file_mtime_and_mode(tmp_path: Path) -> None:
    copy = tmp_path / "src" / "handler.py"
    copy.parent.mkdir()
    copy.write_bytes(package.HANDLER.read_bytes())
    copy.chmod(0o755)
    os.utime(copy, (2_000_000_000, 2_000_000_000))

    first = package.build_zip(tmp_path / "a" / "dispatch.zip")
    second = package.build_zip(tmp_path / "b" / "dispatch.zip", source=copy)

    assert first == second
    assert (tmp_path / "a" / "dispatch.zip").read_bytes() == (
        tmp_path / "b" / "dispatch.zip"
    ).read_bytes()
    with zipfile.ZipFile(tmp_path / "a" / "dispatch.zip") as archive:
        [entry] = archive.infolist()
        assert entry.filename == "handler.py"
        assert entry.date_time == (1980, 1, 1, 0, 0, 0)
        assert entry.external_attr >> 16 == 0o100644
        assert entry.compress_type == zipfile.ZIP_DEFLATED
        assert archive.read("handler.py") == package.HANDLER.read_bytes()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["dispatch.zip"]


def test_cli_writes_the_zip_and_prints_its_sha256(tmp_path: Path) -> None:
    output = tmp_path / "nested" / "dir" / "dispatch.zip"
    result = subprocess.run(
        [sys.executable, "-m", "lambdas.package", str(output)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    digest = hashlib.sha256(output.read_bytes()).hexdigest()
    assert result.stdout.startswith(f"{output} sha256={digest} base64sha256=")


def test_zipped_handler_runs_on_its_own(
    tmp_path: Path, lambda_env: pytest.MonkeyPatch, no_network: list
) -> None:
    """What Lambda loads is the zip alone: the handler must not import anything of the repo."""
    archive = tmp_path / "dispatch.zip"
    package.build_zip(archive)
    with zipfile.ZipFile(archive) as opened:
        opened.extractall(tmp_path / "lambda")
    spec = importlib.util.spec_from_file_location(
        "zipped_dispatch_handler", tmp_path / "lambda" / "handler.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    lambda_env.setitem(sys.modules, spec.name, module)  # as Lambda's import would register it
    spec.loader.exec_module(module)

    result = module.handler(approved_event(ModelApprovalStatus="Rejected"), None)

    assert result == {
        "dispatched": False,
        "reason": "approval status is 'Rejected', not 'Approved'",
    }
    assert no_network == []
    source = (tmp_path / "lambda" / "handler.py").read_text()
    assert "from lambdas" not in source and "import pipelines" not in source
