"""Promotion logic used by build.py (not implemented yet; see build.py)."""
