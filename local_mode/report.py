"""A local run's report: one static HTML file (no server, no network) per run.

What an operator asks after a run, from what the run left: the rows funnel (read, rejected,
scored), why rows were rejected, each feature's drift against the model's baseline next to
the gate's limit, the predictions' histogram against the baseline's, the steps' times, and
what the run cost (per step, total, per 1,000 rows, and the prices' date and source).
A model-quality evaluation's report (``model_quality``: what the day's marker recorded)
shows the day's metrics against its delayed labels, the registered headline and the drop.
The charts are plotly's, with its JavaScript inlined from the Python package (no CDN), so the
file opens anywhere, offline.

    from local_mode.report import RunReport, write_report
    write_report(Path("build/demo/prod-report.html"), RunReport(...))
"""

from __future__ import annotations

import html
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from common.files import write_text_atomically
from pipelines.batch_inference import quality

OVER, UNDER = "#c0392b", "#2e86c1"


@dataclass
class RunReport:
    """What the report shows; ``summaries`` are Preprocess's ``summary/<host>.json``."""

    title: str
    record: dict[str, Any]  # the execution record (local_mode.executor)
    summaries: list[dict[str, Any]]
    baseline: dict[str, Any] | None = None  # the model's baseline document
    predictions: np.ndarray | None = None  # what the Transform wrote: scores or labels
    notes: list[str] = field(default_factory=list)
    # a day's marker's model_quality (stage_runtime/model_quality.py): metrics, coverage,
    # headline, registered, quality_drop, verdict
    model_quality: dict[str, Any] | None = None


# the model-quality chart's metrics, in its order (evaluate.py's names)
QUALITY_METRICS = (
    "auc", "accuracy", "precision", "recall", "brier", "calibration_error", "mae", "rmse",
)  # fmt: skip


def _quality_facts(quality: dict[str, Any]) -> list[tuple[str, Any]]:
    """The evaluation's numbers as the table's rows."""
    coverage = quality.get("coverage") or {}
    metrics = quality.get("metrics") or {}
    drop = quality.get("quality_drop")
    return [
        ("model quality", quality.get("verdict", "n/a")),
        *((name, f"{value:.4f}") for name, value in metrics.items() if value is not None),
        (f"registered {quality.get('headline')}", quality.get("registered") or "none"),
        ("quality drop", "unknown" if drop is None else f"{drop:.4f}"),
        ("labels matched", f"{coverage.get('matched')} of {coverage.get('labels')} labels, "
                           f"{coverage.get('predictions')} predictions"),
    ]  # fmt: skip


def _evaluation_figures(report: RunReport) -> list[tuple[str, Any]]:
    """A model-quality evaluation's charts: the day's metrics, the job's time."""
    import plotly.graph_objects as go

    assert report.model_quality is not None
    steps = report.record.get("Steps", [])
    timings = go.Figure(
        go.Bar(
            y=[s["StepName"] for s in steps],
            x=[s.get("DurationSeconds", 0) for s in steps],
            orientation="h",
            marker_color=[OVER if s.get("StepStatus") == "Failed" else UNDER for s in steps],
        )
    )
    timings.update_layout(xaxis_title="seconds")
    figures = [
        ("Model quality against the delayed labels", _quality_chart(report.model_quality)),
        ("Step times", timings),
    ]
    for _, figure in figures:
        figure.update_layout(height=320, margin={"l": 40, "r": 20, "t": 20, "b": 40})
    return figures


def _quality_chart(quality: dict[str, Any]) -> Any:
    """The day's metrics as bars, the registered headline as a dashed line."""
    import plotly.graph_objects as go

    metrics = quality.get("metrics") or {}
    names = [name for name in QUALITY_METRICS if metrics.get(name) is not None]
    headline = quality.get("headline")
    figure = go.Figure(
        go.Bar(
            x=names,
            y=[metrics[name] for name in names],
            marker_color=[
                OVER if name == headline and quality.get("verdict") == "degraded" else UNDER
                for name in names
            ],
        )
    )
    if quality.get("registered") is not None:
        figure.add_hline(
            y=quality["registered"],
            line_dash="dash",
            annotation_text=f"registered {headline} {quality['registered']:.3f}",
        )
    return figure


def _totals(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    reasons: dict[str, int] = {}
    for summary in summaries:
        for kind, rows in summary.get("rejected_by_reason", {}).items():
            reasons[kind] = reasons.get(kind, 0) + rows
    return {
        "read": sum(s["rows_read"] for s in summaries),
        "rejected": sum(s["rows_rejected"] for s in summaries),
        "written": sum(s["rows_written"] for s in summaries),
        "reasons": reasons,
    }


def _features(summaries: list[dict[str, Any]]) -> dict[str, float]:
    """Each feature's largest PSI over the instances (the gate holds each instance's)."""
    found: dict[str, float] = {}
    for summary in summaries:
        drift = (summary.get("quality") or {}).get("drift") or {}
        for name, report in drift.get("features", {}).items():
            if report.get("psi") is not None:
                found[name] = max(found.get(name, 0.0), report["psi"])
    return found


def _gate(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    gates: list[dict[str, Any]] = [
        gate for s in summaries if (gate := (s.get("quality") or {}).get("gate"))
    ]
    if not gates:
        return {}
    order = {"passed": 0, "warned": 1, "failed": 2}
    worst = max(gates, key=lambda g: order.get(g["verdict"], 0))
    breaches = [b for g in gates for b in g["breaches"]]
    return {**worst, "breaches": breaches}


def _scored(record: dict[str, Any]) -> int:
    for step in record.get("Steps", []):
        if step.get("StepType") == "Transform" and step.get("StepStatus") == "Succeeded":
            return int(step.get("Outcome", {}).get("RecordsOut", 0))
    return 0


def figures(report: RunReport) -> list[tuple[str, Any]]:
    """Each chart's title and plotly figure, in the order the page shows them."""
    import plotly.graph_objects as go

    if report.model_quality is not None and not report.summaries:
        return _evaluation_figures(report)
    totals = _totals(report.summaries)
    gate = _gate(report.summaries)
    figures: list[tuple[str, Any]] = []
    funnel = go.Figure(
        go.Funnel(
            y=["read", "valid (not rejected)", "scored"],
            x=[totals["read"], totals["written"], _scored(report.record)],
            textinfo="value+percent initial",
        )
    )
    figures.append(("Rows", funnel))
    reasons = totals["reasons"] or {"none": 0}
    figures.append(
        (
            "Rejected rows by reason",
            go.Figure(go.Bar(x=list(reasons), y=list(reasons.values()), marker_color=UNDER)),
        )
    )
    features = _features(report.summaries)
    limit = gate.get("max_drift_score")
    drift = go.Figure(
        go.Bar(
            x=list(features),
            y=list(features.values()),
            marker_color=[
                OVER if limit is not None and v > limit else UNDER for v in features.values()
            ],
        )
    )
    if limit is not None:
        drift.add_hline(y=limit, line_dash="dash", annotation_text=f"MaxDriftScore {limit:g}")
    drift.update_layout(yaxis_title="PSI against the baseline")
    figures.append(("Drift per feature", drift))
    histogram = _prediction_histogram(report)
    if histogram is not None:
        figures.append(("Predictions against the baseline's", histogram))
    steps = report.record.get("Steps", [])
    timings = go.Figure(
        go.Bar(
            y=[s["StepName"] for s in steps],
            x=[s.get("DurationSeconds", 0) for s in steps],
            orientation="h",
            marker_color=[OVER if s.get("StepStatus") == "Failed" else UNDER for s in steps],
        )
    )
    timings.update_layout(xaxis_title="seconds")
    figures.append(("Step times", timings))
    for _, figure in figures:
        figure.update_layout(height=320, margin={"l": 40, "r": 20, "t": 20, "b": 40})
    return figures


def _prediction_histogram(report: RunReport) -> Any:
    """The batch's predictions over the baseline's prediction bins (scores) or classes
    (labels, then "other": classes the baseline did not keep by name, or new ones), both as
    shares, counted as the drift measures count a feature (``quality.FeatureDrift``)."""
    import plotly.graph_objects as go

    statistics = (report.baseline or {}).get("predictions")
    if report.predictions is None or not statistics:
        return None
    if statistics.get("type") == "categorical":
        labels = [*statistics["frequencies"], "other"]
        expected = [*statistics["frequencies"].values(), statistics["other_share"]]
    elif statistics.get("bin_shares"):
        bounds = [statistics.get("min", 0.0), *statistics["bin_edges"], statistics.get("max", 1.0)]
        labels = [f"{low:.3g}-{high:.3g}" for low, high in itertools.pairwise(bounds)]
        expected = statistics["bin_shares"]
    else:
        return None
    batch = quality.FeatureDrift("predictions", statistics)
    batch.update(report.predictions)
    figure = go.Figure(
        [
            go.Bar(name="baseline (holdout)", x=labels, y=expected),
            go.Bar(name="this run", x=labels, y=batch.shares() or [0.0] * len(labels)),
        ]
    )
    figure.update_layout(barmode="group", yaxis_title="share of rows")
    return figure


def _usd(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.6f}"


def cost_section(record: dict[str, Any]) -> str:
    """The run's cost (the record's ``Cost``, stage_runtime/run_cost.py) as an HTML table:
    each step's instances, seconds and USD, the total, per 1,000 rows scored, and what the
    prices rest on (the table's date and source; "unverified" until checked). Empty when
    the record has no cost."""
    cost = record.get("Cost")
    if not cost:
        return ""
    head = "<tr><th>step</th><th>instances</th><th>seconds</th><th>instance-seconds</th>"
    head += "<th>USD per hour</th><th>USD</th></tr>"
    lines = [head]
    for step in cost.get("steps", []):
        instances = f"{step.get('instance_count')} x {step.get('instance_type')}"
        seconds = "unknown" if step.get("seconds") is None else f"{step['seconds']:.3f}"
        cells = [
            step["step"], instances, seconds, str(step.get("instance_seconds") or "unknown"),
            _usd(step.get("usd_per_hour")), _usd(step.get("usd")),
        ]  # fmt: skip
        if step.get("problem"):
            cells[-1] += f" ({step['problem']})"
        lines.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    per = cost.get("cost_per_1000_rows")
    prices = cost.get("prices", {})
    verified = "verified" if prices.get("verified") else "unverified"
    own = prices.get("stage_prices") or []
    basis = (
        f"on-demand prices of {prices.get('region')}, retrieved {prices.get('retrieved')} "
        f"({verified}) from {prices.get('source')}, table {prices.get('table')}"
        + (f"; the stage's own prices for {', '.join(own)}" if own else "")
    )
    facts = [
        ("total", f"{_usd(cost.get('total_usd'))} {cost.get('currency', 'USD')}"),
        ("per 1,000 rows scored", f"{_usd(per)} {cost.get('currency', 'USD')}"),
        ("rows scored", str(cost.get("rows_scored"))),
        ("prices", basis),
    ]
    if cost.get("unknown"):
        facts.append(("unknown", cost["unknown"]))
    summary = "".join(
        f"<tr><th>{html.escape(k)}</th><td colspan=5>{html.escape(v)}</td></tr>" for k, v in facts
    )
    return f'<h2>Cost</h2><table class="cost">{"".join(lines)}{summary}</table>'


def render(report: RunReport) -> str:
    """The report as one HTML document, plotly's script inlined once."""
    record, gate = report.record, _gate(report.summaries)
    status = record.get("PipelineExecutionStatus", "?")
    facts = [
        ("execution", record.get("PipelineExecutionArn", "")),
        ("status", status),
        ("gate", f"{gate.get('mode', 'n/a')}: {gate.get('verdict', 'n/a')}" if gate else "n/a"),
        *(("breach", breach) for breach in gate.get("breaches", [])),
        *(("failure", reason) for reason in [record.get("FailureReason")] if reason),
        *(_quality_facts(report.model_quality) if report.model_quality is not None else []),
        *(("note", note) for note in report.notes),
    ]
    return html_page(report.title, facts, figures(report), status, cost_section(record))


def html_page(
    title: str,
    facts: list[tuple[str, Any]],
    charts: list[tuple[str, Any]],
    status: str = "",
    extra: str = "",
) -> str:
    """A page of facts (a table) and plotly charts, plotly's script inlined once: a run's
    report, a shadow comparison (``pipelines/shadow_page.py``). ``extra``: HTML (escaped by
    its maker) between the facts and the charts, e.g. a run's cost."""
    rows = "\n".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts
    )
    sections = []
    for index, (heading, figure) in enumerate(charts):
        body = figure.to_html(
            full_html=False,
            include_plotlyjs=index == 0,  # the package's own plotly.min.js, once, inline
            div_id=f"chart-{index}",
            config={"displayModeBar": False, "responsive": True},
        )
        sections.append(f"<section><h2>{html.escape(heading)}</h2>{body}</section>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1rem; }}
th, td {{ text-align: left; padding: 0.2rem 0.8rem; border-bottom: 1px solid #ddd; }}
.status-{html.escape(status)} {{ font-weight: bold; }}
section {{ display: inline-block; width: 48%; min-width: 420px; vertical-align: top; }}
</style></head>
<body>
<h1>{html.escape(title)}</h1>
<table class="status-{html.escape(status)}">
{rows}
</table>
{extra}
{"".join(sections)}
</body></html>
"""


def write_report(path: Path, report: RunReport) -> Path:
    write_text_atomically(path, render(report))
    return path
