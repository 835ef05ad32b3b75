"""The schedule's function against the emulator: S3 and SageMaker through boto3.

Events are the documented shape of EventBridge's "Scheduled Event". moto's executions
succeed the moment they start and write nothing, so a run looked at again is a success with
zero rows; what is checked is the days, the start requests and the markers.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
import zipfile
from datetime import date
from pathlib import Path
from typing import Any

import boto3
import pytest

from lambdas import package
from lambdas.start_scheduled_run import handler as function
from local_mode import sandbox
from local_mode.emulator import Emulator
from stage_runtime import partitions
from tests.provider_requests import Request, problems
from tests.registry import create_empty_pipeline, keep_executions_running

BUCKET = "stage-artifacts"
INPUT = f"s3://{BUCKET}/churn/batch-inference/input/"
OUTPUT = f"s3://{BUCKET}/churn/batch-inference/output"
PIPELINE = "churn-preprod-batch-inference"
PARAMETERS = {"ModelName": "churn-models-preprod-v3", "ProcessingInstanceCount": "1"}
EVENT_ID = "89d1a02d-5ec7-412e-82f5-13505f849b41"
LAYOUT = partitions.Layout(INPUT, OUTPUT)
EXECUTION = f"arn:aws:sagemaker:eu-west-1:123456789012:pipeline/{PIPELINE}/execution/x"


@pytest.fixture
def stage(aws: Emulator, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The bucket, the pipeline and the function's environment (two days of lookback)."""
    sandbox.create_bucket(aws, None, BUCKET)
    sagemaker = boto3.client("sagemaker")
    create_empty_pipeline(sagemaker, PIPELINE)
    for name, value in {
        "PIPELINE_NAME": PIPELINE,
        "PIPELINE_PARAMETERS": json.dumps(PARAMETERS),
        "INPUT_DATA_URL": INPUT,
        "OUTPUT_DATA_URL": OUTPUT,
        "PARTITION_FORMAT": partitions.DEFAULT_FORMAT,
        "LOOKBACK_DAYS": "2",
    }.items():
        monkeypatch.setenv(name, value)
    return {"s3": boto3.client("s3"), "sagemaker": sagemaker}


def scheduled(time: str, event_id: str = EVENT_ID) -> dict[str, Any]:
    """EventBridge's event for a schedule rule (documented shape)."""
    return {
        "version": "0",
        "id": event_id,
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": time,
        "region": "eu-west-1",
        "resources": ["arn:aws:events:eu-west-1:123456789012:rule/churn-preprod-batch-inference"],
        "detail": {},
    }


def put_day(s3: Any, day: date, name: str, body: bytes) -> None:
    bucket, prefix = partitions.parse_s3_uri(LAYOUT.input_uri(day))
    s3.put_object(Bucket=bucket, Key=f"{prefix}{name}", Body=body)


def starts(sent: list[Request]) -> list[Request]:
    return [r for r in sent if r.operation == "StartPipelineExecution"]


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[Request]:
    """Every SageMaker request the function's clients send, for botocore's model check."""
    requests: list[Request] = []
    real_session = function.aws_sessions.session

    def recording_session(*args: Any, **kwargs: Any) -> boto3.Session:
        session = real_session(*args, **kwargs)

        def record(params: dict, model: Any, **_: Any) -> None:
            requests.append(Request("sagemaker", model.name, dict(params)))

        session.events.register("before-parameter-build.sagemaker", record)
        return session

    monkeypatch.setattr(function.aws_sessions, "session", recording_session)
    return requests


def test_the_last_whole_day_and_the_days_before_it_are_each_handled_once(
    stage: dict, sent: list[Request], capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The schedule fires on 4 November: 1 to 3 November are looked at, not the 4th, which
    is still being written. The 1st and 3rd hold data, the 2nd only _SUCCESS: two runs and
    an empty day. The same event again (a retry): the runs have ended, their markers are
    completed, nothing starts, the empty day is not counted twice. The next night: the 2nd,
    whose data arrived late, is scored."""
    s3 = stage["s3"]
    put_day(s3, date(2026, 11, 1), "a.csv", b"record_id\nr1\n")
    put_day(s3, date(2026, 11, 2), "_SUCCESS", b"")
    put_day(s3, date(2026, 11, 3), "a.csv", b"record_id\nr1\n")
    put_day(s3, date(2026, 11, 4), "a.csv", b"record_id\nr1\n")  # today: not yet
    keep_executions_running(monkeypatch)
    answer = function.handler(scheduled("2026-11-04T01:00:00Z"))
    assert {day: a["action"] for day, a in answer.items()} == {
        "2026-11-01": "started", "2026-11-02": "empty", "2026-11-03": "started",
    }  # fmt: skip
    requests = starts(sent)
    assert [problems(r) for r in requests] == [[], []]
    # the day's state makes the token: any starter that saw no marker gets the same one
    assert [r.body["ClientRequestToken"] for r in requests] == [
        partitions.start_token(
            PIPELINE,
            f"dt=2026-11-0{day}",
            partitions.no_marker_state()
            + "|"
            + partitions.inspect_input(s3, LAYOUT.input_uri(date(2026, 11, day)))[1],
        )
        for day in (1, 3)
    ]
    for request, day in zip(requests, (date(2026, 11, 1), date(2026, 11, 3)), strict=True):
        parameters = {p["Name"]: p["Value"] for p in request.body["PipelineParameters"]}
        assert parameters == {
            **PARAMETERS,
            "InputDataUrl": LAYOUT.input_uri(day),
            "OutputDataUrl": LAYOUT.output_uri(day),
            "PredictionDay": day.isoformat(),  # the predictions table's partition
        }
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    heartbeat = {"event": "schedule-ran", "pipeline": PIPELINE, "fired": "2026-11-04", "days": 3}
    assert lines.pop() == heartbeat | {"runs": 1}  # after the days: the dead-man's switch
    assert [(x["event"], x["pipeline"], x["date"], x["action"], x["empty"]) for x in lines] == [
        ("partition-run", PIPELINE, "2026-11-01", "started", 0),
        ("partition-run", PIPELINE, "2026-11-02", "empty", 1),
        ("partition-run", PIPELINE, "2026-11-03", "started", 0),
    ]
    markers = {
        day: partitions.read_marker(s3, LAYOUT.marker_uri(date(2026, 11, day))) for day in (1, 2, 3)
    }
    assert [m["status"] for m in markers.values() if m] == ["Executing", "Empty", "Executing"]

    # the same event delivered again, after the runs ended (moto: Succeeded)
    backend_executions(stage, "Succeeded")
    again = function.handler(scheduled("2026-11-04T01:00:00Z"))
    assert [a["action"] for a in again.values()] == ["skipped", "empty", "skipped"]
    assert len(starts(sent)) == 2
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert lines.pop() == heartbeat | {"runs": 1}  # each delivery is a run of the schedule
    assert [x["empty"] for x in lines] == [0, 0, 0]  # the 2nd was counted once, above
    done = partitions.read_marker(s3, LAYOUT.marker_uri(date(2026, 11, 3)))
    assert done is not None and done["status"] == "Succeeded" and done["rows_scored"] == 0

    # the next night: the 2nd's data arrived late; the 4th is whole now
    put_day(s3, date(2026, 11, 2), "late.csv", b"record_id\nr1\n")
    nightly = function.handler(scheduled("2026-11-05T01:00:00Z", event_id=str(uuid.uuid4())))
    assert {day: a["action"] for day, a in nightly.items()} == {
        "2026-11-02": "started", "2026-11-03": "skipped", "2026-11-04": "started",
    }  # fmt: skip


def backend_executions(stage: dict, status: str) -> None:
    """Set every execution of the pipeline to ``status`` (moto runs no job that would)."""
    import moto.sagemaker.models

    from local_mode.emulator import REGION

    for account in moto.sagemaker.models.sagemaker_backends.values():
        backend = account.get(REGION)
        if backend is not None and PIPELINE in backend.pipelines:
            for execution in backend.pipelines[PIPELINE].pipeline_executions.values():
                execution.pipeline_execution_status = status


def test_a_failed_night_is_retried_by_the_next_schedule(
    stage: dict, sent: list[Request], monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = stage["s3"]
    put_day(s3, date(2026, 11, 3), "a.csv", b"record_id\nr1\n")
    keep_executions_running(monkeypatch)
    function.handler(scheduled("2026-11-04T01:00:00Z"))
    backend_executions(stage, "Failed")
    nightly = function.handler(scheduled("2026-11-05T01:00:00Z", event_id=str(uuid.uuid4())))
    assert nightly["2026-11-03"]["action"] == "started"
    assert len(starts(sent)) == 2
    marker = partitions.read_marker(s3, LAYOUT.marker_uri(date(2026, 11, 3)))
    assert marker is not None and marker["status"] == "Executing"


def test_a_day_that_cannot_be_handled_does_not_stop_the_others(
    stage: dict, sent: list[Request]
) -> None:
    """A marker that is not ours on the 2nd: the 1st and 3rd are still handled, then the
    invocation fails naming the 2nd (retried, then the alarmed dead-letter queue)."""
    s3 = stage["s3"]
    for day in (1, 2, 3):
        put_day(s3, date(2026, 11, day), "a.csv", b"record_id\nr1\n")
    bucket, key = partitions.parse_s3_uri(LAYOUT.marker_uri(date(2026, 11, 2)))
    s3.put_object(Bucket=bucket, Key=key, Body=b"not ours")
    with pytest.raises(function.DaysNotHandled, match=r"^2026-11-02: ValueError: .* marker"):
        function.handler(scheduled("2026-11-04T01:00:00Z"))
    assert len(starts(sent)) == 2
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"not ours"


@pytest.mark.parametrize(
    "marker",
    [
        {"status": ["Executing"], "execution_arn": None},
        {"status": {"Executing": 1}, "execution_arn": None},
        {"status": 7, "execution_arn": "arn:aws:sagemaker:eu-west-1:1:pipeline/p/execution/x"},
        {
            "status": "Bogus",
            "execution_arn": "arn:aws:sagemaker:eu-west-1:1:pipeline/p/execution/x",
        },
        {"status": "Failed", "execution_arn": ["arn"]},
    ],
    ids=["status-list", "status-object", "status-number", "status-unknown", "arn-list"],
)
def test_a_broken_marker_in_our_format_is_that_days_error_not_the_others(
    stage: dict, sent: list[Request], marker: dict
) -> None:
    """Our format, a status or execution that cannot be one: the 1st and 3rd are still
    handled, the invocation then fails naming the 2nd and what is wrong; the marker is kept."""
    s3 = stage["s3"]
    for day in (1, 2, 3):
        put_day(s3, date(2026, 11, day), "a.csv", b"record_id\nr1\n")
    bucket, key = partitions.parse_s3_uri(LAYOUT.marker_uri(date(2026, 11, 2)))
    body = json.dumps({"format": partitions.MARKER_FORMAT, **marker}).encode()
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    with pytest.raises(function.DaysNotHandled, match=r"^2026-11-02: ValueError: .* broken .*"):
        function.handler(scheduled("2026-11-04T01:00:00Z"))
    assert len(starts(sent)) == 2
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body


@pytest.mark.parametrize(
    ("execution_arn", "why"),
    [
        (
            f"arn:aws:sagemaker:eu-west-1:123456789012:pipeline/{PIPELINE}/execution/gone",
            "SageMaker does not know the execution",
        ),
        (None, "the marker said Executing but named no execution"),
        ("", "the marker said Executing but named no execution"),
    ],
    ids=["unknown-execution", "no-execution", "empty-execution"],
)
def test_an_executing_marker_of_no_known_run_does_not_hold_its_day(
    stage: dict, sent: list[Request], capsys, execution_arn: str | None, why: str
) -> None:
    """Nothing will ever end a run SageMaker does not know (or a marker naming none): the
    day is started again, the line that starts it saying why."""
    s3 = stage["s3"]
    day = date(2026, 11, 3)
    put_day(s3, day, "a.csv", b"record_id\nr1\n")
    stuck = partitions.started_marker(LAYOUT, day, "x") | {"execution_arn": execution_arn}
    partitions.write_marker(s3, LAYOUT.marker_uri(day), stuck, None)
    answer = function.handler(scheduled("2026-11-04T01:00:00Z"))
    assert answer["2026-11-03"]["action"] == "started"
    assert len(starts(sent)) == 1
    (line,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("2026-11-03")]
    assert "(the last run failed: " in line and why in line
    marker = partitions.read_marker(s3, LAYOUT.marker_uri(day))
    assert marker is not None and marker["execution_arn"] == answer["2026-11-03"]["execution_arn"]


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ([], "not a scheduled event: a list, no object"),
        ("text", "not a scheduled event: a str, no object"),
        (None, "not a scheduled event: a NoneType, no object"),
        (scheduled("0001-01-01T01:00:00Z"), "leaves no 3 whole days before it (before year 1)"),
        (scheduled("0001-01-03T23:00:00Z"), "leaves no 3 whole days before it"),
        (scheduled("0001-01-01T00:30:00+01:00"), "is before year 1 in UTC"),
        ({**scheduled("2026-11-03T01:00:00Z"), "source": "aws.s3"}, "not a scheduled event"),
        ({**scheduled("2026-11-03T01:00:00Z"), "time": "yesterday"}, "is not an ISO 8601"),
        ({**scheduled("2026-11-03T01:00:00Z"), "time": "2026-11-03T01:00:00"}, "no time zone"),
        ({**scheduled("2026-11-03T01:00:00Z"), "id": ""}, "needs its id and time"),
    ],
)
def test_an_event_that_is_not_the_schedules_starts_nothing(
    stage: dict, sent: list[Request], event: dict, message: str
) -> None:
    put_day(stage["s3"], date(2026, 11, 3), "a.csv", b"record_id\nr1\n")
    with pytest.raises(function.NotAScheduledEvent, match=re.escape(message)):
        function.handler(event)
    assert starts(sent) == []


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("LOOKBACK_DAYS", "40", "LOOKBACK_DAYS must be a whole number from 0 to 31"),
        ("LOOKBACK_DAYS", "-1", "LOOKBACK_DAYS must be a whole number"),
        ("LOOKBACK_DAYS", "\u00b2", "LOOKBACK_DAYS must be a whole number from 0 to 31, got '"),
        ("LOOKBACK_DAYS", "1\u00b2", "LOOKBACK_DAYS must be a whole number from 0 to 31"),
        ("LOOKBACK_DAYS", "\u0663", "LOOKBACK_DAYS must be a whole number from 0 to 31"),
        ("LOOKBACK_DAYS", "9" * 5000, "LOOKBACK_DAYS must be a whole number from 0 to 31"),
        ("PARTITION_FORMAT", "dt=%Y", "partition_format: 'dt=%Y' must hold each of"),
        ("PIPELINE_PARAMETERS", "[]", "PIPELINE_PARAMETERS must be a JSON object of strings"),
        ("OUTPUT_DATA_URL", "", "OUTPUT_DATA_URL is required"),
    ],
)
def test_a_bad_configuration_fails_the_invocation_by_name(
    stage: dict, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(function.ConfigError, match=message):
        function.handler(scheduled("2026-11-03T01:00:00Z"))


@pytest.mark.parametrize(
    "source", [package.SCHEDULE_HANDLER, package.UPLOAD_HANDLER], ids=["schedule", "upload"]
)
def test_the_zip_runs_on_its_own(tmp_path: Path, source: Path) -> None:
    """A stage function's zip holds its handler and the runtime packages whole, and nothing
    else: unpacked alone, a fresh interpreter imports the handler and every module of the
    zip from it, each module it loads is the zip's, and besides the standard library it
    loads only boto3 and its dependencies (what the Lambda runtime provides)."""
    archive = tmp_path / "function.zip"
    digest = package.build_zip(archive, source)
    with zipfile.ZipFile(archive) as opened:
        names = sorted(opened.namelist())
        opened.extractall(tmp_path / "unpacked")
    entries = [name for name, _ in package.ENTRIES.get(source, ())]
    modules = package.runtime_modules()
    assert {m.split("/")[0] for m in modules} == set(package.RUNTIME_PACKAGES)
    assert names == sorted(["handler.py", *entries, *modules, *package.RUNTIME_DATA])
    assert package.build_zip(tmp_path / "again.zip", source) == digest  # reproducible
    dotted = [m[:-3].replace("/", ".").removesuffix(".__init__") for m in modules]
    probe = (
        "import sys, importlib, sysconfig; root = sys.argv[1]; sys.path[:0] = [root]; "
        "import handler; [importlib.import_module(e) for e in sys.argv[2:]]; "
        "ours = [m.__file__ for n, m in sys.modules.items() if n.split('.')[0] in "
        "('handler', 'common', 'stage_runtime', 'pipelines', 'lambdas', *sys.argv[2:])]; "
        "assert all(f.startswith(root) for f in ours), ours; "
        "site = sysconfig.get_paths()['purelib']; "
        "extra = {n.split('.')[0] for n, m in list(sys.modules.items()) "
        "if (getattr(m, '__file__', None) or '').startswith(site)}; "
        "allowed = {'boto3', 'botocore', 's3transfer', 'jmespath', 'dateutil', 'urllib3', 'six', "
        "'certifi', '_distutils_hack'}; "
        "assert extra <= allowed, sorted(extra - allowed); "
        # a run's cost reads the price table the zip carries beside its reader
        "from stage_runtime import prices; assert prices.PRICES.is_relative_to(root); "
        "assert prices.load_table()['prices']; "
        "print(handler.scheduled_day({'source': 'aws.events', 'detail-type': "
        "'Scheduled Event', 'id': 'x', 'time': '2026-11-03T23:30:00-02:00'})[0] "
        "if hasattr(handler, 'scheduled_day') else 'imported')"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            probe,
            str(tmp_path / "unpacked"),
            *(e[:-3] for e in entries),
            *dotted,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # the schedule's: the scheduled time's day in UTC
    expected = "2026-11-04" if source == package.SCHEDULE_HANDLER else "imported"
    assert done.stdout.strip() == expected


def test_a_day_of_an_input_outside_the_stage_bucket_is_read_and_started_there(
    aws: Emulator, stage: dict, sent: list[Request], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A data lake's prefix (infra/target-account's external_inputs, issue #31): the day's
    data is looked for in that bucket, the run reads its partition there, and the marker
    stays under the stage's outputs."""
    lake = partitions.Layout("s3://data-lake/churn/scoring", OUTPUT)
    sandbox.create_bucket(aws, None, "data-lake")
    monkeypatch.setenv("INPUT_DATA_URL", lake.input_data_url)
    bucket, prefix = partitions.parse_s3_uri(lake.input_uri(date(2026, 11, 3)))
    stage["s3"].put_object(Bucket=bucket, Key=f"{prefix}a.csv", Body=b"record_id\nr1\n")
    answer = function.handler(scheduled("2026-11-04T01:00:00Z"))
    assert {day: a["action"] for day, a in answer.items()} == {
        "2026-11-01": "empty", "2026-11-02": "empty", "2026-11-03": "started",
    }  # fmt: skip
    (request,) = starts(sent)
    assert problems(request) == []
    parameters = {p["Name"]: p["Value"] for p in request.body["PipelineParameters"]}
    assert parameters["InputDataUrl"] == "s3://data-lake/churn/scoring/dt=2026-11-03/"
    assert parameters["OutputDataUrl"] == LAYOUT.output_uri(date(2026, 11, 3))
    assert partitions.read_marker(stage["s3"], lake.marker_uri(date(2026, 11, 3))) is not None
