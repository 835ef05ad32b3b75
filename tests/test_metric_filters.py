"""The test-side evaluator of CloudWatch Logs JSON filter patterns (tests/metric_filters.py):
it must hold a pattern to what AWS documents, or the template's filter tests prove little."""

from __future__ import annotations

import pytest

from tests.metric_filters import matches, metric_value

PATTERN = '{ $.event = "batch-quality" && $.drift_score >= 0 }'


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ('{"event":"batch-quality","drift_score":0.3}', 0.3),
        ('{"event":"batch-quality","drift_score":0}', 0.0),
        ('{"event":"batch-quality"}', None),  # no drift measured: nothing published
        ('{"event":"batch-quality","drift_score":"0.3"}', None),  # text is not a number
        ('{"event":"other","drift_score":0.3}', None),
        ("preprocess: 1 file(s) read", None),
        ('["batch-quality"]', None),
    ],
)
def test_a_value_is_published_only_for_a_matching_event(message: str, expected) -> None:
    assert metric_value(PATTERN, "$.drift_score", message) == expected
    assert matches(PATTERN, message) == (expected is not None)


def test_a_value_field_the_pattern_does_not_match_is_refused() -> None:
    with pytest.raises(ValueError, match=r"\$\.rows_read is not matched by"):
        metric_value(PATTERN, "$.rows_read", '{"event":"batch-quality","rows_read":5}')


@pytest.mark.parametrize(
    "pattern",
    [
        "{ $.a = 1 || $.b = 2 }",
        "{ ($.a = 1) }",
        '{ $.a = "x*" }',
        "$.a = 1",
        "{ $.a IS NULL }",
        "{ $.a != * }",
    ],
)
def test_syntax_outside_the_supported_subset_is_refused_not_guessed(pattern: str) -> None:
    with pytest.raises(ValueError):
        matches(pattern, '{"a":1}')


@pytest.mark.parametrize(
    ("message", "expected"),
    [('{"sum":-2.5}', -2.5), ('{"sum":0}', 0.0), ('{"sum":"x"}', None), ("{}", None)],
)
def test_a_wildcard_matches_any_present_value(message: str, expected) -> None:
    """``$.sum = *`` (the CDK's FilterPattern.exists): a sum may be negative."""
    assert metric_value("{ $.sum = * }", "$.sum", message) == expected
    assert matches("{ $.sum = * }", message) == (message != "{}")
