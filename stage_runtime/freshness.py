"""Whether each day was scored in time: the stage's freshness check and its heartbeat.

A stage's ``score_by_hours`` (H) is when a day must be scored by: H hours after the day's end,
UTC (6: by 06:00 the next day). At that hour a second EventBridge rule invokes the schedule's
function with ``{"check": "freshness", "event": <the rule's Scheduled Event>}``; the function
then reads the due day's marker (``stage_runtime/partitions.py``) and, when there is none,
whether its input holds data. It writes nothing and starts nothing: it prints one JSON line
(``"event": "freshness"``) that the stage's metric filters turn into one metric per reason a
day is late, each with its own alarm, so the notification names the reason:

- ``input-never-arrived``: the schedule looked and found no data (``Empty``);
- ``run-failed``: the day's last run failed or was stopped (its reason is in the marker);
- ``still-running``: a run was started and has not ended (``Executing``);
- ``schedule-did-not-fire``: no marker at all: the schedule never looked at the day.

Every line carries a 0/1 field per reason, so each metric has a value every day (0 on a day
scored in time). The heartbeat is the other half: the schedule's function prints one
``"event": "schedule-ran"`` line each time it runs, and an alarm that treats missing data as
breaching goes off when the schedule falls silent for longer than its period (a disabled or
deleted rule, a function that fails before its end): a missing metric cannot raise any other
alarm.

Standard library and ``partitions``: shipped in the functions' zip (``lambdas/package.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING

from stage_runtime import partitions
from stage_runtime.executions import RUNNING

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CHECK = "freshness"  # the deadline rule's input: {"check": CHECK, "event": <Scheduled Event>}
EVENT = "freshness"  # the check's JSON line
HEARTBEAT = "schedule-ran"  # the schedule's JSON line, once per invocation
SCORED = "scored"
INPUT_NEVER_ARRIVED = "input-never-arrived"
RUN_FAILED = "run-failed"
STILL_RUNNING = "still-running"
SCHEDULE_DID_NOT_FIRE = "schedule-did-not-fire"
REASONS = (INPUT_NEVER_ARRIVED, RUN_FAILED, STILL_RUNNING, SCHEDULE_DID_NOT_FIRE)
DEFAULT_SCORE_BY_HOURS = 6
# at most three days after the day's end: the schedule looks at the last whole day and the
# two before it, so a later deadline would be after its last look
SCORE_BY_HOURS = (1, 72)


def field(reason: str) -> str:
    """The line's 0/1 field for ``reason`` (a metric filter's selector: no dashes)."""
    return reason.replace("-", "_")


@dataclass(frozen=True)
class Verdict:
    """What the check found for one due day."""

    day: date
    reason: str  # SCORED or one of REASONS
    detail: str
    status: str | None = None  # the marker's status; None without a marker

    @property
    def late(self) -> bool:
        return self.reason != SCORED


def due_day(fired: date, score_by_hours: int) -> date:
    """The day whose deadline the check that fired on ``fired`` (at ``score_by_hours`` mod
    24, UTC) is: the day that ended ``score_by_hours`` hours before."""
    return fired - timedelta(days=1 + score_by_hours // 24)


def deadline(day: date, score_by_hours: int) -> datetime:
    """When ``day`` must be scored by: ``score_by_hours`` after its end (UTC)."""
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC)
    return end + timedelta(hours=score_by_hours)


def check_day(s3: S3Client, layout: partitions.Layout, day: date) -> Verdict:
    """The day's verdict from its marker alone (and, without one, its input): reads only.

    A marker that is not this template's raises ``ValueError`` (as the schedule does for
    that day): the invocation fails, which the dead-letter alarm reports."""
    marker = partitions.read_marker(s3, layout.marker_uri(day))
    if marker is None:
        data = partitions.has_data(s3, layout.input_uri(day))
        held = "holds data" if data else "holds no data either"
        return Verdict(
            day,
            SCHEDULE_DID_NOT_FIRE,
            f"no marker at {layout.marker_uri(day)}: the schedule never looked at the day; "
            f"its input {layout.input_uri(day)} {held}",
        )
    status = marker["status"]
    arn = marker.get("execution_arn")
    if status in partitions.DONE:
        return Verdict(day, SCORED, f"scored {marker.get('rows_scored', 0)} rows by {arn}", status)
    if status == "Empty":
        reason = f"no data under {layout.input_uri(day)} at the schedule's last look"
        return Verdict(day, INPUT_NEVER_ARRIVED, reason, status)
    if status in RUNNING:
        return Verdict(day, STILL_RUNNING, f"{arn} is {status.lower()}", status)
    why = marker.get("failure_reason") or "no failure reason recorded"
    return Verdict(day, RUN_FAILED, f"{arn} {status.lower()}: {why}", status)


def line(pipeline: str, verdict: Verdict, score_by_hours: int) -> str:
    """The check's JSON line for the stage's metric filters (one field per reason)."""
    return json.dumps(
        {
            "event": EVENT,
            "pipeline": pipeline,
            "date": verdict.day.isoformat(),
            "deadline": deadline(verdict.day, score_by_hours).isoformat(),
            "status": verdict.status,
            "reason": verdict.reason,
            "late": int(verdict.late),
            **{field(reason): int(verdict.reason == reason) for reason in REASONS},
            "detail": verdict.detail,
        },
        separators=(",", ":"),
    )


def heartbeat_line(pipeline: str, fired: date, days: int) -> str:
    """The schedule's JSON line each time it runs (``runs`` is always 1: the metric's sum
    over a period is how often the schedule ran in it)."""
    heartbeat = {"event": HEARTBEAT, "pipeline": pipeline, "fired": fired.isoformat()}
    return json.dumps(heartbeat | {"days": days, "runs": 1}, separators=(",", ":"))
