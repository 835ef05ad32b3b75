"""The acceptance run's parts (#35): the catalogue of unproven claims, the plan stated before a
run, and the report. The flow and the command come next; nothing here runs a check."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from acceptance import catalogue, plan, report

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "deploying-to-aws.md"


def test_every_check_is_named_once_and_read_after_a_step_of_the_flow() -> None:
    ids = [check.id for check in catalogue.CHECKS]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", check_id) for check_id in ids)
    with pytest.raises(ValueError, match="unknown step 'deploy'"):
        catalogue.Check("x", "a claim", "deploy", "evidence")


def test_the_guides_unproven_list_links_every_check_and_names_no_other() -> None:
    """Section 8's table is the catalogue: a check the docs do not list, or a listed id
    with no check, fails here."""
    section = GUIDE.read_text().split("## 8. What stays unproven", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| `([a-z0-9-]+)` \|", section, flags=re.MULTILINE)
    assert listed == [check.id for check in catalogue.CHECKS]


def test_a_report_holds_every_check_and_passes_none_by_default(tmp_path: Path) -> None:
    verdicts = report.complete(
        [report.Verdict("image-digest-at-registration", "needs-real-account", "moto: none")],
        "the flow is not built yet",
    )
    assert [v.check for v in verdicts] == [c.id for c in catalogue.CHECKS]
    assert {v.status for v in verdicts} == {"needs-real-account", "skipped"}
    json_path, markdown_path = report.write(verdicts, {"project": "acc-x"}, tmp_path)
    document = json.loads(json_path.read_text())
    assert document["counts"] == {
        "passed": 0, "failed": 0, "skipped": len(catalogue.CHECKS) - 1, "needs-real-account": 1,
    }  # fmt: skip
    rows = [line for line in markdown_path.read_text().splitlines() if line.startswith("| ")]
    assert len(rows) == 2 + len(catalogue.CHECKS)  # the header and its rule, a row per check


@pytest.mark.parametrize(
    ("check", "status", "message"),
    [("no-such-check", "passed", "unknown check"), ("start-token", "ok", "is not one of")],
)
def test_a_verdict_names_a_known_check_and_status(check: str, status: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        report.Verdict(check, status, "")


def test_a_table_cell_stays_one_cell() -> None:
    verdict = report.Verdict("start-token", "failed", "two executions | a\nsecond line")
    row = report.to_markdown([verdict], {}).splitlines()[-1]
    assert row.endswith("| failed | two executions \\| a second line |")


def test_the_plan_counts_instance_minutes_of_every_job_and_the_endpoint() -> None:
    prod = json.loads((REPO / "prod-config.tfvars.json").read_text())
    runs = sum(plan.PIPELINE_RUNS.values())
    # two Processing and two Transform instances per run, both ml.m5.xlarge
    assert plan.plan(prod).instance_minutes == {"ml.m5.xlarge": 2 * 2 * runs * plan.JOB_MINUTES}
    with_endpoint = {**prod, "endpoint": {"instance_type": "ml.c5.large", "min_instance_count": 2}}
    planned = plan.plan(with_endpoint)
    assert planned.instance_minutes["ml.c5.large"] == 2 * plan.ENDPOINT_MINUTES * 1.5
    assert planned.minutes == plan.plan(prod).minutes + plan.ENDPOINT_MINUTES
    serverless = {**prod, "endpoint": {"serverless": {"memory_size_in_mb": 2048}}}
    assert set(plan.plan(serverless).instance_minutes) == {"ml.m5.xlarge"}  # billed per use


def test_the_plan_prices_only_what_it_is_told() -> None:
    planned = plan.plan({"transform_instance_type": "ml.c5.xlarge"})
    total, unpriced = planned.cost({"ml.m5.xlarge": 0.6})
    assert (round(total, 2), unpriced) == (0.35, ["ml.c5.xlarge"])  # 35 minutes at 0.6/h
    statement = planned.statement({"ml.m5.xlarge": 0.6})
    assert "no price given for ml.c5.xlarge: pass --price TYPE=USD_PER_HOUR" in statement
    assert statement.startswith(f"expected time: about {planned.minutes} minutes")


@pytest.mark.parametrize("text", ["m5.xlarge=0.2", "ml.m5.xlarge", "ml.m5.xlarge=-1", "ml.x=nan"])
def test_a_bad_price_is_refused_with_the_form_to_use(text: str) -> None:
    with pytest.raises(
        ValueError, match=re.escape("write TYPE=USD_PER_HOUR, e.g. ml.m5.xlarge=0.23")
    ):
        plan.parse_price(text)
    assert plan.parse_price("ml.m5.xlarge=0.23") == ("ml.m5.xlarge", 0.23)
