"""How a candidate model's answers for a day differ from the champion's, row by row.

The prod approver's question before a switch (#33): on production's own recent rows, would
version N+1 decide differently from version N, how often, for whom? Both models' answers for
the same day (the predictions table's rows: the id and each answer column) are joined by id;
the comparison says:

- rows: scored by each, by both, by one only (and an id answered twice is refused: the
  answers of one execution each are expected);
- per answer column, both distributions on the same bins (the champion's deciles, as a
  baseline's; a text column's categories) and the PSI between them
  (``pipelines/batch_inference/quality.py``'s, the drift gate's own measure);
- the decision: for a score with a threshold, the share of rows whose side of the threshold
  flips (and which way); for a label, the share whose label changes; for a regression, the
  distribution of candidate - champion;
- the largest disagreements by id (a capped sample, largest first, ties by id).

numpy and pyarrow only, deterministic for the same rows (no sampling at random).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.batch_inference import quality

FORMAT = "sagemaker-batch-mlops/shadow-comparison/1"
SAMPLE = 20  # largest disagreements listed per day
Kind = Literal["threshold", "label", "regression"]


class ComparisonError(ValueError):
    """The two days' answers cannot be compared as given; the message says why."""


@dataclass(frozen=True)
class Decision:
    """How an answer column decides: a score against a threshold, a label, or a value."""

    column: str
    kind: Kind
    threshold: float | None = None

    def __post_init__(self) -> None:
        if (self.kind == "threshold") != (self.threshold is not None):
            raise ComparisonError(
                f"decision column {self.column!r}: a threshold goes with kind 'threshold' only"
            )


def _unique_ids(table: pa.Table, id_column: str, side: str) -> pa.Table:
    if id_column not in table.column_names:
        raise ComparisonError(f"the {side}'s answers have no id column {id_column!r}")
    ids = table.column(id_column)
    if ids.null_count:
        raise ComparisonError(f"the {side}'s answers hold {ids.null_count} row(s) without an id")
    counts = pc.value_counts(ids)
    repeated = counts.filter(pc.greater(counts.field("counts"), 1))
    if len(repeated):
        example = repeated.field("values")[0].as_py()
        raise ComparisonError(
            f"the {side}'s answers name {len(repeated)} id(s) more than once (e.g. {example!r}): "
            "compare one execution's answers per model"
        )
    # as text on both sides: a model's table may read its ids as numbers, the other's not
    index = table.schema.get_field_index(id_column)
    return table.set_column(index, id_column, pc.cast(ids, pa.string()))


def _distribution(champion: pa.ChunkedArray, candidate: pa.ChunkedArray) -> dict[str, Any]:
    """Both columns' shares on the champion's bins, and the PSI between them."""
    numeric = pa.types.is_integer(champion.type) or pa.types.is_floating(champion.type)
    if numeric:
        baseline = quality.numeric_statistics(champion.to_numpy(zero_copy_only=False).astype(float))
        values: Any = candidate.to_numpy(zero_copy_only=False).astype(float)
    else:
        baseline = quality.categorical_statistics(champion.to_pylist())
        values = candidate.to_pylist()
    drift = quality.FeatureDrift("answer", baseline)
    drift.update(values)
    report = drift.report()
    if numeric:
        bins = {"bin_edges": baseline["bin_edges"]}
        expected = list(baseline["bin_shares"])
    else:
        bins = {"categories": [*baseline["frequencies"], "other"]}
        expected = [*baseline["frequencies"].values(), baseline["other_share"]]
    return {
        "type": baseline["type"],
        **bins,
        "champion_shares": expected,
        "candidate_shares": drift.shares(),
        "psi": report["psi"],
        "null_share": {"champion": baseline["null_share"], "candidate": report["null_share"]},
    }


def _numbers(column: pa.ChunkedArray) -> np.ndarray:
    if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
        raise ComparisonError(f"a {column.type} answer cannot be compared as a number")
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)


def _decision(
    decision: Decision, champion: pa.ChunkedArray, candidate: pa.ChunkedArray
) -> tuple[dict[str, Any], np.ndarray]:
    """The decision's summary, and each row's disagreement (what ranks the sample)."""
    rows = len(champion)
    if decision.kind == "label":
        before, after = champion.to_pylist(), candidate.to_pylist()
        changed = np.array([a != b for a, b in zip(before, after, strict=True)], dtype=bool)
        flips = int(changed.sum())
        return {
            "kind": "label",
            "column": decision.column,
            "changed": flips,
            "change_rate": flips / rows if rows else None,
        }, changed.astype(np.float64)
    old, new = _numbers(champion), _numbers(candidate)
    difference = new - old
    if decision.kind == "threshold":
        threshold = float(decision.threshold)  # type: ignore[arg-type]
        was, now = old >= threshold, new >= threshold
        up, down = int((now & ~was).sum()), int((was & ~now).sum())
        return {
            "kind": "threshold",
            "column": decision.column,
            "threshold": threshold,
            "flips": up + down,
            "flip_rate": (up + down) / rows if rows else None,
            "to_positive": up,
            "to_negative": down,
        }, np.abs(difference)
    present = difference[~np.isnan(difference)]
    magnitude = np.abs(present)
    summary: dict[str, Any] = {
        "kind": "regression",
        "column": decision.column,
        "rows": int(present.size),
    }
    if present.size:
        summary |= {
            "mean_difference": float(present.mean()),
            "mean_absolute_difference": float(magnitude.mean()),
            "rmse": float(np.sqrt((present**2).mean())),
            **{
                f"p{q}_absolute_difference": float(np.quantile(magnitude, q / 100))
                for q in (50, 90, 99)
            },
            "max_absolute_difference": float(magnitude.max()),
        }
    return summary, np.abs(difference)


def compare(
    champion: pa.Table,
    candidate: pa.Table,
    id_column: str,
    columns: Sequence[str],
    decision: Decision,
    sample: int = SAMPLE,
) -> dict[str, Any]:
    """The comparison of one day's answers (see the module's docstring), as JSON."""
    missing = [
        f"{side} has no {name!r}"
        for side, table in (("champion", champion), ("candidate", candidate))
        for name in columns
        if name not in table.column_names
    ]
    if decision.column not in columns:
        missing.append(f"the decision column {decision.column!r} is not an answer column")
    if missing:
        raise ComparisonError("; ".join(missing))
    champion = _unique_ids(champion, id_column, "champion")
    candidate = _unique_ids(candidate, id_column, "candidate")
    keep = [id_column, *columns]
    joined = (
        champion.select(keep)
        .join(candidate.select(keep), id_column, join_type="inner", right_suffix="__candidate")
        .sort_by(id_column)
    )
    both = joined.num_rows
    left, right = (
        {c: joined.column(c) for c in columns},
        {c: joined.column(f"{c}__candidate") for c in columns},
    )
    summary, disagreement = _decision(decision, left[decision.column], right[decision.column])
    order = np.lexsort((np.arange(both), -np.nan_to_num(disagreement, nan=np.inf)))
    largest = [
        {
            "id": joined.column(id_column)[int(i)].as_py(),
            "champion": left[decision.column][int(i)].as_py(),
            "candidate": right[decision.column][int(i)].as_py(),
        }
        for i in order[:sample]
        if disagreement[int(i)] != 0
    ]
    return {
        "format": FORMAT,
        "rows": {
            "champion": champion.num_rows,
            "candidate": candidate.num_rows,
            "both": both,
            "champion_only": champion.num_rows - both,
            "candidate_only": candidate.num_rows - both,
        },
        "outputs": {c: _distribution(left[c], right[c]) for c in columns},
        "decision": summary,
        "largest_disagreements": largest,
    }
