"""Promotion of an approved model package from the dev registry into a stage account.

Small functions over boto3 clients passed in, so each can be tested against the emulator and
the CLI (``build.py``) stays a thin shell; one module per concern (errors, names, source,
stage, artifacts, target package, stage files) and ``orchestration.promote`` running them in
an order that never leaves anything half-made. ``utils`` is the façade ``build.py`` imports.
"""
