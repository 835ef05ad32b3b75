"""The acceptance run (#35): what the docs call unproven on AWS, checked in a team's own sandbox
accounts by one command, and against the emulator in ``make test``.

Built in parts: ``catalogue`` names every check and the docs' claim it settles, ``plan``
states the time and cost before anything starts, ``report`` writes the verdicts as JSON and
Markdown. The flow that produces the evidence (base infrastructure, promotion, applies, runs,
teardown) and the command are the next parts of #35; until they exist no check is run, and
nothing here reports one as passed.
"""
