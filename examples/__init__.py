"""Runnable examples: a real sample model and the end-to-end local demo."""
