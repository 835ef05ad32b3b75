"""The local run report, opened in a real headless browser (Debian's chromium, driven through
its chromedriver by selenium): it renders every chart, logs no console error, fetches nothing
from the network, and a screenshot is kept under build/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

from local_mode.report import OVER, UNDER, RunReport, figures, render, write_report
from pipelines.batch_inference import quality

REPO = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"  # make test installs them


def _summary(host: str, psi: dict[str, float], verdict: str, breaches: list[str]) -> dict:
    return {
        "host": host,
        "rows_read": 1000,
        "rows_written": 990,
        "rows_rejected": 10,
        "rejected_by_reason": {"wrong_type": 7, "field_count": 3},
        "quality": {
            "baseline": "baseline baseline.json: 2 features compared",
            "drift": {
                "drift_score": max(psi.values()),
                "features": {name: {"psi": value} for name, value in psi.items()},
            },
            "gate": {
                "max_rejected_fraction": 0.05,
                "max_drift_score": 0.25,
                "mode": "fail",
                "verdict": verdict,
                "breaches": breaches,
            },
        },
    }


def _run(failed: bool) -> RunReport:
    rng = np.random.default_rng(5)
    baseline = quality.compute_baseline({"x": rng.normal(0, 1, 2000)}, predictions=rng.random(500))
    steps = [
        {"StepName": "Preprocess", "StepType": "Processing", "DurationSeconds": 1.5,
         "StepStatus": "Failed" if failed else "Succeeded"},
    ]  # fmt: skip
    if not failed:
        steps.append(
            {"StepName": "BatchTransform", "StepType": "Transform", "DurationSeconds": 3.0,
             "StepStatus": "Succeeded", "Outcome": {"RecordsOut": 990}}
        )  # fmt: skip
    breach = "DriftScore 0.9 > MaxDriftScore 0.25 (worst features by PSI: x 0.9)"
    record = {
        "PipelineArn": "arn:aws:sagemaker:eu-west-1:000000000000:pipeline/p",
        "PipelineExecutionArn": "arn:aws:sagemaker:eu-west-1:000000000000:pipeline/p/execution/e",
        "PipelineExecutionStatus": "Failed" if failed else "Succeeded",
        "Steps": steps,
        **(
            {"FailureReason": f"Step Preprocess failed: quality gate failed: {breach}"}
            if failed
            else {}
        ),
    }
    summaries = [
        _summary("algo-1", {"x": 0.9 if failed else 0.01, "<segment>": 0.02},
                 "failed" if failed else "passed", [breach] if failed else []),
    ]  # fmt: skip
    return RunReport(
        title="prod: <drifted> run" if failed else "prod: batch run",
        record=record,
        summaries=summaries,
        baseline=baseline,
        predictions=None if failed else rng.random(990),
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # no background traffic: this machine's network is closed, and the report needs none
    flags = (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--window-size=1400,1800",
    )  # fmt: skip
    for flag in flags:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.parametrize("failed", [False, True], ids=["scored run", "run the gate stopped"])
def test_the_report_renders_offline_without_errors(
    browser: webdriver.Chrome, tmp_path: Path, failed: bool
) -> None:
    run = _run(failed)
    page = write_report(tmp_path / "report.html", run)
    browser.get(page.as_uri())
    charts = 4 if failed else 5  # no predictions to compare when nothing was scored
    WebDriverWait(browser, 30).until(
        lambda d: (
            d.execute_script("return document.querySelectorAll('.js-plotly-plot .main-svg').length")
            >= charts
        )
    )
    plots = browser.execute_script("return document.querySelectorAll('.js-plotly-plot').length")
    assert plots == charts
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert errors == []
    # everything came from the file itself: no script, style or font from a CDN
    fetched = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert [url for url in fetched if not url.startswith(("file:", "data:", "blob:"))] == []
    text = browser.find_element("tag name", "body").text
    assert run.title in text  # escaped in the source, shown as written
    if failed:
        assert "fail: failed" in text and "DriftScore 0.9 > MaxDriftScore 0.25" in text
    else:
        assert "fail: passed" in text
    shots = REPO / "build" / "report-screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    name = "stopped" if failed else "scored"
    assert browser.save_screenshot(str(shots / f"run-report-{name}.png"))


def test_the_drift_chart_marks_features_over_the_limit_and_names_are_escaped() -> None:
    run = _run(failed=True)
    (bar,) = dict(figures(run))["Drift per feature"].data
    assert dict(zip(bar.x, bar.marker.color, strict=True)) == {"x": OVER, "<segment>": UNDER}
    head = render(run).split("<script", 1)[0]
    assert "&lt;drifted&gt;" in head and "<drifted>" not in head


def test_a_label_baseline_gets_its_classes_against_the_batchs_shares() -> None:
    """A classifier whose decision is a label: one bar per class of the baseline, then
    "other" for classes it does not name (here a class new in the batch)."""
    baseline = quality.compute_baseline(
        {"x": [1.0, 2.0, 3.0, 4.0]}, predictions=["setosa", "setosa", "virginica", "versicolor"]
    )
    batch = np.array(["setosa", "virginica", "virginica", "unseen", None], dtype=object)
    run = RunReport(title="t", record={}, summaries=[], baseline=baseline, predictions=batch)
    baseline_bar, run_bar = dict(figures(run))["Predictions against the baseline's"].data
    assert list(baseline_bar.x) == list(run_bar.x) == ["setosa", "versicolor", "virginica", "other"]
    assert list(baseline_bar.y) == pytest.approx([0.5, 0.25, 0.25, 0.0])
    assert list(run_bar.y) == pytest.approx([0.25, 0.0, 0.5, 0.25])  # the null left out


def test_a_score_baseline_gets_its_bins_against_the_batchs_shares() -> None:
    baseline = quality.compute_baseline({"x": [0.0] * 4}, predictions=[0.1, 0.2, 0.3, 0.4])
    edges = baseline["predictions"]["bin_edges"]
    run = RunReport(
        title="t", record={}, summaries=[], baseline=baseline,
        predictions=np.array([0.05, 0.4, 0.4, np.nan]),
    )  # fmt: skip
    baseline_bar, run_bar = dict(figures(run))["Predictions against the baseline's"].data
    assert len(run_bar.x) == len(edges) + 1 == len(baseline_bar.y)
    assert list(run_bar.y) == pytest.approx([1 / 3, 0.0, 0.0, 2 / 3])  # NaN is no prediction


def test_the_shadow_page_renders_offline_without_errors(
    browser: webdriver.Chrome, tmp_path: Path
) -> None:
    """The shadow comparison's page (pipelines/shadow_page.py, the same page shell): its
    histograms draw, nothing is fetched, a hostile production id shows as text."""
    from pipelines import shadow_page
    from tests.test_shadow_page import HOSTILE, comparisons

    page = tmp_path / "shadow.html"
    page.write_text(shadow_page.html("prod: shadow of version 2", comparisons()))
    browser.get(page.as_uri())
    WebDriverWait(browser, 30).until(
        lambda d: (
            d.execute_script("return document.querySelectorAll('.js-plotly-plot .main-svg').length")
            >= 2
        )
    )
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert errors == []
    fetched = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert [url for url in fetched if not url.startswith(("file:", "data:", "blob:"))] == []
    assert HOSTILE.splitlines()[0] in browser.find_element("tag name", "body").text


def _evaluation(verdict: str) -> RunReport:
    """A model-quality evaluation's report: the day's marker's model_quality as
    stage_runtime.model_quality records it."""
    auc = 0.49 if verdict == "degraded" else 0.995
    metrics = {
        "auc": auc,
        "accuracy": 0.61,
        "precision": 0.64,
        "recall": 0.87,
        "log_loss": 0.69,
        "brier": 0.25,
        "calibration_error": 0.09,
        "positive_rate": 0.63,
    }
    coverage = {"labels": 1000, "predictions": 998, "matched": 998,
                "labels_without_prediction": 2, "predictions_without_label": 0, "unscored": 0,
                "label_coverage": 0.998}  # fmt: skip
    quality = {"metrics": metrics, "coverage": coverage, "headline": "auc", "registered": 0.996,
               "quality_drop": (0.996 - auc) / 0.996, "verdict": verdict}  # fmt: skip
    record = {
        "PipelineExecutionArn": "arn:aws:sagemaker:eu-west-1:0:pipeline/p-quality/execution/q",
        "PipelineExecutionStatus": "Succeeded",
        "Steps": [{"StepName": "Evaluate", "StepType": "Processing", "DurationSeconds": 0.8,
                   "StepStatus": "Succeeded"}],
    }  # fmt: skip
    return RunReport(
        title="prod: model quality of 2026-12-06", record=record, summaries=[],
        model_quality=quality, notes=["the stage's quality_drop alarm: ALARM"],
    )  # fmt: skip


@pytest.mark.parametrize("verdict", ["degraded", "ok"])
def test_an_evaluations_report_shows_the_days_metrics_against_the_registered_one(
    verdict: str,
) -> None:
    """No rows to draw (the evaluation scores nothing): the day's metrics, the headline red
    when it dropped too far, the registered value as the line it is measured against."""
    run = _evaluation(verdict)
    charts = dict(figures(run))
    assert list(charts) == ["Model quality against the delayed labels", "Step times"]
    (bar,) = charts["Model quality against the delayed labels"].data
    shown = ["auc", "accuracy", "precision", "recall", "brier", "calibration_error"]
    assert list(bar.x) == shown
    assert list(bar.y) == [run.model_quality["metrics"][name] for name in shown]  # type: ignore[index]
    assert bar.marker.color[0] == (OVER if verdict == "degraded" else UNDER)
    assert set(bar.marker.color[1:]) == {UNDER}
    (registered,) = charts["Model quality against the delayed labels"].layout.shapes
    assert registered.y0 == registered.y1 == 0.996
    page = render(run)
    drop = (0.996 - run.model_quality["metrics"]["auc"]) / 0.996  # type: ignore[index]
    assert f"<th>model quality</th><td>{verdict}</td>" in page
    assert f"<th>quality drop</th><td>{drop:.4f}</td>" in page
    assert "<th>registered auc</th><td>0.996</td>" in page
    assert "<th>labels matched</th><td>998 of 1000 labels, 998 predictions</td>" in page


def test_an_evaluations_report_renders_offline_without_errors(
    browser: webdriver.Chrome, tmp_path: Path
) -> None:
    run = _evaluation("degraded")
    page = write_report(tmp_path / "quality.html", run)
    browser.get(page.as_uri())
    WebDriverWait(browser, 30).until(
        lambda d: (
            d.execute_script("return document.querySelectorAll('.js-plotly-plot .main-svg').length")
            >= 2
        )
    )
    assert browser.execute_script("return document.querySelectorAll('.js-plotly-plot').length") == 2
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert errors == []
    fetched = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert [url for url in fetched if not url.startswith(("file:", "data:", "blob:"))] == []
    text = browser.find_element("tag name", "body").text
    assert "registered auc 0.996" in text  # the line's label, drawn by plotly
    assert "quality_drop alarm: ALARM" in text
