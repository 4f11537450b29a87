"""python manage.py seed_demo_judge: simulated votes on the pooled demo answers and a scripted judge audited on them."""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from arena.models import PoolResponse
from judges.demo import DEMO_JUDGE, demo_judge_seed, demo_votes_seed


class Command(BaseCommand):
    help = ("After seed_demo: cast simulated votes (clearly marked: voters demo-sim-*, named battles that no "
            "default leaderboard counts) on every pair and triple of pooled demo answers, then run the scripted "
            f"judge {DEMO_JUDGE!r} over them (both orders, 2 replicates, 3 perturbations) and audit it. Idempotent.")

    def handle(self, *args: Any, **options: Any) -> None:
        if not PoolResponse.objects.exists():
            raise CommandError("no pooled answers: run manage.py seed_demo first")
        added = demo_votes_seed()
        audit = demo_judge_seed()
        self.stdout.write(f"simulated votes on pooled answers: {added} added (not human votes; not rated)")
        self.stdout.write(f"scripted judge audit {audit.pk}: /judges/audits/{audit.pk}" if audit
                          else "the scripted demo judge is already audited")
