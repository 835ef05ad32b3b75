"""What the stage's functions run (the schedule, upload and run-outcome Lambdas): partitions and
their markers, executions, the functions' environment, and days' runs. Zipped whole with ``common``
into each function (``lambdas/package.py``), so it imports nothing but ``common``, the standard
library and boto3."""
