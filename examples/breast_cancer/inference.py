"""Serving handlers for the sample model, as SageMaker's scikit-learn container calls them.

One ``transform_fn`` (the container's alternative to ``input_fn``/``predict_fn``/
``output_fn``) because it sees the request's ``Content-Type`` **and** ``Accept`` before any
work: a request the model cannot answer is refused before it is parsed or scored, so a
refused request never counts in the prediction metrics. The CSV is parsed with numpy (small
bodies) or pyarrow (the default decoder, ``np.genfromtxt``, is about 12x slower on Batch
Transform's 6 MB requests) and the scores are written by Arrow; the answer is typed
``text/csv`` (a bare body would be sent as Flask's ``text/html``).

With ``BATCH_METRICS_PIPELINE`` set (the pipeline's Transform step sets it to its pipeline's
name), each scored request prints one JSON line: how many predictions and their sum. The job
runs network-isolated; the stage's log metric filters turn these lines into
``PredictionCount`` and ``PredictionSum``, and the dashboard shows their ratio, the mean.

A request the model cannot score gets a 4xx status and a one-line reason, never a 500
(which would count as the endpoint's 5XX errors, fire its alarm and roll a healthy version
back), and the reason is printed to the container's log. How the status gets out depends on
the server: SageMaker's scikit-learn container serves single models through
``sagemaker-containers``, which answers any exception of a handler with 500, so there the
handler returns the container's ``worker.Response`` with the status; its multi-model server
(``SAGEMAKER_MULTI_MODEL``) and the inference toolkit's servers answer the toolkit's
``BaseInferenceToolkitError`` with its status (and cannot send a Flask response), so there
the handler raises ``RequestRefused``. Batch Transform fails the job with the reason either
way.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import re
from typing import Any

import joblib
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from sagemaker_inference.errors import BaseInferenceToolkitError

try:  # SageMaker's scikit-learn serving container; absent elsewhere
    from sagemaker_containers.beta.framework import worker as container_worker
except ImportError:
    container_worker = None

CSV = "text/csv"
METRICS_PIPELINE = "BATCH_METRICS_PIPELINE"
MULTI_MODEL = "SAGEMAKER_MULTI_MODEL"  # the scikit-learn image serves with MMS when set
# Below this size, numpy's loadtxt parses faster than pyarrow's fixed cost per call (one row:
# 0.01 ms against 0.45 ms; 100 rows: 0.55 against 1.5 ms): real-time requests are small.
SMALL_BODY_BYTES = 128 * 2**10
PLAIN_NUMBERS = b"0123456789.,eE+-\n"
DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")  # what both parsers read
NOT_FINITE = re.compile(r"[+-]?(nan|inf|infinity)", re.IGNORECASE)
SHOWN_CHARACTERS = 40  # of a refused value, in the one-line reason


class RequestRefused(BaseInferenceToolkitError):
    """A request this model cannot score: ``status`` and a one-line ``reason``."""

    def __init__(self, status: int, reason: str):
        super().__init__(status, reason, reason)
        self.status, self.reason = status, reason

    def __str__(self) -> str:
        return self.reason


def single_model_container() -> bool:
    """Whether ``sagemaker-containers`` serves this model (the scikit-learn image's single-model
    server): it sends a handler's ``worker.Response`` as it is and any exception as a 500."""
    return container_worker is not None and not os.environ.get(MULTI_MODEL)


def model_fn(model_dir: str) -> Any:
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def transform_fn(model: Any, request_body: str | bytes, content_type: str, accept: str) -> Any:
    """Headerless CSV of features -> one probability of the positive class (benign) per row,
    as ``text/csv``; a request it cannot score is refused (see the module's docstring)."""
    try:
        if content_type != CSV:
            raise RequestRefused(415, f"unsupported content type {content_type!r}; send {CSV}")
        if accept != CSV:
            raise RequestRefused(406, f"unsupported accept type {accept!r}; ask for {CSV}")
        features = parse_features(request_body)
        expected = getattr(model, "n_features_in_", features.shape[1])
        if features.shape[1] != expected:
            raise RequestRefused(
                400, f"{features.shape[1]} feature columns, the model takes {expected}"
            )
        scores = score(model, features, request_body)
    except RequestRefused as refused:
        print(f"request refused ({refused.status}): {refused.reason}", flush=True)
        if not single_model_container():
            raise
        return container_worker.Response(
            response=refused.reason + "\n", status=refused.status, mimetype="text/plain"
        )
    pipeline = os.environ.get(METRICS_PIPELINE)
    if pipeline:
        print(prediction_line(pipeline, scores), flush=True)
    body = encode_scores(scores)
    if not single_model_container():
        return body, CSV
    # exactly text/csv (a mimetype would get "; charset=utf-8"): what data capture matches
    return container_worker.Response(response=body, headers={"Content-Type": CSV})


def parse_features(request_body: str | bytes) -> np.ndarray:
    """Headerless CSV -> a float64 matrix of finite numbers; ``RequestRefused`` (400) naming
    the first cell that is not one (row, column, the value as sent): a blank, a word, ``nan``,
    ``inf`` in any spelling or a number too large for a float (``1e999``)."""
    data = request_body.encode("utf-8") if isinstance(request_body, str) else request_body
    if not data.strip(b"\r\n"):
        raise RequestRefused(400, "empty body: send one or more records")
    if not data.endswith(b"\n"):
        data += b"\n"  # pyarrow finds no row in one record without its newline ("1,2,3")
    features = None
    if len(data) <= SMALL_BODY_BYTES and not data.translate(None, PLAIN_NUMBERS):
        # plain decimal numbers only (no blanks, quotes, nan): both parsers read them alike
        with contextlib.suppress(ValueError):  # e.g. ragged rows: pyarrow names what is wrong
            features = np.loadtxt(
                io.BytesIO(data), delimiter=",", ndmin=2, dtype=np.float64, comments=None
            )
    if features is None:
        features = _read_csv(data)
    finite = np.isfinite(features)
    if not finite.all():
        row, column = (int(index) for index in np.argwhere(~finite)[0])  # the first, row-major
        raise RequestRefused(400, _not_a_finite_number(data, row, column))
    return features


def _read_csv(data: bytes) -> np.ndarray:
    """pyarrow's reading; a cell that is not a number is NaN here (``parse_features`` names
    it), so that the first bad cell is found whichever column it is in."""
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(autogenerate_column_names=True),
            parse_options=pacsv.ParseOptions(newlines_in_values=False),
        )
    except pa.ArrowInvalid as error:  # e.g. "CSV parse error: Expected 30 columns, got 29"
        reason = str(error).splitlines()[0] if str(error) else "unreadable CSV"
        raise RequestRefused(400, f"malformed CSV: {reason}") from None
    columns: list[np.ndarray] = []
    for column in table.columns:
        if pa.types.is_floating(column.type) or pa.types.is_integer(column.type):
            columns.append(column.to_numpy().astype(np.float64, copy=False))
        else:  # some cell is not a number: read the cells one by one (a refused request)
            columns.append(np.array([_decimal(cell) for cell in column.to_pylist()]))
    return np.column_stack(columns)


def _decimal(cell: Any) -> float:
    text = str(cell).strip() if cell is not None else ""
    return float(text) if DECIMAL.fullmatch(text) else np.nan


def _cell(data: bytes, row: int, column: int) -> str:
    """The text of one cell as sent (rows counted as both parsers count them: without empty
    lines), cut to a length that keeps the reason one short line."""
    lines = (line for line in data.split(b"\n") if line.rstrip(b"\r"))
    line = next(itertools.islice(lines, row, None), b"").rstrip(b"\r")
    cells = line.split(b",")
    text = cells[column].decode("utf-8", errors="replace").strip() if column < len(cells) else ""
    text = text.strip('"')
    return text if len(text) <= SHOWN_CHARACTERS else text[: SHOWN_CHARACTERS - 3] + "..."


def _not_a_finite_number(data: bytes, row: int, column: int) -> str:
    where = f"row {row + 1}, column {column + 1}"
    text = _cell(data, row, column)
    if not text:
        return f"{where} is blank: send a finite number in every column"
    kind = (
        "a finite number" if NOT_FINITE.fullmatch(text) or DECIMAL.fullmatch(text) else "a number"
    )
    return f"{where}: {text!r} is not {kind}: send a finite number in every column"


def score(model: Any, features: np.ndarray, request_body: str | bytes) -> np.ndarray:
    """The positive class's probability for each row. A finite value can still be out of the
    model's range: ``1e308`` in a feature whose fitted scale is below 1 becomes ``inf`` in the
    model's scaling, which scikit-learn's estimator refuses with a ``ValueError`` (a 500).
    That is the client's value, so it is refused (400) naming it; a failure with every value
    in range is the model's own and stays a 500."""
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            return np.asarray(model.predict_proba(features)[:, 1], dtype=np.float64)
    except ValueError:
        _refuse_out_of_range(model, features, request_body)
        raise


def _refuse_out_of_range(model: Any, features: np.ndarray, request_body: str | bytes) -> None:
    """``RequestRefused`` naming the first value that the model's fitted transforms (the
    steps of a scikit-learn ``Pipeline`` before its estimator) make non-finite; nothing when
    they keep every value finite."""
    data = request_body.encode("utf-8") if isinstance(request_body, str) else request_body
    values = features
    with np.errstate(all="ignore"):
        for name, step in getattr(model, "steps", [])[:-1]:
            values = np.asarray(step.transform(values), dtype=np.float64)
            finite = np.isfinite(values)
            if finite.all():
                continue
            row, column = (int(index) for index in np.argwhere(~finite)[0])
            sent = (  # column for column, the value sent is the one out of range
                f", column {column + 1}: {_cell(data, row, column)!r}"
                if values.shape == features.shape
                else ""
            )
            raise RequestRefused(
                400,
                f"row {row + 1}{sent} is out of the model's range (its {name} makes it "
                f"{values[row, column]}): send values in the range it was trained on",
            )


def encode_scores(scores: np.ndarray) -> bytes:
    """One value per line, formatted by Arrow (shortest round-trip representation)."""
    sink = io.BytesIO()
    pacsv.write_csv(
        pa.table({"score": scores}),
        sink,
        write_options=pacsv.WriteOptions(include_header=False, quoting_style="none"),
    )
    return sink.getvalue()


def prediction_line(pipeline: str, predictions: np.ndarray) -> str:
    """``{"event": "batch-predictions", ...}``: count and sum of the finite predictions, in
    plain decimals (what the metric filters read; any handler can print the same line)."""
    values = np.asarray(predictions, dtype=np.float64).ravel()
    finite = values[np.isfinite(values)]
    total = f"{float(finite.sum()):.6f}".rstrip("0").rstrip(".") or "0"
    head = json.dumps({"event": "batch-predictions", "pipeline": pipeline}, separators=(",", ":"))[
        :-1
    ]
    return f'{head},"count":{finite.size},"sum":{total}}}'
