"""python manage.py seed_demo: a small arena whose first page shows something real."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from arena.models import Contender, PoolResponse, SourceKind
from arena.services import prompt_get_or_create
from arena.transfer.formats import read_records
from arena.transfer.importer import battles_import

DEMO = Path(__file__).resolve().parents[2] / "demo"
GENAI_ARENA = DEMO / "genai_arena_clean_battle_20240220.json"


class Command(BaseCommand):
    help = ("Load the demo arena: four contenders with pre-generated answers to 24 prompts, the real GenAI-Arena "
            "votes (2,061 battles, 13 image models), and, with DEBUG on, an admin/admin superuser. Idempotent.")

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        pool = json.loads((DEMO / "pool.json").read_text())
        for spec in pool["contenders"]:
            Contender.objects.update_or_create(name=spec["name"], defaults={**spec, "source_kind": SourceKind.POOL})
        answers = 0
        for item in pool["prompts"]:
            prompt = prompt_get_or_create(text=item["text"], category=item["category"], language=item["language"])
            for name, text in item["responses"].items():
                PoolResponse.objects.update_or_create(
                    prompt=prompt, contender=Contender.objects.get(name=name),
                    defaults={"text": text, "token_count": len(text.split())},
                )
                answers += 1
        report = battles_import(records=read_records(GENAI_ARENA, "fastchat", allowed_aspects=[]).records)
        Contender.objects.filter(name__startswith="imagenhub_", organization="").update(
            organization="ImagenHub (GenAI-Arena)", license="see model card")
        self.stdout.write(f"pool: {len(pool['contenders'])} contenders, {answers} answers; "
                          f"GenAI-Arena: {report.added} battles added, {report.already_present} already present")
        if settings.DEBUG and not get_user_model().objects.filter(username="admin").exists():
            get_user_model().objects.create_superuser("admin", "admin@example.invalid",
                                                      os.environ.get("DEMO_ADMIN_PASSWORD", "admin"))
            self.stdout.write("superuser admin / admin created (DEBUG only)")
