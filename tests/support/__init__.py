"""Test doubles of external systems (an OpenAI-compatible server, a tiny local model) and their fixtures."""
