"""A shadow run: a candidate model scores a stage's last scored days beside the champion.

    python -m pipelines.shadow_run --stage prod --candidate-model NAME --candidate-version N \\
        [--days 3] [--local] [--tfvars build/prod.tfvars.json] [--out build/shadow-prod] \\
        [--summary FILE] [--max-flip-rate 0.05] [--threshold 0.5]

For each of the stage's last ``--days`` days whose marker says ``Succeeded`` (the champion
scored it), the stage's deployed pipeline runs again on that day's input, with the same
definition, Preprocess and gate, but with ``ModelName`` the candidate's SageMaker Model and
every output under ``<output_data_url>/_shadow/v<N>/``: its run folder there, and Publish's
rows in ``<output_data_url>/_shadow/v<N>/table/`` (``PredictionsTableUrl``), which no table,
schedule or reader looks at. It writes no marker: the day's marker names the champion's run,
so the run-outcome function leaves it alone too. What the schedule runs does not change.

Then each day's answers are compared with the champion's own rows for that day (the stage's
table, the execution the marker names): ``pipelines/shadow_comparison.py``. Written to
``--out``: ``shadow.json`` (every day's comparison, both runs' gate verdicts and
executions), ``shadow.html`` (``pipelines/shadow_page.py``), and the Markdown summary, also
appended to ``--summary`` (the deploy workflow's job summary).

Exit codes: 0 compared; 3 a shadow run failed, or a day's decisions changed more often than
``--max-flip-rate``; 2 bad arguments or stage inputs (no scored day, a candidate model that
does not exist); 1 an AWS error.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import botocore.exceptions
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from common import aws_sessions
from common.exit_codes import AWS_ERROR, EXECUTION_FAILED, USAGE_ERROR, CommandFailed
from common.files import write_text_atomically
from common.s3_locations import parse_s3_uri
from pipelines import shadow_page, smoke
from pipelines.shadow_comparison import ComparisonError, Decision, compare
from stage_runtime import partitions
from stage_runtime.runs import layout_of, schedule_parameters

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SHADOW = "_shadow"  # <output_data_url>/_shadow/v<N>/: everything a shadow run writes
DEFAULT_DAYS = 3
MAX_DAYS = 14
DEFAULT_THRESHOLD = 0.5
TABLE_FORMATS = (".csv", ".parquet")


class ShadowError(CommandFailed):
    """The shadow run cannot go on as asked; ``exit_code`` says why (usage by default)."""


def shadow_root(tfvars: dict[str, Any], version: int) -> str:
    return f"{tfvars['output_data_url'].rstrip('/')}/{SHADOW}/v{version}"


def scored_days(s3: S3Client, layout: partitions.Layout, count: int) -> list[dict[str, Any]]:
    """The markers of the last ``count`` days the champion scored (``Succeeded``), oldest
    first. Upload markers are not days; a marker that is not ours is an error, as for the
    schedule."""
    bucket, prefix = parse_s3_uri(layout.partition_marker_uri("x").rsplit("/", 1)[0] + "/")
    found: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            relative = item["Key"][len(prefix) :]
            if relative.startswith(f"{partitions.UPLOADS}/") or not relative.endswith(".json"):
                continue
            marker = partitions.read_marker(s3, f"s3://{bucket}/{item['Key']}")
            if marker is not None and marker.get("status") in partitions.DONE:
                found.append(marker)
    found.sort(key=lambda marker: marker["date"])
    return found[-count:]


def shadow_parameters(
    tfvars: dict[str, Any], marker: dict[str, Any], model: str, version: int
) -> dict[str, str]:
    """The schedule's parameters on the day's input, with the candidate's model and every
    output under the shadow prefix."""
    root = shadow_root(tfvars, version)
    return schedule_parameters(tfvars, marker["input"]) | {
        "ModelName": model,
        "ModelVersion": str(version),
        "OutputDataUrl": f"{root}/{marker['partition']}",
        "PredictionsTableUrl": f"{root}/table/",
        "PredictionDay": marker["date"],
    }


def read_day(s3: S3Client, table_url: str, day: str, execution_id: str, id_column: str) -> pa.Table:
    """One execution's rows of a day in a predictions table (Publish's files for it)."""
    bucket, prefix = parse_s3_uri(f"{table_url.rstrip('/')}/day={day}/")
    parts = []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"{prefix}{execution_id}-"
    ):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            if item["Key"].endswith(".parquet"):
                parts.append(pq.read_table(io.BytesIO(body)))
            elif item["Key"].endswith(".csv"):
                options = pacsv.ConvertOptions(column_types={id_column: pa.string()})
                parts.append(pacsv.read_csv(io.BytesIO(body), convert_options=options))
    if not parts:
        raise ShadowError(
            f"no rows of execution {execution_id} under {table_url}day={day}/: was the day "
            "published (its Publish step), or has it expired?",
            EXECUTION_FAILED,
        )
    return pa.concat_tables(parts, promote_options="default")


def _gate(s3: S3Client, output_uri: str, execution_id: str) -> str:
    """The run's gate verdict (the worst of its Preprocess instances')."""
    bucket, prefix = parse_s3_uri(output_uri)
    run = f"{prefix}/{execution_id}/" if prefix else f"{execution_id}/"
    order = {"passed": 0, "warned": 1, "failed": 2}
    verdicts = []
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"{run}preprocess/summary/"
    )
    for page in pages:
        for item in page.get("Contents", []):
            summary = json.loads(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
            gate = (summary.get("quality") or {}).get("gate") or {}
            if gate.get("verdict"):
                verdicts.append(gate["verdict"])
    return max(verdicts, key=lambda v: order.get(v, 0)) if verdicts else "n/a"


def decision_of(tfvars: dict[str, Any], threshold: float) -> tuple[list[str], Decision]:
    """The answer columns (the table's, after the id) and how the first one decides: a
    score against ``threshold``, or a label."""
    columns = tfvars.get("predictions_table_columns") or []
    answers = [c for c in columns[1:] if c["name"] not in ("model_version", "execution_id")]
    if not answers:
        raise ShadowError("the stage's tfvars name no answer column (predictions_table_columns)")
    first = answers[0]
    if first["type"] == "string":
        decision = Decision(first["name"], "label")
    else:
        decision = Decision(first["name"], "threshold", threshold)
    return [c["name"] for c in answers], decision


@dataclass
class ShadowResult:
    stage: str
    candidate: dict[str, Any]
    days: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        return {
            "format": "sagemaker-batch-mlops/shadow-run/1",
            "stage": self.stage,
            "candidate": self.candidate,
            "days": self.days,
            "failures": self.failures,
        }

    def title(self) -> str:
        return f"{self.stage}: version {self.candidate['version']} in the shadow of the champion"

    def worst_rate(self) -> float:
        rates = [
            day["decision"].get("flip_rate", day["decision"].get("change_rate")) or 0.0
            for day in self.days.values()
        ]
        return max(rates, default=0.0)


def shadow_run(
    tfvars: dict[str, Any],
    session: boto3.Session,
    stage: str,
    candidate_model: str,
    candidate_version: int,
    *,
    days: int = DEFAULT_DAYS,
    threshold: float = DEFAULT_THRESHOLD,
    local: bool = False,
    timeout_seconds: float = 3600,
    poll_seconds: float = 30,
    work_dir: Path | None = None,
) -> ShadowResult:
    """Score the last ``days`` scored days with the candidate, compare each with the
    champion's answers; no marker, table or schedule of the champion is touched."""
    s3 = session.client("s3")
    sagemaker = session.client("sagemaker")
    try:
        sagemaker.describe_model(ModelName=candidate_model)
    except botocore.exceptions.ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ValidationException":
            raise
        raise ShadowError(
            f"the candidate's SageMaker Model {candidate_model!r} does not exist in the stage: "
            "create it first (the shadow run never creates or switches models)"
        ) from None
    layout = layout_of(tfvars)
    markers = scored_days(s3, layout, days)
    if not markers:
        raise ShadowError(
            f"no day of {layout.output_data_url} is scored yet (no Succeeded marker under "
            f"{partitions.MARKERS}/): nothing to shadow"
        )
    columns, decision = decision_of(tfvars, threshold)
    id_column = tfvars["predictions_table_columns"][0]["name"]
    root = shadow_root(tfvars, candidate_version)
    result = ShadowResult(stage, {"model": candidate_model, "version": candidate_version})
    for marker in markers:
        day = marker["date"]
        parameters = shadow_parameters(tfvars, marker, candidate_model, candidate_version)
        print(f"shadow run: {day}: version {candidate_version} on {marker['input']}", flush=True)
        if local:
            folder = work_dir / f"shadow-{day}" if work_dir else None
            arn, status, reason = smoke.run_locally(session, s3, tfvars, parameters, folder)
        else:
            display = "".join(c if c.isalnum() else "-" for c in day)
            arn, status, reason = smoke.run_on_sagemaker(
                sagemaker, tfvars, parameters, timeout_seconds, poll_seconds,
                display_name=f"shadow-v{candidate_version}-{display}",
                description=f"Shadow run of version {candidate_version} on a scored day",
                program="shadow run",
            )  # fmt: skip
        if status != "Succeeded":
            result.failures.append(f"{day}: the shadow run {arn} {status}: {reason}")
            continue
        champion_id = marker["execution_arn"].rsplit("/", 1)[-1]
        candidate_id = arn.rsplit("/", 1)[-1]
        try:
            champion = read_day(s3, tfvars["predictions_table_url"], day, champion_id, id_column)
            candidate = read_day(s3, f"{root}/table/", day, candidate_id, id_column)
            comparison = compare(champion, candidate, id_column, columns, decision)
        except (ShadowError, ComparisonError) as error:
            result.failures.append(f"{day}: {error}")
            continue
        result.days[day] = comparison | {
            "executions": {"champion": marker["execution_arn"], "candidate": arn},
            "gates": {
                "champion": _gate(s3, marker["output"], champion_id),
                "candidate": _gate(s3, parameters["OutputDataUrl"], candidate_id),
            },
        }
    return result


def write_outputs(result: ShadowResult, out: Path, summary: Path | None) -> str:
    """shadow.json, shadow.html and the Markdown (also appended to ``summary``)."""
    out.mkdir(parents=True, exist_ok=True)
    text = shadow_page.markdown(result.title(), result.days)
    if result.failures:
        text += "\n" + "\n".join(f"- **failed**: {shadow_page.code(f)}" for f in result.failures)
        text += "\n"
    write_text_atomically(
        out / "shadow.json", json.dumps(result.document(), indent=2, allow_nan=False) + "\n"
    )
    write_text_atomically(out / "shadow.html", shadow_page.html(result.title(), result.days))
    write_text_atomically(out / "shadow.md", text)
    if summary is not None:
        with summary.open("a", encoding="utf-8") as handle:
            handle.write(text)
    return text


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        self.exit(USAGE_ERROR, f"shadow_run: error: {message}\n")


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a share from 0 to 1, e.g. 0.05")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m pipelines.shadow_run",
        description="Score a stage's last scored days with a candidate model, beside the "
        "champion, and compare their answers.",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--stage", help="the stage whose build/<stage>.tfvars.json to use")
    where.add_argument("--tfvars", type=Path, help="build.py's output for the stage")
    parser.add_argument("--candidate-model", required=True, help="its SageMaker Model's name")
    parser.add_argument("--candidate-version", type=int, required=True, help="its version")
    parser.add_argument(
        "--days", type=int, default=DEFAULT_DAYS, choices=range(1, MAX_DAYS + 1),
        metavar=f"1..{MAX_DAYS}", help=f"the last scored days to shadow (default {DEFAULT_DAYS})",
    )  # fmt: skip
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--max-flip-rate", type=_rate, help="fail above this share of flips")
    parser.add_argument("--local", action="store_true", help="run with the local executor")
    parser.add_argument("--out", type=Path, help="where shadow.json/.html/.md go")
    parser.add_argument("--summary", type=Path, help="append the Markdown here")
    parser.add_argument("--work-dir", type=Path, help="local mode: where jobs run")
    parser.add_argument("--timeout-minutes", type=float, default=60.0)
    parser.add_argument("--poll-seconds", type=float, default=30.0, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    path = args.tfvars or Path("build") / f"{args.stage}.tfvars.json"
    stage = args.stage or path.name.split(".", 1)[0]
    try:
        try:
            tfvars = smoke.load_tfvars(path, smoke_input=False)
        except smoke.SmokeError as error:
            raise ShadowError(str(error), error.exit_code) from None
        result = shadow_run(
            tfvars,
            aws_sessions.session(),
            stage,
            args.candidate_model,
            args.candidate_version,
            days=args.days,
            threshold=args.threshold,
            local=args.local,
            timeout_seconds=args.timeout_minutes * 60,
            poll_seconds=args.poll_seconds,
            work_dir=args.work_dir,
        )
    except CommandFailed as error:
        print(f"shadow_run: {error}", file=sys.stderr)
        return error.exit_code
    except ValueError as error:  # a marker that is not ours, a broken stage file
        print(f"shadow_run: {error}", file=sys.stderr)
        return USAGE_ERROR
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as error:
        print(f"shadow_run: AWS error: {error}", file=sys.stderr)
        return AWS_ERROR
    text = write_outputs(result, args.out or Path("build") / f"shadow-{stage}", args.summary)
    print(text, end="")
    if result.failures:
        print(f"shadow_run: {len(result.failures)} day(s) not compared (above)", file=sys.stderr)
        return EXECUTION_FAILED
    worst = result.worst_rate()
    if args.max_flip_rate is not None and worst > args.max_flip_rate:
        print(
            f"shadow_run: the candidate changes {worst:.2%} of a day's decisions, over "
            f"--max-flip-rate {args.max_flip_rate:.2%}: review the comparison, or raise the "
            "limit to approve it anyway",
            file=sys.stderr,
        )
        return EXECUTION_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
