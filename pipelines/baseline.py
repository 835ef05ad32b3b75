"""Write a model's data-quality baseline from its training features and holdout predictions.

    python -m pipelines.baseline --schema feature-schema.json --features train.csv
        [--predictions holdout-predictions.csv --prediction-column NAME
         [--categorical-predictions]] --output baseline.json

For a model trained outside this repository: the same document ``quality.compute_baseline``
gives the sample model, read the way Preprocess reads a batch, by the feature schema's types
(``string`` columns are categories even when they read as numbers, an empty value is a null,
values trimmed). Predictions are numbers (scores, binned) unless a value is not a number or
``--categorical-predictions`` says they are class labels (shares per class). It then prints
how to register the file with the model package as its
``DriftCheckBaselines.ModelDataQuality.Statistics``: the ``aws s3 cp`` of the upload and the
boto3 lines (as ``examples/registration.py`` does).

Refused in one line, nothing written: a schema Preprocess cannot load, a features file
lacking a schema column or holding a value its type refuses, a predictions file without the
named column or with no rows.

Exit codes (common/exit_codes.py): 0 the baseline was written; 2 refused.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from common.exit_codes import SUCCESS, CommandFailed
from pipelines.batch_inference import preprocess, quality

BLOCK_SIZE = 1 << 22


def read_columns(path: Path, names: list[str], what: str) -> dict[str, list[pa.Array]]:
    """The named columns of a headered CSV as trimmed strings, block by block."""
    try:
        header = preprocess.read_header(path)
    except FileNotFoundError:
        raise CommandFailed(f"{what} {path} does not exist") from None
    except (UnicodeDecodeError, OSError) as error:
        raise CommandFailed(f"{what} {path} cannot be read as UTF-8 CSV: {error}") from None
    header = header or []
    missing = [name for name in names if name not in header]
    if missing:
        raise CommandFailed(
            f"{what} {path} lacks the column(s) {', '.join(map(repr, missing))}; "
            "give the file the schema names (or fix the names)"
        )
    blocks: dict[str, list[pa.Array]] = {name: [] for name in names}
    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=BLOCK_SIZE, column_names=header, skip_rows=1),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                include_columns=names,
                column_types={name: pa.string() for name in names},
                strings_can_be_null=False,
            ),
        )
        for batch in reader:
            for name in names:
                blocks[name].append(pc.utf8_trim_whitespace(batch.column(name)))
    except pa.ArrowInvalid as error:
        message = " ".join(str(error).split())
        raise CommandFailed(f"{what} {path} cannot be read as CSV: {message}") from None
    return blocks


def _values(feature: preprocess.Feature, blocks: list[pa.Array], what: str) -> Any:
    """One column's values as ``compute_baseline`` takes them: float64 with NaN for nulls
    (numbers), or strings with None (categories)."""
    for block in blocks:
        if not preprocess.accepts(
            preprocess.Feature(feature.name, feature.type, nullable=True), block
        ):
            raise CommandFailed(
                f"{what}: column {feature.name!r} holds a value that is not "
                f"{'an' if feature.type == 'int' else 'a'} {feature.type} (the schema's type); "
                "fix the file or the schema"
            )
    text = pa.chunked_array(blocks, pa.string()) if blocks else pa.chunked_array([], pa.string())
    nulled = pc.if_else(pc.equal(pc.utf8_length(text), 0), pa.scalar(None, pa.string()), text)
    if feature.type == "string":
        return nulled.to_pylist()
    if feature.type == "int":
        nulled = pc.replace_substring_regex(nulled, r"^\+", "")
    return pc.cast(nulled, pa.float64()).to_numpy(zero_copy_only=False)


def build(args: argparse.Namespace) -> dict[str, Any]:
    try:
        schema = preprocess.Schema.load(args.schema)
    except preprocess.UsageError as error:
        raise CommandFailed(f"--schema: {error}") from None
    names = [feature.name for feature in schema.features]
    blocks = read_columns(args.features, names, "--features")
    features = {f.name: _values(f, blocks[f.name], "--features") for f in schema.features}
    predictions = None
    if args.predictions is not None:
        column = args.prediction_column
        found = read_columns(args.predictions, [column], "--predictions")[column]
        text = pa.chunked_array(found, pa.string()).to_pylist() if found else []
        if not text:
            raise CommandFailed(f"--predictions {args.predictions} has no rows")
        predictions = np.array([value or None for value in text], dtype=object)
        labels = args.categorical_predictions
        if not labels:  # numbers unless a value says otherwise
            as_float = preprocess.Feature(column, "float", nullable=True)
            labels = not preprocess.accepts(as_float, pa.array(text, pa.string()))
        if not labels:
            predictions = np.array([np.nan if v is None else float(v) for v in predictions])
    return quality.compute_baseline(
        features,
        predictions=predictions,
        categorical={f.name for f in schema.features if f.type == "string"},
        categorical_predictions=args.categorical_predictions,
    )


def registration_lines(output: Path) -> str:
    """How the baseline joins its model package (stdout: for the operator to adapt)."""
    uri = f"s3://<bucket>/<prefix>/{output.name}"
    return f"""To register it with the model package (as examples/registration.py):

aws s3 cp {output} {uri} --content-type {quality.CONTENT_TYPE}

sagemaker.create_model_package(
    ModelPackageGroupName="<group>",
    # ... InferenceSpecification, ModelApprovalStatus as for your model ...
    DriftCheckBaselines={{
        "ModelDataQuality": {{
            "Statistics": {{"ContentType": "{quality.CONTENT_TYPE}", "S3Uri": "{uri}"}}
        }}
    }},
)
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.baseline", description=__doc__)
    parser.add_argument("--schema", type=Path, required=True, help="the feature schema")
    parser.add_argument("--features", type=Path, required=True, help="training features CSV")
    parser.add_argument("--predictions", type=Path, help="the model's holdout predictions CSV")
    parser.add_argument("--prediction-column", help="the predictions file's column")
    parser.add_argument(
        "--categorical-predictions",
        action="store_true",
        help="the predictions are class labels even if they read as numbers (0, 1, 2)",
    )
    parser.add_argument("--output", type=Path, required=True, help="where to write the JSON")
    args = parser.parse_args(argv)
    if (args.predictions is None) != (args.prediction_column is None):
        parser.error("--predictions and --prediction-column go together")
    try:
        document = build(args)
    except CommandFailed as error:
        print(f"pipelines.baseline: {error}", file=sys.stderr)
        return error.exit_code
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    kind = (document["predictions"] or {}).get("type", "none")
    print(
        f"wrote {args.output}: {document['rows']} rows, {len(document['features'])} features, "
        f"predictions {kind}",
        file=sys.stderr,
    )
    print(registration_lines(args.output))
    return SUCCESS


if __name__ == "__main__":
    sys.exit(main())
