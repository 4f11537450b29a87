"""Judges, judge runs and judgments (see the judges issue)."""
