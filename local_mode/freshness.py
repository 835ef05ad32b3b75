"""The stage's freshness alarms as ``terraform/stage/freshness.tf`` declares them, for local mode.

On AWS the schedule's function prints the freshness check's line and its heartbeat, metric
filters on its log group make them metrics and the stage's alarms watch those. Here the same
declarations are evaluated over the lines the function printed (``local_mode/alarms.py``), so
``make demo`` shows the state each alarm would take. ``tests/test_terraform.py`` applies the
template and holds every filter and alarm it created equal to these.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from local_mode.alarms import PIPELINE, LocalAlarm, LogMetric, state
from stage_runtime import freshness

NAMESPACE = "BatchInference/Freshness"
# each reason a day is late: its metric (the template's local.freshness_reasons)
REASON_METRICS = {
    freshness.INPUT_NEVER_ARRIVED: "LateInputNeverArrived",
    freshness.RUN_FAILED: "LateRunFailed",
    freshness.STILL_RUNNING: "LateStillRunning",
    freshness.SCHEDULE_DID_NOT_FIRE: "LateScheduleDidNotFire",
}
LATE_PERIOD = 300  # seconds: a late day's alarms, as the stage's other alarms
MAX_PERIOD = 604_800  # CloudWatch: Period x EvaluationPeriods <= 7 days
_RATE = re.compile(r"rate\((?P<value>[0-9]+) (?P<unit>minute|hour|day)s?\)")
_UNIT = {"minute": 60, "hour": 3600, "day": 86400}
_DAILY_CRON = re.compile(r"cron\([0-9]{1,2} [0-9]{1,2} [*?] \* [*?] \*\)")


def _metric(name: str, event: str, field: str) -> LogMetric:
    """A filter on the schedule function's log group, as the template builds its pattern."""
    pattern = f'{{ $.event = "{event}" && $.pipeline = "{PIPELINE}" && $.{field} >= 0 }}'
    return LogMetric(name, pattern, f"$.{field}")


def late_alarms() -> dict[str, LocalAlarm]:
    """Each reason's alarm: any late line for that reason in the period."""
    return {
        reason: LocalAlarm(
            f"late_{freshness.field(reason)}",
            _metric(metric, freshness.EVENT, freshness.field(reason)),
            "Maximum",
            0,
        )
        for reason, metric in REASON_METRICS.items()
    }


def heartbeat_alarm() -> LocalAlarm:
    """The dead-man's switch: fewer than one schedule run in its period, silence breaching."""
    return LocalAlarm(
        "schedule_silent",
        _metric("ScheduleRuns", freshness.HEARTBEAT, "runs"),
        "Sum",
        1,
        comparison="LessThanThreshold",
        treat_missing_data="breaching",
    )


def heartbeat_period(schedule_expression: str) -> int:
    """The dead-man's switch's period in seconds, as the template derives it: the schedule's
    interval (a rate's; a day for a cron that fires once a day; a week for any other cron,
    whose gaps are uneven) plus as much slack as the interval up to an hour, at most 7 days."""
    rate = _RATE.fullmatch(schedule_expression)
    if rate:
        interval = int(rate["value"]) * _UNIT[rate["unit"]]
    else:
        interval = 86400 if _DAILY_CRON.fullmatch(schedule_expression) else MAX_PERIOD
    return min(interval + min(interval, 3600), MAX_PERIOD)


@dataclass(frozen=True)
class AlarmState:
    """One alarm's state after a period, and why (the late day and its reason when late)."""

    key: str
    state: str
    why: str


def freshness_states(pipeline: str, lines: Iterable[str]) -> list[AlarmState]:
    """The late-day alarms' states over one period in which the check printed ``lines``:
    each in ALARM names the day and the reason from the line that raised it."""
    kept = list(lines)
    found = []
    for reason, alarm in late_alarms().items():
        verdict, why = state(alarm, pipeline, kept)
        if verdict == "ALARM":
            days = [
                f"{event['date']}: {reason}"
                for event in _events(kept)
                if event.get("pipeline") == pipeline and event.get("reason") == reason
            ]
            why = "; ".join(days) or why
        found.append(AlarmState(alarm.key, verdict, why))
    return found


def _events(lines: list[str]) -> list[dict]:
    events = []
    for text in lines:
        try:
            event = json.loads(text)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == freshness.EVENT:
            events.append(event)
    return events


def summary(pipeline: str, lines: Iterable[str]) -> str:
    """One line for a summary: ``ALARM (<day>: <reason>)`` for each late-day alarm raised,
    or ``OK (<day>: scored)``."""
    kept = list(lines)
    raised = [s for s in freshness_states(pipeline, kept) if s.state == "ALARM"]
    if raised:
        return "ALARM (" + "; ".join(s.why for s in raised) + ")"
    days = [f"{e['date']}: {e['reason']}" for e in _events(kept) if e.get("pipeline") == pipeline]
    return f"OK ({'; '.join(days) or 'no day checked'})"
