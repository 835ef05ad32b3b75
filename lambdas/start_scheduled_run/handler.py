"""Start the stage's pipeline on the partition of each scheduled day, exactly once.

The stage's schedule rule invokes ``handler`` with EventBridge's "Scheduled Event", whose
``time`` is the time the schedule fired for (a late or retried delivery keeps it). The day
before it (UTC) — the last whole day: a nightly run at 02:00 scores yesterday, never a day
still being written — and the ``LOOKBACK_DAYS`` days before that are handled as the backfill
command handles days (``stage_runtime/runs.py``, shipped in this zip): a day already
scored or still running is skipped, a day without CSV data is marked empty (zero rows, no
run), any other day — new, or whose last run failed or stopped — gets a run on its
partitions; the marker of a run that has ended since is completed on the way. So a failed
night is retried by the next schedule, and a day whose data lands late is scored once it is
there (while it is in the window).

The start request's ``ClientRequestToken`` is made of the pipeline, the day and the day's
marker as it was read: an event delivered twice, or the schedule and a backfill at the same
time, start one run. One JSON line per day (``"event": "partition-run"``) feeds the stage's
log metric filter (days found empty). A day that cannot be handled does not stop the others;
the invocation then fails: Lambda retries the event twice and then sends it to the
schedule's dead-letter queue, which is alarmed. Each invocation also prints one heartbeat
line (``"event": "schedule-ran"``): the stage's dead-man's switch alarms when they stop.

The stage's deadline rule invokes the same function with ``{"check": "freshness", "event":
<its Scheduled Event>}``: then the function only reads the due day's marker and prints its
verdict (``stage_runtime/freshness.py``, ``check_freshness``), starting and writing nothing.

With the stage's model-quality settings (``QUALITY_PIPELINE_NAME``...), it then looks at the
``LABEL_LOOKBACK_DAYS`` days before the scheduled one for scored days whose delayed labels
have landed, and starts the model-quality pipeline on each, once per upload of its labels
(``stage_runtime/model_quality.py``).

Standard library, boto3 (the Lambda runtime's) and the ``common`` and ``stage_runtime``
packages the deployment zip carries (``lambdas/package.py``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from common import aws_sessions
from stage_runtime import (
    freshness,
    function_environment,
    model_quality,
    partitions,
    run_cost,
    runs,
)
from stage_runtime.function_environment import ConfigError as ConfigError  # tests, callers

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)

MAX_LOOKBACK_DAYS = 31
EVENT_SOURCE = "aws.events"
EVENT_TYPE = "Scheduled Event"


class NotAScheduledEvent(ValueError):
    """The event is not the schedule's: nothing is started for it."""


@dataclass(frozen=True)
class Config:
    """The function's configuration, from the environment the stage template sets."""

    pipeline_name: str
    parameters: dict[str, str]
    layout: partitions.Layout
    kms_key_arn: str | None
    lookback_days: int
    # the stage's prices over the shipped table: a run's cost when a look completes its marker
    instance_prices: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Config:
        env = os.environ if environ is None else environ

        def required(name: str) -> str:
            return function_environment.required(env, name)

        parameters = function_environment.pipeline_parameters(env)
        lookback = function_environment.whole_number(env, "LOOKBACK_DAYS", 0, MAX_LOOKBACK_DAYS)
        try:
            instance_prices = run_cost.parse_instance_prices(env.get(run_cost.PRICES_VARIABLE))
        except ValueError as error:
            raise function_environment.ConfigError(str(error)) from None
        return cls(
            pipeline_name=required("PIPELINE_NAME"),
            parameters=parameters,
            layout=function_environment.layout(env),
            kms_key_arn=env.get("KMS_KEY_ARN") or None,
            lookback_days=lookback,
            instance_prices=instance_prices,
        )

    def tfvars(self) -> dict[str, Any]:
        """What the backfill code reads of a stage's tfvars."""
        return {
            "pipeline_name": self.pipeline_name,
            "input_data_url": self.layout.input_data_url,
            "output_data_url": self.layout.output_data_url,
            "partition_format": self.layout.partition_format,
            "kms_key_arn": self.kms_key_arn,
            "instance_prices": self.instance_prices,
        }


def scheduled_day(event: Any) -> tuple[date, str]:
    """The scheduled event's day (UTC) and id, or ``NotAScheduledEvent``."""
    if not isinstance(event, Mapping):
        raise NotAScheduledEvent(f"not a scheduled event: a {type(event).__name__}, no object")
    if event.get("source") != EVENT_SOURCE or event.get("detail-type") != EVENT_TYPE:
        raise NotAScheduledEvent(
            f"not a scheduled event (source {event.get('source')!r}, "
            f"detail-type {event.get('detail-type')!r})"
        )
    event_id, when = event.get("id"), event.get("time")
    if not isinstance(event_id, str) or not event_id or not isinstance(when, str):
        raise NotAScheduledEvent("a scheduled event needs its id and time")
    try:
        moment = datetime.fromisoformat(when.replace("Z", "+00:00"))
    except ValueError:
        raise NotAScheduledEvent(f"time {when!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise NotAScheduledEvent(f"time {when!r} has no time zone")
    try:
        return moment.astimezone(UTC).date(), event_id
    except OverflowError:  # 0001-01-01T00:30+01:00 is in year 0 in UTC
        raise NotAScheduledEvent(f"time {when!r} is before year 1 in UTC") from None


def window(day: date, lookback_days: int) -> list[date]:
    """The ``lookback_days + 1`` days before ``day``, oldest first; ``NotAScheduledEvent``
    when they would start before 0001-01-01 (no schedule fires then)."""
    if day.toordinal() - (lookback_days + 1) < date.min.toordinal():
        raise NotAScheduledEvent(
            f"the scheduled day {day} leaves no {lookback_days + 1} whole days before it "
            "(before year 1): not a real schedule's event"
        )
    return [day - timedelta(days=n) for n in range(lookback_days + 1, 0, -1)]


class DaysNotHandled(RuntimeError):
    """A day of the window could not be handled (the others were): the invocation fails, so
    Lambda retries it and then sends it to the alarmed dead-letter queue."""


def handler(event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
    """EventBridge entry point: the day before the scheduled one (the last whole day) and
    ``LOOKBACK_DAYS`` days before that, oldest first; or, for the deadline rule's event, the
    freshness check of the day due (``check_freshness``)."""
    if isinstance(event, Mapping) and event.get("check") == freshness.CHECK:
        return check_freshness(FreshnessConfig.from_environment(), aws_sessions.session(), event)
    # the project's one retry policy
    return run_schedule(Config.from_environment(), aws_sessions.session(), event)


def run_schedule(config: Config, session: Any, event: Any) -> dict[str, Any]:
    """The scheduled event's days, each handled once (local mode calls it with the
    emulator's session, as it calls ``check_freshness``)."""
    day, _ = scheduled_day(event)
    days = window(day, config.lookback_days)
    results = runs.run_days(
        config.tfvars(), session, days, parameters=config.parameters, metric_lines=True
    )
    # the dead-man's switch: it ran (its days' failures have their own alarm)
    print(freshness.heartbeat_line(config.pipeline_name, day, len(results)), flush=True)
    errors = [f"{r.day}: {r.detail}" for r in results if r.action == "error"]
    evaluated = evaluate_labelled_days(day, session)
    errors += [f"{d} (model quality): {r['detail']}" for d, r in evaluated.items() if "detail" in r]
    if errors:
        raise DaysNotHandled("; ".join(errors))
    answer = {str(r.day): {"action": r.action, "execution_arn": r.execution_arn} for r in results}
    return answer | ({"model_quality": evaluated} if evaluated else {})


def evaluate_labelled_days(
    day: date, session: Any, environ: Mapping[str, str] | None = None
) -> dict:
    """The scored days of the ``LABEL_LOOKBACK_DAYS`` before ``day`` whose delayed labels
    have landed since: each evaluated once per upload of them (stage_runtime/model_quality)."""
    env = os.environ if environ is None else environ
    stage = model_quality.stage_of(env)
    if stage is None:
        return {}
    lookback = function_environment.whole_number(
        env, "LABEL_LOOKBACK_DAYS", 1, model_quality.MAX_LABEL_LOOKBACK_DAYS
    )
    return model_quality.run_days(
        session.client("s3"), session.client("sagemaker"), stage, window(day, lookback - 1)
    )


@dataclass(frozen=True)
class FreshnessConfig:
    """What the freshness check reads of the function's environment."""

    pipeline_name: str
    layout: partitions.Layout
    score_by_hours: int

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> FreshnessConfig:
        env = os.environ if environ is None else environ
        low, high = freshness.SCORE_BY_HOURS
        return cls(
            pipeline_name=function_environment.required(env, "PIPELINE_NAME"),
            layout=function_environment.layout(env),
            score_by_hours=function_environment.whole_number(env, "SCORE_BY_HOURS", low, high),
        )


def check_freshness(
    config: FreshnessConfig, session: Any, event: Mapping[str, Any]
) -> dict[str, Any]:
    """The deadline rule's check: the day whose deadline it fired at, from its marker.

    Reads only (the marker; without one, the day's input); prints the day's line for the
    stage's freshness metrics. The fire time is the wrapped Scheduled Event's, so a late or
    retried delivery checks the same day."""
    fired, _ = scheduled_day(event.get("event"))
    if fired.toordinal() - 1 - config.score_by_hours // 24 < date.min.toordinal():
        raise NotAScheduledEvent(f"no day is due on {fired} (before year 1)")
    day = freshness.due_day(fired, config.score_by_hours)
    verdict = freshness.check_day(session.client("s3"), config.layout, day)
    late = "late" if verdict.late else "in time"
    print(f"{day}: {late}: {verdict.reason}: {verdict.detail}", flush=True)
    print(freshness.line(config.pipeline_name, verdict, config.score_by_hours), flush=True)
    return {"date": str(day), "late": verdict.late, "reason": verdict.reason,
            "detail": verdict.detail}  # fmt: skip
