"""The champion/candidate comparison of one day's answers (pipelines/shadow_comparison.py):
what the prod approver reads before a switch (#33)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from pipelines.batch_inference import quality
from pipelines.shadow_comparison import ComparisonError, Decision, compare


def answers(ids: list, scores: list[float], labels: list[str] | None = None) -> pa.Table:
    columns = {"id": ids, "prediction": pa.array(scores, pa.float64())}
    if labels is not None:
        columns["label"] = labels
    return pa.table(columns)


def test_flips_at_the_threshold_are_counted_each_way_and_the_largest_listed_by_id() -> None:
    rng = np.random.default_rng(7)
    ids = [f"r{i:04d}" for i in range(1000)]
    old = rng.uniform(0, 1, 1000)
    new = old.copy()
    new[:30] = np.where(old[:30] >= 0.5, 0.1, 0.9)  # 30 rows cross the threshold
    new[30:40] = np.clip(old[30:40] + 0.01, 0, 0.499) * (old[30:40] < 0.5) + old[30:40] * (
        old[30:40] >= 0.5
    )  # small moves that stay on their side
    comparison = compare(
        answers(ids, list(old)), answers(ids, list(new)), "id", ["prediction"],
        Decision("prediction", "threshold", 0.5), sample=5,
    )  # fmt: skip
    decision = comparison["decision"]
    up = int((old[:30] < 0.5).sum())
    assert (decision["flips"], decision["to_positive"], decision["to_negative"]) == (
        30,
        up,
        30 - up,
    )
    assert decision["flip_rate"] == pytest.approx(0.03)
    largest = comparison["largest_disagreements"]
    gaps = np.abs(new - old)
    expected = sorted(range(1000), key=lambda i: (-gaps[i], ids[i]))[:5]
    assert [row["id"] for row in largest] == [ids[i] for i in expected]
    assert (
        largest[0]["champion"] == old[expected[0]] and largest[0]["candidate"] == new[expected[0]]
    )
    json.dumps(comparison, allow_nan=False)  # a JSON document as written


def test_the_distributions_share_the_champions_bins_and_psi_is_the_gates() -> None:
    """Both histograms on the champion's deciles; PSI as the drift gate computes it."""
    rng = np.random.default_rng(1)
    old, new = rng.normal(0, 1, 5000), rng.normal(0.5, 1, 5000)
    ids = list(range(5000))
    comparison = compare(
        answers(ids, list(old)), answers(ids, list(new)), "id", ["prediction"],
        Decision("prediction", "regression"),
    )  # fmt: skip
    output = comparison["outputs"]["prediction"]
    baseline = quality.numeric_statistics(old)
    assert output["bin_edges"] == baseline["bin_edges"]
    assert output["champion_shares"] == baseline["bin_shares"]
    counts = np.bincount(np.searchsorted(baseline["bin_edges"], new), minlength=10)
    assert output["candidate_shares"] == pytest.approx(list(counts / counts.sum()))
    assert output["psi"] == pytest.approx(quality.psi(baseline["bin_shares"], list(counts / 5000)))
    assert output["psi"] > 0.1  # half a standard deviation is a visible shift
    same = compare(
        answers(ids, list(old)), answers(ids, list(old)), "id", ["prediction"],
        Decision("prediction", "regression"),
    )  # fmt: skip
    assert same["outputs"]["prediction"]["psi"] == 0.0
    assert same["largest_disagreements"] == []  # nothing differs: nothing listed


def test_a_regressions_difference_distribution() -> None:
    ids = [str(i) for i in range(100)]
    old = np.arange(100, dtype=float)
    new = old + np.where(np.arange(100) < 50, 1.0, -3.0)
    decision = compare(
        answers(ids, list(old)), answers(ids, list(new)), "id", ["prediction"],
        Decision("prediction", "regression"),
    )["decision"]  # fmt: skip
    assert decision["mean_difference"] == pytest.approx(-1.0)
    assert decision["mean_absolute_difference"] == pytest.approx(2.0)
    assert decision["rmse"] == pytest.approx(np.sqrt(5.0))
    assert decision["max_absolute_difference"] == 3.0
    assert decision["p50_absolute_difference"] == pytest.approx(np.quantile(np.abs(new - old), 0.5))


def test_rows_scored_by_one_model_only_are_counted_not_compared() -> None:
    """ids as numbers on one side and text on the other still join."""
    champion = answers([1, 2, 3, 4], [0.1, 0.2, 0.8, 0.9], ["a", "a", "b", "b"])
    candidate = answers(
        ["2", "3", "4", "5", "6"], [0.2, 0.3, 0.9, 0.5, 0.5], ["a", "a", "b", "b", "a"]
    )
    comparison = compare(
        champion, candidate, "id", ["prediction", "label"], Decision("label", "label")
    )
    assert comparison["rows"] == {
        "champion": 4, "candidate": 5, "both": 3, "champion_only": 1, "candidate_only": 2,
    }  # fmt: skip
    assert comparison["decision"] == {
        "kind": "label", "column": "label", "changed": 1, "change_rate": pytest.approx(1 / 3),
    }  # fmt: skip
    assert comparison["largest_disagreements"] == [{"id": "3", "champion": "b", "candidate": "a"}]
    label = comparison["outputs"]["label"]
    assert label["type"] == "categorical" and label["categories"][-1] == "other"


REGRESSION = Decision("prediction", "regression")


@pytest.mark.parametrize(
    ("champion", "candidate", "decision", "message"),
    [
        (answers(["a", "a"], [0.1, 0.2]), answers(["a"], [0.1]), REGRESSION,
         r"champion's answers name 1 id\(s\) more than once \(e.g. 'a'\)"),
        (answers(["a", None], [0.1, 0.2]), answers(["a"], [0.1]), REGRESSION,
         r"champion's answers hold 1 row\(s\) without an id"),
        (answers(["a"], [0.1]), pa.table({"key": ["a"], "prediction": [0.1]}), REGRESSION,
         "the candidate's answers have no id column 'id'"),
        (answers(["a"], [0.1]), answers(["a"], [0.1]), Decision("score", "regression"),
         "the decision column 'score' is not an answer column"),
        (answers(["a"], [0.1], ["x"]), answers(["a"], [0.1], ["y"]),
         Decision("label", "threshold", 0.5), "a string answer cannot be compared as a number"),
    ],
)  # fmt: skip
def test_answers_that_cannot_be_compared_are_refused_with_the_reason(
    champion: pa.Table, candidate: pa.Table, decision: Decision, message: str
) -> None:
    columns = ["prediction", "label"] if "label" in champion.column_names else ["prediction"]
    with pytest.raises(ComparisonError, match=message):
        compare(champion, candidate, "id", columns, decision)


def test_a_threshold_goes_with_the_threshold_kind_only() -> None:
    for kind, threshold in (("threshold", None), ("regression", 0.5), ("label", 0.5)):
        with pytest.raises(ComparisonError, match="a threshold goes with kind 'threshold' only"):
            Decision("prediction", kind, threshold)  # type: ignore[arg-type]
