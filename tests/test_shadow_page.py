"""A shadow run's comparisons as the prod reviewer reads them (pipelines/shadow_page.py):
the job summary's Markdown and the page, made from the same comparison documents."""

from __future__ import annotations

from html.parser import HTMLParser

import numpy as np
import pyarrow as pa
import pytest
from markdown_it import MarkdownIt

from pipelines import shadow_page
from pipelines.shadow_comparison import Decision, compare

HOSTILE = "<img src=x onerror=alert(1)> `| a`` b\nline"


def comparisons() -> dict[str, dict]:
    rng = np.random.default_rng(3)
    days = {}
    for day, moved in (("2026-12-01", 0.0), ("2026-12-02", 0.3)):
        ids = [f"r{i}" for i in range(200)] + [HOSTILE]
        old = rng.uniform(0, 1, 201)
        new = np.clip(old + moved * (np.arange(201) % 2), 0, 1)
        new[-1] = 1 - old[-1]  # the hostile id disagrees most
        champion = pa.table({"id": ids, "prediction": old})
        candidate = pa.table({"id": ids[1:], "prediction": new[1:]})
        days[day] = compare(
            champion, candidate, "id", ["prediction"], Decision("prediction", "threshold", 0.5)
        ) | {"gates": {"champion": "passed", "candidate": "warned"}}
    return days


def test_the_summary_has_a_row_per_day_with_the_comparisons_numbers() -> None:
    days = comparisons()
    text = shadow_page.markdown("Shadow of version 2 against version 1", days)
    tokens = MarkdownIt().enable("table").parse(text)
    cells = [t.content for t in tokens if t.type == "inline"]
    for day, comparison in days.items():
        row = cells[cells.index(day) : cells.index(day) + 6]
        decision = comparison["decision"]
        assert row[1] == str(comparison["rows"]["both"]) == "200"
        assert row[2] == "1 / 0"
        assert row[3].startswith(f"{decision['flips']} flipped at prediction >= 0.5 (")
        assert f"{decision['flip_rate']:.2%}" in row[3]
        assert row[4] == f"prediction {comparison['outputs']['prediction']['psi']:.3f}"
        assert row[5] == "champion passed, candidate warned"


def test_production_ids_and_labels_are_shown_literally_in_the_summary() -> None:
    """An id from production's rows cannot inject Markdown or HTML into the job summary."""
    days = comparisons()
    rendered = MarkdownIt().render(shadow_page.markdown("t", days))
    assert "<img" not in rendered
    flat = " ".join(HOSTILE.splitlines())
    assert f"<code>{flat.replace('<', '&lt;').replace('>', '&gt;')}</code>" in rendered
    for value in ("plain", "a`b", "``", "`x`"):
        (token,) = MarkdownIt().parseInline(shadow_page.code(value))[0].children or []
        assert (token.type, token.content) == ("code_inline", value)


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_the_page_shows_each_days_histograms_and_disagreements_escaped() -> None:
    days = comparisons()
    page = _Page()
    page.feed(shadow_page.html("Shadow of version 2", days))
    assert page.tags.count("section") == 2  # one answer column, two days
    assert "img" not in page.tags
    text = "".join(page.text)
    for day, comparison in days.items():
        assert f"{day}: prediction (PSI {comparison['outputs']['prediction']['psi']:.3f})" in text
        assert shadow_page.decision_line(comparison["decision"]) in text
    assert HOSTILE.splitlines()[0] in text  # shown as text


@pytest.mark.parametrize(
    ("decision", "line"),
    [
        ({"kind": "label", "column": "label", "changed": 3, "change_rate": 0.25},
         "3 label changed (25.00%)"),
        ({"kind": "regression", "column": "y", "rows": 0}, "no row with both y values"),
        ({"kind": "regression", "column": "y", "rows": 4, "mean_difference": -0.5,
          "mean_absolute_difference": 1.25, "p99_absolute_difference": 2.0},
         "y: mean difference -0.5, mean absolute 1.25, p99 absolute 2"),
    ],
)  # fmt: skip
def test_each_kind_of_decision_in_one_line(decision: dict, line: str) -> None:
    assert shadow_page.decision_line(decision) == line
