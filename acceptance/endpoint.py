"""The acceptance run's endpoint step, when the stage file enables the real-time endpoint.

The applies made the endpoint (version 1) and moved it blue/green to version 2; this step
reads what that left, invokes it with the sample's rows, reads ModelLatency's p99 and the
data capture, and then makes one update fail on purpose: the endpoint is moved to a copy of
its own configuration with the template's deployment configuration kept
(``RetainDeploymentConfig``) while its errors alarm is held in ALARM, which SageMaker's auto
rollback must answer by going back to the configuration in service, with a reason. The copy
is removed by the teardown; the endpoint by ``terraform destroy``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from acceptance.catalogue import CHECKS
from acceptance.flow import STAGE, Run
from acceptance.report import Verdict
from acceptance.runs import SAMPLE, Stage
from common.s3_locations import parse_s3_uri

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient

VARIANT = "AllTraffic"  # the template's only variant
INVOCATIONS = 50
WAIT_SECONDS = 20 * 60  # metrics and captured data: minutes behind the invocations
ROLLBACK_SECONDS = 60 * 60  # the template's blue/green update: canary 5 min, bake, rollback
POLL_SECONDS = 20.0
NO_ENDPOINT = "the stage file enables no endpoint (set endpoint in --config to deploy one)"


def endpoint_name(run: Run) -> str:
    return f"{run.project}-{STAGE}-realtime"


def features(sample: bytes) -> bytes:
    """The sample's rows as the endpoint takes them: no header, no id (the first column)."""
    rows = sample.decode().splitlines()[1:]
    return "".join(row.split(",", 1)[1] + "\n" for row in rows if row).encode()


def wait_until(check: Callable[[], Any], seconds: float, poll: float = POLL_SECONDS) -> Any:
    """``check()`` until it returns something true, or its last answer after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        answer = check()
        if answer or time.monotonic() > deadline:
            return answer
        time.sleep(poll)


def endpoint(run: Run, stage: Stage, wait: float = WAIT_SECONDS) -> None:
    """Every endpoint check: skipped when the stage file has no endpoint."""
    spec = stage.values.get("endpoint")
    if not spec or not spec.get("enabled", True):
        run.verdicts += [Verdict(c.id, "skipped", NO_ENDPOINT) for c in CHECKS
                         if c.step == "endpoint"]  # fmt: skip
        return
    serverless = spec.get("serverless") is not None
    sagemaker, name = run.stage.client("sagemaker"), endpoint_name(run)
    described = sagemaker.describe_endpoint(EndpointName=name)
    status, config_name = described["EndpointStatus"], described["EndpointConfigName"]
    config = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
    evidence = f"{name}: {status} on {config_name}"
    if serverless:
        run.verdicts.append(Verdict("endpoint-config-key-grant", "skipped",
                                    "a serverless endpoint takes no volume key"))  # fmt: skip
        run.verdicts.append(Verdict(
            "serverless-without-isolation", run.settle("passed" if status == "InService"
                                                       else "failed"), evidence))  # fmt: skip
    else:
        keyed = config.get("KmsKeyId") == stage.values.get("kms_key_arn")
        run.verdicts.append(Verdict(
            "endpoint-config-key-grant",
            run.settle("passed" if status == "InService" and keyed else "failed"),
            f"{evidence}, KmsKeyId {config.get('KmsKeyId')}",
        ))  # fmt: skip
        run.verdicts.append(Verdict("serverless-without-isolation", "skipped",
                                    "the stage file's endpoint is instance-based"))  # fmt: skip
    since = datetime.now(UTC) - timedelta(minutes=1)
    invoke(run, name)
    latency(run, name, since, wait)
    capture(run, config, spec, wait)
    rollback(run, sagemaker, name, config)


def invoke(run: Run, name: str) -> None:
    """``INVOCATIONS`` requests of the sample's rows (what the metrics and capture need)."""
    runtime, body = run.stage.client("sagemaker-runtime"), features(SAMPLE.read_bytes())
    for _ in range(INVOCATIONS):
        runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=body)


def latency(run: Run, name: str, since: datetime, wait: float) -> None:
    """``model-latency-p99``: ModelLatency's p99 of the endpoint has data points."""
    cloudwatch = run.stage.client("cloudwatch")

    def points() -> list[float]:
        result = cloudwatch.get_metric_data(
            MetricDataQueries=[{"Id": "p99", "MetricStat": {"Metric": {
                "Namespace": "AWS/SageMaker", "MetricName": "ModelLatency",
                "Dimensions": [{"Name": "EndpointName", "Value": name},
                               {"Name": "VariantName", "Value": VARIANT}]},
                "Period": 60, "Stat": "p99"}}],
            StartTime=since, EndTime=datetime.now(UTC) + timedelta(minutes=1),
        )["MetricDataResults"]  # fmt: skip
        return [value for series in result for value in series.get("Values", [])]

    found = wait_until(points, 0 if run.emulator else wait)
    run.verdicts.append(Verdict(
        "model-latency-p99", run.settle("passed" if found else "failed"),
        f"AWS/SageMaker ModelLatency p99 of {name}/{VARIANT} after {INVOCATIONS} invocations: "
        f"{[round(v) for v in found or []]} (microseconds)",
    ))  # fmt: skip


def capture(run: Run, config: Any, spec: dict[str, Any], wait: float) -> None:
    """``data-capture``: objects under the configuration's capture destination."""
    destination = config.get("DataCaptureConfig", {}).get("DestinationS3Uri")
    if not destination:
        run.verdicts.append(Verdict("data-capture", "skipped",
                                    "the stage file's endpoint captures no data"))  # fmt: skip
        return
    bucket, prefix = parse_s3_uri(destination)
    s3 = run.stage.client("s3")

    def captured() -> int:
        return int(s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("KeyCount", 0))

    count = wait_until(captured, 0 if run.emulator else wait)
    run.verdicts.append(Verdict(
        "data-capture", run.settle("passed" if count else "failed"),
        f"{count} object(s) under {destination} after {INVOCATIONS} invocations "
        f"(sampling {spec.get('data_capture', {}).get('sampling_percentage', 10)} %)",
    ))  # fmt: skip


def rollback(run: Run, sagemaker: SageMakerClient, name: str, config: Any) -> None:
    """``rolled-back-update``: an update to a copy of the configuration, its errors alarm
    held in ALARM, must be rolled back to the configuration in service with a reason."""
    serving = config["EndpointConfigName"]
    copy = f"{serving[:54]}-rollback"
    run.made.add(f"endpoint configuration {copy}",
                 lambda: sagemaker.delete_endpoint_config(EndpointConfigName=copy))  # fmt: skip
    fields = ("ProductionVariants", "DataCaptureConfig", "KmsKeyId")
    sagemaker.create_endpoint_config(
        EndpointConfigName=copy, **{k: config[k] for k in fields if k in config}
    )
    sagemaker.update_endpoint(
        EndpointName=name, EndpointConfigName=copy, RetainDeploymentConfig=True
    )
    alarm = f"{run.project}-{STAGE}-endpoint-errors"
    cloudwatch = run.stage.client("cloudwatch")

    def settled() -> dict[str, Any] | None:
        described = sagemaker.describe_endpoint(EndpointName=name)
        if described["EndpointStatus"] == "Updating":  # held in ALARM until SageMaker acts
            cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM",
                                       StateReason="acceptance run: a failing update")  # fmt: skip
            return None
        return dict(described) if described["EndpointStatus"] != "RollingBack" else None

    ended = wait_until(settled, 0 if run.emulator else ROLLBACK_SECONDS)
    if ended is None:
        raise RuntimeError(f"{name} is still updating after {ROLLBACK_SECONDS / 60:g} minutes")
    back = ended["EndpointConfigName"] == serving and ended["EndpointStatus"] == "InService"
    reason = ended.get("FailureReason", "")
    run.verdicts.append(Verdict(
        "rolled-back-update", run.settle("passed" if back and reason else "failed"),
        f"{name} after an update to {copy} with {alarm} in ALARM: {ended['EndpointStatus']} on "
        f"{ended['EndpointConfigName']}, FailureReason {reason!r}",
    ))  # fmt: skip
