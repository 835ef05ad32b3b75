"""The acceptance run's read-back, after the runs: what CloudWatch, the job logs and CloudTrail
say happened.

Every read is a plain read of the stage account over the run's window. On an emulator the
same reads are made (their requests are the real ones), but what they find settles nothing,
and CloudTrail's LookupEvents is not there at all: those checks need a real account.
CloudTrail shows management events about 5 to 15 minutes after they happen, so the last
minutes before the read may be missing from its evidence; the applies, an hour or more
earlier, are not.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from acceptance import deploy
from acceptance.flow import STAGE, Run
from acceptance.report import Verdict
from acceptance.runs import Stage

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch.type_defs import MetricDataQueryTypeDef

QUALITY = "BatchInference/Quality"
DENIED = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation",
          "Client.UnauthorizedOperation")  # fmt: skip
QUIET = ("OK", "INSUFFICIENT_DATA")


def observe(run: Run, stage: Stage, since: datetime, transform_job: str | None) -> None:
    """Every read-back check, each settled from what it read."""
    until = datetime.now(UTC)
    metric_filters(run, stage, since, until)
    job_logs(run, stage, transform_job)
    dashboard_search(run, stage, since, until)
    alarms(run)
    cloudtrail(run, since)


def _sum(run: Run, query: MetricDataQueryTypeDef, since: datetime, until: datetime) -> float:
    result = run.stage.client("cloudwatch").get_metric_data(
        MetricDataQueries=[query], StartTime=since, EndTime=until
    )["MetricDataResults"]
    return float(sum(value for series in result for value in series.get("Values", [])))


def metric_filters(run: Run, stage: Stage, since: datetime, until: datetime) -> None:
    """``metric-filters``: the rows Preprocess's log lines published, per pipeline."""
    query: MetricDataQueryTypeDef = {"Id": "rows", "MetricStat": {"Metric": {
        "Namespace": QUALITY, "MetricName": "RowsRead",
        "Dimensions": [{"Name": "PipelineName", "Value": stage.pipeline}]},
        "Period": 300, "Stat": "Sum"}}  # fmt: skip
    rows = _sum(run, query, since, until)
    run.verdicts.append(Verdict(
        "metric-filters", run.settle("passed" if rows > 0 else "failed"),
        f"{QUALITY} RowsRead for PipelineName={stage.pipeline} since {since.isoformat()}: "
        f"{rows:g} rows",
    ))  # fmt: skip


def job_logs(run: Run, stage: Stage, transform_job: str | None) -> None:
    """``handler-stdout`` and ``pipeline-name-in-transform``: the handlers' metric line in the
    scheduled day's Transform job log streams."""
    if transform_job is None:
        why = "no Transform job ran (the scheduled day did not run here)"
        run.verdicts += [Verdict(c, run.settle("failed"), why)
                         for c in ("handler-stdout", "pipeline-name-in-transform")]  # fmt: skip
        return
    events = (
        run.stage.client("logs")
        .filter_log_events(
            logGroupName="/aws/sagemaker/TransformJobs",
            logStreamNamePrefix=f"{transform_job}/",
            filterPattern='"batch-predictions"',
        )
        .get("events", [])
    )
    lines = [event["message"] for event in events]
    run.verdicts.append(Verdict(
        "handler-stdout", run.settle("passed" if lines else "failed"),
        f"{len(lines)} batch-predictions line(s) in {transform_job}'s streams"
        + (f", e.g. {lines[0][:200]}" if lines else ""),
    ))  # fmt: skip
    named = [line for line in lines if f'"pipeline":"{stage.pipeline}"' in line]
    run.verdicts.append(Verdict(
        "pipeline-name-in-transform", run.settle("passed" if named else "failed"),
        f"{len(named)} of {len(lines)} line(s) name {stage.pipeline}",
    ))  # fmt: skip


def search_expressions(body: dict[str, Any]) -> list[str]:
    """The dashboard's SEARCH expressions (the per-job series)."""
    return [
        item["expression"]
        for widget in body.get("widgets", [])
        for item in widget.get("properties", {}).get("metrics", [])
        for item in item
        if isinstance(item, dict) and "SEARCH(" in item.get("expression", "")
    ]


def dashboard_search(run: Run, stage: Stage, since: datetime, until: datetime) -> None:
    """``job-names-and-search``: each of the dashboard's SEARCH expressions finds data."""
    name = f"{stage.values['project_name']}-{STAGE}-batch-inference"
    body = json.loads(run.stage.client("cloudwatch").get_dashboard(DashboardName=name)[
        "DashboardBody"])  # fmt: skip
    expressions = search_expressions(body)
    if run.emulator:  # moto evaluates no SEARCH expression
        evidence = f"{len(expressions)} SEARCH expressions on {name}"
        run.verdicts.append(Verdict("job-names-and-search", "needs-real-account", evidence))
        return
    found = {
        expression: _sum(run, {"Id": f"s{i}", "Expression": expression, "Period": 300},
                         since, until) > 0
        for i, expression in enumerate(expressions)
    }  # fmt: skip
    empty = [e for e, data in found.items() if not data]
    run.verdicts.append(Verdict(
        "job-names-and-search", "passed" if expressions and not empty else "failed",
        f"{len(expressions) - len(empty)} of {len(expressions)} SEARCH expressions of {name} "
        "found data" + (f"; none for {empty}" if empty else ""),
    ))  # fmt: skip


def alarms(run: Run) -> None:
    """``alarms-quiet``: every alarm of the stage OK or without data after healthy runs."""
    prefix = f"{run.project}-{STAGE}-"
    pages = (
        run.stage.client("cloudwatch")
        .get_paginator("describe_alarms")
        .paginate(AlarmNamePrefix=prefix)
    )
    states = {a["AlarmName"]: a["StateValue"] for page in pages for a in page["MetricAlarms"]}
    loud = {name: state for name, state in states.items() if state not in QUIET}
    run.verdicts.append(Verdict(
        "alarms-quiet", run.settle("passed" if states and not loud else "failed"),
        f"{len(states)} alarms named {prefix}*" + (f"; not quiet: {loud}" if loud else
                                                    ": all OK or INSUFFICIENT_DATA"),
    ))  # fmt: skip


def cloudtrail(run: Run, since: datetime) -> None:
    """``kms-key-policies`` and ``deploy-role-rights``: the denied calls of the project's
    roles (KMS's) and of the deploy role (every service's) since the run began."""
    if run.emulator:  # moto records no CloudTrail event
        for check in ("kms-key-policies", "deploy-role-rights"):
            run.verdicts.append(Verdict(check, "needs-real-account", "no CloudTrail here"))
        return
    denied = denied_calls(run, since)
    roles = f"/{run.project}-{STAGE}-"
    kms = [d for d in denied if d["source"] == "kms.amazonaws.com" and roles in d["who"]]
    run.verdicts.append(Verdict(
        "kms-key-policies", "failed" if kms else "passed",
        f"CloudTrail since {since.isoformat()}: {len(kms)} denied KMS call(s) of the project's "
        f"roles {kms[:5]}",
    ))  # fmt: skip
    acting, arn = deploy.caller_is_deploy_role(run)
    if not acting:
        run.verdicts.append(Verdict(
            "deploy-role-rights", "skipped",
            f"the applies ran as {arn}, not the deploy role: run from the acceptance workflow",
        ))  # fmt: skip
        return
    role = f"assumed-role/{deploy.deploy_role(run)}/"
    mine = [d for d in denied if role in d["who"] and d["name"] != "PutRolePolicy"]
    run.verdicts.append(Verdict(
        "deploy-role-rights", "failed" if mine else "passed",
        f"CloudTrail since {since.isoformat()}: {len(mine)} denied call(s) of the deploy "
        f"role (the boundary check's own PutRolePolicy aside) {mine[:10]}",
    ))  # fmt: skip


def denied_calls(run: Run, since: datetime) -> list[dict[str, str]]:
    """Every call CloudTrail recorded as denied since ``since``: source, name, who, error."""
    pages = run.stage.client("cloudtrail").get_paginator("lookup_events").paginate(StartTime=since)
    found = []
    for page in pages:
        for event in page["Events"]:
            record = json.loads(event.get("CloudTrailEvent", "{}"))
            if record.get("errorCode") in DENIED:
                found.append({
                    "source": record.get("eventSource", ""),
                    "name": record.get("eventName", ""),
                    "who": record.get("userIdentity", {}).get("arn", ""),
                    "error": record.get("errorCode", ""),
                })  # fmt: skip
    return found
