"""A shadow run's comparisons, for people: an HTML page and the Markdown of a job summary.

The prod reviewer reads the Markdown in the deploy workflow's job summary (a table per day:
rows by both, decisions flipped, PSI per answer, the gates' verdicts) and opens the page,
kept as the run's artifact, for the distributions and the largest disagreements. Both are
made from the comparison documents ``pipelines/shadow_comparison.py`` writes, one per day,
so what the two say cannot differ.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from typing import Any

from local_mode.report import html_page


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def decision_line(decision: Mapping[str, Any]) -> str:
    """One line for the decision's change: flips, changed labels or differences."""
    if decision["kind"] == "threshold":
        return (
            f"{decision['flips']} flipped at {decision['column']} >= {decision['threshold']:g} "
            f"({_rate(decision['flip_rate'])}: {decision['to_positive']} up, "
            f"{decision['to_negative']} down)"
        )
    if decision["kind"] == "label":
        return (
            f"{decision['changed']} {decision['column']} changed ({_rate(decision['change_rate'])})"
        )
    if not decision.get("rows"):
        return f"no row with both {decision['column']} values"
    return (
        f"{decision['column']}: mean difference {decision['mean_difference']:+.4g}, mean "
        f"absolute {decision['mean_absolute_difference']:.4g}, p99 absolute "
        f"{decision['p99_absolute_difference']:.4g}"
    )


def code(value: Any) -> str:
    """``value`` as a Markdown code span that shows it literally, whatever it holds: ids and
    labels come from production's rows, and a job summary renders Markdown (and some
    HTML). The fence is longer than any run of backticks inside; line breaks become spaces."""
    text = " ".join(str(value).splitlines()) or " "
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    return f"{fence} {text} {fence}"


def _psi(comparison: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{name} {output['psi']:.3f}" if output["psi"] is not None else f"{name} n/a"
        for name, output in comparison["outputs"].items()
    )


def _gates(comparison: Mapping[str, Any]) -> str:
    gates = comparison.get("gates") or {}
    return ", ".join(f"{side} {verdict}" for side, verdict in gates.items()) or "n/a"


def markdown(title: str, comparisons: Mapping[str, Mapping[str, Any]]) -> str:
    """The job summary: one row per day, then each day's largest disagreements (a few)."""
    lines = [
        f"### {title}",
        "",
        "| day | rows by both | only champion / candidate | decisions | PSI | gates |",
        "| --- | ---: | ---: | --- | --- | --- |",
    ]
    for day, comparison in comparisons.items():
        rows = comparison["rows"]
        lines.append(
            f"| {day} | {rows['both']} | {rows['champion_only']} / {rows['candidate_only']} | "
            f"{decision_line(comparison['decision'])} | {_psi(comparison)} | "
            f"{_gates(comparison)} |"
        )
    for day, comparison in comparisons.items():
        largest = comparison["largest_disagreements"][:5]
        if largest:
            shown = ", ".join(
                f"{code(row['id'])} {code(row['champion'])} -> {code(row['candidate'])}"
                for row in largest
            )
            lines += ["", f"{day}, largest disagreements: {shown}"]
    return "\n".join(lines) + "\n"


def _charts(day: str, comparison: Mapping[str, Any]) -> list[tuple[str, Any]]:
    import plotly.graph_objects as go

    charts = []
    for name, output in comparison["outputs"].items():
        if output["type"] == "numeric":
            edges = output["bin_edges"]
            bounds = ["", *(f"{edge:.3g}" for edge in edges), ""]
            labels = [f"{low}..{high}" for low, high in itertools.pairwise(bounds)]
        else:
            labels = output["categories"]
        figure = go.Figure(
            [
                go.Bar(name="champion", x=labels, y=output["champion_shares"]),
                go.Bar(
                    name="candidate", x=labels, y=output["candidate_shares"] or [0] * len(labels)
                ),
            ]
        )
        figure.update_layout(
            barmode="group", yaxis_title="share of rows", height=320,
            margin={"l": 40, "r": 20, "t": 20, "b": 40},
        )  # fmt: skip
        psi = output["psi"]
        charts.append((f"{day}: {name} (PSI {'n/a' if psi is None else f'{psi:.3f}'})", figure))
    return charts


def html(title: str, comparisons: Mapping[str, Mapping[str, Any]]) -> str:
    """The page: per day its facts and largest disagreements, and each answer's histograms."""
    facts: list[tuple[str, Any]] = []
    charts: list[tuple[str, Any]] = []
    for day, comparison in comparisons.items():
        rows = comparison["rows"]
        facts += [
            (f"{day}: rows", f"{rows['both']} by both, {rows['champion_only']} by the champion "
                             f"only, {rows['candidate_only']} by the candidate only"),
            (f"{day}: decisions", decision_line(comparison["decision"])),
            (f"{day}: PSI", _psi(comparison)),
            (f"{day}: gates", _gates(comparison)),
            *(
                (f"{day}: disagreement", f"{row['id']}: {row['champion']} -> {row['candidate']}")
                for row in comparison["largest_disagreements"]
            ),
        ]  # fmt: skip
        charts += _charts(day, comparison)
    return html_page(title, facts, charts)
