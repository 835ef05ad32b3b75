"""The stage's model-quality metrics and alarm, as ``terraform/stage/alarms.tf`` declares them.

The model-quality job (``pipelines/batch_inference/evaluate.py``) prints one line per day it
measures (``"event": "model-quality"``); the stage's metric filters make its numbers metrics
and the ``quality_drop`` alarm watches ``QualityDrop``. Local mode evaluates them with
``local_mode.alarms.state``; the Terraform apply test holds each declaration here to what the
template created, so the two cannot drift apart.
"""

from __future__ import annotations

from local_mode.alarms import PIPELINE, LocalAlarm, LogMetric

EVENT = "model-quality"

# metric name -> (field of the line, the condition its filter matches the field with): a
# drop or a bias may be negative ("= *"), the others are 0 or more
FIELDS = {
    "QualityDrop": ("quality_drop", "= *"),
    "LabelCoverage": ("label_coverage", ">= 0"),
    "AUC": ("auc", ">= 0"),
    "Accuracy": ("accuracy", ">= 0"),
    "Precision": ("precision", ">= 0"),
    "Recall": ("recall", ">= 0"),
    "LogLoss": ("log_loss", ">= 0"),
    "CalibrationError": ("calibration_error", ">= 0"),
    "MAE": ("mae", ">= 0"),
    "RMSE": ("rmse", ">= 0"),
    "Bias": ("bias", "= *"),
}


def model_quality_metric(name: str) -> LogMetric:
    """The filter of one of the job's metrics (``FIELDS``)."""
    field, match = FIELDS[name]
    return LogMetric(
        name,
        f'{{ $.event = "{EVENT}" && $.pipeline = "{PIPELINE}" && $.{field} {match} }}',
        f"$.{field}",
    )


METRICS = [model_quality_metric(name) for name in FIELDS]


def quality_drop_alarm(max_quality_drop: float) -> LocalAlarm:
    """The stage's ``quality_drop`` alarm at its ``max_quality_drop``."""
    return LocalAlarm(
        "quality_drop", model_quality_metric("QualityDrop"), "Maximum", max_quality_drop
    )
