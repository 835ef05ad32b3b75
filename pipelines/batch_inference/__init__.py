"""Batch inference: validate and shape the input (Processing), then score it (Transform)."""
