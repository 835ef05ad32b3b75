"""Serving handlers for the ticket-triage model, as SageMaker's scikit-learn container calls them.

A request is headerless CSV of the schema's features in its order (the Transform's
``InputFilter`` has dropped the id): strings for the categories, numbers, and empty fields
for nulls. The answer is one line per ticket, several columns: the predicted priority, then
each priority's probability in the model's class order (``low``, ``normal``, ``urgent``),
as ``text/csv``.

The features' names and types come from ``feature-schema.json`` inside the artifact (the same
file Preprocess validates against), so the columns are read as they were validated. A
request the model cannot score gets a 4xx status and a one-line reason (never a 500, which
would count as the endpoint's errors); with ``BATCH_METRICS_PIPELINE`` set, each scored
request prints the metric line the stage's log filters read, its ``sum`` being the sum of
each ticket's top probability, so the dashboard's mean is the model's mean confidence.
"""

from __future__ import annotations

import io
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
MULTI_MODEL = "SAGEMAKER_MULTI_MODEL"
SCHEMA_FILE = "feature-schema.json"
ARROW_TYPES = {"string": pa.string(), "int": pa.float64(), "float": pa.float64()}


class RequestRefused(BaseInferenceToolkitError):
    """A request this model cannot score: ``status`` and a one-line ``reason``."""

    def __init__(self, status: int, reason: str):
        super().__init__(status, reason, reason)
        self.status, self.reason = status, reason

    def __str__(self) -> str:
        return self.reason


def single_model_container() -> bool:
    """Whether ``sagemaker-containers`` serves this model: it sends a handler's
    ``worker.Response`` as it is and any exception as a 500."""
    return container_worker is not None and not os.environ.get(MULTI_MODEL)


def model_fn(model_dir: str) -> dict[str, Any]:
    with open(os.path.join(model_dir, SCHEMA_FILE), encoding="utf-8") as schema:
        features = json.load(schema)["features"]
    return {"pipeline": joblib.load(os.path.join(model_dir, "model.joblib")), "features": features}


def transform_fn(
    model: dict[str, Any], request_body: str | bytes, content_type: str, accept: str
) -> Any:
    """Headerless CSV of features -> ``priority,p_low,p_normal,p_urgent`` per row."""
    try:
        if content_type != CSV:
            raise RequestRefused(415, f"unsupported content type {content_type!r}; send {CSV}")
        if accept != CSV:
            raise RequestRefused(406, f"unsupported accept type {accept!r}; ask for {CSV}")
        frame = parse_features(request_body, model["features"])
        probabilities = model["pipeline"].predict_proba(frame)
    except RequestRefused as refused:
        print(f"request refused ({refused.status}): {refused.reason}", flush=True)
        if not single_model_container():
            raise
        return container_worker.Response(
            response=refused.reason + "\n", status=refused.status, mimetype="text/plain"
        )
    classes = [str(name) for name in model["pipeline"].classes_]
    pipeline = os.environ.get(METRICS_PIPELINE)
    if pipeline:
        print(prediction_line(pipeline, probabilities.max(axis=1)), flush=True)
    body = encode_answer(classes, probabilities)
    if not single_model_container():
        return body, CSV
    return container_worker.Response(response=body, headers={"Content-Type": CSV})


def parse_features(request_body: str | bytes, features: list[dict[str, Any]]) -> Any:
    """The request as a pandas frame with the schema's column names: strings (None for an
    empty field) and float64 numbers (NaN for an empty field); ``RequestRefused`` (400) for
    an empty body, another number of columns or a value that is not a number where one
    belongs, naming it."""
    data = request_body.encode("utf-8") if isinstance(request_body, str) else request_body
    if not data.strip(b"\r\n"):
        raise RequestRefused(400, "empty body: send one or more records")
    names = [feature["name"] for feature in features]
    try:
        table = pacsv.read_csv(
            io.BytesIO(data if data.endswith(b"\n") else data + b"\n"),
            read_options=pacsv.ReadOptions(column_names=names),
            parse_options=pacsv.ParseOptions(newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                column_types={f["name"]: ARROW_TYPES[f.get("type", "float")] for f in features},
                null_values=[""],
                strings_can_be_null=True,
            ),
        )
    except pa.ArrowInvalid as error:
        raise RequestRefused(400, _unreadable(str(error), names)) from None
    frame = table.to_pandas()
    for feature in features:
        if feature.get("type", "float") == "string":  # None for a null, whatever pandas makes
            column = frame[feature["name"]].astype(object)
            frame[feature["name"]] = column.where(column.notna(), None)
        else:
            infinite = np.flatnonzero(np.isinf(frame[feature["name"]].to_numpy()))
            if infinite.size:
                raise RequestRefused(
                    400,
                    f"row {infinite[0] + 1}, column {feature['name']!r} is not a finite number: "
                    "send finite numbers or an empty field",
                )
    return frame


def _unreadable(error: str, names: list[str]) -> str:
    """pyarrow's reason in one line, naming the column (it counts them from 0)."""
    reason = error.splitlines()[0] if error else "unreadable CSV"
    if "Expected" in reason and "columns" in reason:
        return f"malformed CSV: {reason}; the model takes {len(names)}: {', '.join(names)}"
    found = re.match(r"In CSV column #(\d+): CSV conversion error to \w+: (.*)", reason)
    if found and int(found.group(1)) < len(names):
        name = names[int(found.group(1))]
        return f"column {int(found.group(1)) + 1} ({name}): {found.group(2)}, not a number"
    return f"malformed CSV: {reason}"


def encode_answer(classes: list[str], probabilities: np.ndarray) -> bytes:
    """``label,p_<class>...`` per row, formatted by Arrow (shortest round-trip numbers)."""
    chosen = np.asarray(classes, dtype=object)[probabilities.argmax(axis=1)]
    columns = {"priority": pa.array(chosen, pa.string())}
    columns.update({f"p_{name}": probabilities[:, k] for k, name in enumerate(classes)})
    sink = io.BytesIO()
    pacsv.write_csv(
        pa.table(columns),
        sink,
        write_options=pacsv.WriteOptions(include_header=False, quoting_style="none"),
    )
    return sink.getvalue()


def prediction_line(pipeline: str, values: np.ndarray) -> str:
    """``{"event": "batch-predictions", ...}``: the count and sum the metric filters read."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    total = f"{float(finite.sum()):.6f}".rstrip("0").rstrip(".") or "0"
    head = json.dumps({"event": "batch-predictions", "pipeline": pipeline}, separators=(",", ":"))
    return f'{head[:-1]},"count":{finite.size},"sum":{total}}}'
