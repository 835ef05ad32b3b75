"""A shadow run: a candidate model scores a stage's last scored days beside the champion.

    python -m pipelines.shadow_run --stage prod --candidate-model NAME --candidate-version N \\
        [--days 3] [--local] [--tfvars build/prod.tfvars.json] [--out build/shadow-prod] \\
        [--summary FILE] [--max-flip-rate 0.05] [--threshold 0.5]
    python -m pipelines.shadow_run --tfvars build/prod.tfvars.json --plan-job \\
        [--accept-flips] [--local] [--out DIR] [--summary FILE]

``--plan-job`` is the prod plan job's form: the candidate is the tfvars' version and the
Model ``build.py --plan-only --shadow-candidate`` made for it (``<group>-<stage>-c<N>``), and
the days, the flip limit and whether ids may leave the account are the stage's settings
(``shadow_days``, ``shadow_max_flip_rate``, ``shadow_show_ids``). When there is nothing to
shadow (no candidate made, no scored day, ``shadow_days`` 0, no shadow role or pipeline yet)
it says why in one line and exits 0; ``--accept-flips`` turns the limit into a warning (the
workflow's override). On SageMaker a run starts the stage's shadow pipeline, whose jobs run
as the shadow role: it may write only under ``_shadow/``, whatever parameters it is given.

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

Exit codes: 0 compared (or, with ``--plan-job``, nothing to shadow); 3 a shadow run failed,
or a day's decisions changed more often than the limit (unless accepted); 2 bad arguments or
stage inputs (no scored day, a candidate model that does not exist); 1 an AWS error.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
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
from pipelines import shadow_page, shadow_settings, smoke
from pipelines.shadow_comparison import ComparisonError, Decision, compare
from stage_runtime import partitions
from stage_runtime.runs import layout_of, schedule_parameters

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SHADOW = "_shadow"  # <output_data_url>/_shadow/v<N>/: everything a shadow run writes
DEFAULT_DAYS = shadow_settings.DEFAULT_DAYS
MAX_DAYS = shadow_settings.DAYS_RANGE[1]
DEFAULT_THRESHOLD = 0.5
TABLE_FORMATS = (".csv", ".parquet")


class ShadowError(CommandFailed):
    """The shadow run cannot go on as asked; ``exit_code`` says why (usage by default)."""


class NothingToShadow(ShadowError):
    """No candidate model, shadow pipeline or scored day: an error by hand, a skip in the
    plan job (a first deployment, a re-deploy of the running version)."""


def shadow_root(tfvars: dict[str, Any], version: int) -> str:
    return f"{tfvars['output_data_url'].rstrip('/')}/{SHADOW}/v{version}"


def scored_days(s3: S3Client, layout: partitions.Layout, count: int) -> list[dict[str, Any]]:
    """The markers of the last ``count`` days the champion scored (``Succeeded``), oldest
    first. Each marker's day is read from its key, so only the newest markers are fetched
    (a year of days costs listings, not 365 reads). A marker that is not ours is an error,
    as for the schedule."""
    bucket, prefix = parse_s3_uri(layout.partition_marker_uri("x").rsplit("/", 1)[0] + "/")
    pattern = partitions.partition_pattern(layout.partition_format)
    dated: list[tuple[date, str]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            relative = item["Key"][len(prefix) :]
            if relative.startswith(f"{partitions.UPLOADS}/") or not relative.endswith(".json"):
                continue
            try:
                day = partitions.partition_day(pattern, relative.removesuffix(".json") + "/")
            except ValueError:
                day = None
            if day is not None:
                dated.append((day, item["Key"]))
    found: list[dict[str, Any]] = []
    for _, key in sorted(dated, reverse=True):
        marker = partitions.read_marker(s3, f"s3://{bucket}/{key}")
        if marker is not None and marker.get("status") in partitions.DONE:
            found.append(marker)
            if len(found) == count:
                break
    return found[::-1]


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


def pipeline_of(tfvars: dict[str, Any]) -> str:
    """The pipeline a shadow run starts on SageMaker: the stage's shadow pipeline (its jobs
    run as the shadow role, which writes only under ``_shadow/``) where the account has the
    role, else the stage's own (a stage whose base predates the role, run by hand)."""
    if tfvars.get("shadow_role_arn") and tfvars.get("shadow_pipeline_name"):
        return str(tfvars["shadow_pipeline_name"])
    return str(tfvars["pipeline_name"])


def deployed_definition(sagemaker: Any, pipeline: str) -> dict[str, Any] | None:
    """The pipeline's definition as SageMaker holds it (what a local run executes too: a
    plan's tfvars name a definition the approved deployment uploads only later), or None."""
    described = _described(sagemaker.describe_pipeline, PipelineName=pipeline)
    if described is None:
        return None
    try:
        return dict(json.loads(described["PipelineDefinition"]))
    except (TypeError, ValueError) as error:
        raise ShadowError(
            f"the pipeline {pipeline!r} describes no JSON definition ({error}): recreate it "
            "from the stage's definition"
        ) from None


def _described(describe: Any, **name: str) -> dict[str, Any] | None:
    """A SageMaker resource's description, or None where it does not exist (its Describe
    call's ValidationException or ResourceNotFound)."""
    try:
        return dict(describe(**name))
    except botocore.exceptions.ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        if code not in ("ValidationException", "ResourceNotFound"):
            raise
        return None


def withheld(days: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The comparisons without production ids: what may leave the account when the stage's
    ``shadow_show_ids`` is false (the job summary and the artifact are GitHub's)."""
    return {
        day: comparison
        | {
            "largest_disagreements": [
                row | {"id": "(withheld)"} for row in comparison["largest_disagreements"]
            ]
        }
        for day, comparison in days.items()
    }


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

    def without_ids(self) -> ShadowResult:
        return ShadowResult(self.stage, self.candidate, withheld(self.days), self.failures)

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
    if _described(sagemaker.describe_model, ModelName=candidate_model) is None:
        raise NothingToShadow(
            f"the candidate's SageMaker Model {candidate_model!r} does not exist in the stage: "
            "create it first (build.py --plan-only --shadow-candidate; the shadow run never "
            "creates or switches models)"
        )
    pipeline = pipeline_of(tfvars)
    definition = deployed_definition(sagemaker, pipeline)
    if definition is None:
        raise NothingToShadow(
            f"the shadow pipeline {pipeline!r} does not exist yet: the stage's next apply "
            "creates it (batch-config-template.tf, with the account's shadow role)"
        )
    layout = layout_of(tfvars)
    markers = scored_days(s3, layout, days)
    if not markers:
        raise NothingToShadow(
            f"no day of {layout.output_data_url} is scored yet (no Succeeded marker under "
            f"{partitions.MARKERS}/): nothing to shadow"
        )
    columns, decision = decision_of(tfvars, threshold)
    id_column = tfvars["predictions_table_columns"][0]["name"]
    root = shadow_root(tfvars, candidate_version)
    result = ShadowResult(stage, {"model": candidate_model, "version": candidate_version})

    parameters_of = [
        shadow_parameters(tfvars, marker, candidate_model, candidate_version) for marker in markers
    ]

    def run(marker: dict[str, Any], parameters: dict[str, str]) -> tuple[str, str, str | None]:
        day = marker["date"]
        print(f"shadow run: {day}: version {candidate_version} on {marker['input']}", flush=True)
        if local:
            folder = work_dir / f"shadow-{day}" if work_dir else None
            return smoke.run_locally(session, s3, tfvars, parameters, folder, definition)
        display = "".join(c if c.isalnum() else "-" for c in day)
        return smoke.run_on_sagemaker(
            sagemaker, tfvars | {"pipeline_name": pipeline}, parameters, timeout_seconds,
            poll_seconds,
            display_name=f"shadow-v{candidate_version}-{display}",
            description=f"Shadow run of version {candidate_version} on a scored day",
            program="shadow run",
        )  # fmt: skip

    # On SageMaker the days run at once: the plan role's session lasts an hour, and days one
    # after another would not fit in it. Locally they share this machine's cores: in turn.
    with ThreadPoolExecutor(max_workers=1 if local else len(markers)) as pool:
        ended = list(pool.map(run, markers, parameters_of))
    for marker, parameters, (arn, status, reason) in zip(
        markers, parameters_of, ended, strict=True
    ):
        day = marker["date"]
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


def write_outputs(
    result: ShadowResult, out: Path, summary: Path | None, notes: tuple[str, ...] = ()
) -> str:
    """shadow.json, shadow.html and the Markdown (also appended to ``summary``); ``notes``
    are lines for the reader under the table (the limit's verdict, withheld ids)."""
    out.mkdir(parents=True, exist_ok=True)
    text = shadow_page.markdown(result.title(), result.days)
    if result.failures:
        text += "\n" + "\n".join(f"- **failed**: {shadow_page.code(f)}" for f in result.failures)
        text += "\n"
    if notes:
        text += "\n" + "\n".join(f"- {note}" for note in notes) + "\n"
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
    parser.add_argument("--candidate-model", help="its SageMaker Model's name")
    parser.add_argument("--candidate-version", type=int, help="its version")
    parser.add_argument(
        "--days", type=int, choices=range(1, MAX_DAYS + 1), metavar=f"1..{MAX_DAYS}",
        help=f"the last scored days to shadow (default {DEFAULT_DAYS})",
    )  # fmt: skip
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--max-flip-rate", type=_rate, help="fail above this share of flips")
    parser.add_argument(
        "--plan-job",
        action="store_true",
        help="the prod plan job's run: the candidate, days, limit and ids from the stage's "
        "tfvars; nothing to shadow is a skip, not an error",
    )
    parser.add_argument(
        "--accept-flips",
        action="store_true",
        help="with --plan-job: a flip rate over the stage's limit warns instead of failing",
    )
    parser.add_argument("--local", action="store_true", help="run with the local executor")
    parser.add_argument("--out", type=Path, help="where shadow.json/.html/.md go")
    parser.add_argument("--summary", type=Path, help="append the Markdown here")
    parser.add_argument("--work-dir", type=Path, help="local mode: where jobs run")
    parser.add_argument("--timeout-minutes", type=float, default=60.0)
    parser.add_argument("--poll-seconds", type=float, default=30.0, help=argparse.SUPPRESS)
    return parser


@dataclass(frozen=True)
class Asked:
    """What one invocation shadows: by hand from the arguments, in the plan job from the
    stage's settings."""

    model: str
    version: int
    days: int
    limit: float | None
    show_ids: bool


def asked(args: argparse.Namespace, tfvars: dict[str, Any], stage: str) -> Asked:
    if not args.plan_job:
        if args.accept_flips:
            raise ShadowError("--accept-flips belongs to --plan-job (by hand, leave out the limit)")
        if not args.candidate_model or args.candidate_version is None:
            raise ShadowError(
                "name the candidate: --candidate-model M --candidate-version N (or --plan-job "
                "for the tfvars' version and its shadow candidate)"
            )
        return Asked(
            args.candidate_model,
            args.candidate_version,
            args.days or DEFAULT_DAYS,
            args.max_flip_rate,
            True,
        )
    given = [
        flag
        for flag, value in (
            ("--candidate-model", args.candidate_model),
            ("--candidate-version", args.candidate_version),
            ("--days", args.days),
            ("--max-flip-rate", args.max_flip_rate),
        )
        if value is not None
    ]
    if given:
        raise ShadowError(
            f"{', '.join(given)}: --plan-job takes these from the stage's tfvars (shadow_days, "
            "shadow_max_flip_rate); leave them out, or drop --plan-job"
        )
    version = int(tfvars["model_version"])
    return Asked(
        candidate_of(tfvars),
        version,
        int(tfvars.get("shadow_days", DEFAULT_DAYS)),
        tfvars.get("shadow_max_flip_rate"),
        bool(tfvars.get("shadow_show_ids", False)),
    )


def candidate_of(tfvars: dict[str, Any]) -> str:
    """The stage's candidate Model for the tfvars' version: ``<group>-<stage>-c<N>`` beside
    its ``-v<N>`` (promotion.names.candidate_model_name; Terraform's serverless ``-s<N>``)."""
    version = tfvars["model_version"]
    return f"{str(tfvars['model_name']).removesuffix(f'-v{version}')}-c{version}"


def skip_reason(tfvars: dict[str, Any], stage: str, wanted: Asked) -> str | None:
    """Why the plan job shadows nothing, before any AWS call (None: go on)."""
    if wanted.days == 0:
        return f"shadow_days is 0 in the {stage} stage file"
    if not tfvars.get("shadow_role_arn"):
        return (
            f"the {stage} account has no shadow role (SSM shadow-role-arn): apply "
            "infra/target-account again to add it"
        )
    return None


def skipped(reason: str, summary: Path | None) -> int:
    line = f"shadow run skipped: {reason}"
    print(line)
    if summary is not None:
        with summary.open("a", encoding="utf-8") as handle:
            handle.write(f"\n**shadow run skipped:** {reason}\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    path = args.tfvars or Path("build") / f"{args.stage}.tfvars.json"
    try:
        try:
            tfvars = smoke.load_tfvars(path, smoke_input=False)
        except smoke.SmokeError as error:
            raise ShadowError(str(error), error.exit_code) from None
        stage = args.stage or str(tfvars.get("environment") or path.name.split(".", 1)[0])
        wanted = asked(args, tfvars, stage)
        reason = skip_reason(tfvars, stage, wanted) if args.plan_job else None
        if reason:
            return skipped(reason, args.summary)
        result = shadow_run(
            tfvars,
            aws_sessions.session(),
            stage,
            wanted.model,
            wanted.version,
            days=wanted.days,
            threshold=args.threshold,
            local=args.local,
            timeout_seconds=args.timeout_minutes * 60,
            poll_seconds=args.poll_seconds,
            work_dir=args.work_dir,
        )
    except NothingToShadow as error:
        if args.plan_job:
            return skipped(str(error), args.summary)
        print(f"shadow_run: {error}", file=sys.stderr)
        return error.exit_code
    except CommandFailed as error:
        print(f"shadow_run: {error}", file=sys.stderr)
        return error.exit_code
    except ValueError as error:  # a marker that is not ours, a broken stage file
        print(f"shadow_run: {error}", file=sys.stderr)
        return USAGE_ERROR
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as error:
        print(f"shadow_run: AWS error: {error}", file=sys.stderr)
        return AWS_ERROR
    worst = result.worst_rate()
    over = wanted.limit is not None and worst > wanted.limit and not result.failures
    notes = []
    if wanted.limit is not None and not result.failures:
        verdict = "over" if over else "within"
        notes.append(
            f"flip limit: the worst day changes {worst:.2%} of its decisions, {verdict} the "
            f"limit of {wanted.limit:.2%}"
            + (" (shadow_max_flip_rate)" if args.plan_job else " (--max-flip-rate)")
        )
    if over and args.accept_flips:
        notes.append(
            "**warning**: over the limit, accepted by the run's accept_shadow_flips: the "
            "approver decides with this comparison"
        )
    if not wanted.show_ids:
        notes.append("ids withheld: shadow_show_ids is false for this stage")
    shown = result if wanted.show_ids else result.without_ids()
    out = args.out or Path("build") / f"shadow-{stage}"
    text = write_outputs(shown, out, args.summary, tuple(notes))
    print(text, end="")
    if result.failures:
        print(f"shadow_run: {len(result.failures)} day(s) not compared (above)", file=sys.stderr)
        return EXECUTION_FAILED
    if over and not args.accept_flips:
        print(
            f"shadow_run: the candidate changes {worst:.2%} of a day's decisions, over the "
            f"limit of {wanted.limit:.2%}: review the comparison; to approve it anyway, "
            + (
                "run deploy again with accept_shadow_flips (the override)"
                if args.plan_job
                else "raise --max-flip-rate"
            ),
            file=sys.stderr,
        )
        return EXECUTION_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
