"""Data quality against the training baseline: the baseline itself, and drift measures.

A model's baseline is computed once, at training, from the data it was trained on (and its
predictions on a holdout), and travels with the model version as the package's
``DriftCheckBaselines.ModelDataQuality.Statistics`` (``build.py`` copies it across accounts
like the artifact). A batch is then compared with it feature by feature: the population
stability index (PSI) over the baseline's own bins, and the change in null share.

Self-contained (standard library and numpy, both in SageMaker's scikit-learn image), so the
Processing job can ship it beside ``preprocess.py``.

    from pipelines.batch_inference.quality import compute_baseline
    document = compute_baseline({"age": ages, "segment": segments}, predictions=scores)
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

FORMAT = "sagemaker-batch-mlops/baseline/1"
CONTENT_TYPE = "application/json"
BINS = 10
# most frequent categories a categorical feature keeps by name; the rest share "other"
MAX_CATEGORIES = 50
# a share below this counts as this in PSI, so an empty bin gives a large, finite term
PSI_FLOOR = 1e-4


def _numeric(values: Any) -> np.ndarray | None:
    """The values as float64 (None becomes NaN, a null), or None when they are not numbers."""
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return None


def numeric_statistics(values: np.ndarray, bins: int = BINS) -> dict[str, Any]:
    """Count, null share, range, moments and quantile bins of one numeric column.

    ``bin_edges`` are the inner edges (deciles by default, repeated values merged); a value
    falls in bin ``i`` when it is at most edge ``i`` and above edge ``i - 1``.
    """
    present = values[~np.isnan(values)]
    count = int(values.size)
    statistics: dict[str, Any] = {
        "type": "numeric",
        "count": count,
        "null_share": float((count - present.size) / count) if count else 0.0,
    }
    if present.size == 0:
        return {**statistics, "bin_edges": [], "bin_shares": []}
    # observed values as edges (no interpolation), so a repeated value stays in one bin
    quantiles = np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1], method="lower")
    edges = sorted({float(q) for q in quantiles})
    counts = np.bincount(np.searchsorted(edges, present, side="left"), minlength=len(edges) + 1)
    return {
        **statistics,
        "min": float(present.min()),
        "max": float(present.max()),
        "mean": float(present.mean()),
        "std": float(present.std()),
        "bin_edges": edges,
        "bin_shares": [float(c / present.size) for c in counts],
    }


def categorical_statistics(values: Sequence[Any]) -> dict[str, Any]:
    """Count, null share and category frequencies (the most frequent by name, then other)."""
    count = len(values)
    present = [str(v) for v in values if v is not None and str(v) != ""]
    frequencies = Counter(present)
    kept = dict(frequencies.most_common(MAX_CATEGORIES))
    total = len(present)
    return {
        "type": "categorical",
        "count": count,
        "null_share": float((count - total) / count) if count else 0.0,
        "frequencies": {k: v / total for k, v in sorted(kept.items())} if total else {},
        "other_share": (total - sum(kept.values())) / total if total else 0.0,
    }


def _statistics(values: Any, bins: int, categorical: bool) -> dict[str, Any]:
    """Numeric statistics of values that are all numbers, else categorical ones."""
    numbers = None if categorical else _numeric(values)
    if numbers is not None:
        return numeric_statistics(numbers, bins)
    return categorical_statistics(list(values))


def compute_baseline(
    features: Mapping[str, Any],
    predictions: Any | None = None,
    bins: int = BINS,
    *,
    categorical: Collection[str] = (),
    categorical_predictions: bool = False,
) -> dict[str, Any]:
    """The baseline document of a model: call it at training, on the training features.

    ``features`` maps each input column to its values (numbers, or strings for categorical
    columns; None is a null); ``predictions`` are the model's outputs on a holdout, if any:
    scores (numbers, binned) or class labels (strings, their shares per class, as a
    multi-class classifier decides). Columns named in ``categorical``, and the predictions
    with ``categorical_predictions``, are categories even when their values read as numbers
    (a string feature "01", class labels 0/1/2), as the feature schema types them.
    """
    columns: dict[str, Any] = {}
    rows = None
    for name, values in features.items():
        size = len(values)
        if rows is not None and size != rows:
            raise ValueError(f"feature {name!r} has {size} values, the others {rows}")
        rows = size
        columns[name] = _statistics(values, bins, name in categorical)
    prediction_statistics = None
    if predictions is not None:
        prediction_statistics = _statistics(np.ravel(predictions), bins, categorical_predictions)
    return {
        "format": FORMAT,
        "rows": rows or 0,
        "features": columns,
        "predictions": prediction_statistics,
    }


def psi(expected: Sequence[float], actual: Sequence[float], floor: float = PSI_FLOOR) -> float:
    """Population stability index of two share vectors over the same bins.

    ``sum((a - e) * ln(a / e))`` with both shares floored at ``floor``; 0 for equal shares.
    Rules of thumb: below 0.1 stable, 0.1 to 0.25 a moderate shift, above 0.25 a major one.
    """
    if len(expected) != len(actual):
        raise ValueError(f"{len(expected)} baseline bins but {len(actual)} batch bins")
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, floor), max(a, floor)
        total += (a - e) * math.log(a / e)
    return total


class FeatureDrift:
    """A batch's view of one baseline feature, fed block by block (memory flat in rows)."""

    def __init__(self, name: str, baseline: Mapping[str, Any]):
        self.name, self.baseline = name, baseline
        self.rows = self.nulls = 0
        if baseline["type"] == "numeric":
            self._edges = np.asarray(baseline["bin_edges"], dtype=np.float64)
            self._counts = np.zeros(len(baseline["bin_shares"]), dtype=np.int64)
        else:
            self._categories: Counter[str] = Counter()

    def update(self, values: Iterable[Any]) -> None:
        """Add one block: float64 with NaN for nulls (numeric), or strings with None or ""."""
        if self.baseline["type"] == "numeric":
            numbers = _numeric(values if isinstance(values, np.ndarray) else list(values))
            if numbers is None:
                raise ValueError(f"feature {self.name!r}: non-numeric values in a numeric column")
            present = numbers[~np.isnan(numbers)]
            self.rows += numbers.size
            self.nulls += numbers.size - present.size
            if self._counts.size:
                self._counts += np.bincount(
                    np.searchsorted(self._edges, present, side="left"),
                    minlength=self._counts.size,
                )
            return
        block = list(values)
        present = [str(v) for v in block if v is not None and str(v) != ""]
        self.rows += len(block)
        self.nulls += len(block) - len(present)
        self._categories.update(present)

    def update_counts(self, counts: Mapping[str, int], nulls: int) -> None:
        """Add one block of a categorical column already counted (``""`` counts as null)."""
        if self.baseline["type"] == "numeric":
            raise ValueError(f"feature {self.name!r}: counts given for a numeric column")
        empty = counts.get("", 0)
        self.rows += sum(counts.values()) + nulls
        self.nulls += nulls + empty
        self._categories.update({k: v for k, v in counts.items() if k != ""})

    def merge(self, other: FeatureDrift) -> None:
        """Add what ``other`` (the same feature, another part of the batch) has seen."""
        self.rows += other.rows
        self.nulls += other.nulls
        if self.baseline["type"] == "numeric":
            self._counts += other._counts
        else:
            self._categories.update(other._categories)

    def shares(self) -> list[float]:
        """The batch's shares over the baseline's bins (categorical: its categories, other)."""
        if self.baseline["type"] == "numeric":
            total = int(self._counts.sum())
            return [float(c / total) for c in self._counts] if total else []
        known = list(self.baseline["frequencies"])
        total = sum(self._categories.values())
        if not total:
            return []
        named = [self._categories[k] / total for k in known]
        return [*named, 1.0 - sum(named)]

    def report(self) -> dict[str, Any]:
        """PSI against the baseline and the change in null share (None where undefined)."""
        if self.baseline["type"] == "numeric":
            expected = list(self.baseline["bin_shares"])
        else:
            expected = [*self.baseline["frequencies"].values(), self.baseline["other_share"]]
        actual = self.shares()
        null_share = self.nulls / self.rows if self.rows else None
        return {
            "rows": self.rows,
            "psi": psi(expected, actual) if actual and expected else None,
            "null_share": null_share,
            "null_share_change": (
                null_share - self.baseline["null_share"] if null_share is not None else None
            ),
        }


def _share_value(value: Any) -> bool:
    """A finite number from 0 to 1 (JSON's true/false are not numbers here)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0.0 <= value <= 1.0
    )


def _check_statistics(name: str, statistics: Any) -> None:
    """The fields drift needs of one baseline feature, with usable values, or a ValueError."""
    kind = statistics.get("type") if isinstance(statistics, dict) else None
    if kind not in ("numeric", "categorical"):
        raise ValueError(f"feature {name!r}: type {kind!r} is neither numeric nor categorical")
    if not _share_value(statistics.get("null_share")):
        raise ValueError(f"feature {name!r}: null_share is not a share from 0 to 1")
    if kind == "numeric":
        edges, shares = statistics.get("bin_edges"), statistics.get("bin_shares")
        if not isinstance(edges, list) or not isinstance(shares, list):
            raise ValueError(f"feature {name!r}: bin_edges and bin_shares must be lists")
        if len(shares) != len(edges) + (1 if shares else 0):
            raise ValueError(f"feature {name!r}: bin_shares do not fit bin_edges")
        if not all(
            isinstance(e, int | float) and not isinstance(e, bool) and math.isfinite(e)
            for e in edges
        ) or any(a >= b for a, b in itertools.pairwise(edges)):
            raise ValueError(f"feature {name!r}: bin_edges must be finite, increasing numbers")
        if not all(_share_value(v) for v in shares):
            raise ValueError(f"feature {name!r}: a bin share is not a share from 0 to 1")
        return
    frequencies = statistics.get("frequencies")
    if not isinstance(frequencies, dict) or not all(_share_value(v) for v in frequencies.values()):
        raise ValueError(f"feature {name!r}: frequencies must map categories to shares")
    if not _share_value(statistics.get("other_share")):
        raise ValueError(f"feature {name!r}: other_share is not a share from 0 to 1")


class BatchDrift:
    """Every feature a baseline and a batch share, fed block by block; the batch's report.

    ``drift_score`` is the largest PSI over the features: one number a gate and an alarm can
    hold against a threshold, with the worst features named beside it.
    """

    def __init__(self, baseline: Mapping[str, Any], features: Iterable[str]):
        self.baseline = baseline
        known = baseline.get("features", {})
        self.features = {
            name: FeatureDrift(name, known[name]) for name in features if name in known
        }
        self.not_in_batch = sorted(set(known) - set(self.features))

    @classmethod
    def load(cls, document: Any, features: Iterable[str]) -> BatchDrift:
        """Check a baseline document's shape first: a ValueError says what is wrong, so a
        malformed or non-finite document is "unusable", never a crash or a NaN drift score."""
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            found = document.get("format") if isinstance(document, dict) else None
            raise ValueError(f"not a {FORMAT} document (format {found!r})")
        if not isinstance(document.get("features"), dict):
            raise ValueError("its 'features' is not an object")
        for name, statistics in document["features"].items():
            _check_statistics(name, statistics)
        return cls(document, features)

    def fresh(self) -> BatchDrift:
        """An empty tracker over the same features (one file's attempt, merged on success)."""
        return BatchDrift(self.baseline, self.features)

    def merge(self, other: BatchDrift) -> None:
        for name, drift in self.features.items():
            drift.merge(other.features[name])

    def report(self, worst: int = 3) -> dict[str, Any]:
        features = {name: drift.report() for name, drift in self.features.items()}
        scored = sorted(
            ((r["psi"], name) for name, r in features.items() if r["psi"] is not None),
            reverse=True,
        )
        return {
            "drift_score": scored[0][0] if scored else None,
            "worst_features": [{"feature": n, "psi": v} for v, n in scored[:worst]],
            "features": features,
            "baseline_features_not_in_batch": self.not_in_batch,
        }
