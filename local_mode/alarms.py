"""What a stage alarm on a log metric would say about the lines a local run printed.

On AWS a stage's functions and jobs print JSON lines; the stage's metric filters turn them
into metrics and its alarms watch those (``terraform/stage/alarms.tf``). The emulator stores
filters and alarms but evaluates neither, so local mode (``make demo``) evaluates them here:
the filter pattern with ``local_mode/metric_filters.py`` (the documented syntax), the alarm
as CloudWatch documents it for one period ("Evaluating an alarm", "Configuring how alarms
treat missing data"): the statistic over the values the period's lines published, compared
with the threshold; a period without a value is missing data, which the alarm's
``treat_missing_data`` turns into a state.

Only what the stage's alarms use is modelled: one evaluation period (no M of N), the
statistics below, no percentile, no anomaly band. The declarations (``LogMetric``,
``LocalAlarm``) repeat the template's; a Terraform test applies the template and holds each
to what it created, so they cannot drift apart.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from local_mode.metric_filters import metric_value

STATISTICS: dict[str, Callable[[list[float]], float]] = {
    "Sum": sum,
    "Maximum": max,
    "Minimum": min,
    "Average": lambda values: sum(values) / len(values),
    "SampleCount": lambda values: float(len(values)),
}
COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanThreshold": operator.gt,
    "GreaterThanOrEqualToThreshold": operator.ge,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
}
# what a period without data makes the alarm (AWS: "breaching" and "notBreaching"; with
# "missing" or "ignore" an alarm whose every period is missing is INSUFFICIENT_DATA)
MISSING = {
    "breaching": "ALARM",
    "notBreaching": "OK",
    "missing": "INSUFFICIENT_DATA",
    "ignore": "INSUFFICIENT_DATA",
}
PIPELINE = "{pipeline}"  # where a pattern names the pipeline whose lines it reads


@dataclass(frozen=True)
class LogMetric:
    """A metric filter as the stage template declares it."""

    name: str  # the metric's name, e.g. "LateDays"
    pattern: str  # the filter pattern, with "{pipeline}" where the pipeline's name goes
    value: str  # the metric value selector, "$.field"

    def pattern_for(self, pipeline: str) -> str:
        return self.pattern.replace(PIPELINE, pipeline)

    def values(self, pipeline: str, lines: Iterable[str]) -> list[float]:
        """What the filter publishes for ``lines`` (one value per matching line)."""
        pattern = self.pattern_for(pipeline)
        published = (metric_value(pattern, self.value, line) for line in lines)
        return [value for value in published if value is not None]


@dataclass(frozen=True)
class LocalAlarm:
    """An alarm on one ``LogMetric``, as the stage template declares it."""

    key: str  # its key in terraform/stage/alarms.tf's local.alarms
    metric: LogMetric
    statistic: str
    threshold: float
    comparison: str = "GreaterThanThreshold"
    treat_missing_data: str = "notBreaching"

    def __post_init__(self) -> None:
        for name, value, known in (
            ("statistic", self.statistic, STATISTICS),
            ("comparison", self.comparison, COMPARISONS),
            ("treat_missing_data", self.treat_missing_data, MISSING),
        ):
            if value not in known:
                raise ValueError(f"{self.key}: {name} {value!r} is not one of {sorted(known)}")


def state(alarm: LocalAlarm, pipeline: str, lines: Iterable[str]) -> tuple[str, str]:
    """("ALARM" | "OK" | "INSUFFICIENT_DATA", why): the alarm's state after one period in
    which ``pipeline``'s functions and jobs printed ``lines``, as CloudWatch evaluates it."""
    values = alarm.metric.values(pipeline, lines)
    if not values:
        verdict = MISSING[alarm.treat_missing_data]
        return verdict, (
            f"no {alarm.metric.name} datapoint in the period (missing data is "
            f"{alarm.treat_missing_data}): {verdict}"
        )
    datapoint = STATISTICS[alarm.statistic](values)
    breaching = COMPARISONS[alarm.comparison](datapoint, alarm.threshold)
    verdict = "ALARM" if breaching else "OK"
    return verdict, (
        f"{alarm.metric.name} {alarm.statistic} {datapoint:g} "
        f"{'' if breaching else 'not '}{alarm.comparison} {alarm.threshold:g}: {verdict}"
    )


# The stage's data-quality alarms (terraform/stage/alarms.tf: rejected_rows, drift), on the
# line Preprocess prints once per run and instance.
def _quality_metric(name: str, field: str) -> LogMetric:
    return LogMetric(
        name,
        f'{{ $.event = "batch-quality" && $.pipeline = "{PIPELINE}" && $.{field} >= 0 }}',
        f"$.{field}",
    )


def data_quality_alarms(max_rejected_fraction: float, max_drift_score: float) -> list[LocalAlarm]:
    """The stage's alarms on Preprocess's line, at the stage's thresholds."""
    return [
        LocalAlarm(
            "rejected_rows",
            _quality_metric("RejectedFraction", "rejected_fraction"),
            "Maximum",
            max_rejected_fraction,
        ),
        LocalAlarm(
            "drift", _quality_metric("DriftScore", "drift_score"), "Maximum", max_drift_score
        ),
    ]
