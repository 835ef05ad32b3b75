"""The capacity plan (``python -m pipelines.capacity``): its arithmetic from a given
measurements file, the counts it recommends for a deadline or its refusal, its one-line
errors and exit codes, the shipped measurements and price files, the README's table, and
``python -m benchmarks.throughput --record`` writing the file it reads."""

from __future__ import annotations

import json
import math
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from common.exit_codes import EXECUTION_FAILED, SUCCESS, USAGE_ERROR
from pipelines import capacity, prices
from pipelines.instance_types import instance_type

REPO = Path(__file__).resolve().parents[1]
# round numbers, so every expected value below is worked out from these and the type's table
RATES = {
    "measured_on": "2026-01-02",
    "command": "python -m benchmarks.throughput --record",
    "machine": {"cores": 2, "cpu_model": "Test CPU", "python": "3.11.0"},
    "preprocess": {
        "rows_per_second_per_core": 100_000,
        "peak_rss_mib": 500,
        "input_bytes_per_row": 500,
        "output_bytes_per_row": 400,
    },
    "serving": {"rows_per_second_per_core": 50_000},
}
PRICES = {
    "region": "us-east-1",
    "source": "https://example.test/prices",
    "retrieved": "2026-01-02",
    "verified": True,
    "prices": {
        "ml.m5.xlarge": {"processing": 0.2, "transform": 0.3, "verified": True},
        "ml.c5.xlarge": {"processing": 0.5},
    },
}


def write(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(json.dumps(document))
    return path


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    return write(tmp_path / "rates.json", RATES), write(tmp_path / "prices.json", PRICES)


def cli(files: tuple[Path, Path], *arguments: str) -> list[str]:
    rates, table = files
    return [*arguments, "--measurements", str(rates), "--prices", str(table)]


def settings(
    files: tuple[Path, Path], rows: int, kind: str = "ml.m5.xlarge", startup_minutes: float = 8
) -> capacity.Settings:
    args = capacity._parser().parse_args(
        cli(files, "--rows", str(rows), "--instance-type", kind, "--startup-minutes",
            str(startup_minutes))
    )  # fmt: skip
    return capacity.settings_from(args, rows)


def test_preprocess_is_start_up_then_transfer_then_compute_on_the_physical_cores(
    files: tuple[Path, Path],
) -> None:
    rows, instances = 30_000_000, 3
    step = settings(files, rows).plan(instances, 1).preprocess
    kind = instance_type("ml.m5.xlarge")
    assert (kind.vcpus, kind.cores, kind.network_gbps) == (4, 2, 1.25)
    # one worker per vCPU (memory holds 26 of 500 MiB), on the type's 2 physical cores
    assert step.workers == 4 and step.cores_used == 2
    compute = rows / (100_000 * 2 * instances)
    transfer = rows * (500 + 400) / instances / (1.25e9 / 8)
    assert step.compute_s == pytest.approx(compute)
    assert step.transfer_s == pytest.approx(transfer)
    assert step.wall_s == pytest.approx(8 * 60 + transfer + compute)  # download, script, upload
    assert step.cost == pytest.approx(instances * step.wall_s / 3600 * 0.2)  # billed from start


def test_transform_scores_on_every_core_while_its_input_streams(files: tuple[Path, Path]) -> None:
    rows = 30_000_000
    step = settings(files, rows).plan(1, 2).transform
    compute = rows / (50_000 * 2 * 2)
    transfer = rows * 400 / 2 / (1.25e9 / 8)  # it reads Preprocess's output
    assert step.compute_s == pytest.approx(compute) and step.transfer_s == pytest.approx(transfer)
    assert step.wall_s == pytest.approx(8 * 60 + max(compute, transfer))
    assert step.cost == pytest.approx(2 * step.wall_s / 3600 * 0.3)


def test_the_pipeline_is_both_steps_one_after_the_other(files: tuple[Path, Path]) -> None:
    plan = settings(files, 5_000_000).plan(2, 1)
    assert plan.wall_s == pytest.approx(plan.preprocess.wall_s + plan.transform.wall_s)
    assert plan.cost == pytest.approx(
        2 * plan.preprocess.wall_s / 3600 * 0.2 + plan.transform.wall_s / 3600 * 0.3
    )


def test_memory_bounds_the_workers_and_a_type_too_small_is_refused(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    heavy = json.loads(json.dumps(RATES))
    heavy["preprocess"]["peak_rss_mib"] = 3000  # c5.xlarge: 8 GiB x 0.8 holds 2
    rates = write(tmp_path / "heavy.json", heavy)
    step = settings((rates, files[1]), 1_000_000, "ml.c5.xlarge").plan(1, 1).preprocess
    assert step.workers == math.floor(8 * 1024 * capacity.MEMORY_SHARE / 3000) == 2
    assert step.cores_used == 2
    heavy["preprocess"]["peak_rss_mib"] = 8 * 1024
    write(rates, heavy)
    with pytest.raises(capacity.CommandFailed, match="one Preprocess worker peaked at 8192 MiB"):
        settings((rates, files[1]), 1_000_000, "ml.c5.xlarge").plan(1, 1)


def test_a_wider_input_moves_more_bytes_at_the_same_compute_rate(files: tuple[Path, Path]) -> None:
    args = capacity._parser().parse_args(
        cli(files, "--rows", "1000", "--instance-type", "ml.m5.xlarge", "--bytes-per-row", "2000")
    )
    rates = capacity.settings_from(args, 1000).rates
    assert rates.input_bytes_per_row == 2000
    assert rates.output_bytes_per_row == pytest.approx(2000 * 400 / 500)
    assert rates.preprocess_per_core == 100_000 and rates.serving_per_core == 50_000


def test_the_recommendation_meets_the_deadline_with_no_instance_to_spare(
    files: tuple[Path, Path],
) -> None:
    chosen = settings(files, 300_000_000)
    deadline = 30 * 60
    best = capacity.recommend(chosen, deadline)
    p, t = best.preprocess.instances, best.transform.instances
    assert t > 1 and best.wall_s <= deadline and best.fits
    # cost grows with every instance (each pays its start-up): one fewer in either step
    # would be cheaper, so it must miss the deadline or not fit Preprocess's volume
    fewer = chosen.plan(p - 1, t)
    assert fewer.wall_s > deadline or not fewer.preprocess.fits
    assert chosen.plan(p, t - 1).wall_s > deadline


def test_preprocess_gets_the_instances_its_volume_needs(files: tuple[Path, Path]) -> None:
    rows = 2_000_000_000
    chosen = settings(files, rows)
    best = capacity.recommend(chosen, 10 * 3600)  # time enough: the volume decides
    stored = rows * (500 + 400) / 2**30  # GiB of input and output in all
    usable = capacity.VOLUME_GIB * capacity.VOLUME_USABLE
    assert best.preprocess.instances == math.ceil(stored / usable)
    assert best.transform.instances == 1
    assert not chosen.plan(best.preprocess.instances - 1, 1).preprocess.fits
    lines = capacity.describe(chosen.plan(1, 1))
    assert lines[-1] == (
        f"WILL NOT FIT: Preprocess stores {stored:.0f} GiB per instance (input and output) on "
        f"a 30 GiB volume: give it at least {math.ceil(stored / usable)} instances, or set "
        f"processing_volume_size_gb to at least {math.ceil(stored / 0.9)}"
    )


def settings_with_volume(files: tuple[Path, Path], rows: int, volume_gb: int) -> capacity.Settings:
    args = capacity._parser().parse_args(
        cli(files, "--rows", str(rows), "--instance-type", "ml.m5.xlarge",
            "--volume-gb", str(volume_gb))
    )  # fmt: skip
    return capacity.settings_from(args, rows)


def test_the_stages_volume_decides_what_fits_and_what_the_fix_is(
    files: tuple[Path, Path],
) -> None:
    """--volume-gb is the stage's processing_volume_size_gb: the share that fits an
    instance, the counts recommended, and the size the message asks for."""
    rows = 100_000_000
    stored = rows * (500 + 400) / 2**30  # 83.8 GiB of input and output on one instance
    needed = math.ceil(stored / 0.9)  # 94: a tenth of the volume kept for the rest
    assert settings(files, rows).volume_gib == 30  # without --volume-gb: the stage's default
    assert not settings_with_volume(files, rows, needed - 1).plan(1, 1).fits
    assert settings_with_volume(files, rows, needed).plan(1, 1).fits
    # the plan without the volume's constraint: one instance per step when it fits
    best = capacity.recommend(settings_with_volume(files, rows, needed), 10 * 3600)
    assert (best.preprocess.instances, best.transform.instances) == (1, 1)
    small = capacity.recommend(settings_with_volume(files, rows, 30), 10 * 3600)
    assert small.preprocess.instances == math.ceil(stored / (30 * 0.9)) == 4
    # what the footnotes and the refusal say
    lines, _ = capacity.run(
        capacity._parser().parse_args(
            cli(files, "--rows", str(rows), "--instance-type", "ml.m5.xlarge",
                "--volume-gb", "500")
        )
    )  # fmt: skip
    assert (
        "Preprocess's volume: 500 GiB per instance (processing_volume_size_gb, --volume-gb), "
        "90 % of it for the instance's input and output"
    ) in lines
    assert not any(line.startswith("WILL NOT FIT") for line in lines)
    with pytest.raises(capacity.NoCountMeetsDeadline, match=(
        r"even 100 Preprocess instances need 84 GiB each on a 60 GiB volume "
        r"\(processing_volume_size_gb: raise it to at least 94\)"
    )):  # fmt: skip
        capacity.recommend(settings_with_volume(files, 10**10, 60), 24 * 3600)


def test_no_count_meets_a_deadline_shorter_than_the_start_ups(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code = capacity.main(
        cli(files, "--rows", "1000", "--instance-type", "ml.m5.xlarge", "--deadline", "15m")
    )
    assert code == EXECUTION_FAILED
    out, err = capsys.readouterr()
    assert "the two jobs' start-up alone (16 min) is not within it" in out
    assert err.strip().splitlines() == ["pipelines.capacity: no count meets the deadline (above)"]


def test_a_markdown_row_without_a_count_is_explained_under_the_table(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code = capacity.main(
        cli(files, "--rows", "1000,3000000000", "--instance-type", "ml.m5.xlarge",
            "--deadline", "20m", "--markdown")
    )  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert code == EXECUTION_FAILED
    assert out[2].startswith("| 1,000 | 17 min |") and "| 1 + 1 | 17 min |" in out[2]
    assert out[3].startswith("| 3,000,000,000 |") and "| none up to 100 |" in out[3]
    assert out[4].startswith("3,000,000,000 rows: no count up to 100 per step meets the deadline")


def test_no_count_meets_a_deadline_the_work_outlasts_at_the_cap(files: tuple[Path, Path]) -> None:
    chosen = settings(files, 3_000_000_000)
    with pytest.raises(capacity.NoCountMeetsDeadline) as raised:
        capacity.recommend(chosen, 20 * 60)
    fastest = chosen.plan(100, 100)
    assert fastest.fits and 16 * 60 < 20 * 60 < fastest.wall_s
    assert raised.value.exit_code == EXECUTION_FAILED
    assert f"100 instances per step still take {capacity.duration(fastest.wall_s)}" in str(
        raised.value
    )
    with pytest.raises(capacity.NoCountMeetsDeadline, match="even 100 Preprocess instances "
                       "need 84 GiB each on a 30 GiB volume"):  # fmt: skip
        capacity.recommend(settings(files, 10**10), 24 * 3600)  # 10^10 x 900 B / 100


def test_the_cli_prints_both_steps_the_pipeline_and_where_its_numbers_come_from(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code = capacity.main(
        cli(files, "--rows", "100000000", "--instance-type", "ml.m5.xlarge", "--deadline", "2h")
    )
    out = capsys.readouterr().out
    assert code == SUCCESS
    assert "100,000,000 rows a day, 1 instance(s) per step:" in out
    assert "for the deadline of 2 h 00 min:" in out
    assert re.search(r"^Preprocess +ml\.m5\.xlarge", out, re.MULTILINE)
    assert "rates measured on 2026-01-02 (Test CPU, 2 cores)" in out
    assert "start-up 8 min per job (an estimate)" in out
    assert "NOT verified" not in out  # this table says it was


def test_a_type_without_a_price_is_projected_and_its_cost_named_missing(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code = capacity.main(
        cli(files, "--rows", "1000", "--instance-type", "ml.c5.xlarge", "--deadline", "1h")
    )
    out = capsys.readouterr().out
    assert code == SUCCESS
    assert "no price for ml.c5.xlarge transform in" in out and "no price" in out.splitlines()[3]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--rows", "0", "--instance-type", "ml.m5.xlarge"], "--rows 0 must be at least 1"),
        (["--rows", "1e6", "--instance-type", "ml.m5.xlarge"], "--rows '1e6' is not a whole"),
        (["--rows", "10", "--instance-type", "ml.g5.xlarge"],
         "ml.g5.xlarge is not in pipelines/instance_types.py"),
        (["--rows", "10", "--instance-type", "ml.m5.xlarge", "--deadline", "2x"],
         "--deadline '2x' is not a duration: write it as 2h, 90m, 1h30m or 3600s"),
        (["--rows", "10", "--instance-type", "ml.m5.xlarge", "--deadline", "0h"],
         "--deadline '0h' must be longer than zero"),
        (["--rows", "10", "--instance-type", "ml.m5.xlarge", "--instances", "101"],
         "--instances 101 must be 1 to 100"),
        (["--rows", "10", "--instance-type", "ml.m5.xlarge", "--bytes-per-row", "0"],
         "--bytes-per-row 0 must be more than 0"),
        (["--rows", "10", "--instance-type", "ml.m5.xlarge", "--volume-gb", "0"],
         "--volume-gb must be a whole number from 1 to 16384 (GB of storage per Processing "
         "instance, AWS's range for VolumeSizeInGB), got 0"),
        (["--rows", "10", "--instance-type", "ml.m5.xlarge", "--volume-gb", "16385"],
         "--volume-gb must be a whole number from 1 to 16384"),
        (["--rows", "10", "--instance-type", "ml.m5.xlarge", "--volume-gb", "1.5"],
         "argument --volume-gb: invalid int value: '1.5'"),
        (["--instance-type", "ml.m5.xlarge"], "the following arguments are required: --rows"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(
    files: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    arguments: list[str],
    message: str,
) -> None:
    try:
        code = capacity.main(cli(files, *arguments))
    except SystemExit as exited:  # argparse's refusals end there, with the same code
        code = exited.code  # type: ignore[assignment]
    assert code == USAGE_ERROR
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pipelines.capacity: "), captured.err
    assert message in lines[0]
    assert captured.out == ""


def test_unreadable_measurements_and_prices_are_refused_with_the_fix(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--rows", "10", "--instance-type", "ml.m5.xlarge"]
    missing = tmp_path / "none.json"
    assert capacity.main([*base, "--measurements", str(missing)]) == USAGE_ERROR
    assert f"measurements {missing} do not exist: run python -m benchmarks.throughput --record" in (
        capsys.readouterr().err
    )
    partial = write(tmp_path / "partial.json", {"preprocess": {}, "serving": {}})
    assert capacity.main([*base, "--measurements", str(partial)]) == USAGE_ERROR
    assert "lacks a positive preprocess.rows_per_second_per_core" in capsys.readouterr().err
    bad = write(tmp_path / "bad-prices.json", {"prices": {"ml.m5.xlarge": {"processing": -1}}})
    assert capacity.main([*base, "--measurements", str(files[0]), "--prices", str(bad)]) == 2
    assert "ml.m5.xlarge processing must be a positive USD per hour" in capsys.readouterr().err


def test_price_per_hour_reads_the_shipped_table_or_one_given() -> None:
    shipped = prices.load_table()
    assert (
        prices.price_per_hour("ml.m5.xlarge", "transform")
        == (shipped["prices"]["ml.m5.xlarge"]["transform"])
    )
    own = {"path": "mine.json", "prices": {"ml.m5.xlarge": {"transform": 9.5}}}
    assert prices.price_per_hour("ml.m5.xlarge", "transform", own) == 9.5
    with pytest.raises(prices.UnknownPrice) as unknown:
        prices.price_per_hour("ml.m5.xlarge", "processing", own)
    assert str(unknown.value).startswith("no processing price for ml.m5.xlarge in mine.json")
    with pytest.raises(ValueError, match="job must be one of processing, transform"):
        prices.price_per_hour("ml.m5.xlarge", "training", own)  # type: ignore[arg-type]


def test_the_shipped_price_table_says_its_region_source_date_and_what_is_unverified() -> None:
    table = prices.load_table()
    assert table["region"] == "us-east-1" and table["currency"] == "USD"
    assert table["source"].startswith("https://aws.amazon.com/sagemaker/pricing/")
    date.fromisoformat(table["retrieved"])
    assert table["evidence"]
    for name, entry in table["prices"].items():
        instance_type(name)  # every priced type has its vCPUs and memory
        assert isinstance(entry["verified"], bool), name
        assert set(entry) - {"verified"} <= set(prices.JOBS), name
    page = (REPO / "docs" / "capacity.md").read_text(encoding="utf-8")
    if not all(entry["verified"] for entry in table["prices"].values()):
        assert "not verified" in page.lower() and "stage_runtime/sagemaker_prices.json" in page


def test_the_shipped_measurements_say_when_where_and_how_they_were_taken() -> None:
    document = json.loads(capacity.MEASUREMENTS.read_text(encoding="utf-8"))
    date.fromisoformat(document["measured_on"])
    assert document["command"].startswith("python -m benchmarks.throughput ")
    assert "--record" in document["command"]
    machine = document["machine"]
    assert machine["cores"] >= 1 and machine["cpu_model"] and machine["python"]
    rates = capacity.load_measurements()
    assert rates.preprocess_per_core > 0 and rates.serving_per_core > 0
    assert rates.input_bytes_per_row > 0 and rates.output_bytes_per_row > 0


README_TABLE = (
    "<!-- python -m pipelines.capacity --markdown: tests/test_capacity.py checks this table -->"
)


def test_the_readme_table_is_what_the_command_prints(capsys: pytest.CaptureFixture[str]) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert README_TABLE in readme
    command = re.search(r"`(python -m pipelines\.capacity [^`]+--markdown)`", readme)
    assert command, "README.md names the command that printed its table"
    capacity.main(command.group(1).split()[3:])
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    lines = readme.split(README_TABLE, 1)[1].lstrip("\n").splitlines()
    shown = lines[: next(i for i, line in enumerate(lines) if not line.startswith("|"))]
    assert shown == printed, "the table should read:\n" + "\n".join(printed)


def test_the_instance_table_knows_each_types_cores_and_baseline_bandwidth() -> None:
    assert instance_type("ml.m5.large").cores == 1
    assert instance_type("ml.c5.9xlarge").cores == 18
    assert instance_type("ml.m5.24xlarge").network_gbps == 25.0
    assert instance_type("ml.r5.4xlarge").network_gbps == 5.0


def test_the_benchmark_records_the_file_the_plan_reads(tmp_path: Path) -> None:
    from benchmarks import throughput

    output = tmp_path / "measurements.json"
    code = throughput.main(
        ["--rows", "3000", "--stack-rows", "3000", "--repeat", "1",
         "--workdir", str(tmp_path / "work"), "--record", "--output", str(output)]
    )  # fmt: skip
    assert code == 0
    document = json.loads(output.read_text(encoding="utf-8"))
    assert document["preprocess"]["rows"] == 3000
    assert document["command"] == (
        "python -m benchmarks.throughput --rows 3000 --stack-rows 3000 --repeat 1 --record"
    )
    assert document["machine"]["cores"] >= 1 and document["machine"]["cpu_model"]
    serving = document["serving"]
    assert serving["rows_per_second_per_core"] == round(
        serving["rows_per_second_machine"] / document["machine"]["cores"]
    )
    rates = capacity.load_measurements(output)
    assert rates.input_bytes_per_row == pytest.approx(
        (tmp_path / "work" / "quality-3000" / "in" / "batch.csv").stat().st_size / 3000, abs=0.1
    )
