"""The sample model in the scikit-learn image's real serving stack, at the image's versions.

The container side is the image's runtime twin (``.venv-sklearn-1.9-0``: sagemaker-containers,
gunicorn with gevent workers, Flask, scikit-learn 1.9.0 ...) started as the container starts,
with no package index reachable (``local_mode.container``). Each request kind an
endpoint client or a Batch Transform sends gets the same status, content type, body and
printed lines from the in-process imitation (``serving.ModelServer``), which local mode may
use as its faster option; the front (``invocations.InvocationsApp``, InvokeEndpoint's checks)
is the same for both.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import joblib
import numpy as np
import pytest
from werkzeug.test import Client

from common.stage_model import STAGE_MODEL_ENVIRONMENT
from examples.breast_cancer import data, inference, model
from local_mode import twin
from local_mode.container import Container, ContainerFailed
from local_mode.invocations import InvocationsApp
from local_mode.serving import ModelServer, extract_artifact

PIPELINE = "contract-pipeline"
CSV = {"Content-Type": "text/csv", "Accept": "text/csv"}


@pytest.fixture(scope="module")
def built(built_model: model.Built) -> model.Built:
    return built_model


@pytest.fixture(scope="module")
def model_dir(built: model.Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return extract_artifact(built.archive, tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def environment() -> dict[str, str]:
    """The model's container environment as the stage creates it, in a Transform job."""
    return {
        **model.container_environment(),
        **STAGE_MODEL_ENVIRONMENT,
        "BATCH_METRICS_PIPELINE": PIPELINE,
    }


@pytest.fixture(scope="module")
def container(model_dir: Path, environment: dict[str, str]) -> Iterator[Container]:
    with Container(model_dir, environment, workers=2) as running:
        yield running


@pytest.fixture(scope="module")
def in_process(model_dir: Path, environment: dict[str, str]) -> ModelServer:
    return ModelServer(model_dir, environment)


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """Feature rows (no id) as the Transform sends them: the demo's generated data."""
    generated = data.generate(
        tmp_path_factory.mktemp("rows") / "rows.csv", rows=10_000, malformed_fraction=0.0
    )
    return [line.split(b",", 1)[1] for line in generated.path.read_bytes().splitlines()[1:]]


def answer(backend, body: bytes, headers: dict[str, str], path: str = "/invocations"):
    """(status, content type, body, printed lines) through the same front."""
    log = io.StringIO()
    app = InvocationsApp(backend, max_body_bytes=64 * 2**20, log=log)
    client = Client(app)
    response = (
        client.post(path, data=body, headers=headers) if body is not None else client.get(path)
    )
    printed = [
        line for line in log.getvalue().splitlines() if not line.startswith(("POST ", "GET "))
    ]
    return response.status_code, response.headers.get("Content-Type"), response.data, printed


def batch(rows: list[bytes], count: int, ending: bytes = b"\n", final: bool = True) -> bytes:
    body = ending.join(rows[:count])
    return body + ending if final else body


def largest_request(rows: list[bytes], limit: int = 6 * 2**20) -> bytes:
    """As many rows as fit in MaxPayloadInMB 6: the largest request a Transform sends."""
    sizes = np.cumsum([len(row) + 1 for row in rows])
    count = int(np.searchsorted(sizes, limit, side="right"))
    assert count < len(rows) and limit - 1000 < sizes[count - 1] <= limit
    return batch(rows, count)


REQUESTS = {
    # Transform mini-batches, as MultiRecord sends them
    "1 row": (lambda rows: batch(rows, 1), CSV),
    "100 rows": (lambda rows: batch(rows, 100), CSV),
    "10 000 rows": (lambda rows: batch(rows, 10_000), CSV),
    "100 rows, no final newline": (lambda rows: batch(rows, 100, final=False), CSV),
    "100 rows, CRLF": (lambda rows: batch(rows, 100, b"\r\n"), CSV),
    "6 MB": (lambda rows: largest_request(rows * 2), CSV),
    # an endpoint client's requests
    "one row, no final newline": (lambda rows: rows[0], CSV),
    "no Accept": (lambda rows: rows[0], {"Content-Type": "text/csv"}),
    "Accept */*": (lambda rows: rows[0], {"Content-Type": "text/csv", "Accept": "*/*"}),
    "JSON": (lambda rows: b'{"instances": [[1, 2]]}', {"Content-Type": "application/json"}),
    "no Content-Type": (lambda rows: rows[0], {"Accept": "text/csv"}),
    "Content-Type with charset": (
        lambda rows: rows[0],
        {"Content-Type": "text/csv; charset=utf-8", "Accept": "text/csv"},
    ),
    "Accept JSON": (
        lambda rows: rows[0],
        {"Content-Type": "text/csv", "Accept": "application/json"},
    ),
    "wrong column count": (lambda rows: b"1,2,3\n", CSV),
    "ragged rows": (lambda rows: b"1,2\n1,2,3\n", CSV),
    "not a number": (lambda rows: rows[0].replace(b",", b",x,", 1), CSV),
    "nan": (lambda rows: b"nan," + rows[0].split(b",", 1)[1], CSV),
    "inf": (lambda rows: b"inf," + rows[0].split(b",", 1)[1], CSV),
    "1e999": (lambda rows: rows[0] + b"\n" + b"1e999," + rows[1].split(b",", 1)[1], CSV),
    "blank field": (lambda rows: b"," + rows[0].split(b",", 1)[1], CSV),
    "not UTF-8": (lambda rows: b"\xff\xfe," + rows[0].split(b",", 1)[1], CSV),
    "only newlines": (lambda rows: b"\n\n", CSV),
}


@pytest.mark.parametrize("kind", REQUESTS)
def test_every_request_gets_the_same_answer_from_the_real_stack_and_local_mode(
    kind: str, container: Container, in_process: ModelServer, rows: list[bytes]
) -> None:
    make, headers = REQUESTS[kind]
    body = make(rows)
    real = answer(container, body, headers)
    assert real == answer(in_process, body, headers)
    status, content_type, response, printed = real
    if status == 200:
        assert content_type == "text/csv"  # exactly: data capture's CSV type, never text/html
        scores = np.array([float(v) for v in response.splitlines()])
        assert len(scores) == body.replace(b"\r", b"").strip(b"\n").count(b"\n") + 1
        # the metric line of exactly the scores sent back
        assert printed == [inference.prediction_line(PIPELINE, scores)]
    else:
        assert 400 <= status < 500, response
        assert content_type == "text/plain; charset=utf-8"
        assert response.count(b"\n") == 1  # one line, the reason
        # a refused request is never counted as predictions, and its reason is in the log
        assert printed == [f"request refused ({status}): {response.decode().strip()}"]


def test_the_real_stack_answers_scores_the_model_computes(
    container: Container, model_dir: Path, rows: list[bytes]
) -> None:
    status, _, body, _ = answer(container, batch(rows, 100), CSV)
    trained = joblib.load(model_dir / "model.joblib")
    matrix = np.array([[float(v) for v in row.split(b",")] for row in rows[:100]])
    expected = trained.predict_proba(matrix)[:, 1]
    assert status == 200 and np.allclose([float(v) for v in body.split()], expected, rtol=1e-12)


def test_the_container_itself_refuses_an_empty_body_and_answers_ping(container: Container) -> None:
    assert container.request("GET", "/ping")[0] == 200
    status, _, body = container.request("POST", "/invocations", b"", CSV)
    assert (status, body) == (400, b"empty body: send one or more records\n")
    # the sample defines no execution_parameters_fn: the container does not serve the path,
    # and Batch Transform then uses the job's own settings
    assert container.request("GET", "/execution-parameters")[0] == 404
    assert container.request("GET", "/nothing-here")[0] == 404


def test_the_model_loads_without_a_version_warning(container: Container) -> None:
    """Trained in the twin, the model unpickles in the image's scikit-learn without the
    InconsistentVersionWarning every worker logged when it was trained with another."""
    container.request("POST", "/invocations", b"1,2\n", CSV)  # both workers have loaded it
    container.request("POST", "/invocations", b"1,2\n", CSV)
    assert "InconsistentVersionWarning" not in container.log()


def test_without_the_stage_variable_the_container_cannot_start_with_no_index(
    model_dir: Path,
) -> None:
    """The image's pip builds the model's code in an isolated environment that needs
    setuptools from an index: under network isolation the container exits before /ping."""
    environment = model.container_environment()
    with pytest.raises(ContainerFailed) as failure, Container(model_dir, environment, workers=1):
        pass
    assert "InstallModuleError" in str(failure.value)
    assert "when installing build dependencies" in str(failure.value)


def test_a_model_whose_code_needs_a_package_from_an_index_cannot_start(
    model_dir: Path, tmp_path: Path, environment: dict[str, str]
) -> None:
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    (copy / "code" / "requirements.txt").write_text("a-package-only-an-index-has==1.0\n")
    with pytest.raises(ContainerFailed) as failure, Container(copy, environment, workers=1):
        pass
    assert "InstallModuleError" in str(failure.value)


def test_the_multi_model_server_gets_raised_refusals_and_plain_answers(
    model_dir: Path, tmp_path: Path
) -> None:
    """In the image's multi-model mode (SAGEMAKER_MULTI_MODEL) the sample is served by
    sagemaker-inference's Transformer under MMS, which cannot send a Flask response: the
    handlers must raise the toolkit's error and return (body, type). Run in the twin with
    the toolkit's own Transformer and MMS's own request context (MMS itself needs Java)."""
    probe = tmp_path / "probe.py"
    probe.write_text(MMS_PROBE)
    result = subprocess.run(
        [str(twin.python()), str(probe), str(model_dir)],
        capture_output=True, text=True, check=True,
        env={"SAGEMAKER_MULTI_MODEL": "true", "SAGEMAKER_PROGRAM": "inference.py",
             "PATH": "/usr/bin:/bin", "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv"},
    )  # fmt: skip
    answers = json.loads(result.stdout.splitlines()[-1])
    assert answers["good"]["status"] == 200 and answers["good"]["type"] == "text/csv"
    assert float(answers["good"]["body"]) >= 0
    assert answers["columns"]["status"] == 400
    assert "the model takes 30" in answers["columns"]["reason"]
    assert answers["accept"]["status"] == 406


def test_a_dropped_connection_is_retried_in_a_forked_process_too(
    container: Container, rows: list[bytes]
) -> None:
    """``make serve``'s front forks its workers after it started the container: a kept-alive
    connection the container closed (its idle timeout) is retried there on a new one, as in
    the process that started it, not taken for a stopped container (``Popen.poll`` answers 0
    in a process that is not the container's parent)."""
    expected, _ = container.respond(rows[0], "text/csv", "text/csv")  # the kept-alive connection
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the forked worker
        try:
            kept = container._local.connection  # this thread's kept-alive connection
            assert kept is not None and kept.sock is not None
            kept.sock.shutdown(socket.SHUT_RDWR)  # as when the server drops it
            answer = container.respond(rows[0], "text/csv", "text/csv")[0]
        except BaseException as error:  # reported to the test
            answer = f"{type(error).__name__}: {error}".encode()
        os.write(write, answer)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as answered:
        answer = answered.read()
    os.waitpid(child, 0)
    assert answer == expected
    # and the process that started it goes on (its connection, dropped too, is replaced)
    assert container.respond(rows[1], "text/csv", "text/csv")[0] != b""


MMS_PROBE = r"""
import json, sys
sys.path.insert(0, sys.argv[1] + "/code")
from mms.context import Context, RequestProcessor
from sagemaker_inference.default_inference_handler import DefaultInferenceHandler
from sagemaker_inference.transformer import Transformer

transformer = Transformer(default_inference_handler=DefaultInferenceHandler())

def call(body, accept):
    context = Context("model", sys.argv[1], {}, 1, None, "1.1.2")
    context.request_processor = [RequestProcessor({"Content-Type": "text/csv", "Accept": accept})]
    [out] = transformer.transform([{"body": body}], context)
    status, reason = context.get_response_status(0)
    body = out.decode() if isinstance(out, bytes) else out
    if not isinstance(body, str):
        raise SystemExit(f"MMS cannot send a {type(out).__name__}")
    return {"status": status, "reason": reason, "type": context.get_response_content_type(0),
            "body": body}

row = ",".join(["1"] * 30).encode()
print(json.dumps({
    "good": call(row, "text/csv"),
    "columns": call(b"1,2,3", "text/csv"),
    "accept": call(row, "application/json"),
}))
"""
