"""Preference datasets and training jobs (see the trainer issue)."""
