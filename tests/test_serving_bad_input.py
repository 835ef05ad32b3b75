"""A client's bad feature value is a 400 naming it, never a 500, in the real serving stack.

An endpoint's 5xx feed ``Invocation5XXErrors``, the alarm that rolls a deployment back; a
client's ``Infinity`` or ``1e308`` must not look like a broken model. The requests go over
HTTP to the sample model in the scikit-learn image's real serving stack (its runtime twin:
sagemaker-containers, gunicorn with gevent, Flask), as an endpoint client sends them and as
Batch Transform sends a mini-batch; the in-process option must answer the same.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from werkzeug.test import Client

from common.stage_model import STAGE_MODEL_ENVIRONMENT
from examples.breast_cancer import inference, model
from local_mode.container import Container, ContainerRefusal
from local_mode.invocations import InvocationsApp
from local_mode.serving import ModelServer, extract_artifact

CSV = {"Content-Type": "text/csv", "Accept": "text/csv"}
FIX = "send a finite number in every column"
ONES = ["1"] * 30


@pytest.fixture(scope="module")
def model_dir(built_model: model.Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return extract_artifact(built_model.archive, tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def environment() -> dict[str, str]:
    return {**model.container_environment(), **STAGE_MODEL_ENVIRONMENT}


@pytest.fixture(scope="module")
def container(model_dir: Path, environment: dict[str, str]) -> Iterator[Container]:
    with Container(model_dir, environment, workers=1) as running:
        yield running


@pytest.fixture(scope="module")
def in_process(model_dir: Path, environment: dict[str, str]) -> ModelServer:
    return ModelServer(model_dir, environment)


def rows(value: str, row: int, column: int, count: int = 3) -> bytes:
    """``count`` rows of ones with ``value`` at (``row``, ``column``), 1-based."""
    lines = [list(ONES) for _ in range(count)]
    lines[row - 1][column - 1] = value
    return b"".join((",".join(line) + "\n").encode() for line in lines)


def not_finite(value: str, row: int, column: int) -> str:
    return f"row {row}, column {column}: {value!r} is not a finite number: {FIX}"


def out_of_range(value: str, row: int, column: int, scaled: str) -> str:
    return (
        f"row {row}, column {column}: {value!r} is out of the model's range (its standardscaler "
        f"makes it {scaled}): send values in the range it was trained on"
    )


SPELLINGS = ["inf", "-inf", "+inf", "INF", "Infinity", "-Infinity", "+Infinity", "1e999",
             "-1e999", "+1E999", "nan", "NaN", "-nan"]  # fmt: skip
# (body, reason): every spelling in the first column of the first row and in the last column
# of a later row; blanks and words; finite values the model's scaling makes infinite (column
# 30's fitted scale is 0.018, column 1's 3.6: 1e308 is in range there)
CASES = {
    **{f"{value} first": (rows(value, 1, 1), not_finite(value, 1, 1)) for value in SPELLINGS},
    **{f"{value} last": (rows(value, 3, 30), not_finite(value, 3, 30)) for value in SPELLINGS},
    "blank": (rows("", 2, 5), f"row 2, column 5 is blank: {FIX}"),
    "word": (rows("abc", 2, 7), f"row 2, column 7: 'abc' is not a number: {FIX}"),
    "1e308 in column 30": (rows("1e308", 2, 30), out_of_range("1e308", 2, 30, "inf")),
    "-1.7e308 in column 30": (rows("-1.7e308", 1, 30), out_of_range("-1.7e308", 1, 30, "-inf")),
    "1.7e308 in column 12": (rows("1.7e308", 3, 12), out_of_range("1.7e308", 3, 12, "inf")),
}


@pytest.mark.parametrize("case", CASES)
def test_a_bad_value_is_a_400_naming_it_from_the_real_stack_and_local_mode(
    case: str, container: Container, in_process: ModelServer
) -> None:
    body, reason = CASES[case]
    answer = container.request("POST", "/invocations", body, CSV)
    assert answer == (400, "text/plain; charset=utf-8", (reason + "\n").encode())
    # the same through the front, from the real stack and from the in-process option
    for backend in (container, in_process):
        client = Client(InvocationsApp(backend, log=io.StringIO()))
        response = client.post("/invocations", data=body, headers=CSV)
        assert (response.status_code, response.data) == (400, (reason + "\n").encode())
    # the container keeps serving
    assert container.request("POST", "/invocations", rows("1", 1, 1), CSV)[0] == 200


@pytest.mark.parametrize("case", ["Infinity last", "1e308 in column 30", "blank"])
def test_batch_transform_gets_the_same_reason_for_its_mini_batch(
    case: str, container: Container
) -> None:
    """Batch Transform sends mini-batches over one kept-alive connection; the executor fails
    the job with the container's answer for the first record that fails alone."""
    body, reason = CASES[case]
    with pytest.raises(ContainerRefusal) as refused:
        container.invoke(b"1," * 29 + b"1\n" + body, "text/csv", "text/csv")
    assert refused.value.status == 400
    row = int(reason.split(",", 1)[0].removeprefix("row ")) + 1  # one row sent before
    assert str(refused.value) == f"HTTP 400: row {row}," + reason.split(",", 1)[1]


def test_values_in_range_are_scored_as_before(container: Container) -> None:
    """1e308 where the fitted scale keeps it finite, 1e-999 (zero) and 1e200 are numbers the
    model scores: nothing in range is refused."""
    body = rows("1e308", 1, 1) + rows("1e-999", 2, 30) + rows("1e200", 3, 4)
    status, content_type, answer = container.request("POST", "/invocations", body, CSV)
    assert (status, content_type) == (200, "text/csv")
    assert len(answer.splitlines()) == 9


def test_a_transform_that_changes_the_columns_names_the_row() -> None:
    """A model whose fitted transform mixes the columns (PCA here) cannot point at one sent
    value: the refusal names the row and the step."""
    fitted = make_pipeline(PCA(n_components=1), LogisticRegression())
    fitted.fit(np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 1.5], [3.0, 3.5]]), [0, 0, 1, 1])
    body = b"1,1\n1.7e308,1.7e308\n"
    with pytest.raises(inference.RequestRefused) as refused:
        inference.score(fitted, inference.parse_features(body), body)
    assert (refused.value.status, refused.value.reason) == (
        400,
        "row 2 is out of the model's range (its pca makes it inf): send values in the range it "
        "was trained on",
    )
