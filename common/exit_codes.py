"""The exit codes the pipeline CLIs share (run_pipeline, smoke_run, check_model, the local
executor, get_pipeline_definition), so a script can tell the outcomes apart the same way for
each. ``build.py`` has its own, finer table (docs/promotion.md, Exit codes); this one is
docs/operations.md's."""

import sys
from pathlib import Path

import botocore.exceptions

SUCCESS = 0
AWS_ERROR = 1  # AWS refused or could not be reached
USAGE_ERROR = 2  # bad arguments or inputs: nothing was started
EXECUTION_FAILED = 3  # the run ran and did not succeed (or, for the smoke run, scored nothing)


class CommandFailed(Exception):
    """What a CLI prints in one line, and the exit code it ends with."""

    def __init__(self, message: str, exit_code: int = USAGE_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# what a stage CLI's main reports in one line (report_failure) instead of a traceback
REPORTED = (
    CommandFailed,
    ValueError,  # an S3 URI in the stage's tfvars that is not one
    botocore.exceptions.ClientError,
    botocore.exceptions.BotoCoreError,
)


def report_failure(program: str, tfvars: Path, error: Exception) -> int:
    """Print ``error`` as the CLI's one line on stderr; return its exit code."""
    if isinstance(error, CommandFailed):
        print(f"{program}: {error}", file=sys.stderr)
        return error.exit_code
    if isinstance(error, botocore.exceptions.ClientError | botocore.exceptions.BotoCoreError):
        print(f"{program}: AWS error: {error}", file=sys.stderr)
        return AWS_ERROR
    print(f"{program}: {tfvars}: {error}", file=sys.stderr)
    return USAGE_ERROR
