"""The training baseline and the drift measures, checked against direct numpy computations."""

from __future__ import annotations

import json
import math
import re
from collections import Counter

import numpy as np
import pytest

from examples.breast_cancer import model
from pipelines.batch_inference import quality


def test_numeric_statistics_are_numpys() -> None:
    values = np.random.default_rng(1).normal(5.0, 2.0, 10_000)
    values[::100] = np.nan
    stats = quality.numeric_statistics(values)
    present = values[~np.isnan(values)]
    assert stats["count"] == 10_000 and stats["null_share"] == pytest.approx(0.01)
    assert (stats["min"], stats["max"]) == (present.min(), present.max())
    assert stats["mean"] == pytest.approx(present.mean()) and stats["std"] == pytest.approx(
        present.std()
    )
    deciles = np.quantile(present, np.arange(1, 10) / 10, method="lower")
    assert stats["bin_edges"] == pytest.approx(list(deciles))
    assert sum(stats["bin_shares"]) == pytest.approx(1.0)
    assert stats["bin_shares"] == pytest.approx([0.1] * 10, abs=0.002)  # deciles


def test_repeated_values_merge_their_bins() -> None:
    stats = quality.numeric_statistics(np.array([0.0] * 90 + [1.0] * 10))
    assert stats["bin_edges"] == [0.0]  # nine deciles, one distinct value
    assert stats["bin_shares"] == pytest.approx([0.9, 0.1])


def test_psi_is_the_textbook_sum() -> None:
    expected, actual = [0.2, 0.3, 0.5], [0.1, 0.4, 0.5]
    direct = sum((a - e) * math.log(a / e) for e, a in zip(expected, actual, strict=True))
    assert quality.psi(expected, actual) == pytest.approx(direct)
    assert quality.psi(expected, expected) == 0.0
    assert quality.psi([0.5, 0.5, 0.0], [0.5, 0.5, 0.0]) == 0.0
    assert math.isfinite(quality.psi([1.0, 0.0], [0.0, 1.0]))  # empty bins are floored
    with pytest.raises(ValueError, match="3 baseline bins but 2 batch bins"):
        quality.psi([0.2, 0.3, 0.5], [0.5, 0.5])


def test_a_batch_from_the_training_distribution_has_a_psi_near_zero() -> None:
    """The documented tolerance: below 0.01 for 50,000 rows of the same distribution, while a
    shift of one standard deviation is a major one (above 0.25 is the usual alarm)."""
    rng = np.random.default_rng(7)
    baseline = quality.compute_baseline({"x": rng.normal(0, 1, 50_000)})["features"]["x"]
    same, shifted = (
        quality.FeatureDrift("x", baseline),
        quality.FeatureDrift("x", baseline),
    )
    same.update(rng.normal(0, 1, 50_000))
    shifted.update(rng.normal(1.0, 1, 50_000))
    assert same.report()["psi"] < 0.01
    assert shifted.report()["psi"] > 0.25


def test_feeding_blocks_equals_one_pass_and_null_shares_are_compared() -> None:
    rng = np.random.default_rng(3)
    baseline = quality.compute_baseline({"x": rng.normal(0, 1, 5_000)})["features"]["x"]
    batch = rng.normal(0.3, 1.2, 9_000)
    batch[::10] = np.nan
    whole, blocks = quality.FeatureDrift("x", baseline), quality.FeatureDrift("x", baseline)
    whole.update(batch)
    for start in range(0, batch.size, 1_000):
        blocks.update(batch[start : start + 1_000])
    assert blocks.report() == whole.report()
    report = whole.report()
    present = batch[~np.isnan(batch)]
    counts = np.bincount(np.searchsorted(baseline["bin_edges"], present, side="left"), minlength=10)
    direct = quality.psi(baseline["bin_shares"], list(counts / counts.sum()))
    assert report["psi"] == pytest.approx(direct)
    assert report["null_share"] == pytest.approx(0.1)
    assert report["null_share_change"] == pytest.approx(0.1)  # the baseline had none
    assert report["rows"] == 9_000


def test_categorical_features_compare_frequencies() -> None:
    baseline = quality.compute_baseline({"segment": ["a"] * 60 + ["b"] * 30 + [None] * 10})
    segment = baseline["features"]["segment"]
    assert segment["type"] == "categorical"
    assert segment["frequencies"] == pytest.approx({"a": 60 / 90, "b": 30 / 90})
    assert (segment["null_share"], segment["other_share"]) == (0.1, 0.0)
    drift = quality.FeatureDrift("segment", segment)
    drift.update(["a"] * 30 + ["b"] * 30 + ["c"] * 30 + [""] * 10)
    report = drift.report()
    assert drift.shares() == pytest.approx([1 / 3, 1 / 3, 1 / 3])
    expected = quality.psi([60 / 90, 30 / 90, 0.0], [1 / 3, 1 / 3, 1 / 3])
    assert report["psi"] == pytest.approx(expected)
    assert report["null_share_change"] == pytest.approx(0.0)


def test_an_empty_batch_reports_no_psi() -> None:
    baseline = quality.compute_baseline({"x": [1.0, 2.0, 3.0]})["features"]["x"]
    report = quality.FeatureDrift("x", baseline).report()
    assert report == {"rows": 0, "psi": None, "null_share": None, "null_share_change": None}


def test_bad_baseline_input_is_refused() -> None:
    with pytest.raises(ValueError, match="feature 'b' has 2 values, the others 3"):
        quality.compute_baseline({"a": [1, 2, 3], "b": [1, 2]})


def test_class_labels_as_predictions_get_their_shares_per_class() -> None:
    """A multi-class classifier's decision is a label: the baseline keeps each class's share
    (nulls apart), and a batch's drift over them is measured like a categorical feature's."""
    labels = ["setosa"] * 5 + ["versicolor"] * 3 + ["virginica"] * 2 + [None] * 2
    document = quality.compute_baseline({"a": list(range(12))}, predictions=labels)
    predictions = document["predictions"]
    assert predictions["type"] == "categorical" and predictions["count"] == 12
    assert predictions["null_share"] == pytest.approx(2 / 12)
    assert predictions["frequencies"] == pytest.approx(
        {"setosa": 0.5, "versicolor": 0.3, "virginica": 0.2}
    )
    same = quality.FeatureDrift("predictions", predictions)
    same.update(["setosa"] * 5 + ["versicolor"] * 3 + ["virginica"] * 2)
    assert same.report()["psi"] == pytest.approx(0.0, abs=1e-12)
    shifted = quality.FeatureDrift("predictions", predictions)
    shifted.update(["virginica"] * 8 + ["setosa"] * 2)
    assert shifted.report()["psi"] > 0.25


def test_columns_the_schema_types_as_strings_stay_categorical_when_they_read_as_numbers() -> None:
    document = quality.compute_baseline(
        {"zip": ["01", "02", "01"], "n": ["1", "2", "3"]},
        predictions=["0", "1", "1"],
        categorical={"zip"},
        categorical_predictions=True,
    )
    assert document["features"]["zip"]["frequencies"] == pytest.approx({"01": 2 / 3, "02": 1 / 3})
    assert document["features"]["n"]["type"] == "numeric"
    assert document["predictions"]["frequencies"] == pytest.approx({"0": 1 / 3, "1": 2 / 3})
    scores = quality.compute_baseline({"n": [1, 2, 3]}, predictions=["0.5", "0.25", "1"])
    assert scores["predictions"]["type"] == "numeric"  # numbers, unless told they are labels


def test_the_sample_model_carries_its_baseline(tmp_path) -> None:
    trained = model.train()
    path = model.write_baseline(trained, tmp_path / "baseline.json")
    document = json.loads(path.read_text())
    assert document["format"] == quality.FORMAT
    assert set(document["features"]) == set(model.feature_names())
    assert document["rows"] == 455  # the training split of 569 rows
    predictions = document["predictions"]
    assert 0.0 <= predictions["min"] <= predictions["max"] <= 1.0  # probabilities
    assert all(f["null_share"] == 0.0 for f in document["features"].values())


def _mixed_baseline(rng: np.random.Generator) -> dict:
    return quality.compute_baseline(
        {
            "x": rng.normal(0, 1, 5_000),
            "segment": list(rng.choice(["a", "b", "c"], 5_000)),
        }
    )


def test_a_batch_measured_in_parts_and_merged_equals_one_pass() -> None:
    """Preprocess measures each file on its own (a retried read must not count twice) and
    merges: the merged report is the one-pass report, and categorical counts are the rows'."""
    rng = np.random.default_rng(3)
    baseline = _mixed_baseline(rng)
    xs, segments = rng.normal(0.3, 1, 3_000), list(rng.choice(["a", "b", "d", ""], 3_000))
    whole = quality.BatchDrift.load(baseline, ["x", "segment"])
    whole.features["x"].update(xs)
    whole.features["segment"].update(segments)
    merged = whole.fresh()
    for start, end in ((0, 1_000), (1_000, 3_000)):
        part = merged.fresh()
        part.features["x"].update(xs[start:end])
        counts = Counter(segments[start:end])
        nulls = counts.pop("", 0)
        part.features["segment"].update_counts(dict(counts), nulls)
        merged.merge(part)
    assert merged.report() == whole.report()
    report = whole.report()
    assert report["features"]["segment"]["null_share"] == pytest.approx(segments.count("") / 3_000)
    assert report["drift_score"] == max(r["psi"] for r in report["features"].values())
    assert [w["feature"] for w in report["worst_features"]] == sorted(
        report["features"], key=lambda n: -report["features"][n]["psi"]
    )


def test_only_the_features_both_know_are_compared() -> None:
    baseline = _mixed_baseline(np.random.default_rng(4))
    drift = quality.BatchDrift.load(baseline, ["x", "not-in-baseline"])
    assert list(drift.features) == ["x"]
    assert drift.report()["baseline_features_not_in_batch"] == ["segment"]
    assert drift.report()["drift_score"] is None  # no rows seen: nothing to say


_NUMERIC = {"type": "numeric", "null_share": 0.0}
_OFF_BY_ONE = {**_NUMERIC, "bin_edges": [1.0], "bin_shares": [1.0]}
_BINS = {**_NUMERIC, "bin_edges": [1.0], "bin_shares": [0.5, 0.5]}
_CATEGORIES = {
    "type": "categorical",
    "null_share": 0.0,
    "frequencies": {"a": 1.0},
    "other_share": 0.0,
}
_FORMAT_ERROR = f"not a {quality.FORMAT} document"


def _doc(x: object) -> dict:
    return {"format": quality.FORMAT, "features": {"x": x}}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], f"{_FORMAT_ERROR} (format None)"),
        ({"format": "other/2"}, f"{_FORMAT_ERROR} (format 'other/2')"),
        ({"format": quality.FORMAT, "features": []}, "its 'features' is not an object"),
        (_doc(_NUMERIC), "feature 'x': bin_edges and bin_shares must be lists"),
        (_doc(_OFF_BY_ONE), "feature 'x': bin_shares do not fit bin_edges"),
        (_doc({"type": "ordinal"}), "feature 'x': type 'ordinal' is neither numeric nor"),
        (_doc("numeric"), "feature 'x': type None is neither numeric nor categorical"),
        (_doc({**_BINS, "null_share": None}), "feature 'x': null_share is not a share"),
        (_doc({**_BINS, "null_share": float("nan")}), "feature 'x': null_share is not a share"),
        (_doc({**_BINS, "bin_shares": {"0": 1}}), "must be lists"),
        (_doc({**_BINS, "bin_shares": [0.5, float("nan")]}), "a bin share is not a share"),
        (_doc({**_BINS, "bin_shares": [0.5, True]}), "a bin share is not a share"),
        (_doc({**_BINS, "bin_edges": [float("inf")]}), "bin_edges must be finite, increasing"),
        (_doc({**_BINS, "bin_edges": [2, 1], "bin_shares": [0.3, 0.3, 0.4]}), "increasing"),
        (_doc({**_BINS, "bin_edges": ["1"]}), "bin_edges must be finite, increasing"),
        (_doc({**_CATEGORIES, "frequencies": ["a"]}), "frequencies must map categories"),
        (_doc({**_CATEGORIES, "frequencies": {"a": "x"}}), "frequencies must map categories"),
        (_doc({**_CATEGORIES, "frequencies": {"a": 2.0}}), "frequencies must map categories"),
        (_doc({k: v for k, v in _CATEGORIES.items() if k != "other_share"}), "other_share"),
        (_doc({**_CATEGORIES, "other_share": float("-inf")}), "other_share is not a share"),
    ],
)
def test_a_baseline_of_another_shape_is_named_not_misread(document: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        quality.BatchDrift.load(document, ["x"])


@pytest.mark.parametrize(
    "statistics", [_BINS, _CATEGORIES, {**_NUMERIC, "bin_edges": [], "bin_shares": []}]
)
def test_a_well_formed_feature_loads(statistics: dict) -> None:
    assert list(quality.BatchDrift.load(_doc(statistics), ["x"]).features) == ["x"]
