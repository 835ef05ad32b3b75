"""The exit codes the pipeline CLIs share (run_pipeline, smoke_run, the local executor,
get_pipeline_definition), so a script can tell the outcomes apart the same way for each.
``build.py`` has its own, finer table (README, Exit codes)."""

SUCCESS = 0
AWS_ERROR = 1  # AWS refused or could not be reached
USAGE_ERROR = 2  # bad arguments or inputs: nothing was started
EXECUTION_FAILED = 3  # the run ran and did not succeed (or, for the smoke run, scored nothing)
