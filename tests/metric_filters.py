"""The tests' name for local mode's CloudWatch Logs filter-pattern evaluator."""

from local_mode.metric_filters import matches, metric_value

__all__ = ["matches", "metric_value"]
