"""The freshness check and the schedule's heartbeat, against the emulator (S3 through boto3).

The deadline rule's event is the stage's Scheduled Event wrapped as the template's input
transformer wraps it (``{"check": "freshness", "event": <aws.events.event>}``, terraform/stage/
freshness.tf). Markers are written as the schedule and the run-outcome function write them.
"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import boto3
import pytest

from lambdas.start_scheduled_run import handler as function
from local_mode import freshness as local_freshness
from local_mode import sandbox
from local_mode.alarms import state
from local_mode.emulator import Emulator
from stage_runtime import freshness, partitions

BUCKET = "stage-artifacts"
INPUT = f"s3://{BUCKET}/churn/batch-inference/input/"
OUTPUT = f"s3://{BUCKET}/churn/batch-inference/output"
PIPELINE = "churn-preprod-batch-inference"
LAYOUT = partitions.Layout(INPUT, OUTPUT)
EXECUTION = f"arn:aws:sagemaker:eu-west-1:123456789012:pipeline/{PIPELINE}/execution/x"


@pytest.fixture
def stage(aws: Emulator, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The bucket and the function's environment (deadline 6 h after the day's end)."""
    sandbox.create_bucket(aws, None, BUCKET)
    for name, value in {
        "PIPELINE_NAME": PIPELINE,
        "PIPELINE_PARAMETERS": json.dumps({"ModelName": "churn-models-preprod-v3"}),
        "INPUT_DATA_URL": INPUT,
        "OUTPUT_DATA_URL": OUTPUT,
        "PARTITION_FORMAT": partitions.DEFAULT_FORMAT,
        "LOOKBACK_DAYS": "2",
        "SCORE_BY_HOURS": "6",
    }.items():
        monkeypatch.setenv(name, value)
    return boto3.client("s3")


def check_event(time: str) -> dict[str, Any]:
    """The deadline rule's input: its Scheduled Event (without detail) wrapped."""
    scheduled = {
        "version": "0",
        "id": "7bf73129-1428-4cd3-a780-95db273d1602",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": time,
        "region": "eu-west-1",
        "resources": ["arn:aws:events:eu-west-1:123456789012:rule/churn-preprod-freshness"],
    }
    return {"check": freshness.CHECK, "event": scheduled}


def put_marker(s3: Any, day: date, marker: dict[str, Any]) -> None:
    partitions.write_marker(s3, LAYOUT.marker_uri(day), marker, None)


def put_input(s3: Any, day: date, body: bytes = b"record_id\nr1\n") -> None:
    bucket, prefix = partitions.parse_s3_uri(LAYOUT.input_uri(day))
    s3.put_object(Bucket=bucket, Key=f"{prefix}a.csv", Body=body)


def recorded_operations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every operation the function's clients send, whatever the service."""
    operations: list[str] = []
    real_session = function.aws_sessions.session

    def recording_session(*args: Any, **kwargs: Any) -> boto3.Session:
        session = real_session(*args, **kwargs)
        session.events.register(
            "before-parameter-build", lambda model, **_: operations.append(model.name)
        )
        return session

    monkeypatch.setattr(function.aws_sessions, "session", recording_session)
    return operations


DAY = date(2026, 11, 1)
SCORED = {"status": "Succeeded", "rows_read": 3, "rows_rejected": 0, "rows_scored": 3}
SUCCEEDED = partitions.started_marker(LAYOUT, DAY, EXECUTION) | SCORED
FAILED = partitions.started_marker(LAYOUT, DAY, EXECUTION) | {
    "status": "Failed", "failure_reason": "ClientError: Preprocess exited 3",
}  # fmt: skip
# (the day's marker, whether its input holds data) -> (reason, words of the detail)
CASES = {
    "scored": (SUCCEEDED, True, freshness.SCORED, "scored 3 rows by " + EXECUTION),
    "empty": (partitions.empty_marker(LAYOUT, DAY), False, "input-never-arrived",
              f"no data under {LAYOUT.input_uri(DAY)}"),
    "failed": (FAILED, True, "run-failed", "failed: ClientError: Preprocess exited 3"),
    "stopped": (FAILED | {"status": "Stopped", "failure_reason": None}, True, "run-failed",
                "stopped: no failure reason recorded"),
    "executing": (partitions.started_marker(LAYOUT, DAY, EXECUTION), True, "still-running",
                  f"{EXECUTION} is executing"),
    "no marker, data": (None, True, "schedule-did-not-fire", "holds data"),
    "no marker, no data": (None, False, "schedule-did-not-fire", "holds no data either"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_the_check_reads_the_due_days_marker_and_names_why_it_is_late(
    stage: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    """At 06:00 UTC on 2 November (a 6 h deadline) the 1st is due: its marker says whether it
    was scored and, if not, why; the check reads and prints, and writes or starts nothing."""
    marker, data, reason, detail = CASES[case]
    if marker is not None:
        put_marker(stage, DAY, marker)
    if data:
        put_input(stage, DAY)
    put_input(stage, date(2026, 11, 2))  # the day being written: not due
    keys = sorted(o["Key"] for o in stage.list_objects_v2(Bucket=BUCKET).get("Contents", []))
    operations = recorded_operations(monkeypatch)
    answer = function.handler(check_event("2026-11-02T06:00:00Z"))
    assert answer["date"] == "2026-11-01"
    assert (answer["reason"], answer["late"]) == (reason, reason != freshness.SCORED)
    assert detail in answer["detail"]
    after = sorted(o["Key"] for o in stage.list_objects_v2(Bucket=BUCKET).get("Contents", []))
    assert after == keys
    assert set(operations) <= {"ListObjectsV2", "GetObject"}, operations
    printed = capsys.readouterr().out.splitlines()
    (line,) = [json.loads(x) for x in printed if x.startswith("{")]
    assert line["event"] == "freshness" and line["pipeline"] == PIPELINE
    assert (line["date"], line["deadline"]) == ("2026-11-01", "2026-11-02T06:00:00+00:00")
    assert (line["reason"], line["late"]) == (reason, int(reason != freshness.SCORED))
    assert line["status"] == (marker["status"] if marker else None)
    flags = {r: line[freshness.field(r)] for r in freshness.REASONS}
    assert flags == {r: int(r == reason) for r in freshness.REASONS}
    # the stage's alarms over what it printed, as CloudWatch would set them: the reason's own
    states = {s.key: s.state for s in local_freshness.freshness_states(PIPELINE, printed)}
    assert states == {
        f"late_{freshness.field(r)}": "ALARM" if r == reason else "OK" for r in freshness.REASONS
    }
    expected = (
        f"OK (2026-11-01: {reason})" if reason == "scored" else f"ALARM (2026-11-01: {reason})"
    )
    assert local_freshness.summary(PIPELINE, printed) == expected


@pytest.mark.parametrize(
    ("hours", "fired", "due"),
    [
        (6, "2026-11-02T06:00:00Z", date(2026, 11, 1)),
        (23, "2026-11-02T23:00:00Z", date(2026, 11, 1)),
        (24, "2026-11-03T00:00:00Z", date(2026, 11, 1)),
        (30, "2026-11-03T06:00:00Z", date(2026, 11, 1)),
        (72, "2026-11-05T00:00:00Z", date(2026, 11, 1)),
        (6, "2026-03-01T06:00:00Z", date(2026, 2, 28)),
    ],
)
def test_the_day_due_is_the_one_whose_deadline_fired(
    stage: Any, monkeypatch: pytest.MonkeyPatch, hours: int, fired: str, due: date
) -> None:
    """The rule fires at the deadline's hour (``score_by_hours`` mod 24) each day: the day
    checked is the one that ended ``score_by_hours`` before, whose deadline that is."""
    monkeypatch.setenv("SCORE_BY_HOURS", str(hours))
    answer = function.handler(check_event(fired))
    assert answer["date"] == due.isoformat()
    assert freshness.deadline(due, hours).isoformat() == fired.replace("Z", "+00:00")


def test_a_late_delivery_checks_the_day_its_rule_fired_for(stage: Any) -> None:
    """EventBridge's retries keep the event's time: the day checked does not move."""
    put_marker(stage, DAY, partitions.empty_marker(LAYOUT, DAY))
    answer = function.handler(check_event("2026-11-02T06:00:00Z"))
    assert (answer["date"], answer["reason"]) == ("2026-11-01", "input-never-arrived")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SCORE_BY_HOURS", "0", "SCORE_BY_HOURS must be a whole number from 1 to 72, got '0'"),
        ("SCORE_BY_HOURS", "٦", "SCORE_BY_HOURS must be a whole number from 1 to 72, got '٦'"),
        ("SCORE_BY_HOURS", "", "environment variable SCORE_BY_HOURS is required"),
        ("PIPELINE_NAME", "", "environment variable PIPELINE_NAME is required"),
    ],
)
def test_a_bad_check_configuration_fails_the_invocation_by_name(
    stage: Any, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(function.ConfigError, match=message):
        function.handler(check_event("2026-11-02T06:00:00Z"))


@pytest.mark.parametrize(
    "event",
    [
        {"check": "freshness"},
        {"check": "freshness", "event": {"source": "aws.events", "detail-type": "Scheduled Event"}},
        {"check": "freshness", "event": "2026-11-02T06:00:00Z"},
    ],
)
def test_a_check_without_its_scheduled_event_checks_nothing(stage: Any, event: dict) -> None:
    with pytest.raises(function.NotAScheduledEvent):
        function.handler(event)


def test_a_foreign_marker_fails_the_check_for_the_dead_letter_alarm(stage: Any) -> None:
    """A marker that is not this template's is never read as a verdict: the invocation
    fails (Lambda's retries, then the alarmed dead-letter queue)."""
    bucket, key = partitions.parse_s3_uri(LAYOUT.marker_uri(DAY))
    stage.put_object(Bucket=bucket, Key=key, Body=b'{"status": "done"}')
    with pytest.raises(ValueError, match="is not a sagemaker-batch-mlops/partition-run/1 marker"):
        function.handler(check_event("2026-11-02T06:00:00Z"))


def test_each_schedule_run_prints_one_heartbeat(
    stage: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The dead-man's switch's metric: one line each time the schedule's function runs,
    after its days (here three scored days: nothing started)."""
    for back in (1, 2, 3):
        day = date(2026, 11, back)
        put_marker(stage, day, partitions.started_marker(LAYOUT, day, EXECUTION) | SCORED)
    scheduled = check_event("2026-11-04T01:00:00Z")["event"]
    answer = function.handler(scheduled)
    assert {a["action"] for a in answer.values()} == {"skipped"}
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    beats = [line for line in lines if line["event"] == freshness.HEARTBEAT]
    assert beats == [
        {"event": "schedule-ran", "pipeline": PIPELINE, "fired": "2026-11-04", "days": 3, "runs": 1}
    ]
    assert [line["event"] for line in lines] == ["partition-run"] * 3 + ["schedule-ran"]


def test_the_heartbeat_of_every_run_keeps_the_dead_mans_switch_ok(
    stage: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The switch over a period: OK with the schedule's line in it, ALARM without (silence
    is breaching), whatever else the function printed."""
    function.handler(check_event("2026-11-04T01:00:00Z")["event"])
    printed = capsys.readouterr().out.splitlines()
    switch = local_freshness.heartbeat_alarm()
    assert state(switch, PIPELINE, printed)[0] == "OK"
    assert state(switch, f"{PIPELINE}-other", printed)[0] == "ALARM"
    without = [x for x in printed if '"schedule-ran"' not in x]
    assert state(switch, PIPELINE, without) == (
        "ALARM", "no ScheduleRuns datapoint in the period (missing data is breaching): ALARM"
    )  # fmt: skip


TFTEST = Path(__file__).parent / "terraform" / "stage.tftest.hcl"


def test_local_modes_heartbeat_period_is_the_one_the_template_derives() -> None:
    """tests/terraform/stage.tftest.hcl asserts the template's period for several schedules
    (a mock apply); the Python mirror, which the demo and the apply test use, agrees."""
    runs = re.findall(
        r'run "the_dead_mans_switch[^"]*" \{.*?schedule_expression = "([^"]+)".*?'
        r'\["schedule_silent"\]\.period == ([0-9]+)',
        TFTEST.read_text(),
        re.DOTALL,
    )
    assert len(runs) >= 3
    for expression, period in runs:
        assert local_freshness.heartbeat_period(expression) == int(period), expression
