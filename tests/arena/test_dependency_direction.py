"""The leaderboard and the trainer read the arena, never the other way round (issue 10 §6)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from arena import hooks

ARENA = Path(__file__).resolve().parents[2] / "arena"


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_no_arena_module_imports_the_apps_that_read_it():
    offenders = {str(path.relative_to(ARENA.parent)): sorted(m for m in _imported_modules(path)
                                                            if m.split(".")[0] in {"leaderboard", "trainer", "judges"})
                 for path in ARENA.rglob("*.py") if "migrations" not in path.parts}
    assert {path: mods for path, mods in offenders.items() if mods} == {}


def test_the_apps_register_their_hooks_when_django_loads(db):
    from leaderboard.providers import latest_default_ratings
    from leaderboard.tasks import leaderboard_refit_soon
    from trainer.tasks import training_trigger_soon

    assert leaderboard_refit_soon in hooks._after_vote and training_trigger_soon in hooks._after_vote
    assert hooks._ratings_provider == [latest_default_ratings]
    assert hooks.contender_ratings([]) == {}  # no snapshot yet: the provider answers, with nothing


def test_without_registrations_the_arena_runs_nothing_and_sees_no_ratings(monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(hooks, "_after_vote", [])
    monkeypatch.setattr(hooks, "_ratings_provider", [])
    hooks.after_vote_run()
    assert hooks.contender_ratings([1, 2]) == {}
    hooks.after_vote_subscribe(lambda: calls.append("ran"))
    hooks.after_vote_subscribe(hooks._after_vote[0])  # the same callback twice runs once
    hooks.after_vote_run()
    assert calls == ["ran"]
    hooks.contender_ratings_provide(lambda ids: {i: (1000.0, 990.0, 1010.0) for i in ids})
    assert hooks.contender_ratings([7]) == {7: (1000.0, 990.0, 1010.0)}


@pytest.mark.parametrize("app", ["leaderboard", "trainer"])
def test_the_readers_do_import_the_arena(app):
    assert any(m.split(".")[0] == "arena" for path in (ARENA.parent / app).rglob("*.py")
               for m in _imported_modules(path))


def test_leaderboard_services_never_import_its_tasks():
    """tasks -> services, one way: the reader's entry point that enqueues refits lives in tasks.py."""
    services = ARENA.parent / "leaderboard" / "services.py"
    tree = ast.parse(services.read_text())
    relative = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 1}
    assert "tasks" not in relative and "leaderboard.tasks" not in _imported_modules(services)
