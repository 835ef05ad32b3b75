"""Local mode's evaluation of a stage alarm over the lines a run printed
(local_mode/alarms.py): CloudWatch's documented evaluation of one period."""

from __future__ import annotations

import json

import pytest

from local_mode.alarms import LocalAlarm, LogMetric, data_quality_alarms, state

LATE = LogMetric(
    "LateDays", '{ $.event = "freshness" && $.pipeline = "{pipeline}" && $.late >= 0 }', "$.late"
)


def line(pipeline: str, late: int, event: str = "freshness") -> str:
    return json.dumps({"event": event, "pipeline": pipeline, "late": late})


@pytest.mark.parametrize(
    ("statistic", "lates", "expected"),
    [
        ("Maximum", [0, 1, 0], "ALARM"),
        ("Maximum", [0, 0], "OK"),
        ("Sum", [1, 1], "ALARM"),
        ("Average", [0, 0, 0, 1], "ALARM"),  # 0.25 > 0
        ("Minimum", [0, 1], "OK"),
        ("SampleCount", [0], "ALARM"),  # one datapoint > 0
    ],
)
def test_the_statistic_of_the_periods_values_is_compared_with_the_threshold(
    statistic: str, lates: list[int], expected: str
) -> None:
    alarm = LocalAlarm("late", LATE, statistic, 0)
    verdict, why = state(alarm, "p", [line("p", late) for late in lates])
    assert verdict == expected
    assert why.startswith(f"LateDays {statistic} ") and why.endswith(expected)


@pytest.mark.parametrize(
    ("treatment", "expected"),
    [("breaching", "ALARM"), ("notBreaching", "OK"), ("missing", "INSUFFICIENT_DATA")],
)
def test_a_period_without_a_value_is_missing_data(treatment: str, expected: str) -> None:
    """Lines of another pipeline or event, or none, publish nothing: the treatment decides
    (a dead-man's switch is an alarm whose missing data breaches)."""
    alarm = LocalAlarm("silent", LATE, "Sum", 0, treat_missing_data=treatment)
    other = [line("other", 1), line("p", 1, event="partition-run"), "not json"]
    for lines in ([], other):
        verdict, why = state(alarm, "p", lines)
        assert verdict == expected
        assert "no LateDays datapoint" in why


@pytest.mark.parametrize(
    ("comparison", "expected"),
    [
        ("GreaterThanThreshold", "OK"),
        ("GreaterThanOrEqualToThreshold", "ALARM"),
        ("LessThanThreshold", "OK"),
        ("LessThanOrEqualToThreshold", "ALARM"),
    ],
)
def test_each_comparison_at_the_threshold(comparison: str, expected: str) -> None:
    alarm = LocalAlarm("late", LATE, "Maximum", 1, comparison=comparison)
    assert state(alarm, "p", [line("p", 1)])[0] == expected


def test_an_unknown_statistic_comparison_or_treatment_is_refused() -> None:
    refused = (("statistic", "p99"), ("comparison", "Above"), ("treat_missing_data", "x"))
    for field, value in refused:
        arguments = {"statistic": "Maximum", field: value}
        with pytest.raises(ValueError, match=f"late: {field} {value!r} is not one of"):
            LocalAlarm("late", LATE, threshold=0, **arguments)


def test_the_drift_alarm_reads_preprocess_line_at_the_stages_threshold() -> None:
    """The data-quality alarms on Preprocess's own summary line: the drift score above the
    stage's limit alarms, below it does not, a run without a baseline publishes nothing."""
    rejected, drift = data_quality_alarms(0.05, 0.2)
    summary = {"event": "batch-quality", "pipeline": "p", "rejected_fraction": 0.01}
    assert state(drift, "p", [json.dumps(summary | {"drift_score": 0.31})])[0] == "ALARM"
    assert state(drift, "p", [json.dumps(summary | {"drift_score": 0.1})])[0] == "OK"
    assert state(drift, "p", [json.dumps(summary)])[0] == "OK"  # no baseline: not breaching
    assert state(rejected, "p", [json.dumps(summary | {"rejected_fraction": 0.5})])[0] == "ALARM"
