"""A day's Preprocess and Transform on SageMaker: wall time, cost, and the instance counts
that meet a deadline, projected from rates measured on this machine.

    python -m pipelines.capacity --rows 100000000 --instance-type ml.m5.xlarge
        [--transform-instance-type TYPE] [--instances N] [--deadline 2h]
        [--bytes-per-row B] [--startup-minutes M] [--volume-gb G] [--measurements FILE]
        [--prices FILE] [--markdown]

Per step: wall = start-up + transfer + compute, where compute is the rows over the per-core
rate ``python -m benchmarks.throughput --record`` measured (``capacity_measurements.json``)
times the cores the step uses on the type (``pipelines/instance_types.py``) times the
instances; Preprocess downloads its input and uploads its output around the script
(``File`` mode, ``EndOfJob``), and both must fit each instance's volume (``--volume-gb``, the
stage's ``processing_volume_size_gb``); Transform streams while it scores. Cost = instances x wall x
the on-demand price (``pipelines/prices.py``). ``--deadline`` finds the cheapest pair of
counts (1 to 100 each, SageMaker's limit) whose two steps end within it. ``--rows`` takes a
comma-separated list; ``--markdown`` prints one table row per value (the README's table).
The model, its sources and what stays unproven: docs/capacity.md.

Exit codes (common/exit_codes.py): 0 the plan was printed (and, with ``--deadline``, counts
meet it); 2 bad arguments or inputs (an unknown type, rows <= 0, a deadline that is not a
duration, a volume AWS refuses, a measurements or price file that cannot be read); 3 no
count up to 100 per step meets the deadline (the line says why). Every failure is one line
on stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.exit_codes import EXECUTION_FAILED, SUCCESS, USAGE_ERROR, CommandFailed
from pipelines import prices
from pipelines.batch_inference import processing_settings
from pipelines.instance_types import InstanceType, UnknownInstanceType, instance_type

MEASUREMENTS = Path(__file__).with_name("capacity_measurements.json")
RECORD_COMMAND = "python -m benchmarks.throughput --record"
# InstanceCount: at most 100 for a Processing job (ProcessingClusterConfig) and for a
# Transform job (TransformResources), SageMaker API reference
MAX_INSTANCES = 100
# the share of an instance's memory Preprocess's workers may take (the rest: the OS,
# SageMaker's agent, the page cache the downloaded input sits in)
MEMORY_SHARE = 0.8
# Preprocess's storage volume per instance, by default the stage's default (GB are GiB on
# EBS): its input is downloaded there and its output written there before the upload, so
# both must fit, with a tenth kept for the rest
VOLUME_GIB = processing_settings.DEFAULT_VOLUME_GB
VOLUME_SETTING = processing_settings.SETTING_NAME
VOLUME_USABLE = 0.9
# SageMaker's start-up per job before the script or the model serves (provisioning, the
# image pull, the container start): an estimate from reports, not a measurement; sources in
# docs/capacity.md ("Start-up")
STARTUP_MINUTES = 8.0
STARTUP_SOURCES = (
    "https://github.com/aws/sagemaker-python-sdk/issues/4358",
    "https://github.com/fourTheorem/podwhisperer/issues/9",
    "acceptance/plan.py (JOB_MINUTES: 7 per job of the sample, start-up included)",
)


@dataclass(frozen=True)
class Rates:
    """What the plan projects from: the measurements file's numbers."""

    preprocess_per_core: float  # rows/s one Preprocess worker does on one core
    preprocess_peak_rss_mib: float  # one worker's peak memory
    serving_per_core: float  # rows/s of the serving stack per core
    input_bytes_per_row: float  # Preprocess's input (what it downloads)
    output_bytes_per_row: float  # Preprocess's output: what it uploads, Transform reads
    measured_on: str
    machine: str

    def with_bytes_per_row(self, width: float) -> Rates:
        """The same rates for input ``width`` bytes per row: the transfers scale, the
        output keeps its measured share of the input; the per-row compute rates do not
        change (they are the sample's 30 float features)."""
        share = self.output_bytes_per_row / self.input_bytes_per_row
        return Rates(
            self.preprocess_per_core,
            self.preprocess_peak_rss_mib,
            self.serving_per_core,
            width,
            width * share,
            self.measured_on,
            self.machine,
        )


def _number(document: dict[str, Any], path: Path, *keys: str) -> float:
    value: Any = document
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise CommandFailed(
            f"measurements {path} lacks a positive {'.'.join(keys)}: run {RECORD_COMMAND}"
        )
    return float(value)


def load_measurements(path: Path | None = None) -> Rates:
    """The rates recorded at ``path`` (default: the shipped file)."""
    path = path or MEASUREMENTS
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CommandFailed(f"measurements {path} do not exist: run {RECORD_COMMAND}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CommandFailed(f"measurements {path} are not readable JSON: {error}") from None
    if not isinstance(document, dict):
        raise CommandFailed(f"measurements {path} are not a JSON object: run {RECORD_COMMAND}")
    machine = document.get("machine") or {}
    return Rates(
        preprocess_per_core=_number(document, path, "preprocess", "rows_per_second_per_core"),
        preprocess_peak_rss_mib=_number(document, path, "preprocess", "peak_rss_mib"),
        serving_per_core=_number(document, path, "serving", "rows_per_second_per_core"),
        input_bytes_per_row=_number(document, path, "preprocess", "input_bytes_per_row"),
        output_bytes_per_row=_number(document, path, "preprocess", "output_bytes_per_row"),
        measured_on=str(document.get("measured_on", "an unknown date")),
        machine=f"{machine.get('cpu_model', 'an unknown CPU')}, {machine.get('cores', '?')} cores",
    )


@dataclass(frozen=True)
class StepPlan:
    """One step's projection on ``instances`` instances of ``kind``."""

    step: str
    kind: InstanceType
    instances: int
    workers: int  # processes per instance (Preprocess's workers, the stack's gunicorn workers)
    cores_used: int  # per instance
    startup_s: float
    transfer_s: float
    compute_s: float
    overlapped: bool  # transfer runs while it computes (Transform) or around it (Preprocess)
    price: float | None  # USD per instance-hour, None when the table has none
    disk_gib: float = 0.0  # what an instance stores on its volume (Preprocess: in + out)
    volume_gib: int = VOLUME_GIB  # each instance's volume (Preprocess's: the stage's setting)

    @property
    def fits(self) -> bool:
        """Whether an instance's share fits its storage volume (Transform streams)."""
        return self.disk_gib <= self.volume_gib * VOLUME_USABLE

    @property
    def volume_needed_gib(self) -> int:
        """The smallest volume an instance's share fits, a tenth kept for the rest."""
        return max(1, math.ceil(self.disk_gib / VOLUME_USABLE))

    @property
    def wall_s(self) -> float:
        work = max(self.transfer_s, self.compute_s) if self.overlapped else (
            self.transfer_s + self.compute_s
        )  # fmt: skip
        return self.startup_s + work

    @property
    def instance_hours(self) -> float:
        """Billed time: every instance for the whole wall time, start-up included."""
        return self.instances * self.wall_s / 3600

    @property
    def cost(self) -> float | None:
        return None if self.price is None else self.instance_hours * self.price


@dataclass(frozen=True)
class Plan:
    rows: int
    preprocess: StepPlan
    transform: StepPlan

    @property
    def wall_s(self) -> float:
        return self.preprocess.wall_s + self.transform.wall_s

    @property
    def fits(self) -> bool:
        return self.preprocess.fits and self.transform.fits

    @property
    def cost(self) -> float | None:
        costs = [self.preprocess.cost, self.transform.cost]
        return None if None in costs else sum(c for c in costs if c is not None)

    @property
    def objective(self) -> tuple[float, int]:
        """What the deadline search minimises: cost (instance-hours when a price is
        missing), then instances."""
        cost = self.cost
        spent = cost if cost is not None else (
            self.preprocess.instance_hours + self.transform.instance_hours
        )  # fmt: skip
        return spent, self.preprocess.instances + self.transform.instances


def _bytes_per_second(kind: InstanceType) -> float:
    return kind.network_gbps * 1e9 / 8


def preprocess_step(
    rows: int,
    kind: InstanceType,
    instances: int,
    rates: Rates,
    startup_s: float,
    price: float | None,
    volume_gib: int = VOLUME_GIB,
) -> StepPlan:
    """Preprocess: one worker per vCPU, as many as memory holds; the workers run on the
    physical cores (a second hardware thread's gain is not counted); the input is
    downloaded before the script starts and the output uploaded after it ends."""
    by_memory = math.floor(kind.memory_gib * 1024 * MEMORY_SHARE / rates.preprocess_peak_rss_mib)
    if by_memory < 1:
        raise CommandFailed(
            f"{kind.name} has {kind.memory_gib} GiB: one Preprocess worker peaked at "
            f"{rates.preprocess_peak_rss_mib:.0f} MiB; choose a type with more memory"
        )
    workers = min(kind.vcpus, by_memory)
    cores = min(workers, kind.cores)
    compute = rows / (rates.preprocess_per_core * cores * instances)
    moved = rows * (rates.input_bytes_per_row + rates.output_bytes_per_row) / instances
    transfer = moved / _bytes_per_second(kind)
    return StepPlan(
        "Preprocess", kind, instances, workers, cores, startup_s, transfer, compute, False, price,
        disk_gib=moved / 2**30, volume_gib=volume_gib,
    )  # fmt: skip


def transform_step(
    rows: int,
    kind: InstanceType,
    instances: int,
    rates: Rates,
    startup_s: float,
    price: float | None,
) -> StepPlan:
    """Transform: the serving stack's rate per core times the type's physical cores (one
    worker per vCPU, each request's matrix product on every core); Preprocess's output is
    read while the model scores (the id and score written back are not counted)."""
    compute = rows / (rates.serving_per_core * kind.cores * instances)
    transfer = rows * rates.output_bytes_per_row / instances / _bytes_per_second(kind)
    return StepPlan(
        "Transform", kind, instances, kind.vcpus, kind.cores, startup_s, transfer, compute, True,
        price,
    )  # fmt: skip


@dataclass(frozen=True)
class Settings:
    rows: int
    processing_type: InstanceType
    transform_type: InstanceType
    rates: Rates
    startup_s: float
    table: dict[str, Any]
    volume_gib: int = VOLUME_GIB  # each Preprocess instance's (processing_volume_size_gb)

    def price(self, kind: InstanceType, job: prices.Job) -> float | None:
        try:
            return prices.price_per_hour(kind.name, job, self.table)
        except prices.UnknownPrice:
            return None

    def plan(self, processing_instances: int, transform_instances: int) -> Plan:
        return Plan(
            self.rows,
            preprocess_step(
                self.rows, self.processing_type, processing_instances, self.rates,
                self.startup_s, self.price(self.processing_type, "processing"),
                self.volume_gib,
            ),
            transform_step(
                self.rows, self.transform_type, transform_instances, self.rates,
                self.startup_s, self.price(self.transform_type, "transform"),
            ),
        )  # fmt: skip


class NoCountMeetsDeadline(CommandFailed):
    def __init__(self, message: str):
        super().__init__(message, EXECUTION_FAILED)


def recommend(settings: Settings, deadline_s: float, cap: int = MAX_INSTANCES) -> Plan:
    """The cheapest counts (1..``cap`` per step) whose steps end within ``deadline_s``."""
    best: Plan | None = None
    for processing in range(1, cap + 1):
        for transform in range(1, cap + 1):
            candidate = settings.plan(processing, transform)
            if not candidate.preprocess.fits:
                break  # the volume needs more Preprocess instances
            if candidate.wall_s <= deadline_s:
                if best is None or candidate.objective < best.objective:
                    best = candidate
                break  # more Transform instances only add cost
    if best is not None:
        return best
    fastest = settings.plan(cap, cap)
    if not fastest.preprocess.fits:
        reason = (
            f"even {cap} Preprocess instances need {fastest.preprocess.disk_gib:.0f} GiB each on "
            f"a {settings.volume_gib} GiB volume ({VOLUME_SETTING}: raise it to at least "
            f"{fastest.preprocess.volume_needed_gib})"
        )
    elif 2 * settings.startup_s >= deadline_s:
        reason = (
            f"the two jobs' start-up alone ({2 * settings.startup_s / 60:.0f} min) is not within it"
        )
    else:
        steps = fastest.preprocess.wall_s, fastest.transform.wall_s
        reason = (
            f"{cap} instances per step still take {duration(fastest.wall_s)} (Preprocess "
            f"{duration(steps[0])}, Transform {duration(steps[1])})"
        )
    raise NoCountMeetsDeadline(
        f"no count up to {cap} per step meets the deadline of {duration(deadline_s)} for "
        f"{settings.rows:,} rows: {reason}; allow more time, split the day into several runs, "
        "or choose a larger instance type"
    )


DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?:in)?)?(?:(\d+(?:\.\d+)?)s)?")


def parse_duration(text: str) -> float:
    """Seconds of a duration such as ``2h``, ``90m``, ``1h30m`` or ``45s``."""
    match = DURATION.fullmatch(text.strip().lower())
    if not text.strip() or not match or not any(match.groups()):
        raise CommandFailed(
            f"--deadline {text!r} is not a duration: write it as 2h, 90m, 1h30m or 3600s"
        )
    hours, minutes, seconds = (float(part or 0) for part in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise CommandFailed(f"--deadline {text!r} must be longer than zero")
    return total


def parse_rows(text: str) -> list[int]:
    """One or more row counts, comma-separated (``_`` allowed as in 100_000_000)."""
    counts = []
    for part in text.split(","):
        try:
            value = int(part.strip())
        except ValueError:
            raise CommandFailed(
                f"--rows {part.strip()!r} is not a whole number: write e.g. --rows 100000000"
            ) from None
        if value <= 0:
            raise CommandFailed(f"--rows {value} must be at least 1: the rows of a day")
        counts.append(value)
    return counts


def duration(seconds: float) -> str:
    minutes = math.ceil(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def _money(value: float | None) -> str:
    return "no price" if value is None else f"${value:,.2f}"


def describe(plan: Plan) -> list[str]:
    """The plan as aligned text lines."""
    lines = [
        f"{'step':<11}{'type':<15}{'instances':>9}{'workers':>9}{'start-up':>10}"
        f"{'transfer':>10}{'compute':>10}{'wall':>12}{'cost':>11}"
    ]
    for step in (plan.preprocess, plan.transform):
        transfer = duration(step.transfer_s) + ("*" if step.overlapped else "")
        lines.append(
            f"{step.step:<11}{step.kind.name:<15}{step.instances:>9}{step.workers:>9}"
            f"{duration(step.startup_s):>10}{transfer:>10}{duration(step.compute_s):>10}"
            f"{duration(step.wall_s):>12}{_money(step.cost):>11}"
        )
    lines.append(f"{'pipeline':<74}{duration(plan.wall_s):>12}{_money(plan.cost):>11}")
    step = plan.preprocess
    if not step.fits:
        needed = math.ceil(step.disk_gib * step.instances / (step.volume_gib * VOLUME_USABLE))
        lines.append(
            f"WILL NOT FIT: Preprocess stores {step.disk_gib:.0f} GiB per instance (input and "
            f"output) on a {step.volume_gib} GiB volume: give it at least {needed} instances, "
            f"or set {VOLUME_SETTING} to at least {step.volume_needed_gib}"
        )
    return lines


def markdown_header() -> list[str]:
    columns = [
        "rows a day",
        "1 instance per step: wall",
        "cost",
        "for the deadline: instances (Preprocess + Transform)",
        "wall",
        "cost",
    ]
    return [f"| {' | '.join(columns)} |", "| ---: | ---: | ---: | ---: | ---: | ---: |"]


def markdown_row(plan: Plan, best: Plan | None) -> str:
    fits = (
        f"{best.preprocess.instances} + {best.transform.instances} | {duration(best.wall_s)} | "
        f"{_money(best.cost)}"
        if best
        else f"none up to {MAX_INSTANCES} | | "
    )
    wall = duration(plan.wall_s) if plan.fits else "does not fit the volume"
    return f"| {plan.rows:,} | {wall} | {_money(plan.cost) if plan.fits else ''} | {fits} |"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        self.exit(USAGE_ERROR, f"pipelines.capacity: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m pipelines.capacity", description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--rows", required=True, help="rows a day (comma-separated: several)")
    add("--instance-type", required=True, help="Preprocess's (and Transform's) type")
    add("--transform-instance-type", help="Transform's type if another")
    add("--instances", type=int, default=1, help="instances per step (1)")
    add("--deadline", help="recommend counts that finish within it, e.g. 2h")
    add("--bytes-per-row", type=float, help="your input's width (default: the sample's)")
    add("--startup-minutes", type=float, default=STARTUP_MINUTES, help="start-up per job")
    add(
        "--volume-gb",
        type=int,
        default=VOLUME_GIB,
        help=f"each Preprocess instance's volume, the stage's {VOLUME_SETTING} ({VOLUME_GIB})",
    )
    add("--measurements", type=Path, help="rates file (default: the shipped one)")
    add("--prices", type=Path, help="price table (default: the shipped one)")
    add("--markdown", action="store_true", help="one table row per --rows value")
    return parser


def _kind(name: str) -> InstanceType:
    try:
        return instance_type(name)
    except UnknownInstanceType as error:
        raise CommandFailed(str(error)) from None


def settings_from(args: argparse.Namespace, rows: int) -> Settings:
    rates = load_measurements(args.measurements)
    if args.bytes_per_row is not None:
        if not args.bytes_per_row > 0:
            raise CommandFailed(f"--bytes-per-row {args.bytes_per_row:g} must be more than 0")
        rates = rates.with_bytes_per_row(args.bytes_per_row)
    if not 0 <= args.startup_minutes < 24 * 60:
        raise CommandFailed(f"--startup-minutes {args.startup_minutes:g} must be 0 or more")
    try:
        table = prices.load_table(args.prices)
    except prices.PriceTableError as error:
        raise CommandFailed(str(error)) from None
    problem = processing_settings.volume_problem(args.volume_gb, "--volume-gb")
    if problem:
        raise CommandFailed(problem)
    processing = _kind(args.instance_type)
    transform = _kind(args.transform_instance_type or args.instance_type)
    return Settings(
        rows, processing, transform, rates, args.startup_minutes * 60, table, args.volume_gb
    )


def run(args: argparse.Namespace) -> tuple[list[str], int]:
    """The lines to print and the exit code; ``CommandFailed`` for bad input."""
    counts = parse_rows(args.rows)
    deadline_s = parse_duration(args.deadline) if args.deadline is not None else None
    if not 1 <= args.instances <= MAX_INSTANCES:
        raise CommandFailed(f"--instances {args.instances} must be 1 to {MAX_INSTANCES}")
    lines = markdown_header() if args.markdown else []
    notes: list[str] = []  # under a markdown table: why a row has no count
    code = SUCCESS
    settings = settings_from(args, counts[0])
    for rows in counts:
        settings = Settings(
            rows, settings.processing_type, settings.transform_type, settings.rates,
            settings.startup_s, settings.table, settings.volume_gib,
        )  # fmt: skip
        plan = settings.plan(args.instances, args.instances)
        best, missed = None, None
        if deadline_s is not None:
            try:
                best = recommend(settings, deadline_s)
            except NoCountMeetsDeadline as error:
                missed, code = error, error.exit_code
        if args.markdown:
            lines.append(markdown_row(plan, best))
            if missed is not None:
                notes.append(f"{rows:,} rows: {missed}")
            continue
        lines.append(f"{rows:,} rows a day, {args.instances} instance(s) per step:")
        lines.extend(describe(plan))
        if best is not None:
            lines.append(f"for the deadline of {duration(deadline_s or 0)}:")
            lines.extend(describe(best))
        if missed is not None:
            lines.append(f"for the deadline: {missed}")
    lines.extend([*notes, *footnotes(settings)])
    return lines, code


def footnotes(settings: Settings) -> list[str]:
    table, rates = settings.table, settings.rates
    unverified = not all(
        prices.verified(kind.name, table)
        for kind in (settings.processing_type, settings.transform_type)
    )
    notes = [
        f"rates measured on {rates.measured_on} ({rates.machine}): Preprocess "
        f"{rates.preprocess_per_core:,.0f} rows/s per core, serving "
        f"{rates.serving_per_core:,.0f} rows/s per core, {rates.input_bytes_per_row:,.0f} bytes "
        f"a row in; start-up {settings.startup_s / 60:g} min per job (an estimate); * Transform's "
        "transfer runs while it scores",
        f"Preprocess's volume: {settings.volume_gib} GiB per instance ({VOLUME_SETTING}, "
        "--volume-gb), 90 % of it for the instance's input and output",
        f"prices: {table.get('region', 'region not stated')} on-demand, {table['path']}"
        + (" (NOT verified against AWS's page: docs/capacity.md)" if unverified else ""),
    ]
    steps: list[tuple[InstanceType, prices.Job]] = [
        (settings.processing_type, "processing"),
        (settings.transform_type, "transform"),
    ]
    missing = [f"{kind.name} {job}" for kind, job in steps if settings.price(kind, job) is None]
    if missing:
        notes.append(
            f"no price for {', '.join(missing)} in {table['path']}: give --prices FILE with it"
        )
    return notes


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        lines, code = run(args)
    except CommandFailed as error:
        print(f"pipelines.capacity: {error}", file=sys.stderr)
        return error.exit_code
    print("\n".join(lines))
    if code != SUCCESS:
        print("pipelines.capacity: no count meets the deadline (above)", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
