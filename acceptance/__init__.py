"""The acceptance run (#35): what the docs call unproven on AWS, checked in a team's own sandbox
accounts by one command (``python -m acceptance``, ``make aws-acceptance``), and against the
emulator in ``make test``.

``catalogue`` names every check and the docs' claim it settles, ``plan`` states the time and
instance-minutes before anything starts, ``flow`` runs the preflight, the steps and a teardown
that always runs, ``report`` writes the verdicts as JSON and Markdown. Being built: the steps
after ``register`` come next; until a check's step exists it is reported as skipped, and
nothing is reported as passed without the evidence read.
"""
