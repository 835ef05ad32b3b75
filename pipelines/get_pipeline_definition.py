"""Render a pipeline definition as JSON, offline (no credentials, no network needed).

    python -m pipelines.get_pipeline_definition \\
        --module-name pipelines.batch_inference.pipeline \\
        --kwargs '{"region": "eu-west-1", "role": "arn:...", "default_bucket": "my-bucket"}' \\
        --file-name build/pipeline-definition.json

Without ``--file-name`` the definition goes to stdout and the summary to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common.files import check_writable, write_text_atomically
from pipelines._cli import (
    USAGE_ERROR,
    CliError,
    build_pipeline,
    check_kwargs,
    describe,
    load_get_pipeline,
    parse_json_option,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="get_pipeline_definition", description="Render a pipeline definition as JSON."
    )
    parser.add_argument(
        "-n", "--module-name", required=True, help="e.g. pipelines.batch_inference.pipeline"
    )
    parser.add_argument(
        "-kwargs", "--kwargs", default=None, help="get_pipeline() arguments as a JSON object"
    )
    parser.add_argument(
        "-f", "--file-name", default=None, type=Path, help="write here instead of stdout"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.file_name is not None:
            check_writable(args.file_name)
        kwargs = parse_json_option("--kwargs", args.kwargs, dict)
        get_pipeline = load_get_pipeline(args.module_name)
        check_kwargs(get_pipeline, kwargs)
        definition = json.loads(build_pipeline(get_pipeline, kwargs).definition())
    except (CliError, ValueError) as error:
        print(f"get_pipeline_definition: error: {error}", file=sys.stderr)
        return USAGE_ERROR
    text = json.dumps(definition, indent=2) + "\n"
    if args.file_name is None:
        sys.stdout.write(text)
        print(describe(definition), file=sys.stderr)
        return 0
    try:
        write_text_atomically(args.file_name, text)
    except ValueError as error:
        print(f"get_pipeline_definition: error: {error}", file=sys.stderr)
        return USAGE_ERROR
    print(f"wrote {args.file_name}\n{describe(definition)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
