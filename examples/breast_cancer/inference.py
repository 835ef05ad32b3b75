"""Serving handlers for the sample model, as SageMaker's scikit-learn container calls them.

``input_fn`` and ``output_fn`` replace the container's defaults because those are slow on
large batches: the default CSV decoder (``np.genfromtxt``) parses about 12x slower than
pyarrow, and the default encoder formats every value through ``np.savetxt``. The same file
runs inside SageMaker's container, so this makes real Batch Transform cheaper per row too.

With ``BATCH_METRICS_PIPELINE`` set (the pipeline's Transform step sets it to its pipeline's
name), ``predict_fn`` prints one JSON line per request: how many predictions and their sum.
The job runs network-isolated; the stage's log metric filters turn these lines into
``PredictionCount`` and ``PredictionSum``, and the dashboard shows their ratio, the mean.

A request the model cannot score is refused with a 4xx status and a one-line reason, not a
500 (which would count as the endpoint's 5XX errors, fire its alarm and roll a healthy
version back). How depends on the server: SageMaker's scikit-learn container serves through
``sagemaker-containers``, which answers any exception of these handlers with 500, so there
the refusal travels as a ``Refusal`` value through ``predict_fn`` and ``output_fn`` returns
the container's ``worker.Response`` with the status; elsewhere (the inference toolkit's
servers, local mode) the handlers raise ``RequestRefused``, the toolkit's
``BaseInferenceToolkitError``. Batch Transform fails the job with the reason either way.
"""

from __future__ import annotations

import io
import json
import os
from typing import Any, NamedTuple

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
# Below this size, numpy's loadtxt parses faster than pyarrow's fixed cost per call (one row:
# 0.01 ms against 0.45 ms; 100 rows: 0.55 against 1.5 ms): real-time requests are small.
SMALL_BODY_BYTES = 128 * 2**10
PLAIN_NUMBERS = b"0123456789.,eE+-\n"


class RequestRefused(BaseInferenceToolkitError):
    """A request this model cannot score: ``status`` and a one-line ``reason``."""

    def __init__(self, status: int, reason: str):
        super().__init__(status, reason, reason)

    def __str__(self) -> str:
        return self.message


class Refusal(NamedTuple):
    """The same, as a value: what the handlers pass on under ``sagemaker-containers``."""

    status: int
    reason: str


def refuse(status: int, reason: str) -> Refusal:
    """A ``Refusal`` to return where the container would turn an exception into a 500;
    raises ``RequestRefused`` everywhere else."""
    if container_worker is None:
        raise RequestRefused(status, reason)
    return Refusal(status, reason)


def refusal_response(refusal: Refusal) -> Any:
    """The container's response for a refusal: its status and the reason as one line."""
    return container_worker.Response(
        response=refusal.reason + "\n", status=refusal.status, mimetype="text/plain"
    )


def model_fn(model_dir: str) -> Any:
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def input_fn(input_data: str | bytes, content_type: str) -> np.ndarray | Refusal:
    """Headerless CSV of features -> a float64 matrix (a non-number refuses the request)."""
    if content_type != CSV:
        return refuse(415, f"unsupported content type {content_type!r}; send {CSV}")
    data = input_data.encode("utf-8") if isinstance(input_data, str) else input_data
    if data and not data.endswith(b"\n"):
        data += b"\n"  # pyarrow finds no row in one record without its newline ("1,2,3")
    small = len(data) <= SMALL_BODY_BYTES and data.strip(b"\n")
    if small and not data.translate(None, PLAIN_NUMBERS):
        # plain decimal numbers only (no blanks, quotes, nan): both parsers read them alike
        try:
            return np.loadtxt(
                io.BytesIO(data), delimiter=",", ndmin=2, dtype=np.float64, comments=None
            )
        except ValueError:
            pass  # e.g. ragged rows or "1-2": pyarrow below names what is wrong
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(autogenerate_column_names=True),
            parse_options=pacsv.ParseOptions(newlines_in_values=False),
        )
    except pa.ArrowInvalid as error:  # e.g. "CSV parse error: Expected 30 columns, got 29"
        reason = str(error).splitlines()[0] if str(error) else "unreadable CSV"
        return refuse(400, f"malformed CSV: {reason}")
    columns: list[np.ndarray] = []
    for column in table.columns:
        if not (pa.types.is_floating(column.type) or pa.types.is_integer(column.type)):
            return refuse(400, f"non-numeric feature values in column {len(columns)}")
        columns.append(column.to_numpy().astype(np.float64, copy=False))
    return np.column_stack(columns)


def predict_fn(data: np.ndarray | Refusal, model: Any) -> np.ndarray | Refusal:
    """The probability of the positive class (benign), one per row."""
    if isinstance(data, Refusal):
        return data
    expected = getattr(model, "n_features_in_", data.shape[1])
    if data.shape[1] != expected:
        return refuse(400, f"{data.shape[1]} feature columns, the model takes {expected}")
    scores = model.predict_proba(data)[:, 1]
    pipeline = os.environ.get(METRICS_PIPELINE)
    if pipeline:
        print(prediction_line(pipeline, scores), flush=True)
    return scores


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


def output_fn(prediction: np.ndarray | Refusal, accept: str) -> Any:
    """One value per line, formatted by Arrow (shortest round-trip representation)."""
    if isinstance(prediction, Refusal):
        return refusal_response(prediction)
    if accept != CSV:
        return refusal_response(refuse(406, f"unsupported accept type {accept!r}; ask for {CSV}"))
    sink = io.BytesIO()
    pacsv.write_csv(
        pa.table({"score": prediction}),
        sink,
        write_options=pacsv.WriteOptions(include_header=False, quoting_style="none"),
    )
    return sink.getvalue()
