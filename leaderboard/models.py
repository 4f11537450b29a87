"""Leaderboard snapshots; the fitting itself lives in leaderboard.ratings (no Django)."""
