"""Local serving: the promoted model behind SageMaker's container contract, on loopback.

The server is the real CLI (``python -m local_mode.serve``, gunicorn, two workers) on
a free port; its answers are checked against the model itself, its refusals for status and
one-line reason, and that it goes on serving after each.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import io
import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import joblib
import numpy as np
import pytest
from werkzeug.test import Client

from common.stage_model import STAGE_MODEL_ENVIRONMENT
from examples.breast_cancer import data, model
from local_mode import serve
from local_mode.container import ContainerRefusal
from local_mode.invocations import InvocationsApp
from local_mode.serving import ModelServer, extract_artifact
from tests.registry import IMAGE


@pytest.fixture(scope="module")
def artifact(built_model: model.Built) -> Path:
    return built_model.archive


@pytest.fixture(scope="module")
def workdir(artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A work folder holding preprod's model copy, as ``make demo`` leaves it."""
    folder = tmp_path_factory.mktemp("demo")
    copy = serve.model_copy(folder, "preprod")
    extract_artifact(artifact, copy / "model")
    environment = {**model.container_environment(), **STAGE_MODEL_ENVIRONMENT}
    (copy / serve.ENVIRONMENT_FILE).write_text(json.dumps(environment))
    return folder


@pytest.fixture(scope="module")
def port(workdir: Path) -> Iterator[int]:
    with serve.running_endpoint("preprod", workdir, workers=2) as served_on:
        yield served_on


request = serve.request


CSV = {"Content-Type": "text/csv", "Accept": "text/csv"}
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def features(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """Feature rows (no id) as the Transform sends them: the demo's generated data."""
    generated = data.generate(
        tmp_path_factory.mktemp("rows") / "rows.csv", rows=200, malformed_fraction=0.0
    )
    lines = generated.path.read_bytes().splitlines()[1:]
    return [line.split(b",", 1)[1] for line in lines]


@pytest.fixture(scope="module")
def trained(workdir: Path):
    return joblib.load(serve.model_copy(workdir, "preprod") / "model" / "model.joblib")


@pytest.mark.parametrize("rows", [1, 100])
def test_answers_are_the_models_probabilities(port, features, trained, rows) -> None:
    body = b"\n".join(features[:rows])  # no final newline, as clients often send
    status, content_type, answer = request(port, "POST", "/invocations", body, CSV)
    assert (status, content_type) == (200, "text/csv")
    matrix = np.array([[float(v) for v in row.split(b",")] for row in features[:rows]])
    expected = trained.predict_proba(matrix)[:, 1]
    assert [float(v) for v in answer.split()] == list(expected)  # shortest round-trip repr


def test_without_accept_the_models_default_answer_type_is_used(port, features) -> None:
    status, content_type, answer = request(
        port, "POST", "/invocations", features[0], {"Content-Type": "text/csv"}
    )
    assert (status, content_type) == (200, "text/csv") and float(answer) >= 0


@pytest.mark.parametrize(
    ("headers", "body", "status", "reason"),
    [
        (
            {"Content-Type": "application/json", "Accept": "text/csv"},
            b"[1]",
            415,
            "unsupported content type 'application/json'; send text/csv",
        ),
        (
            {"Content-Type": "text/csv", "Accept": "application/json"},
            None,
            406,
            "unsupported accept type 'application/json'; ask for text/csv",
        ),
        # as the containers: no header means JSON; parameters reach the handler as sent
        (
            {"Accept": "text/csv"},
            None,
            415,
            "unsupported content type 'application/json'; send text/csv",
        ),
        (
            {"Content-Type": "text/csv; charset=utf-8", "Accept": "text/csv"},
            None,
            415,
            "unsupported content type 'text/csv; charset=utf-8'; send text/csv",
        ),
        (
            CSV,
            b"1,2\n1,2,3\n",
            400,
            "malformed CSV: CSV parse error: Expected 2 columns, got 3: 1,2,3",
        ),
        (CSV, b"1,2,3\n", 400, "3 feature columns, the model takes 30"),
        (
            CSV,
            b"1,x\n",
            400,
            "row 1, column 2: 'x' is not a number: send a finite number in every column",
        ),
        (CSV, b"", 400, "empty body: send one or more records"),
        # decoded with replacement characters, as werkzeug does: not numbers
        (
            CSV,
            b"\xff\xfe,1\n",
            400,
            "row 1, column 1: '\ufffd\ufffd' is not a number: send a finite number in every column",
        ),
        (
            CSV,
            b"1," * (3 * 2**20) + b"1\n",
            413,
            "the body is 6291458 bytes, over the 6291456-byte payload limit: send fewer records "
            "per request (or score them in batch)",
        ),
    ],
    ids=[
        "content type",
        "accept",
        "no content type",
        "parameters",
        "malformed",
        "columns",
        "not a number",
        "empty",
        "not utf-8",
        "too large",
    ],
)
def test_bad_requests_get_a_4xx_with_one_line_and_the_server_keeps_serving(
    port, features, headers, body, status, reason
) -> None:
    sent = features[0] if body is None else body
    answer = request(port, "POST", "/invocations", sent, headers)
    assert answer == (status, "text/plain; charset=utf-8", (reason + "\n").encode())
    assert request(port, "POST", "/invocations", features[0], CSV)[0] == 200


def test_a_chunked_body_over_the_limit_is_refused_without_a_length(port, features) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    chunks = iter([b"1," * 2**20] * 4)  # 8 MiB, sent without Content-Length
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # answered, then closed
        connection.request("POST", "/invocations", body=chunks, headers=CSV, encode_chunked=True)
    response = connection.getresponse()
    assert response.status == 413 and b"over the 6291456-byte payload limit" in response.read()
    connection.close()
    assert request(port, "POST", "/invocations", features[0], CSV)[0] == 200


ROW = b"1," * 29 + b"1\n"
INVOCATION_HEAD = (
    b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nAccept: text/csv\r\n"
)
# (first part sent at once, the rest sent later): what a slow client holds a connection with
SLOW_CLIENTS = {
    "nothing sent yet": (b"", INVOCATION_HEAD + b"Content-Length: 60\r\n\r\n" + ROW),
    "half the headers": (
        INVOCATION_HEAD[:30],
        INVOCATION_HEAD[30:] + b"Content-Length: 60\r\n\r\n" + ROW,
    ),
    "half the body": (INVOCATION_HEAD + b"Content-Length: 60\r\n\r\n" + ROW[:30], ROW[30:]),
    "chunked, half a chunk": (
        INVOCATION_HEAD + b"Transfer-Encoding: chunked\r\n\r\n3c\r\n" + ROW[:30],
        ROW[30:] + b"\r\n0\r\n\r\n",
    ),
}


@pytest.mark.parametrize("kind", SLOW_CLIENTS)
def test_slow_clients_hold_a_connection_not_the_server(port, kind) -> None:
    """More slow clients than workers: /ping and another client are answered meanwhile, and
    each slow client gets its own answer once its request is whole (read whole first, as the
    image's nginx and InvokeEndpoint do)."""
    first, rest = SLOW_CLIENTS[kind]
    slow = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(4)]
    try:
        for client in slow:
            client.sendall(first)
        time.sleep(0.3)  # they are connected and (partly) sent: a worker would be waiting now
        # answered while every slow client still holds its half request (they send the rest
        # only below): a server held by them answers neither (it waits on requests that do
        # not come), and one that freed itself by dropping them fails their 200s below. So
        # no wall-clock bound: on a loaded machine it measured the scheduler, not the server
        assert request(port, "GET", "/ping", timeout=30)[0] == 200
        assert request(port, "POST", "/invocations", ROW, CSV, timeout=30)[:2] == (200, "text/csv")
        for client in slow:
            client.sendall(rest)
            answer = client.recv(4096)
            assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer
    finally:
        for client in slow:
            client.close()


def test_a_body_that_stops_arriving_gets_408_with_one_line() -> None:
    """gunicorn's asyncio worker reports a body that stopped arriving for its ``timeout`` as a
    disconnect; the front answers 408 (nginx's ``client_body_timeout``), never a 5xx."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/invocations", "headers": []}
    front = serve.BufferingFront(InvocationsApp(ModelServer.__new__(ModelServer)))
    asyncio.run(front(scope, receive, send))
    line = b"the body stopped arriving for 60 s: send it whole\n"
    assert sent == [
        {
            "type": "http.response.start",
            "status": 408,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(line)).encode()),
            ],
        },
        {"type": "http.response.body", "body": line},
    ]


def test_ping_and_unknown_paths(port) -> None:
    assert request(port, "GET", "/ping")[0] == 200
    assert request(port, "GET", "/invocations")[:2] == (405, "text/plain; charset=utf-8")
    assert (
        request(port, "GET", "/predict")[2]
        == b"no /predict: the container serves /ping and /invocations\n"
    )


FAILING_HANDLERS = """
def model_fn(model_dir):
    return None

def input_fn(data, content_type):
    print("decoding")  # goes to the server's log
    raise RuntimeError("the feature store is down\\nsecond line")
"""


def test_an_unexpected_handler_failure_is_a_500_with_one_line(tmp_path) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "inference.py").write_text(FAILING_HANDLERS)
    log = io.StringIO()
    app = InvocationsApp(ModelServer(tmp_path, {"SAGEMAKER_PROGRAM": "inference.py"}), log=log)
    response = Client(app).post("/invocations", data=b"1\n", headers={"Content-Type": "text/csv"})
    assert (response.status_code, response.data) == (
        500,
        b"RuntimeError: the feature store is down\n",
    )
    assert log.getvalue().splitlines() == [
        "decoding",
        "POST /invocations: 500 RuntimeError: the feature store is down",
    ]


def test_copy_stage_model_takes_the_stage_models_artifact_and_environment(
    aws, artifact, tmp_path
) -> None:
    session = aws.account("preprod")
    s3 = session.client("s3")
    s3.create_bucket(
        Bucket="artifacts", CreateBucketConfiguration={"LocationConstraint": session.region_name}
    )
    s3.upload_file(str(artifact), "artifacts", "models/v1/model.tar.gz")
    session.client("sagemaker").create_model(
        ModelName="breast-cancer-preprod-v1",
        ExecutionRoleArn="arn:aws:iam::222222222222:role/exec",
        PrimaryContainer={
            "Image": IMAGE,
            "ModelDataUrl": "s3://artifacts/models/v1/model.tar.gz",
            "Environment": {**model.container_environment(), **STAGE_MODEL_ENVIRONMENT},
        },
    )
    copy = serve.copy_stage_model(session, "breast-cancer-preprod-v1", tmp_path / "preprod-model")
    expected = {**model.container_environment(), **STAGE_MODEL_ENVIRONMENT}
    assert json.loads((copy / serve.ENVIRONMENT_FILE).read_text()) == expected
    served = serve.load_model_copy(copy)
    try:
        body, content_type = served.respond(b"1," * 29 + b"1\n", "text/csv", "text/csv")
    finally:
        served.stop()
    assert content_type == "text/csv" and 0 <= float(body) <= 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preprod-model"]  # no staging left
    # a model that cannot be read leaves the earlier copy as it was
    with pytest.raises(Exception, match="cannot be described"):
        serve.copy_stage_model(session, "no-such-model", copy)
    assert json.loads((copy / serve.ENVIRONMENT_FILE).read_text()) == expected


def run_cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "local_mode.serve", *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_errors_are_one_line_and_exit_2(tmp_path, workdir) -> None:
    missing = run_cli("--stage", "prod", "--workdir", str(tmp_path))
    assert missing.returncode == 2
    assert missing.stderr == (
        f"error: no prod model in {tmp_path}/prod-model: run `make demo` first (it promotes the "
        "model and leaves each stage's copy there), or add --from-aws\n"
    )
    no_tfvars = run_cli("--stage", "prod", "--workdir", str(tmp_path), "--from-aws")
    assert no_tfvars.returncode == 2 and no_tfvars.stderr.startswith(
        f"error: no {tmp_path}/prod.tfvars.json"
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = run_cli(
            "--stage", "preprod", "--workdir", str(workdir), "--port", str(taken.getsockname()[1])
        )
    assert busy.returncode == 2
    assert busy.stderr.splitlines()[-1].startswith("error: cannot listen on 127.0.0.1:")
    assert busy.stderr.splitlines()[-1].endswith("choose another --port")
    workers = run_cli("--stage", "preprod", "--workdir", str(workdir), "--workers", "0")
    assert workers.returncode == 2 and workers.stderr.startswith("error: --workers")


def test_the_sample_handlers_refusals_fail_a_transform_with_the_reason(workdir) -> None:
    """The same refusals in Batch Transform: the job fails with the reason, not a status."""
    served = serve.load_model_copy(serve.model_copy(workdir, "preprod"))
    try:
        with pytest.raises(ContainerRefusal) as refused:
            served.invoke(b"1,2,3\n", "text/csv", "text/csv")
    finally:
        served.stop()
    assert str(refused.value) == "HTTP 400: 3 feature columns, the model takes 30"


DEFAULT_HANDLERS = """
import os, joblib

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))
"""


def test_the_toolkit_defaults_refuse_a_content_type_with_415_and_an_accept_with_406(
    workdir: Path, tmp_path: Path
) -> None:
    """The defaults' own UnsupportedFormatError: from decoding 415, from encoding 406."""
    model_dir = tmp_path / "model"
    shutil.copytree(serve.model_copy(workdir, "preprod") / "model", model_dir)
    (model_dir / "code" / "inference.py").write_text(DEFAULT_HANDLERS)
    defaults = ModelServer(model_dir, {"SAGEMAKER_PROGRAM": "inference.py"})
    client = Client(InvocationsApp(defaults, log=io.StringIO()))
    rows = b"\n".join([b"1," * 29 + b"1"] * 2) + b"\n"
    unread = client.post("/invocations", data=rows, headers={"Content-Type": "text/x-unknown"})
    assert unread.status_code == 415 and unread.data.startswith(b"Content-Type text/x-unknown")
    unwritten = client.post(
        "/invocations", data=rows, headers={"Content-Type": "text/csv", "Accept": "text/x-unknown"}
    )
    assert (unwritten.status_code, unwritten.data) == (
        406, b"Accept text/x-unknown is not supported by this model\n",
    )  # fmt: skip
    assert (
        client.post("/invocations", data=rows, headers={"Content-Type": "text/csv"}).status_code
        == 200
    )
